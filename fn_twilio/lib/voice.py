"""Voice: a page tier that calls, press 1 to acknowledge, with REST calls alone (contract §14).

Reading a pressed key normally needs a public webhook; this app has none. Each call runs instead as an
execution of a Twilio Studio Flow (REST trigger → outgoing call with answering machine detection →
a one-key gather that says the page text twice → end), and the key, the call status and who answered
are read from the execution's context.

* **The flow** (:func:`ensure_flow`): its definition is ``data/page_call_flow.json`` in this package.
  On first use in a process the app finds its flow by friendly name (:func:`flow_name`, one per
  account and label), creates it when absent, and updates it in place (a new revision) when the
  definition it holds is not the one shipped (a digest of the shipped definition is stamped into the
  flow's description and commit message), never making a second copy. The answer is cached per
  process and (base URL, account, label, ``studio_flow_sid``). With the ``studio_flow_sid`` setting
  that flow is used as it is, after a check that it exists and has the widgets the app reads.
* **Starting a call** (:func:`start_call`, :func:`start_calls`): one execution per call, ``To`` the
  person, ``From`` the caller (``voice_sender``), ``Parameters`` the page text and code. The errors
  table's rules apply: a 429 or a connection that never reached Twilio is retried with back-off; a
  5xx, a read timeout or an unreadable answer may have started the call and is never repeated
  (``CallStart.may_have_called``).
* **Following calls** (:func:`watch_calls`): one :class:`CallWatcher` (a
  :class:`~fn_twilio.lib.polling.SharedPoller`) per account and sender in a process lists each flow's
  executions once per poll interval and fetches the context of an execution only when it ended or
  changed (or has not been read for :data:`ACTIVE_REFRESH` looks): K calls cost at most 1 + K
  requests per interval. Each call has a :class:`CallReport` (status, who answered, the key pressed,
  ``ended``, the :class:`CallOutcome` and the reason in words). An execution that never ends, a
  context without the app's widgets, or a context that cannot be read ends the call's report with a
  reason; a listing Studio refuses (429, 5xx, garbage) is retried at the next interval and, when it
  lasts, reaches the watches as their ``error``: nothing wedges.
* **Before a page calls** (:func:`prepare`): a number that can call (``voice_sender``) and the flow, or a
  :class:`VoiceError` naming the setting, before anything is sent.
* **After a crash** (:func:`first_run_calls`): a redelivered page finds the calls its interrupted run
  placed with the rule texts follow (``reconcile``): the flow's executions created since the original
  timestamp (less ``reconcile.SKEW``), to that number, whose parameters carry the page's text (and code);
  a person whose executions cannot be read is not called again.

Everything goes through the injected ``clock`` and ``client_factory``; nothing here imports SOAR.
"""
from __future__ import annotations

import copy
import enum
import hashlib
import json
import logging
import threading
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from fn_twilio import __version__
from fn_twilio.lib.clock import SYSTEM_CLOCK, Clock
from fn_twilio.lib.errors import Action, Failure, FailureKind, Retry, classify
from fn_twilio.lib.phone import mask, mask_numbers
from fn_twilio.lib.polling import ClientFactory, PageBudget, SharedPoller, Watch, register, wait_on
from fn_twilio.lib.reconcile import SKEW, Delivery
from fn_twilio.lib.records import utc_date
from fn_twilio.lib.sender import RetryPolicy, create_with_retries
from fn_twilio.lib.settings import SettingsError, voice_caller
from fn_twilio.lib.twilio_client import ThreadLocalClients, build_client, client_session

LOG = logging.getLogger(__name__)

__all__ = [
    "FLOW_FILE", "FLOW_NAME", "CALL_WIDGET", "GATHER_WIDGET", "PARAMETERS", "VoiceError", "FlowRef",
    "flow_name", "load_definition", "definition_digest", "readable_problems", "ensure_flow", "forget_flows",
    "PlacedCall", "CallStart", "start_call", "start_calls", "end_call", "CallOutcome", "CallReport",
    "read_context", "CallWatch", "CallWatcher", "watch_calls", "wait_for_calls", "prepare", "FirstRunCalls",
    "first_run_calls", "first_run_call_code", "end_calls",
]

FLOW_FILE = Path(__file__).resolve().parent / "data" / "page_call_flow.json"
FLOW_NAME = "fn_twilio page call"
CALL_WIDGET = "call"            # make-outgoing-call-v2: CallSid, CallStatus, AnsweredBy
GATHER_WIDGET = "ask"           # gather-input-on-call: Digits
PARAMETERS = ("text", "code")   # what an execution's Parameters carry (the flow reads flow.data.<name>)
ACKNOWLEDGE_KEY = "1"
DECLINE_KEY = "2"
MAX_TEXT = 1600                 # the page text a call says (the same limit as an SMS)
#: AnsweredBy values that are no person (answering machine detection)
MACHINE_ANSWERS = frozenset({"machine_start", "machine_end_beep", "machine_end_silence", "machine_end_other",
                             "fax"})

KIND = "call watcher"
PAGE_SIZE = 50                  # executions per page of the shared listing
FLOOR_MARGIN = timedelta(seconds=2)   # the listing reaches this far before the oldest call followed
ACTIVE_REFRESH = 5              # looks after which an active execution's context is read again anyway
MAX_READ_FAILURES = 5           # failed reads of one call, in a row, before its report ends with the reason
CALL_TIME_LIMIT = 600.0         # seconds an execution may stay active before the app stops following it
MAX_FLOW_PAGES = 20             # pages of the account's flows read to find the app's flow
DEFAULT_POLICY = RetryPolicy()  # retries of a call start: as for an SMS


