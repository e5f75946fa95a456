"""The delivery tracker (fn_twilio.lib.delivery), fake clock and fake Twilio: logic in milliseconds."""
from __future__ import annotations

import itertools
import threading
from datetime import datetime, timedelta
from types import SimpleNamespace
from typing import Any

import pytest
from twilio.base.exceptions import TwilioRestException

from fn_twilio.lib import polling
from fn_twilio.lib.clock import FakeClock
from fn_twilio.lib.delivery import (MAX_FETCHES_PER_LOOK, PAGE_SIZE, DeliveryTracker, DeliveryWatch, SidError,
                                    parse_sids, wait_for_statuses, watch_deliveries)
from fn_twilio.lib.errors import TWILIO_CODES, FailureKind
from fn_twilio.lib.polling import MAX_CONSECUTIVE_FAILURES, active_pollers
from fn_twilio.lib.records import DeliveryStatus
from tests.lib.fakes import SENDER, T0, settings

ALICE = "+353861234567"
OTHER_SENDER = "+15005550009"
_SIDS = itertools.count(1)
RESULT_KEYS = {"sid", "phone_number", "status", "final", "error_code", "error_message", "date_sent",
               "date_sent_ts", "date_updated", "date_updated_ts", "num_segments", "price", "price_unit"}


def new_sid() -> str:
    return f"SM{next(_SIDS):032x}"


class FakeOutbound:
    """Outbound messages of an account: lists them as Twilio does (newest first by date_sent, else
    date_created; filtered by From) and fetches one by SID (404 / 20404 for an unknown one)."""

    def __init__(self) -> None:
        self.msgs: dict[str, SimpleNamespace] = {}
        self.requests: list[dict[str, Any]] = []
        self.fail_next: list[BaseException] = []
        self.lock = threading.Lock()

    def send(self, *, to: str = ALICE, from_: str = SENDER, created: datetime = T0, status: str = "queued",
             sent: datetime | None = None) -> str:
        sid = new_sid()
        self.msgs[sid] = SimpleNamespace(sid=sid, to=to, from_=from_, status=status, error_code=None,
                                         error_message=None, date_created=created, date_sent=sent,
                                         date_updated=created, num_segments="1", price=None,
                                         price_unit="USD")
        return sid

    def move(self, sid: str, status: str, error_code: int | None = None, at: datetime | None = None) -> None:
        msg = self.msgs[sid]
        msg.status, msg.error_code = status, error_code
        msg.error_message = "Twilio's own words" if error_code else None
        if status not in ("queued", "failed") and msg.date_sent is None:
            msg.date_sent = at or msg.date_created + timedelta(seconds=1)
            msg.price = "-0.00790"
        msg.date_updated = at or msg.date_created + timedelta(seconds=2)

    # -- what the tracker's client calls --------------------------------------------------------
    def client(self, _settings: Any = None) -> Any:
        messages = _Messages(self)
        return SimpleNamespace(messages=messages, http_client=SimpleNamespace(close=lambda: None))

    @property
    def lists(self) -> list[dict[str, Any]]:
        return [r for r in self.requests if r["kind"] == "list"]

    @property
    def fetches(self) -> list[dict[str, Any]]:
        return [r for r in self.requests if r["kind"] == "fetch"]

    def _record(self, **request: Any) -> None:
        with self.lock:
            self.requests.append(request)
            if self.fail_next:
                raise self.fail_next.pop(0)

    def _list(self, params: dict[str, Any], offset: int) -> _Page:
        self._record(kind="list", offset=offset, **params)
        items = [m for m in self.msgs.values() if params.get("from_") in (None, m.from_)]
        items.sort(key=lambda m: m.date_sent or m.date_created, reverse=True)
        return _Page(self, items, offset, params)


class _Page:
    def __init__(self, twilio: FakeOutbound, items: list[Any], offset: int, params: dict[str, Any]):
        self._twilio, self._offset, self._params = twilio, offset, params
        size = params["page_size"]
        self._items = [SimpleNamespace(**vars(m)) for m in items[offset:offset + size]]
        self.next_page_url = f"page={offset + size}" if offset + size < len(items) else None

    def __iter__(self):
        return iter(self._items)

    def next_page(self) -> _Page:
        return self._twilio._list(self._params, self._offset + self._params["page_size"])


