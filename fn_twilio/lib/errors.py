"""One table from Twilio error codes and HTTP failures to what the user reads.

Every failure of a Twilio request goes through :func:`classify`, which answers three questions:
what to tell the user, whether the SMS may already have been sent, and whether the request may be
made again. Nothing else in the app interprets Twilio exceptions.
"""
from __future__ import annotations

import enum
import json
from dataclasses import dataclass
from typing import Any
from collections.abc import Iterator

import requests
from twilio.base.exceptions import TwilioException, TwilioRestException

try:  # twilio >= 9.9 has RFC 9457 errors for newer APIs
    from twilio.base.exceptions import TwilioServiceException
except ImportError:  # pragma: no cover - older SDKs
    TwilioServiceException = ()


class Retry(enum.Enum):
    """What may be done after a failed request."""

    NEVER = "never"          # permanent: the same request fails the same way
    SAFE = "safe"            # Twilio did not process it: resend after a back-off
    AMBIGUOUS = "ambiguous"  # it may have been processed: never resend a create blindly


class Action(enum.Enum):
    """What the failed request was doing."""

    CREATE = "create"   # it sends an SMS (a POST): never resent when it may have been processed
    READ = "read"       # an idempotent GET (list, fetch): always safe to repeat
    CALL = "call"       # it starts a call (a Studio execution): never started again when it may have been


@dataclass(frozen=True)
class Code:
    """What one Twilio error code means. ``status``: the recipient status it reports instead of
    ``failed`` (None keeps ``failed``)."""

    explanation: str
    retry: Retry = Retry.NEVER
    status: str | None = None


# A recipient who replied STOP (contract §9.3): its own status, not "failed".
STATUS_OPTED_OUT = "opted_out"
OPTED_OUT_MESSAGE = ("the recipient has replied STOP to this sender; they must text START to it before they "
                     "can be sent SMS again")

# Twilio error code -> its meaning; one line per code, from Twilio's error dictionary.
TWILIO_CODES: dict[int, Code] = {
    20003: Code("Twilio rejected the credentials: check twilio_account_sid and twilio_auth_token "
                "(or twilio_api_key_sid and twilio_api_key_secret)"),
    20005: Code("the Twilio account is not active"),
    20403: Code("the Twilio account is suspended or lacks permission for this request"),
    20404: Code("Twilio has no such resource: check twilio_account_sid and the sender"),
    20429: Code("Twilio is rate limiting this account (too many concurrent requests)", Retry.SAFE),
    21211: Code("not a valid phone number for Twilio"),
    21212: Code("the sender (twilio_src_address) is not a valid phone number"),
    21408: Code("SMS to this country is not enabled on the Twilio account (Geo Permissions)"),
    21602: Code("the message body is required"),
    21603: Code("a sender (twilio_src_address or twilio_messaging_service_sid) is required"),
    21604: Code("a recipient number is required"),
    21606: Code("the sender is not an SMS-capable number of this Twilio account"),
    21608: Code("a trial account may only send to verified numbers"),
    21610: Code(OPTED_OUT_MESSAGE, status=STATUS_OPTED_OUT),
    21611: Code("the sender's queue is full; try again later"),
    21612: Code("Twilio cannot route a message to this number"),
    21614: Code("the number is not a mobile number and cannot receive SMS"),
    21617: Code("the message is longer than 1600 characters"),
    21619: Code("the message body is required"),
    21635: Code("the number is a landline and cannot receive SMS"),
    30001: Code("the sender's queue overflowed; the message was not sent"),
    30003: Code("the handset is unreachable (switched off or out of coverage)"),
    30004: Code("the message was blocked by the carrier or the recipient"),
    30005: Code("the number is unknown or no longer in service"),
    30006: Code("the number is a landline or its carrier cannot receive SMS"),
    30007: Code("the carrier filtered the message as spam"),
    30008: Code("the message could not be delivered for an unknown reason"),
    # delivery errors: what a message's status reports once it ends undelivered or failed
    30002: Code("the Twilio account was suspended when the message was due to go out"),
    30009: Code("part of a long message went missing, so the carrier did not deliver it"),
    30010: Code("the message would have cost more than the maximum price set for it"),
    # rate limits: Twilio's loop guard between two numbers, the carriers' campaign limits, the account's day
    14107: Code("Twilio's loop guard failed the text: more than 30 texts went between the sender and this "
                "number within 30 s, and Twilio fails every further one between them for 30 s"),
    30022: Code("the carriers refused the text for exceeding the sender's US A2P 10DLC campaign rate limit "
                "(throughput), or for too many texts to this number in a short time"),
    63038: Code("the Twilio account reached its daily message limit (messages in a rolling 24 hours); "
                "texts fail until that window allows more"),
    30023: Code("the carrier's daily message limit for this sender (US A2P 10DLC) was reached"),
    30032: Code("the sender is a toll-free number that is not verified for messaging"),
    30034: Code("the sender is a US number not registered for A2P 10DLC messaging"),
    30036: Code("the message expired before it could be sent (its validity period passed)"),
    # voice (contract §14): starting a call
    21210: Code("the caller (voice_sender) is not a number of this Twilio account that can place calls"),
    21213: Code("a caller number (voice_sender) is required to place a call"),
    21215: Code("calls to this country are not enabled on the Twilio account (Voice Geo Permissions)"),
    21216: Code("the Twilio account is not allowed to call this number"),
    21217: Code("the number does not appear to be a valid phone number to call"),
}

