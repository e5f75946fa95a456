"""The escalation engine (fn_twilio.lib.paging) with a FakeClock and a fake Twilio: tiers, declines,
unreachable people, acknowledgements from earlier tiers, timeout, termination, the max_wait cap and
the timeline, each in milliseconds."""
import threading

import pytest
from twilio.base.exceptions import TwilioRestException

from fn_twilio.lib.clock import FakeClock
from fn_twilio.lib.intents import ack_request
from fn_twilio.lib.paging import Event, Page, TierError, parse_tiers
from fn_twilio.lib.replies import active_pollers
from tests.lib.fakes import FakeTwilio, message, settings

ALICE, BOB, CAROL, DAN = "+353861234567", "+353869876543", "+14155552345", "+14155552346"
CODE = "2095"
BODY = "Incident 2095 needs you." + ack_request(CODE)


class Run:
    """One page in a thread, the fake time moved in half-second steps; ``script`` maps a moment (s
    after the start) to an action on the fake Twilio."""

    def __init__(self, tiers, *, escalate_after=60.0, max_wait=3600.0, script=None, terminated_at=None,
                 delivery=None, create_answers=()):
        self.twilio, self.clock = FakeTwilio(), FakeClock(wall_start=None)
        self.twilio.create_answers.extend(create_answers)
        self.created_at = []   # (fake seconds since the start, number)
        self.statuses = []
        create = self.twilio.create

        def timed_create(**params):
            self.created_at.append((self.clock.now() - self.start, params["to"]))
            return create(**params)

        self.twilio.create = timed_create
        self.start = self.clock.now()
        def terminated():
            late = terminated_at is not None and self.clock.now() - self.start >= terminated_at
            return "closed by analyst" if late else None

        self.page = Page(settings(), parse_tiers(tiers), BODY, CODE, escalate_after=escalate_after,
                         max_wait=max_wait, is_terminated=terminated, progress=self.statuses.append,
                         delivery=delivery, clock=self.clock, client_factory=self.client)
        self.script = sorted((script or {}).items())

    def client(self, _settings=None):
        client = self.twilio.client()
        client.messages.create = self.twilio.create
        return client

    def reply(self, number, body):
        return lambda: self.twilio.add(message(number, body, sent=self.clock.wall()))

    def __call__(self):
        result = {}
        thread = threading.Thread(target=lambda: result.setdefault("outcome", self.page.run()))
        thread.start()
        while thread.is_alive():
            elapsed = self.clock.now() - self.start
            while self.script and self.script[0][0] <= elapsed:
                self.script.pop(0)[1]()
            thread.join(0.003)
            if thread.is_alive():
                self.clock.advance(0.5)
        self.elapsed = self.clock.now() - self.start
        return result["outcome"]


def events(outcome):
    return [(e.event, e.tier, e.phone_number) for e in outcome.timeline]


@pytest.fixture(autouse=True)
def no_poller_left():
    yield
    for _ in range(200):
        if not active_pollers():
            break
        threading.Event().wait(0.01)


def test_nobody_acknowledges_every_tier_is_paged_at_its_due_time():
    run = Run(f"{ALICE}, {BOB}; {CAROL}", escalate_after=60)
    outcome = run()
    assert outcome.success is False
    assert outcome.reason == "Nobody acknowledged: paged 3 people in 2 tiers"
    assert [n for _, n in run.created_at] == [ALICE, BOB, CAROL]
    carol_at = run.created_at[2][0]
    assert 60 <= carol_at <= 60 + 2.0 + 0.5   # within one poll interval of its due time
    assert 120 <= run.elapsed <= 123
    assert events(outcome) == [("paged", 1, ALICE), ("paged", 1, BOB), ("escalated", 2, None),
                               ("paged", 2, CAROL), ("timeout", 2, None)]
    assert [p.tier for p in outcome.pages] == [1, 1, 2]
    assert run.statuses[0] == "Tier 1: paged 2 people, waiting up to 1m for an acknowledgement"
    assert outcome.as_result()["acknowledged"] is False and outcome.as_result()["tier"] is None


