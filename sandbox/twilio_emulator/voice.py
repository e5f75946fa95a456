"""Voice in the Twilio emulator: outbound Calls (API 2010-04-01) and Studio v2 Flows that it runs.

Nothing here knows about HTTP. Every public method of :class:`VoiceStore` takes the account store's
lock and moves time on first (calls and executions advance lazily, whenever something is read), so a
read always shows the state Twilio would show at that moment.

**What a called number does** is its :class:`CallScript`, set with ``script_calls(number, ...)``:

* ``answer`` (the default): a person answers after ``ring`` seconds; a prompt that gathers keys gets
  ``press`` (e.g. ``"1"``) ``press_after`` seconds after it starts, or nothing (``press=None``: the
  gather times out after ``press_after`` seconds, its real timeout compressed);
* ``machine`` / ``fax``: an answering machine or a fax answers (``answered_by`` is ``machine_start``
  with ``MachineDetection=Enable``, ``machine_end_beep`` with ``DetectMessageEnd``, ``fax``; without
  machine detection it is null and the machine stays silent);
* ``no-answer``, ``busy``, ``fail``: the call ends ``no-answer``, ``busy`` or ``failed`` after ``ring``
  seconds (``fail`` at once).

A call goes ``queued`` (for ``queue`` seconds) → ``ringing`` (``start_time`` set) → ``in-progress``
→ ``completed`` (``end_time``, ``duration`` in whole seconds as text, a price), or ends ``busy``,
``no-answer`` or ``failed`` with ``duration`` "0". A call created through the Calls API with
``Twiml``/``Url`` hangs up ``press_after`` seconds after it is answered; a call placed by a flow hangs
up when its execution ends.

**The flow interpreter** runs the widgets fn_twilio's flow uses: ``trigger`` (REST API:
``incomingRequest``), ``make-outgoing-call-v2`` (places a Call; ``answered`` / ``busy`` /
``noAnswer`` / ``failed`` with the variables ``CallSid``, ``CallStatus``, ``AnsweredBy`` (machine
detection on), ``To``, ``From``, ``Direction``, ``AccountSid``), ``split-based-on`` (``equal_to``,
``not_equal_to``, ``matches_any_of``, ``does_not_match_any_of``, ``starts_with``, ``contains``,
``is_blank``, ``is_not_blank``), ``gather-input-on-call`` (``keypress`` with ``Digits``,
``FinishedOnKey``, ``CallSid``, ``CallStatus``; or ``timeout``) and ``say-play`` (``audioComplete``).
Liquid ``{{...}}`` references to ``flow``, ``contact``, ``trigger`` and ``widgets`` are filled in
(``| default: '...'`` honoured, other filters ignored); what the call said is kept (``said``). A
transition without ``next`` ends the execution (``active`` → ``ended``) and hangs up its call. Each
transition is a Step (``FT…``). Another widget type ends the execution where it stands.
"""
from __future__ import annotations

import copy
import json
import re
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from typing import Any

from .model import (API_ROOT, API_VERSION, UTC, TwilioError, bad_request, decode_token, encode_token,
                    is_address, new_sid, rfc2822, stable_sid)

STUDIO_HOST = "https://studio.twilio.com"
CALL_ACTIONS = ("answer", "machine", "fax", "no-answer", "busy", "fail")
CALL_STATUSES = ("queued", "ringing", "in-progress", "completed", "busy", "failed", "no-answer", "canceled")
FINAL_CALL_STATUSES = {"completed", "busy", "failed", "no-answer", "canceled"}
MACHINE_DETECTION = ("Enable", "DetectMessageEnd")
FLOW_STATUSES = ("draft", "published")
EXECUTION_STATUSES = ("active", "ended")
#: Studio widget types (the schema's list); the emulator runs some of them (see the module docstring)
WIDGET_TYPES = {
    "add-member-to-chat-channel", "add-twiml-redirect", "capture-payments", "connect-call-to",
    "create-chat-channel", "create-task", "enqueue-call", "fork-stream", "gather-input-on-call",
    "make-http-request", "make-outgoing-call-v1", "make-outgoing-call-v2", "record-call", "record-voicemail",
    "run-function", "run-function-v2", "say-play", "send-and-wait-for-reply", "send-message", "send-to-flex",
    "set-variables", "split-based-on", "run-subflow", "trigger", "understand", "update-sync-object",
    "connect-virtual-agent", "connect-virtual-agent-v2",
}
_DIGITS = re.compile(r"^[0-9*#]{1,32}$")
_LIQUID = re.compile(r"\{\{\s*(.*?)\s*\}\}")
_CALL_PRICE = "-0.01400"


