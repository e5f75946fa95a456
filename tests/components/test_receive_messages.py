"""twilio_receive_messages (and its legacy name) through resilient-circuits, against the Twilio emulator.

The app's poll_interval is 0.2 s here (tests/conftest.py), so "one interval" is short.
"""
import threading
from datetime import datetime, timedelta, timezone

import pytest

from fn_twilio.lib.dates import format_date, to_epoch_ms
from sandbox.twilio_emulator import SENDER
from tests.conftest import call_function
from tests.soar_mock import FnTwilioSoarMock

FN = "twilio_receive_messages"
ALICE = "+353861234567"
BOB = "+14155552345"


def lists(twilio):
    return [r for r in twilio.requests if r.method == "GET" and r.path.endswith("/Messages.json")]


def receive(circuits_app, number=ALICE, wait="0s", fn=FN, **inputs):
    values = {"twilio_phone_number": number, "twilio_wait_timeout": wait, **inputs}
    return call_function(circuits_app, fn, {k: v for k, v in values.items() if v is not None})


def inject_later(twilio, delay, **message):
    timer = threading.Timer(delay, lambda: twilio.inject_inbound(**message))
    timer.start()
    return timer


class TestReplies:
    APP_SETTINGS = {}

    def test_returns_a_waiting_reply(self, circuits_app, twilio):
        reply = twilio.inject_inbound(from_=ALICE, to=SENDER, body="ACK")
        call = receive(circuits_app)
        result = call.result
        assert result["success"] is True and result["reason"] is None
        (entry,) = result["content"]
        assert entry["phone_number"] == ALICE
        assert entry["sid"] == reply["sid"] and entry["messaging_service_sid"] == reply["sid"]
        assert entry["direction"] == "inbound" and entry["status"] == "received"
        assert entry["message_body"] == "ACK" and entry["error_message"] is None
        assert entry["date_created"].endswith("+00:00")
        assert isinstance(entry["date_created_ts"], int)
        # the standard ResultPayload around it
        assert result["version"] == 2.0
        assert result["inputs"]["twilio_phone_number"] == ALICE
        assert result["metrics"]["package"] == "fn_twilio"

    def test_only_replies_from_that_number_to_our_sender_oldest_first(self, circuits_app, twilio):
        now = datetime.now(timezone.utc)
        twilio.inject_inbound(from_=ALICE, to=SENDER, body="second", date_sent=now - timedelta(minutes=1))
        twilio.inject_inbound(from_=ALICE, to=SENDER, body="first", date_sent=now - timedelta(minutes=5))
        twilio.inject_inbound(from_=BOB, to=SENDER, body="not alice")
        twilio.add_number("+15005550007")
        twilio.inject_inbound(from_=ALICE, to="+15005550007", body="to another number of the account")
        call = receive(circuits_app)
        assert [e["message_body"] for e in call.result["content"]] == ["first", "second"]

    def test_a_reply_after_empty_looks_is_success(self, circuits_app, twilio):
        timer = inject_later(twilio, 0.7, from_=ALICE, to=SENDER, body="on my way")
        try:
            call = receive(circuits_app, wait="10s")
        finally:
            timer.cancel()
        assert call.result["success"] is True
        assert [e["message_body"] for e in call.result["content"]] == ["on my way"]
        assert len(lists(twilio)) >= 2     # it looked, found nothing, looked again

    def test_timeout_reason(self, circuits_app, twilio):
        since = "2026-01-25 14:59:51+00:00"
        call = receive(circuits_app, wait="1s", twilio_date_sent=since)
        assert call.result["success"] is False
        assert call.result["content"] == []
        assert call.result["reason"] == (f"Timeout waiting for responses for phone number: {ALICE} "
                                         f"since {since}")

    def test_zero_wait_looks_once(self, circuits_app, twilio):
        call = receive(circuits_app, wait="0s")
        assert call.result["success"] is False
        assert "Timeout waiting for responses" in call.result["reason"]
        assert len(lists(twilio)) == 1

    def test_default_wait_is_120s(self, circuits_app, twilio):
        twilio.inject_inbound(from_=ALICE, to=SENDER, body="yes")
        call = receive(circuits_app, wait=None)
        assert call.statuses[0].endswith("waiting up to 2m")
        assert call.result["success"] is True

    def test_each_reply_once_across_looks(self, circuits_app, twilio):
        twilio.inject_inbound(from_=ALICE, to=SENDER, body="one")
        first = receive(circuits_app).result["content"]
        second = receive(circuits_app).result["content"]
        assert [e["sid"] for e in first] == [e["sid"] for e in second]

    def test_national_number_is_invalid_without_region(self, circuits_app, twilio):
        call = receive(circuits_app, number="(978) 835-4530")
        assert "twilio_phone_number" in call.error and "country code" in call.error
        assert not lists(twilio)

    def test_legacy_name_is_served(self, circuits_app, twilio):
        twilio.inject_inbound(from_=ALICE, to=SENDER, body="legacy ok")
        call = receive(circuits_app, fn="twilio_get_responses")
        assert call.result["success"] is True
        assert call.result["content"][0]["message_body"] == "legacy ok"


