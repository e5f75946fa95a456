"""The sender's and the poller's logic through their seams: a FakeClock and a fake Twilio client.

No HTTP and no sleeping: back-off waits are read from the fake clock, looks are made one at a time
(``look_once``) or by the poller's thread while the test moves the fake time.
"""
from __future__ import annotations

import threading
from datetime import timedelta
from types import SimpleNamespace

import pytest
from twilio.base.exceptions import TwilioRestException

from fn_twilio.lib import polling
from fn_twilio.lib.clock import FakeClock
from fn_twilio.lib.errors import FailureKind
from fn_twilio.lib.phone import parse_recipients
from fn_twilio.lib.polling import MAX_CONSECUTIVE_FAILURES, MAX_PAGES_PER_LOOK, active_pollers
from fn_twilio.lib.records import SendOutcome
from fn_twilio.lib.replies import PAGE_SIZE, Ending, ReplyPoller, ReplyWatch, collect, watch_replies
from fn_twilio.lib.sender import RetryPolicy, SendJob, send_one
from tests.lib.fakes import SENDER, T0, FakeTwilio, message, settings

pytestmark = pytest.mark.usefixtures("no_poller_left")   # tests/conftest.py

ALICE = "+353861234567"
BOB = "+14155552345"
NO_JITTER = RetryPolicy(jitter=False)


def rate_limited(retry_after=None):
    return TwilioRestException(429, "/Messages.json", "Too many requests", code=20429, method="POST"), \
        SimpleNamespace(status_code=429, text='{"code": 20429}',
                        headers={"Retry-After": retry_after} if retry_after else {})


def wait_until(predicate, timeout=5.0):
    """Real-time bound for another thread to catch up (a guard against hanging, not a timing check)."""
    done = threading.Event()
    deadline = threading.Timer(timeout, done.set)
    deadline.start()
    try:
        while not predicate():
            if done.wait(0.001):
                return predicate()
        return True
    finally:
        deadline.cancel()


def no_worker_threads():
    return not [t for t in threading.enumerate() if t.name.startswith(("fn_twilio-send", "fn_twilio-reply"))]


# -- sending --------------------------------------------------------------------------------------
class ScriptedClient:
    """A client whose create() follows a script; last_response is the script entry's response."""

    def __init__(self, twilio, script):
        self.twilio, self.script = twilio, list(script)
        self.messages = SimpleNamespace(create=self._create)
        self.http_client = SimpleNamespace(last_response=None, close=lambda: None)

    def _create(self, **params):
        entry = self.script.pop(0) if self.script else None
        if entry is None:
            self.http_client.last_response = None
            return self.twilio.create(**params)
        exc, response = entry
        self.twilio.requests.append({"kind": "create", **params})
        self.http_client.last_response = response
        raise exc


@pytest.mark.parametrize("script, policy, waits, success, attempts", [
    ([rate_limited()] * 3, NO_JITTER, [1.0, 2.0, 4.0], True, 4),                  # exponential back-off
    ([rate_limited("7")], NO_JITTER, [7.0], True, 2),                              # Retry-After followed
    ([rate_limited("600")], NO_JITTER, [20.0], True, 2),                           # ... capped at max_delay
    ([rate_limited()] * 9, NO_JITTER, [1.0, 2.0, 4.0, 8.0], False, 5),             # max_attempts
    ([rate_limited()] * 9, RetryPolicy(jitter=False, budget=5), [1.0, 2.0], False, 3),  # the budget
], ids=["backoff", "retry-after", "retry-after-capped", "attempts", "budget"])
def test_retry_schedule(script, policy, waits, success, attempts):
    twilio, clock = FakeTwilio(), FakeClock(auto_advance=True)
    outcome = send_one(ScriptedClient(twilio, script), settings(), ALICE, "hi", policy=policy, clock=clock)
    assert clock.waits == waits
    assert outcome.success is success
    assert len(twilio.requests) == attempts
    if not success:
        assert outcome.error_message.endswith(f"not sent after {attempts} attempts")


def test_jittered_backoff_stays_within_half_to_full_ceiling():
    policy = RetryPolicy()
    for attempt, ceiling in [(1, 1.0), (2, 2.0), (3, 4.0), (6, 20.0)]:
        assert all(ceiling / 2 <= policy.backoff(attempt) <= ceiling for _ in range(50))


