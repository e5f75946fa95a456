"""Shared pieces of the reliability matrices: calls that are recorded, counters, emulator checks.

Every function call made through :func:`call` is kept by the current :class:`Observer` (set per test
by tests/reliability/conftest.py), which checks after the test that no secret and no unmasked phone
number reached what it captured. :data:`LEDGER` holds the totals printed at the end of the session.
"""
import copy
import http.client
import itertools
import logging
import re
import socket
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Optional
from urllib.parse import urlsplit

from resilient_circuits.filters import RedactingFilter

from sandbox.twilio_emulator import API_KEY_SECRET, AUTH_TOKEN
from tests.conftest import call_function

# The SOAR API key of the app.config the reliability classes run with (see conftest.py).
SOAR_API_KEY_ID = "c0ffee00-1234-4abc-9def-00000000a11e"
SOAR_API_KEY_SECRET = "soar-api-secret-Zq7Xk2Lm9Pw4Rt6Yv8"
SOAR_SECTION = f"\n[resilient]\napi_key_id = {SOAR_API_KEY_ID}\napi_key_secret = {SOAR_API_KEY_SECRET}\n"

# The matrices send to one number many times at once (each row beside the same people); the storm
# limit (tests/lib/test_storm.py, tests/e2e/test_storm_instances.py) is not what they check, so it is
# as high as Twilio allows for the classes that do.
NO_STORM_LIMIT = {"max_texts_per_person": "30", "person_window": "30s"}

ALICE = "+353861234567"
BOB = "+14155552345"
CAROL = "+447911123456"

SECRETS = {"twilio_auth_token": AUTH_TOKEN, "twilio_api_key_secret": API_KEY_SECRET,
           "SOAR api_key_secret": SOAR_API_KEY_SECRET}

# A full E.164 number: a '+' and 8 to 15 digits, not inside a longer run of digits or a mask.
FULL_NUMBER = re.compile(r"(?<![\d*])\+[1-9]\d{7,14}(?![\d*])")

LEDGER = Counter()           # faulted_responses, fault_scenarios, bad_inputs, duplicate_sms, calls
_bodies = itertools.count(1)


def unique_body(label: str) -> str:
    """A message text used by one call only, so that a duplicate SMS is unmistakable."""
    return f"{label} [{next(_bodies)}]"


class Observer:
    """What one test's calls returned to SOAR (statuses, results, errors), for the privacy checks."""

    def __init__(self):
        self.calls = []

    def texts(self):
        """Every text SOAR received: status messages, the error and the result (as repr)."""
        for call in self.calls:
            yield from call.statuses
            if call.error:
                yield call.error
            if call.result is not None:
                yield repr(call.result)


CURRENT: dict = {"observer": None}


def _text(record: logging.LogRecord) -> str:
    try:
        return record.getMessage()
    except Exception:  # a record whose arguments do not format: keep what there is
        return f"{record.msg!r} % {record.args!r}"


def caplog_records(caplog):
    """pytest's captured records as (logger name, level, text)."""
    return [(r.name, r.levelno, _text(r)) for r in caplog.records]


def _survives_redaction(record: logging.LogRecord) -> bool:
    """Whether resilient-circuits' handlers can write the record: their RedactingFilter turns every
    argument into a string first, so '%d' or '%.1f' then fails, and with logging.raiseExceptions off
    (resilient-circuits sets it) the line silently disappears from app.log, syslog and the console."""
    probe = copy.copy(record)
    RedactingFilter().filter(probe)
    try:
        probe.getMessage()
    except (TypeError, ValueError):
        return False
    return True


class _Keep(logging.Handler):
    """Keeps (logger name, level, full text with any traceback) of every record; runs first, so it
    sees each record before another handler's filter changes it."""

    def __init__(self):
        super().__init__(logging.DEBUG)
        self.records = []
        self.dropped = []       # (logger name, format) of fn_twilio records resilient-circuits drops

    def emit(self, record):
        text = _text(record)
        if record.exc_info:
            text += "\n" + logging.Formatter().formatException(record.exc_info)
        self.records.append((record.name, record.levelno, text))
        if record.name.startswith("fn_twilio") and not _survives_redaction(record):
            self.dropped.append((record.name, str(record.msg)))


def _all_loggers():
    yield logging.getLogger()
    for logger in list(logging.root.manager.loggerDict.values()):
        if isinstance(logger, logging.Logger):
            yield logger