class TestSince:
    """twilio_date_sent (text or epoch ms), else twilio_date_sent_ts: replies at or after that moment."""

    APP_SETTINGS = {}

    @pytest.fixture
    def history(self, twilio):
        base = datetime(2026, 3, 1, 12, 0, 0, tzinfo=timezone.utc)
        for minutes, body in ((-10, "before"), (0, "at"), (10, "after")):
            twilio.inject_inbound(from_=ALICE, to=SENDER, body=body,
                                  date_sent=base + timedelta(minutes=minutes))
        return base

    @pytest.mark.parametrize("inputs", [
        {"twilio_date_sent": "2026-03-01 12:00:00+00:00"},
        {"twilio_date_sent": "2026-03-01T13:00:00+01:00"},
        {"twilio_date_sent": "2026-03-01 12:00:00"},            # no zone: UTC
        {"twilio_date_sent": "Sun, 01 Mar 2026 12:00:00 +0000"},
        {"twilio_date_sent": 1772366400000},                     # epoch ms
        {"twilio_date_sent_ts": 1772366400000},
        {"twilio_date_sent": "", "twilio_date_sent_ts": 1772366400000},
        {"twilio_date_sent_ts": 1772366400500},                  # Twilio's dates have whole seconds
    ])
    def test_moment_forms(self, circuits_app, history, inputs):
        assert to_epoch_ms(history) == 1772366400000
        call = receive(circuits_app, **inputs)
        assert [e["message_body"] for e in call.result["content"]] == ["at", "after"]

    def test_no_moment_returns_all(self, circuits_app, history):
        call = receive(circuits_app)
        assert [e["message_body"] for e in call.result["content"]] == ["before", "at", "after"]

    def test_moment_in_the_timeout_reason(self, circuits_app, twilio):
        call = receive(circuits_app, twilio_date_sent_ts=1772366400000)
        since = datetime(2026, 3, 1, 12, tzinfo=timezone.utc)
        assert call.result["reason"].endswith(f"since {format_date(since)}")

    @pytest.mark.parametrize("inputs, expected", [
        ({"twilio_date_sent": "not a date"}, "twilio_date_sent"),
        ({"twilio_date_sent": "2026-13-45"}, "twilio_date_sent"),
        ({"twilio_date_sent_ts": "yesterday"}, "twilio_date_sent_ts"),
        ({"twilio_date_sent_ts": -5}, "twilio_date_sent_ts"),
    ])
    def test_unparseable_moment(self, circuits_app, twilio, inputs, expected):
        call = receive(circuits_app, **inputs)
        assert call.result is None and expected in call.error
        assert not lists(twilio)


class TestWaitTimeout:
    APP_SETTINGS = {"max_wait_timeout": "1h"}

    @pytest.mark.parametrize("wait", ["0s", "0", " 0s ", "0m", "0h", "0d", "0w", "0S"])
    def test_zero_forms_look_once(self, circuits_app, twilio, wait):
        call = receive(circuits_app, wait=wait)
        assert "Timeout waiting" in call.result["reason"]

    @pytest.mark.parametrize("wait", ["1s", "0.5s", "1 s", "0.01m"])
    def test_short_forms(self, circuits_app, twilio, wait):
        call = receive(circuits_app, wait=wait)
        assert "Timeout waiting" in call.result["reason"]

    @pytest.mark.parametrize("wait", ["abc", "5y", "-5s", "s", "5 minutes", "2h", "1w", "1.5.2s"])
    def test_malformed_or_too_long(self, circuits_app, twilio, wait):
        call = receive(circuits_app, wait=wait)
        assert call.result is None
        assert "twilio_wait_timeout" in call.error
        assert not lists(twilio)


class TestTerminated:
    APP_SETTINGS = {}

    def test_terminated_workflow_stops_within_an_interval(self, circuits_app, twilio):
        FnTwilioSoarMock.workflows[999] = {"status": "running"}
        timer = threading.Timer(0.8, lambda: FnTwilioSoarMock.workflows.__setitem__(
            999, {"status": "terminated", "terminate_reason": "Incident closed"}))
        timer.start()
        try:
            call = receive(circuits_app, wait="60s")   # the harness gives up long before 60 s
        finally:
            timer.cancel()
            FnTwilioSoarMock.workflows.clear()
        assert call.result["success"] is False
        assert call.result["reason"] == "Workflow was terminated: Incident closed"


@pytest.mark.usefixtures("no_poller_left")   # the requests counted are this test's pollers' alone
class TestPollerSharing:
    APP_SETTINGS = {"poll_interval": "0.5s"}

    def test_concurrent_calls_share_one_poller(self, circuits_app, twilio):
        numbers = [f"+3538612345{n:02d}" for n in range(6)]
        results = {}

        def run(number):
            results[number] = receive(circuits_app, number=number, wait="2s").result

        timer = inject_later(twilio, 1.0, from_=numbers[3], to=SENDER, body="only me")
        threads = [threading.Thread(target=run, args=(n,)) for n in numbers]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        timer.cancel()
        assert results[numbers[3]]["success"] is True
        assert [e["message_body"] for e in results[numbers[3]]["content"]] == ["only me"]
        for number in numbers[:3] + numbers[4:]:
            assert results[number]["success"] is False and results[number]["content"] == []
        # each call (no moment) has one first look of its own, filtered by its number (contract §12);
        # after that one request per interval serves all six calls, whatever number each waits on
        every = lists(twilio)
        looks = [r for r in every if r.query.get("To") == [SENDER]]
        # the one reply's code is read from the texts sent to its number: one listing, once
        sent_to = [r for r in every if r.query.get("To") != [SENDER]]
        assert [(r.query["To"][0], r.query["From"][0]) for r in sent_to] == [(numbers[3], SENDER)]
        own = [r for r in looks if "From" in r.query]
        shared = [r for r in looks if "From" not in r.query]
        assert sorted(r.query["From"][0] for r in own) == sorted(numbers)
        span = looks[-1].started - looks[0].started
        assert len(shared) <= span / 0.5 + 2, (len(shared), span, [round(r.started - looks[0].started, 2)
                                                                   for r in shared])
