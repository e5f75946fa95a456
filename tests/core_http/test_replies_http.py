"""The shared reply poller (fn_twilio.lib.replies) against the Twilio emulator over HTTP, in real time."""
import time
from datetime import datetime, timedelta, timezone

import pytest

from fn_twilio.lib.replies import PAGE_SIZE, watch_replies
from fn_twilio.lib.settings import load_settings
from sandbox.twilio_emulator import ACCOUNT_SID, AUTH_TOKEN, SENDER
from tests.conftest import no_active_poller

pytestmark = pytest.mark.usefixtures("no_poller_left")   # tests/conftest.py

ALICE = "+353861234567"
BOB = "+14155552345"
INTERVAL = 0.3


@pytest.fixture
def settings(twilio):
    return load_settings({"twilio_account_sid": ACCOUNT_SID, "twilio_auth_token": AUTH_TOKEN,
                          "twilio_src_address": SENDER, "twilio_base_url": twilio.base_url,
                          "poll_interval": f"{INTERVAL}s", "timeout": "5"})


def lists(twilio):
    return [r for r in twilio.requests if r.method == "GET" and r.path.endswith("/Messages.json")]


def test_first_look_is_immediate_and_finds_a_waiting_reply(settings, twilio):
    twilio.inject_inbound(from_=ALICE, to=SENDER, body="ACK")
    with watch_replies(settings, ALICE, None) as watch:
        assert watch.wait(2.0)
        assert [r.body for r in watch.replies] == ["ACK"]
    assert no_active_poller()


def test_reply_arriving_later_is_found_within_an_interval(settings, twilio):
    with watch_replies(settings, ALICE, datetime.now(timezone.utc)) as watch:
        assert not watch.wait(INTERVAL * 1.5)
        twilio.inject_inbound(from_=ALICE, to=SENDER, body="late")
        assert watch.wait(5.0)
        assert [r.body for r in watch.replies] == ["late"]


def test_quiet_looks_cost_one_request_each_over_a_large_history(settings, twilio):
    twilio.seed_history(5000, from_=SENDER, to=ALICE, start=datetime.now(timezone.utc) - timedelta(days=3))
    twilio.seed_history(300, from_=BOB, to=SENDER, direction="inbound",
                        start=datetime.now(timezone.utc) - timedelta(days=2))
    with watch_replies(settings, ALICE, datetime.now(timezone.utc) - timedelta(minutes=1)) as watch:
        time.sleep(INTERVAL * 5.5)
        assert watch.looks >= 5
    looks = lists(twilio)
    assert len(looks) <= watch.looks + 1
    assert all("PageToken" not in r.query and r.query.get("Page", ["0"]) == ["0"] for r in looks)


def test_deep_history_is_paged_and_each_reply_returned_once(settings, twilio):
    start = datetime.now(timezone.utc) - timedelta(hours=3)
    twilio.seed_history(PAGE_SIZE * 2 + 17, from_=ALICE, to=SENDER, direction="inbound", start=start)
    with watch_replies(settings, ALICE, start) as watch:
        assert watch.wait(5.0)
        time.sleep(INTERVAL * 2.5)        # more looks must not repeat anything
        found = watch.replies
    assert len(found) == PAGE_SIZE * 2 + 17
    assert len({r.sid for r in found}) == len(found)
    assert [r.date_sent for r in found] == sorted(r.date_sent for r in found)


def test_a_later_watch_with_an_older_moment_gets_the_older_replies(settings, twilio):
    now = datetime.now(timezone.utc)
    twilio.inject_inbound(from_=ALICE, to=SENDER, body="an hour ago", date_sent=now - timedelta(hours=1))
    with watch_replies(settings, BOB, now - timedelta(minutes=1)) as first:
        assert first.wait_for_look(2.0)
        with watch_replies(settings, ALICE, now - timedelta(hours=2)) as second:
            assert second.wait(2.0)
            assert [r.body for r in second.replies] == ["an hour ago"]


def test_a_joining_watch_starts_from_the_running_pollers_cache(settings, twilio):
    twilio.inject_inbound(from_=ALICE, to=SENDER, body="cached")
    with watch_replies(settings, BOB, None) as first:
        assert first.wait_for_look(2.0)
        before = len(lists(twilio))
        with watch_replies(settings, ALICE, None) as second:
            # no moment: a first look of its own, filtered by its number (contract §12)
            assert second.wait_for_look(2.0) and [r.body for r in second.replies] == ["cached"]
        assert len(lists(twilio)) <= before + 2   # its own look, and at most one shared look


def test_zero_wait_watch_makes_its_own_look(settings, twilio):
    with watch_replies(settings, BOB, None) as first:
        assert first.wait_for_look(2.0)
        twilio.inject_inbound(from_=ALICE, to=SENDER, body="just now")
        with watch_replies(settings, ALICE, None, fresh_look=True) as second:
            assert second.wait(2.0)
            assert [r.body for r in second.replies] == ["just now"]


def test_outbound_and_other_senders_are_not_replies(settings, twilio):
    twilio.add_number("+15005550007")
    twilio.inject_inbound(from_=ALICE, to="+15005550007", body="to another number")
    twilio.seed_history(3, from_=SENDER, to=ALICE)
    with watch_replies(settings, ALICE, None) as watch:
        assert watch.wait_for_look(2.0)
        assert watch.replies == []


def test_transient_failure_is_retried_at_the_next_interval(settings, twilio):
    twilio.inject_inbound(from_=ALICE, to=SENDER, body="after a hiccup")
    twilio.inject_fault("status", method="GET", status=503, times=2)
    with watch_replies(settings, ALICE, None) as watch:
        assert watch.wait(INTERVAL * 6)
        assert watch.error is None
        assert [r.body for r in watch.replies] == ["after a hiccup"]


def test_wrong_credentials_end_the_watch_at_once(settings, twilio):
    from dataclasses import replace
    wrong = replace(settings, auth_token="0" * 32)
    with watch_replies(wrong, ALICE, None) as watch:
        assert watch.wait(2.0)
        assert watch.error.code == 20003
    assert len(lists(twilio)) == 1
