"""Pages through the storm limit (contract §15) with a FakeClock and a fake Twilio whose outbound log
holds what the app sends: a tier's text held for a digest, the page reading replies meanwhile, the tier's
window starting when the digest is sent, codes per incident in a digest (``ACK 2104``, ``ACK ALL``, a bare
``ack``), a page ended or closed while its text is held, and a redelivered page whose first run's text
went out in a digest; milliseconds each."""
from __future__ import annotations

import threading
import time
from datetime import timedelta
from typing import Any

import pytest

from fn_twilio.lib.clock import FakeClock
from fn_twilio.lib.delivery import DeliveryTracker
from fn_twilio.lib.intents import ack_request
from fn_twilio.lib.paging import CANCELLED, HELD_AT_END, Event, Page, parse_tiers
from fn_twilio.lib.polling import active_pollers
from fn_twilio.lib.reconcile import Delivery
from fn_twilio.lib.storm import (HELD_CANCELLED, DigestLine, Limiter, build_digests, digest_lines,
                                 requested_codes)
from tests.lib.fakes import SENDER, FakeTwilio, message, settings

ALICE, BOB, CAROL = "+353861234567", "+353869876543", "+14155552345"
LIMIT, WINDOW = 2, 10.0      # at most 2 texts per person in any 10 s
STEP = 0.25


def body_of(code: str) -> str:
    return f"Incident {code} needs you." + ack_request(code)


def line_of(code: str) -> DigestLine:
    return DigestLine(f"Phishing wave {code}", code, True, "High")


class StormPages:
    """Pages run in threads against one fake Twilio account and one process's limiter; the fake time
    moves in quarter-second steps. Every create adds an outbound text to the log, dated by the clock in
    whole seconds as Twilio dates them."""

    def __init__(self) -> None:
        self.clock = FakeClock()
        self.twilio = FakeTwilio()
        self.twilio.create = self._create
        self.settings = settings(max_texts_per_person=str(LIMIT), person_window=f"{int(WINDOW)}s",
                                 poll_interval="1s")
        self.limiter = Limiter(self.settings, clock=self.clock, client_factory=self.client)
        self.start = self.clock.now()
        self.sent: list[tuple[float, str, str, str]] = []     # (seconds since the start, to, body, sid)
        self.pages: dict[str, Page] = {}
        self.statuses: dict[str, list[str]] = {}
        self.results: dict[str, Any] = {}
        self.threads: list[threading.Thread] = []
        self.fail_creates: dict[str, BaseException] = {}   # to -> what the next create to it raises

    def client(self, _settings: Any = None) -> Any:
        return self.twilio.client()

    def _create(self, **params: Any) -> Any:
        failure = self.fail_creates.pop(params["to"], None)
        if failure is not None:
            with self.twilio.lock:
                self.twilio.requests.append({"kind": "create", **params})
            raise failure
        at = self.clock.wall().replace(microsecond=0)
        text = self.outbound(params["to"], params["body"], at)
        with self.twilio.lock:
            self.twilio.requests.append({"kind": "create", **params})
            self.sent.append((self.clock.now() - self.start, params["to"], params["body"], text.sid))
        return text

    def outbound(self, to: str, body: str, at: Any) -> Any:
        text = message(SENDER, body, sent=at, to=to, direction="outbound-api")
        text.status = "queued"
        self.twilio.add(text)
        return text

    def earlier(self, to: str, count: int, ago: float = 1.0) -> None:
        """``count`` texts the sender sent ``to`` ``ago`` seconds before the start (other calls)."""
        at = self.clock.wall().replace(microsecond=0) - timedelta(seconds=ago)
        for n in range(count):
            self.outbound(to, f"Incident {3000 + n} needs you." + ack_request(str(3000 + n)), at)

    def page(self, code: str, tiers: str, *, escalate_after: float = 30.0, max_wait: float = 600.0,
             resume: Delivery | None = None) -> Page:
        page = Page(self.settings, parse_tiers(tiers), body_of(code), code, escalate_after=escalate_after,
                    max_wait=max_wait, progress=self.statuses.setdefault(code, []).append, resume=resume,
                    clock=self.clock, client_factory=self.client, limiter=self.limiter, line=line_of(code))
        self.pages[code] = page
        thread = threading.Thread(target=lambda: self.results.__setitem__(code, page.run()), daemon=True)
        self.threads.append(thread)
        thread.start()
        return page

    def reply(self, number: str, body: str) -> None:
        self.twilio.add(message(number, body, sent=self.clock.wall()))

    def elapsed(self) -> float:
        return self.clock.now() - self.start

    def run_until(self, done: Any, limit: float = 300.0) -> None:
        """Move the time on until ``done()`` holds (or ``limit`` fake seconds have passed: a failure)."""
        while not done():
            assert self.elapsed() < limit, f"not done after {limit} fake seconds"
            time.sleep(0.003)
            if not done():
                self.clock.advance(STEP)

    def run_for(self, seconds: float) -> None:
        end = self.elapsed() + seconds
        self.run_until(lambda: self.elapsed() >= end)

    def finished(self, *codes: str) -> bool:
        return all(code in self.results for code in codes)

    def to(self, number: str) -> list[tuple[float, str, str, str]]:
        return [s for s in self.sent if s[1] == number]

    def finish(self) -> None:
        for page in self.pages.values():
            page.cancel()
        self.run_until(lambda: not any(t.is_alive() for t in self.threads), limit=self.elapsed() + 120)
        self.run_until(lambda: not active_pollers(), limit=self.elapsed() + 60)