def test_a_server_error_is_never_resent():
    twilio, clock = FakeTwilio(), FakeClock(auto_advance=True)
    error = TwilioRestException(500, "/Messages.json", "boom", method="POST")
    response = SimpleNamespace(status_code=500, text="<html><body>down</body></html>",
                               headers={"Twilio-Request-Id": "RQ123"})
    outcome = send_one(ScriptedClient(twilio, [(error, response)]), settings(), ALICE, "hi", clock=clock)
    assert clock.waits == [] and len(twilio.requests) == 1
    assert outcome.may_have_sent and "may or may not have been sent" in outcome.error_message
    assert "HTML page" in outcome.error_message and "RQ123" in outcome.error_message


class BlockingClients:
    """Every worker's client: create() answers 429 so the worker waits in its back-off."""

    def __init__(self, twilio):
        self.twilio = twilio

    def get(self):
        return ScriptedClient(self.twilio, [rate_limited()] * 10)

    def close(self):
        pass


def test_cancel_ends_the_backoff_and_nothing_more_is_sent():
    twilio, clock = FakeTwilio(), FakeClock()   # time never moves: the back-off would wait forever
    recipients = parse_recipients(", ".join(f"+3538612345{n:02d}" for n in range(6)))
    job = SendJob(settings(max_concurrency="2"), recipients, "hi", clock=clock,
                  client_source=BlockingClients(twilio)).start()
    assert wait_until(lambda: len(clock.waits) == 2)   # both workers are waiting in their back-off
    job.close()
    assert len(twilio.requests) == 2
    outcomes = job.outcomes()
    assert len(outcomes) == 6 and not any(o.success for o in outcomes)
    assert sum("cancelled" in o.error_message for o in outcomes) == 4
    assert no_worker_threads()


def test_a_closed_send_generator_cancels_its_job_and_leaves_no_thread():
    twilio, clock = FakeTwilio(), FakeClock()
    recipients = parse_recipients(", ".join(f"+3538612345{n:02d}" for n in range(5)))

    def call():   # the shape of the send component's generator
        with SendJob(settings(max_concurrency="1"), recipients, "hi", clock=clock,
                     client_source=BlockingClients(twilio)) as job:
            yield from job.progress(0.001)

    generator = call()
    first = next(generator)
    assert first.total == 5 and first.sent == 0
    assert wait_until(lambda: clock.waits)
    generator.close()   # resilient-circuits shutting down
    assert len(twilio.requests) == 1
    assert no_worker_threads()


def test_already_sent_recipients_are_reported_without_a_request():
    twilio = FakeTwilio()
    earlier = SendOutcome(phone_number=BOB, success=True, status="sent", sid="SM" + "e" * 32)
    job = SendJob(settings(), parse_recipients(f"{ALICE}, {BOB}"), "hi",
                  client_source=SimpleNamespace(get=twilio.client, close=lambda: None),
                  already_sent={BOB: earlier})
    outcomes = job.run()
    assert outcomes[1] is earlier and outcomes[0].success
    assert [r["to"] for r in twilio.requests] == [ALICE]
    assert job.sent == 2


# -- the reply poller, one look at a time ----------------------------------------------------------
def poller(twilio=None, clock=None, **section):
    s = settings(**section)
    return ReplyPoller(s, polling.poller_key(s, ReplyPoller.kind), clock=clock or FakeClock(),
                       autostart=False)


def next_look(p, twilio):
    """The poller's next look, one interval after the last (as its thread would make it)."""
    p.clock.advance(p.interval)
    return p.look_once(twilio.client())


def add(p, numbers, since=None, fresh=False):
    watch = ReplyWatch([numbers] if isinstance(numbers, str) else numbers, since, p.clock)
    p.add(watch, fresh=fresh)
    return watch


def test_null_dates_count_as_created_then_as_the_moment_of_the_look():
    twilio, clock = FakeTwilio(), FakeClock(wall_start=T0 + timedelta(hours=1))
    created = T0 - timedelta(minutes=5)
    twilio.add(message(ALICE, "no date_sent", sent=None, created=created),
               message(ALICE, "no dates at all", sent=None, created=None))
    p = poller(clock=clock)
    watch = add(p, ALICE)
    assert p.look_once(twilio.client())
    by_body = {r.body: r for r in watch.replies}
    assert by_body["no date_sent"].date_sent == created
    assert by_body["no dates at all"].date_sent == T0 + timedelta(hours=1)
    assert watch.looks == 1 and watch.error is None
    p.look_once(twilio.client())   # and the shared look and pruning cope with them too
    assert watch.error is None and len(watch.replies) == 2