class _Messages:
    def __init__(self, twilio: FakeOutbound):
        self._twilio = twilio

    def page(self, **params: Any) -> _Page:
        return self._twilio._list(params, 0)

    def __call__(self, sid: str) -> Any:
        def fetch() -> Any:
            self._twilio._record(kind="fetch", sid=sid)
            if sid not in self._twilio.msgs:
                raise TwilioRestException(404, f"/Messages/{sid}.json", "not found", code=20404)
            return SimpleNamespace(**vars(self._twilio.msgs[sid]))
        return SimpleNamespace(fetch=fetch)


def tracker(clock: FakeClock | None = None, **section: str) -> DeliveryTracker:
    s = settings(**section)
    return DeliveryTracker(s, polling.poller_key(s, DeliveryTracker.kind), clock=clock or FakeClock(),
                           autostart=False)


def follow(t: DeliveryTracker, sids: list[str]) -> DeliveryWatch:
    watch = DeliveryWatch(sids, t.clock)
    t.add(watch)
    return watch


def next_look(t: DeliveryTracker, twilio: FakeOutbound) -> bool:
    """The tracker's next look, one interval after the last (as its thread would make it)."""
    t.clock.advance(t.interval)
    return t.look_once(twilio.client())


# -- reading the input ----------------------------------------------------------------------------
SID_A, SID_B = "SM" + "a" * 32, "MM" + "B" * 32


@pytest.mark.parametrize("raw, expected", [
    (SID_A, [SID_A]),
    (f"{SID_A}, {SID_B}", [SID_A, SID_B]),
    (f" {SID_B};{SID_A}\n{SID_B} ", [SID_B, SID_A]),          # any separator; the same SID once
])
def test_sids_are_read_in_order_each_once(raw, expected):
    assert parse_sids(raw, name="twilio_message_sids", max_count=10) == expected


@pytest.mark.parametrize("raw, words", [
    ("", "is empty"),
    (" , ;", "is empty"),
    (None, "is empty"),
    ("SM123", "is not a message SID"),
    (f"{SID_A}, AC" + "a" * 32, "is not a message SID"),
    ("sm" + "a" * 32, "is not a message SID"),
    ("SM" + "g" * 32, "is not a message SID"),
    (",".join("SM" + f"{i:032x}" for i in range(4)), "more than max_recipients (3)"),
])
def test_bad_sids_get_one_message_naming_the_input(raw, words):
    with pytest.raises(SidError) as err:
        parse_sids(raw, name="twilio_message_sids", max_count=3)
    assert "twilio_message_sids" in str(err.value) and words in str(err.value)


# -- the record -----------------------------------------------------------------------------------
def test_a_status_has_exactly_the_contract_keys_and_the_error_in_the_tables_words():
    twilio = FakeOutbound()
    sid = twilio.send()
    twilio.move(sid, "undelivered", 30003)
    status = DeliveryStatus.from_message(twilio.msgs[sid])
    result = status.as_result()
    assert set(result) == RESULT_KEYS
    assert result["final"] is True and result["error_code"] == 30003
    assert result["error_message"] == TWILIO_CODES[30003].explanation
    assert result["date_sent_ts"] and result["date_updated_ts"] and result["phone_number"] == ALICE


@pytest.mark.parametrize("status, final", [("queued", False), ("sending", False), ("sent", False),
                                           ("delivered", True), ("undelivered", True), ("failed", True),
                                           ("canceled", True), ("read", True), ("not_found", False)])
def test_final_statuses_are_the_contracts(status, final):
    assert DeliveryStatus(sid=SID_A, status=status).final is final


