# -*- coding: utf-8 -*-
"""Phone numbers: split a recipient list, validate and normalise each entry to E.164.

Policy (docs: twilio-api.md §9, contract §3):

* ``+…`` numbers are accepted in any common punctuation (spaces, dots, dashes, slashes,
  parentheses); ``+44 (0) 7911 123456`` drops the trunk ``0``.
* A leading ``00`` is the international prefix and becomes ``+``, whatever the region.
* ``011`` (the NANP international prefix) is understood when the default region is US or CA.
* Any other number written without a country code needs ``default_region``; without one it is
  invalid. A country is never guessed.
* Extensions, letters (vanity numbers), impossible and invalid numbers are rejected.
* A ``whatsapp:`` prefix (any case) is kept: the rest is normalised and ``whatsapp:+…`` returned.
* ``tel:`` URIs (RFC 3966) are accepted; ``;ext=`` is an extension and rejected.
* Full-width and other Unicode decimal digits are read as digits.

Plain Python: nothing here imports SOAR libraries.
"""
from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from typing import List, Optional

import phonenumbers
from phonenumbers import NumberParseException, PhoneNumberFormat

__all__ = [
    "Recipient",
    "PhoneNumberError",
    "split_entries",
    "normalise",
    "parse_recipients",
    "validate_region",
    "mask",
]

WHATSAPP_PREFIX = "whatsapp:"
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
    """One entry of a recipient list, after validation."""

    raw: str
    e164: Optional[str]
    reason: Optional[str]

    @property
    def valid(self) -> bool:
        return self.e164 is not None

    @property
    def address(self) -> str:
        """The normalised address when valid, else the entry as written."""
        return self.e164 if self.e164 is not None else self.raw


def split_entries(text: str) -> List[str]:
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
            "default_region {!r} is not a country code the phone number library knows; "
            "use an ISO 3166 code such as US, GB or IE".format(code)
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
        return "country code +{}".format(country_code)
    return region


def _normalise_number(text: str, entry: str, region: Optional[str]) -> str:
    """Normalise a plain number (no channel prefix). ``entry`` is the text used in reasons."""
    body = text.strip()
    if body[:len(_TEL_PREFIX)].lower() == _TEL_PREFIX:
        body = body[len(_TEL_PREFIX):].strip()
        if ";" in body:
            params = [param.split("=", 1)[0].strip().lower() for param in body.split(";")[1:]]
            if "ext" in params:
                raise PhoneNumberError("{!r} has an extension; extensions cannot receive SMS".format(entry))
            # phone-context and the like: let the library read it, letters are allowed here
            return _parse_and_check(body, entry, region, tel_uri=True)
    if not body:
        raise PhoneNumberError("{!r} has no digits".format(entry))
    return _parse_and_check(body, entry, region, tel_uri=False)


