"""The termination check of waiting calls (fn_twilio.lib.termination) on a FakeClock: one read per
poll interval at most, a refused read said once and the call going on to its own end, a 401 ending the
call with a reason that says so; then the same check inside the core's wait loops (collect, a page)."""
import logging
import threading

import pytest

from fn_twilio.lib.clock import FakeClock
from fn_twilio.lib.intents import ack_request
from fn_twilio.lib.paging import Page, parse_tiers
from fn_twilio.lib.replies import Ending, collect
from fn_twilio.lib.termination import CredentialsRefused, StatusUnreadable, TerminationCheck
from tests.lib.fakes import FakeTwilio, settings

pytestmark = pytest.mark.usefixtures("no_poller_left")   # tests/conftest.py

ALICE, BOB = "+353861234567", "+353869876543"
INTERVAL = 2.0


class Soar:
    """A ``read`` whose answers a test scripts: a reason, None, or an exception to raise."""

    def __init__(self, *answers, then=None):
        self.answers = list(answers)
        self.then = then
        self.reads = 0

    def __call__(self):
        self.reads += 1
        answer = self.answers.pop(0) if self.answers else self.then
        if isinstance(answer, BaseException):
            raise answer
        return answer


def check_for(read, clock, said=None, kind="workflow"):
    return TerminationCheck(read, interval=INTERVAL, kind=kind, instance=1001, clock=clock,
                            say=(said.append if said is not None else lambda text: None))


def test_at_most_one_read_per_interval_however_often_the_loop_asks():
    clock, soar = FakeClock(), Soar(then=None)
    check = check_for(soar, clock)
    answers = [check() for _ in range(5)]             # a loop woken five times in the same moment
    clock.advance(INTERVAL - 0.1)
    answers.append(check())
    assert answers == [None] * 6 and soar.reads == 1
    clock.advance(0.1)
    check()
    assert soar.reads == 2 and check.reads == 2


def test_a_termination_is_passed_on_and_worded_by_reason():
    clock = FakeClock()
    check = check_for(Soar(None, "closed by analyst"), clock)
    assert check() is None
    clock.advance(INTERVAL)
    assert check() == "closed by analyst"
    assert check.reason("closed by analyst") == "Workflow was terminated: closed by analyst"
    assert check.ended is None


@pytest.mark.parametrize("refusal", [
    "403 Forbidden: Insufficient permissions", "404 Not Found: Workflow instance 1001 not found",
    "500 Server Error", "SOAR's answer has no status", "SOAR's answer (200) is not JSON",
    "SOAR did not answer within 5s",
])
def test_a_refused_read_is_said_once_and_the_call_goes_on(refusal, caplog):
    clock, said = FakeClock(), []
    soar = Soar(then=StatusUnreadable(refusal))
    check = check_for(soar, clock, said)
    caplog.set_level(logging.DEBUG, logger="fn_twilio.lib.termination")
    answers = []
    for _ in range(4):
        answers.append(check())
        clock.advance(INTERVAL)
    assert answers == [None] * 4 and soar.reads == 4 and check.failures == 4
    expected = (f"Cannot tell whether the workflow was terminated: {refusal}; the call goes on until it "
                "ends on its own")
    assert said == [expected]
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert [r.getMessage() for r in warnings] == [f"fn_twilio: {expected} (workflow instance 1001)"]
    assert len([r for r in caplog.records if r.levelno == logging.DEBUG]) == 3
    assert check.ended is None


def test_a_read_that_works_again_still_ends_the_call_on_a_termination():
    clock, said = FakeClock(), []
    check = check_for(Soar(StatusUnreadable("500 Server Error"), StatusUnreadable("403 Forbidden"),
                           None, "playbook canceled: closed"), clock, said, kind="playbook")
    answers = []
    for _ in range(4):
        answers.append(check())
        clock.advance(INTERVAL)
    assert answers == [None, None, None, "playbook canceled: closed"]
    assert said == ["Cannot tell whether the playbook was terminated: 500 Server Error; the call goes on "
                    "until it ends on its own"]


def test_a_401_ends_the_call_with_a_reason_that_says_so_and_reads_no_more(caplog):
    clock, said = FakeClock(), []
    soar = Soar(CredentialsRefused("401 Unauthorized: the API key was blocked"), then=None)
    check = check_for(soar, clock, said)
    ended = check()
    expected = ("SOAR refused the app's credentials (401) while checking whether the workflow was "
                "terminated: 401 Unauthorized: the API key was blocked")
    assert ended == expected == check.ended
    clock.advance(10 * INTERVAL)
    assert check() == expected and soar.reads == 1
    assert check.reason(ended) == expected            # not "Workflow was terminated: ..."
    assert said == []                                  # the call's end says it, not a status message
    assert [r.levelno for r in caplog.records] == [logging.ERROR]


