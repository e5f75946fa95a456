"""Phone numbers: split a recipient list, validate and normalise each entry to E.164.

Policy (docs: twilio-api.md §9, contract §3 and §8):

* ``+…`` numbers are accepted in any common punctuation (spaces, dots, dashes, slashes,
  parentheses); ``+44 (0) 7911 123456`` drops the trunk ``0``.
* A leading ``00`` is the international prefix and becomes ``+``, whatever the region.
* ``011`` (the NANP international prefix) is understood when the default region is US or CA.
* Digits only (spaces, dots, dashes, brackets allowed; no ``+``, no ``00``), the way the 2.0.1
  documentation writes ``353834463164``, are read both ways: as an international number (a ``+`` in
  front) and, when ``default_region`` is set, as a national number of that region. Valid one way
  only: that reading. Valid both ways as two different numbers: invalid, the reason names both and
  asks for the ``+`` form. Valid neither way: invalid, with the reason. A country is never guessed:
  without ``default_region`` there is no national reading.
* Extensions, letters (vanity numbers), impossible and invalid numbers are rejected.
* A ``whatsapp:`` prefix (any case) is kept: the rest is normalised and ``whatsapp:+…`` returned.
* A ``voice:`` prefix (any case) marks a person to be called rather than texted (a page's tiers,
  contract §14): the rest is read like any entry, and the :class:`Recipient` has channel ``voice``
  and the plain E.164 number. Only lists read with ``voice=True`` accept it; elsewhere such an entry
  is invalid, with a reason that says so.
* ``tel:`` URIs (RFC 3966) are accepted; ``;ext=`` is an extension and rejected.
* Full-width and other Unicode decimal digits are read as digits.

Plain Python: nothing here imports SOAR libraries.
"""
from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

import phonenumbers
from phonenumbers import NumberParseException, PhoneNumberFormat

__all__ = [
    "Recipient",
    "SMS",
    "WHATSAPP",
    "VOICE",
    "PhoneNumberError",
    "split_entries",
    "normalise",
    "parse_recipients",
    "validate_region",
    "mask",
    "read_recipient",
    "read_voice",
]

WHATSAPP_PREFIX = "whatsapp:"
VOICE_PREFIX = "voice:"
# the channels a recipient is reached on
SMS = "sms"
WHATSAPP = "whatsapp"
VOICE = "voice"
_TEL_PREFIX = "tel:"
_SEPARATORS = re.compile(r"[,;\r\n]+")
# punctuation people write inside phone numbers, beyond Unicode spaces/dashes/brackets
_EXTRA_PUNCTUATION = set("./\u2215\uff0e\uff0f")
_PLUS_SIGNS = {"+", "\uff0b"}  # ASCII and full-width plus
_ASCII_DIGITS = frozenset("0123456789")


class PhoneNumberError(ValueError):
    """A phone number entry that cannot be used; the message names the entry and says why."""


@dataclass(frozen=True)
class Recipient:
    """One entry of a recipient list, after validation.

    ``e164`` is the address Twilio is given for the entry's ``channel``: ``+353…`` for SMS and voice
    (a ``voice:`` entry's plain number, what a call is placed to and what an SMS reply comes from),
    ``whatsapp:+353…`` for WhatsApp. The same number on two channels is two recipients (``key``).
    """

    raw: str
    e164: str | None
    reason: str | None
    channel: str = SMS

    @property
    def valid(self) -> bool:
        return self.e164 is not None

    @property
    def address(self) -> str:
        """The normalised address when valid, else the entry as written."""
        return self.e164 if self.e164 is not None else self.raw

    @property
    def is_voice(self) -> bool:
        """A person to call (an entry written ``voice:<number>``)."""
        return self.channel == VOICE

    @property
    def key(self) -> tuple[str, str]:
        """What makes two entries the same recipient: the channel and the address."""
        return self.channel, self.address


def split_entries(text: str) -> list[str]:
    """Split a recipient list on commas, semicolons and new lines; trim; drop empty entries."""
    if text is None:
        return []
    if not isinstance(text, str):
        text = str(text)
    entries = (part.strip() for part in _SEPARATORS.split(text))
    return [entry for entry in entries if entry]


def validate_region(code: str) -> str:
    """Return the upper-case ISO region code (``"ie"`` -> ``"IE"``) or raise ValueError."""
    if code is None or not isinstance(code, str) or not code.strip():
        raise ValueError("default_region is empty; set an ISO country code such as US, GB or IE")
    region = code.strip().upper()
    if region not in phonenumbers.SUPPORTED_REGIONS:
        raise ValueError(
            f"default_region {code!r} is not a country code the phone number library knows; "
            "use an ISO 3166 code such as US, GB or IE"
        )
    return region