class VoiceError(ValueError):
    """The voice tier cannot be used (the flow cannot be found, made or read); the message names the
    setting or says what Twilio answered. ``failure``: the failed request, when there was one."""

    def __init__(self, message: str, failure: Failure | None = None) -> None:
        super().__init__(message)
        self.failure = failure


# -- the flow --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class FlowRef:
    """The Studio Flow calls run in. ``how``: ``found`` (already current), ``created``, ``updated``
    (a new revision) or ``configured`` (``studio_flow_sid``)."""

    sid: str
    friendly_name: str | None
    revision: int | None
    how: str


def flow_name(label: str | None = None) -> str:
    """The app's flow's friendly name: one flow per account and label."""
    return f"{FLOW_NAME} ({label})" if label else FLOW_NAME


def load_definition() -> dict[str, Any]:
    """The shipped flow definition (a new copy each time)."""
    return copy.deepcopy(_DEFINITION)


def _read_definition() -> dict[str, Any]:
    with open(FLOW_FILE, encoding="utf-8") as handle:
        definition = json.load(handle)
    if not isinstance(definition, dict):
        raise VoiceError(f"{FLOW_FILE.name} is not a Studio flow definition")
    return definition


_DEFINITION = _read_definition()


def definition_digest(definition: dict[str, Any]) -> str:
    """A short digest of a definition (its canonical JSON)."""
    canonical = json.dumps(definition, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()[:16]


def _stamp(digest: str) -> str:
    return f"fn_twilio definition {digest}"


def stamped_definition() -> tuple[dict[str, Any], str]:
    """The definition to upload, its description ending with the shipped definition's digest (so a
    flow found later tells whether it holds this definition, whatever Twilio adds to it), and the
    digest."""
    definition = load_definition()
    digest = definition_digest(definition)
    definition["description"] = f"{definition.get('description', FLOW_NAME)} [{_stamp(digest)}]"
    return definition, digest


def readable_problems(definition: Any) -> list[str]:
    """What keeps the app from reading a flow's executions (empty when nothing does): a
    ``make-outgoing-call-v2`` widget named ``call`` and a ``gather-input-on-call`` widget named ``ask``."""
    if not isinstance(definition, dict) or not isinstance(definition.get("states"), list):
        return ["its definition has no states"]
    types = {s.get("name"): s.get("type") for s in definition["states"] if isinstance(s, dict)}
    problems = []
    for name, kind in ((CALL_WIDGET, "make-outgoing-call-v2"), (GATHER_WIDGET, "gather-input-on-call")):
        if types.get(name) != kind:
            found = f" (it is a {types[name]})" if name in types else ""
            problems.append(f"it has no {kind} widget named {name!r}{found}")
    return problems


_FLOWS: dict[tuple[str, ...], FlowRef] = {}
_FLOW_LOCKS: dict[tuple[str, ...], threading.Lock] = {}
_FLOWS_LOCK = threading.Lock()


def _flow_key(settings: Any, label: str | None) -> tuple[str, ...]:
    return (settings.base_url, settings.account_sid, label or "", settings.studio_flow_sid or "")


def forget_flows(sid: str | None = None) -> None:
    """Forget the flows found in this process (all, or those with ``sid``): the next use looks again."""
    with _FLOWS_LOCK:
        for key in [k for k, ref in _FLOWS.items() if sid is None or ref.sid == sid]:
            del _FLOWS[key]


def ensure_flow(client: Any, settings: Any, *, label: str | None = None) -> FlowRef:
    """The flow calls run in, found (or made, or brought up to date) once per process and key.

    Raises :class:`VoiceError` when it cannot be: ``studio_flow_sid`` is not a flow of the account or
    lacks what the app reads, Twilio refuses the definition, or Twilio cannot be read (then the next
    call tries again).
    """
    key = _flow_key(settings, label)
    with _FLOWS_LOCK:
        if key in _FLOWS:
            return _FLOWS[key]
        lock = _FLOW_LOCKS.setdefault(key, threading.Lock())
    with lock:   # one lookup per key at a time: two first calls in a process never make two flows
        with _FLOWS_LOCK:
            if key in _FLOWS:
                return _FLOWS[key]
        if settings.studio_flow_sid:
            ref = _configured_flow(client, settings)
        else:
            ref = _find_or_make(client, settings, flow_name(label))
        with _FLOWS_LOCK:
            _FLOWS[key] = ref
        LOG.info("Twilio: page calls run in Studio flow %s (%s, revision %s)", ref.sid, ref.how, ref.revision)
        return ref


def prepare(settings: Any, *, label: str | None = None,
            client_factory: ClientFactory = build_client) -> FlowRef:
    """What a page with ``voice:`` entries checks before anything is sent: a number calls can come from
    (``voice_sender``) and the flow calls run in (:func:`ensure_flow`, once per process). Raises
    :class:`VoiceError` naming the setting, or saying what Twilio answered."""
    try:
        voice_caller(settings)
    except SettingsError as exc:
        raise VoiceError(str(exc)) from None
    with _FLOWS_LOCK:
        cached = _FLOWS.get(_flow_key(settings, label))
    if cached is not None:
        return cached
    with client_session(settings, factory=client_factory) as client:
        return ensure_flow(client, settings, label=label)


def _failed(what: str, exc: Exception, settings: Any) -> VoiceError:
    failure = classify(exc, action=Action.READ, timeout=settings.timeout)
    return VoiceError(f"the page call's Studio flow could not be {what}: {failure.message}", failure)


def _configured_flow(client: Any, settings: Any) -> FlowRef:
    from twilio.base.exceptions import TwilioRestException

    sid = settings.studio_flow_sid
    try:
        flow = client.studio.v2.flows(sid).fetch()
    except TwilioRestException as exc:
        if exc.status == 404:
            raise VoiceError(f"studio_flow_sid {sid} is not a Studio Flow of this Twilio account "
                             "(check the SID in the Twilio console, or remove the setting to let the app "
                             "create its own flow)") from None
        raise _failed("read (studio_flow_sid)", exc, settings) from None
    except Exception as exc:  # every failure becomes a readable reason
        raise _failed("read (studio_flow_sid)", exc, settings) from None
    problems = readable_problems(flow.definition)
    if flow.status != "published":
        problems.append(f"it is not published (status {flow.status!r})")
    if problems:
        raise VoiceError(f"studio_flow_sid {sid} ({flow.friendly_name!r}) is not a flow the app can read: "
                         + "; ".join(problems) + f". The app reads widgets.{CALL_WIDGET}.CallStatus, "
                         f"widgets.{CALL_WIDGET}.AnsweredBy and widgets.{GATHER_WIDGET}.Digits, and passes "
                         "flow.data.text and flow.data.code")
    return FlowRef(sid, flow.friendly_name, flow.revision, "configured")


def _named(client: Any, name: str) -> list[Any]:
    """The account's flows with that friendly name (the list reads at most MAX_FLOW_PAGES pages)."""
    page = client.studio.v2.flows.page(page_size=50)
    found: list[Any] = []
    pages = 1
    while True:
        found.extend(f for f in page if f.friendly_name == name)
        if not page.next_page_url or pages >= MAX_FLOW_PAGES:
            return found
        page, pages = page.next_page(), pages + 1


def _oldest(flows: Iterable[Any]) -> Any:
    far = datetime.max.replace(tzinfo=timezone.utc)
    return min(flows, key=lambda f: (utc_date(f.date_created) or far, f.sid))


def _check_valid(flow: Any, what: str) -> None:
    if flow.valid is False or flow.errors:
        raise VoiceError(f"Twilio refused the page call's Studio flow definition ({what}): "
                         f"{json.dumps(flow.errors)[:500]}")


def _holds(definition: Any, digest: str) -> bool:
    return isinstance(definition, dict) and _stamp(digest) in str(definition.get("description", ""))


def _find_or_make(client: Any, settings: Any, name: str) -> FlowRef:
    definition, digest = stamped_definition()
    message = f"fn_twilio {__version__}: page call flow, {_stamp(digest)}"
    try:
        found = _named(client, name)
    except Exception as exc:  # every failure becomes a readable reason
        raise _failed("looked up", exc, settings) from None
    if not found:
        try:
            created = client.studio.v2.flows.create(friendly_name=name, status="published",
                                                    definition=definition, commit_message=message)
        except Exception as exc:  # may have been made: the next lookup finds it by name
            raise _failed("created", exc, settings) from None
        _check_valid(created, "create")
        return _settle_race(client, settings, name, created)
    keep = _oldest(found)
    if len(found) > 1:
        LOG.warning("Twilio: %s Studio flows are named %r; the oldest (%s) is used", len(found), name,
                    keep.sid)
    try:
        current = client.studio.v2.flows(keep.sid).fetch()
        if _holds(current.definition, digest) and current.status == "published":
            return FlowRef(current.sid, current.friendly_name, current.revision, "found")
        updated = client.studio.v2.flows(keep.sid).update(status="published", definition=definition,
                                                          commit_message=message)
    except Exception as exc:  # every failure becomes a readable reason
        raise _failed("brought up to date", exc, settings) from None
    _check_valid(updated, "update")
    return FlowRef(updated.sid, updated.friendly_name, updated.revision, "updated")


def _settle_race(client: Any, settings: Any, name: str, created: Any) -> FlowRef:
    """Another process may have created the flow at the same moment: the oldest of the copies is kept
    and the one just made is deleted when it is not that one."""
    try:
        copies = _named(client, name)
    except Exception:  # the copy just made is fine to use; a later lookup keeps the oldest
        LOG.debug("listing the flows again after creating one failed", exc_info=True)
        return FlowRef(created.sid, created.friendly_name, created.revision, "created")
    keep = _oldest([*copies, created])
    if keep.sid == created.sid:
        return FlowRef(created.sid, created.friendly_name, created.revision, "created")
    LOG.info("Twilio: another process created the Studio flow %s first; using it", keep.sid)
    try:
        client.studio.v2.flows(created.sid).delete()
    except Exception:  # best effort: the oldest copy is what every process uses
        LOG.warning("Twilio: could not delete the extra Studio flow %s", created.sid, exc_info=True)
    return FlowRef(keep.sid, keep.friendly_name, keep.revision, "found")


# -- starting calls --------------------------------------------------------------------------------
@dataclass(frozen=True)
class PlacedCall:
    """A call that was started: its execution, the person called, when Twilio created it, the page code."""

    flow_sid: str
    execution_sid: str
    to: str
    started_at: datetime
    code: str | None = None


@dataclass(frozen=True)
class CallStart:
    """How starting one call went: ``placed`` or ``failure`` (``may_have_called`` when the request may
    have started the call anyway: it is never started again)."""

    to: str
    placed: PlacedCall | None = None
    failure: Failure | None = None
    attempts: int = 1

    @property
    def started(self) -> bool:
        return self.placed is not None

    @property
    def may_have_called(self) -> bool:
        return self.failure is not None and self.failure.may_have_sent


def call_parameters(text: str, code: str | None) -> str:
    """The execution's Parameters (JSON): the page text the call says and the page's code.
    ValueError when the text is empty or longer than :data:`MAX_TEXT`."""
    if not isinstance(text, str) or not text.strip():
        raise ValueError("a call needs the page text to say")
    if len(text) > MAX_TEXT:
        raise ValueError(f"the page text has {len(text)} characters, more than the {MAX_TEXT} a call says")
    return json.dumps({"text": text.strip(), "code": code}, ensure_ascii=False)


CANCELLED = Failure(FailureKind.UNREACHABLE, "not called: the page was closed before this call was started",
                    Retry.NEVER)


def start_call(client: Any, settings: Any, flow: FlowRef, to: str, text: str, code: str | None, *,
               policy: RetryPolicy = DEFAULT_POLICY, clock: Clock = SYSTEM_CLOCK,
               cancelled: threading.Event | None = None) -> CallStart:
    """Start one call to ``to`` (E.164) as an execution of ``flow``; every failure ends in the result.

    Raises SettingsError (naming ``voice_sender``) when the settings have no number that can call,
    and ValueError for an empty or too long text: both before any request.
    """
    caller = voice_caller(settings)
    parameters = call_parameters(text, code)
    executions = client.studio.v2.flows(flow.sid).executions
    created = create_with_retries(
        lambda: executions.create(to=to, from_=caller, parameters=parameters),
        client, settings, action=Action.CALL, what=f"call to {mask(to)}", undone="not called", policy=policy,
        clock=clock, cancelled=cancelled)
    if created.failure is not None:
        if created.failure.http_status == 404:   # the flow is gone (deleted in the console): look it up again
            forget_flows(flow.sid)
        return CallStart(to, failure=created.failure, attempts=created.attempts)
    execution = created.made
    LOG.info("Twilio: calling %s (execution %s)", mask(to), execution.sid)
    started = utc_date(execution.date_created) or clock.wall()
    return CallStart(to, PlacedCall(flow.sid, execution.sid, to, started, code), attempts=created.attempts)


def start_calls(settings: Any, flow: FlowRef, numbers: Sequence[str], text: str, code: str | None, *,
                client_factory: ClientFactory | None = None, policy: RetryPolicy = DEFAULT_POLICY,
                clock: Clock = SYSTEM_CLOCK, cancelled: threading.Event | None = None) -> list[CallStart]:
    """Start a call to each of ``numbers`` (in parallel, at most ``max_concurrency`` at once); one
    result per number, in order. A set ``cancelled`` stops starting more (those get :data:`CANCELLED`).
    Raises like :func:`start_call` before any request."""
    voice_caller(settings)
    call_parameters(text, code)
    cancelled = cancelled or threading.Event()
    if not numbers:
        return []
    clients = ThreadLocalClients(settings, factory=client_factory)

    def one(to: str) -> CallStart:
        if cancelled.is_set():
            return CallStart(to, failure=CANCELLED, attempts=0)
        return start_call(clients.get(), settings, flow, to, text, code, policy=policy, clock=clock,
                          cancelled=cancelled)

    workers = max(1, min(int(settings.max_concurrency), len(numbers)))
    try:
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="fn_twilio-call") as pool:
            return list(pool.map(one, numbers))
    finally:
        clients.close()