class PrivacyWatch:
    """Everything at DEBUG and kept, while it is entered; :meth:`check` then asserts that

    * the Twilio auth token, the Twilio API key secret and the SOAR API key secret appear in no log
      record, status message, result or error of the calls made meanwhile;
    * no fn_twilio log record above DEBUG and no status message (resilient-circuits logs those at
      INFO) holds a full E.164 number: numbers are masked there, e.g. ``+35386*****67``;
    * every fn_twilio log record can be written by resilient-circuits' handlers (whose filter turns
      arguments into text before formatting, so a ``%d`` line would vanish).
    """

    def __init__(self):
        self.observer = Observer()
        self._keep = _Keep()
        self._levels = {}
        self._attached = []
        self.extra_records = []

    def __enter__(self):
        for logger in _all_loggers():
            self._levels[logger] = logger.level
            logger.setLevel(logging.DEBUG)
        self._attached = [logging.getLogger()] + [lg for lg in _all_loggers() if not lg.propagate]
        for logger in self._attached:
            logger.handlers.insert(0, self._keep)
        CURRENT["observer"] = self.observer
        return self

    def __exit__(self, *exc):
        CURRENT["observer"] = None
        for logger in self._attached:
            logger.removeHandler(self._keep)
        for logger, level in self._levels.items():
            logger.setLevel(level)

    @property
    def records(self):
        return self._keep.records + self.extra_records

    @property
    def dropped(self):
        return list(self._keep.dropped)

    def check(self, extra_texts=(), extra_secrets=None):
        """Assert the rules above; ``extra_texts`` (e.g. selftest reasons) and ``extra_secrets``
        (name -> value, e.g. a wrong token that was configured) are checked too."""
        texts = [text for _, _, text in self.records] + list(self.observer.texts()) + list(extra_texts)
        secrets = {**SECRETS, **(extra_secrets or {})}
        leaks = [(name, text[:300]) for name, secret in secrets.items() for text in texts if secret in text]
        assert not leaks, f"a secret reached a log line, status, result or error: {leaks[:3]}"
        loud = [(name, text[:300]) for name, level, text in self.records
                if name.startswith("fn_twilio") and level > logging.DEBUG and FULL_NUMBER.search(text)]
        assert not loud, f"an fn_twilio log line above DEBUG holds a full phone number: {loud[:3]}"
        dropped = sorted(set(self._keep.dropped))
        assert not dropped, f"resilient-circuits' log handlers silently drop these fn_twilio lines: {dropped}"
        statuses = [s for c in self.observer.calls for s in c.statuses if FULL_NUMBER.search(s)]
        assert not statuses, ("a status message (logged at INFO by resilient-circuits) holds a full number: "
                              f"{statuses}")


def call(circuits_app, fn: str, inputs: dict, timeout: float = 40):
    """call_function, recorded for the privacy checks; returns (FunctionCall, seconds taken)."""
    started = time.monotonic()
    result = call_function(circuits_app, fn, {k: v for k, v in inputs.items() if v is not None},
                           timeout=timeout)
    elapsed = time.monotonic() - started
    LEDGER["calls"] += 1
    observer = CURRENT["observer"]
    if observer is not None:
        observer.calls.append(result)
    return result, elapsed


def send(circuits_app, destination, message: Optional[str] = None, **inputs):
    """twilio_send_sms with a unique text unless one is given; returns (FunctionCall, seconds)."""
    values = {"twilio_sms_destination": destination,
              "twilio_sms_message": unique_body("Reliability") if message is None else message, **inputs}
    return call(circuits_app, "twilio_send_sms", values)


def receive(circuits_app, number, wait="0s", fn="twilio_receive_messages", **inputs):
    return call(circuits_app, fn, {"twilio_phone_number": number, "twilio_wait_timeout": wait, **inputs})


# -- the emulator's view ------------------------------------------------------------------------

def creates(emu, to: Optional[str] = None):
    """Create requests (POST …/Messages.json) the emulator received, optionally for one number."""
    found = [r for r in emu.requests if r.method == "POST" and r.path.endswith("/Messages.json")]
    return found if to is None else [r for r in found if r.form.get("To") == to]


def lists(emu):
    return [r for r in emu.requests if r.method == "GET" and r.path.endswith("/Messages.json")]


def outbound(emu, to: Optional[str] = None):
    """Messages Twilio (the emulator) accepted for sending, optionally to one number."""
    found = [m for m in emu.messages if m["direction"] != "inbound"]
    return found if to is None else [m for m in found if m["to"] == to]


def settle(emu, timeout: float = 10.0):
    """Wait until no request is in flight (a delayed request may still create its message)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if all(r.finished is not None for r in emu.requests):
            return True
        time.sleep(0.02)
    return False


def duplicates(emu) -> int:
    """SMS accepted more than once: the same text to the same number (each call's text is unique)."""
    counts = Counter((m["to"], m["body"]) for m in outbound(emu))
    return sum(n - 1 for n in counts.values() if n > 1)



# -- a forward HTTP proxy on 127.0.0.1, for the proxy settings ---------------------------------

_HOP_BY_HOP = {"connection", "keep-alive", "proxy-connection", "proxy-authorization", "te", "trailer",
               "transfer-encoding", "upgrade"}


class _ProxyHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, format, *args):  # noqa: A002 - quiet
        pass

    def _forward(self):
        target = urlsplit(self.path)          # a proxy receives the absolute URI
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else None
        self.server.seen.append((self.command, self.path))
        headers = {k: v for k, v in self.headers.items() if k.lower() not in _HOP_BY_HOP}
        upstream = http.client.HTTPConnection(target.hostname, target.port or 80, timeout=30)
        try:
            upstream.request(self.command, target.path + (f"?{target.query}" if target.query else ""),
                             body=body, headers=headers)
            response = upstream.getresponse()
            data = response.read()
        finally:
            upstream.close()
        self.send_response(response.status)
        for key, value in response.getheaders():
            if key.lower() not in _HOP_BY_HOP and key.lower() != "content-length":
                self.send_header(key, value)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_POST = _forward


class ForwardProxy:
    """A plain HTTP forward proxy that records (method, absolute URL) of what it forwards."""

    def __init__(self):
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _ProxyHandler)
        self._server.daemon_threads = True
        self._server.seen = []
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                                        daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    @property
    def seen(self) -> list:
        return list(self._server.seen)

    def start(self) -> "ForwardProxy":
        self._thread.start()
        return self

    def stop(self):
        self._server.shutdown()
        self._server.server_close()


def closed_port() -> int:
    """A port of 127.0.0.1 on which nothing listens (connections are refused)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