def test_an_acknowledgement_ends_the_page():
    run = Run(f"{ALICE}; {BOB}")
    run.script = [(5, run.reply(ALICE, "ack"))]
    outcome = run()
    assert outcome.success and outcome.acknowledged_by == ALICE and outcome.tier == 1
    assert [n for _, n in run.created_at] == [ALICE]   # tier 2 never paged
    assert run.elapsed < 10
    assert [r.intent for r in outcome.replies] == ["acknowledge"]
    assert outcome.replies[0].reply_code == CODE     # a bare ack answers the latest page
    assert run.statuses[-1].startswith("Acknowledged by +35386*****67 after ")
    result = outcome.as_result()
    assert result["acknowledged_by"] == ALICE and result["acknowledged_at_ts"]
    assert result["reply_code"] == CODE


def test_a_reply_already_there_when_the_page_starts_does_not_acknowledge_it():
    run = Run(f"{ALICE}; {BOB}", escalate_after=30)
    run.reply(ALICE, "ACK, on it")()          # same second as the page: Twilio's dates have whole seconds
    run.script = [(40, run.reply(BOB, "ack"))]
    outcome = run()
    assert outcome.acknowledged_by == BOB and outcome.tier == 2
    assert [n for _, n in run.created_at] == [ALICE, BOB]
    assert [r.from_ for r in outcome.replies] == [BOB]


def test_a_decline_pages_the_next_tier_at_once():
    run = Run(f"{ALICE}; {BOB}, {CAROL}; {DAN}", escalate_after=60)
    run.script = [(65, run.reply(BOB, "no")), (70, run.reply(CAROL, "DECLINE")),
                  (75, run.reply(ALICE, "ACK 2095"))]
    outcome = run()
    paged = dict((n, t) for t, n in run.created_at)
    assert 60 <= paged[BOB] <= 62.5
    assert 70 <= paged[DAN] <= 72.5            # tier 2 all declined: tier 3 at once, not at 120
    assert outcome.success and outcome.acknowledged_by == ALICE and outcome.tier == 1   # earlier tier
    assert ("declined", 2, BOB) in events(outcome) and ("declined", 2, CAROL) in events(outcome)
    assert events(outcome)[-1] == ("acknowledged", 1, ALICE)   # the tier she was paged in


def test_a_person_who_cannot_be_sent_to_is_unreachable():
    opted_out = TwilioRestException(400, "uri", "Attempt to send to unsubscribed recipient", code=21610)
    run = Run(f"{ALICE}; {BOB}", escalate_after=60, create_answers=[opted_out])
    run.script = [(5, run.reply(BOB, "ok"))]
    outcome = run()
    assert run.created_at[1][0] < 2.5          # Alice opted out: Bob paged at once
    assert outcome.pages[0].outcome.status == "opted_out"
    assert events(outcome)[:2] == [("send_failed", 1, ALICE), ("escalated", 2, None)]
    assert outcome.success and outcome.acknowledged_by == BOB and outcome.tier == 2


def test_an_opt_out_reply_is_a_decline():
    run = Run(f"{ALICE}; {BOB}", escalate_after=60)
    run.script = [(3, run.reply(ALICE, "STOP"))]
    outcome = run()
    assert run.created_at[1][0] < 6
    assert ("declined", 1, ALICE) in events(outcome)
    assert outcome.reason == "Nobody acknowledged: paged 2 people in 2 tiers"


def test_a_reply_naming_another_code_is_left_out():
    run = Run(ALICE, escalate_after=20)
    run.script = [(3, run.reply(ALICE, "ACK 7777")), (4, run.reply(ALICE, "on my way"))]
    outcome = run()
    assert outcome.success is False
    assert [r.body for r in outcome.replies] == ["on my way"]
    assert outcome.replies[0].intent == "other"


