"""HTTP side of the Twilio emulator: the server, the request log, fault injection, the control API."""
from __future__ import annotations

import base64
import binascii
import json
import re
import socket
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from http.server import BaseHTTPRequestHandler
from urllib.parse import parse_qs, urlencode, urlsplit

from .._http import TrackingHTTPServer
from . import model
from . import voice as voice_model
from .model import (ACCOUNT_SID, API_KEY_SECRET, API_KEY_SID, AUTH_TOKEN, MESSAGING_SERVICE_SID,
                    SENDER, DateFilter, DeliveryOutcome, DeliverySchedule, PairRateLimit, Store, TwilioError,
                    error_body, new_sid, parse_filter_date)
from .voice import STUDIO_HOST, CallScript, VoiceStore, script_from_dict

TWILIOS_PAIR_LIMIT = PairRateLimit()     # 30 texts in 30 s, then 30 s of 14107 (Twilio's figures)
FAULT_KINDS = ("status", "html", "garbage", "empty", "delay", "drop", "commit_then_drop",
               "commit_then_status")
JSON_TYPE = "application/json; charset=utf-8"


@dataclass
class RequestRecord:
    """One Twilio API request as the emulator saw it (control-API requests are not logged).

    ``query`` maps each query parameter to the list of its values (``query_string`` is the raw text);
    ``form`` maps each form field to its value, or to a list when the field was repeated (MediaUrl);
    ``body`` is the raw request body and ``content_type`` its Content-Type; ``status`` is the HTTP
    status sent, None when the connection was dropped; ``started``/``finished`` are time.monotonic()
    values (``finished`` None while in flight); ``fault`` is the injected fault kind, or None."""
    id: int
    method: str
    path: str
    query: dict
    query_string: str
    form: dict
    headers: dict
    body: bytes
    content_type: str | None
    started: float
    finished: float | None = None
    status: int | None = None
    fault: str | None = None
    response_body: bytes | None = None
    response_headers: dict = field(default_factory=dict)
    auth_user: str | None = None

    @property
    def url(self) -> str:
        """Path plus query string, as requested."""
        return self.path + ("?" + self.query_string if self.query_string else "")

    @property
    def duration(self) -> float | None:
        return None if self.finished is None else self.finished - self.started

    def header(self, name: str, default=None):
        """A request header, case-insensitively."""
        for k, v in self.headers.items():
            if k.lower() == name.lower():
                return v
        return default

    def json(self) -> dict | None:
        """The response body parsed as JSON, or None."""
        try:
            return json.loads(self.response_body or b"")
        except ValueError:
            return None

    def to_dict(self) -> dict:
        d = asdict(self)
        d["body"] = self.body.decode("utf-8", "replace")
        response = self.response_body
        d["response_body"] = None if response is None else response.decode("utf-8", "replace")
        return d


@dataclass
class Fault:
    id: int
    kind: str
    method: str | None = "POST"
    path_contains: str | None = "/Messages.json"
    times: int | None = 1
    status: int | None = None
    code: int | None = None
    retry_after: float | None = None
    delay: float | None = None
    match_to: str | None = None
    hits: int = 0

    def matches(self, method: str, path: str, form: dict) -> bool:
        if self.times is not None and self.hits >= self.times:
            return False
        if self.method and self.method.upper() != method.upper():
            return False
        if self.path_contains and self.path_contains not in path:
            return False
        if self.match_to is not None:
            to = form.get("To")
            if (to[-1] if isinstance(to, list) else to) != self.match_to:
                return False
        return True


def _form_dict(raw: bytes, content_type: str | None) -> dict:
    if not raw or "x-www-form-urlencoded" not in (content_type or "x-www-form-urlencoded"):
        return {}
    parsed = parse_qs(raw.decode("utf-8", "replace"), keep_blank_values=True)
    return {k: v[0] if len(v) == 1 else v for k, v in parsed.items()}


def _json_default(o):
    if isinstance(o, bytes):
        return o.decode("utf-8", "replace")
    if isinstance(o, datetime):
        return o.isoformat()
    raise TypeError(type(o))


