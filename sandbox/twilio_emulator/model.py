"""State of the Twilio emulator: accounts, numbers, messages, opt-outs, and Twilio's validation rules.

Nothing here knows about HTTP. ``Store`` is thread safe: every public method takes ``Store.lock``.
Message dicts kept here have the exact JSON shape of Twilio's Message resource; callers get copies.
"""
from __future__ import annotations

import base64
import email.utils
import hashlib
import itertools
import re
import secrets
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import date, datetime, time as dtime, timedelta, timezone

UTC = timezone.utc
API_VERSION = "2010-04-01"
API_ROOT = "/" + API_VERSION

# Valid-looking defaults (fixed, so that tests and app.config files can name them).
ACCOUNT_SID = "AC" + "0123456789abcdef" * 2
AUTH_TOKEN = "fedcba9876543210" * 2
API_KEY_SID = "SK" + "00112233445566778899aabbccddeeff"
API_KEY_SECRET = "emulator-api-key-secret-0123456789"
SENDER = "+15005550006"
MESSAGING_SERVICE_SID = "MG" + "a1b2c3d4e5f60718293a4b5c6d7e8f90"

E164_RE = re.compile(r"^\+[1-9][0-9]{1,14}$")
MG_RE = re.compile(r"^MG[0-9a-fA-F]{32}$")
MAX_BODY = 1600

STOP_WORDS = {"STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT", "REVOKE", "OPTOUT"}
START_WORDS = {"START", "YES", "UNSTOP"}
# Twilio matches a keyword only as the whole message; case, whitespace and punctuation around it are ignored.
KEYWORD_EDGES = " \t\r\n\f\v!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~"


def keyword_of(body: str | None) -> str:
    """The message as Twilio compares it with its keywords: ' Stop. ' -> 'STOP'."""
    return (body or "").strip(KEYWORD_EDGES).upper()


# Magic test numbers (twilio-api.md §4): To -> (code, message template).
MAGIC_TO = {
    "+15005550001": 21211,
    "+15005550002": 21612,
    "+15005550003": 21408,
    "+15005550004": 21610,
    "+15005550009": 21614,
}
MAGIC_FROM = {
    "+15005550001": 21212,
    "+15005550007": 21606,
    "+15005550008": 21611,
}

STATUS_FLOW = {"accepted": "queued", "queued": "sending", "sending": "sent", "sent": "delivered"}
FINAL_STATUSES = {"delivered", "undelivered", "failed", "received", "canceled", "read"}

DELIVERY_ERRORS = {
    14107: "SMS send rate limit exceeded",
    30001: "Queue overflow",
    30002: "Account suspended",
    30003: "Unreachable destination handset",
    30004: "Message blocked",
    30005: "Unknown destination handset",
    30006: "Landline or unreachable carrier",
    30007: "Message filtered",
    30008: "Unknown error",
    30022: "US A2P 10DLC - Rate Limits Exceeded",
    30036: "Validity Period Expired",
    63038: "Account exceeded the daily messages limit",
}

HTTP_DEFAULT_CODES = {400: 20001, 401: 20003, 403: 20403, 404: 20404, 405: 20004, 429: 20429,
                      500: 20500, 503: 20503}
CODE_MESSAGES = {
    20429: "Too Many Requests",
    20500: "An internal server error has occurred",
    20503: "Service is unavailable. Please try again",
    21611: "This 'From' number has exceeded the maximum number of queued messages",
    30001: "Queue overflow",
}
HTTP_MESSAGES = {
    429: "Too Many Requests",
    500: "Internal Server Error",
    502: "Bad Gateway",
    503: "Service Unavailable",
    504: "Gateway Timeout",
}

# --------------------------------------------------------------------------------------------
# Errors


class TwilioError(Exception):
    """A Twilio API error: becomes the JSON envelope {"code","message","more_info","status"}."""

    def __init__(self, status: int, code: int, message: str, headers: dict | None = None):
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers or {}

    def body(self) -> dict:
        return error_body(self.status, self.code, self.message)


def error_body(status: int, code: int, message: str) -> dict:
    return {"code": code, "message": message,
            "more_info": f"https://www.twilio.com/docs/errors/{code}", "status": status}


def bad_request(code: int, message: str) -> TwilioError:
    return TwilioError(400, code, message)


# --------------------------------------------------------------------------------------------
# Small helpers


def rfc2822(dt: datetime | None) -> str | None:
    """Aware datetime -> 'Thu, 24 Aug 2023 05:01:45 +0000' (Twilio's date format)."""
    if dt is None:
        return None
    return email.utils.format_datetime(dt.astimezone(UTC).replace(microsecond=0))