def end_call(client: Any, call: PlacedCall) -> bool:
    """End a call's execution (a ringing call is canceled, a call in progress hung up): for a page that
    ended while calls were still going. True when Twilio took it; a failure is logged, not raised."""
    try:
        client.studio.v2.flows(call.flow_sid).executions(call.execution_sid).update(status="ended")
    except Exception:  # best effort: the call ends on its own
        LOG.warning("Twilio: could not end the call to %s (execution %s)", mask(call.to), call.execution_sid,
                    exc_info=LOG.isEnabledFor(logging.DEBUG))
        return False
    return True


def end_calls(settings: Any, calls: Sequence[PlacedCall], *,
              client_factory: ClientFactory = build_client) -> list[bool]:
    """:func:`end_call` for each of ``calls`` with one client (a page that ended while they went on)."""
    if not calls:
        return []
    with client_session(settings, factory=client_factory) as client:
        return [end_call(client, call) for call in calls]


# -- what a call came to ---------------------------------------------------------------------------
class CallOutcome(enum.Enum):
    """What a call came to. ``out`` ones take the person out of the page, like an undelivered text."""

    ACKNOWLEDGED = "acknowledged"    # pressed 1
    DECLINED = "declined"            # pressed 2
    OTHER_KEY = "other_key"          # pressed another key
    NO_KEY = "no_key"                # a person answered and pressed nothing
    NOT_ANSWERED = "not_answered"
    BUSY = "busy"
    FAILED = "failed"
    CANCELED = "canceled"
    MACHINE = "machine"              # an answering machine or a fax answered
    UNREADABLE = "unreadable"        # the execution cannot be read as the app's flow
    STUCK = "stuck"                  # the execution did not end within the time limit

    @property
    def out(self) -> bool:
        return self in _OUT