def test_a_code_the_table_lacks_keeps_twilios_words_and_not_found_explains_itself():
    twilio = FakeOutbound()
    sid = twilio.send()
    twilio.move(sid, "failed", 39999)
    assert DeliveryStatus.from_message(twilio.msgs[sid]).error_message == "Twilio's own words"
    missing = DeliveryStatus.not_found(SID_A).as_result()
    assert missing["status"] == "not_found" and missing["error_code"] == 20404
    assert "no message with this SID" in missing["error_message"]


# -- one look at a time -----------------------------------------------------------------------------
def test_many_messages_of_many_watches_cost_one_list_request_per_look():
    twilio, t = FakeOutbound(), tracker()
    sids = [twilio.send(to=f"+1415555{i:04d}", created=T0 + timedelta(seconds=i)) for i in range(100)]
    watches = [follow(t, sids[i::3]) for i in range(3)]
    assert t.look_once(twilio.client())
    assert len(twilio.lists) == 1 and not twilio.fetches
    assert all(set(w.statuses()) == set(w.sids) for w in watches)
    for sid in sids:
        twilio.move(sid, "delivered")
    assert next_look(t, twilio)
    assert len(twilio.lists) == 2 and not twilio.fetches
    assert all(w.has_news() for w in watches)
    assert next_look(t, twilio)
    assert len(twilio.requests) == 2        # nothing pending: a look makes no request


def test_queued_messages_without_date_sent_are_listed_not_filtered_out():
    twilio, t = FakeOutbound(), tracker()
    sid = twilio.send(status="queued")
    watch = follow(t, [sid])
    assert t.look_once(twilio.client())
    assert "date_sent_after" not in twilio.lists[0] and twilio.lists[0]["from_"] == SENDER
    assert watch.statuses()[sid].status == "queued" and not twilio.fetches


def test_the_listing_stops_below_the_oldest_pending_message():
    twilio, t = FakeOutbound(), tracker()
    for i in range(PAGE_SIZE * 3):      # older traffic of the sender
        twilio.send(created=T0 - timedelta(hours=1, seconds=i), status="delivered",
                    sent=T0 - timedelta(hours=1))
    sid = twilio.send(created=T0)
    for i in range(PAGE_SIZE + 5):      # newer traffic after it
        twilio.send(created=T0 + timedelta(seconds=10 + i), status="delivered",
                    sent=T0 + timedelta(seconds=10 + i))
    watch = follow(t, [sid])
    assert t.look_once(twilio.client())
    assert len(twilio.lists) == 2 and watch.statuses()[sid].status == "queued"
    twilio.requests.clear()
    assert next_look(t, twilio)             # it knows the message's date: it stops there
    assert len(twilio.lists) == 2 and not twilio.fetches


def test_unknown_sid_is_fetched_once_and_reported_not_found():
    twilio, t = FakeOutbound(), tracker()
    known = twilio.send()
    missing = new_sid()
    watch = follow(t, [missing, known])
    assert t.look_once(twilio.client())
    assert [f["sid"] for f in twilio.fetches] == [missing]
    assert watch.statuses()[missing].status == "not_found"
    assert next_look(t, twilio)
    assert [f["sid"] for f in twilio.fetches] == [missing]   # settled: never asked again


def test_a_message_of_another_sender_is_fetched_while_pending_and_fetches_again_are_capped():
    twilio, t = FakeOutbound(), tracker()
    others = [twilio.send(from_=OTHER_SENDER) for _ in range(MAX_FETCHES_PER_LOOK + 3)]
    watch = follow(t, others)
    assert t.look_once(twilio.client())     # the first look reads every message it never read
    assert len(twilio.fetches) == len(others) and set(watch.statuses()) == set(others)
    assert next_look(t, twilio)             # then at most the cap per look, least recently asked first
    second = [f["sid"] for f in twilio.fetches[len(others):]]
    assert len(second) == MAX_FETCHES_PER_LOOK
    assert next_look(t, twilio)
    third = [f["sid"] for f in twilio.fetches[len(others) + MAX_FETCHES_PER_LOOK:]]
    assert set(others) - set(second) <= set(third)