def _parse_and_check(body: str, entry: str, region: Optional[str], *, tel_uri: bool) -> str:
    body = _ascii_digits(body)
    parse_text = body if not tel_uri else "tel:" + body

    # Extensions first: "ext. 12" or "x12" also contain letters, and "extension" is the better reason.
    try:
        probe = phonenumbers.parse(parse_text, region or "US")
        if probe.extension:
            raise PhoneNumberError("{!r} has an extension; extensions cannot receive SMS".format(entry))
    except NumberParseException:
        pass

    if not tel_uri:
        stripped = body.lstrip("([ \t")
        for index, ch in enumerate(body):
            if ch in _ASCII_DIGITS or ch.isspace():
                continue
            if ch == "+":
                if body[:index].strip(" \t([") != "" or body.count("+") > 1:
                    raise PhoneNumberError(
                        "{!r} has a '+' inside the number; separate numbers with commas".format(entry))
                continue
            category = unicodedata.category(ch)
            if category.startswith("L"):
                raise PhoneNumberError("{!r} contains letters; write the number with digits only".format(entry))
            if category in ("Pd", "Ps", "Pe", "Zs") or ch in _EXTRA_PUNCTUATION:
                continue
            raise PhoneNumberError("{!r} contains the character {!r}, which is not part of a phone number"
                                   .format(entry, ch))
        if not any(ch in _ASCII_DIGITS for ch in body):
            raise PhoneNumberError("{!r} has no digits".format(entry))
        if stripped.startswith("00"):
            # 00 is the international prefix: the country code follows
            body = "+" + stripped[2:]
        elif not stripped.startswith("+") and region is None:
            raise PhoneNumberError(
                "{!r} has no country code; write it as +<country code>… or set default_region".format(entry))
        parse_text = body

    try:
        number = phonenumbers.parse(parse_text, region)
    except NumberParseException as exc:
        if exc.error_type == NumberParseException.INVALID_COUNTRY_CODE:
            if region is None and not parse_text.lstrip().startswith(("+", "tel:+")):
                reason = "has no country code; write it as +<country code>… or set default_region"
            else:
                reason = "has an unknown country code"
        elif exc.error_type in (NumberParseException.TOO_SHORT_NSN, NumberParseException.TOO_SHORT_AFTER_IDD):
            reason = "is too short to be a phone number"
        elif exc.error_type == NumberParseException.TOO_LONG:
            reason = "is too long to be a phone number"
        else:
            reason = "is not a phone number"
        raise PhoneNumberError("{!r} {}".format(entry, reason)) from None

    if number.extension:
        raise PhoneNumberError("{!r} has an extension; extensions cannot receive SMS".format(entry))
    possible = phonenumbers.is_possible_number_with_reason(number)
    if possible != phonenumbers.ValidationResult.IS_POSSIBLE:
        detail = {
            phonenumbers.ValidationResult.TOO_SHORT: "too short",
            phonenumbers.ValidationResult.IS_POSSIBLE_LOCAL_ONLY: "too short; is the area code missing?",
            phonenumbers.ValidationResult.TOO_LONG: "too long",
            phonenumbers.ValidationResult.INVALID_COUNTRY_CODE: "unknown country code",
            phonenumbers.ValidationResult.INVALID_LENGTH: "wrong length",
        }.get(possible, "impossible")
        raise PhoneNumberError("{!r} is not a possible phone number for {} ({})".format(
            entry, _region_name(number.country_code), detail))
    if not phonenumbers.is_valid_number(number):
        raise PhoneNumberError("{!r} is not a valid number for {}".format(entry, _region_name(number.country_code)))
    return phonenumbers.format_number(number, PhoneNumberFormat.E164)


def normalise(raw: str, default_region: Optional[str] = None) -> str:
    """Return ``raw`` in E.164 (``+353861234567``), or ``whatsapp:+…`` for a WhatsApp address.

    Raises PhoneNumberError whose message names the entry and says why it is unusable.
    ``default_region`` is an ISO country code used only for numbers written without a country
    code; an unknown region raises ValueError (a configuration error, not a bad entry).
    """
    region = validate_region(default_region) if default_region is not None else None
    if raw is None or not isinstance(raw, str):
        raise PhoneNumberError("phone number {!r} is not text".format(raw))
    entry = raw.strip()
    if not entry:
        raise PhoneNumberError("phone number is empty")
    if entry[:len(WHATSAPP_PREFIX)].lower() == WHATSAPP_PREFIX:
        rest = entry[len(WHATSAPP_PREFIX):]
        if not rest.strip():
            raise PhoneNumberError("{!r} has no number after 'whatsapp:'".format(entry))
        return WHATSAPP_PREFIX + _normalise_number(rest, entry, region)
    return _normalise_number(entry, entry, region)


def parse_recipients(text: str, default_region: Optional[str] = None) -> List[Recipient]:
    """Split and validate a recipient list.

    Returns one Recipient per unique entry, in input order: the same normalised address once
    (``+353 86 123 4567`` and ``00353861234567`` are one recipient; ``whatsapp:+353…`` is a
    different channel and so a different recipient), and identical invalid text once.
    """
    region = validate_region(default_region) if default_region is not None else None
    seen = set()
    recipients = []
    for entry in split_entries(text):
        try:
            address = normalise(entry, region)
        except PhoneNumberError as exc:
            key = ("invalid", entry)
            recipient = Recipient(raw=entry, e164=None, reason=str(exc))
        else:
            key = ("valid", address)
            recipient = Recipient(raw=entry, e164=address, reason=None)
        if key in seen:
            continue
        seen.add(key)
        recipients.append(recipient)
    return recipients


def mask(number: Optional[str]) -> str:
    """Mask a phone number for logs above DEBUG: ``+353861234567`` -> ``+35386*****67``.

    Keeps the first 6 characters (with the ``+``) and the last 2; a ``whatsapp:`` prefix stays
    readable. Short values keep at most their first 2 characters. None or empty gives ``""``.
    """
    if number is None:
        return ""
    text = str(number).strip()
    prefix = ""
    if text[:len(WHATSAPP_PREFIX)].lower() == WHATSAPP_PREFIX:
        prefix, text = text[:len(WHATSAPP_PREFIX)], text[len(WHATSAPP_PREFIX):]
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