_OUT = frozenset({CallOutcome.NOT_ANSWERED, CallOutcome.BUSY, CallOutcome.FAILED, CallOutcome.CANCELED,
                  CallOutcome.MACHINE, CallOutcome.UNREADABLE, CallOutcome.STUCK})

_UNANSWERED = {
    "no-answer": (CallOutcome.NOT_ANSWERED, "the call was not answered"),
    "busy": (CallOutcome.BUSY, "the line was busy"),
    "failed": (CallOutcome.FAILED, "the call could not be placed (Twilio reported it failed)"),
    "canceled": (CallOutcome.CANCELED, "the call was canceled before it was answered"),
}
_ANSWERED = frozenset({"in-progress", "completed", "answered"})


@dataclass(frozen=True)
class CallReport:
    """Where one call stands.

    ``status`` is the call's (``ringing`` until it is answered or ends: placed, not answered yet;
    ``in-progress``, ``completed``, ``busy``, ``no-answer``, ``failed``, ``canceled``; ``unknown`` when
    it cannot be read). ``ended``: nothing more will change for the page (the outcome is known).
    ``outcome``: None while the call goes on. ``reason``: the outcome in words (for a ``call_failed``
    timeline event or a status message). ``code``: the page code the execution was started with.
    """

    execution_sid: str
    to: str
    status: str
    ended: bool = False
    outcome: CallOutcome | None = None
    answered_by: str | None = None
    digits: str | None = None
    call_sid: str | None = None
    reason: str | None = None
    execution_status: str | None = None
    code: str | None = None

    @property
    def acknowledged(self) -> bool:
        return self.outcome is CallOutcome.ACKNOWLEDGED

    @property
    def declined(self) -> bool:
        return self.outcome is CallOutcome.DECLINED

    @property
    def out(self) -> bool:
        """The person is out of the page (not answered, busy, failed, a machine, unreadable, stuck)."""
        return self.outcome is not None and self.outcome.out

    @classmethod
    def placed(cls, call: PlacedCall) -> CallReport:
        return cls(call.execution_sid, call.to, "ringing", code=call.code, execution_status="active")

    def as_result(self) -> dict[str, Any]:
        return {"execution_sid": self.execution_sid, "phone_number": self.to, "status": self.status,
                "ended": self.ended, "outcome": self.outcome.value if self.outcome else None,
                "answered_by": self.answered_by, "digits": self.digits, "call_sid": self.call_sid,
                "reason": self.reason}


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def read_context(call: PlacedCall, context: Any, *, execution_ended: bool) -> CallReport:
    """A call's report from its execution's context (``widgets.call``: CallStatus, AnsweredBy, CallSid;
    ``widgets.ask``: Digits) and whether the execution has ended. Never raises."""
    base = CallReport.placed(call)
    base = replace(base, execution_status="ended" if execution_ended else "active")
    widgets = context.get("widgets") if isinstance(context, dict) else None
    data = (context.get("flow") or {}).get("data") if isinstance(context, dict) else None
    if isinstance(data, dict) and _text(data.get("code")):
        base = replace(base, code=data["code"])
    widget = widgets.get(CALL_WIDGET) if isinstance(widgets, dict) else None
    if not isinstance(widget, dict):
        if not execution_ended:
            return base
        what = "no widgets" if not isinstance(widgets, dict) else f"no '{CALL_WIDGET}' widget"
        return replace(base, status="unknown", ended=True, outcome=CallOutcome.UNREADABLE,
                       reason=f"the call's Studio execution ended with {what} in its context: it is not a "
                              "flow the app can read")
    status = _text(widget.get("CallStatus"))
    answered_by = _text(widget.get("AnsweredBy"))
    base = replace(base, answered_by=answered_by, call_sid=_text(widget.get("CallSid")))
    if status in _UNANSWERED:
        outcome, why = _UNANSWERED[status]
        return replace(base, status=status, ended=True, outcome=outcome, reason=why)
    if status not in _ANSWERED:
        if not execution_ended:
            return base
        return replace(base, status="unknown", ended=True, outcome=CallOutcome.UNREADABLE,
                       reason=f"the call's Studio execution ended with an unexpected CallStatus {status!r}")
    answered = replace(base, status="completed" if execution_ended else "in-progress")
    if answered_by in MACHINE_ANSWERS:
        who = "a fax machine" if answered_by == "fax" else f"an answering machine ({answered_by})"
        return replace(answered, ended=True, outcome=CallOutcome.MACHINE, reason=f"{who} answered")
    gather = widgets.get(GATHER_WIDGET) if isinstance(widgets, dict) else None
    digits = _text(gather.get("Digits")) if isinstance(gather, dict) else None
    if digits == ACKNOWLEDGE_KEY:
        return replace(answered, digits=digits, ended=True, outcome=CallOutcome.ACKNOWLEDGED,
                       reason="pressed 1: acknowledged")
    if digits == DECLINE_KEY:
        return replace(answered, digits=digits, ended=True, outcome=CallOutcome.DECLINED,
                       reason="pressed 2: declined")
    if digits is not None:
        return replace(answered, digits=digits, ended=True, outcome=CallOutcome.OTHER_KEY,
                       reason=f"pressed {digits}, which is neither 1 (acknowledge) nor 2 (decline)")
    if execution_ended:
        return replace(answered, ended=True, outcome=CallOutcome.NO_KEY, reason="answered but pressed no key")
    return answered