class _HTTPServer(TrackingHTTPServer):
    request_queue_size = 512

    def __init__(self, address, emulator):
        self.emulator = emulator
        super().__init__(address, _Handler)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "TwilioEmulator/1.0"
    sys_version = ""

    def setup(self):
        super().setup()
        try:  # answers go out in one write; no Nagle / delayed-ACK stalls on keep-alive connections
            self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except OSError:
            pass
        self._tracking = self.server.tracked(self.connection)
        self._tracking.__enter__()

    def finish(self):
        try:
            super().finish()
        finally:
            self._tracking.__exit__(None, None, None)

    def log_message(self, format, *args):  # noqa: A002 - quiet
        pass

    def do_GET(self):
        self._dispatch()

    do_POST = do_DELETE = do_PUT = do_PATCH = do_HEAD = do_GET

    # --- plumbing -----------------------------------------------------------------------

    def _read_body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length > 0 else b""

    def _send(self, status: int, body: bytes, content_type: str | None = JSON_TYPE,
              headers: dict | None = None) -> dict:
        sent = {}
        try:
            self.send_response(status)
            if content_type:
                self.send_header("Content-Type", content_type)
                sent["Content-Type"] = content_type
            for k, v in (headers or {}).items():
                self.send_header(k, str(v))
                sent[k] = str(v)
            self.send_header("Content-Length", str(len(body)))
            self._headers_buffer.append(b"\r\n")
            if self.command != "HEAD":
                self._headers_buffer.append(body)
            self.flush_headers()
        except (BrokenPipeError, ConnectionResetError, socket.timeout, OSError):
            self.close_connection = True
        return sent

    def _drop(self):
        self.close_connection = True
        try:
            self.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    def _dispatch(self):
        emu = self.server.emulator
        split = urlsplit(self.path)
        path, qs = split.path, split.query
        raw = self._read_body()
        if path.startswith("/_emulator"):
            self._control(path, qs, raw)
            return
        ctype = self.headers.get("Content-Type")
        form = _form_dict(raw, ctype) if self.command in ("POST", "PUT", "PATCH") else {}
        record = emu._begin(self.command, path, qs, form, dict(self.headers.items()), raw, ctype)
        try:
            self._api(emu, record, path, qs, form)
        except Exception:  # an emulator bug: answer 500 (and say so on stderr) rather than drop the socket
            traceback.print_exc()
            if record.status is None and not self.close_connection:
                body = json.dumps(error_body(500, 20500, "Twilio emulator internal error")).encode()
                self._respond(record, 500, body, JSON_TYPE, {})
        finally:
            emu._end(record)

    def _api(self, emu, record: RequestRecord, path: str, qs: str, form: dict):
        latency = emu.latency
        if latency and latency > 0:
            time.sleep(latency)
        fault = emu._take_fault(self.command, path, form)
        request_id = "RQ" + new_sid("")
        headers = {"Twilio-Request-Id": request_id, "Twilio-Concurrent-Requests": str(emu._in_flight)}
        if fault is not None:
            record.fault = fault.kind
            if fault.kind == "drop":
                record.finished = time.monotonic()
                self._drop()
                return
            if fault.kind == "delay":
                time.sleep(fault.delay or 0)
            elif fault.kind == "status":
                status = fault.status or 500
                code = fault.code or model.HTTP_DEFAULT_CODES.get(status, status)
                message = model.CODE_MESSAGES.get(code) or model.HTTP_MESSAGES.get(status, "Error")
                body = error_body(status, code, message)
                if fault.retry_after is not None:
                    ra = fault.retry_after
                    headers["Retry-After"] = str(int(ra) if float(ra).is_integer() else ra)
                self._respond(record, status, json.dumps(body).encode(), JSON_TYPE, headers)
                return
            elif fault.kind == "html":
                status = fault.status or 502
                title = f"{status} {model.HTTP_MESSAGES.get(status, 'Error')}"
                text = f"<html><head><title>{title}</title></head><body><h1>{title}</h1></body></html>"
                self._respond(record, status, text.encode(), "text/html; charset=utf-8", headers)
                return
            elif fault.kind == "garbage":
                creating = self.command == "POST" and path.endswith(_CREATE_PATHS)
                status = fault.status or (201 if creating else 200)
                self._respond(record, status, b"<<<not json>>> \x00\xff", JSON_TYPE, headers)
                return
            elif fault.kind == "empty":
                self._respond(record, fault.status or 200, b"", JSON_TYPE, headers)
                return
        started = time.monotonic()
        try:
            status, payload = emu._handle_api(self.command, path, qs, form, record)
            extra = {}
        except TwilioError as e:
            status, payload, extra = e.status, e.body(), e.headers
        headers.update(extra)
        headers["Twilio-Request-Duration"] = f"{time.monotonic() - started:.3f}"
        body = b"" if status == 204 else json.dumps(payload).encode("utf-8")
        if fault is not None and fault.kind == "commit_then_drop":
            record.response_body = body
            record.finished = time.monotonic()
            self._drop()
            return
        if fault is not None and fault.kind == "commit_then_status":   # made it, then answered an error
            status = fault.status or 500
            code = fault.code or model.HTTP_DEFAULT_CODES.get(status, status)
            message = model.CODE_MESSAGES.get(code) or model.HTTP_MESSAGES.get(status, "Error")
            self._respond(record, status, json.dumps(error_body(status, code, message)).encode(), JSON_TYPE,
                          headers)
            return
        self._respond(record, status, body, JSON_TYPE if status != 204 else None, headers)

    def _respond(self, record, status, body, ctype, headers):
        # Complete the record before a byte goes out: the client may look at it as soon as it has the answer.
        record.status = status
        record.response_body = body
        record.response_headers = (({"Content-Type": ctype} if ctype else {})
                                   | {k: str(v) for k, v in headers.items()})
        record.finished = time.monotonic()
        self._send(status, body, ctype, headers)

    # --- control API --------------------------------------------------------------------

    def _control(self, path: str, qs: str, raw: bytes):
        emu = self.server.emulator
        try:
            payload = json.loads(raw) if raw.strip() else {}
            if not isinstance(payload, dict):
                raise ValueError("the body must be a JSON object")
            status, result = emu._control(self.command, path, payload, parse_qs(qs))
        except (ValueError, TypeError, KeyError) as e:
            status, result = 400, {"error": f"{type(e).__name__}: {e}"}
        except TwilioError as e:
            status, result = e.status, e.body()
        body = json.dumps(result, default=_json_default).encode("utf-8")
        self._send(status, body, JSON_TYPE)