@pytest.mark.parametrize("fault", [
    TwilioRestException(503, "/Messages.json", "unavailable", method="GET"),   # a failed request
    TypeError("a bug in the look"),                                            # a bug
], ids=["request", "bug"])
def test_failures_are_counted_then_reach_the_watch(fault):
    twilio = FakeTwilio()
    p = poller()
    watch = add(p, ALICE)
    twilio.fail_next_pages = [fault] * (MAX_CONSECUTIVE_FAILURES - 1)
    for attempt in range(1, MAX_CONSECUTIVE_FAILURES):
        next_look(p, twilio)
        assert p.failures == attempt and watch.error is None and watch.looks == 0
    next_look(p, twilio)   # the next look succeeds: the count starts again
    assert p.failures == 0 and watch.looks == 1
    twilio.fail_next_pages = [fault] * MAX_CONSECUTIVE_FAILURES
    for _ in range(MAX_CONSECUTIVE_FAILURES):
        next_look(p, twilio)
    assert watch.error is not None and watch.wait(0)


def test_a_permanent_failure_ends_the_wait_at_once():
    twilio = FakeTwilio()
    twilio.fail_next_pages = [TwilioRestException(401, "/Messages.json", "Authenticate", code=20003,
                                                   method="GET")]
    p = poller()
    watch = add(p, ALICE)
    p.look_once(twilio.client())
    assert watch.error.code == 20003 and "credentials" in watch.error.message


def test_an_answer_that_cannot_be_parsed_is_a_failed_look_not_a_dead_poller():
    twilio = FakeTwilio()
    broken = message(ALICE, "garbage date")
    broken.date_sent = "not a date"
    twilio.add(broken)
    p = poller()
    watch = add(p, ALICE)
    p.look_once(twilio.client())
    assert p.failures == 1 and watch.looks == 0
    twilio.messages_held.remove(broken)
    twilio.add(message(ALICE, "fine"))
    p.look_once(twilio.client())
    assert [r.body for r in watch.replies] == ["fine"]


class ExplodingWatch(ReplyWatch):
    def offer(self, replies):
        if list(replies):
            raise KeyError("a bug while handing out")


def test_a_failing_hand_out_fails_that_watch_only():
    twilio = FakeTwilio()
    twilio.add(message(ALICE, "for both"))
    p = poller()
    bad = ExplodingWatch([ALICE], None, p.clock)
    p.add(bad)
    good = add(p, ALICE)
    p.look_once(twilio.client())
    assert bad.error is not None and bad.error.kind is FailureKind.BAD_RESPONSE
    assert [r.body for r in good.replies] == ["for both"] and good.error is None


def test_a_call_without_since_costs_its_own_number_not_the_senders_history():
    twilio = FakeTwilio()
    others = [f"+3538670{n:05d}" for n in range(50)]
    twilio.add(*[message(others[i % 50], sent=T0 - timedelta(minutes=i)) for i in range(2000)])
    twilio.add(message(ALICE, "mine", sent=T0 - timedelta(days=30)))
    p = poller()
    watch = add(p, ALICE, fresh=True)
    p.look_once(twilio.client())
    assert [r.body for r in watch.replies] == ["mine"] and watch.looks == 1
    assert len(twilio.lists) == 1
    assert twilio.lists[0]["from_"] == ALICE and twilio.lists[0]["to"] == SENDER


def test_no_look_reads_more_than_the_page_cap_and_the_rest_follows():
    twilio, clock = FakeTwilio(), FakeClock()
    p = poller(clock=clock)
    watch = add(p, ALICE, since=T0 - timedelta(hours=1))
    next_look(p, twilio)                    # its own look
    next_look(p, twilio)                    # the shared listing starts
    start = len(twilio.lists)
    burst = [message(ALICE if i == 0 else BOB, f"n{i}", sent=T0 + timedelta(seconds=i))
             for i in range(PAGE_SIZE * MAX_PAGES_PER_LOOK * 2 + 30)]
    twilio.add(*burst)
    per_look = []
    for _ in range(4):
        before = len(twilio.lists)
        next_look(p, twilio)
        per_look.append(len(twilio.lists) - before)
    assert max(per_look) <= MAX_PAGES_PER_LOOK and per_look[0] == MAX_PAGES_PER_LOOK
    assert [r.body for r in watch.replies] == ["n0"]   # the oldest of the burst, read last
    assert len(p.known) >= len(burst) and len(twilio.lists) > start