# -- following calls -------------------------------------------------------------------------------
class CallWatch(Watch):
    """One caller's interest in some calls (more may be added with :meth:`track`).

    ``reports()`` gives every call's latest report at any moment; ``news()`` the reports that changed
    since the last ``news()``; ``wait(timeout)`` returns when there is unread news or a lasting failure
    (``error``): a caller that waits in a loop reads ``news()`` each time it wakes, else the next wait
    returns at once. ``changed``: a condition to share with another watch (a page waits on its replies
    and its calls at once).
    """

    def __init__(self, calls: Iterable[PlacedCall] = (), clock: Clock = SYSTEM_CLOCK,
                 time_limit: float = CALL_TIME_LIMIT, changed: threading.Condition | None = None) -> None:
        super().__init__(clock)
        if changed is not None:   # shared with another watch: one wait wakes for the news of either
            self.changed = changed
        self.time_limit = time_limit
        self._calls: dict[str, PlacedCall] = {}
        self._reports: dict[str, CallReport] = {}
        self._unread: list[str] = []
        self._add(calls)

    def _add(self, calls: Iterable[PlacedCall]) -> list[PlacedCall]:
        added = [c for c in calls if c.execution_sid not in self._calls]
        for call in added:
            self._calls[call.execution_sid] = call
            self._reports[call.execution_sid] = CallReport.placed(call)
        return added

    # -- read by the waiting call ------------------------------------------------------------
    @property
    def calls(self) -> list[PlacedCall]:
        with self.changed:
            return list(self._calls.values())

    def reports(self) -> dict[str, CallReport]:
        """The latest report of every call followed, by execution SID, in the order tracked."""
        with self.changed:
            return dict(self._reports)

    def news(self) -> list[CallReport]:
        """The reports that changed since the last call of ``news()``, in the order tracked."""
        with self.changed:
            unread, self._unread = self._unread, []
            return [self._reports[sid] for sid in self._calls if sid in unread]

    def pending(self) -> list[str]:
        with self.changed:
            return [sid for sid, report in self._reports.items() if not report.ended]

    def has_news(self) -> bool:
        return bool(self._unread)

    def track(self, calls: Iterable[PlacedCall]) -> None:
        """Follow more calls (the next look reads them)."""
        with self.changed:
            self._add(calls)

    # -- written by the watcher --------------------------------------------------------------
    def offer(self, reports: Iterable[CallReport]) -> None:
        with self.changed:
            for report in reports:
                sid = report.execution_sid
                if sid in self._reports and self._reports[sid] != report:
                    self._reports[sid] = report
                    if sid not in self._unread:
                        self._unread.append(sid)
            self.changed.notify_all()