@pytest.fixture
def storm():
    made: list[StormPages] = []

    def make() -> StormPages:
        made.append(StormPages())
        return made[-1]

    yield make
    for pages in made:
        pages.finish()
    assert active_pollers(DeliveryTracker.kind) == 0


def events(outcome: Any, number: str | None = None) -> list[tuple[str, int | None, str | None]]:
    return [(e.event, e.tier, e.phone_number) for e in outcome.timeline
            if number is None or e.phone_number in (number, None)]


def two_held_pages(storm) -> StormPages:
    """Alice already had the limit's texts a second ago; two incidents page her (tier 1) and Bob (tier
    2) at once: both texts to her are held."""
    run = storm()
    run.earlier(ALICE, LIMIT)
    run.page("2103", f"{ALICE}; {BOB}")
    run.page("2104", f"{ALICE}; {BOB}")
    run.run_until(lambda: run.to(ALICE))
    return run


def test_texts_held_for_one_person_go_in_one_digest_and_each_tier_window_starts_when_it_is_sent(storm):
    run = two_held_pages(storm)
    [(digest_at, _, digest, sid)] = run.to(ALICE)
    assert digest_at >= WINDOW - 1          # not before the earlier texts left the window
    assert sorted(digest_lines(digest)) == [line_of("2103").render(), line_of("2104").render()]
    assert digest.startswith("2 more incidents need you:\n")
    assert sorted(requested_codes(digest)) == ["2103", "2104"]
    run.run_until(lambda: run.finished("2103", "2104"))
    for code in ("2103", "2104"):
        outcome = run.results[code]
        alice = next(p for p in outcome.pages if p.phone_number == ALICE)
        assert alice.outcome.bundled and alice.outcome.sid == sid and alice.outcome.message_body == digest
        assert events(outcome, ALICE)[:2] == [("held", 1, ALICE), ("paged", 1, ALICE)]
        paged = next(e for e in outcome.timeline if e.event == Event.PAGED and e.phone_number == ALICE)
        assert paged.detail == f"{sid} (in a digest)" and paged.at == alice.paged_at
        assert run.statuses[code][0].startswith("Tier 1: 1 person held for a digest (limit 2 texts per 10s)")
        assert any(s.startswith("Tier 1: paged 1 person, waiting up to") for s in run.statuses[code])
        assert outcome.reason == "Nobody acknowledged: paged 2 people in 2 tiers"
    # the tier's window (30 s) counts from the digest, not from the page's start
    bob = [at for at, *_ in run.to(BOB)]
    assert len(bob) == 2 and all(digest_at + 30 - 1 <= at <= digest_at + 30 + 3 for at in bob)