def test_a_watch_covered_by_the_cache_costs_no_request():
    twilio = FakeTwilio()
    twilio.add(message(ALICE, "cached", sent=T0))
    p = poller()
    add(p, BOB, since=T0 - timedelta(hours=1))
    next_look(p, twilio)
    next_look(p, twilio)
    before = len(twilio.lists)
    later = add(p, ALICE, since=T0 - timedelta(minutes=1))
    assert [r.body for r in later.replies] == ["cached"] and later.looks == 1
    assert len(twilio.lists) == before


def test_whatsapp_replies_are_listed_at_the_senders_whatsapp_address():
    """Contract §13.1: a WhatsApp reply is sent to whatsapp:<sender>, so listing To=<sender> never sees it."""
    wa = "whatsapp:" + ALICE
    twilio = FakeTwilio()
    twilio.add(message(wa, "ack", sent=T0, to="whatsapp:" + SENDER), message(BOB, "sms", sent=T0))
    p = poller()
    watch = add(p, [wa, BOB], since=T0 - timedelta(minutes=5))
    next_look(p, twilio)                 # the first shared listings: one per channel
    assert sorted(r["to"] for r in twilio.lists) == [SENDER, "whatsapp:" + SENDER]
    assert sorted(r.body for r in watch.replies) == ["ack", "sms"]
    twilio.add(message(wa, "ack 2101", sent=T0 + timedelta(seconds=30), to="whatsapp:" + SENDER))
    before = len(twilio.lists)
    next_look(p, twilio)
    shared = twilio.lists[before:]
    assert sorted(r.get("to") for r in shared) == [SENDER, "whatsapp:" + SENDER]
    assert "ack 2101" in [r.body for r in watch.replies]


def test_a_whatsapp_watch_joining_an_sms_only_poller_is_not_served_from_the_sms_cache():
    wa = "whatsapp:" + ALICE
    twilio = FakeTwilio()
    twilio.add(message(wa, "waiting", sent=T0, to="whatsapp:" + SENDER))
    p = poller()
    add(p, BOB, since=T0 - timedelta(hours=1))
    next_look(p, twilio)
    next_look(p, twilio)                 # the shared SMS listing holds nothing from Alice
    later = add(p, wa, since=T0 - timedelta(minutes=1))
    next_look(p, twilio)
    assert [r.body for r in later.replies] == ["waiting"]


# -- the poller's thread and the registry ------------------------------------------------------------
def test_calls_on_the_same_sender_share_a_poller_and_credentials_separate_them():
    twilio, clock = FakeTwilio(), FakeClock()
    with watch_replies(settings(), ALICE, None, client_factory=twilio.client, clock=clock) as a, \
            watch_replies(settings(), BOB, None, client_factory=twilio.client, clock=clock) as b, \
            watch_replies(settings(twilio_auth_token="u" * 32), BOB, None, client_factory=twilio.client,
                          clock=clock) as c:
        assert a._poller is b._poller and c._poller is not a._poller
        assert active_pollers() == 2


def test_a_poller_whose_thread_died_is_replaced_by_the_next_call():
    twilio, clock = FakeTwilio(), FakeClock()

    def broken_factory(_settings):
        raise RuntimeError("cannot build a client")

    with watch_replies(settings(), ALICE, None, client_factory=broken_factory, clock=clock) as first:
        assert first.wait(5.0)   # real-time guard: the dying thread tells its watch at once
        assert "stopped unexpectedly" in first.error.message
        assert wait_until(lambda: active_pollers() == 0)
    twilio.add(message(ALICE, "after"))
    outcome = collect(settings(), [ALICE], None, clock.now() + 60, clock=clock, client_factory=twilio.client)
    assert outcome.ending == Ending.REPLIED and [r.body for r in outcome.replies] == ["after"]


def test_a_registered_poller_without_a_live_thread_is_replaced():
    twilio, clock = FakeTwilio(), FakeClock()
    with watch_replies(settings(), ALICE, None, client_factory=twilio.client, clock=clock) as first:
        assert first.wait_for_look(5.0)
        old = first._poller
        finished = threading.Thread(target=lambda: None)
        finished.start()
        finished.join()
        old._thread = finished   # as if the thread had ended without a word
        with watch_replies(settings(), BOB, None, client_factory=twilio.client, clock=clock) as second:
            assert second._poller is not old
            assert second.wait_for_look(5.0)