@dataclass
class _Followed:
    """What the watcher keeps of one call between looks."""

    call: PlacedCall
    since: float                      # clock.now() when first followed
    time_limit: float
    report: CallReport
    listed_status: str | None = None
    listed_updated: Any = None
    read_updated: Any = field(default=None)
    read_look: int | None = None      # the look that last read the context
    fetched_look: int | None = None   # the look that last fetched the execution (not in the listing)
    failures: int = 0


class CallWatcher(SharedPoller[CallWatch]):
    """Follows every :class:`CallWatch` of one account and sender: per flow followed, one list of its
    executions per look, then a context fetch for each execution that ended or changed."""

    kind = KIND

    def __init__(self, settings: Any, key: tuple[Any, ...], **kwargs: Any) -> None:
        super().__init__(settings, key, **kwargs)
        self.followed: dict[str, _Followed] = {}
        self.fetches = 0          # context and execution fetches (diagnostics and benchmarks)
        self.look_count = 0

    def look(self, client: Any, watches: list[CallWatch], fresh: list[CallWatch], budget: PageBudget) -> None:
        now = self.clock.now()
        with self.lock:
            wanted: dict[str, tuple[PlacedCall, float]] = {}
            for watch in watches:
                for call in watch.calls:
                    wanted.setdefault(call.execution_sid, (call, watch.time_limit))
            for sid, (call, limit) in wanted.items():
                if sid not in self.followed:
                    self.followed[sid] = _Followed(call, now, limit, CallReport.placed(call))
            self.followed = {sid: f for sid, f in self.followed.items() if sid in wanted}
            pending = [f for f in self.followed.values() if not f.report.ended]
        self.look_count += 1
        by_flow: dict[str, list[_Followed]] = {}
        for entry in pending:
            by_flow.setdefault(entry.call.flow_sid, []).append(entry)
        failure: Exception | None = None
        for index, (flow_sid, entries) in enumerate(by_flow.items()):
            try:
                flow_budget = budget if index == 0 else self.listing_budget()
                listed = self._listing(client, flow_sid, entries, flow_budget)
            except Exception as exc:  # the others' flows are still read; the look then counts as failed
                failure = failure or exc
                continue
            for entry in entries:
                self._follow(client, entry, listed, now)
        with self.lock:
            reports = [f.report for f in self.followed.values()]
        for watch in watches:
            self.hand_out(watch, lambda w: w.offer(reports))
        if failure is not None:
            raise failure
        for watch in watches:
            watch.looked()

    def _listing(self, client: Any, flow_sid: str, entries: list[_Followed],
                 budget: PageBudget) -> dict[str, tuple[str, Any]]:
        """The followed executions of one flow as its list shows them: sid -> (status, date_updated)."""
        wanted = {e.call.execution_sid for e in entries}
        floor = min(e.call.started_at for e in entries) - FLOOR_MARGIN
        found: dict[str, tuple[str, Any]] = {}
        page = None
        while budget.take():
            self.requests += 1
            executions = client.studio.v2.flows(flow_sid).executions
            if page is None:
                page = executions.page(date_created_from=floor, page_size=PAGE_SIZE)
            else:
                page = page.next_page()
            for execution in page:
                if execution.sid in wanted:
                    found[execution.sid] = (str(execution.status), execution.date_updated)
            if len(found) == len(wanted) or not page.next_page_url:
                break
        return found

    def _follow(self, client: Any, entry: _Followed, listed: dict[str, tuple[str, Any]], now: float) -> None:
        """At most one request for one call: its context when it ended or changed; when the listing did not
        show it, its execution, and at the next look its context; or none."""
        sid = entry.call.execution_sid
        if sid in listed:
            entry.listed_status, entry.listed_updated = listed[sid]
        ended = entry.listed_status == "ended"
        if not ended and now - entry.since >= entry.time_limit:
            entry.report = replace(entry.report, ended=True, outcome=CallOutcome.STUCK,
                                   reason=f"the call's Studio execution had not ended after "
                                          f"{entry.time_limit:g} s; the app stopped following it")
            LOG.warning("Twilio: stopped following the call to %s (execution %s): %s", mask(entry.call.to),
                        sid, entry.report.reason)
            return
        fetched_last_look = entry.fetched_look == self.look_count - 1
        try:
            if sid not in listed and not (fetched_last_look and self._due(entry, ended)):
                self._fetch_execution(client, entry)
            elif self._due(entry, ended):
                self._read(client, entry, ended)
            else:
                return
        except Exception as exc:  # one call's failure ends that call's report when it lasts, not the look
            self._read_failed(entry, exc)
        else:
            entry.failures = 0

    def _due(self, entry: _Followed, ended: bool) -> bool:
        if entry.read_look is None or ended:
            return True
        stale = self.look_count - entry.read_look >= ACTIVE_REFRESH
        return entry.listed_updated != entry.read_updated or stale

    def _read(self, client: Any, entry: _Followed, ended: bool) -> None:
        call = entry.call
        self.fetches += 1
        execution = client.studio.v2.flows(call.flow_sid).executions(call.execution_sid)
        fetched = execution.execution_context().fetch()
        entry.read_look, entry.read_updated = self.look_count, entry.listed_updated
        report = read_context(call, fetched.context, execution_ended=ended)
        if report != entry.report and report.ended:
            LOG.info("Twilio: the call to %s ended: %s", mask(call.to), report.reason)
        entry.report = report

    def _fetch_execution(self, client: Any, entry: _Followed) -> None:
        from twilio.base.exceptions import TwilioRestException

        call = entry.call
        self.fetches += 1
        try:
            execution = client.studio.v2.flows(call.flow_sid).executions(call.execution_sid).fetch()
        except TwilioRestException as exc:
            if exc.status != 404:
                raise
            entry.report = replace(entry.report, status="unknown", ended=True, outcome=CallOutcome.UNREADABLE,
                                   reason="the call's Studio execution no longer exists on the account "
                                          "(it was deleted)")
            return
        entry.listed_status, entry.listed_updated = str(execution.status), execution.date_updated
        entry.fetched_look = self.look_count

    def _read_failed(self, entry: _Followed, exc: Exception) -> None:
        failure = classify(exc, action=Action.READ, timeout=self.settings.timeout)
        entry.failures += 1
        LOG.warning("Twilio: reading the call to %s failed (%s, attempt %s): %s", mask(entry.call.to),
                    failure.kind.value, entry.failures, mask_numbers(failure.message))
        if failure.retry is Retry.NEVER or entry.failures >= MAX_READ_FAILURES:
            entry.report = replace(entry.report, status="unknown", ended=True, outcome=CallOutcome.UNREADABLE,
                                   reason=f"the call's Studio execution could not be read: {failure.message}")