def test_the_tracker_forgets_the_sids_of_watches_that_ended():
    """A long-running process follows thousands of messages: what it keeps is bounded by what is followed."""
    twilio, t = FakeOutbound(), tracker()
    for _ in range(20):
        watch = follow(t, [twilio.send(from_=OTHER_SENDER) for _ in range(5)])   # fetched by SID
        assert next_look(t, twilio)
        watch.close()
    still = follow(t, [twilio.send(from_=OTHER_SENDER)])
    assert next_look(t, twilio)
    assert set(t._asked) == set(still.sids) and set(t.known) == set(still.sids)


def test_a_message_beyond_the_page_cap_is_fetched():
    twilio, t = FakeOutbound(), tracker()
    sid = twilio.send(created=T0)
    for i in range(PAGE_SIZE * polling.MAX_PAGES_PER_LOOK + 1):
        at = T0 + timedelta(seconds=1 + i)
        twilio.send(created=at, status="delivered", sent=at)
    watch = follow(t, [sid])
    assert t.look_once(twilio.client())
    assert len(twilio.lists) == polling.MAX_PAGES_PER_LOOK
    assert [f["sid"] for f in twilio.fetches] == [sid] and watch.statuses()[sid].status == "queued"


def test_a_joining_watch_is_served_from_what_is_known_without_a_request():
    twilio, t = FakeOutbound(), tracker()
    sid = twilio.send()
    twilio.move(sid, "delivered")
    follow(t, [sid])
    assert t.look_once(twilio.client())
    before = len(twilio.requests)
    late = follow(t, [sid])
    assert late.has_news() and late.statuses()[sid].status == "delivered"
    assert t.look_once(twilio.client())
    assert len(twilio.requests) == before


def test_track_adds_messages_and_an_early_look_finds_them():
    twilio, t = FakeOutbound(), tracker()
    first = twilio.send()
    watch = follow(t, [first])
    assert t.look_once(twilio.client())
    second = twilio.send(created=T0 + timedelta(seconds=5))
    watch.track([second])
    assert not watch.has_news()
    assert t.look_once(twilio.client())     # early (no time passed): it knows nothing of the new one
    assert set(watch.statuses()) == {first, second} and len(twilio.lists) == 2


def test_lasting_failures_reach_the_watch_and_what_was_read_is_kept():
    twilio, t = FakeOutbound(), tracker()
    sid = twilio.send()
    watch = follow(t, [sid])
    assert t.look_once(twilio.client())
    twilio.fail_next = [TwilioRestException(503, "/Messages.json", "down")] * MAX_CONSECUTIVE_FAILURES
    for _ in range(MAX_CONSECUTIVE_FAILURES - 1):
        assert next_look(t, twilio)
        assert watch.error is None
    assert next_look(t, twilio)
    assert watch.error is not None and watch.error.kind is FailureKind.SERVER
    assert watch.statuses()[sid].status == "queued"


def test_a_permanent_failure_ends_the_wait_at_once():
    twilio, t = FakeOutbound(), tracker()
    watch = follow(t, [twilio.send()])
    twilio.fail_next = [TwilioRestException(401, "/Messages.json", "no", code=20003)]
    assert t.look_once(twilio.client())
    assert watch.error is not None and "credentials" in watch.error.message and watch.looks == 0


# -- the wait loop, with the tracker's thread on a fake clock ---------------------------------------------
def drive(clock: FakeClock, until: threading.Event, step: float = 0.5) -> None:
    while not until.wait(0.002):
        clock.advance(step)


@pytest.fixture(autouse=True)
def no_tracker_left():
    yield
    for _ in range(2000):
        if not active_pollers(DeliveryTracker.kind):
            break
        threading.Event().wait(0.002)
    assert active_pollers(DeliveryTracker.kind) == 0


def run_wait(twilio: FakeOutbound, sids: list[str], wait: float, during=None, is_terminated=lambda: None):
    clock = FakeClock()
    s = settings()
    done, out = threading.Event(), {}

    def call():
        out["outcome"] = wait_for_statuses(s, sids, clock.now() + wait, clock=clock,
                                           client_factory=twilio.client, is_terminated=is_terminated)
        done.set()

    thread = threading.Thread(target=call)
    thread.start()
    if during:
        during(clock)
    drive(clock, done)
    thread.join(5)
    return out["outcome"]


