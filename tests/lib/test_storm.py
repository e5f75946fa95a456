"""The storm limit and the digests (fn_twilio.lib.storm) on a fake clock and a fake Twilio log: the
real delivery tracker lists the log, the real SendJob sends through the limiter; milliseconds each.

The log answers ``messages.page`` as Twilio does (the sender's messages, newest first by date_sent,
else date_created) and ``messages.create`` by adding an outbound message dated by the fake clock.
"""
from __future__ import annotations

import itertools
import logging
import threading
import time
from datetime import timedelta
from types import SimpleNamespace
from typing import Any

import pytest
from twilio.base.exceptions import TwilioRestException

from fn_twilio.lib.clock import FakeClock
from fn_twilio.lib.delivery import DeliveryTracker
from fn_twilio.lib.intents import Keywords
from fn_twilio.lib.phone import Recipient
from fn_twilio.lib.polling import active_pollers
from fn_twilio.lib.reconcile import Delivery, settled_by_digest
from fn_twilio.lib.sender import SendJob
from fn_twilio.lib.storm import (DIGEST_LIMIT, DigestLine, Limiter, build_digests, describe_held,
                                 digest_lines, limiter_for, requested_codes)
from fn_twilio.lib.twilio_client import ThreadLocalClients
from tests.lib.fakes import SENDER, settings

ALICE, BOB, CAROL = "+353861234567", "+353861234568", "+353861234569"
OTHER_SENDER = "+15005550010"
_SIDS = itertools.count(1)


def storm_settings(limit: int = 3, window: str = "10s", **extra: str) -> Any:
    return settings(max_texts_per_person=str(limit), person_window=window, poll_interval="1s", **extra)


class FakeLog:
    """One Twilio account's messages: the sender's outbound log, listed and created as Twilio does."""

    def __init__(self, clock: FakeClock) -> None:
        self.clock = clock
        self.msgs: list[SimpleNamespace] = []
        self.requests: list[dict[str, Any]] = []
        self.fail_lists: list[BaseException] = []
        self.gate: threading.Event | None = None        # set: creates wait for it (a request in flight)
        self.answer: threading.Event | None = None      # set: creates are logged, then wait for it to answer
        self.lock = threading.Lock()

    def add(self, to: str, body: str = "sent by another instance", *, ago: float = 0.0,
            status: str = "queued", from_: str = SENDER) -> SimpleNamespace:
        at = (self.clock.wall() - timedelta(seconds=ago)).replace(microsecond=0)
        msg = SimpleNamespace(sid=f"SM{next(_SIDS):032x}", to=to, from_=from_, body=body, status=status,
                              direction="outbound-api", date_created=at, date_sent=None, date_updated=at,
                              num_segments="1", error_code=None, error_message=None, price=None,
                              price_unit="USD", messaging_service_sid=None)
        with self.lock:
            self.msgs.append(msg)
        return msg

    def to(self, number: str) -> list[SimpleNamespace]:
        with self.lock:
            return [m for m in self.msgs if m.to == number]

    @property
    def creates(self) -> list[dict[str, Any]]:
        return [r for r in self.requests if r["kind"] == "create"]

    @property
    def lists(self) -> list[dict[str, Any]]:
        return [r for r in self.requests if r["kind"] == "list"]

    # -- what a client calls ------------------------------------------------------------------------
    def client(self, _settings: Any = None) -> Any:
        messages = SimpleNamespace(page=lambda **p: self._page(p, 0), create=self._create)
        return SimpleNamespace(messages=messages,
                               http_client=SimpleNamespace(close=lambda: None, last_response=None))

    def _page(self, params: dict[str, Any], offset: int) -> Any:
        with self.lock:
            self.requests.append({"kind": "list", "offset": offset, **params})
            if self.fail_lists:
                raise self.fail_lists.pop(0)
            items = [m for m in self.msgs if params.get("from_") in (None, m.from_)]
        items.sort(key=lambda m: (m.date_sent or m.date_created, int(m.sid[2:], 16)), reverse=True)
        size = params["page_size"]
        chosen = [SimpleNamespace(**vars(m)) for m in items[offset:offset + size]]
        return _Page(chosen, offset + size < len(items), lambda: self._page(params, offset + size))

    def _create(self, **params: Any) -> Any:
        with self.lock:
            self.requests.append({"kind": "create", **params})
            gate = self.gate
        if gate is not None:
            gate.wait(10)
        msg = self.add(params["to"], params["body"], from_=params.get("from_", SENDER))
        if self.answer is not None:
            self.answer.wait(10)
        return msg


class _Page:
    def __init__(self, items: list[Any], more: bool, following: Any) -> None:
        self._items, self.next_page_url, self._following = items, "next" if more else None, following

    def __iter__(self):
        return iter(self._items)

    def next_page(self) -> Any:
        return self._following()


@pytest.fixture(autouse=True)
def no_tracker_left():
    assert active_pollers(DeliveryTracker.kind) == 0
    yield
    for _ in range(2000):
        if not active_pollers(DeliveryTracker.kind):
            break
        time.sleep(0.002)
    assert active_pollers(DeliveryTracker.kind) == 0


def eventually(predicate, what: str, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"never happened: {what}")
        time.sleep(0.002)


def still(predicate, what: str, wait: float = 0.15) -> None:
    """``predicate`` holds now and still after ``wait`` real seconds (threads had time to act)."""
    assert predicate(), what
    time.sleep(wait)
    assert predicate(), what