def now_utc() -> datetime:
    return datetime.now(UTC)


def new_sid(prefix: str) -> str:
    return prefix + secrets.token_hex(16)


def stable_sid(prefix: str, text: str) -> str:
    """A SID derived from text: the same number keeps the same PN… across runs."""
    return prefix + hashlib.md5(text.encode("utf-8")).hexdigest()


def strip_channel(address: str) -> tuple[str, str]:
    """'whatsapp:+353…' -> ('whatsapp:', '+353…'); '+353…' -> ('', '+353…')."""
    if ":" in address:
        channel, _, rest = address.partition(":")
        return channel + ":", rest
    return "", address


def is_address(address: str) -> bool:
    """E.164, or a channel address such as whatsapp:+E164."""
    channel, number = strip_channel(address)
    if channel and channel not in ("whatsapp:", "sms:"):
        return False
    return bool(E164_RE.match(number))


def calling_code(code) -> str:
    return str(code).strip().lstrip("+")


# GSM 03.38 basic character set (without the escape character) and its extension table.
GSM_BASIC = set(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
GSM_EXTENSION = set("^{}\\[~]|€\f")


def segment_count(body: str | None) -> int:
    """Number of SMS segments: GSM-7 160/153 septets (extension chars take 2),
    else UCS-2 70/67 UTF-16 code units (an emoji takes 2). An escape pair or a surrogate
    pair is never split across segments."""
    if not body:
        return 1
    if all(c in GSM_BASIC or c in GSM_EXTENSION for c in body):
        units = [2 if c in GSM_EXTENSION else 1 for c in body]
        single, multi = 160, 153
    else:
        units = [2 if ord(c) > 0xFFFF else 1 for c in body]
        single, multi = 70, 67
    if sum(units) <= single:
        return 1
    segments, used = 1, 0
    for u in units:
        if used + u > multi:
            segments += 1
            used = 0
        used += u
    return segments


# --------------------------------------------------------------------------------------------
# Date filters of the Messages list


def parse_filter_date(raw: str) -> tuple[datetime, bool]:
    """A DateSent filter value -> (aware UTC datetime, is_date_only).

    Accepts YYYY-MM-DD, YYYY-MM-DDTHH:MM:SS[.fff][Z|±HH:MM], 'YYYY-MM-DD HH:MM:SS[+00:00]' and
    RFC 2822. A value without a zone is UTC. Raises ValueError."""
    text = raw.strip()
    if re.fullmatch(r"\d{4}-\d{2}-\d{2}", text):
        d = date.fromisoformat(text)
        return datetime.combine(d, dtime(0), UTC), True
    try:
        dt = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        parsed = email.utils.parsedate_to_datetime(text)  # raises ValueError / TypeError
        if parsed is None:
            raise ValueError(text) from None
        dt = parsed
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return dt.astimezone(UTC), False


@dataclass
class DateFilter:
    on: tuple[datetime, bool] | None = None      # DateSent   (that date)
    before: tuple[datetime, bool] | None = None  # DateSent<  (on or before)
    after: tuple[datetime, bool] | None = None   # DateSent>  (on or after)

    @property
    def active(self) -> bool:
        """Whether any DateSent filter is set (then messages not yet sent, date_sent null, are left out)."""
        return self.on is not None or self.before is not None or self.after is not None

    def accepts(self, when: datetime) -> bool:
        when = when.replace(microsecond=0)
        if self.on is not None:  # DateSent=: sent on that (UTC) date, whatever the time part says
            day = datetime.combine(self.on[0].date(), dtime(0), UTC)
            if not (day <= when < day + timedelta(days=1)):
                return False
        if self.after is not None:
            dt, _ = self.after
            if when < dt.replace(microsecond=0):
                return False
        if self.before is not None:
            dt, date_only = self.before
            limit = dt + timedelta(days=1) if date_only else dt.replace(microsecond=0) + timedelta(seconds=1)
            if when >= limit:
                return False
        return True


# --------------------------------------------------------------------------------------------
# Messages


@dataclass
class _Msg:
    seq: int
    created: datetime
    sent: datetime | None
    data: dict
    key: tuple = (0, 0)
    plan: list = field(default_factory=list)   # lifecycle steps still to come: [(when, step)], oldest first

    def __post_init__(self):
        self.rekey()

    @property
    def when(self) -> datetime:
        """The date the list sorts and filters on: date_sent, or date_created before it is sent."""
        return self.sent or self.created

    def rekey(self) -> None:
        """The list's sort key (newest first = largest): (when in µs, creation sequence)."""
        self.key = (int(self.when.timestamp() * 1_000_000), self.seq)


# --------------------------------------------------------------------------------------------
# Delivery: how outbound messages move on their own, and how each recipient's messages end

DELIVERY_OUTCOMES = ("delivered", "undelivered", "failed", "sent")


@dataclass(frozen=True)
class DeliverySchedule:
    """Outbound messages move on their own: ``sent_after`` seconds after creation a message is
    ``sent`` (``date_sent`` set; a Messaging Service message is ``queued``, with its sender chosen,
    from creation on), and ``delivered_after`` seconds later its receipt makes it ``delivered``, or
    what ``DeliveryOutcome`` says for its recipient. Raises ValueError for a negative delay."""
    sent_after: float = 0.0
    delivered_after: float = 0.0

    def __post_init__(self):
        for name in ("sent_after", "delivered_after"):
            value = getattr(self, name)
            number = isinstance(value, (int, float)) and not isinstance(value, bool)
            if not number or not 0 <= value < float("inf"):
                raise ValueError(f"{name} must be a number of seconds, 0 or more, not {value!r}")
            object.__setattr__(self, name, float(value))


@dataclass(frozen=True)
class DeliveryOutcome:
    """How messages to one recipient end: ``delivered``; ``undelivered`` (sent, then the carrier's
    receipt says not delivered) or ``failed`` (never sent; ``date_sent`` stays null), each with a
    Twilio error code (30003, 30007, ...; the message defaults to Twilio's title for the code); or
    ``sent`` (no receipt ever comes). Raises ValueError for anything else."""
    status: str = "delivered"
    error_code: int | None = None
    error_message: str | None = None

    def __post_init__(self):
        if self.status not in DELIVERY_OUTCOMES:
            raise ValueError(f"a delivery outcome is one of {', '.join(DELIVERY_OUTCOMES)}, "
                             f"not {self.status!r}")
        if self.status in ("undelivered", "failed"):
            if isinstance(self.error_code, bool) or not isinstance(self.error_code, int):
                raise ValueError(f"a {self.status!r} outcome needs an integer error_code (e.g. 30003), "
                                 f"not {self.error_code!r}")
            if self.error_message is None:
                title = DELIVERY_ERRORS.get(self.error_code, "Unknown error")
                object.__setattr__(self, "error_message", title)
        elif self.error_code is not None or self.error_message is not None:
            raise ValueError(f"a {self.status!r} outcome has no error_code or error_message")


# --------------------------------------------------------------------------------------------
# Twilio's loop guard between two numbers (error 14107)

RATE_LIMITED_CODE = 14107


@dataclass(frozen=True)
class PairRateLimit:
    """Twilio's guard against runaway loops (error 14107, "SMS send rate limit exceeded"): a text beyond
    ``limit`` from one number to another within ``window`` seconds is accepted (201, ``queued``) and then
    fails (``failed``, error 14107), and so does every further text between that pair for ``block``
    seconds after it; then the count starts again. Twilio's figures are 30 texts, 30 s, 30 s; tests may
    shrink them. Raises ValueError for a limit below 1 or a duration not above 0."""
    limit: int = 30
    window: float = 30.0
    block: float = 30.0

    def __post_init__(self):
        if isinstance(self.limit, bool) or not isinstance(self.limit, int) or self.limit < 1:
            raise ValueError(f"limit must be a whole number of texts, 1 or more, not {self.limit!r}")
        for name in ("window", "block"):
            value = getattr(self, name)
            number = isinstance(value, (int, float)) and not isinstance(value, bool)
            if not number or not 0 < value < float("inf"):
                raise ValueError(f"{name} must be a number of seconds above 0, not {value!r}")
            object.__setattr__(self, name, float(value))


@dataclass
class _PairState:
    """What the loop guard remembers of one (sender, recipient) pair."""
    sent: list = field(default_factory=list)   # creation dates of the texts counted, oldest first
    blocked_until: datetime | None = None


def encode_token(prefix: str, key: tuple[int, int]) -> str:
    raw = f"{key[0]}.{key[1]}".encode("ascii")
    return prefix + base64.urlsafe_b64encode(raw).decode("ascii").rstrip("=")


def decode_token(token: str) -> tuple[str, tuple[int, int]]:
    """'PA…'/'PB…' -> (prefix, sort key). Raises ValueError."""
    prefix, body = token[:2], token[2:]
    if prefix not in ("PA", "PB") or not body:
        raise ValueError(token)
    raw = base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)).decode("ascii")
    a, b = raw.split(".")
    return prefix, (int(a), int(b))