def test_an_unforeseen_failure_of_a_read_counts_as_unread():
    clock, said = FakeClock(), []
    check = check_for(Soar(then=KeyError("status")), clock, said)
    assert check() is None
    assert said == ["Cannot tell whether the workflow was terminated: the read failed (KeyError); the call "
                    "goes on until it ends on its own"]


def test_a_say_that_fails_does_not_end_the_wait():
    def broken(text):
        raise RuntimeError("queue gone")

    check = TerminationCheck(Soar(then=StatusUnreadable("500")), interval=INTERVAL, say=broken,
                             clock=FakeClock())
    assert check() is None


def test_nothing_to_check_reads_nothing():
    check = TerminationCheck(None, interval=INTERVAL, clock=FakeClock())
    assert [check() for _ in range(3)] == [None, None, None] and check.reads == 0


# -- inside the wait loops -----------------------------------------------------------------------
def drive(clock, thread, step):
    while thread.is_alive():
        clock.advance(step)
        thread.join(0.005)


def test_collect_with_refused_reads_waits_to_its_deadline_reading_once_per_interval():
    twilio, clock, said = FakeTwilio(), FakeClock(), []
    soar = Soar(then=StatusUnreadable("500 Server Error"))
    check = check_for(soar, clock, said)
    result = {}
    thread = threading.Thread(target=lambda: result.setdefault("outcome", collect(
        settings(), [ALICE], None, clock.now() + 20, is_terminated=check, clock=clock,
        client_factory=twilio.client)))
    thread.start()
    drive(clock, thread, 0.5)
    assert result["outcome"].ending == Ending.TIMED_OUT
    assert 1 <= soar.reads <= 20 / INTERVAL and len(said) == 1


def test_collect_ends_on_a_401_with_the_checks_reason():
    twilio, clock = FakeTwilio(), FakeClock()
    check = check_for(Soar(None, CredentialsRefused("401 Unauthorized")), clock)
    result = {}
    thread = threading.Thread(target=lambda: result.setdefault("outcome", collect(
        settings(), [ALICE], None, clock.now() + 600, is_terminated=check, clock=clock,
        client_factory=twilio.client)))
    thread.start()
    drive(clock, thread, 0.5)
    outcome = result["outcome"]
    assert outcome.ending == Ending.TERMINATED
    assert check.reason(outcome.terminated) == (
        "SOAR refused the app's credentials (401) while checking whether the workflow was terminated: "
        "401 Unauthorized")
    assert clock.now() < 1000 + 600 / 2, "ended at the 401, long before the deadline"


def test_a_page_whose_reads_are_refused_escalates_on_time_and_ends_on_its_own():
    twilio, clock, said, statuses = FakeTwilio(), FakeClock(), [], []
    soar = Soar(StatusUnreadable("500 Server Error"), StatusUnreadable("403 Forbidden"),
                then=StatusUnreadable("404 Not Found"))
    check = check_for(soar, clock, said)
    created = []
    start = clock.now()

    def client(_settings=None):
        fake = twilio.client()

        def create(**params):
            created.append((clock.now() - start, params["to"]))
            return twilio.create(**params)

        fake.messages.create = create
        return fake

    page = Page(settings(), parse_tiers(f"{ALICE}; {BOB}"), "Hi" + ack_request("2095"), "2095",
                escalate_after=30, max_wait=3600, is_terminated=check, progress=statuses.append,
                clock=clock, client_factory=client)
    result = {}
    thread = threading.Thread(target=lambda: result.setdefault("outcome", page.run()))
    thread.start()
    drive(clock, thread, 0.5)
    outcome = result["outcome"]
    assert [n for _, n in created] == [ALICE, BOB]
    assert 30 <= created[1][0] <= 30 + INTERVAL, "tier 2 paged when tier 1's window ended"
    assert outcome.reason == "Nobody acknowledged: paged 2 people in 2 tiers"
    assert len(said) == 1 and said[0].startswith("Cannot tell whether the workflow was terminated: 500")
    assert soar.reads <= (clock.now() - start) / INTERVAL + 1
