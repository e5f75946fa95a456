"""The escalation engine (fn_twilio.lib.paging) with a FakeClock and a fake Twilio: tiers, declines,
unreachable people, acknowledgements from earlier tiers, timeout, termination, the max_wait cap and
the timeline, each in milliseconds."""
import threading
from datetime import timedelta

import pytest
from twilio.base.exceptions import TwilioRestException

from fn_twilio.lib.clock import FakeClock
from fn_twilio.lib.intents import ack_request
from fn_twilio.lib.paging import Event, Page, TierError, parse_tiers
from fn_twilio.lib.reconcile import Delivery
from tests.lib.fakes import SENDER, T0, FakeTwilio, message, settings

pytestmark = pytest.mark.usefixtures("no_poller_left")   # tests/conftest.py

ALICE, BOB, CAROL, DAN = "+353861234567", "+353869876543", "+14155552345", "+14155552346"
CODE = "2095"
BODY = "Incident 2095 needs you." + ack_request(CODE)


class Run:
    """One page in a thread, the fake time moved in half-second steps; ``script`` maps a moment (s
    after the start) to an action on the fake Twilio."""

    def __init__(self, tiers, *, escalate_after=60.0, max_wait=3600.0, script=None, terminated_at=None,
                 delivery=None, create_answers=(), resume=None, log=()):
        self.twilio, self.clock = FakeTwilio(), FakeClock(wall_start=None)
        self.twilio.create_answers.extend(create_answers)
        self.twilio.add(*log)
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
                         delivery=delivery, resume=resume, clock=self.clock, client_factory=self.client)
        self.script = sorted((script or {}).items())

    def client(self, _settings=None):
        client = self.twilio.client()
        client.messages.create = self.twilio.create
        return client

    def reply(self, number, body):
        return lambda: self.twilio.add(message(number, body, sent=self.clock.wall()))

    def text(self, number, body):
        """Another call's text from the same sender to ``number``, now."""
        return lambda: self.twilio.add(outbound(number, body, self.clock.wall()))

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


def outbound(to, body, at):
    return message(SENDER, body, sent=at, to=to, direction="outbound-api")


def events(outcome):
    return [(e.event, e.tier, e.phone_number) for e in outcome.timeline]


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


# -- contract §13: which page a reply answers, people who may have been sent, resuming, closing ---------
OTHER_PAGE = "Incident 2096 needs you." + ack_request("2096")


def test_a_bare_ack_after_another_incidents_page_is_not_this_pages():
    """Two incidents page Alice: her bare "ack" answers the latest text she got (2096's), not this page."""
    run = Run(f"{ALICE}; {BOB}", escalate_after=30)
    run.script = [(5, run.text(ALICE, OTHER_PAGE)), (10, run.reply(ALICE, "ack")),
                  (40, run.reply(BOB, "ack"))]
    outcome = run()
    assert outcome.acknowledged_by == BOB and outcome.tier == 2
    assert [n for _, n in run.created_at] == [ALICE, BOB]
    assert [r.from_ for r in outcome.replies] == [BOB]


def test_an_ok_to_a_plain_text_in_between_acknowledges_nothing():
    run = Run(ALICE, escalate_after=60)
    run.script = [(5, run.text(ALICE, "FYI: the bridge moved to room 2")), (10, run.reply(ALICE, "ok")),
                  (20, run.reply(ALICE, "ACK 2095"))]
    outcome = run()
    assert outcome.success and 20 <= (outcome.acknowledged_at - T0).total_seconds() < 21
    assert [r.body for r in outcome.replies] == ["ACK 2095"]


def test_a_bare_ack_whose_code_cannot_be_read_acknowledges_nothing_until_it_can():
    run = Run(f"{ALICE}; {BOB}", escalate_after=60)
    failing = [TwilioRestException(500, "uri", "boom")] * 3
    run.script = [(5, lambda: run.twilio.fail_pages_to.setdefault(ALICE, []).extend(failing)),
                  (5, run.reply(ALICE, "ack"))]
    outcome = run()
    assert outcome.success and outcome.acknowledged_by == ALICE
    assert 6 <= run.elapsed <= 5 + 4 * 2.0 + 1   # read again each interval until the log answers
    alice_lists = [r for r in run.twilio.lists if r.get("to") == ALICE]
    assert len(alice_lists) == 4


def test_a_reply_whose_code_is_never_known_is_returned_unmatched_and_said():
    run = Run(ALICE, escalate_after=20)
    never = [TwilioRestException(503, "uri", "down")] * 100
    run.script = [(5, lambda: run.twilio.fail_pages_to.setdefault(ALICE, []).extend(never)),
                  (5, run.reply(ALICE, "ack"))]
    outcome = run()
    assert outcome.success is False
    assert outcome.reason == ("Nobody acknowledged: paged 1 people in 1 tiers; 1 reply could not be matched "
                              "with a page (Twilio's outbound log could not be read), so reply_code is null "
                              "and they acknowledged nothing")
    (reply,) = outcome.replies
    assert (reply.body, reply.reply_code, reply.code_pending) == ("ack", None, True)