# What an error code means when a message is looked up by its SID (the delivery status lookup).
LOOKUP_CODES: dict[int, Code] = {
    20404: Code("no message with this SID on this Twilio account"),
}

# HTTP status without a known Twilio code -> its meaning.
HTTP_STATUSES: dict[int, Code] = {
    400: Code("Twilio refused the request"),
    401: Code("Twilio rejected the credentials"),
    403: Code("Twilio refused access"),
    404: Code("Twilio has no such resource"),
    429: Code("Twilio is rate limiting this account", Retry.SAFE),
}

MAY_HAVE_SENT = "the SMS may or may not have been sent"
MAY_HAVE_CALLED = "the call may or may not have been placed"


class FailureKind(enum.Enum):
    """Families of failure, for results and the README's failure-modes table."""

    TWILIO = "twilio_error"            # Twilio answered with an error code
    RATE_LIMITED = "rate_limited"      # 429 / 20429
    SERVER = "server_error"            # 5xx: Twilio may have processed the request
    TIMEOUT = "timeout"                # no answer within `timeout` after the request went out
    UNREACHABLE = "unreachable"        # the request never reached Twilio (refused, DNS, connect timeout)
    PROXY = "proxy_error"              # the configured proxy failed
    BAD_RESPONSE = "bad_response"      # an answer that is not Twilio's JSON
    CONNECTION_LOST = "connection_lost"  # the connection broke after the request went out


@dataclass(frozen=True)
class Failure:
    """One failed Twilio request, as the user reads it."""

    kind: FailureKind
    message: str                      # readable, complete, never contains a secret
    retry: Retry
    code: int | None = None        # Twilio's error code, or the HTTP status when Twilio gave none
    http_status: int | None = None
    more_info: str | None = None   # Twilio's reference (URL or request id), when there is one
    retry_after: float | None = None
    status: str | None = None      # the recipient status the code reports (None: "failed")

    @property
    def may_have_sent(self) -> bool:
        return self.retry is Retry.AMBIGUOUS


def explain_code(code: int | None) -> str | None:
    """The readable explanation of a Twilio error code, or None when the table has none."""
    entry = TWILIO_CODES.get(code) if code is not None else None
    return entry.explanation if entry else None


def explain_lookup(code: int) -> str:
    """The readable explanation of an error code met looking a message up by its SID."""
    entry = LOOKUP_CODES.get(code) or TWILIO_CODES.get(code)
    return entry.explanation if entry else f"Twilio error {code}"


def _failure(kind: FailureKind, explanation: str, retry: Retry, action: Action, *,
             twilio_text: str | None = None, request_id: str | None = None, **fields: Any) -> Failure:
    """The one place a failure's message is composed, from its parts.

    An ambiguous failure is only ambiguous for a create (a read is safe to repeat), and only a
    create's message says the SMS may have been sent (a call's, that the call may have been placed);
    Twilio's own sentence and its request id (quoted when the request may have been processed) follow.
    """
    if retry is Retry.AMBIGUOUS and action is Action.READ:
        retry = Retry.SAFE
    parts = [explanation]
    if retry is Retry.AMBIGUOUS:
        parts.append(f"; {MAY_HAVE_CALLED if action is Action.CALL else MAY_HAVE_SENT}")
    if twilio_text and twilio_text not in explanation:
        parts.append(f" (Twilio says: {twilio_text})")
    if request_id and retry is Retry.AMBIGUOUS:
        parts.append(f" (Twilio request {request_id})")
        fields["more_info"] = fields.get("more_info") or request_id
    return Failure(kind, "".join(parts), retry, **fields)