@dataclass(frozen=True)
class CallScript:
    """What a number does when it is called (see the module docstring). ValueError when malformed."""

    action: str = "answer"
    press: str | None = None
    ring: float = 0.2
    press_after: float = 0.2
    queue: float = 0.0

    def __post_init__(self):
        if self.action not in CALL_ACTIONS:
            raise ValueError(f"a call script's action is one of {', '.join(CALL_ACTIONS)}, "
                             f"not {self.action!r}")
        if self.press is not None:
            if not isinstance(self.press, str) or not _DIGITS.match(self.press):
                raise ValueError("press is the keys pressed (0-9, * and #, 1 to 32 of them), "
                                 f"not {self.press!r}")
            if self.action != "answer":
                raise ValueError("only a person who answers presses keys (action 'answer', "
                                 f"not {self.action!r})")
        for name in ("ring", "press_after", "queue"):
            value = getattr(self, name)
            number = isinstance(value, (int, float)) and not isinstance(value, bool)
            if not number or not 0 <= value < float("inf"):
                raise ValueError(f"{name} must be a number of seconds, 0 or more, not {value!r}")
            object.__setattr__(self, name, float(value))


def iso(dt: datetime | None) -> str | None:
    """Studio's date format: ``2017-11-06T12:00:00Z``."""
    return None if dt is None else dt.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _seconds(delta: timedelta) -> float:
    return delta.total_seconds()


# --------------------------------------------------------------------------------------------
# Calls


@dataclass
class _Call:
    seq: int
    created: datetime
    data: dict
    script: CallScript
    detection: str | None
    by_flow: bool
    hangup: datetime | None = None     # when it is hung up (the flow ended, the API ended it)
    canceled: bool = False

    @property
    def ring_start(self) -> datetime:
        return self.created + timedelta(seconds=self.script.queue)

    @property
    def decided(self) -> datetime:
        """When the call is answered or ends unanswered."""
        if self.script.action == "fail":
            return self.ring_start
        return self.ring_start + timedelta(seconds=self.script.ring)

    @property
    def answered(self) -> bool:
        return self.script.action in ("answer", "machine", "fax")

    def answered_by(self) -> str | None:
        if self.detection is None:
            return None
        if self.script.action == "answer":
            return "human"
        if self.script.action == "fax":
            return "fax"
        return "machine_start" if self.detection == "Enable" else "machine_end_beep"

    def outcome_status(self) -> str:
        unanswered = {"no-answer": "no-answer", "busy": "busy", "fail": "failed"}
        return unanswered.get(self.script.action, "in-progress")


@dataclass
class _Execution:
    seq: int
    created: datetime
    data: dict
    definition: dict
    params: dict
    state: str | None
    entered: datetime
    script: CallScript
    context: dict = field(default_factory=dict)
    call_sid: str | None = None
    steps: list = field(default_factory=list)
    said: list = field(default_factory=list)
    spoken: set = field(default_factory=set)


def _page(items: list[tuple[tuple[int, int], dict]], page: int, page_size: int,
          token: str | None) -> tuple[list[dict], str | None]:
    """One page of ``(key, record)`` pairs sorted newest first; a ``PA`` token continues after the
    position it encodes. Returns (records, next token or None). ValueError for a bad token."""
    if token:
        direction, pos = decode_token(token)
        if direction == "PA":
            rest = [kv for kv in items if kv[0] < pos]
            chosen, more = rest[:page_size], len(rest) > page_size
        else:
            before = [kv for kv in items if kv[0] > pos]
            chosen, more = before[-page_size:], True
    else:
        offset = page * page_size
        chosen, more = items[offset:offset + page_size], len(items) > offset + page_size
    next_token = encode_token("PA", chosen[-1][0]) if more and chosen else None
    return [copy.deepcopy(record) for _, record in chosen], next_token


def _key(when: datetime, seq: int) -> tuple[int, int]:
    return int(when.timestamp() * 1_000_000), seq