def _ascii_digits(text: str) -> str:
    """Map every Unicode decimal digit to its ASCII digit and full-width plus to ``+``."""
    out = []
    for ch in text:
        if ch in _PLUS_SIGNS:
            out.append("+")
        elif ch.isdecimal():
            out.append(str(unicodedata.decimal(ch)))
        else:
            out.append(ch)
    return "".join(out)


def _region_name(country_code: int) -> str:
    region = phonenumbers.region_code_for_country_code(country_code)
    if not region or region == phonenumbers.UNKNOWN_REGION or region == "001":
        return f"country code +{country_code}"
    return region


@dataclass(frozen=True)
class _Reading:
    """One way of reading an entry: the text the library parses, and with which region."""

    text: str
    region: str | None
    plus_added: bool = False        # digits written without "+", read as an international number


@dataclass(frozen=True)
class _Outcome:
    """A reading's result: the E.164 number, or what is wrong with the number read that way."""

    reading: _Reading
    e164: str | None = None
    problem: str = ""               # "is too short to be a phone number", ...
    no_country_code: bool = False
    country: str = ""               # the region of the number read, e.g. "IE"


def _normalise_number(text: str, entry: str, region: str | None) -> str:
    """Normalise a plain number (no channel prefix). ``entry`` is the text used in reasons."""
    body = _ascii_digits(text.strip())
    if body[:len(_TEL_PREFIX)].lower() == _TEL_PREFIX:
        uri = body[len(_TEL_PREFIX):].strip()
        params = [param.split("=", 1)[0].strip().lower() for param in uri.split(";")[1:]]
        if "ext" in params:
            raise PhoneNumberError(f"{entry!r} has an extension; extensions cannot receive SMS")
        if params:
            # phone-context and the like: the library reads the URI, letters are allowed in it
            return _choose(entry, region, [_Reading(_TEL_PREFIX + uri, region)])
        body = uri
    if not body:
        raise PhoneNumberError(f"{entry!r} has no digits")
    readings = _readings(body, region)
    _reject_extensions(entry, readings)
    _check_characters(body, entry)
    return _choose(entry, region, readings)


def _readings(body: str, region: str | None) -> list[_Reading]:
    """The ways an entry may be read (contract §8).

    ``+…`` and ``00…`` are international. Digits only (with spaces, dots, dashes, brackets) are read as
    an international number with a ``+`` in front and, when ``default_region`` is set, as a national
    number of that region. A country is never guessed.
    """
    stripped = body.lstrip("([ \t")
    if stripped.startswith("+"):
        return [_Reading(body, None)]
    if stripped.startswith("00"):
        return [_Reading("+" + stripped[2:], None)]
    readings = [_Reading("+" + stripped, None, plus_added=True)]
    if region is not None:
        readings.append(_Reading(body, region))
    return readings


def _reject_extensions(entry: str, readings: list[_Reading]) -> None:
    """Extensions first: "ext. 12" or "x12" also contain letters, and "extension" is the better reason."""
    for reading in readings:
        try:
            probe = phonenumbers.parse(reading.text, reading.region)
        except NumberParseException:
            continue
        if probe.extension:
            raise PhoneNumberError(f"{entry!r} has an extension; extensions cannot receive SMS")


def _check_characters(body: str, entry: str) -> None:
    """Only digits, one leading '+', and the punctuation people write inside numbers."""
    for index, ch in enumerate(body):
        if ch in _ASCII_DIGITS or ch.isspace():
            continue
        if ch == "+":
            if body[:index].strip(" \t([") != "" or body.count("+") > 1:
                raise PhoneNumberError(
                    f"{entry!r} has a '+' inside the number; separate numbers with commas")
            continue
        category = unicodedata.category(ch)
        if category.startswith("L"):
            raise PhoneNumberError(f"{entry!r} contains letters; write the number with digits only")
        if category in ("Pd", "Ps", "Pe", "Zs") or ch in _EXTRA_PUNCTUATION:
            continue
        raise PhoneNumberError(
            f"{entry!r} contains the character {ch!r}, which is not part of a phone number")
    if not any(ch in _ASCII_DIGITS for ch in body):
        raise PhoneNumberError(f"{entry!r} has no digits")


