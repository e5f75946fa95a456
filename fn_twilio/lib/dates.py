"""Dates: read a "since" moment from a function input, convert to and from epoch milliseconds.

``parse_since`` accepts:

* ISO 8601 dates and date-times, with or without a zone: ``2020-01-25``,
  ``2020-01-25T14:59:51``, ``2020-01-25 14:59:51+00:00``, ``2020-01-25T14:59:51.123Z``,
  ``2020-01-25T14:59:51+05:30``. No zone means UTC; a date alone means midnight UTC.
* RFC 2822 (e-mail, HTTP and Twilio's own ``date_created`` text): ``Thu, 24 Aug 2023 05:01:45 +0000``.
* Other explicit forms dateutil reads, when they name a full date: ``25 Jan 2020 14:59``,
  ``January 25, 2020 2:59 PM UTC``, ``25.01.2020``. A numeric date whose day and month could be
  swapped (``01/02/2023``) is refused as ambiguous; write ``2023-02-01``. Zone names other than
  UTC/GMT/Z are refused (``EST`` means different things); write an offset such as ``-05:00``.
* An epoch number (int, float, or a string of digits): a value whose absolute value is at least
  1e11 is **milliseconds** (a SOAR datetimepicker value, e.g. ``1579975191000``), a smaller one is
  **seconds** (``1579975191``). 1e11 seconds is the year 5138 and 1e11 ms is 1973, so no date
  this app accepts is ambiguous. Negative numbers are refused.

Every result is an aware datetime in UTC, between 2000-01-01 and one year from now.

Plain Python: nothing here imports SOAR libraries.
"""
from __future__ import annotations

import math
import re
import warnings
from typing import cast
from datetime import date, datetime, timedelta, timezone

from dateutil import parser as date_parser
from dateutil import tz as date_tz

__all__ = ["DateError", "parse_since", "to_epoch_ms", "format_date", "EPOCH_MS_THRESHOLD"]

UTC = timezone.utc
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
EPOCH_MS_THRESHOLD = 1e11
EARLIEST = datetime(2000, 1, 1, tzinfo=UTC)
LATEST_AHEAD = timedelta(days=366)

_NUMBER = re.compile(r"^[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)$")
_YEAR_FIRST = re.compile(r"^[0-9]{4}[^0-9]")
_ISO_MONTH_ONLY = re.compile(r"^[0-9]{4}-?[0-9]{2}$")
_ZONE_NAMES = {"UTC": date_tz.UTC, "GMT": date_tz.UTC, "Z": date_tz.UTC, "UT": date_tz.UTC}
_ACCEPTED = ("write a date such as 2020-01-25 or 2020-01-25T14:59:51Z (no zone means UTC), "
             "or an epoch number in milliseconds")


class DateError(ValueError):
    """A date input that cannot be used; the message names the input and quotes the value."""


def _now() -> datetime:
    """The current time (a function so that tests can move it)."""
    return datetime.now(UTC)


def _as_utc(dt: datetime) -> datetime:
    if dt.tzinfo is None or dt.tzinfo.utcoffset(dt) is None:
        return dt.replace(tzinfo=UTC)
    return dt.astimezone(UTC)


def _from_epoch(number: float, name: str, value: object) -> datetime:
    if math.isnan(number) or math.isinf(number):
        raise DateError(f"{name} {value!r} is not a date; {_ACCEPTED}")
    if number < 0:
        raise DateError(f"{name} {value!r} is a negative epoch number; {_ACCEPTED}")
    try:
        if abs(number) >= EPOCH_MS_THRESHOLD:
            return EPOCH + timedelta(milliseconds=number)
        return EPOCH + timedelta(seconds=number)
    except OverflowError:
        raise DateError(f"{name} {value!r} is out of range; {_ACCEPTED}") from None