class Storm:
    """A process's limiter for one sender against a FakeLog, and send calls run in threads."""

    def __init__(self, limit: int = 3, window: str = "10s", clock: FakeClock | None = None,
                 log: FakeLog | None = None, **extra: str) -> None:
        self.clock = clock or FakeClock()
        self.log = log or FakeLog(self.clock)
        self.settings = storm_settings(limit, window, **extra)
        self.limiter = Limiter(self.settings, clock=self.clock, client_factory=self.log.client)
        self.jobs: list[SendJob] = []
        self.threads: list[threading.Thread] = []
        self.results: dict[int, Any] = {}

    def line(self, code: int, name: str = "Phishing wave", severity: str | None = "High") -> DigestLine:
        return DigestLine(name, str(code), True, severity)

    def call(self, numbers: list[str], code: int, *, body: str | None = None,
             line: DigestLine | None = None) -> int:
        """Start one send call (a SendJob through the limiter) in a thread; returns its index."""
        index = len(self.jobs)
        text = body or f"Incident {code} needs you. Reply ACK {code} to acknowledge."
        job = SendJob(self.settings, [Recipient(n, n, None) for n in numbers], text, clock=self.clock,
                      client_source=ThreadLocalClients(self.settings, factory=self.log.client),
                      limiter=self.limiter, line=line or self.line(code))
        self.jobs.append(job)

        def run() -> None:
            self.results[index] = job.run()

        thread = threading.Thread(target=run, daemon=True)
        self.threads.append(thread)
        thread.start()
        return index

    def in_turn(self, number: str, code: int) -> Any:
        """One call to ``number`` that goes out at once (the pace since the last has passed), its
        outcome; then the pace passes."""
        outcome = self.outcome(self.call([number], code))
        self.advance(self.limiter.pace)
        return outcome

    def done(self, index: int) -> bool:
        return index in self.results

    def outcome(self, index: int, number: int = 0) -> Any:
        eventually(lambda: self.done(index), f"call {index} ended")
        return self.results[index][number]

    def held(self) -> int:
        return sum(job.snapshot().held for job in self.jobs)

    def advance(self, seconds: float, step: float = 0.25) -> None:
        """Move the fake time on in steps, letting the threads act between them."""
        moved = 0.0
        while moved < seconds - 1e-9:
            delta = min(step, seconds - moved)
            self.clock.advance(delta)
            moved += delta
            time.sleep(0.003)

    def finish(self, timeout: float = 10.0) -> None:
        for job in self.jobs:
            job.cancel()
        for thread in self.threads:
            thread.join(timeout)
        self.advance(4 * self.limiter.interval)     # the lingering watch expires, the tracker stops


@pytest.fixture
def storm():
    made: list[Storm] = []

    def make(*args: Any, **kwargs: Any) -> Storm:
        made.append(Storm(*args, **kwargs))
        return made[-1]

    yield make
    for s in made:
        s.finish()


# -- the digest's text ------------------------------------------------------------------------------
@pytest.mark.parametrize("line, rendered", [
    (DigestLine("Phishing wave", "2101", True, "High"), "2101 Phishing wave (High)"),
    (DigestLine("Scanner on 10.0.0.5", "2102", True), "2102 Scanner on 10.0.0.5"),
    (DigestLine("Server restarted", "2104", False, "Low"), "- 2104 Server restarted (Low)"),
    (DigestLine("Bridge call now", None, False), "- Bridge call now"),
    (DigestLine("asks without a code", None, True), "- asks without a code"),
    (DigestLine("Two\nlines\tand   spaces", "7", True), "7 Two lines and spaces"),
    (DigestLine("x" * 100, "9", True), "9 " + "x" * 57 + "..."),
    (DigestLine("", "10", True), "10"),
])
def test_a_line_is_its_code_its_text_and_its_severity(line, rendered):
    assert line.render() == rendered


def test_a_line_for_a_text_is_the_incident_name_or_the_message_without_its_request():
    assert DigestLine.for_text("Bridge now. Reply ACK 2101 to acknowledge.", code="2101", asks=True) == \
        DigestLine("Bridge now.", "2101", True)
    assert DigestLine.for_text("An incident ...", code="2101", name="Phishing", severity="High").text == \
        "Phishing"


def test_a_digest_reads_like_the_contract_and_gives_back_every_code_it_asked_for():
    lines = [DigestLine("Phishing wave", "2101", True, "High"), DigestLine("Scanner", "2102", True, "Medium"),
             DigestLine("Malware", "2103", True), DigestLine("Restarted", "2104", False)]
    [digest] = build_digests(lines, Keywords(acknowledge=("OK", "ACK")))
    assert digest.body == ("4 more incidents need you:\n2101 Phishing wave (High)\n2102 Scanner (Medium)\n"
                           "2103 Malware\n- 2104 Restarted\n"
                           "Reply OK <id> to acknowledge one, OK ALL for all.")
    assert requested_codes(digest.body) == ["2101", "2102", "2103"]
    assert digest_lines(digest.body) == list(digest.lines)


