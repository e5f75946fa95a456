"""One table from Twilio error codes and HTTP failures to what the user reads.

Every failure of a Twilio request goes through :func:`classify`, which answers three questions:
what to tell the user, whether the SMS may already have been sent, and whether the request may be
made again. Nothing else in the app interprets Twilio exceptions.
"""
from __future__ import annotations

import enum
import json
from dataclasses import dataclass, replace
from typing import Optional

import requests
from twilio.base.exceptions import TwilioException, TwilioRestException

try:  # twilio >= 9.9 has RFC 9457 errors for newer APIs
    from twilio.base.exceptions import TwilioServiceException
except ImportError:  # pragma: no cover - older SDKs
    TwilioServiceException = ()  # type: ignore[assignment]


class Retry(enum.Enum):
    """What may be done after a failed request."""

    NEVER = "never"          # permanent: the same request fails the same way
    SAFE = "safe"            # Twilio did not process it: resend after a back-off
    AMBIGUOUS = "ambiguous"  # it may have been processed: never resend a create blindly


# Twilio error code -> (readable explanation, retry class). Codes from Twilio's error dictionary.
TWILIO_CODES: dict[int, tuple[str, Retry]] = {
    20003: ("Twilio rejected the credentials: check twilio_account_sid and twilio_auth_token "
            "(or twilio_api_key_sid and twilio_api_key_secret)", Retry.NEVER),
    20005: ("the Twilio account is not active", Retry.NEVER),
    20403: ("the Twilio account is suspended or lacks permission for this request", Retry.NEVER),
    20404: ("Twilio has no such resource: check twilio_account_sid and the sender", Retry.NEVER),
    20429: ("Twilio is rate limiting this account (too many concurrent requests)", Retry.SAFE),
    21211: ("not a valid phone number for Twilio", Retry.NEVER),
    21212: ("the sender (twilio_src_address) is not a valid phone number", Retry.NEVER),
    21408: ("SMS to this country is not enabled on the Twilio account (Geo Permissions)", Retry.NEVER),
    21602: ("the message body is required", Retry.NEVER),
    21603: ("a sender (twilio_src_address or twilio_messaging_service_sid) is required", Retry.NEVER),
    21604: ("a recipient number is required", Retry.NEVER),
    21606: ("the sender is not an SMS-capable number of this Twilio account", Retry.NEVER),
    21608: ("a trial account may only send to verified numbers", Retry.NEVER),
    21610: ("the recipient has opted out (replied STOP) and must text START to this sender first",
            Retry.NEVER),
    21611: ("the sender's queue is full; try again later", Retry.NEVER),
    21612: ("Twilio cannot route a message to this number", Retry.NEVER),
    21614: ("the number is not a mobile number and cannot receive SMS", Retry.NEVER),
    21617: ("the message is longer than 1600 characters", Retry.NEVER),
    21619: ("the message body is required", Retry.NEVER),
    21635: ("the number is a landline and cannot receive SMS", Retry.NEVER),
    30001: ("the sender's queue overflowed; the message was not sent", Retry.NEVER),
    30003: ("the handset is unreachable (switched off or out of coverage)", Retry.NEVER),
    30004: ("the message was blocked by the carrier or the recipient", Retry.NEVER),
    30005: ("the number is unknown or no longer in service", Retry.NEVER),
    30006: ("the number is a landline or its carrier cannot receive SMS", Retry.NEVER),
    30007: ("the carrier filtered the message as spam", Retry.NEVER),
    30008: ("the message could not be delivered for an unknown reason", Retry.NEVER),
}

# HTTP status without a known Twilio code -> (readable explanation, retry class for a create).
HTTP_STATUSES: dict[int, tuple[str, Retry]] = {
    400: ("Twilio refused the request", Retry.NEVER),
    401: ("Twilio rejected the credentials", Retry.NEVER),
    403: ("Twilio refused access", Retry.NEVER),
    404: ("Twilio has no such resource", Retry.NEVER),
    429: ("Twilio is rate limiting this account", Retry.SAFE),
}

MAY_HAVE_SENT = "the SMS may or may not have been sent"


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
    code: Optional[int] = None        # Twilio's error code, or the HTTP status when Twilio gave none
    http_status: Optional[int] = None
    more_info: Optional[str] = None   # Twilio's reference (URL or request id), when there is one
    retry_after: Optional[float] = None

    @property
    def may_have_sent(self) -> bool:
        return self.retry is Retry.AMBIGUOUS


def explain_code(code: Optional[int]) -> Optional[str]:
    """The readable explanation of a Twilio error code, or None when the table has none."""
    entry = TWILIO_CODES.get(code) if code is not None else None
    return entry[0] if entry else None