def test_someone_whose_text_may_have_been_sent_is_escalated_past_but_can_acknowledge():
    ambiguous = TwilioRestException(500, "uri", "Internal error", code=20500)
    run = Run(f"{ALICE}; {BOB}", escalate_after=60, create_answers=[ambiguous])
    run.text(ALICE, BODY)()                     # the 500 still made the message, as Twilio may
    run.script = [(8, run.reply(ALICE, "ack"))]
    outcome = run()
    assert run.created_at[1][0] < 2.5           # tier 2 at once: Alice may not have got it
    entry = outcome.pages[0].as_result()
    assert entry["may_have_sent"] is True and entry["success"] is False
    assert outcome.success and outcome.acknowledged_by == ALICE and outcome.tier == 1


def test_an_opt_out_takes_a_person_out_whichever_text_it_answers():
    run = Run(f"{ALICE}; {BOB}", escalate_after=60)
    run.script = [(2, run.text(ALICE, OTHER_PAGE)), (3, run.reply(ALICE, "STOP"))]
    outcome = run()
    assert run.created_at[1][0] < 6 and ("declined", 1, ALICE) in events(outcome)


def test_a_decline_naming_another_code_does_not_take_the_person_out():
    run = Run(f"{ALICE}; {BOB}", escalate_after=30)
    run.script = [(3, run.reply(ALICE, "NO 2096"))]
    outcome = run()
    assert 30 <= run.created_at[1][0] <= 32.5   # escalated on the window, not at once
    assert not [e for e in outcome.timeline if e.event == "declined"]


def test_a_page_closed_at_the_end_of_a_window_pages_no_further_tier():
    holder = {}

    def close_at_the_window(entries):
        if holder["run"].clock.now() - holder["run"].start >= 59.9:
            holder["run"].page.cancel()
        return []

    run = holder["run"] = Run(f"{ALICE}; {BOB}", escalate_after=60, delivery=close_at_the_window)
    outcome = run()
    assert [n for _, n in run.created_at] == [ALICE]
    assert outcome.reason.startswith("Page stopped: the call was closed")
    assert "escalated" not in [e.event for e in outcome.timeline]


def test_the_termination_check_is_asked_at_most_once_per_interval():
    asked = []
    run = Run(f"{ALICE}; {BOB}", escalate_after=20)
    run.page.is_terminated.check = lambda: asked.append(run.clock.now()) and None
    run.script = [(t, run.reply(ALICE, "what?")) for t in (1, 1.5, 2, 2.5, 3)]
    run()
    gaps = [b - a for a, b in zip(asked, asked[1:])]
    assert asked and min(gaps) >= 2.0          # poll_interval 2s, however many replies come


# resuming after a crash: the first run's texts and replies are in Twilio's log
def crashed(seconds_ago=30):
    return Delivery(redelivered=True, original=T0 - timedelta(seconds=seconds_ago))


def first_run_text(to, seconds_ago):
    return outbound(to, BODY, T0 - timedelta(seconds=seconds_ago))


def test_a_redelivered_page_resumes_texting_nobody_twice_and_keeps_the_windows():
    run = Run(f"{ALICE}; {BOB}", escalate_after=60, resume=crashed(30), log=[first_run_text(ALICE, 29)])
    run.script = [(40, run.reply(BOB, "ack"))]
    outcome = run()
    assert [n for _, n in run.created_at] == [BOB]           # Alice is not texted again
    assert 31 <= run.created_at[0][0] <= 33.5                # tier 2 due 60 s after Alice's first text
    assert outcome.pages[0].outcome.already_sent and outcome.pages[0].paged_at == T0 - timedelta(seconds=29)
    assert outcome.success and outcome.acknowledged_by == BOB
    assert run.statuses[0].startswith("Redelivered page: resuming; 1 person was already paged")


def test_an_ack_sent_while_no_instance_ran_ends_the_resumed_page_at_once():
    log = [first_run_text(ALICE, 300), message(ALICE, "ack", sent=T0 - timedelta(seconds=100))]
    run = Run(f"{ALICE}; {BOB}", escalate_after=60, resume=crashed(301), log=log)
    outcome = run()
    assert run.created_at == []                 # tier 2's window had passed, but the ack came first
    assert outcome.success and outcome.acknowledged_by == ALICE and outcome.tier == 1
    assert run.elapsed < 3


def test_a_page_redelivered_in_the_middle_of_a_tier_texts_the_rest_of_it():
    run = Run(f"{ALICE}, {BOB}; {CAROL}", escalate_after=60, resume=crashed(10),
              log=[first_run_text(ALICE, 9)])
    outcome = run()
    assert [n for _, n in run.created_at] == [BOB, CAROL]
    assert run.created_at[0][0] < 1 and 51 <= run.created_at[1][0] <= 53.5   # window from Alice's text
    assert [p.tier for p in outcome.pages] == [1, 1, 2]


def test_a_redelivered_page_whose_first_run_texted_nobody_starts_from_tier_one():
    run = Run(f"{ALICE}; {BOB}", escalate_after=60, resume=crashed(5))
    run.script = [(3, run.reply(ALICE, "ack"))]
    outcome = run()
    assert [n for _, n in run.created_at] == [ALICE] and outcome.acknowledged_by == ALICE


def test_a_redelivered_page_whose_log_cannot_be_read_texts_nobody_and_says_why():
    run = Run(f"{ALICE}; {BOB}", escalate_after=60, resume=crashed(30))
    run.twilio.fail_next_pages.extend([TwilioRestException(500, "uri", "boom")] * Page.RESUME_ATTEMPTS)
    outcome = run()
    assert run.created_at == [] and outcome.success is False
    assert outcome.reason.startswith("Could not resume the page after a redelivery, so nobody was texted "
                                     "again")