@pytest.mark.parametrize("body, codes", [
    ("Incident 2095 needs you. Reply ACK 2095 to acknowledge.", ["2095"]),      # a page's text
    ("Bridge call now", []),
    ("", []),
    (None, []),
    ("1 more incident needs you:\n42 Phishing\nReply ACK <id> to acknowledge one, ACK ALL for all.", ["42"]),
    ("2 more messages for you:\n- 2101 Phishing\n- Restarted", []),               # nothing asked
    ("2 more incidents need you:\n2101 A\n2102 B", []),                            # no footer: no request
    ("1 more incident needs you:\n77\nReply ACK <id> to acknowledge one, ACK ALL for all.", ["77"]),
    ("2 more incidents need you:\n0042 A\n0042 B again\nReply ACK <id> to acknowledge one, ACK ALL for all.",
     ["42"]),
    ("2 more incidents need you:\r\n7 A\r\n- 8 B\r\nReply NO <id> to acknowledge one, NO ALL for all.",
     ["7"]),
    ("Note: 2 more incidents need you:\n2101 A\nReply ACK <id> to acknowledge one, ACK ALL for all.", []),
])
def test_requested_codes_reads_digests_and_pages(body, codes):
    assert requested_codes(body) == codes


def test_names_with_digits_and_separators_cannot_pass_for_codes():
    lines = [DigestLine("2102 copies of 2103", "2101", True), DigestLine("3 servers\n2104 down", None, False)]
    body = build_digests(lines)[0].body
    assert requested_codes(body) == ["2101"]


def test_the_same_line_twice_is_written_once():
    line = DigestLine("Phishing", "2101", True)
    [digest] = build_digests([line, line, DigestLine("Other", "2102", True)])
    assert digest.lines == ("2101 Phishing", "2102 Other") and digest.body.startswith("2 more incidents")


def test_lines_beyond_1600_characters_go_in_further_digests_each_complete():
    lines = [DigestLine(f"Phishing wave number {i} reported by the mail gateway", str(3000 + i), True, "High")
             for i in range(90)]
    digests = build_digests(lines)
    assert len(digests) >= 3
    assert all(len(d.body) <= DIGEST_LIMIT for d in digests)
    assert [c for d in digests for c in requested_codes(d.body)] == [str(3000 + i) for i in range(90)]
    for d in digests:
        assert d.body.startswith(f"{len(d.lines)} more incidents need you:\n")
        assert d.body.endswith("Reply ACK <id> to acknowledge one, ACK ALL for all.")


def test_describe_held_names_the_limit():
    limiter = Limiter(storm_settings(10, "60s"))
    assert describe_held(2, limiter) == "2 recipients held for a digest (limit 10 texts per 1m)"
    assert describe_held(1, limiter) == "1 recipient held for a digest (limit 10 texts per 1m)"


# -- the limit ----------------------------------------------------------------------------------------
def test_within_the_limit_each_text_goes_as_it_is_and_the_next_is_held(storm):
    s = storm(limit=3)
    outcomes = [s.in_turn(ALICE, 2100 + i) for i in range(3)]
    assert all(o.success and not o.bundled and o.message_body.startswith("Incident 21") for o in outcomes)
    held = s.call([ALICE], 2103)
    eventually(lambda: s.held() == 1, "the 4th text is held")
    still(lambda: len(s.log.to(ALICE)) == 3 and not s.done(held), "nothing more went to Alice")
    assert s.limiter.held == 1 and len(s.log.lists) >= 1



def test_a_job_is_settled_once_each_recipient_is_sent_or_held_and_tells_each_change(storm):
    """What a page reads while it goes on with replies: wait_settled() returns with texts held, whose
    outcomes come later (outcome_of), each change told to on_change."""
    s = storm(limit=1)
    assert s.outcome(s.call([ALICE], 1)).success
    told = []
    job = SendJob(s.settings, [Recipient(n, n, None) for n in (BOB, ALICE)], "Incident 2 needs you.",
                  clock=s.clock, client_source=ThreadLocalClients(s.settings, factory=s.log.client),
                  limiter=s.limiter, line=s.line(2), on_change=lambda: told.append(job.snapshot()))
    with job:
        assert job.wait_settled(5)
        assert job.outcome_of(0).success and job.outcome_of(1) is None and job.is_held(1)
        assert job.snapshot().held == 1 and len(told) == 2          # Bob sent, Alice held
        s.advance(11.5)
        eventually(lambda: job.outcome_of(1) is not None, "Alice's text went")
        assert job.outcome_of(1).success and not job.is_held(1) and len(told) == 3

def test_alone_a_process_sends_every_text_within_the_limit_at_once(storm):
    s = storm(limit=5)
    calls = [s.call([ALICE], i) for i in range(5)]
    assert all(s.outcome(c).success and not s.outcome(c).bundled for c in calls)
    assert len({m.body for m in s.log.to(ALICE)}) == 5


def test_when_another_instance_texts_the_number_one_text_per_pace(storm):
    s = storm(limit=5)
    assert s.limiter.pace == 2.0                              # two poll intervals
    s.log.add(ALICE, ago=5)                                   # another instance texted Alice
    assert s.outcome(s.call([ALICE], 1)).success
    second = s.call([ALICE], 2)
    others = [s.call([number], 3) for number in (BOB, CAROL)]
    assert all(s.outcome(c).success for c in others)          # other numbers: no wait
    eventually(lambda: s.held() == 1, "the second text to Alice waits for the pace")
    s.advance(1.75)
    still(lambda: not s.done(second), "not before the pace")
    s.advance(0.5)
    outcome = s.outcome(second)
    assert outcome.success and not outcome.bundled and outcome.message_body.startswith("Incident 2")