def _retry_after(response) -> Optional[float]:
    if response is None:
        return None
    value = (getattr(response, "headers", None) or {}).get("Retry-After")
    try:
        return max(0.0, float(value)) if value is not None else None
    except (TypeError, ValueError):
        return None


def _from_status(status: int, code: Optional[int], twilio_text: Optional[str], more_info: Optional[str],
                 retry_after: Optional[float]) -> Failure:
    """A failure built from an HTTP status and, when Twilio sent one, its error code and text."""
    known = TWILIO_CODES.get(code) if code is not None else None
    if status == 429 or code == 20429:
        kind, retry = FailureKind.RATE_LIMITED, Retry.SAFE
        explanation = (known or HTTP_STATUSES[429])[0]
    elif status >= 500:
        kind, retry = FailureKind.SERVER, Retry.AMBIGUOUS
        explanation = f"Twilio answered HTTP {status} (server error); {MAY_HAVE_SENT}"
    elif known:
        kind, (explanation, retry) = FailureKind.TWILIO, known
    else:
        kind = FailureKind.TWILIO
        explanation, retry = HTTP_STATUSES.get(status, (f"Twilio answered HTTP {status}", Retry.NEVER))
    message = f"Twilio error {code}: {explanation}" if code is not None and code != status else explanation
    if twilio_text and twilio_text not in message:
        message = f"{message} (Twilio says: {twilio_text})"
    return Failure(kind, message, retry, code if code is not None else status, status, more_info, retry_after)


def _twilio_text(msg: Optional[str]) -> Optional[str]:
    """Twilio's own sentence, without the SDK's 'Unable to create record:' preamble."""
    if not msg:
        return None
    text = str(msg)
    if text.lower().startswith("unable to"):
        # the SDK's own preamble; Twilio's sentence follows the colon, when Twilio sent one
        text = text.split(":", 1)[1].strip() if ":" in text else ""
    return text or None


def _from_unparsed_response(response, action: str) -> Failure:
    """Twilio answered, but not with its JSON: an HTML page, garbage or nothing."""
    status = getattr(response, "status_code", None)
    body = (getattr(response, "text", "") or "").strip()
    if not body:
        what = "an empty answer"
    elif body.startswith("<") and any(tag in body[:1000].lower() for tag in ("<html", "<!doctype", "<body", "<head")):
        what = "an HTML page instead of JSON"
    else:
        what = "an answer that is not JSON"
    request_id = (getattr(response, "headers", None) or {}).get("Twilio-Request-Id")
    retry = Retry.AMBIGUOUS if action == "create" else Retry.SAFE
    tail = f"; {MAY_HAVE_SENT}" if action == "create" else ""
    status_text = f"HTTP {status} with " if status else ""
    return Failure(FailureKind.BAD_RESPONSE, f"Twilio answered {status_text}{what}{tail}", retry,
                   status, status, request_id)


def _reason_chain(exc: BaseException):
    """Every cause and context reachable from an exception (requests nests urllib3's reasons)."""
    seen = set()
    todo = [exc]
    while todo:
        current = todo.pop()
        if current is None or id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        todo.extend([getattr(current, "reason", None), current.__cause__, current.__context__])
        todo.extend(a for a in getattr(current, "args", ()) if isinstance(a, BaseException))


def _from_transport(exc: requests.RequestException, timeout: Optional[float], action: str) -> Failure:
    names = {type(e).__name__ for e in _reason_chain(exc)}
    ambiguous_tail = f"; {MAY_HAVE_SENT}" if action == "create" else ""
    ambiguous = Retry.AMBIGUOUS if action == "create" else Retry.SAFE
    if isinstance(exc, requests.exceptions.ProxyError) or "ProxyError" in names:
        return Failure(FailureKind.PROXY, "the proxy configured for Twilio (https_proxy/http_proxy) "
                       "could not be reached or refused the connection", Retry.SAFE)
    if isinstance(exc, requests.exceptions.SSLError) or "SSLError" in names:
        return Failure(FailureKind.UNREACHABLE, "the TLS connection to Twilio failed (certificate or "
                       "proxy problem)", Retry.SAFE)
    if isinstance(exc, requests.exceptions.ConnectTimeout) or "ConnectTimeoutError" in names:
        return Failure(FailureKind.UNREACHABLE, f"Twilio could not be reached within {timeout:g} s"
                       if timeout else "Twilio could not be reached (connect timeout)", Retry.SAFE)
    if isinstance(exc, requests.exceptions.ReadTimeout) or "ReadTimeoutError" in names:
        waited = f"within {timeout:g} s " if timeout else ""
        return Failure(FailureKind.TIMEOUT, f"Twilio did not answer {waited}(timeout){ambiguous_tail}",
                       ambiguous)
    if names & {"NewConnectionError", "NameResolutionError", "gaierror", "ConnectionRefusedError"}:
        return Failure(FailureKind.UNREACHABLE, "Twilio could not be reached (connection refused or "
                       "name not resolved): check twilio_base_url and the proxy settings", Retry.SAFE)
    return Failure(FailureKind.CONNECTION_LOST, f"the connection to Twilio broke before it answered"
                   f"{ambiguous_tail}", ambiguous)


