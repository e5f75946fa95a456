"""The app.config section ``[fn_twilio_send_sms]``, checked and typed (contract §2).

``load_settings`` takes the section as resilient-circuits hands it over (``$ENV`` and
``^keystore`` references already resolved) and returns a frozen :class:`Settings`, or raises
:class:`SettingsError` whose message names the key at fault. A secret value
(``twilio_auth_token``, ``twilio_api_key_secret``) never appears in a message or a repr: messages
about secret keys do not quote the value, and every message is scrubbed of the section's secret
values in case one was pasted into the wrong key.

Rules:

* Blank values count as absent; unknown keys are ignored.
* ``twilio_account_sid`` is required: ``AC`` + 32 hex digits.
* Credentials: ``twilio_auth_token``, or the pair ``twilio_api_key_sid`` (``SK`` + 32 hex digits)
  + ``twilio_api_key_secret``. When both an auth token and an API key are configured, **the API
  key wins**: clients authenticate with ``api_key_sid``/``api_key_secret`` whenever they are set.
* Sender: ``twilio_src_address`` (a phone number, normalised to E.164 with ``default_region``;
  or an alphanumeric sender ID of 1-11 letters, digits and spaces with at least one letter, kept
  as written), or ``twilio_messaging_service_sid`` (``MG`` + 32 hex digits). When both are set the
  number is the sender (``Settings.sender``) and the service SID is kept.
* ``default_region``: an ISO country code the phone library knows (``us`` -> ``US``).
* ``max_recipients`` 1..1000, ``max_concurrency`` 1..50 (whole numbers).
* ``poll_interval``: a duration (``2s``) from 0.2 s to 10 min; ``max_wait_timeout``: a duration
  above zero (``24h``); ``timeout``: a positive number of seconds (``30``; a duration such as
  ``30s`` also reads), the ``timeout`` argument overriding the key.
* ``twilio_base_url``: an http(s) URL with no path beyond ``/``; a trailing ``/`` is removed.
* Storms (contract §15): ``max_texts_per_person`` 1..30 (whole number, default 10) texts from the
  sender to one number in any ``person_window`` (a duration, 5 s to 1 h, default ``60s``). Twilio
  fails every text beyond 30 between two numbers within 30 s (error 14107), hence the cap; a window
  shorter than 30 s whose limit would still let more than 30 texts through in 30 s is refused too.
* ``ack_keywords`` / ``decline_keywords``: words separated by commas (``ACK, OK``), each one word
  of letters and digits, case ignored (kept upper case); none of Twilio's own keywords (STOP,
  START, YES, HELP, ...) and no word in both lists (checked by ``fn_twilio.lib.intents``).
* ``voice_sender``: the number calls come from (a page's ``voice:`` entries, contract §14), a phone
  number normalised like ``twilio_src_address``; an alphanumeric sender ID or a WhatsApp address is
  refused. Unset: ``twilio_src_address`` when that is a phone number. ``Settings.caller`` is the
  number to call from (None when there is none); :func:`voice_caller` gives it or the error that
  names the setting, for a caller to ask before anything is sent.
* ``studio_flow_sid``: ``FW`` + 32 hex digits, a Studio Flow of the account to run calls with
  instead of the one the app creates.
* Placeholders (``ACxxxxxxxx``, ``<your token>``) and unresolved ``$VAR``/``^key`` references
  are reported as not set.

Plain Python: nothing here imports SOAR libraries.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

from fn_twilio.lib.durations import DurationError, format_duration, parse_duration
from fn_twilio.lib.intents import (ACK_SETTING, DECLINE_SETTING, DEFAULT_ACK_KEYWORDS,
                                   DEFAULT_DECLINE_KEYWORDS, KeywordError, Keywords, check_keywords,
                                   keywords)
from fn_twilio.lib.phone import PhoneNumberError, normalise, validate_region

__all__ = ["SECTION", "DEFAULTS", "SECRET_KEYS", "SettingsError", "Settings", "load_settings", "voice_caller"]

SECTION = "fn_twilio_send_sms"

DEFAULTS = {
    "max_recipients": "100",
    "max_concurrency": "5",
    "poll_interval": "2s",
    "max_wait_timeout": "24h",
    "timeout": "30",
    "twilio_base_url": "https://api.twilio.com",
    "max_texts_per_person": "10",
    "person_window": "60s",
    ACK_SETTING: ", ".join(DEFAULT_ACK_KEYWORDS),
    DECLINE_SETTING: ", ".join(DEFAULT_DECLINE_KEYWORDS),
}

SECRET_KEYS = ("twilio_auth_token", "twilio_api_key_secret")

MAX_RECIPIENTS_LIMIT = 1000
MAX_CONCURRENCY_LIMIT = 50
POLL_INTERVAL_MIN = 0.2
POLL_INTERVAL_MAX = 600.0
PERSON_WINDOW_MIN = 5.0
PERSON_WINDOW_MAX = 3600.0
# Twilio fails a text beyond 30 between the same two numbers within 30 s (error 14107)
TWILIO_PAIR_LIMIT = 30
TWILIO_PAIR_WINDOW = 30.0
MAX_TEXTS_PER_PERSON_LIMIT = TWILIO_PAIR_LIMIT

_ACCOUNT_SID = re.compile(r"^AC[0-9a-fA-F]{32}$")
_API_KEY_SID = re.compile(r"^SK[0-9a-fA-F]{32}$")
_SERVICE_SID = re.compile(r"^MG[0-9a-fA-F]{32}$")
_FLOW_SID = re.compile(r"^FW[0-9a-fA-F]{32}$")
_WHATSAPP = "whatsapp:"
_ALPHANUMERIC_SENDER = re.compile(r"^(?=.*[A-Za-z])[A-Za-z0-9 ]{1,11}$")
_WHOLE_NUMBER = re.compile(r"^\+?[0-9]+$")
_PLACEHOLDER = re.compile(r"^(?:AC|SK|MG)?x+$|<[^>]*>|^(?:your[ _-].*|changeme|change[ _-]me|todo|tbd)$",
                          re.IGNORECASE)
_UNRESOLVED = re.compile(r"^[$^]\{?[A-Za-z_][A-Za-z0-9_.]*\}?$")
_SCRUB_MIN_LENGTH = 4


class SettingsError(ValueError):
    """A missing or malformed app.config setting; the message names the key, never a secret value."""


@dataclass(frozen=True)
class Settings:
    """The checked ``[fn_twilio_send_sms]`` settings; durations in seconds. Secrets stay out of repr.

    When ``api_key_sid`` is set, clients authenticate with the API key (it wins over
    ``auth_token``). ``sender`` is ``src_address`` when set, else ``messaging_service_sid``.
    """

    account_sid: str
    auth_token: str | None = field(repr=False)
    api_key_sid: str | None = None
    api_key_secret: str | None = field(default=None, repr=False)
    src_address: str | None = None
    messaging_service_sid: str | None = None
    default_region: str | None = None
    max_recipients: int = 100
    max_concurrency: int = 5
    poll_interval: float = 2.0
    max_wait_timeout: float = 86400.0
    timeout: float = 30.0
    base_url: str = "https://api.twilio.com"
    proxies: dict[str, str] | None = None
    verify: object = True
    ack_keywords: tuple[str, ...] = DEFAULT_ACK_KEYWORDS
    decline_keywords: tuple[str, ...] = DEFAULT_DECLINE_KEYWORDS
    max_texts_per_person: int = 10
    person_window: float = 60.0
    voice_sender: str | None = None
    studio_flow_sid: str | None = None

    @property
    def caller(self) -> str | None:
        """The number calls are placed from: ``voice_sender``, else ``twilio_src_address`` when it is
        a phone number; None when neither can call (see :func:`voice_caller` for why)."""
        if self.voice_sender:
            return self.voice_sender
        src = self.src_address
        if src and not self.alphanumeric_sender and not src.lower().startswith(_WHATSAPP):
            return src
        return None

    @property
    def keywords(self) -> Keywords:
        """The acknowledgement and decline keywords, for reading replies (``intents.read_reply``)."""
        return Keywords(acknowledge=self.ack_keywords, decline=self.decline_keywords)

    @property
    def alphanumeric_sender(self) -> bool:
        """True when the sender is an alphanumeric sender ID (``MyCompany``), not a phone number."""
        return bool(self.src_address and _ALPHANUMERIC_SENDER.match(self.src_address))

    @property
    def sender(self) -> str:
        """The sending address for messages and keys: the number/sender ID, else the service SID."""
        return self.src_address or self.messaging_service_sid or ""


class _Reader:
    """Reads one section, building messages that name keys and never show secrets."""

    def __init__(self, section: Mapping[str, object], name: str = SECTION):
        self.section = section
        self.name = name
        self.secret_values = []
        for key in SECRET_KEYS:
            value = section.get(key)
            if isinstance(value, str) and len(value.strip()) >= _SCRUB_MIN_LENGTH:
                self.secret_values.append(value.strip())
        # longest first, so that a secret containing another is replaced whole
        self.secret_values.sort(key=len, reverse=True)

    def error(self, message: str) -> SettingsError:
        for secret in self.secret_values:
            message = message.replace(secret, "***")
        return SettingsError(message)

    def shown(self, key: str, value: object) -> str:
        """How a value may appear in a message: quoted, or not at all for a secret key."""
        return "" if key in SECRET_KEYS else f" {value!r}"

    def raw(self, key: str) -> Any:
        """The value of ``key`` with blank text treated as absent (None)."""
        value = self.section.get(key)
        if value is None:
            return None
        if isinstance(value, str):
            value = value.strip()
            if not value:
                return None
        return value

    def text(self, key: str) -> str | None:
        """The value of ``key`` as text, None when absent; placeholders are errors."""
        value = self.raw(key)
        if value is None:
            return None
        value = str(value).strip()
        if _UNRESOLVED.match(value):
            raise self.error(f"{key} is not set: it holds an unresolved $ENV or ^keystore "
                             f"reference{self.shown(key, value)}; check that "
                             "the variable or keystore entry exists")
        if _PLACEHOLDER.search(value):
            raise self.error(f"{key} is not set: it still holds a "
                             f"placeholder{self.shown(key, value)}; put the real value in [{self.name}]"
                             )
        return value

    def sid(self, key: str, pattern: re.Pattern[str], prefix: str, required: bool = False) -> str | None:
        value = self.text(key)
        if value is None:
            if required:
                raise self.error(f"{key} is not set in [{self.name}]; it is required ({prefix} "
                                 "followed by 32 hex digits)"
                                 )
            return None
        if not pattern.match(value):
            raise self.error(f"{key}{self.shown(key, value)} is malformed: expected {prefix} "
                             "followed by 32 hex digits")
        return value

    def whole_number(self, key: str, maximum: int) -> int:
        value = self.raw(key)
        if value is None:
            value = DEFAULTS[key]
        if isinstance(value, bool):
            raise self.error(f"{key} {value!r} is not a whole number")
        if isinstance(value, int):
            number = value
        elif isinstance(value, float) and value.is_integer():
            number = int(value)
        elif isinstance(value, str) and _WHOLE_NUMBER.match(value.strip()):
            number = int(value.strip())
        else:
            raise self.error(f"{key} {value!r} is not a whole number")
        if number < 1:
            raise self.error(f"{key} {value!r} must be at least 1")
        if number > maximum:
            raise self.error(f"{key} {value!r} must be at most {maximum}")
        return number

    def duration(self, key: str, value: Any = None, **limits: Any) -> float:
        if value is None:
            value = self.raw(key)
        if value is None:
            value = DEFAULTS[key]
        try:
            return parse_duration(value, name=key, **limits)
        except DurationError as exc:
            raise self.error(str(exc)) from None


def _base_url(reader: _Reader) -> str:
    key = "twilio_base_url"
    value = reader.text(key) or DEFAULTS[key]
    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018 -- raises ValueError for a bad port
    except ValueError:
        raise reader.error(f"{key} {value!r} is not a valid URL") from None
    if parts.username is not None or parts.password is not None:
        raise reader.error(f"{key} must not contain a user name or password; credentials go in "
                           "twilio_auth_token or twilio_api_key_secret")
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        raise reader.error(f"{key} {value!r} must be an http:// or https:// URL such as {DEFAULTS[key]}")
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        raise reader.error(f"{key} {value!r} must not have a path, query or fragment; give only the "
                           "scheme, host and port, "
                           f"e.g. {DEFAULTS[key]}")
    return f"{parts.scheme.lower()}://{parts.netloc}"


def _keywords(reader: _Reader) -> Keywords:
    """``ack_keywords`` and ``decline_keywords``: comma-separated words, checked by intents."""
    def words(key: str) -> tuple[str, ...]:
        text = reader.text(key) or DEFAULTS[key]
        try:
            return check_keywords([w for w in text.split(",") if w.strip()], name=key)
        except KeywordError as exc:
            raise reader.error(str(exc)) from None

    ack, decline = words(ACK_SETTING), words(DECLINE_SETTING)
    try:
        return keywords(ack, decline)
    except KeywordError as exc:
        raise reader.error(str(exc)) from None


def _person_limit(reader: _Reader) -> tuple[int, float]:
    """``max_texts_per_person`` and ``person_window``, refused together when they would let Twilio's loop
    guard (error 14107) fail texts."""
    texts = reader.whole_number("max_texts_per_person", MAX_TEXTS_PER_PERSON_LIMIT)
    window = reader.duration("person_window", allow_zero=False, maximum=PERSON_WINDOW_MAX)
    if window < PERSON_WINDOW_MIN:
        raise reader.error(f"person_window {reader.raw('person_window')!r} is shorter than the minimum of "
                           f"{format_duration(PERSON_WINDOW_MIN)}")
    # the most texts one number can get in any 30 s when each window holds at most ``texts``
    windows = 1 if window >= TWILIO_PAIR_WINDOW else -(-TWILIO_PAIR_WINDOW // window)
    if texts * windows > TWILIO_PAIR_LIMIT:
        raise reader.error(f"max_texts_per_person {texts} per person_window {format_duration(window)} lets "
                           f"up to {int(texts * windows)} texts reach one number within 30 s; Twilio fails "
                           f"every text beyond {TWILIO_PAIR_LIMIT} in 30 s (error 14107): lower "
                           "max_texts_per_person or lengthen person_window")
    return texts, window


def _voice_sender(reader: _Reader, default_region: str | None) -> str | None:
    key = "voice_sender"
    value = reader.text(key)
    if value is None:
        return None
    if value.lower().startswith(_WHATSAPP):
        raise reader.error(f"{key} {value!r} is a WhatsApp address; calls come from a phone number of the "
                           "account that can place calls, e.g. +14155552345")
    if _ALPHANUMERIC_SENDER.match(value):
        raise reader.error(f"{key} {value!r} is an alphanumeric sender ID, which cannot place calls; set a "
                           "phone number of the account that can, e.g. +14155552345")
    try:
        return normalise(value, default_region)
    except PhoneNumberError as exc:
        raise reader.error(f"{key}: {exc}") from None


def voice_caller(settings: Settings) -> str:
    """The number calls are placed from, or SettingsError naming the setting to change: a Messaging
    Service, an alphanumeric sender ID or a WhatsApp address cannot call (contract §14). A caller asks
    this before anything of a page is sent."""
    caller = settings.caller
    if caller:
        return caller
    fix = "set voice_sender to a number of the account that can place calls (e.g. +14155552345)"
    if settings.src_address and settings.alphanumeric_sender:
        why = f"twilio_src_address {settings.src_address!r} is an alphanumeric sender ID, which cannot call"
    elif settings.src_address:
        why = f"twilio_src_address {settings.src_address!r} is a WhatsApp address, which cannot call"
    else:
        why = "the sender is a Messaging Service (twilio_messaging_service_sid), which cannot call"
    raise SettingsError(f"voice_sender is not set and {why}; {fix}")


def load_settings(section: Mapping[str, object], *, proxies: dict[str, str] | None = None,
                  verify: object = True, timeout: Any = None, name: str = SECTION) -> Settings:
    """Check the ``[fn_twilio_send_sms]`` section and return Settings, or raise SettingsError.

    ``proxies`` (requests-style dict) and ``verify`` (bool or CA bundle path) are passed through.
    ``timeout``, when given, overrides the ``timeout`` key (seconds). ``name`` is the section's name
    as messages give it (a labelled section: ``fn_twilio_send_sms:<label>``, see ``lib.labels``).
    """
    if section is None:
        raise SettingsError(f"the [{name}] section is missing from app.config; it needs at least "
                            "twilio_account_sid, twilio_auth_token and twilio_src_address")
    if not isinstance(section, Mapping):
        raise SettingsError(f"the [{name}] section must be a mapping of keys to values, not "
                            f"{type(section).__name__}")
    reader = _Reader(section, name)

    account_sid = reader.sid("twilio_account_sid", _ACCOUNT_SID, "AC", required=True) or ""

    auth_token = reader.text("twilio_auth_token")
    api_key_sid = reader.sid("twilio_api_key_sid", _API_KEY_SID, "SK")
    api_key_secret = reader.text("twilio_api_key_secret")
    if api_key_sid and not api_key_secret:
        raise reader.error("twilio_api_key_secret is not set: twilio_api_key_sid needs its secret")
    if api_key_secret and not api_key_sid:
        raise reader.error("twilio_api_key_sid is not set: twilio_api_key_secret needs the key's SID (SK…)")
    if not auth_token and not api_key_sid:
        raise reader.error(f"twilio_auth_token is not set in [{reader.name}]; set it, or set "
                           "twilio_api_key_sid and "
                           "twilio_api_key_secret")

    default_region = None
    region_text = reader.text("default_region")
    if region_text is not None:
        try:
            default_region = validate_region(region_text)
        except ValueError as exc:
            raise reader.error(str(exc)) from None

    src_address = reader.text("twilio_src_address")
    if src_address is not None and not _ALPHANUMERIC_SENDER.match(src_address):
        try:
            src_address = normalise(src_address, default_region)
        except PhoneNumberError as exc:
            raise reader.error(f"twilio_src_address: {exc}") from None
    messaging_service_sid = reader.sid("twilio_messaging_service_sid", _SERVICE_SID, "MG")
    if not src_address and not messaging_service_sid:
        raise reader.error("no sender: set twilio_src_address (the number that sends the SMS, e.g. "
                           "+14155552345) "
                           f"or twilio_messaging_service_sid (MG…) in [{reader.name}]")

    max_recipients = reader.whole_number("max_recipients", MAX_RECIPIENTS_LIMIT)
    max_concurrency = reader.whole_number("max_concurrency", MAX_CONCURRENCY_LIMIT)

    poll_interval = reader.duration("poll_interval", maximum=POLL_INTERVAL_MAX)
    if poll_interval < POLL_INTERVAL_MIN:
        raise reader.error("poll_interval {!r} is shorter than the minimum of {}".format(
            reader.raw("poll_interval"), format_duration(POLL_INTERVAL_MIN)))
    max_wait_timeout = reader.duration("max_wait_timeout", allow_zero=False)

    if timeout is not None and not (isinstance(timeout, str) and not timeout.strip()):
        timeout_seconds = reader.duration("timeout", value=timeout, allow_zero=False)
    else:
        timeout_seconds = reader.duration("timeout", allow_zero=False)

    checked_keywords = _keywords(reader)
    max_texts_per_person, person_window = _person_limit(reader)
    voice_sender = _voice_sender(reader, default_region)
    studio_flow_sid = reader.sid("studio_flow_sid", _FLOW_SID, "FW")

    return Settings(
        account_sid=account_sid,
        auth_token=auth_token,
        api_key_sid=api_key_sid,
        api_key_secret=api_key_secret,
        src_address=src_address,
        messaging_service_sid=messaging_service_sid,
        default_region=default_region,
        max_recipients=max_recipients,
        max_concurrency=max_concurrency,
        poll_interval=poll_interval,
        max_wait_timeout=max_wait_timeout,
        timeout=timeout_seconds,
        base_url=_base_url(reader),
        proxies=proxies,
        verify=verify,
        ack_keywords=checked_keywords.acknowledge,
        decline_keywords=checked_keywords.decline,
        max_texts_per_person=max_texts_per_person,
        person_window=person_window,
        voice_sender=voice_sender,
        studio_flow_sid=studio_flow_sid,
    )