def test_texts_arriving_within_one_pace_go_together(storm):
    s = storm(limit=5)
    s.log.add(ALICE, ago=5)
    assert s.outcome(s.call([ALICE], 1)).success
    held = [s.call([ALICE], code) for code in (2, 3, 4)]
    eventually(lambda: s.held() == 3, "three wait for the pace")
    s.advance(2.25)
    digest = s.outcome(held[0])
    assert digest.bundled and digest.message_body.startswith("3 more incidents need you:")
    assert {s.outcome(c).sid for c in held} == {digest.sid} and len(s.log.to(ALICE)) == 3   # with the other's


def test_window_edges_the_slot_frees_one_window_and_a_second_after_the_first_text(storm):
    s = storm(limit=2, window="10s")
    assert s.in_turn(ALICE, 1).success and s.in_turn(ALICE, 2).success
    sent_at = s.log.to(ALICE)[0].date_created
    held = s.call([ALICE], 3)                 # 4 s after the first text
    eventually(lambda: s.held() == 1, "held")
    s.advance(6.75)          # 10.75 s after the first text (its Twilio date may be up to 1 s older)
    still(lambda: not s.done(held), "still held inside the window and its margin")
    s.advance(1.5)
    outcome = s.outcome(held)
    assert outcome.success and not outcome.bundled          # alone: its own text, not a digest
    last = s.log.to(ALICE)[-1]
    assert last.body.startswith("Incident 3") and last.date_created >= sent_at + timedelta(seconds=11)


def test_texts_in_twilios_log_count_even_when_another_instance_sent_them(storm):
    s = storm(limit=3)
    s.log.add(ALICE, ago=5)
    s.log.add(ALICE, ago=2)
    s.log.add(ALICE, ago=13.5)            # left the window (10 s, the 1 s margin, the 2 s grace)
    s.log.add(BOB, ago=1)
    first = s.call([ALICE], 1)
    assert s.outcome(first).success
    held = s.call([ALICE], 2)
    eventually(lambda: s.held() == 1, "the 3rd text in Alice's window is held")
    other = s.call([BOB], 3)
    assert s.outcome(other).success and not s.done(held)


def test_failed_and_canceled_texts_in_the_log_do_not_count(storm):
    s = storm(limit=2)
    for status in ("failed", "failed", "canceled", "failed"):
        s.log.add(ALICE, ago=1, status=status)
    assert all(s.in_turn(ALICE, i).success for i in range(2))


def test_a_text_in_flight_counts_before_twilio_answers(storm):
    s = storm(limit=1)
    s.log.gate = threading.Event()
    first = s.call([ALICE], 1)
    eventually(lambda: len(s.log.creates) == 1, "the first create is in flight")
    second = s.call([ALICE], 2)
    eventually(lambda: s.held() == 1, "the second waits while the first is in flight")
    s.log.gate.set()
    assert s.outcome(first).success
    still(lambda: not s.done(second) and len(s.log.creates) == 1, "no second text within the window")


def test_an_own_text_listed_before_twilios_answer_is_not_taken_for_another_instances(storm):
    s = storm(limit=5)
    s.log.answer = threading.Event()
    first = s.call([ALICE], 1)
    eventually(lambda: len(s.log.to(ALICE)) == 1, "Twilio logged the first text, its answer on its way")
    lists = len(s.log.lists)
    s.advance(1.0)
    eventually(lambda: len(s.log.lists) > lists, "a listing read the log with the first text in it")
    s.advance(0.25)        # the listing's view is the limiter's
    second = s.call([ALICE], 2)
    eventually(lambda: len(s.log.creates) == 2 or s.held() > 0, "the second text sent or held")
    assert s.held() == 0            # alone, within the limit: sent at once, not paced into a digest
    s.log.answer.set()
    assert all(s.outcome(c).success and not s.outcome(c).bundled for c in (first, second))
    assert len(s.log.to(ALICE)) == 2


def test_another_instances_text_with_the_same_words_still_counts(storm):
    s = storm(limit=2)
    s.log.add(ALICE, "Incident 1 needs you. Reply ACK 1 to acknowledge.", ago=3)   # before this call
    s.log.answer = threading.Event()
    first = s.call([ALICE], 1)
    eventually(lambda: len(s.log.to(ALICE)) == 2, "Twilio logged this process's text too")
    lists = len(s.log.lists)
    s.advance(1.0)
    eventually(lambda: len(s.log.lists) > lists, "a listing read both")
    s.advance(0.25)
    held = s.call([ALICE], 2)
    eventually(lambda: s.held() == 1, "two texts in the window: the limit of 2 is reached")
    s.log.answer.set()
    assert s.outcome(first).success and not s.done(held)


