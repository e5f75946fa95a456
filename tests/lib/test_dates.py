"""Tests for fn_twilio.lib.dates."""
from datetime import date, datetime, timedelta, timezone

import pytest

from fn_twilio.lib import dates
from fn_twilio.lib.dates import DateError, format_date, parse_since, to_epoch_ms

UTC = timezone.utc
NOW = datetime(2024, 6, 1, 12, 0, 0, tzinfo=UTC)


@pytest.fixture(autouse=True)
def fixed_now(monkeypatch):
    monkeypatch.setattr(dates, "_now", lambda: NOW)


def utc(*args):
    return datetime(*args, tzinfo=UTC)


@pytest.mark.parametrize("value,expected", [
    # ISO dates and date-times; no zone means UTC
    ("2020-01-25", utc(2020, 1, 25)),
    ("2020-01-25T14:59:51", utc(2020, 1, 25, 14, 59, 51)),
    ("2020-01-25 14:59:51", utc(2020, 1, 25, 14, 59, 51)),
    ("2020-01-25 14:59:51+00:00", utc(2020, 1, 25, 14, 59, 51)),
    ("2020-01-25T14:59:51Z", utc(2020, 1, 25, 14, 59, 51)),
    ("2020-01-25T14:59:51.123Z", utc(2020, 1, 25, 14, 59, 51, 123000)),
    ("2020-01-25T14:59:51+05:30", utc(2020, 1, 25, 9, 29, 51)),
    ("2020-01-25T14:59:51-08:00", utc(2020, 1, 25, 22, 59, 51)),
    ("2020-01-25T23:30:00-01:00", utc(2020, 1, 26, 0, 30)),
    ("2020-01-25T14:59:51 +02:00", utc(2020, 1, 25, 12, 59, 51)),
    ("20200125T145951Z", utc(2020, 1, 25, 14, 59, 51)),
    ("  2020-01-25  ", utc(2020, 1, 25)),
    # RFC 2822
    ("Thu, 24 Aug 2023 05:01:45 +0000", utc(2023, 8, 24, 5, 1, 45)),
    ("Thu, 24 Aug 2023 05:01:45 -0000", utc(2023, 8, 24, 5, 1, 45)),
    ("Sat, 25 Jan 2020 18:05:47 +0100", utc(2020, 1, 25, 17, 5, 47)),
    ("24 Aug 2023 05:01:45 GMT", utc(2023, 8, 24, 5, 1, 45)),
    # other explicit forms
    ("25 Jan 2020 14:59", utc(2020, 1, 25, 14, 59)),
    ("25 Jan 2020 at 14:59", utc(2020, 1, 25, 14, 59)),
    ("January 25, 2020 2:59 PM UTC", utc(2020, 1, 25, 14, 59)),
    ("Jan 25 2020 3pm -0800", utc(2020, 1, 25, 23, 0)),
    ("25.01.2020", utc(2020, 1, 25)),
    ("13/02/2023", utc(2023, 2, 13)),
    ("2023/01/02", utc(2023, 1, 2)),
    # epoch seconds (< 1e11) and milliseconds (>= 1e11)
    (1579975191, utc(2020, 1, 25, 17, 59, 51)),
    (1579975191000, utc(2020, 1, 25, 17, 59, 51)),
    (1579975191.25, utc(2020, 1, 25, 17, 59, 51, 250000)),
    (1579975191250.0, utc(2020, 1, 25, 17, 59, 51, 250000)),
    ("1579975191", utc(2020, 1, 25, 17, 59, 51)),
    ("1579975191000", utc(2020, 1, 25, 17, 59, 51)),
    (" 1579975191123 ", utc(2020, 1, 25, 17, 59, 51, 123000)),
    ("1579975191.5", utc(2020, 1, 25, 17, 59, 51, 500000)),
    ("+1579975191", utc(2020, 1, 25, 17, 59, 51)),
    # datetime and date objects
    (datetime(2020, 1, 25, 14, 59, 51), utc(2020, 1, 25, 14, 59, 51)),
    (datetime(2020, 1, 25, 14, 59, 51, tzinfo=timezone(timedelta(hours=2))), utc(2020, 1, 25, 12, 59, 51)),
    (date(2020, 1, 25), utc(2020, 1, 25)),
    # limits
    ("2000-01-01T00:00:00Z", utc(2000, 1, 1)),
    ("2025-06-01", utc(2025, 6, 1)),
])
def test_parse_since_valid(value, expected):
    result = parse_since(value, name="twilio_date_sent")
    assert result == expected
    assert result.tzinfo is not None and result.utcoffset() == timedelta(0)