def watch_calls(settings: Any, calls: Iterable[PlacedCall] = (), *,
                client_factory: ClientFactory = build_client, clock: Clock = SYSTEM_CLOCK,
                time_limit: float = CALL_TIME_LIMIT, changed: threading.Condition | None = None) -> CallWatch:
    """Follow ``calls`` (and more with ``watch.track``) with the shared watcher of ``settings``'
    account and sender; close the watch after. The first look of a new watcher is at once; a watcher
    already running covers the watch at its next interval (the cost stays 1 + K per interval).
    ``changed``: the condition of another watch to share (see :class:`CallWatch`)."""
    watch = CallWatch(calls, clock, time_limit, changed)
    register(CallWatcher, settings, watch, fresh=False, client_factory=client_factory, clock=clock)
    return watch


def wait_for_calls(settings: Any, calls: Sequence[PlacedCall], deadline: float, *,
                   is_terminated: Callable[[], str | None] = lambda: None, clock: Clock = SYSTEM_CLOCK,
                   client_factory: ClientFactory = build_client,
                   time_limit: float = CALL_TIME_LIMIT) -> tuple[list[CallReport], Failure | None]:
    """Wait until every call has ended (its outcome known), a look fails for good, ``is_terminated()``
    gives a reason or ``clock.now()`` reaches ``deadline``; the calls' reports in order, and the lasting
    failure if there was one."""
    with watch_calls(settings, calls, client_factory=client_factory, clock=clock,
                     time_limit=time_limit) as watch:
        def done() -> bool:
            watch.news()   # read: the next wait blocks until something else changes
            return not watch.pending()

        wait_on(watch, settings, deadline, is_terminated=is_terminated, clock=clock, done=done)
        reports, failure = watch.reports(), watch.error
    return [reports[c.execution_sid] for c in calls], failure