def _retry_after(response: Any) -> float | None:
    if response is None:
        return None
    value = (getattr(response, "headers", None) or {}).get("Retry-After")
    try:
        return max(0.0, float(value)) if value is not None else None
    except (TypeError, ValueError):
        return None


def _request_id(response: Any) -> str | None:
    value = (getattr(response, "headers", None) or {}).get("Twilio-Request-Id")
    return str(value) if value else None


def _from_status(status: int, code: int | None, twilio_text: str | None, more_info: str | None,
                 action: Action, response: Any = None) -> Failure:
    """A failure built from an HTTP status and, when Twilio sent one, its error code and text."""
    known = TWILIO_CODES.get(code) if code is not None else None
    if status == 429 or code == 20429:
        kind, meaning = FailureKind.RATE_LIMITED, known or HTTP_STATUSES[429]
        meaning = Code(meaning.explanation, Retry.SAFE)
    elif status >= 500:
        kind = FailureKind.SERVER
        meaning = Code(f"Twilio answered HTTP {status} (server error)", Retry.AMBIGUOUS)
    elif known:
        kind, meaning = FailureKind.TWILIO, known
    else:
        kind, meaning = FailureKind.TWILIO, HTTP_STATUSES.get(status, Code(f"Twilio answered HTTP {status}"))
    explanation = (f"Twilio error {code}: {meaning.explanation}" if code is not None and code != status
                   else meaning.explanation)
    if response is not None and kind is FailureKind.SERVER and not _is_json(getattr(response, "text", None)):
        explanation = _unparsed_answer(response)   # an HTML error page says more than the SDK's text
        twilio_text = None
    return _failure(kind, explanation, meaning.retry, action, twilio_text=twilio_text,
                    request_id=_request_id(response), code=code if code is not None else status,
                    http_status=status, more_info=more_info, retry_after=_retry_after(response),
                    status=meaning.status)


def _twilio_text(msg: str | None) -> str | None:
    """Twilio's own sentence, without the SDK's 'Unable to create record:' preamble."""
    if not msg:
        return None
    text = str(msg)
    if text.lower().startswith("unable to"):
        # the SDK's own preamble; Twilio's sentence follows the colon, when Twilio sent one
        text = text.split(":", 1)[1].strip() if ":" in text else ""
    return text or None


_HTML_TAGS = ("<html", "<!doctype", "<body", "<head")


def _unparsed_answer(response: Any) -> str:
    """What Twilio answered instead of its JSON: an HTML page, garbage or nothing."""
    status = getattr(response, "status_code", None)
    body = (getattr(response, "text", "") or "").strip()
    if not body:
        what = "an empty answer"
    elif body.startswith("<") and any(tag in body[:1000].lower() for tag in _HTML_TAGS):
        what = "an HTML page instead of JSON"
    else:
        what = "an answer that is not JSON"
    status_text = f"HTTP {status} with " if status else ""
    return f"Twilio answered {status_text}{what}"


def _from_unparsed_response(response: Any, action: Action) -> Failure:
    status = getattr(response, "status_code", None)
    return _failure(FailureKind.BAD_RESPONSE, _unparsed_answer(response), Retry.AMBIGUOUS, action,
                    request_id=_request_id(response), code=status, http_status=status)


def _reason_chain(exc: BaseException) -> Iterator[BaseException]:
    """Every cause and context reachable from an exception (requests nests urllib3's reasons)."""
    seen = set()
    todo: list[Any] = [exc]
    while todo:
        current = todo.pop()
        if not isinstance(current, BaseException) or id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        todo.extend([getattr(current, "reason", None), current.__cause__, current.__context__])
        todo.extend(a for a in getattr(current, "args", ()) if isinstance(a, BaseException))