def test_termination_stops_the_page_within_an_interval_and_pages_no_further_tier():
    run = Run(f"{ALICE}; {BOB}", escalate_after=60, terminated_at=30)
    outcome = run()
    assert outcome.reason == "Workflow was terminated: closed by analyst"
    assert [n for _, n in run.created_at] == [ALICE]
    assert 30 <= run.elapsed <= 32.5
    assert events(outcome)[-1] == ("terminated", 1, None)


def test_the_whole_page_lasts_at_most_max_wait():
    run = Run(f"{ALICE}; {BOB}; {CAROL}", escalate_after=60, max_wait=90)
    outcome = run()
    assert [n for _, n in run.created_at] == [ALICE, BOB]
    assert 90 <= run.elapsed <= 92.5
    assert outcome.reason == "Nobody acknowledged: paged 2 people in 2 tiers"


def test_the_delivery_seam_takes_out_undelivered_people():
    def undelivered(entries):
        return [(e.outcome.phone_number, "the text was not delivered: undelivered (30003: unreachable)")
                for e in entries if e.outcome.phone_number == ALICE]

    run = Run(f"{ALICE}; {BOB}", escalate_after=60, delivery=undelivered)
    outcome = run()
    assert run.created_at[1][0] < 5
    assert ("send_failed", 1, ALICE) in events(outcome)
    failed = [e for e in outcome.timeline if e.event == "send_failed"]
    assert [e.detail for e in failed] == ["the text was not delivered: undelivered (30003: unreachable)"]


def test_timeline_entries_have_the_contract_keys():
    run = Run(ALICE, escalate_after=5)
    result = run().timeline[0].as_result()
    assert set(result) == {"at", "at_ts", "event", "tier", "phone_number", "detail"}
    assert result["event"] == Event.PAGED and result["at"].endswith("+00:00")


@pytest.mark.parametrize("text, expected", [
    (f"{ALICE}", [[ALICE]]),
    (f"{ALICE}, {BOB}; {CAROL}", [[ALICE, BOB], [CAROL]]),
    (f"{ALICE}\n{BOB}\n\n", [[ALICE], [BOB]]),
    (f"{ALICE}; {ALICE}, {BOB}", [[ALICE], [BOB]]),          # paged once, in the first tier
    (f" ; {ALICE} ;", [[ALICE]]),
])
def test_parse_tiers(text, expected):
    assert [[r.e164 for r in tier] for tier in parse_tiers(text)] == expected


@pytest.mark.parametrize("text, words", [
    ("", "twilio_page_tiers is empty"),
    (" ; \n ,", "twilio_page_tiers is empty"),
    (f"{ALICE}; 12345", "tier 2 has no valid phone number"),
])
def test_bad_tiers_name_the_input(text, words):
    with pytest.raises(TierError, match=words):
        parse_tiers(text)


def test_module_is_plain_python():
    import re

    import fn_twilio.lib.paging as paging
    source = open(paging.__file__, encoding="utf-8").read()
    assert not re.search(r"^\s*(import|from)\s+resilient", source, re.MULTILINE)


def test_a_cancelled_page_pages_no_further_tier():
    run = Run(f"{ALICE}; {BOB}", escalate_after=60)
    run.script = [(10, run.page.cancel)]
    outcome = run()
    assert [n for _, n in run.created_at] == [ALICE]
    assert outcome.reason.startswith("Page stopped: the call was closed")
    assert 10 <= run.elapsed <= 12.5


def test_replies_that_cannot_be_read_end_the_page_with_the_reason():
    run = Run(f"{ALICE}; {BOB}", escalate_after=60)
    wrong_credentials = TwilioRestException(401, "uri", "Authenticate", code=20003)
    run.twilio.fail_next_pages.extend([wrong_credentials] * 3)
    outcome = run()
    assert outcome.reason.startswith("Could not read replies from Twilio: Twilio error 20003")
    assert [n for _, n in run.created_at] == [ALICE]
    assert events(outcome)[-1][0] == "terminated"