def _parse_text(text: str, name: str, value: object) -> datetime:
    # strict ISO 8601 first: exact, and handles Z and offsets without locale surprises
    try:
        parsed = date_parser.isoparse(text)
    except (ValueError, OverflowError):
        parsed = None
    if parsed is not None:
        if _ISO_MONTH_ONLY.match(text):
            raise DateError(f"{name} {value!r} is not a complete date (year, month and day); {_ACCEPTED}")
        return cast(datetime, parsed)
    # RFC 2822 and anything else dateutil reads, provided it is explicit
    bad = DateError(f"{name} {value!r} is not a date; {_ACCEPTED}")
    results = []
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", date_parser.UnknownTimezoneWarning)
            for default in (datetime(2001, 1, 1), datetime(2002, 2, 2)):
                results.append(date_parser.parse(text, default=default, tzinfos=_ZONE_NAMES))
            if not _YEAR_FIRST.match(text):
                results.append(date_parser.parse(text, dayfirst=True, default=datetime(2001, 1, 1),
                                                 tzinfos=_ZONE_NAMES))
    except date_parser.UnknownTimezoneWarning:
        raise DateError(f"{name} {value!r} has a time zone name that is not understood; use UTC or an offset "
                        "such as -05:00") from None
    except (ValueError, OverflowError):
        raise bad from None
    first, second = results[0], results[1]
    if first.date() != second.date():
        raise DateError(f"{name} {value!r} is not a complete date (year, month and day); {_ACCEPTED}")
    if len(results) > 2 and results[2] != first:
        raise DateError(f"{name} {value!r} is ambiguous: day and month could be swapped; write it "
                        "as YYYY-MM-DD, "
                        f"e.g. {first.date().isoformat()} or {results[2].date().isoformat()}")
    if isinstance(first.tzinfo, date_tz.tzlocal):
        raise DateError(f"{name} {value!r} has a time zone name that is not understood; use UTC or an offset "
                        "such as -05:00")
    return cast(datetime, first)


def parse_since(value: object, *, name: str) -> datetime | None:
    """Read a "since" moment; return an aware UTC datetime, or None when ``value`` is empty.

    ``name`` is the input the value came from; every DateError message names it and quotes
    the value. See the module documentation for the accepted forms and the epoch rule.
    """
    if value is None:
        return None
    if isinstance(value, bool):
        raise DateError(f"{name} {value!r} is not a date; {_ACCEPTED}")
    how = ""
    if isinstance(value, datetime):
        result = value
    elif isinstance(value, date):
        result = datetime(value.year, value.month, value.day)
    elif isinstance(value, (int, float)):
        result = _from_epoch(float(value) if isinstance(value, float) else value, name, value)
        how = " (read as epoch {})".format("milliseconds" if abs(value) >= EPOCH_MS_THRESHOLD else "seconds")
    elif isinstance(value, str):
        text = value.strip()
        if not text:
            return None
        if _NUMBER.match(text):
            number = float(text) if "." in text else int(text)
            result = _from_epoch(number, name, value)
            unit = "milliseconds" if abs(number) >= EPOCH_MS_THRESHOLD else "seconds"
            how = f" (read as epoch {unit})"
        else:
            result = _parse_text(text, name, value)
    else:
        raise DateError(f"{name} {value!r} is not a date; {_ACCEPTED}")

    result = _as_utc(result)
    if result < EARLIEST:
        raise DateError(f"{name} {value!r} is {format_date(result)}{how}, before 2000; {_ACCEPTED}")
    if result > _now() + LATEST_AHEAD:
        raise DateError(f"{name} {value!r} is {format_date(result)}{how}, more than a year in the "
                        f"future; {_ACCEPTED}")
    return result


def to_epoch_ms(dt: datetime) -> int:
    """Epoch milliseconds of ``dt`` (a naive datetime is taken as UTC); sub-millisecond part dropped."""
    delta = _as_utc(dt) - EPOCH
    return delta // timedelta(milliseconds=1)



def format_date(dt: datetime) -> str:
    """The 2.0.1 text form, in UTC without microseconds: ``2020-01-25 18:05:47+00:00``."""
    return _as_utc(dt).replace(microsecond=0).isoformat(sep=" ")