def test_ack_with_a_code_to_a_digest_acknowledges_that_incident_only(storm):
    run = two_held_pages(storm)
    run.run_for(2)
    run.reply(ALICE, "ACK 2104")
    run.run_until(lambda: run.finished("2103", "2104"))
    acked, other = run.results["2104"], run.results["2103"]
    assert acked.success and acked.acknowledged_by == ALICE and acked.tier == 1
    assert [(r.reply_code, r.reply_codes) for r in acked.replies] == [("2104", ("2104",))]
    assert not other.success and other.replies == []          # another incident's code
    assert [e for e in events(other) if e[0] == "paged"] == [("paged", 1, ALICE), ("paged", 2, BOB)]
    assert len(run.to(BOB)) == 1                              # tier 2 of 2103 only


@pytest.mark.parametrize("answer", ["ACK ALL", "ack all, on it", "ack", "Ok, looking"])
def test_a_bare_ack_or_ack_all_to_a_digest_acknowledges_every_incident_it_asked_for(storm, answer):
    run = two_held_pages(storm)
    run.run_for(2)
    run.reply(ALICE, answer)
    run.run_until(lambda: run.finished("2103", "2104"))
    for code in ("2103", "2104"):
        outcome = run.results[code]
        assert outcome.success and outcome.acknowledged_by == ALICE, code
        [reply] = outcome.replies
        assert reply.intent == "acknowledge" and reply.reply_code == code      # the page's own code
        assert sorted(reply.reply_codes) == ["2103", "2104"]
        assert sorted(reply.as_result()["reply_codes"]) == ["2103", "2104"]
    assert run.to(BOB) == []


def test_a_decline_to_a_digest_takes_the_person_out_of_every_page_it_asked_for(storm):
    run = two_held_pages(storm)
    run.run_for(2)
    run.reply(ALICE, "no")
    run.run_until(lambda: len(run.to(BOB)) == 2)
    digest_at = run.to(ALICE)[0][0]
    assert all(at < digest_at + 10 for at, *_ in run.to(BOB))   # at once, not after the 30 s window


def test_the_page_reads_replies_while_a_text_is_held_and_an_acknowledgement_ends_it(storm):
    run = storm()
    run.earlier(ALICE, LIMIT)
    run.page("2103", f"{CAROL}, {ALICE}; {BOB}")
    run.run_until(lambda: run.to(CAROL))
    run.run_for(2)
    assert run.to(ALICE) == [] and run.pages["2103"]._texts          # still held
    run.reply(CAROL, "ack")
    run.run_until(lambda: run.finished("2103"))
    outcome = run.results["2103"]
    assert outcome.success and outcome.acknowledged_by == CAROL
    alice = next(p for p in outcome.pages if p.phone_number == ALICE)
    assert not alice.outcome.success and alice.outcome.error_message == HELD_AT_END.message
    assert alice.as_result()["success"] is False and alice.as_result()["sid"] is None
    run.run_for(WINDOW + 5)                                          # room comes: nothing goes
    assert run.to(ALICE) == [] and run.to(BOB) == []
    assert run.limiter.held == 1 and run.limiter.digests == 0


def test_a_page_closed_while_its_text_is_held_reports_it_not_sent_and_pages_no_further_tier(storm):
    run = storm()
    run.earlier(ALICE, LIMIT)
    page = run.page("2103", f"{ALICE}; {BOB}", escalate_after=1)
    run.run_for(3)
    page.cancel()
    run.run_until(lambda: run.finished("2103"))
    outcome = run.results["2103"]
    assert outcome.reason == CANCELLED and not outcome.success
    [alice] = outcome.pages
    assert alice.outcome.error_message == HELD_CANCELLED.message and not alice.outcome.success
    run.run_for(WINDOW + 5)
    assert run.sent == []