def test_a_text_twilio_refused_frees_its_slot_and_one_that_may_have_been_sent_keeps_it(storm):
    s = storm(limit=1)
    refused = TwilioRestException(400, "/Messages.json", "Attempt to send to unsubscribed recipient",
                                  code=21610, method="POST")
    create = s.log._create
    answers = [refused]

    def answer(**params: Any) -> Any:
        if answers:
            raise answers.pop(0)
        return create(**params)

    s.log.client = lambda _s=None: SimpleNamespace(
        messages=SimpleNamespace(page=lambda **p: s.log._page(p, 0), create=answer),
        http_client=SimpleNamespace(close=lambda: None, last_response=None))
    s.limiter.client_factory = s.log.client
    first = s.call([ALICE], 1)
    assert s.outcome(first).status == "opted_out"
    second = s.call([ALICE], 2)
    assert s.outcome(second).success                      # the refused text did not take the slot
    answers.append(TwilioRestException(500, "/Messages.json", "oops", method="POST"))
    third = s.call([BOB], 3)
    assert s.outcome(third).may_have_sent
    fourth = s.call([BOB], 4)
    eventually(lambda: s.held() == 1, "a text that may have been sent still counts")
    assert not s.done(fourth)


def test_different_senders_do_not_share_a_limit(storm):
    clock = FakeClock()
    log = FakeLog(clock)
    one = storm(limit=1, clock=clock, log=log)
    two = storm(limit=1, clock=clock, log=log, twilio_src_address=OTHER_SENDER)
    assert one.outcome(one.call([ALICE], 1)).success
    assert two.outcome(two.call([ALICE], 2)).success
    assert [m.from_ for m in log.to(ALICE)] == [SENDER, OTHER_SENDER]
    held = one.call([ALICE], 3)
    eventually(lambda: one.held() == 1, "the first sender's limit is reached")
    assert not one.done(held)


def test_limiter_for_gives_one_limiter_per_account_sender_and_limit():
    base = storm_settings(3, "10s")
    assert limiter_for(base) is limiter_for(storm_settings(3, "10s"))
    assert limiter_for(base) is not limiter_for(storm_settings(3, "10s", twilio_src_address=OTHER_SENDER))
    assert limiter_for(base) is not limiter_for(storm_settings(2, "10s"))
    assert limiter_for(base) is not limiter_for(storm_settings(3, "20s"))


def test_forget_limiters_stops_their_listings_and_starts_afresh():
    from fn_twilio.lib.storm import forget_limiters
    clock = FakeClock()
    log = FakeLog(clock)
    settings = storm_settings(3, "10s")
    first = limiter_for(settings, clock=clock, client_factory=log.client)
    first.open()
    eventually(lambda: active_pollers(DeliveryTracker.kind) == 1, "the limiter keeps the outbound log")
    assert forget_limiters() >= 1
    eventually(lambda: active_pollers(DeliveryTracker.kind) == 0, "its listing stopped at once")
    assert limiter_for(settings, clock=clock, client_factory=log.client) is not first
    forget_limiters()


def test_many_calls_at_once_the_limit_goes_then_one_digest(storm):
    s = storm(limit=5)
    calls = [s.call([ALICE], 100 + i) for i in range(20)]
    eventually(lambda: len(s.log.creates) == 5 and s.held() == 15, "5 sent, 15 held")
    still(lambda: len(s.log.creates) == 5, "nothing beyond the limit")
    s.advance(11.5)
    eventually(lambda: all(s.done(c) for c in calls), "every call ended")
    texts = s.log.to(ALICE)
    alone = {m.body.split()[1] for m in texts[:5]}             # "Incident <code> needs you..."
    assert len(texts) == 6 and texts[5].body.startswith("15 more incidents need you:")
    assert sorted(requested_codes(texts[5].body)) == sorted({str(100 + i) for i in range(20)} - alone)


def test_many_calls_at_once_while_another_instance_texts_take_one_text_and_one_digest(storm):
    s = storm(limit=5)
    s.log.add(ALICE, ago=9)
    calls = [s.call([ALICE], 100 + i) for i in range(20)]
    eventually(lambda: len(s.log.creates) == 1 and s.held() == 19, "one sent, 19 held")
    still(lambda: len(s.log.creates) == 1, "nothing more within the pace")
    s.advance(2.25)
    eventually(lambda: all(s.done(c) for c in calls), "every call ended")
    first, digest = s.log.to(ALICE)[1:]
    alone = first.body.split()[1]
    assert digest.body.startswith("19 more incidents need you:")
    assert sorted(requested_codes(digest.body)) == sorted({str(100 + i) for i in range(20)} - {alone})


def test_a_steady_storm_never_passes_the_limit_and_every_incident_reaches_the_person(storm):
    s = storm(limit=3, window="10s")
    calls = []
    for i in range(40):                        # a call every half second for 20 s
        calls.append(s.call([ALICE], 7000 + i))
        s.advance(0.5)
    s.advance(25.0)
    eventually(lambda: all(s.done(c) for c in calls), "every call ended")
    texts = s.log.to(ALICE)
    times = [m.date_created for m in texts]
    for at in times:
        inside = [t for t in times if at - timedelta(seconds=10) < t <= at]
        assert len(inside) <= 3, f"{len(inside)} texts within 10 s of {at}"
    reached = set()
    for m in texts:
        reached.update(requested_codes(m.body))
    assert reached == {str(7000 + i) for i in range(40)}
    assert all(s.outcome(c).success for c in calls) and len(texts) < 20