def render(template: Any, context: dict) -> str:
    """A Liquid template with ``{{path.to.value}}`` references (``| default: 'x'`` honoured)."""
    def value(match: re.Match) -> str:
        expression, _, rest = match.group(1).partition("|")
        found: Any = context
        for part in expression.strip().split("."):
            found = found.get(part) if isinstance(found, dict) else None
        if found in (None, "") and rest.strip().startswith("default:"):
            return rest.strip()[len("default:"):].strip().strip("'\"")
        if found is None:
            return ""
        return found if isinstance(found, str) else json.dumps(found)
    return _LIQUID.sub(value, "" if template is None else str(template))


def _condition(kind: str, value: str, argument: str) -> bool:
    choices = [v.strip() for v in str(value).split(",")]
    tests: dict[str, Callable[[], bool]] = {
        "equal_to": lambda: argument == str(value),
        "not_equal_to": lambda: argument != str(value),
        "matches_any_of": lambda: argument in choices,
        "does_not_match_any_of": lambda: argument not in choices,
        "starts_with": lambda: argument.startswith(str(value)),
        "contains": lambda: str(value) in argument,
        "is_blank": lambda: not argument.strip(),
        "is_not_blank": lambda: bool(argument.strip()),
    }
    test = tests.get(kind)
    return bool(test and test())


def check_definition(definition: Any) -> list[str]:
    """Why a flow definition cannot run (empty when it can): a JSON object with ``states`` (each with a
    ``name``, a known ``type`` and ``transitions``), an ``initial_state`` among them, and every
    ``next`` naming a state."""
    if not isinstance(definition, dict):
        return ["the definition is not a JSON object"]
    states = definition.get("states")
    if not isinstance(states, list) or not states:
        return ["the definition has no states"]
    errors, names = [], set()
    for index, state in enumerate(states):
        if not isinstance(state, dict) or not isinstance(state.get("name"), str) or not state["name"]:
            errors.append(f"state {index} has no name")
            continue
        names.add(state["name"])
        if state.get("type") not in WIDGET_TYPES:
            errors.append(f"state {state['name']!r} has an unknown widget type {state.get('type')!r}")
        if not isinstance(state.get("transitions"), list):
            errors.append(f"state {state['name']!r} has no transitions")
    for state in states:
        if isinstance(state, dict):
            for transition in state.get("transitions") or []:
                target = transition.get("next") if isinstance(transition, dict) else None
                if target is not None and target not in names:
                    errors.append(f"state {state.get('name')!r} goes to {target!r}, which is not a state")
    if definition.get("initial_state") not in names:
        errors.append(f"the initial_state {definition.get('initial_state')!r} is not a state")
    return errors