def test_a_wait_ends_when_every_message_is_final():
    twilio = FakeOutbound()
    sids = [twilio.send(to=f"+1415555000{i}") for i in range(4)]

    def deliver(clock):
        for _ in range(200):   # once the first look is made, the carriers answer
            if twilio.lists:
                break
            threading.Event().wait(0.002)
        for sid in sids[:3]:
            twilio.move(sid, "delivered")
        twilio.move(sids[3], "undelivered", 30003)

    outcome = run_wait(twilio, sids, 60.0, during=deliver)
    assert [s.sid for s in outcome.statuses] == sids
    assert [s.status for s in outcome.statuses] == ["delivered"] * 3 + ["undelivered"]
    assert outcome.all_final and outcome.success and outcome.failure is None
    assert "unreachable" in outcome.statuses[3].error_message


def test_a_message_still_sent_when_the_wait_ends_is_reported_not_final():
    twilio = FakeOutbound()
    sid = twilio.send()
    twilio.move(sid, "sent")
    outcome = run_wait(twilio, [sid], 10.0)
    assert outcome.statuses[0].status == "sent" and not outcome.statuses[0].final
    assert not outcome.all_final and outcome.success
    assert len(twilio.lists) >= 3           # it kept looking, about once per interval


def test_no_wait_looks_once():
    twilio = FakeOutbound()
    sid, missing = twilio.send(), new_sid()
    outcome = run_wait(twilio, [sid, missing], 0.0)
    assert [s.status for s in outcome.statuses] == ["queued", "not_found"]
    assert not outcome.success and len(twilio.lists) == 1 and len(twilio.fetches) == 1


def test_a_wait_ended_by_a_failure_says_which_sids_were_not_read():
    twilio = FakeOutbound()
    sid = twilio.send()
    twilio.fail_next = [TwilioRestException(401, "/Messages.json", "no", code=20003)]
    outcome = run_wait(twilio, [sid], 30.0)
    assert outcome.failure is not None and outcome.unread == (sid,) and not outcome.success


def test_watches_share_one_tracker_per_sender():
    twilio, clock = FakeOutbound(), FakeClock()
    s = settings()
    sid = twilio.send()
    with watch_deliveries(s, [sid], client_factory=twilio.client, clock=clock) as one, \
            watch_deliveries(s, [sid], client_factory=twilio.client, clock=clock) as two:
        assert one._poller is two._poller and active_pollers(DeliveryTracker.kind) == 1
        other = settings(twilio_src_address=OTHER_SENDER)
        with watch_deliveries(other, [sid], client_factory=twilio.client, clock=clock) as three:
            assert three._poller is not one._poller


def test_once_a_message_date_is_known_the_listing_reads_no_older_pages():
    twilio, t = FakeOutbound(), tracker()
    for i in range(PAGE_SIZE * 3):      # older traffic of the sender
        twilio.send(created=T0 - timedelta(hours=1, seconds=i), status="delivered",
                    sent=T0 - timedelta(hours=1))
    elsewhere = twilio.send(from_=OTHER_SENDER, created=T0)   # never in the sender's list
    follow(t, [elsewhere])
    assert t.look_once(twilio.client())
    assert len(twilio.lists) == 3 and len(twilio.fetches) == 1   # no date known yet: to the last page
    twilio.requests.clear()
    assert next_look(t, twilio)
    assert len(twilio.lists) == 1 and len(twilio.fetches) == 1   # the first page reaches below its date


def test_a_terminated_workflow_ends_the_wait_with_what_was_read():
    twilio = FakeOutbound()
    sid = twilio.send()
    asked = []

    def terminated():
        asked.append(1)
        return "stopped by the analyst" if len(asked) >= 2 else None

    outcome = run_wait(twilio, [sid], 600.0, is_terminated=terminated)
    assert outcome.terminated == "stopped by the analyst" and len(asked) == 2
    assert outcome.statuses[0].status == "queued" and outcome.success