def classify(exc: BaseException, *, action: str = "create", timeout: Optional[float] = None) -> Failure:
    """Map any exception raised while calling Twilio to a :class:`Failure`.

    ``action`` is ``"create"`` for a request that sends an SMS (a POST, never resent when it may have
    been processed) or ``"read"`` for idempotent GETs (list, fetch), which are safe to repeat.
    """
    if isinstance(exc, TwilioRestException):
        status = int(exc.status or 0)
        code = exc.code if isinstance(exc.code, int) else None
        more_info = getattr(exc, "more_info", None) or None
        failure = _from_status(status, code, _twilio_text(exc.msg), more_info, None)
        if action == "read" and failure.retry is Retry.AMBIGUOUS:
            failure = _replace_retry(failure, Retry.SAFE)
        return failure
    if TwilioServiceException and isinstance(exc, TwilioServiceException):
        return _from_status(int(exc.status or 0), getattr(exc, "code", None),
                            getattr(exc, "detail", None) or getattr(exc, "title", None), None, None)
    if isinstance(exc, TwilioException) and len(exc.args) > 1 and hasattr(exc.args[1], "status_code"):
        # list/page errors: TwilioException("Unable to fetch page", response)
        response = exc.args[1]
        try:
            payload = json.loads(response.text)
        except (TypeError, ValueError):
            return _from_unparsed_response(response, action)
        code = payload.get("code") if isinstance(payload, dict) else None
        text = payload.get("message") if isinstance(payload, dict) else None
        more_info = payload.get("more_info") if isinstance(payload, dict) else None
        failure = _from_status(response.status_code, code if isinstance(code, int) else None, text,
                               more_info, _retry_after(response))
        return _replace_retry(failure, Retry.SAFE) if failure.retry is Retry.AMBIGUOUS else failure
    if isinstance(exc, requests.RequestException):
        return _from_transport(exc, timeout, action)
    if isinstance(exc, ValueError):  # json.JSONDecodeError: a 2xx answer that is not JSON
        tail = f"; {MAY_HAVE_SENT}" if action == "create" else ""
        return Failure(FailureKind.BAD_RESPONSE, f"Twilio answered with something that is not JSON{tail}",
                       Retry.AMBIGUOUS if action == "create" else Retry.SAFE)
    if isinstance(exc, TwilioException):
        return Failure(FailureKind.BAD_RESPONSE, f"Twilio's answer could not be read ({exc.args[0] if exc.args else type(exc).__name__})",
                       Retry.AMBIGUOUS if action == "create" else Retry.SAFE)
    return Failure(FailureKind.CONNECTION_LOST, f"unexpected failure talking to Twilio: {type(exc).__name__}",
                   Retry.AMBIGUOUS if action == "create" else Retry.SAFE)


def _is_json(text: str) -> bool:
    try:
        json.loads(text)
    except (TypeError, ValueError):
        return False
    return True


def with_response(failure: Failure, response, *, action: str = "create") -> Failure:
    """The failure completed with what Twilio's answer (``response``, None when none came) tells.

    * a 429's ``Retry-After``;
    * an answer that is not Twilio's JSON (an HTML error page, garbage, nothing) is described as such
      instead of through the SDK's generic text;
    * when the request may have been processed, Twilio's request id (``Twilio-Request-Id``), the
      reference Twilio's support needs to say what happened to it, is quoted in the message and kept
      in ``more_info``.
    """
    if response is None:
        return failure
    headers = dict(getattr(response, "headers", None) or {})
    if failure.kind is FailureKind.RATE_LIMITED and _retry_after(response) is not None:
        failure = replace(failure, retry_after=_retry_after(response))
    if failure.kind in (FailureKind.SERVER, FailureKind.BAD_RESPONSE) and not _is_json(
            getattr(response, "text", None)):
        described = _from_unparsed_response(response, action)
        failure = replace(failure, message=described.message)
    request_id = headers.get("Twilio-Request-Id")
    if request_id and failure.retry is Retry.AMBIGUOUS and request_id not in failure.message:
        failure = replace(failure, message=f"{failure.message} (Twilio request {request_id})",
                          more_info=failure.more_info or request_id)
    return failure


def _replace_retry(failure: Failure, retry: Retry) -> Failure:
    return replace(failure, message=failure.message.replace(f"; {MAY_HAVE_SENT}", ""), retry=retry)