# -- digests --------------------------------------------------------------------------------------------
def test_held_texts_go_together_in_one_digest_and_each_call_reports_it(storm):
    s = storm(limit=1)
    assert s.outcome(s.call([ALICE], 2100)).success
    held = [s.call([ALICE], 2101 + i, line=s.line(2101 + i, f"Incident name {i}")) for i in range(3)]
    eventually(lambda: s.held() == 3, "three held")
    s.advance(11.5)
    outcomes = [s.outcome(c) for c in held]
    digest = s.log.to(ALICE)[-1]
    assert len(s.log.to(ALICE)) == 2
    assert digest.body == ("3 more incidents need you:\n2101 Incident name 0 (High)\n"
                           "2102 Incident name 1 (High)\n2103 Incident name 2 (High)\n"
                           "Reply ACK <id> to acknowledge one, ACK ALL for all.")
    for outcome in outcomes:
        assert outcome.success and outcome.bundled and outcome.sid == digest.sid
        assert outcome.phone_number == ALICE and outcome.message_body == digest.body
        assert outcome.date_created == digest.date_created and outcome.status == "queued"
    assert s.limiter.digests == 1 and s.held() == 0


def test_a_call_to_several_people_holds_only_those_over_the_limit(storm):
    s = storm(limit=1)
    assert s.outcome(s.call([ALICE], 1)).success
    both = s.call([ALICE, BOB], 2)
    eventually(lambda: s.held() == 1 and len(s.log.to(BOB)) == 1, "Bob sent, Alice held")
    assert not s.done(both)
    s.advance(11.5)
    alice, bob = s.outcome(both, 0), s.outcome(both, 1)
    assert bob.success and not bob.bundled and alice.success and not alice.bundled   # alone: as it is


def test_texts_beyond_1600_characters_take_several_digests_each_counted(storm):
    s = storm(limit=2)
    for i in range(2):
        assert s.in_turn(ALICE, i).success                    # texts at 0 s and 2 s
    long_name = "Credential phishing campaign against the finance team, wave"
    held = [s.call([ALICE], 5000 + i, line=s.line(5000 + i, f"{long_name} {i}")) for i in range(80)]
    eventually(lambda: s.held() == 80, "80 held")
    s.advance(10.5)                            # 14.5 s: the two slots freed at 11 s and 13 s
    eventually(lambda: len(s.log.to(ALICE)) == 4, "two digests in this window")
    still(lambda: len(s.log.to(ALICE)) == 4, "two slots: two digests in this window")
    first_two = s.log.to(ALICE)[2:]
    assert all(len(m.body) <= DIGEST_LIMIT for m in first_two)
    s.advance(11.5)
    eventually(lambda: all(s.done(c) for c in held), "the rest went in the next window")
    digests = s.log.to(ALICE)[2:]
    assert len(digests) in (3, 4) and all(len(m.body) <= DIGEST_LIMIT for m in digests)
    codes = [c for m in digests for c in requested_codes(m.body)]
    assert sorted(codes) == sorted(str(5000 + i) for i in range(80))
    assert {s.outcome(c).sid for c in held} == {m.sid for m in digests}
    assert all(s.outcome(c).bundled for c in held)


def test_a_held_text_of_a_closed_call_is_reported_not_sent_and_never_sent(storm):
    s = storm(limit=1)
    assert s.outcome(s.call([ALICE], 1)).success
    closing = s.call([ALICE], 2)
    staying = s.call([ALICE], 3)
    eventually(lambda: s.held() == 2, "two held")
    s.jobs[closing].close()                     # resilient-circuits shutting down this call
    outcome = s.outcome(closing)
    assert not outcome.success and outcome.status == "failed" and outcome.sid is None
    assert "held for a digest" in outcome.error_message and not outcome.may_have_sent
    s.advance(11.5)
    kept = s.outcome(staying)
    assert kept.success and kept.message_body.startswith("Incident 3")     # only the one still held
    assert not any("Incident 2 " in m.body for m in s.log.to(ALICE))


def test_a_slot_freed_by_another_instances_text_is_left_to_it_for_two_intervals(storm):
    s = storm(limit=1)
    s.log.add(ALICE, ago=0)                    # another instance's text, now
    held = s.call([ALICE], 1)
    eventually(lambda: s.held() == 1, "held")
    s.advance(11.5)                            # the other's text left the window: its slot for 2 s
    still(lambda: not s.done(held), "left to the other instance")
    s.advance(2.0)
    assert s.outcome(held).success


def test_a_slot_freed_by_this_processs_own_text_is_reused_at_once(storm):
    s = storm(limit=1)
    assert s.outcome(s.call([ALICE], 1)).success
    held = s.call([ALICE], 2)
    eventually(lambda: s.held() == 1, "held")
    s.advance(11.25)
    assert s.outcome(held).success


def test_a_held_text_goes_after_at_most_a_window_and_the_grace_even_without_room(storm, caplog):
    s = storm(limit=1)
    s.log.add(ALICE, ago=0)
    held = s.call([ALICE], 1, line=s.line(1, "first"))
    other = s.call([ALICE], 2, line=s.line(2, "second"))
    eventually(lambda: s.held() == 2, "held")
    with caplog.at_level(logging.WARNING, logger="fn_twilio.lib.storm"):
        for _ in range(8):                     # the other instance keeps the number at its limit
            s.advance(2.0)
            s.log.add(ALICE, ago=0)
        eventually(lambda: s.done(held), "sent at the deadline")
    assert s.outcome(held).bundled and s.outcome(other).sid == s.outcome(held).sid
    assert "rather than be lost" in caplog.text and ALICE not in caplog.text