def _from_transport(exc: requests.RequestException, timeout: float | None, action: Action,
                    response: Any) -> Failure:
    names = {type(e).__name__ for e in _reason_chain(exc)}
    request_id = _request_id(response)
    if isinstance(exc, requests.exceptions.ProxyError) or "ProxyError" in names:
        return _failure(FailureKind.PROXY, "the proxy configured for Twilio (https_proxy/http_proxy) "
                        "could not be reached or refused the connection", Retry.SAFE, action)
    if isinstance(exc, requests.exceptions.SSLError) or "SSLError" in names:
        return _failure(FailureKind.UNREACHABLE, "the TLS connection to Twilio failed (certificate or "
                        "proxy problem)", Retry.SAFE, action)
    if isinstance(exc, requests.exceptions.ConnectTimeout) or "ConnectTimeoutError" in names:
        return _failure(FailureKind.UNREACHABLE, f"Twilio could not be reached within {timeout:g} s"
                        if timeout else "Twilio could not be reached (connect timeout)", Retry.SAFE, action)
    if isinstance(exc, requests.exceptions.ReadTimeout) or "ReadTimeoutError" in names:
        waited = f"within {timeout:g} s " if timeout else ""
        return _failure(FailureKind.TIMEOUT, f"Twilio did not answer {waited}(timeout)", Retry.AMBIGUOUS,
                        action, request_id=request_id)
    if names & {"NewConnectionError", "NameResolutionError", "gaierror", "ConnectionRefusedError"}:
        return _failure(FailureKind.UNREACHABLE, "Twilio could not be reached (connection refused or "
                        "name not resolved): check twilio_base_url and the proxy settings",
                        Retry.SAFE, action)
    return _failure(FailureKind.CONNECTION_LOST, "the connection to Twilio broke before it answered",
                    Retry.AMBIGUOUS, action, request_id=request_id)


def classify(exc: BaseException, *, action: Action = Action.CREATE, timeout: float | None = None,
             response: Any = None) -> Failure:
    """Map any exception raised while calling Twilio to a :class:`Failure`.

    ``response`` is the raw answer to the failed request when the caller has it (None when no answer
    came): it supplies a 429's ``Retry-After``, Twilio's request id, and the description of an answer
    that is not Twilio's JSON.
    """
    if isinstance(exc, TwilioRestException):
        code = exc.code if isinstance(exc.code, int) else None
        return _from_status(int(exc.status or 0), code, _twilio_text(exc.msg),
                            getattr(exc, "more_info", None) or None, action, response)
    if TwilioServiceException and isinstance(exc, TwilioServiceException):
        return _from_status(int(exc.status or 0), getattr(exc, "code", None),
                            getattr(exc, "detail", None) or getattr(exc, "title", None), None, action,
                            response)
    if isinstance(exc, TwilioException) and len(exc.args) > 1 and hasattr(exc.args[1], "status_code"):
        # list/page errors: TwilioException("Unable to fetch page", response)
        page_response = exc.args[1]
        try:
            payload = json.loads(page_response.text)
        except (TypeError, ValueError):
            return _from_unparsed_response(page_response, action)
        payload = payload if isinstance(payload, dict) else {}
        code = payload.get("code")
        return _from_status(page_response.status_code, code if isinstance(code, int) else None,
                            payload.get("message"), payload.get("more_info"), action, page_response)
    if isinstance(exc, requests.RequestException):
        return _from_transport(exc, timeout, action, response)
    if response is not None and not _is_json(getattr(response, "text", None)):
        return _from_unparsed_response(response, action)
    if isinstance(exc, ValueError):  # json.JSONDecodeError: a 2xx answer that is not JSON
        return _failure(FailureKind.BAD_RESPONSE, "Twilio answered with something that is not JSON",
                        Retry.AMBIGUOUS, action, request_id=_request_id(response))
    if isinstance(exc, TwilioException):
        detail = exc.args[0] if exc.args else type(exc).__name__
        return _failure(FailureKind.BAD_RESPONSE, f"Twilio's answer could not be read ({detail})",
                        Retry.AMBIGUOUS, action, request_id=_request_id(response))
    return _failure(FailureKind.CONNECTION_LOST, "unexpected failure talking to Twilio: "
                                                 f"{type(exc).__name__}",
                    Retry.AMBIGUOUS, action, request_id=_request_id(response))


def missing_sid(response: Any, action: Action = Action.CREATE) -> Failure:
    """Twilio accepted a create but its answer names no message (no execution, for a call)."""
    if response is not None and not _is_json(getattr(response, "text", None)):
        return _from_unparsed_response(response, action)
    what = "an execution SID" if action is Action.CALL else "a message SID"
    return _failure(FailureKind.BAD_RESPONSE, f"Twilio answered without {what}", Retry.AMBIGUOUS,
                    action, request_id=_request_id(response))


def _is_json(text: str | None) -> bool:
    try:
        json.loads(text or "")
    except (TypeError, ValueError):
        return False
    return True
