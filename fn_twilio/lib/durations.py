"""Durations such as ``120s``, ``5m``, ``1.5h``, ``2d``, ``1w`` (wait timeouts, poll intervals).

Accepted forms (``parse_duration``):

* ``<n><unit>`` with unit ``s`` (seconds), ``m`` (minutes), ``h`` (hours), ``d`` (days) or ``w``
  (weeks). Units are case-insensitive, so ``5M`` is five *minutes*: months are not a unit
  (their length varies), write ``30d`` instead.
* ``<n>`` may be a decimal (``1.5h``, ``.5m``); whitespace around the value and between the number
  and its unit is allowed (``"5m "``, ``" 2 h"``).
* Several parts may be combined, largest first or not: ``1h30m``, ``1h 30m`` (what
  ``format_duration`` writes reads back).
* A bare number is seconds (``"90"``, ``90``, ``2.5``).

Plain Python: nothing here imports SOAR libraries.
"""
from __future__ import annotations

import math
import re

__all__ = ["DurationError", "parse_duration", "format_duration", "ACCEPTED_FORMS"]

_UNITS = {"w": 604800.0, "d": 86400.0, "h": 3600.0, "m": 60.0, "s": 1.0}
_NUMBER = r"(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)"
_BARE = re.compile(rf"^{_NUMBER}$")
_PART = re.compile(rf"({_NUMBER})[ \t]*([A-Za-z]+)[ \t]*")

ACCEPTED_FORMS = ("a number of seconds, or <n><unit> with unit s, m, h, d or w "
                  "(e.g. 30s, 5m, 1.5h, 2d, 1w, 1h30m)")


class DurationError(ValueError):
    """A duration that cannot be used; the message names the setting or input."""


def _fail(name: str, value: object, problem: str) -> DurationError:
    return DurationError(f"{name} {value!r} {problem}; write {ACCEPTED_FORMS}")


def _parse_text(text: str, name: str, value: object) -> float:
    if _BARE.match(text):
        return float(text)
    total = 0.0
    position = 0
    seen_units = set()
    while position < len(text):
        match = _PART.match(text, position)
        if not match:
            raise _fail(name, value, "is not a duration")
        number, unit = match.group(1), match.group(2).lower()
        if unit not in _UNITS:
            raise _fail(name, value, f"has an unknown unit {match.group(2)!r}")
        if unit in seen_units:
            raise _fail(name, value, f"repeats the unit {match.group(2)!r}")
        seen_units.add(unit)
        total += float(number) * _UNITS[unit]
        position = match.end()
    return total


def parse_duration(value: object, *, name: str, allow_zero: bool = True,
                   maximum: float | None = None) -> float:
    """Return ``value`` as a number of seconds.

    ``value`` is text in the forms above, or an int/float number of seconds. ``name`` is the
    input or setting the value came from; every error message names it and quotes the value.
    Raises DurationError when the value is empty (the caller decides defaults), malformed,
    negative, zero while ``allow_zero`` is false, or above ``maximum`` seconds.
    """
    if value is None or (isinstance(value, str) and not value.strip()):
        raise DurationError(f"{name} is empty; write {ACCEPTED_FORMS}")
    if isinstance(value, bool):
        raise _fail(name, value, "is not a duration")
    if isinstance(value, (int, float)):
        seconds = float(value)
        if math.isnan(seconds) or math.isinf(seconds):
            raise _fail(name, value, "is not a duration")
    elif isinstance(value, str):
        text = value.strip()
        if text.startswith("-"):
            raise _fail(name, value, "is negative")
        seconds = _parse_text(text, name, value)
    else:
        raise _fail(name, value, "is not a duration")

    if seconds < 0:
        raise _fail(name, value, "is negative")
    if math.isinf(seconds):
        raise _fail(name, value, "is too large")
    if seconds == 0 and not allow_zero:
        raise _fail(name, value, "must be longer than zero")
    if maximum is not None and seconds > maximum:
        raise DurationError(f"{name} {value!r} is longer than the maximum of {format_duration(maximum)}")
    return seconds


def format_duration(seconds: float) -> str:
    """Write a number of seconds in the units parse_duration reads: ``120`` -> ``"2m"``.

    Whole weeks, days, hours, minutes and seconds, largest first, zero parts left out:
    ``5400`` -> ``"1h30m"``, ``86400`` -> ``"1d"``, ``90000`` -> ``"1d1h"``, ``45`` -> ``"45s"``.
    A fraction of a second is kept on the seconds part (``0.2`` -> ``"0.2s"``, ``90.5`` ->
    ``"1m30.5s"``); ``0`` -> ``"0s"``; a negative value gets a leading ``-``.
    """
    if isinstance(seconds, bool) or not isinstance(seconds, (int, float)):
        raise TypeError(f"format_duration takes a number of seconds, not {seconds!r}")
    if math.isnan(seconds) or math.isinf(seconds):
        return str(seconds)
    if seconds < 0:
        return "-" + format_duration(-seconds)
    # millisecond resolution avoids float noise such as 0.30000000000000004
    millis = int(round(seconds * 1000))
    whole, fraction = divmod(millis, 1000)
    parts = []
    for unit in ("w", "d", "h", "m"):
        size = int(_UNITS[unit])
        count, whole = divmod(whole, size)
        if count:
            parts.append(f"{count}{unit}")
    if whole or fraction or not parts:
        if fraction:
            parts.append("{}s".format((f"{whole}.{fraction:03d}").rstrip("0")))
        else:
            parts.append(f"{whole}s")
    return "".join(parts)