def test_an_own_text_the_log_no_longer_lists_stops_counting(storm):
    s = storm(limit=1)
    assert s.outcome(s.call([ALICE], 1)).success
    with s.log.lock:
        s.log.msgs.clear()                     # deleted from the log (an emulator reset)
    s.advance(3.0)                             # later complete views do not list it
    assert s.outcome(s.call([ALICE], 2)).success


def test_many_sends_cost_one_listing_per_interval_not_a_request_per_send(storm):
    s = storm(limit=10)
    numbers = [f"+3538612{i:05d}" for i in range(40)]
    for second in range(4):                    # calls one after another, each done before the next
        for j, number in enumerate(numbers[10 * second:10 * second + 10]):
            s.outcome(s.call([number], 10 * second + j))
        s.advance(1.0)
    assert len(s.log.creates) == 40
    assert len(s.log.lists) <= 5, s.log.lists  # the first look, then one per interval


def test_when_the_log_cannot_be_read_sends_count_what_this_process_knows(storm, caplog):
    s = storm(limit=1)
    s.log.fail_lists = [TwilioRestException(500, "/Messages.json", "down", method="GET")] * 20
    with caplog.at_level(logging.WARNING, logger="fn_twilio.lib.storm"):
        first = s.call([ALICE], 1)
        eventually(lambda: bool(s.log.lists), "a look was tried")
        s.advance(7.0, step=0.5)               # the HTTP timeout (5 s) and an interval pass
        assert s.outcome(first).success
        second = s.call([ALICE], 2)             # blind now: no second wait for the log
        eventually(lambda: s.held() == 1, "its own text still counts")
    assert caplog.text.count("could not be read in time") == 1
    assert not s.done(second)


# -- after a crash -----------------------------------------------------------------------------------------
def redelivered(clock: FakeClock, ago: float = 30.0) -> Delivery:
    return Delivery(redelivered=True, original=clock.wall() - timedelta(seconds=ago))


def test_a_digest_the_interrupted_run_sent_settles_the_redelivered_call():
    clock = FakeClock()
    log = FakeLog(clock)
    s = storm_settings(1)
    line = DigestLine("Phishing wave", "2101", True, "High")
    body = build_digests([DigestLine("Other", "2100", True), line])[0].body
    sent = log.add(ALICE, body, ago=10)
    log.add(BOB, build_digests([DigestLine("Other", "2100", True)])[0].body, ago=10)
    log.add(CAROL, body, ago=10, status="failed")
    found = settled_by_digest(s, [ALICE, BOB, CAROL], line, redelivered(clock), client=log.client())
    assert set(found) == {ALICE}
    assert found[ALICE].already_sent and found[ALICE].bundled and found[ALICE].sid == sent.sid
    assert settled_by_digest(s, [ALICE], line, Delivery(), client=log.client()) == {}


def test_a_digest_older_than_the_first_delivery_does_not_count():
    clock = FakeClock()
    log = FakeLog(clock)
    line = DigestLine("Phishing wave", "2101", True)
    log.add(ALICE, build_digests([line])[0].body, ago=600)
    assert settled_by_digest(storm_settings(1), [ALICE], line, redelivered(clock), client=log.client()) == {}


def test_a_log_that_cannot_be_read_sends_no_second_digest():
    clock = FakeClock()
    log = FakeLog(clock)
    log.fail_lists = [TwilioRestException(503, "/Messages.json", "down", method="GET")]
    found = settled_by_digest(storm_settings(1), [ALICE], DigestLine("x", "1", True), redelivered(clock),
                              client=log.client())
    assert not found[ALICE].success and found[ALICE].may_have_sent
    assert "could not be read" in found[ALICE].error_message


def test_a_redelivered_send_does_not_send_a_second_digest_end_to_end(storm):
    s = storm(limit=1)
    assert s.outcome(s.call([ALICE], 1)).success
    held = [s.call([ALICE], code) for code in (2, 3)]
    eventually(lambda: s.held() == 2, "held")
    s.advance(11.5)
    assert all(s.outcome(c).bundled for c in held)
    creates = len(s.log.creates)
    again = settled_by_digest(s.settings, [ALICE], s.line(3), redelivered(s.clock), client=s.log.client())
    assert again[ALICE].already_sent and again[ALICE].sid == s.outcome(held[1]).sid
    job = SendJob(s.settings, [Recipient(ALICE, ALICE, None)], "Incident 3", clock=s.clock,
                  already_sent=again, client_source=ThreadLocalClients(s.settings, factory=s.log.client),
                  limiter=s.limiter, line=s.line(3))
    [outcome] = job.run()
    assert outcome.already_sent and outcome.bundled and len(s.log.creates) == creates