# ------------------------------------------------------------------------------------------


def _one(query: dict, name: str) -> str | None:
    v = query.get(name)
    return v[-1] if v else None


def _int_param(query: dict, name: str, default: int, lo: int, hi: int | None) -> int:
    raw = _one(query, name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        value = None
    if value is None or value < lo or (hi is not None and value > hi):
        limit = f"between {lo} and {hi}" if hi is not None else f"at least {lo}"
        raise TwilioError(400, 20001, f"Invalid {name}: {raw!r}; it must be an integer {limit}.")
    return value


def _parse_dt(value) -> datetime | None:
    if value in (None, ""):
        return None
    if isinstance(value, (int, float)):
        return datetime.fromtimestamp(value, model.UTC)
    return parse_filter_date(str(value))[0]


_ACCOUNT_PATH = re.compile(r"^/2010-04-01/Accounts/(?P<sid>[^/]+?)(?P<rest>\.json|/.*)$")
# Studio v2 (studio.twilio.com): Flows, their Executions, an Execution's Context and Steps
_STUDIO_PATH = re.compile(r"^/v2/Flows(?:/(?P<flow>[^/]+)(?:/Executions(?:/(?P<execution>[^/]+)"
                          r"(?:/(?P<sub>Context|Steps)(?:/(?P<step>[^/]+))?)?)?|/(?P<other>[^/]+))?)?$")
# the creates whose success answer is 201 (a "garbage" fault on them answers 201 too)
_CREATE_PATHS = ("/Messages.json", "/Calls.json", "/Executions", "/v2/Flows")
# Messaging API (messaging.twilio.com): fetch a Messaging Service, as the app's selftest does
_SERVICE_PATH = re.compile(r"^/v1/Services/(?P<sid>[^/]+)$")


class TwilioEmulator:
    """A stateful, thread-safe Twilio REST API emulator (see the package docstring)."""

    def __init__(self, account_sid: str = ACCOUNT_SID, auth_token: str = AUTH_TOKEN,
                 api_keys: dict | None = None, numbers=(SENDER,), messaging_services: dict | None = None,
                 latency: float = 0.0, host: str = "127.0.0.1", port: int = 0,
                 delivery_schedule: DeliverySchedule | None = None,
                 clock: Callable[[], datetime] | None = None,
                 pair_limit: PairRateLimit | None = TWILIOS_PAIR_LIMIT):
        if api_keys is None:
            api_keys = {API_KEY_SID: API_KEY_SECRET}
        if messaging_services is None:
            messaging_services = {MESSAGING_SERVICE_SID: (SENDER,)}
        self._initial = (list(numbers), float(latency), delivery_schedule, pair_limit)
        self.store = Store(account_sid=account_sid, auth_token=auth_token, api_keys=dict(api_keys),
                           numbers=list(numbers), messaging_services=dict(messaging_services),
                           clock=clock or model.now_utc, schedule=delivery_schedule, pair_limit=pair_limit)
        self.voice = VoiceStore(self.store)
        self.latency = float(latency)
        self.host, self.port = host, port
        self._lock = threading.Lock()
        self._faults: list[Fault] = []
        self._requests: list[RequestRecord] = []
        self._ids = 0
        self._in_flight = 0
        self._server: _HTTPServer | None = None
        self._thread: threading.Thread | None = None

    # --- lifecycle ----------------------------------------------------------------------

    @property
    def account_sid(self) -> str:
        return self.store.account_sid

    @property
    def auth_token(self) -> str:
        return self.store.auth_token

    @property
    def base_url(self) -> str:
        if self._server is None:
            raise RuntimeError("the emulator is not started")
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> TwilioEmulator:
        if self._server is not None:
            return self
        self._server = _HTTPServer((self.host, self.port), self)
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                                        name="twilio-emulator", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        server, self._server = self._server, None
        if server is None:
            return
        server.shutdown()
        server.server_close()
        server.close_open_sockets()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> TwilioEmulator:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def reset(self) -> None:
        """Back to the constructor's state: no messages, calls, flows, executions, call scripts, faults,
        requests, opt-outs, delivery outcomes, geo blocks, landlines or voice-less numbers, no pair
        counted by the 14107 guard; numbers, latency, delivery schedule and pair limit as given to the
        constructor."""
        with self._lock:
            self._faults.clear()
            self._requests.clear()
        self.store.reset()
        self.voice.reset()
        with self.store.lock:
            numbers, latency, schedule, pair_limit = self._initial
            self.store.schedule = schedule
            self.store.pair_limit = pair_limit
            self.store.numbers = list(numbers)
            for pool in self.store.messaging_services.values():
                for n in pool:
                    if n not in self.store.numbers:
                        self.store.numbers.append(n)
        self.latency = latency

    # --- state controls -----------------------------------------------------------------

    @property
    def messages(self) -> list[dict]:
        """Copies of every stored message (JSON shape), oldest created first."""
        return self.store.all_messages()

    def message(self, sid: str) -> dict:
        """A copy of one stored message; KeyError when unknown."""
        try:
            return self.store.get(sid)
        except TwilioError:
            raise KeyError(sid) from None

    def find_messages(self, *, direction: str | None = None, to: str | None = None,
                      from_: str | None = None) -> list[dict]:
        """Copies of the stored messages with that direction, to and from (None: any), oldest first."""
        return [m for m in self.messages if (direction is None or m["direction"] == direction)
                and (to is None or m["to"] == to) and (from_ is None or m["from"] == from_)]

    def outbound_messages(self, to: str | None = None, from_: str | None = None) -> list[dict]:
        """Copies of the messages sent through the API (direction ``outbound-api``), oldest first."""
        return self.find_messages(direction="outbound-api", to=to, from_=from_)

    # --- delivery -----------------------------------------------------------------------

    @property
    def delivery_schedule(self) -> DeliverySchedule | None:
        """How outbound messages move on their own (``DeliverySchedule``), or None (the default):
        then they stay ``queued`` (``accepted`` with a Messaging Service) until ``set_status`` or
        ``advance_statuses`` moves them. A change applies to messages created afterwards."""
        return self.store.schedule

    @delivery_schedule.setter
    def delivery_schedule(self, schedule: DeliverySchedule | None) -> None:
        if schedule is not None and not isinstance(schedule, DeliverySchedule):
            raise TypeError("delivery_schedule is a DeliverySchedule or None")
        self.store.set_delivery_schedule(schedule)

    def deliver_after(self, sent_after: float = 0.0, delivered_after: float = 0.0) -> None:
        """Turn the delivery schedule on: sent ``sent_after`` s after creation, the receipt
        ``delivered_after`` s after that."""
        self.delivery_schedule = DeliverySchedule(sent_after, delivered_after)

    def set_delivery_outcome(self, recipient: str, status: str, error_code: int | None = None,
                             error_message: str | None = None) -> None:
        """How messages to ``recipient`` end, by the schedule or ``advance_statuses``: ``delivered``
        (the default), ``undelivered`` or ``failed`` with ``error_code`` (30003, ...), or ``sent``
        (no receipt). Messages already final are not changed. ValueError for a bad outcome."""
        self.store.set_delivery_outcome(recipient, DeliveryOutcome(status, error_code, error_message))

    @property
    def pair_limit(self) -> PairRateLimit | None:
        """Twilio's loop guard between two numbers (error 14107): ``PairRateLimit(limit=30, window=30,
        block=30)`` by default, as Twilio does; None turns it off. A change applies from the next text
        and forgets what was counted."""
        return self.store.pair_limit

    @pair_limit.setter
    def pair_limit(self, limit: PairRateLimit | None) -> None:
        if limit is not None and not isinstance(limit, PairRateLimit):
            raise TypeError("pair_limit is a PairRateLimit or None")
        self.store.set_pair_limit(limit)

    def limit_pairs(self, limit: int = 30, window: float = 30.0, block: float = 30.0) -> None:
        """Fail a text beyond ``limit`` between two numbers within ``window`` s, and every further one
        between them for ``block`` s, with error 14107 (accepted first, then ``failed``)."""
        self.pair_limit = PairRateLimit(limit, window, block)

    @property
    def delivery_outcomes(self) -> dict[str, DeliveryOutcome]:
        """The outcomes set, by recipient number."""
        with self.store.lock:
            return dict(self.store.outcomes)

    def inject_inbound(self, from_: str, to: str = SENDER, body: str = "ACK",
                       date_sent: datetime | None = None) -> dict:
        """Store a reply (direction inbound, status received). STOP words opt `from_` out of
        messages from `to`; START words opt back in."""
        return self.store.inject_inbound(from_, to, body, date_sent)

    def seed_history(self, count: int, *, from_: str = SENDER, to: str = "+353861234567",
                     direction: str = "outbound-api", start: datetime | None = None,
                     step: timedelta = timedelta(seconds=1), body: str = "History message {i}") -> list[str]:
        """Bulk-insert `count` finished messages dated start, start+step, … (default: ending just
        before now). Returns their SIDs."""
        return self.store.seed_history(count, from_=from_, to=to, direction=direction, start=start,
                                       step=step, body=body)

    def set_status(self, sid: str, status: str, error_code: int | None = None,
                   error_message: str | None = None) -> dict:
        """Put a message in `status` (e.g. "undelivered", 30007). KeyError for an unknown SID."""
        try:
            return self.store.set_status(sid, status, error_code, error_message)
        except TwilioError:
            raise KeyError(sid) from None

    def advance_statuses(self, steps: int | None = None) -> int:
        """Move every outbound message along accepted→queued→sending→sent→delivered, `steps` steps
        (None: all the way to delivered). A Messaging Service message gets its sender (`from`) and
        its num_segments when it leaves `accepted`. Returns how many messages changed."""
        return self.store.advance_statuses(steps)

    def add_number(self, e164: str) -> None:
        self.store.add_number(e164)

    def opt_out(self, sender: str, recipient: str) -> None:
        self.store.opt_out(sender, recipient)

    def opt_in(self, sender: str, recipient: str) -> None:
        self.store.opt_in(sender, recipient)

    def disable_geo(self, country_calling_code) -> None:
        self.store.disable_geo(country_calling_code)

    def enable_geo(self, country_calling_code) -> None:
        self.store.enable_geo(country_calling_code)

    def add_landline(self, e164: str) -> None:
        self.store.add_landline(e164)

    # --- voice: calls and Studio ---------------------------------------------------------

    def script_calls(self, number: str, action: str = "answer", *, press: str | None = None,
                     ring: float = 0.2, press_after: float = 0.2, queue: float = 0.0) -> None:
        """What ``number`` does when called from now on: ``action`` is ``answer`` (a person; ``press``
        the keys pressed ``press_after`` s after the prompt starts, None for none), ``machine``,
        ``fax``, ``no-answer``, ``busy`` or ``fail``; ``ring`` s of ringing first (after ``queue`` s
        queued). The default for every number: answer, press nothing. ValueError for a bad script."""
        self.voice.script_calls(number, CallScript(action, press, ring, press_after, queue))

    def clear_call_scripts(self) -> None:
        """Every number back to the default script (answer, press nothing)."""
        with self.store.lock:
            self.voice.scripts.clear()

    @property
    def call_scripts(self) -> dict[str, CallScript]:
        """The scripts set, by number."""
        with self.store.lock:
            return dict(self.voice.scripts)

    @property
    def calls(self) -> list[dict]:
        """Copies of every call (JSON shape, as it stands now), oldest first."""
        return self.voice.all_calls()

    def find_calls(self, *, to: str | None = None, from_: str | None = None) -> list[dict]:
        return [c for c in self.calls
                if (to is None or c["to"] == to) and (from_ is None or c["from"] == from_)]

    def call(self, sid: str) -> dict:
        """A copy of one call; KeyError when unknown."""
        try:
            return self.voice.get_call(sid)
        except TwilioError:
            raise KeyError(sid) from None

    @property
    def flows(self) -> list[dict]:
        """Copies of every Studio Flow (with its definition)."""
        return self.voice.all_flows()

    @property
    def executions(self) -> list[dict]:
        """Every Studio Execution as it stands now, oldest first: its JSON plus ``context``, ``said``
        (what its call said, rendered) and ``call_sid``."""
        return self.voice.all_executions()

    def set_voice_capable(self, number: str, voice: bool) -> None:
        """Whether ``number`` (of the account) can place calls, as IncomingPhoneNumbers reports it
        (``capabilities.voice``; True by default). A call from a voice-less number fails with 21210."""
        self.store.set_voice_capable(number, voice)

    # --- faults and the request log -----------------------------------------------------

    def inject_fault(self, kind: str, *, method: str | None = "POST",
                     path_contains: str | None = "/Messages.json", times: int | None = 1,
                     status: int | None = None, code: int | None = None,
                     retry_after: float | None = None, delay: float | None = None,
                     match_to: str | None = None) -> int:
        """Make the next `times` matching API requests fail in the way `kind` says. Returns the fault id."""
        if kind not in FAULT_KINDS:
            raise ValueError(f"unknown fault kind {kind!r}; expected one of {', '.join(FAULT_KINDS)}")
        if kind == "delay" and delay is None:
            raise ValueError("a 'delay' fault needs delay=<seconds>")
        with self._lock:
            self._ids += 1
            self._faults.append(Fault(self._ids, kind, method, path_contains, times, status, code,
                                      retry_after, delay, match_to))
            return self._ids

    def clear_faults(self) -> None:
        with self._lock:
            self._faults.clear()

    @property
    def faults(self) -> list[Fault]:
        with self._lock:
            return [Fault(**asdict(f)) for f in self._faults]

    @property
    def requests(self) -> list[RequestRecord]:
        """Every Twilio API request so far (a new list; the records themselves are live)."""
        with self._lock:
            return list(self._requests)

    def clear_requests(self) -> None:
        with self._lock:
            self._requests.clear()

    def _take_fault(self, method: str, path: str, form: dict) -> Fault | None:
        with self._lock:
            for f in self._faults:
                if f.matches(method, path, form):
                    f.hits += 1
                    if f.times is not None and f.hits >= f.times:
                        self._faults.remove(f)
                    return f
        return None

    def _begin(self, method, path, qs, form, headers, raw, ctype) -> RequestRecord:
        with self._lock:
            self._ids += 1
            self._in_flight += 1
            rec = RequestRecord(self._ids, method, path, parse_qs(qs, keep_blank_values=True), qs, form,
                                headers, raw, ctype, time.monotonic())
            self._requests.append(rec)
            return rec

    def _end(self, record: RequestRecord) -> None:
        with self._lock:
            self._in_flight -= 1
            if record.finished is None:
                record.finished = time.monotonic()

    # --- the Twilio API -----------------------------------------------------------------

    def _authenticate(self, path_sid: str, record: RequestRecord) -> None:
        header = record.header("Authorization") or ""
        user = password = None
        if header[:6].lower() == "basic ":
            try:
                user, _, password = base64.b64decode(header[6:].strip()).decode("utf-8").partition(":")
            except (binascii.Error, UnicodeDecodeError):
                user = None
        record.auth_user = user
        store = self.store
        ok = (user == store.account_sid and password == store.auth_token) or \
             (user in store.api_keys and store.api_keys[user] == password)
        if not ok or path_sid != store.account_sid:
            raise TwilioError(401, 20003, "Authenticate", {"WWW-Authenticate": 'Basic realm="Twilio API"'})

    def _service_resource(self, sid: str, path: str) -> dict:
        store = self.store
        if sid not in store.messaging_services:
            raise self._not_found(path)
        return {"sid": sid, "account_sid": store.account_sid, "friendly_name": "Emulator Messaging Service",
                "url": f"https://messaging.twilio.com/v1/Services/{sid}",
                "links": {"phone_numbers": f"https://messaging.twilio.com/v1/Services/{sid}/PhoneNumbers"}}

    def _not_found(self, path: str) -> TwilioError:
        return TwilioError(404, 20404, f"The requested resource {path} was not found")

    def _handle_api(self, method: str, path: str, qs: str, form: dict, record: RequestRecord):
        studio = _STUDIO_PATH.match(path)
        if studio:
            self._authenticate(self.store.account_sid, record)
            return self._studio(method, path, studio, parse_qs(qs, keep_blank_values=True), form)
        service = _SERVICE_PATH.match(path)
        if service and method in ("GET", "HEAD"):
            self._authenticate(self.store.account_sid, record)
            return 200, self._service_resource(service.group("sid"), path)
        m = _ACCOUNT_PATH.match(path)
        if not m:
            raise self._not_found(path)
        self._authenticate(m.group("sid"), record)
        rest = m.group("rest")
        query = parse_qs(qs, keep_blank_values=True)
        store = self.store
        if rest == ".json":
            if method in ("GET", "HEAD"):
                return 200, store.account_resource()
        elif rest == "/Messages.json":
            if method == "POST":
                return 201, store.create_message(form)
            if method in ("GET", "HEAD"):
                return 200, self._list_messages(path, query)
        elif rest == "/Calls.json":
            if method == "POST":
                return 201, self.voice.create_call(form)
            if method in ("GET", "HEAD"):
                return 200, self._list_calls(path, query)
        elif re.fullmatch(r"/Calls/[^/]+\.json", rest):
            sid = rest[len("/Calls/"):-len(".json")]
            if method in ("GET", "HEAD"):
                return 200, self.voice.get_call(sid)
            if method == "POST":
                return 200, self.voice.update_call(sid, form)
            if method == "DELETE":
                self.voice.delete_call(sid)
                return 204, None
        elif rest == "/IncomingPhoneNumbers.json":
            if method in ("GET", "HEAD"):
                return 200, self._list_numbers(path, query)
        elif re.fullmatch(r"/Messages/[^/]+\.json", rest):
            sid = rest[len("/Messages/"):-len(".json")]
            if method in ("GET", "HEAD"):
                return 200, store.get(sid)
            if method == "POST":
                return 200, store.update(sid, form)
            if method == "DELETE":
                store.delete(sid)
                return 204, None
        else:
            raise self._not_found(path)
        raise TwilioError(405, 20004, "Method not allowed")

    @staticmethod
    def _envelope(path: str, key: str, records: list, filters: list, page_size: int, page: int,
                  token: str | None, next_token: str | None, prev_token: str | None,
                  has_next_offset: bool = False) -> dict:
        def uri(p, t):
            params = list(filters) + [("PageSize", page_size), ("Page", p)]
            if t:
                params.append(("PageToken", t))
            return path + "?" + urlencode(params)

        start = page * page_size
        if next_token:
            next_uri = uri(page + 1, next_token)
        elif has_next_offset:
            next_uri = uri(page + 1, None)
        else:
            next_uri = None
        return {
            "first_page_uri": uri(0, None),
            "end": start + len(records) - 1 if records else start,
            "previous_page_uri": uri(page - 1, prev_token) if page > 0 else None,
            "uri": uri(page, token),
            "page_size": page_size,
            "start": start,
            "next_page_uri": next_uri,
            "page": page,
            key: records,
        }

    def _list_messages(self, path: str, query: dict) -> dict:
        page_size = _int_param(query, "PageSize", 50, 1, 1000)
        page = _int_param(query, "Page", 0, 0, None)
        token = _one(query, "PageToken") or None
        filters, dates = [], DateFilter()
        to, from_ = _one(query, "To") or None, _one(query, "From") or None
        if to:
            filters.append(("To", to))
        if from_:
            filters.append(("From", from_))
        for name, attr in (("DateSent", "on"), ("DateSent<", "before"), ("DateSent>", "after")):
            raw = _one(query, name)
            if raw:
                try:
                    setattr(dates, attr, parse_filter_date(raw))
                except (ValueError, TypeError):
                    raise TwilioError(400, 20001, f"Invalid {name} value: {raw!r}. Use YYYY-MM-DD or "
                                                  "YYYY-MM-DDTHH:MM:SSZ.") from None
                filters.append((name, raw))
        try:
            records, next_token, prev_token = self.store.list_page(
                to=to, from_=from_, dates=dates, page_size=page_size, page=page, token=token)
        except ValueError:
            raise TwilioError(400, 20001, f"Invalid PageToken: {token!r}") from None
        return self._envelope(path, "messages", records, filters, page_size, page, token, next_token,
                              prev_token)

    def _list_calls(self, path: str, query: dict) -> dict:
        page_size = _int_param(query, "PageSize", 50, 1, 1000)
        page = _int_param(query, "Page", 0, 0, None)
        token = _one(query, "PageToken") or None
        to, from_ = _one(query, "To") or None, _one(query, "From") or None
        status = _one(query, "Status") or None
        if status is not None and status not in voice_model.CALL_STATUSES:
            raise TwilioError(400, 20001, f"Invalid Status {status!r}")
        filters = [(k, v) for k, v in (("To", to), ("From", from_), ("Status", status)) if v]
        try:
            records, next_token = self.voice.list_calls(to=to, from_=from_, status=status,
                                                        page_size=page_size, page=page, token=token)
        except ValueError:
            raise TwilioError(400, 20001, f"Invalid PageToken: {token!r}") from None
        return self._envelope(path, "calls", records, filters, page_size, page, token, next_token, None)

    # --- Studio v2 ----------------------------------------------------------------------

    def _studio(self, method: str, path: str, m: re.Match, query: dict, form: dict):
        flow, execution, sub, step, other = (m.group("flow"), m.group("execution"), m.group("sub"),
                                             m.group("step"), m.group("other"))
        voice = self.voice
        get, post, delete = method in ("GET", "HEAD"), method == "POST", method == "DELETE"
        if other is not None:   # Revisions, TestUsers, Validate: not emulated
            raise self._not_found(path)
        if flow is None:
            if post:
                return 201, voice.create_flow(form)
            if get:
                return 200, self._studio_list(path, query, "flows", lambda **kw: voice.list_flows(**kw))
        elif "/Executions" not in path:
            if get:
                return 200, voice.get_flow(flow)
            if post:
                return 200, voice.update_flow(flow, form)
            if delete:
                voice.delete_flow(flow)
                return 204, None
        elif execution is None:
            if post:
                return 201, voice.create_execution(flow, form)
            if get:
                status = _one(query, "status") or _one(query, "Status") or None
                if status is not None and status not in voice_model.EXECUTION_STATUSES:
                    raise TwilioError(400, 20001, f"Invalid status {status!r}: use active or ended")
                dates = {}
                for name, key in (("DateCreatedFrom", "created_from"), ("DateCreatedTo", "created_to")):
                    raw = _one(query, name)
                    if raw:
                        try:
                            dates[key] = parse_filter_date(raw)[0]
                        except (ValueError, TypeError):
                            raise TwilioError(400, 20001, f"Invalid {name} value: {raw!r}") from None
                return 200, self._studio_list(path, query, "executions", lambda **kw: voice.list_executions(
                    flow, status=status, **dates, **kw), extra=[("status", status)] if status else [])
        elif sub is None:
            if get:
                return 200, voice.get_execution(flow, execution)
            if post:
                return 200, voice.end_execution(flow, execution, form)
            if delete:
                voice.delete_execution(flow, execution)
                return 204, None
        elif sub == "Context" and step is None:
            if get:
                return 200, voice.get_context(flow, execution)
        elif sub == "Steps":
            if get and step is None:
                return 200, self._studio_list(path, query, "steps",
                                              lambda **kw: voice.list_steps(flow, execution, **kw))
            if get:
                return 200, voice.get_step(flow, execution, step)
        else:
            raise self._not_found(path)
        raise TwilioError(405, 20004, "Method not allowed")

    @staticmethod
    def _studio_list(path: str, query: dict, key: str, lister, extra=()) -> dict:
        """A Studio list answer: the records under ``key`` and a ``meta`` block with absolute URLs."""
        page_size = _int_param(query, "PageSize", 50, 1, 1000)
        page = _int_param(query, "Page", 0, 0, None)
        token = _one(query, "PageToken") or None
        try:
            records, next_token = lister(page_size=page_size, page=page, token=token)
        except ValueError:
            raise TwilioError(400, 20001, f"Invalid PageToken: {token!r}") from None

        def url(p, t=None):
            params = list(extra) + [("PageSize", page_size), ("Page", p)] + ([("PageToken", t)] if t else [])
            return f"{STUDIO_HOST}{path}?{urlencode(params)}"

        return {key: records, "meta": {
            "page": page, "page_size": page_size, "first_page_url": url(0), "previous_page_url":
            url(page - 1) if page > 0 else None, "url": url(page, token),
            "next_page_url": url(page + 1, next_token) if next_token else None, "key": key}}

    def _list_numbers(self, path: str, query: dict) -> dict:
        page_size = _int_param(query, "PageSize", 50, 1, 1000)
        page = _int_param(query, "Page", 0, 0, None)
        wanted = _one(query, "PhoneNumber") or None
        filters = [("PhoneNumber", wanted)] if wanted else []
        numbers = self.store.list_numbers(wanted)
        chosen = numbers[page * page_size:(page + 1) * page_size]
        more = len(numbers) > (page + 1) * page_size
        return self._envelope(path, "incoming_phone_numbers", chosen, filters, page_size, page,
                              None, None, None, has_next_offset=more)

    # --- the control API ----------------------------------------------------------------

    def _control(self, method: str, path: str, p: dict, query: dict | None = None):
        route = path[len("/_emulator"):].strip("/")
        get, post = method in ("GET", "HEAD"), method in ("POST", "PUT")
        query = query or {}
        if route == "health" and get:
            return 200, {"ok": True, "base_url": self.base_url, "account_sid": self.account_sid}
        if route == "messages" and get:
            found = self.find_messages(direction=_one(query, "direction"), to=_one(query, "to"),
                                       from_=_one(query, "from"))
            return 200, {"messages": found}
        if route.startswith("messages/") and get:
            return 200, self.store.get(route[len("messages/"):])
        if route == "delivery/schedule":
            if post:
                self.deliver_after(p.get("sent_after", 0.0), p.get("delivered_after", 0.0))
            elif method == "DELETE":
                self.delivery_schedule = None
            if post or get or method == "DELETE":
                schedule = self.delivery_schedule
                return 200, {"schedule": None if schedule is None else asdict(schedule)}
        if route == "delivery/outcomes":
            if post:
                self.set_delivery_outcome(p["recipient"], p.get("status", "delivered"), p.get("error_code"),
                                          p.get("error_message"))
            if post or get:
                return 200, {"outcomes": {n: asdict(o) for n, o in self.delivery_outcomes.items()}}
        if route == "pair_limit":
            if post:
                self.limit_pairs(p.get("limit", 30), p.get("window", 30.0), p.get("block", 30.0))
            elif method == "DELETE":
                self.pair_limit = None
            if post or get or method == "DELETE":
                rule = self.pair_limit
                return 200, {"pair_limit": None if rule is None else asdict(rule)}
        if route == "inbound" and post:
            return 201, self.inject_inbound(p["from"], p.get("to", SENDER), p.get("body", "ACK"),
                                            _parse_dt(p.get("date_sent")))
        if route == "seed" and post:
            step = timedelta(seconds=float(p.get("step", 1)))
            sids = self.seed_history(int(p["count"]), from_=p.get("from", SENDER),
                                     to=p.get("to", "+353861234567"),
                                     direction=p.get("direction", "outbound-api"),
                                     start=_parse_dt(p.get("start")), step=step,
                                     body=p.get("body", "History message {i}"))
            return 201, {"sids": sids}
        if route == "status" and post:
            return 200, self.set_status(p["sid"], p["status"], p.get("error_code"), p.get("error_message"))
        if route == "advance" and post:
            return 200, {"changed": self.advance_statuses(p.get("steps"))}
        if route == "faults":
            if post:
                kwargs = {k: p[k] for k in ("method", "path_contains", "times", "status", "code",
                                            "retry_after", "delay", "match_to") if k in p}
                return 201, {"id": self.inject_fault(p["kind"], **kwargs)}
            if get:
                return 200, {"faults": [asdict(f) for f in self.faults]}
            if method == "DELETE":
                self.clear_faults()
                return 200, {"ok": True}
        if route == "faults/clear" and post:
            self.clear_faults()
            return 200, {"ok": True}
        if route == "requests":
            if get:
                return 200, {"requests": [r.to_dict() for r in self.requests]}
            if method == "DELETE":
                self.clear_requests()
                return 200, {"ok": True}
        if route == "reset" and post:
            self.reset()
            return 200, {"ok": True}
        if route == "latency":
            if post:
                self.latency = float(p["latency"])
            if post or get:
                return 200, {"latency": self.latency}
        if route == "numbers" and post:
            self.add_number(p["number"])
            return 200, {"numbers": list(self.store.numbers)}
        if route in ("opt_out", "opt_in") and post:
            getattr(self, route)(p["sender"], p["recipient"])
            return 200, {"ok": True}
        if route == "geo" and post:
            if p.get("enable"):
                self.enable_geo(p["country_calling_code"])
            else:
                self.disable_geo(p["country_calling_code"])
            return 200, {"disabled": sorted(self.store.geo_disabled)}
        if route == "landlines" and post:
            self.add_landline(p["number"])
            return 200, {"ok": True}
        if route == "calls/scripts":
            if post:
                number = p.pop("number")
                self.voice.script_calls(number, script_from_dict(p))
            elif method == "DELETE":
                self.clear_call_scripts()
            if post or get or method == "DELETE":
                return 200, {"scripts": {n: asdict(s) for n, s in self.call_scripts.items()}}
        if route == "calls" and get:
            return 200, {"calls": self.find_calls(to=_one(query, "to"), from_=_one(query, "from"))}
        if route.startswith("calls/") and get:
            return 200, self.voice.get_call(route[len("calls/"):])
        if route == "executions" and get:
            return 200, {"executions": self.executions}
        if route == "flows" and get:
            return 200, {"flows": self.flows}
        if route == "numbers/voice" and post:
            self.set_voice_capable(p["number"], bool(p["voice"]))
            return 200, {"ok": True}
        return 404, {"error": f"no control endpoint {method} {path}"}