_PARSE_PROBLEMS = {
    NumberParseException.TOO_SHORT_NSN: "is too short to be a phone number",
    NumberParseException.TOO_SHORT_AFTER_IDD: "is too short to be a phone number",
    NumberParseException.TOO_LONG: "is too long to be a phone number",
}
_IMPOSSIBLE = {
    phonenumbers.ValidationResult.TOO_SHORT: "too short",
    phonenumbers.ValidationResult.IS_POSSIBLE_LOCAL_ONLY: "too short; is the area code missing?",
    phonenumbers.ValidationResult.TOO_LONG: "too long",
    phonenumbers.ValidationResult.INVALID_COUNTRY_CODE: "unknown country code",
    phonenumbers.ValidationResult.INVALID_LENGTH: "wrong length",
}


def _read(reading: _Reading) -> _Outcome:
    """Parse and check one reading."""
    try:
        number = phonenumbers.parse(reading.text, reading.region)
    except NumberParseException as exc:
        if exc.error_type == NumberParseException.INVALID_COUNTRY_CODE:
            return _Outcome(reading, problem="has an unknown country code", no_country_code=True)
        return _Outcome(reading, problem=_PARSE_PROBLEMS.get(exc.error_type, "is not a phone number"))
    country = _region_name(number.country_code or 0)
    possible = phonenumbers.is_possible_number_with_reason(number)
    if possible != phonenumbers.ValidationResult.IS_POSSIBLE:
        detail = _IMPOSSIBLE.get(possible, "impossible")
        return _Outcome(reading, problem=f"is not a possible phone number for {country} ({detail})")
    if not phonenumbers.is_valid_number(number):
        return _Outcome(reading, problem=f"is not a valid number for {country}")
    return _Outcome(reading, e164=phonenumbers.format_number(number, PhoneNumberFormat.E164), country=country)


_WRITE_IT_WITH_A_COUNTRY_CODE = "write it as +<country code>… or set default_region"


def _compact(text: str) -> str:
    """``+(353) 83-446 3164`` -> ``+353834463164``: a reading as the reasons quote it."""
    return "".join(ch for ch in text if ch in _ASCII_DIGITS or ch == "+")


def _choose(entry: str, region: str | None, readings: list[_Reading]) -> str:
    """The E.164 number when exactly one number is meant, else PhoneNumberError saying why not."""
    outcomes = [_read(reading) for reading in readings]
    numbers = list(dict.fromkeys(o.e164 for o in outcomes if o.e164 is not None))
    if len(numbers) == 1:
        return numbers[0]
    if len(numbers) > 1:
        international, national = outcomes
        raise PhoneNumberError(
            f"{entry!r} can be read two ways: as the international number {international.e164} "
            f"({international.country}) or as the {region} number {national.e164}; write the one meant "
            "in its + form, with its country code")
    if len(outcomes) == 1:
        raise PhoneNumberError(_single_reason(entry, outcomes[0]))
    international, national = outcomes
    raise PhoneNumberError(
        f"{entry!r} is not a phone number read either way: as the international number "
        f"{_compact(international.reading.text)} it {international.problem}; as a {region} number it "
        f"{national.problem}")


def _single_reason(entry: str, outcome: _Outcome) -> str:
    """Why the one reading of an entry is not a usable number."""
    reading = outcome.reading
    written_without_country_code = reading.region is None and not reading.text.lower().startswith(
        ("+", _TEL_PREFIX + "+"))
    if outcome.no_country_code and (reading.plus_added or written_without_country_code):
        return f"{entry!r} has no country code; {_WRITE_IT_WITH_A_COUNTRY_CODE}"
    if reading.plus_added:
        return (f"{entry!r} has no country code (no + or 00): read as the international number "
                f"{_compact(reading.text)} it {outcome.problem}; {_WRITE_IT_WITH_A_COUNTRY_CODE}")
    return f"{entry!r} {outcome.problem}"


def normalise(raw: str, default_region: str | None = None) -> str:
    """Return ``raw`` in E.164 (``+353861234567``), or ``whatsapp:+…`` for a WhatsApp address.

    Raises PhoneNumberError whose message names the entry and says why it is unusable.
    ``default_region`` is an ISO country code used only for numbers written without a country
    code; an unknown region raises ValueError (a configuration error, not a bad entry).
    """
    region = validate_region(default_region) if default_region is not None else None
    if raw is None or not isinstance(raw, str):
        raise PhoneNumberError(f"phone number {raw!r} is not text")
    entry = raw.strip()
    if not entry:
        raise PhoneNumberError("phone number is empty")
    if entry[:len(WHATSAPP_PREFIX)].lower() == WHATSAPP_PREFIX:
        rest = entry[len(WHATSAPP_PREFIX):]
        if not rest.strip():
            raise PhoneNumberError(f"{entry!r} has no number after 'whatsapp:'")
        return WHATSAPP_PREFIX + _normalise_number(rest, entry, region)
    return _normalise_number(entry, entry, region)