@pytest.mark.parametrize("value", [None, "", "   ", "\n"])
def test_parse_since_empty(value):
    assert parse_since(value, name="twilio_date_sent") is None


@pytest.mark.parametrize("value,problem", [
    ("garbage", "is not a date"),
    ("2020-13-45", "is not a date"),
    ("2020-01-25T25:00", "is not a date"),
    ("2020-01-25 foo", "is not a date"),
    ("1,5", "is not a complete date"),
    (True, "is not a date"),
    (False, "is not a date"),
    ([2020, 1, 25], "is not a date"),
    (float("nan"), "is not a date"),
    (float("inf"), "is not a date"),
    ("2020-01", "is not a complete date"),
    ("Jan 2020", "is not a complete date"),
    ("Thursday", "is not a complete date"),
    ("12:00", "is not a complete date"),
    ("01/02/2023", "is ambiguous"),
    ("02.03.2023", "is ambiguous"),
    ("2020-01-25 14:59:51 EST", "time zone name"),
    ("Jan 25 2020 3pm PST", "time zone name"),
    ("-1579975191", "negative"),
    (-1579975191000, "negative"),
    ("1999-12-31T23:59:59Z", "before 2000"),
    ("1999-12-31", "before 2000"),
    ("0", "before 2000"),
    (946684799, "before 2000"),
    ("20200125", "(read as epoch seconds), before 2000"),
    (99999999999, "(read as epoch seconds), more than a year in the future"),
    (100000000000, "(read as epoch milliseconds), before 2000"),
    ("2025-06-03", "more than a year in the future"),
    ("2999-01-01", "more than a year in the future"),
    ("9999999999999999999999999", "out of range"),
])
def test_parse_since_invalid(value, problem):
    with pytest.raises(DateError) as info:
        parse_since(value, name="twilio_date_sent")
    message = str(info.value)
    assert message.startswith(f"twilio_date_sent {value!r} ")
    assert problem in message


def test_date_error_is_value_error():
    assert issubclass(DateError, ValueError)


@pytest.mark.parametrize("dt,expected", [
    (utc(1970, 1, 1), 0),
    (utc(2020, 1, 25, 18, 5, 47), 1579975547000),
    (utc(2020, 1, 25, 18, 5, 47, 123456), 1579975547123),
    (datetime(2020, 1, 25, 18, 5, 47), 1579975547000),  # naive = UTC
    (datetime(2020, 1, 25, 19, 5, 47, tzinfo=timezone(timedelta(hours=1))), 1579975547000),
    (utc(1969, 12, 31, 23, 59, 59, 999000), -1),
])
def test_to_epoch_ms(dt, expected):
    assert to_epoch_ms(dt) == expected


@pytest.mark.parametrize("ms,expected", [
    (1579975547000, utc(2020, 1, 25, 18, 5, 47)),
    (1579975547123, utc(2020, 1, 25, 18, 5, 47, 123000)),
])
def test_epoch_ms_round_trip(ms, expected):
    result = parse_since(ms, name="twilio_date_sent_ts")
    assert result == expected and result.tzinfo is not None
    assert to_epoch_ms(result) == ms


@pytest.mark.parametrize("dt,expected", [
    (utc(2020, 1, 25, 18, 5, 47), "2020-01-25 18:05:47+00:00"),
    (utc(2020, 1, 25, 18, 5, 47, 999999), "2020-01-25 18:05:47+00:00"),
    (datetime(2020, 1, 25, 18, 5, 47), "2020-01-25 18:05:47+00:00"),
    (datetime(2020, 1, 25, 13, 5, 47, tzinfo=timezone(timedelta(hours=-5))), "2020-01-25 18:05:47+00:00"),
    (utc(2020, 1, 25), "2020-01-25 00:00:00+00:00"),
])
def test_format_date(dt, expected):
    assert format_date(dt) == expected


def test_round_trip_text_and_ms():
    moment = parse_since("2020-01-25 18:05:47+00:00", name="twilio_date_sent")
    assert format_date(moment) == "2020-01-25 18:05:47+00:00"
    assert parse_since(to_epoch_ms(moment), name="twilio_date_sent_ts") == moment
    assert parse_since(format_date(moment), name="x") == moment