def test_a_text_the_limit_lets_through_pages_at_once_and_the_held_ones_follow(storm):
    run = storm()
    run.earlier(ALICE, LIMIT)
    run.page("2103", f"{BOB}, {ALICE}; {CAROL}", escalate_after=30)
    run.run_until(lambda: run.to(ALICE))
    bob_at, alice_at = run.to(BOB)[0][0], run.to(ALICE)[0][0]
    assert bob_at < 3 and alice_at >= WINDOW - 1
    run.run_until(lambda: run.finished("2103"))
    outcome = run.results["2103"]
    assert [(p.phone_number, p.tier) for p in outcome.pages] == [(BOB, 1), (ALICE, 1), (CAROL, 2)]
    alice = outcome.pages[1].outcome
    assert alice.success and not alice.bundled and alice.message_body == body_of("2103")   # alone: as it is
    # the tier's window started with Bob's text
    assert bob_at + 30 - 1 <= run.to(CAROL)[0][0] <= bob_at + 30 + 3


def test_a_redelivered_page_does_not_send_a_second_digest_for_what_its_first_run_sent(storm):
    run = storm()
    original = run.clock.wall() - timedelta(seconds=20)
    [digest] = build_digests([line_of("2103"), line_of("2104")])
    sent_at = run.clock.wall().replace(microsecond=0) - timedelta(seconds=5)
    first = run.outbound(ALICE, digest.body, sent_at)
    run.page("2103", f"{ALICE}; {BOB}", escalate_after=30, resume=Delivery(True, original))
    run.run_until(lambda: run.finished("2103"))
    outcome = run.results["2103"]
    alice = outcome.pages[0]
    assert alice.outcome.already_sent and alice.outcome.bundled and alice.outcome.sid == first.sid
    assert alice.paged_at == sent_at                       # the window kept from the digest
    assert run.to(ALICE) == []                              # nobody texted twice
    assert 25 - 1 <= run.to(BOB)[0][0] <= 25 + 3
    paged = next(e for e in outcome.timeline if e.phone_number == ALICE)
    assert paged.detail == f"{first.sid} (in a digest) (texted by the interrupted run)"


def test_a_page_that_reaches_max_wait_while_its_text_is_held_counts_that_person_and_sends_nothing(storm):
    run = storm()
    run.earlier(ALICE, LIMIT)
    run.page("2103", f"{ALICE}; {BOB}", max_wait=4)
    run.run_until(lambda: run.finished("2103"))
    outcome = run.results["2103"]
    assert outcome.reason == "Nobody acknowledged: paged 1 people in 1 tiers"
    [alice] = outcome.pages
    assert alice.tier == 1 and alice.outcome.error_message == HELD_AT_END.message
    assert events(outcome) == [("held", 1, ALICE), ("timeout", 1, None)]
    run.run_for(WINDOW + 5)
    assert run.sent == []


def test_a_digest_twilio_may_have_made_escalates_past_that_person_whose_ack_still_counts(storm):
    from twilio.base.exceptions import TwilioRestException

    run = storm()
    run.earlier(ALICE, LIMIT)
    run.fail_creates[ALICE] = TwilioRestException(500, "/Messages.json", "Internal Server Error")
    run.page("2103", f"{ALICE}; {BOB}", escalate_after=60)
    run.run_until(lambda: run.to(BOB))
    alice_tried = [r for r in run.twilio.requests if r["kind"] == "create" and r["to"] == ALICE]
    assert len(alice_tried) == 1                       # never sent again: it may have been made
    assert run.elapsed() < WINDOW + 10                 # Bob at once, not after the 60 s window
    run.reply(ALICE, "ACK 2103")
    run.run_until(lambda: run.finished("2103"))
    outcome = run.results["2103"]
    assert outcome.success and outcome.acknowledged_by == ALICE and outcome.tier == 1
    alice = outcome.pages[0].outcome
    assert not alice.success and alice.may_have_sent
    assert "may or may not have been sent" in alice.error_message
    assert [e for e in events(outcome) if e[0] in ("held", "send_failed", "escalated", "paged")] == [
        ("held", 1, ALICE), ("send_failed", 1, ALICE), ("escalated", 2, None), ("paged", 2, BOB)]