@dataclass
class Store:
    account_sid: str = ACCOUNT_SID
    auth_token: str = AUTH_TOKEN
    api_keys: dict = field(default_factory=dict)
    numbers: list = field(default_factory=list)
    messaging_services: dict = field(default_factory=dict)
    clock: Callable[[], datetime] = now_utc       # the emulator's "now" (aware UTC); tests may drive it
    schedule: DeliverySchedule | None = None   # None: messages move only by set_status/advance_statuses
    pair_limit: PairRateLimit | None = field(default_factory=PairRateLimit)   # None: no 14107 guard

    def __post_init__(self):
        self.lock = threading.RLock()
        self.numbers = list(dict.fromkeys(self.numbers))
        self.messaging_services = {sid: tuple(pool) for sid, pool in self.messaging_services.items()}
        for pool in self.messaging_services.values():
            for n in pool:
                if n not in self.numbers:
                    self.numbers.append(n)
        self.created = datetime(2020, 1, 1, tzinfo=UTC)
        self._seq = itertools.count(1)
        self._rr = itertools.count()
        self.reset()

    # --- configuration ------------------------------------------------------------------

    def reset(self) -> None:
        with self.lock:
            self.msgs: dict[str, _Msg] = {}
            self.planned: dict[str, _Msg] = {}          # messages the schedule still moves
            self.outcomes: dict[str, DeliveryOutcome] = {}
            self.opt_outs: set[tuple[str, str]] = set()
            self.geo_disabled: set[str] = set()
            self.landlines: set[str] = set()
            self.pairs: dict[tuple[str, str], _PairState] = {}
            self.voice_less: set[str] = set()          # numbers whose capabilities.voice is false

    def add_number(self, e164: str) -> None:
        with self.lock:
            if e164 not in self.numbers:
                self.numbers.append(e164)

    def opt_out(self, sender: str, recipient: str) -> None:
        with self.lock:
            self.opt_outs.add((sender, recipient))

    def set_voice_capable(self, number: str, voice: bool) -> None:
        with self.lock:
            if voice:
                self.voice_less.discard(number)
            else:
                self.voice_less.add(number)

    def can_call_from(self, number: str) -> bool:
        """A number of the account whose capabilities include voice."""
        with self.lock:
            return number in self.numbers and number not in self.voice_less

    def opt_out_scope(self, number: str) -> set[str]:
        """The senders an opt-out from ``number`` covers: the number, and every number of a
        Messaging Service it belongs to (opting out of one opts out of the whole service)."""
        plain = strip_channel(number)[1]
        scope = {plain}
        for pool in self.messaging_services.values():
            if plain in pool or number in pool:
                scope.update(pool)
        return scope

    def is_opted_out(self, senders: Iterable[str], recipient: str) -> bool:
        plain = strip_channel(recipient)[1]
        with self.lock:
            scope = set().union(*(self.opt_out_scope(s) for s in senders))
            return any((s, plain) in self.opt_outs or (s, recipient) in self.opt_outs for s in scope)

    def set_delivery_schedule(self, schedule: DeliverySchedule | None) -> None:
        """Messages created from now on move as ``schedule`` says (None: they stay where they are)."""
        with self.lock:
            self.schedule = schedule

    def set_delivery_outcome(self, recipient: str, outcome: DeliveryOutcome | None) -> None:
        """How messages to ``recipient`` end from now on (None: delivered again)."""
        with self.lock:
            key = strip_channel(recipient)[1]
            if outcome is None or outcome == DeliveryOutcome():
                self.outcomes.pop(key, None)
            else:
                self.outcomes[key] = outcome

    def outcome_for(self, recipient: str) -> DeliveryOutcome:
        with self.lock:
            return self.outcomes.get(strip_channel(recipient)[1], DeliveryOutcome())

    def opt_in(self, sender: str, recipient: str) -> None:
        with self.lock:
            self.opt_outs.discard((sender, recipient))

    def set_pair_limit(self, limit: PairRateLimit | None) -> None:
        """Texts created from now on are checked against ``limit`` (None: never fail with 14107)."""
        with self.lock:
            self.pair_limit = limit
            self.pairs.clear()

    def _rate_limited(self, sender: str, to: str, now: datetime) -> bool:
        """Count a new text between ``sender`` and ``to``: True when Twilio's loop guard fails it."""
        rule = self.pair_limit
        if rule is None:
            return False
        state = self.pairs.setdefault((sender, to), _PairState())
        if state.blocked_until is not None:
            if now < state.blocked_until:
                return True
            state.blocked_until, state.sent = None, []      # the block is over: counting starts again
        floor = now - timedelta(seconds=rule.window)
        state.sent = [at for at in state.sent if at > floor]
        if len(state.sent) >= rule.limit:
            state.blocked_until = now + timedelta(seconds=rule.block)
            return True
        state.sent.append(now)
        return False

    def disable_geo(self, code) -> None:
        with self.lock:
            self.geo_disabled.add(calling_code(code))

    def enable_geo(self, code) -> None:
        with self.lock:
            self.geo_disabled.discard(calling_code(code))

    def add_landline(self, e164: str) -> None:
        with self.lock:
            self.landlines.add(e164)

    # --- resources ----------------------------------------------------------------------

    def account_resource(self) -> dict:
        sid = self.account_sid
        base = f"{API_ROOT}/Accounts/{sid}"
        subs = {name: f"{base}/{path}.json" for name, path in (
            ("addresses", "Addresses"), ("calls", "Calls"),
            ("incoming_phone_numbers", "IncomingPhoneNumbers"),
            ("messages", "Messages"), ("balance", "Balance"), ("keys", "Keys"), ("usage", "Usage"))}
        return {
            "auth_token": self.auth_token, "date_created": rfc2822(self.created),
            "date_updated": rfc2822(self.created), "friendly_name": "Twilio emulator account",
            "owner_account_sid": sid, "sid": sid, "status": "active", "subresource_uris": subs,
            "type": "Full", "uri": base + ".json",
        }

    def number_resource(self, e164: str) -> dict:
        sid = stable_sid("PN", self.account_sid + e164)
        uri = f"{API_ROOT}/Accounts/{self.account_sid}/IncomingPhoneNumbers/{sid}.json"
        return {
            "account_sid": self.account_sid, "address_sid": None, "address_requirements": "none",
            "api_version": API_VERSION, "beta": False,
            "capabilities": {"fax": False, "voice": e164 not in self.voice_less, "sms": True, "mms": True},
            "date_created": rfc2822(self.created), "date_updated": rfc2822(self.created),
            "friendly_name": e164, "identity_sid": None, "phone_number": e164, "origin": "twilio",
            "sid": sid, "sms_application_sid": None, "sms_fallback_method": "POST", "sms_fallback_url": "",
            "sms_method": "POST", "sms_url": "", "status_callback": "", "status_callback_method": "POST",
            "trunk_sid": None, "uri": uri, "voice_receive_mode": "voice", "voice_application_sid": None,
            "voice_caller_id_lookup": False, "voice_fallback_method": "POST", "voice_fallback_url": None,
            "voice_method": "POST", "voice_url": None, "emergency_status": "Inactive",
            "emergency_address_sid": None, "emergency_address_status": "unregistered", "bundle_sid": None,
            "status": "in-use", "type": "local",
            "subresource_uris": {"assigned_add_ons": uri.replace(".json", "/AssignedAddOns.json")},
        }

    def list_numbers(self, phone_number: str | None) -> list[dict]:
        with self.lock:
            numbers = list(self.numbers)
        if phone_number:
            wanted = re.sub(r"[^0-9]", "", phone_number)
            numbers = [n for n in numbers
                       if n == phone_number or (wanted and wanted in re.sub(r"[^0-9]", "", n))]
        return [self.number_resource(n) for n in numbers]

    # --- messages -----------------------------------------------------------------------

    def _message_data(self, sid: str, *, from_, to, body, direction, status, created, sent,
                      messaging_service_sid=None, num_segments=None, num_media=0) -> dict:
        uri = f"{API_ROOT}/Accounts/{self.account_sid}/Messages/{sid}.json"
        created_text = rfc2822(created)
        sent_text = created_text if sent is created else rfc2822(sent)
        return {
            "account_sid": self.account_sid, "api_version": API_VERSION, "body": body,
            "date_created": created_text, "date_sent": sent_text, "date_updated": sent_text or created_text,
            "direction": direction, "error_code": None, "error_message": None, "from": from_,
            "messaging_service_sid": messaging_service_sid,
            "num_media": str(num_media),
            "num_segments": str(segment_count(body) if num_segments is None else num_segments),
            "price": None, "price_unit": "USD", "sid": sid, "status": status,
            "subresource_uris": {"media": uri.replace(".json", "/Media.json"),
                                 "feedback": uri.replace(".json", "/Feedback.json")},
            "to": to, "uri": uri,
        }

    def _add(self, data: dict, created: datetime, sent: datetime | None) -> _Msg:
        msg = _Msg(next(self._seq), created, sent, data)
        self.msgs[data["sid"]] = msg
        return msg

    @staticmethod
    def copy(data: dict) -> dict:
        out = dict(data)
        out["subresource_uris"] = dict(data["subresource_uris"])
        return out

    def service_of(self, number: str) -> str | None:
        _, plain = strip_channel(number)
        for sid, pool in self.messaging_services.items():
            if plain in pool or number in pool:
                return sid
        return None

    def create_message(self, form: dict) -> dict:
        """Validate a create request the way Twilio does and store the message. Raises TwilioError."""
        def one(name):
            v = form.get(name)
            if isinstance(v, list):
                v = v[-1] if v else None
            return v if v not in (None, "") else None

        to, from_, mss = one("To"), one("From"), one("MessagingServiceSid")
        body = form.get("Body")
        body = body[-1] if isinstance(body, list) else body
        media = form.get("MediaUrl") or []
        media = [media] if isinstance(media, str) else [m for m in media if m]
        content_sid = one("ContentSid")

        if to is None:
            raise bad_request(21604, "A 'To' phone number is required.")
        if from_ is None and mss is None:
            raise bad_request(21603, "A 'From' or 'MessagingServiceSid' parameter is required to send a "
                                     "message.")
        if not body and not media and not content_sid:
            if mss is not None and from_ is None:
                raise bad_request(21619, "A text message body, media URL, or Content SID is required.")
            raise bad_request(21602, "Message body is required.")
        if body and len(body) > MAX_BODY:
            raise bad_request(21617, "The concatenated message body exceeds the 1600 character limit.")
        if not is_address(to) or MAGIC_TO.get(to) == 21211:
            raise bad_request(21211, f"The 'To' number {to} is not a valid phone number.")
        if mss is not None and from_ is None:
            if not MG_RE.match(mss) or mss not in self.messaging_services:
                raise bad_request(21701, f"The Messaging Service Sid {mss} is invalid.")
            senders = list(self.messaging_services[mss])
        else:
            code = MAGIC_FROM.get(from_)
            if code == 21212 or not is_address(from_):
                raise bad_request(21212, f"The 'From' number {from_} is not a valid phone number, "
                                         "shortcode, or alphanumeric sender ID.")
            if code == 21611:
                raise bad_request(21611, f"This 'From' number {from_} has exceeded the maximum number of "
                                         "queued messages.")
            with self.lock:
                owned = strip_channel(from_)[1] in self.numbers
            if code == 21606 or not owned:
                raise bad_request(21606, f"The From phone number {from_} is not a valid, SMS-capable inbound "
                                         "phone number or short code for your account.")
            senders = [strip_channel(from_)[1]]
        to_number = strip_channel(to)[1]
        code = MAGIC_TO.get(to_number)
        with self.lock:
            geo_off = any(to_number[1:].startswith(cc) for cc in self.geo_disabled)
            landline = to_number in self.landlines
        opted_out = self.is_opted_out(senders, to)
        if code == 21612:
            raise bad_request(21612, f"The 'To' phone number: {to}, is not currently reachable using the "
                                     f"'From' phone number: {from_ or senders[0]} via SMS.")
        if code == 21408 or geo_off:
            raise bad_request(21408, "Permission to send an SMS has not been enabled for the region "
                                     f"indicated by the 'To' number: {to}.")
        if code == 21610 or opted_out:
            raise bad_request(21610, "Attempt to send to unsubscribed recipient")
        if code == 21614 or landline:
            raise bad_request(21614, f"'To' number {to} is not a valid mobile number")

        created = self.clock()
        sid = new_sid("SM" if not media else "MM")
        if from_ is None:
            data = self._message_data(sid, from_=None, to=to, body=body or "", direction="outbound-api",
                                      status="accepted", created=created, sent=None,
                                      messaging_service_sid=mss, num_segments=0, num_media=len(media))
        else:
            data = self._message_data(sid, from_=from_, to=to, body=body or "", direction="outbound-api",
                                      status="queued", created=created, sent=None,
                                      messaging_service_sid=mss, num_media=len(media))
        with self.lock:
            msg = self._add(data, created, None)
            if self._rate_limited(from_ or mss, to, created):
                # accepted like any text, then failed by the loop guard (before it would be sent)
                msg.plan = [(created, "rate_limited")]
                self.planned[sid] = msg
            else:
                self._plan(msg)
            return self.copy(data)

    def inject_inbound(self, from_: str, to: str, body: str, date_sent: datetime | None = None) -> dict:
        sent = (date_sent or self.clock()).astimezone(UTC)
        data = self._message_data(new_sid("SM"), from_=from_, to=to, body=body, direction="inbound",
                                  status="received", created=sent, sent=sent,
                                  messaging_service_sid=self.service_of(to))
        word = keyword_of(body)
        sender, recipient = strip_channel(to)[1], strip_channel(from_)[1]
        with self.lock:
            self._add(data, sent, sent)
            if word in STOP_WORDS:
                self.opt_outs.add((sender, recipient))
            elif word in START_WORDS:
                for number in self.opt_out_scope(sender):
                    self.opt_outs.discard((number, recipient))
            return self.copy(data)

    def seed_history(self, count: int, *, from_: str, to: str, direction: str = "outbound-api",
                     start: datetime | None = None, step: timedelta = timedelta(seconds=1),
                     body: str = "History message {i}") -> list[str]:
        if start is None:
            start = self.clock() - step * (count + 1)
        start = start.astimezone(UTC)
        inbound = direction == "inbound"
        status = "received" if inbound else "delivered"
        mss = self.service_of(to if inbound else from_)
        segments = None if "{i}" in body else segment_count(body)
        prepared = []
        for i in range(count):
            when = start + step * i
            text = body.format(i=i) if "{i}" in body else body
            data = self._message_data(new_sid("SM"), from_=from_, to=to, body=text, direction=direction,
                                      status=status, created=when, sent=when, messaging_service_sid=mss,
                                      num_segments=segments)
            prepared.append((data, when))
        with self.lock:
            for data, when in prepared:
                self._add(data, when, when)
        return [d["sid"] for d, _ in prepared]

    def get(self, sid: str) -> dict:
        with self.lock:
            self._progress()
            msg = self.msgs.get(sid)
            if msg is None:
                raise TwilioError(404, 20404, f"The requested resource "
                                  f"{API_ROOT}/Accounts/{self.account_sid}/Messages/{sid}.json was not found")
            return self.copy(msg.data)

    def delete(self, sid: str) -> None:
        with self.lock:
            self.get(sid)
            del self.msgs[sid]
            self.planned.pop(sid, None)

    def update(self, sid: str, form: dict) -> dict:
        with self.lock:
            self.get(sid)
            msg = self.msgs[sid]
            if "Body" in form:
                if form["Body"] != "":
                    raise bad_request(20001, "Body can only be redacted (set to an empty string).")
                msg.data["body"] = ""
            if form.get("Status"):
                cancelable = msg.data["status"] in ("scheduled", "accepted", "queued")
                if form["Status"] != "canceled" or not cancelable:
                    raise bad_request(30409, "Message cannot be canceled in its current status.")
                msg.data["status"] = "canceled"
                self._unplan(msg)
            msg.data["date_updated"] = rfc2822(self.clock())
            return self.copy(msg.data)

    def all_messages(self) -> list[dict]:
        with self.lock:
            self._progress()
            return [self.copy(m.data) for m in sorted(self.msgs.values(), key=lambda m: m.seq)]

    # --- state machine ------------------------------------------------------------------

    def _set_status(self, msg: _Msg, status: str, error_code=None, error_message=None,
                    at: datetime | None = None) -> None:
        data, now = msg.data, at or self.clock()
        if data["status"] == "accepted" and status != "accepted" and data["from"] is None:
            pool = self.messaging_services.get(data["messaging_service_sid"]) or ("+15005550006",)
            data["from"] = pool[next(self._rr) % len(pool)]
            data["num_segments"] = str(segment_count(data["body"]))
        data["status"] = status
        if status in ("sent", "delivered", "undelivered") and msg.sent is None:
            msg.sent = now
            msg.rekey()
            data["date_sent"] = rfc2822(now)
            data["price"] = f"-{0.0079 * int(data['num_segments'] or 1):.5f}"
        if error_code is not None:
            data["error_code"] = int(error_code)
            data["error_message"] = error_message or DELIVERY_ERRORS.get(int(error_code), "Unknown error")
        elif status not in ("failed", "undelivered"):
            data["error_code"] = data["error_message"] = None
        data["date_updated"] = rfc2822(now)

    def set_status(self, sid: str, status: str, error_code=None, error_message=None) -> dict:
        """Put a message in ``status``; the schedule no longer moves it."""
        with self.lock:
            self.get(sid)
            msg = self.msgs[sid]
            self._unplan(msg)
            self._set_status(msg, status, error_code, error_message)
            return self.copy(msg.data)

    def _next_status(self, msg: _Msg) -> tuple[str, DeliveryOutcome] | None:
        """The step after the message's status, with the recipient's outcome applied; None at the end."""
        status = msg.data["status"]
        if status not in STATUS_FLOW:
            return None
        outcome = self.outcome_for(msg.data["to"])
        if outcome.status == "failed" and status in ("queued", "sending"):
            return "failed", outcome
        if status == "sent":
            return None if outcome.status == "sent" else (outcome.status, outcome)
        return STATUS_FLOW[status], DeliveryOutcome()

    def advance_statuses(self, steps: int | None = None) -> int:
        """Move every outbound message along accepted→queued→sending→sent→delivered (or the outcome
        set for its recipient): `steps` steps each, or all the way when None; the schedule no longer
        moves them. Returns how many changed."""
        changed = 0
        with self.lock:
            self._progress()
            for msg in self.msgs.values():
                if msg.data["direction"] == "inbound":
                    continue
                self._unplan(msg)
                moved = False
                n = 0
                while (steps is None or n < steps) and (step := self._next_status(msg)) is not None:
                    status, outcome = step
                    self._set_status(msg, status, outcome.error_code, outcome.error_message)
                    n += 1
                    moved = True
                changed += moved
        return changed

    # --- the delivery schedule (applied lazily: whenever messages are read) ----------------

    def _plan(self, msg: _Msg) -> None:
        """Give a new outbound message its steps under the current schedule (none when it is off)."""
        schedule = self.schedule
        if schedule is None:
            return
        sent_at = msg.created + timedelta(seconds=schedule.sent_after)
        msg.plan = [(msg.created, "queued")] if msg.data["status"] == "accepted" else []
        msg.plan += [(sent_at, "sent"), (sent_at + timedelta(seconds=schedule.delivered_after), "receipt")]
        self.planned[msg.data["sid"]] = msg

    def _unplan(self, msg: _Msg) -> None:
        msg.plan = []
        self.planned.pop(msg.data["sid"], None)

    def _progress(self) -> None:
        """Take every scheduled step that is due, each dated when it was due."""
        if not self.planned:
            return
        now = self.clock()
        for msg in list(self.planned.values()):
            while msg.plan and msg.plan[0][0] <= now:
                at, step = msg.plan.pop(0)
                outcome = self.outcome_for(msg.data["to"])
                if step == "rate_limited":
                    self._set_status(msg, "failed", RATE_LIMITED_CODE, at=at)
                    msg.plan = []
                elif step == "queued":
                    self._set_status(msg, "queued", at=at)
                elif outcome.status == "failed":          # never sent: fails where it would have been sent
                    self._set_status(msg, "failed", outcome.error_code, outcome.error_message, at=at)
                    msg.plan = []
                elif step == "sent":
                    self._set_status(msg, "sent", at=at)
                elif outcome.status != "sent":            # "sent": no receipt ever comes
                    self._set_status(msg, outcome.status, outcome.error_code, outcome.error_message, at=at)
            if not msg.plan:
                self.planned.pop(msg.data["sid"], None)

    # --- listing ------------------------------------------------------------------------

    def list_page(self, *, to=None, from_=None, dates: DateFilter | None = None, page_size: int = 50,
                  page: int = 0, token: str | None = None) -> tuple[list[dict], str | None, str | None]:
        """One page of messages, newest first (date_sent, else date_created; then creation order).

        Without a token the page is an offset (page * page_size). A 'PA' token continues after the
        position it encodes, a 'PB' token returns the page before it, so a cursor stays stable while
        new messages arrive. Returns (message copies, next token or None, previous token or None).
        Raises ValueError for a malformed token."""
        direction, pos = decode_token(token) if token else (None, None)
        dated = dates is not None and dates.active
        with self.lock:
            self._progress()
            items = [(m.key, m) for m in self.msgs.values()
                     if (to is None or m.data["to"] == to)
                     and (from_ is None or m.data["from"] == from_)
                     and (not dated or (m.sent is not None and dates.accepts(m.sent)))]
            items.sort(key=lambda km: km[0], reverse=True)
            if direction == "PA":
                rest = [km for km in items if km[0] < pos]
                chosen, has_next = rest[:page_size], len(rest) > page_size
            elif direction == "PB":
                before = [km for km in items if km[0] > pos]
                chosen = before[-page_size:]
                has_next = bool(chosen) and any(km[0] < chosen[-1][0] for km in items)
            else:
                offset = page * page_size
                chosen, has_next = items[offset:offset + page_size], len(items) > offset + page_size
            records = [self.copy(m.data) for _, m in chosen]
        next_token = encode_token("PA", chosen[-1][0]) if has_next and chosen else None
        prev_token = encode_token("PB", chosen[0][0]) if page > 0 and chosen else None
        return records, next_token, prev_token


def iter_pool(services: dict) -> Iterable[str]:
    for pool in services.values():
        yield from pool