# -- after a crash: the calls an interrupted page placed ----------------------------------------------
RESUME_PAGE_SIZE = 50     # executions per page when a redelivered page looks for its first run's calls
RESUME_MAX_PAGES = 5      # pages of the flow's executions read at most (the rest: not called again)


@dataclass(frozen=True)
class FirstRunCalls:
    """What a redelivered page's interrupted run did by voice: ``found`` (number -> the call it placed)
    and ``unverified`` (number -> why it cannot be told: such a person is not called again)."""

    found: dict[str, PlacedCall] = field(default_factory=dict)
    unverified: dict[str, str] = field(default_factory=dict)


def _parameters(context: Any) -> dict[str, Any]:
    flow = context.get("flow") if isinstance(context, dict) else None
    data = flow.get("data") if isinstance(flow, dict) else None
    return data if isinstance(data, dict) else {}


def first_run_calls(client: Any, flow: FlowRef, numbers: Iterable[str], text: str, delivery: Delivery, *,
                    code: str | None = None, timeout: float | None = None, skew: timedelta = SKEW,
                    page_size: int = RESUME_PAGE_SIZE, max_pages: int = RESUME_MAX_PAGES) -> FirstRunCalls:
    """For a redelivered page (contract §13.3): the calls its interrupted run placed to ``numbers``, the
    rule texts follow (``reconcile``): executions of ``flow`` created since the original timestamp less
    ``skew``, to that number (``contact_channel_address``), whose parameters carry the page's ``text``
    (and ``code`` when given); the newest such call of a number. One listing (at most ``max_pages``
    pages) and one context read per execution to those numbers. A number whose part cannot be read (the
    listing failed or was too long, a context could not be read) is ``unverified``: never called again.
    Empty for a first delivery."""
    wanted = list(dict.fromkeys(numbers))
    if not delivery.redelivered or not wanted:
        return FirstRunCalls()
    if delivery.original is None:
        return FirstRunCalls(unverified={n: "the redelivered message carries no original timestamp"
                                         for n in wanted})
    said = text.strip()
    since = delivery.original - skew
    candidates: dict[str, list[Any]] = {n: [] for n in wanted}
    try:
        executions = client.studio.v2.flows(flow.sid).executions
        page = executions.page(date_created_from=since, page_size=page_size)
        pages = 1
        while True:
            for execution in page:
                to = getattr(execution, "contact_channel_address", None)
                if isinstance(to, str) and to in candidates:
                    candidates[to].append(execution)
            if not page.next_page_url:
                break
            if pages >= max_pages:
                why = (f"the page call flow's executions since the first delivery are more than {max_pages} "
                       f"pages of {page_size}")
                return FirstRunCalls(unverified={n: why for n in wanted})
            page, pages = page.next_page(), pages + 1
    except Exception as exc:  # any failure to read leaves every number unverified: nobody called twice
        failure = classify(exc, action=Action.READ, timeout=timeout)
        why = f"the page call flow's executions could not be read ({failure.message})"
        return FirstRunCalls(unverified={n: why for n in wanted})
    found: dict[str, PlacedCall] = {}
    unverified: dict[str, str] = {}
    for number, listed in candidates.items():
        newest_first = sorted(listed, key=lambda e: utc_date(e.date_created) or since, reverse=True)
        for execution in newest_first:
            try:
                context = executions(execution.sid).execution_context().fetch().context
            except Exception as exc:  # this one cannot be told apart: the person is not called again
                failure = classify(exc, action=Action.READ, timeout=timeout)
                unverified[number] = f"the call's Studio execution could not be read ({failure.message})"
                break
            data = _parameters(context)
            if str(data.get("text") or "").strip() != said or (code is not None and data.get("code") != code):
                continue   # another page's call to the same person
            started = utc_date(execution.date_created) or delivery.original
            found[number] = PlacedCall(flow.sid, execution.sid, number, started,
                                       data.get("code") if isinstance(data.get("code"), str) else code)
            break
    return FirstRunCalls(found=found, unverified=unverified)


def first_run_call_code(settings: Any, flow: FlowRef, numbers: Iterable[str], text: str,
                        delivery: Delivery, *, client_factory: ClientFactory = build_client) -> str | None:
    """For a redelivered page with a random code that texted nobody: the code its interrupted run's calls
    carried (the oldest such call), or None when it called nobody. :class:`VoiceError` when the flow's
    executions cannot be read (a new code could then call everyone a second time)."""
    if not delivery.redelivered:
        return None
    with client_session(settings, factory=client_factory) as client:
        calls = first_run_calls(client, flow, numbers, text, delivery, timeout=settings.timeout)
    if calls.unverified:
        raise VoiceError(next(iter(calls.unverified.values())))
    placed = sorted((c for c in calls.found.values() if c.code), key=lambda c: c.started_at)
    return placed[0].code if placed else None