def test_a_redelivered_send_with_a_random_code_finds_its_code_in_the_digest_and_sends_nothing(storm):
    """As the send component does it (contract §13.3 with §15): the first run's random code is read back
    from the digest its text went in, and that digest settles the recipient."""
    from functools import partial

    from fn_twilio.lib.reconcile import first_run_code
    from fn_twilio.lib.sender import with_ack_request

    s = storm(limit=1)
    asking = partial(with_ack_request, "Join the bridge.", keywords=s.settings.keywords)
    assert s.outcome(s.call([ALICE], 1)).success
    first = [s.call([ALICE], 7, body=asking("4821"), line=DigestLine.for_text(asking("4821"), code="4821",
                                                                             asks=True)),
             s.call([ALICE], 9)]
    eventually(lambda: s.held() == 2, "held")
    s.advance(11.5)
    assert s.outcome(first[0]).bundled
    creates = len(s.log.creates)
    code = first_run_code(s.settings, [ALICE], redelivered(s.clock), asking, client=s.log.client(),
                          line_for=DigestLine.rendered_for(asking))
    assert code == "4821"
    line = DigestLine.for_text(asking(code), code=code, asks=True)
    again = settled_by_digest(s.settings, [ALICE], line, redelivered(s.clock), client=s.log.client())
    assert again[ALICE].already_sent and again[ALICE].sid == s.outcome(first[0]).sid
    assert len(s.log.creates) == creates
    assert first_run_code(s.settings, [ALICE], redelivered(s.clock), asking, client=s.log.client()) is None

# -- the tracker's outbound view (the one listing the limiter reads) ---------------------------------------
def tracker_for(s: Any, clock: FakeClock) -> DeliveryTracker:
    from fn_twilio.lib import polling
    return DeliveryTracker(s, polling.poller_key(s, DeliveryTracker.kind), clock=clock, autostart=False)


def test_one_listing_serves_status_watches_and_the_outbound_view():
    from fn_twilio.lib.delivery import DeliveryWatch, OutboundWatch
    clock = FakeClock()
    log = FakeLog(clock)
    s = storm_settings(3)
    pending = log.add(BOB, ago=1)
    recent = [log.add(ALICE, f"text {i}", ago=i) for i in range(5)]
    log.add(ALICE, "too old", ago=40)
    log.add(ALICE, "another sender's", ago=1, from_=OTHER_SENDER)
    t = tracker_for(s, clock)
    views: list[Any] = []
    status = DeliveryWatch([pending.sid], clock)
    t.add(status)
    t.add(OutboundWatch(20.0, views.append, clock))
    assert t.look_once(log.client())
    assert len(log.lists) == 1 and status.statuses()[pending.sid].status == "queued"
    [view] = views
    assert {x.sid for x in view.texts} == {pending.sid} | {m.sid for m in recent} and view.complete
    assert all(x.status == "queued" and x.at <= clock.wall() for x in view.texts)


def test_the_view_reads_back_to_its_horizon_and_no_further():
    from fn_twilio.lib.delivery import PAGE_SIZE, OutboundWatch
    clock = FakeClock()
    log = FakeLog(clock)
    for i in range(PAGE_SIZE * 3):
        log.add(ALICE, ago=100 + i)          # old traffic of the sender
    for i in range(PAGE_SIZE + 10):
        log.add(BOB, ago=i * 0.1)            # a burst within the horizon: more than a page
    t = tracker_for(storm_settings(3), clock)
    views: list[Any] = []
    t.add(OutboundWatch(30.0, views.append, clock))
    assert t.look_once(log.client())
    assert len(log.lists) == 2 and len(views[0].texts) == PAGE_SIZE + 10 and views[0].complete


def test_a_view_cut_by_the_page_cap_says_so():
    from fn_twilio.lib.delivery import PAGE_SIZE, OutboundWatch
    from fn_twilio.lib.polling import MAX_PAGES_PER_LOOK
    clock = FakeClock()
    log = FakeLog(clock)
    for i in range(PAGE_SIZE * MAX_PAGES_PER_LOOK + 5):
        log.add(ALICE, ago=i * 0.01)
    t = tracker_for(storm_settings(3), clock)
    views: list[Any] = []
    t.add(OutboundWatch(30.0, views.append, clock))
    assert t.look_once(log.client())
    assert len(log.lists) == MAX_PAGES_PER_LOOK and not views[0].complete


def test_a_watch_joining_within_an_interval_of_the_last_view_gets_it_without_a_request():
    from fn_twilio.lib.delivery import OutboundWatch
    clock = FakeClock()
    log = FakeLog(clock)
    log.add(ALICE)
    t = tracker_for(storm_settings(3), clock)
    first: list[Any] = []
    t.add(OutboundWatch(20.0, first.append, clock))
    assert t.look_once(log.client()) and len(log.lists) == 1
    clock.advance(0.5)
    joined: list[Any] = []
    late = OutboundWatch(20.0, joined.append, clock)
    t.add(late)
    assert joined == first and late.looks == 1 and t.look_once(log.client()) and len(log.lists) == 1
    clock.advance(1.0)                        # now the view is an interval old: the next look lists
    assert t.look_once(log.client()) and len(log.lists) == 2 and len(joined) == 2


def test_a_lingering_watch_is_closed_by_the_tracker_unless_kept():
    from fn_twilio.lib.delivery import OutboundWatch
    clock = FakeClock()
    log = FakeLog(clock)
    t = tracker_for(storm_settings(3), clock)
    kept, dropped = OutboundWatch(20.0, lambda v: None, clock), OutboundWatch(20.0, lambda v: None, clock)
    t.add(kept)
    t.add(dropped)
    kept.linger(clock.now() + 2)
    dropped.linger(clock.now() + 2)
    assert kept.keep()
    clock.advance(2)
    assert t.look_once(log.client())
    assert t.watches == [kept] and not dropped.keep()
    kept.linger(clock.now())
    assert t.look_once(log.client()) is True and not t.watches
    assert t.look_once(log.client()) is False            # nobody left: the tracker stops
