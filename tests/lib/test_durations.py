"""Tests for fn_twilio.lib.durations."""
import pytest

from fn_twilio.lib.durations import DurationError, format_duration, parse_duration


@pytest.mark.parametrize("value,expected", [
    # every unit
    ("30s", 30.0),
    ("5m", 300.0),
    ("2h", 7200.0),
    ("1d", 86400.0),
    ("1w", 604800.0),
    # case-insensitive: 5M is five minutes (months are not a unit)
    ("30S", 30.0),
    ("5M", 300.0),
    ("2H", 7200.0),
    ("1D", 86400.0),
    ("1W", 604800.0),
    # whitespace (defect 9 of the original: "5m " failed)
    ("5m ", 300.0),
    (" 5m", 300.0),
    (" 2 h", 7200.0),
    ("\t120s\n", 120.0),
    ("2 \t h", 7200.0),
    # decimals
    ("1.5h", 5400.0),
    ("0.5m", 30.0),
    (".5m", 30.0),
    ("2.m", 120.0),
    ("0.2s", 0.2),
    ("0.25", 0.25),
    # bare numbers are seconds
    ("120", 120.0),
    (" 90 ", 90.0),
    ("0", 0.0),
    ("0s", 0.0),
    (120, 120.0),
    (2.5, 2.5),
    (0, 0.0),
    # combined parts, what format_duration writes
    ("1h30m", 5400.0),
    ("1h 30m", 5400.0),
    ("1d1h", 90000.0),
    ("1w2d3h4m5s", 604800 + 2 * 86400 + 3 * 3600 + 4 * 60 + 5.0),
    ("30m1h", 5400.0),
    ("24h", 86400.0),
])
def test_parse_duration_valid(value, expected):
    assert parse_duration(value, name="twilio_wait_timeout") == pytest.approx(expected)


@pytest.mark.parametrize("value,problem", [
    (None, "is empty"),
    ("", "is empty"),
    ("   ", "is empty"),
    ("5y", "unknown unit 'y'"),
    ("5mo", "unknown unit 'mo'"),
    ("5 months", "unknown unit 'months'"),
    ("10 minutes", "unknown unit 'minutes'"),
    ("abc", "is not a duration"),
    ("m", "is not a duration"),
    ("5m3", "is not a duration"),
    ("1e3", "unknown unit 'e'"),
    ("5,5m", "is not a duration"),
    ("1:30", "is not a duration"),
    ("5m5m", "repeats the unit 'm'"),
    ("-5m", "is negative"),
    (" -5", "is negative"),
    (-1, "is negative"),
    (-0.5, "is negative"),
    (True, "is not a duration"),
    (False, "is not a duration"),
    (float("nan"), "is not a duration"),
    (float("inf"), "is not a duration"),
    ([5], "is not a duration"),
    ("\uff15m", "is not a duration"),  # full-width digit
])
def test_parse_duration_invalid(value, problem):
    with pytest.raises(DurationError) as info:
        parse_duration(value, name="twilio_wait_timeout")
    message = str(info.value)
    assert message.startswith("twilio_wait_timeout ")
    assert problem in message
    assert "s, m, h, d or w" in message  # the accepted forms
    if value not in (None, "", "   "):
        assert repr(value) in message


@pytest.mark.parametrize("value", ["0", "0s", "0.0h", 0, 0.0, "0m0s"])
def test_zero_refused_when_not_allowed(value):
    with pytest.raises(DurationError, match=r"^max_wait_timeout .* must be longer than zero"):
        parse_duration(value, name="max_wait_timeout", allow_zero=False)


@pytest.mark.parametrize("value", ["0", "0s", 0])
def test_zero_allowed_by_default(value):
    assert parse_duration(value, name="twilio_wait_timeout") == 0.0


@pytest.mark.parametrize("value,maximum,ok", [
    ("24h", 86400, True),
    ("1d", 86400, True),
    ("86400", 86400, True),
    ("86401", 86400, False),
    ("2d", 86400, False),
    ("1w", 86400, False),
    ("10m", 600, True),
    ("11m", 600, False),
    ("0.2s", 0.2, True),
])
def test_maximum(value, maximum, ok):
    if ok:
        assert parse_duration(value, name="poll_interval", maximum=maximum) <= maximum
    else:
        with pytest.raises(DurationError) as info:
            parse_duration(value, name="poll_interval", maximum=maximum)
        message = str(info.value)
        assert message.startswith(f"poll_interval {value!r}")
        assert f"maximum of {format_duration(maximum)}" in message


def test_maximum_message_is_readable():
    with pytest.raises(DurationError, match=r"^twilio_wait_timeout '2d' is longer than the maximum of 1d$"):
        parse_duration("2d", name="twilio_wait_timeout", maximum=86400)


def test_duration_error_is_value_error():
    assert issubclass(DurationError, ValueError)


@pytest.mark.parametrize("seconds,expected", [
    (0, "0s"),
    (1, "1s"),
    (45, "45s"),
    (59, "59s"),
    (60, "1m"),
    (120, "2m"),
    (90, "1m30s"),
    (3600, "1h"),
    (5400, "1h30m"),
    (3661, "1h1m1s"),
    (86400, "1d"),
    (86400.0, "1d"),
    (90000, "1d1h"),
    (604800, "1w"),
    (694861, "1w1d1h1m1s"),
    (0.2, "0.2s"),
    (0.25, "0.25s"),
    (1.5, "1.5s"),
    (90.5, "1m30.5s"),
    (0.1 + 0.2, "0.3s"),
    (-90, "-1m30s"),
])
def test_format_duration(seconds, expected):
    assert format_duration(seconds) == expected


@pytest.mark.parametrize("seconds", [0, 0.2, 1, 59, 60, 61, 119, 120, 3599, 3600, 5400, 86399, 86400, 90061,
                                     604800, 1e6])
def test_format_then_parse_round_trip(seconds):
    assert parse_duration(format_duration(seconds), name="x") == pytest.approx(seconds)


@pytest.mark.parametrize("value", [None, "5m", True])
def test_format_duration_rejects_non_numbers(value):
    with pytest.raises(TypeError):
        format_duration(value)