def test_the_thread_survives_failing_looks_and_polls_on():
    twilio, clock = FakeTwilio(), FakeClock()
    twilio.fail_next_pages = [ValueError("unparseable")]
    with watch_replies(settings(), ALICE, None, client_factory=twilio.client, clock=clock) as watch:
        assert wait_until(lambda: watch._poller.failures == 1)
        twilio.add(message(ALICE, "later"))
        clock.advance(2.0)
        assert watch.wait(5.0) and [r.body for r in watch.replies] == ["later"]


# -- collect(): the wait loop ---------------------------------------------------------------------
def run_collect(clock, twilio, **kwargs):
    result = {}
    thread = threading.Thread(target=lambda: result.setdefault("outcome", collect(
        settings(), [ALICE], None, clock.now() + 10, clock=clock, client_factory=twilio.client, **kwargs)))
    thread.start()
    return thread, result


def test_collect_returns_a_reply_that_arrives_while_waiting():
    twilio, clock = FakeTwilio(), FakeClock()
    thread, result = run_collect(clock, twilio)
    assert wait_until(lambda: twilio.lists)
    twilio.add(message(ALICE, "yes", sent=T0 + timedelta(minutes=1)))
    while thread.is_alive():
        clock.advance(2.0)
        thread.join(0.01)
    assert result["outcome"].ending == Ending.REPLIED
    assert [r.body for r in result["outcome"].replies] == ["yes"]


def test_collect_times_out_at_its_deadline_and_asks_about_termination_each_interval():
    twilio, clock = FakeTwilio(), FakeClock()
    asked = []
    thread, result = run_collect(clock, twilio, is_terminated=lambda: asked.append(1))
    while thread.is_alive():
        clock.advance(1.0)
        thread.join(0.01)
    assert result["outcome"].ending == Ending.TIMED_OUT and result["outcome"].replies == ()
    assert 4 <= len(asked) <= 5   # 10 s at a 2 s interval


def test_collect_ends_when_the_workflow_is_terminated():
    twilio, clock = FakeTwilio(), FakeClock()
    thread, result = run_collect(clock, twilio, is_terminated=lambda: "stopped by an analyst")
    while thread.is_alive():
        clock.advance(2.0)
        thread.join(0.01)
    assert result["outcome"].ending == Ending.TERMINATED
    assert result["outcome"].terminated == "stopped by an analyst"


def test_collect_with_a_past_deadline_looks_once():
    twilio, clock = FakeTwilio(), FakeClock()
    twilio.add(message(ALICE, "already there"))
    outcome = collect(settings(), [ALICE], None, clock.now(), clock=clock, client_factory=twilio.client)
    assert outcome.ending == Ending.REPLIED and len(twilio.lists) == 1


def test_collect_reports_a_lasting_failure():
    twilio, clock = FakeTwilio(), FakeClock()
    twilio.fail_next_pages = [TwilioRestException(401, "/Messages.json", "x", code=20003, method="GET")]
    outcome = collect(settings(), [ALICE], None, clock.now() + 60, clock=clock, client_factory=twilio.client)
    assert outcome.ending == Ending.FAILED and outcome.failure.code == 20003


def test_collect_waits_on_several_numbers():
    twilio, clock = FakeTwilio(), FakeClock()
    twilio.add(message(BOB, "from bob"), message("+15005550009", "someone else"))
    outcome = collect(settings(), [ALICE, BOB], None, clock.now(), clock=clock, client_factory=twilio.client)
    assert [r.body for r in outcome.replies] == ["from bob"]
    assert sorted(r["from_"] for r in twilio.lists) == sorted([ALICE, BOB])


def test_a_call_joining_between_intervals_pays_only_its_own_look():
    twilio = FakeTwilio()
    p = poller()
    add(p, BOB, since=T0 - timedelta(hours=1), fresh=True)
    p.look_once(twilio.client())
    next_look(p, twilio)
    before = len(twilio.lists)
    add(p, ALICE, fresh=True)
    p.look_once(twilio.client())   # made at once for the new call, before the interval is over
    assert [r.get("from_") for r in twilio.lists[before:]] == [ALICE]