NOT_CALLABLE_HERE = ("{entry!r} asks for a call (voice:), but only a page's tiers (twilio_page_tiers) can "
                     "call; write the number without 'voice:' to send it an SMS")


def _has_prefix(entry: str, prefix: str) -> bool:
    return entry[:len(prefix)].lower() == prefix


def read_voice(raw: str, default_region: str | None = None) -> str:
    """The E.164 number of a ``voice:<number>`` entry (the prefix is optional here), read like any
    entry. Raises PhoneNumberError naming the entry; ValueError for an unknown region."""
    region = validate_region(default_region) if default_region is not None else None
    if raw is None or not isinstance(raw, str):
        raise PhoneNumberError(f"phone number {raw!r} is not text")
    entry = raw.strip()
    rest = entry[len(VOICE_PREFIX):] if _has_prefix(entry, VOICE_PREFIX) else entry
    if not entry:
        raise PhoneNumberError("phone number is empty")
    if not rest.strip():
        raise PhoneNumberError(f"{entry!r} has no number after 'voice:'")
    if _has_prefix(rest.strip(), WHATSAPP_PREFIX):
        raise PhoneNumberError(f"{entry!r}: a call goes to a phone number, not to a WhatsApp address")
    return _normalise_number(rest, entry, region)


def read_recipient(entry: str, default_region: str | None = None, *, voice: bool = False) -> Recipient:
    """One entry as a :class:`Recipient` (valid, or invalid with the reason). ``voice``: a
    ``voice:<number>`` entry is a person to call; without it such an entry is invalid."""
    region = validate_region(default_region) if default_region is not None else None
    text = entry.strip() if isinstance(entry, str) else entry
    if isinstance(text, str) and _has_prefix(text, VOICE_PREFIX):
        if not voice:
            return Recipient(raw=text, e164=None, reason=NOT_CALLABLE_HERE.format(entry=text), channel=VOICE)
        try:
            return Recipient(raw=text, e164=read_voice(text, region), reason=None, channel=VOICE)
        except PhoneNumberError as exc:
            return Recipient(raw=text, e164=None, reason=str(exc), channel=VOICE)
    channel = WHATSAPP if isinstance(text, str) and _has_prefix(text, WHATSAPP_PREFIX) else SMS
    try:
        return Recipient(raw=entry, e164=normalise(entry, region), reason=None, channel=channel)
    except PhoneNumberError as exc:
        return Recipient(raw=entry, e164=None, reason=str(exc), channel=channel)


def parse_recipients(text: str, default_region: str | None = None, *, voice: bool = False) -> list[Recipient]:
    """Split and validate a recipient list.

    Returns one Recipient per unique entry, in input order: the same normalised address once
    (``+353 86 123 4567`` and ``00353861234567`` are one recipient; ``whatsapp:+353…`` and, with
    ``voice=True``, ``voice:+353…`` are other channels and so other recipients), and identical
    invalid text once. Without ``voice`` a ``voice:`` entry is invalid (it cannot be texted).
    """
    region = validate_region(default_region) if default_region is not None else None
    seen = set()
    recipients = []
    for entry in split_entries(text):
        recipient = read_recipient(entry, region, voice=voice)
        key = ("valid", *recipient.key) if recipient.valid else ("invalid", entry)
        if key in seen:
            continue
        seen.add(key)
        recipients.append(recipient)
    return recipients


def mask(number: str | None) -> str:
    """Mask a phone number for logs above DEBUG: ``+353861234567`` -> ``+35386*****67``.

    Keeps the first 6 characters (with the ``+``) and the last 2; a ``whatsapp:`` or ``voice:``
    prefix stays readable. Short values keep at most their first 2 characters. None or empty gives
    ``""``.
    """
    if number is None:
        return ""
    text = str(number).strip()
    prefix = ""
    for channel in (WHATSAPP_PREFIX, VOICE_PREFIX):
        if text[:len(channel)].lower() == channel:
            prefix, text = text[:len(channel)], text[len(channel):]
            break
    if len(text) > 8:
        body = text[:6] + "*" * (len(text) - 8) + text[-2:]
    elif len(text) > 2:
        body = text[:2] + "*" * (len(text) - 2)
    else:
        body = "*" * len(text)
    return prefix + body


_E164_IN_TEXT = re.compile(r"\+[1-9][0-9]{6,14}")


def mask_numbers(text: str) -> str:
    """``text`` with every E.164 number in it masked (Twilio's error texts quote the 'To' number)."""
    return _E164_IN_TEXT.sub(lambda m: mask(m.group(0)), text)