class VoiceStore:
    """Calls, Studio Flows and Executions of the emulated account (see the module docstring)."""

    def __init__(self, store: Any):
        self.store = store
        self.lock = store.lock
        self.reset()

    @property
    def clock(self) -> Callable[[], datetime]:
        return self.store.clock

    def reset(self) -> None:
        with self.lock:
            self.calls: dict[str, _Call] = {}
            self.flows: dict[str, dict] = {}
            self.revisions: dict[str, list[dict]] = {}
            self.executions: dict[str, _Execution] = {}
            self.scripts: dict[str, CallScript] = {}
            self._seq = 0

    def _next(self) -> int:
        self._seq += 1
        return self._seq

    # --- scripts ----------------------------------------------------------------------------

    def script_calls(self, number: str, script: CallScript | None) -> None:
        """What ``number`` does when called from now on (None: the default, answer and press nothing)."""
        with self.lock:
            if script is None or script == CallScript():
                self.scripts.pop(number, None)
            else:
                self.scripts[number] = script

    def script_for(self, number: str) -> CallScript:
        with self.lock:
            return self.scripts.get(number, CallScript())

    # --- calls ------------------------------------------------------------------------------

    def _call_uri(self, sid: str) -> str:
        return f"{API_ROOT}/Accounts/{self.store.account_sid}/Calls/{sid}.json"

    def _place(self, to: str, from_: str, detection: str | None, *, by_flow: bool,
               at: datetime | None = None) -> _Call:
        created = at or self.clock()
        sid = new_sid("CA")
        uri = self._call_uri(sid)
        subs = {name: uri.replace(".json", f"/{path}.json") for name, path in (
            ("notifications", "Notifications"), ("recordings", "Recordings"), ("payments", "Payments"),
            ("events", "Events"), ("siprec", "Siprec"), ("streams", "Streams"),
            ("transcriptions", "Transcriptions"),
            ("user_defined_message_subscriptions", "UserDefinedMessageSubscriptions"),
            ("user_defined_messages", "UserDefinedMessages"))}
        data = {
            "account_sid": self.store.account_sid, "answered_by": None, "api_version": API_VERSION,
            "caller_name": None, "date_created": rfc2822(created), "date_updated": rfc2822(created),
            "direction": "outbound-api", "duration": None, "end_time": None, "forwarded_from": None,
            "from": from_, "from_formatted": from_, "group_sid": None, "parent_call_sid": None,
            "phone_number_sid": stable_sid("PN", self.store.account_sid + from_), "price": None,
            "price_unit": "USD", "sid": sid, "start_time": None, "status": "queued",
            "subresource_uris": subs, "to": to, "to_formatted": to, "trunk_sid": None, "uri": uri,
            "queue_time": "0",
        }
        call = _Call(self._next(), created, data, self.script_for(to), detection, by_flow)
        if not by_flow:
            call.hangup = call.decided + timedelta(seconds=call.script.press_after) if call.answered else None
        self.calls[sid] = call
        return call

    def _advance_call(self, call: _Call, now: datetime) -> None:
        """Bring the call's JSON to what it is at ``now``."""
        data = call.data
        if data["status"] in FINAL_CALL_STATUSES:
            return
        if call.hangup is not None and call.hangup < call.decided and now >= call.hangup:
            # hung up before it was answered: canceled (queued or ringing)
            if call.hangup >= call.ring_start and data["start_time"] is None:
                data["start_time"] = rfc2822(call.ring_start)
            data["status"], data["duration"], data["end_time"] = "canceled", "0", rfc2822(call.hangup)
            data["date_updated"] = rfc2822(call.hangup)
            return
        changed: datetime | None = None
        if now >= call.ring_start and data["status"] == "queued":
            data["status"], data["start_time"] = "ringing", rfc2822(call.ring_start)
            changed = call.ring_start
        if now >= call.decided and data["status"] == "ringing":
            status = call.outcome_status()
            data["status"] = changed_status = status
            changed = call.decided
            if changed_status != "in-progress":
                data["duration"], data["end_time"] = "0", rfc2822(call.decided)
            else:
                data["answered_by"] = call.answered_by()
        if data["status"] == "in-progress" and call.hangup is not None and now >= call.hangup:
            data["status"], data["end_time"] = "completed", rfc2822(call.hangup)
            data["duration"] = str(max(0, round(_seconds(call.hangup - call.decided))))
            data["price"] = _CALL_PRICE
            changed = call.hangup
        if changed is not None:
            data["date_updated"] = rfc2822(changed)

    def create_call(self, form: dict) -> dict:
        """``POST …/Calls.json`` with Twilio's validation. Raises TwilioError."""
        def one(name):
            v = form.get(name)
            if isinstance(v, list):
                v = v[-1] if v else None
            return v if v not in (None, "") else None

        to, from_ = one("To"), one("From")
        if to is None:
            raise bad_request(21201, "No 'To' number is specified")
        if from_ is None:
            raise bad_request(21213, "No 'From' number is specified")
        if one("Url") is None and one("Twiml") is None and one("ApplicationSid") is None:
            raise bad_request(21205, "A 'Url', 'Twiml' or 'ApplicationSid' parameter is required.")
        if not is_address(to) or ":" in to:
            raise bad_request(21211, f"The 'To' number {to} is not a valid phone number.")
        detection = one("MachineDetection")
        if detection is not None and detection not in MACHINE_DETECTION:
            raise bad_request(21218, f"Invalid MachineDetection value {detection!r}: use Enable or "
                                     "DetectMessageEnd.")
        with self.lock:
            if not self.store.can_call_from(from_):
                raise bad_request(21210, f"The source phone number provided, {from_}, is not yet verified "
                                         "for your account. You may only make calls from phone numbers that "
                                         "you've verified or purchased from Twilio.")
            call = self._place(to, from_, detection, by_flow=False)
            self._advance_call(call, self.clock())
            return copy.deepcopy(call.data)

    def _progress(self) -> datetime:
        """Move every execution and call to now (the store's lock is held)."""
        now = self.clock()
        for execution in list(self.executions.values()):
            if execution.data["status"] == "active":
                self._run(execution, now)
        for call in self.calls.values():
            self._advance_call(call, now)
        return now

    def _call(self, sid: str) -> _Call:
        call = self.calls.get(sid)
        if call is None:
            raise TwilioError(404, 20404, f"The requested resource {self._call_uri(sid)} was not found")
        return call

    def get_call(self, sid: str) -> dict:
        with self.lock:
            self._progress()
            return copy.deepcopy(self._call(sid).data)

    def update_call(self, sid: str, form: dict) -> dict:
        """``Status=completed`` hangs up a call in progress, ``Status=canceled`` one queued or ringing."""
        with self.lock:
            now = self._progress()
            call = self._call(sid)
            status = form.get("Status")
            current = call.data["status"]
            if (status == "completed" and current == "in-progress") or \
                    (status == "canceled" and current in ("queued", "ringing")):
                call.hangup = now
                self._advance_call(call, now)
            elif status is not None:
                raise bad_request(21220, f"Call is not in-progress. Cannot redirect or end it ({current}).")
            return copy.deepcopy(call.data)

    def delete_call(self, sid: str) -> None:
        with self.lock:
            self._progress()
            self._call(sid)
            del self.calls[sid]

    def list_calls(self, *, to=None, from_=None, status=None, page_size=50, page=0, token=None):
        with self.lock:
            self._progress()
            items = sorted(((_key(c.created, c.seq), c.data) for c in self.calls.values()
                            if (to is None or c.data["to"] == to)
                            and (from_ is None or c.data["from"] == from_)
                            and (status is None or c.data["status"] == status)),
                           key=lambda kv: kv[0], reverse=True)
            return _page(items, page, page_size, token)

    def all_calls(self) -> list[dict]:
        with self.lock:
            self._progress()
            return [copy.deepcopy(c.data) for c in sorted(self.calls.values(), key=lambda c: c.seq)]

    # --- flows ------------------------------------------------------------------------------

    def _flow_url(self, sid: str) -> str:
        return f"{STUDIO_HOST}/v2/Flows/{sid}"

    def _flow(self, sid: str) -> dict:
        flow = self.flows.get(sid)
        if flow is None:
            raise TwilioError(404, 20404, f"The requested resource /v2/Flows/{sid} was not found")
        return flow

    @staticmethod
    def _definition(raw: Any) -> dict:
        try:
            definition = json.loads(raw) if isinstance(raw, str) else raw
        except ValueError:
            raise bad_request(20001, "Invalid Definition: the value is not JSON") from None
        errors = check_definition(definition)
        if errors:
            raise bad_request(20001, "Invalid Flow definition: " + "; ".join(errors))
        return definition

    def create_flow(self, form: dict) -> dict:
        name, status, raw = form.get("FriendlyName"), form.get("Status"), form.get("Definition")
        for key, value in (("FriendlyName", name), ("Status", status), ("Definition", raw)):
            if value in (None, ""):
                raise bad_request(20001, f"Missing required parameter {key} in the post body")
        if status not in FLOW_STATUSES:
            raise bad_request(20001, f"Invalid Status {status!r}: use draft or published")
        definition = self._definition(raw)
        with self.lock:
            now = self.clock()
            sid = new_sid("FW")
            flow = {
                "sid": sid, "account_sid": self.store.account_sid,
                "author_sid": stable_sid("US", self.store.account_sid), "friendly_name": name,
                "definition": definition, "status": status, "revision": 1,
                "commit_message": form.get("CommitMessage") or None, "valid": True, "errors": [],
                "warnings": [], "date_created": iso(now), "date_updated": None,
                "webhook_url": f"https://webhooks.twilio.com/v1/Accounts/{self.store.account_sid}/Flows/{sid}",
                "url": self._flow_url(sid),
                "links": {name_: f"{self._flow_url(sid)}/{path}" for name_, path in (
                    ("test_users", "TestUsers"), ("revisions", "Revisions"), ("executions", "Executions"))},
            }
            self.flows[sid] = flow
            self.revisions[sid] = [copy.deepcopy(flow)]
            return copy.deepcopy(flow)

    def update_flow(self, sid: str, form: dict) -> dict:
        status = form.get("Status")
        if status in (None, ""):
            raise bad_request(20001, "Missing required parameter Status in the post body")
        if status not in FLOW_STATUSES:
            raise bad_request(20001, f"Invalid Status {status!r}: use draft or published")
        raw = form.get("Definition")
        definition = self._definition(raw) if raw not in (None, "") else None
        with self.lock:
            flow = self._flow(sid)
            new_definition = definition is not None and definition != flow["definition"]
            changed = status != flow["status"] or new_definition
            if form.get("FriendlyName"):
                flow["friendly_name"] = form["FriendlyName"]
            if changed:
                flow["status"] = status
                if definition is not None:
                    flow["definition"] = definition
                flow["revision"] += 1
                flow["commit_message"] = form.get("CommitMessage") or None
                self.revisions[sid].append(copy.deepcopy(flow))
            flow["date_updated"] = iso(self.clock())
            return copy.deepcopy(flow)

    def get_flow(self, sid: str) -> dict:
        with self.lock:
            return copy.deepcopy(self._flow(sid))

    def delete_flow(self, sid: str) -> None:
        with self.lock:
            self._flow(sid)
            del self.flows[sid]
            self.revisions.pop(sid, None)
            for key in [k for k, e in self.executions.items() if e.data["flow_sid"] == sid]:
                del self.executions[key]

    def list_flows(self, *, page_size=50, page=0, token=None):
        """Flows, newest first; a list does not carry their definitions (``definition`` null)."""
        with self.lock:
            items = []
            for index, flow in enumerate(self.flows.values()):
                listed = dict(flow, definition=None)
                created = datetime.strptime(flow["date_created"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
                items.append((_key(created, index), listed))
            items.sort(key=lambda kv: kv[0], reverse=True)
            return _page(items, page, page_size, token)

    # --- executions -------------------------------------------------------------------------

    def _execution_url(self, flow_sid: str, sid: str) -> str:
        return f"{self._flow_url(flow_sid)}/Executions/{sid}"

    def _execution(self, flow_sid: str, sid: str) -> _Execution:
        execution = self.executions.get(sid)
        if execution is None or execution.data["flow_sid"] != flow_sid:
            raise TwilioError(404, 20404, f"The requested resource /v2/Flows/{flow_sid}/Executions/{sid} "
                                          "was not found")
        return execution

    def create_execution(self, flow_sid: str, form: dict) -> dict:
        to, from_ = form.get("To"), form.get("From")
        if to in (None, ""):
            raise bad_request(20001, "Missing required parameter To in the post body")
        if from_ in (None, ""):
            raise bad_request(20001, "Missing required parameter From in the post body")
        raw = form.get("Parameters")
        try:
            params = json.loads(raw) if raw not in (None, "") else {}
        except ValueError:
            raise bad_request(20001, "Invalid Parameters: the value is not JSON") from None
        if not isinstance(params, dict):
            raise bad_request(20001, "Invalid Parameters: a JSON object is expected")
        with self.lock:
            flow = self._flow(flow_sid)
            now = self.clock()
            sid = new_sid("FN")
            url = self._execution_url(flow_sid, sid)
            data = {
                "sid": sid, "account_sid": self.store.account_sid, "flow_sid": flow_sid,
                "contact_channel_address": to, "contact_sid": stable_sid("FC", flow_sid + to),
                "flow_version": flow["revision"], "context": {}, "status": "active",
                "date_created": iso(now), "date_updated": iso(now), "initiated_by": new_sid("RQ"),
                "url": url, "links": {"steps": f"{url}/Steps", "execution_context": f"{url}/Context"},
            }
            context = {
                "flow": {"flow_sid": flow_sid, "sid": sid, "channel": {"address": from_}, "data": params,
                         "variables": {}},
                "contact": {"channel": {"address": to}},
                "trigger": {"request": {"from": from_, "to": to, "parameters": params}},
                "widgets": {},
            }
            execution = _Execution(self._next(), now, data, copy.deepcopy(flow["definition"]), params,
                                   flow["definition"]["initial_state"], now, self.script_for(to), context)
            self.executions[sid] = execution
            self._run(execution, now)
            return copy.deepcopy(execution.data)

    def get_execution(self, flow_sid: str, sid: str) -> dict:
        with self.lock:
            self._progress()
            return copy.deepcopy(self._execution(flow_sid, sid).data)

    def get_context(self, flow_sid: str, sid: str) -> dict:
        with self.lock:
            self._progress()
            execution = self._execution(flow_sid, sid)
            return {"account_sid": self.store.account_sid, "context": copy.deepcopy(execution.context),
                    "flow_sid": flow_sid, "execution_sid": sid,
                    "url": self._execution_url(flow_sid, sid) + "/Context"}

    def end_execution(self, flow_sid: str, sid: str, form: dict) -> dict:
        """``Status=ended`` ends an active execution and hangs up its call."""
        status = form.get("Status")
        if status != "ended":
            raise bad_request(20001, f"Invalid Status {status!r}: an execution can only be set to ended")
        with self.lock:
            now = self._progress()
            execution = self._execution(flow_sid, sid)
            if execution.data["status"] == "active":
                self._end(execution, now)
            return copy.deepcopy(execution.data)

    def delete_execution(self, flow_sid: str, sid: str) -> None:
        with self.lock:
            self._progress()
            self._execution(flow_sid, sid)
            del self.executions[sid]

    def list_executions(self, flow_sid: str, *, status=None, created_from=None, created_to=None, page_size=50,
                        page=0, token=None):
        with self.lock:
            self._progress()
            self._flow(flow_sid)
            items = sorted(((_key(e.created, e.seq), e.data) for e in self.executions.values()
                            if e.data["flow_sid"] == flow_sid
                            and (status is None or e.data["status"] == status)
                            and (created_from is None or e.created.replace(microsecond=0) >= created_from)
                            and (created_to is None or e.created.replace(microsecond=0) < created_to)),
                           key=lambda kv: kv[0], reverse=True)
            return _page(items, page, page_size, token)

    def list_steps(self, flow_sid: str, sid: str, *, page_size=50, page=0, token=None):
        with self.lock:
            self._progress()
            execution = self._execution(flow_sid, sid)
            items = [(_key(datetime.strptime(s["date_created"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC),
                           index), s) for index, s in enumerate(execution.steps)]
            items.sort(key=lambda kv: kv[0], reverse=True)
            return _page(items, page, page_size, token)

    def get_step(self, flow_sid: str, sid: str, step_sid: str) -> dict:
        with self.lock:
            self._progress()
            for step in self._execution(flow_sid, sid).steps:
                if step["sid"] == step_sid:
                    return copy.deepcopy(step)
            path = f"/v2/Flows/{flow_sid}/Executions/{sid}/Steps/{step_sid}"
            raise TwilioError(404, 20404, f"The requested resource {path} was not found")

    def all_executions(self) -> list[dict]:
        """Every execution with what the emulator knows of it: its JSON, ``context``, ``said`` (what its
        call said) and ``call_sid``, oldest first."""
        with self.lock:
            self._progress()
            return [dict(copy.deepcopy(e.data), context=copy.deepcopy(e.context), said=list(e.said),
                         call_sid=e.call_sid)
                    for e in sorted(self.executions.values(), key=lambda e: e.seq)]

    def all_flows(self) -> list[dict]:
        with self.lock:
            return [copy.deepcopy(f) for f in self.flows.values()]

    # --- the interpreter --------------------------------------------------------------------

    def _run(self, execution: _Execution, now: datetime) -> None:
        """Run the execution's widgets as far as ``now`` allows."""
        states = {s["name"]: s for s in execution.definition["states"]}
        while execution.state is not None and execution.data["status"] == "active":
            state = states[execution.state]
            step = getattr(self, "_widget_" + state["type"].replace("-", "_"), None)
            if step is None:   # a widget the emulator does not run: the execution ends there
                self._end(execution, execution.entered)
                return
            move = step(execution, state, state.get("properties") or {}, now)
            if move is None:
                return           # waiting for something later than now
            if move.variables is not None:
                execution.context["widgets"][state["name"]] = move.variables
            self._transition(execution, state, move)

    def _transition(self, execution: _Execution, state: dict, move: _Move) -> None:
        transition = move.transition or next(
            (t for t in state.get("transitions") or [] if t.get("event") == move.event), {})
        target = transition.get("next")
        step_sid = new_sid("FT")
        url = self._execution_url(execution.data["flow_sid"], execution.data["sid"]) + f"/Steps/{step_sid}"
        execution.steps.append({
            "sid": step_sid, "account_sid": self.store.account_sid, "flow_sid": execution.data["flow_sid"],
            "execution_sid": execution.data["sid"], "parent_step_sid": None, "name": move.event,
            "context": {}, "transitioned_from": state["name"], "transitioned_to": target or "Ended",
            "type": state["type"], "date_created": iso(move.at), "date_updated": iso(move.at), "url": url,
            "links": {"step_context": url + "/Context"},
        })
        execution.data["date_updated"] = iso(move.at)
        if target is None:
            self._end(execution, move.at)
        else:
            execution.state, execution.entered = target, move.at

    def _end(self, execution: _Execution, at: datetime) -> None:
        execution.state = None
        execution.data["status"] = "ended"
        execution.data["date_updated"] = iso(at)
        call = self.calls.get(execution.call_sid or "")
        if call is not None and call.hangup is None:
            call.hangup = max(at, call.created)
            self._advance_call(call, call.hangup)

    def _say(self, execution: _Execution, name: str, template: Any) -> None:
        """Record what a widget says, once per time it is entered."""
        mark = (name, execution.entered)
        if template and mark not in execution.spoken:
            execution.spoken.add(mark)
            execution.said.append(render(template, execution.context))

    def _widget_trigger(self, execution, state, props, now):
        return _Move("incomingRequest", execution.entered)

    def _widget_say_play(self, execution, state, props, now):
        self._say(execution, state["name"], props.get("say"))
        return _Move("audioComplete", execution.entered)

    def _widget_split_based_on(self, execution, state, props, now):
        for transition in state.get("transitions") or []:
            conditions = transition.get("conditions") or []
            if transition.get("event") == "match" and conditions and all(
                    _condition(c.get("type", ""), c.get("value", ""),
                               render((c.get("arguments") or [props.get("input")])[0], execution.context))
                    for c in conditions):
                return _Move("match", execution.entered, transition=transition)
        return _Move("noMatch", execution.entered)

    def _widget_make_outgoing_call_v2(self, execution, state, props, now):
        if execution.call_sid is None:
            to = render(props.get("to") or "{{contact.channel.address}}", execution.context)
            from_ = render(props.get("from") or "{{flow.channel.address}}", execution.context)
            detection = None
            if props.get("detect_answering_machine") in (True, "true"):
                detection = props.get("machine_detection") or "Enable"
            if not is_address(to) or ":" in to or not self.store.can_call_from(from_):
                return _Move("failed", execution.entered, {
                    "To": to, "From": from_, "AccountSid": self.store.account_sid,
                    "Direction": "outbound-api", "ApiVersion": API_VERSION, "CallStatus": "failed"})
            call = self._place(to, from_, detection, by_flow=True, at=execution.entered)
            execution.call_sid = call.data["sid"]
        call = self.calls[execution.call_sid]
        if now < call.decided:
            return None
        self._advance_call(call, call.decided)
        status = call.outcome_status()
        variables = {"CallSid": call.data["sid"], "To": call.data["to"], "From": call.data["from"],
                     "AccountSid": self.store.account_sid, "Direction": "outbound-api",
                     "ApiVersion": API_VERSION, "CallStatus": status}
        if call.detection is not None and call.answered:
            variables["AnsweredBy"] = call.answered_by()
        event = {"in-progress": "answered", "busy": "busy", "no-answer": "noAnswer"}.get(status, "failed")
        return _Move(event, call.decided, variables)

    def _widget_gather_input_on_call(self, execution, state, props, now):
        call = self.calls.get(execution.call_sid or "")
        if call is None or not call.answered:
            return _Move("timeout", execution.entered)
        self._say(execution, state["name"], props.get("say"))
        ends = execution.entered + timedelta(seconds=call.script.press_after)
        if now < ends:
            return None
        press = call.script.press if call.script.action == "answer" else None
        if not press:
            return _Move("timeout", ends)
        wanted = str(props.get("number_of_digits", ""))
        digits = press[:int(wanted)] if wanted.isdigit() and int(wanted) > 0 else press
        return _Move("keypress", ends, {"Digits": digits, "FinishedOnKey": "", "CallSid": call.data["sid"],
                                        "CallStatus": "in-progress"})


@dataclass
class _Move:
    """A widget's way out: the event, when it happens, the widget's variables, and (when the widget
    chose one of several transitions with that event) the transition taken."""

    event: str
    at: datetime
    variables: dict | None = None
    transition: dict | None = None


def script_from_dict(payload: dict) -> CallScript:
    """A CallScript from the control API's JSON (unknown keys refused)."""
    allowed = set(asdict(CallScript()))
    extra = set(payload) - allowed
    if extra:
        raise ValueError(f"unknown call script keys: {', '.join(sorted(extra))}")
    return CallScript(**payload)
