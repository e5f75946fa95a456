"""The emulator's delivery lifecycle: outbound messages move queued -> sent -> delivered on a schedule,
end undelivered / failed / sent as told per recipient, and read back through the real twilio SDK.

The emulator here runs on a clock the tests move, so nothing sleeps."""
import email.utils
from datetime import timedelta, timezone

import pytest
from twilio.base.exceptions import TwilioRestException

from sandbox.twilio_emulator import (MESSAGING_SERVICE_SID, SENDER, DeliveryOutcome, DeliverySchedule,
                                     RemoteEmulator, TwilioEmulator)

UTC = timezone.utc
ALICE, BOB, CAROL, DAVE = "+353861234567", "+353861234568", "+353861234569", "+353861234570"



@pytest.fixture(scope="module")
def timed_server(clock):
    with TwilioEmulator(clock=clock) as emu:
        yield emu


@pytest.fixture
def temu(timed_server, clock):
    clock.reset()
    timed_server.reset()
    yield timed_server
    timed_server.reset()


@pytest.fixture
def tclient(temu, client_for):
    return client_for(temu)


def at(value):
    return email.utils.parsedate_to_datetime(value) if value else None


def send(client, to=ALICE, **kwargs):
    kwargs.setdefault("from_", SENDER)
    return client.messages.create(to=to, body="Incident 2095 needs you", **kwargs)


# --- off by default ----------------------------------------------------------------------------

def test_without_a_schedule_messages_stay_queued(temu, tclient, clock):
    assert temu.delivery_schedule is None
    sid = send(tclient).sid
    clock.advance(3600)
    msg = tclient.messages(sid).fetch()
    assert msg.status == "queued" and msg.date_sent is None


# --- the schedule ------------------------------------------------------------------------------

def test_queued_then_sent_then_delivered_each_step_dated(temu, tclient, clock):
    temu.deliver_after(sent_after=2, delivered_after=3)
    created = clock.now
    sid = send(tclient).sid
    seen = []
    for step in (1, 1, 2, 1):
        clock.advance(step)
        raw = temu.message(sid)
        seen.append((raw["status"], at(raw["date_sent"]), at(raw["date_updated"])))
    assert seen == [
        ("queued", None, created),
        ("sent", created + timedelta(seconds=2), created + timedelta(seconds=2)),
        ("sent", created + timedelta(seconds=2), created + timedelta(seconds=2)),
        ("delivered", created + timedelta(seconds=2), created + timedelta(seconds=5)),
    ]
    fetched = tclient.messages(sid).fetch()       # what the SDK reads: GET Messages/{Sid}.json
    assert fetched.status == "delivered" and fetched.date_sent == created + timedelta(seconds=2)
    assert fetched.price.startswith("-") and fetched.error_code is None and fetched.error_message is None


def test_steps_due_while_nobody_looked_are_dated_when_due(temu, tclient, clock):
    temu.deliver_after(sent_after=1, delivered_after=1)
    created = clock.now
    sid = send(tclient).sid
    clock.advance(600)
    raw = temu.message(sid)
    assert raw["status"] == "delivered"
    assert (at(raw["date_sent"]), at(raw["date_updated"])) == (created + timedelta(seconds=1),
                                                                created + timedelta(seconds=2))


def test_zero_delays_deliver_by_the_next_read(temu, tclient):
    temu.deliver_after(0, 0)
    msg = send(tclient)
    assert msg.status == "queued"                  # the create answer is Twilio's: queued
    assert tclient.messages(msg.sid).fetch().status == "delivered"


# (outcome set for the recipient, statuses seen at 1 s, 2 s, 10 s, error code, date_sent set)
OUTCOMES = [
    (None, ["sent", "delivered", "delivered"], None, True),
    (("delivered",), ["sent", "delivered", "delivered"], None, True),
    (("undelivered", 30003), ["sent", "undelivered", "undelivered"], 30003, True),
    (("undelivered", 30007), ["sent", "undelivered", "undelivered"], 30007, True),
    (("failed", 30001), ["failed", "failed", "failed"], 30001, False),
    (("failed", 30036), ["failed", "failed", "failed"], 30036, False),
    (("sent",), ["sent", "sent", "sent"], None, True),        # no receipt ever comes
]


@pytest.mark.parametrize("outcome,statuses,code,sent", OUTCOMES)
def test_outcome_per_recipient(temu, tclient, clock, outcome, statuses, code, sent):
    temu.deliver_after(sent_after=1, delivered_after=1)
    if outcome is not None:
        temu.set_delivery_outcome(ALICE, *outcome)
    sid = send(tclient).sid
    seen = []
    for step in (1, 1, 8):
        clock.advance(step)
        seen.append(tclient.messages(sid).fetch().status)
    assert seen == statuses
    msg = tclient.messages(sid).fetch()
    assert msg.error_code == code
    assert (msg.error_message is not None) == (code is not None)
    assert (msg.date_sent is not None) == sent


def test_one_undelivered_among_four(temu, tclient, clock):
    temu.deliver_after(sent_after=1, delivered_after=2)
    temu.set_delivery_outcome(CAROL, "undelivered", 30003)
    sids = {to: send(tclient, to=to).sid for to in (ALICE, BOB, CAROL, DAVE)}
    clock.advance(3)
    got = {to: tclient.messages(sid).fetch() for to, sid in sids.items()}
    assert {to: m.status for to, m in got.items()} == {ALICE: "delivered", BOB: "delivered",
                                                       CAROL: "undelivered", DAVE: "delivered"}
    assert got[CAROL].error_code == 30003 and got[CAROL].error_message == "Unreachable destination handset"
    assert got[ALICE].error_code is None


def test_an_outcome_can_name_its_message(temu, tclient, clock):
    temu.deliver_after(0, 0)
    temu.set_delivery_outcome(ALICE, "undelivered", 30008, "Carrier says no")
    raw = temu.message(send(tclient).sid)
    assert (raw["status"], raw["error_code"]) == ("undelivered", 30008)
    assert raw["error_message"] == "Carrier says no"


def test_outcome_set_before_the_receipt_applies_to_messages_on_their_way(temu, tclient, clock):
    temu.deliver_after(sent_after=1, delivered_after=5)
    sid = send(tclient).sid
    clock.advance(2)
    assert temu.message(sid)["status"] == "sent"
    temu.set_delivery_outcome(ALICE, "undelivered", 30005)
    clock.advance(5)
    assert temu.message(sid)["status"] == "undelivered"


def test_outcome_back_to_delivered_and_listed(temu):
    temu.set_delivery_outcome(ALICE, "failed", 30001)
    temu.set_delivery_outcome("whatsapp:" + BOB, "sent")
    assert temu.delivery_outcomes == {ALICE: DeliveryOutcome("failed", 30001), BOB: DeliveryOutcome("sent")}
    temu.set_delivery_outcome(ALICE, "delivered")
    assert set(temu.delivery_outcomes) == {BOB}


def test_messaging_service_message_is_accepted_then_queued_with_its_sender(temu, tclient, clock):
    temu.deliver_after(sent_after=2, delivered_after=1)
    msg = send(tclient, from_=None, messaging_service_sid=MESSAGING_SERVICE_SID)
    assert msg.status == "accepted" and msg.from_ is None
    fetched = tclient.messages(msg.sid).fetch()
    assert fetched.status == "queued" and fetched.from_ == SENDER and fetched.num_segments == "1"
    clock.advance(3)
    assert tclient.messages(msg.sid).fetch().status == "delivered"


def test_a_schedule_applies_to_messages_created_after_it(temu, tclient, clock):
    before = send(tclient).sid
    temu.deliver_after(1, 1)
    after = send(tclient).sid
    temu.delivery_schedule = None
    later = send(tclient).sid
    clock.advance(5)
    assert [temu.message(s)["status"] for s in (before, after, later)] == ["queued", "delivered", "queued"]


def test_manual_status_takes_the_message_off_the_schedule(temu, tclient, clock):
    temu.deliver_after(1, 1)
    held, advanced = send(tclient).sid, send(tclient, to=BOB).sid
    temu.set_status(held, "undelivered", 30006)
    clock.advance(5)
    assert temu.message(held)["status"] == "undelivered" and temu.message(held)["error_code"] == 30006
    assert temu.message(advanced)["status"] == "delivered"


def test_advance_statuses_follows_the_outcomes(temu, tclient):
    temu.set_delivery_outcome(BOB, "undelivered", 30007)
    temu.set_delivery_outcome(CAROL, "failed", 30001)
    temu.set_delivery_outcome(DAVE, "sent")
    sids = {to: send(tclient, to=to).sid for to in (ALICE, BOB, CAROL, DAVE)}
    temu.advance_statuses()
    assert {to: temu.message(s)["status"] for to, s in sids.items()} == {
        ALICE: "delivered", BOB: "undelivered", CAROL: "failed", DAVE: "sent"}
    assert temu.message(sids[CAROL])["date_sent"] is None and temu.message(sids[BOB])["error_code"] == 30007


def test_reset_turns_the_schedule_off_and_forgets_outcomes(temu):
    temu.deliver_after(1, 1)
    temu.set_delivery_outcome(ALICE, "sent")
    temu.reset()
    assert temu.delivery_schedule is None and temu.delivery_outcomes == {}


def test_reset_restores_the_constructors_schedule():
    with TwilioEmulator(delivery_schedule=DeliverySchedule(0.5, 2)) as emu:
        emu.delivery_schedule = None
        emu.reset()
        assert emu.delivery_schedule == DeliverySchedule(0.5, 2.0)


# --- listing while messages move ---------------------------------------------------------------

def test_date_sent_filters_leave_out_messages_not_yet_sent(temu, tclient, clock):
    temu.deliver_after(sent_after=10, delivered_after=1)
    since = clock.now - timedelta(minutes=1)
    first = send(tclient).sid
    clock.advance(5)
    second = send(tclient).sid
    everything = [m.sid for m in tclient.messages.list(to=ALICE, from_=SENDER)]
    assert everything == [second, first]                        # unfiltered: newest first, queued too
    assert tclient.messages.list(to=ALICE, from_=SENDER, date_sent_after=since) == []
    clock.advance(5)                                            # the first one is sent now
    assert [m.sid for m in tclient.messages.list(to=ALICE, from_=SENDER, date_sent_after=since)] == [first]
    clock.advance(5)
    listed = tclient.messages.list(to=ALICE, from_=SENDER, date_sent_after=since)
    assert [m.sid for m in listed] == [second, first]


def test_failed_messages_are_fetched_not_listed_by_date(temu, tclient, clock):
    temu.deliver_after(1, 1)
    temu.set_delivery_outcome(ALICE, "failed", 30001)
    sid = send(tclient).sid
    clock.advance(5)
    assert tclient.messages.list(date_sent_after=clock.now - timedelta(hours=1)) == []
    assert tclient.messages(sid).fetch().status == "failed"


def test_unknown_sid_is_404_20404_in_twilio_shape(temu, tclient):
    with pytest.raises(TwilioRestException) as exc:
        tclient.messages("SM" + "f" * 32).fetch()
    assert exc.value.status == 404 and exc.value.code == 20404
    body = temu.requests[-1].json()
    assert set(body) == {"code", "message", "more_info", "status"}
    assert body["status"] == 404 and body["more_info"] == "https://www.twilio.com/docs/errors/20404"
    assert ("SM" + "f" * 32) in body["message"]


def test_outbound_messages_for_inspection(temu, tclient):
    send(tclient)
    send(tclient, to=BOB)
    temu.inject_inbound(from_=ALICE, to=SENDER, body="ack")
    assert [m["to"] for m in temu.outbound_messages()] == [ALICE, BOB]
    assert [m["to"] for m in temu.outbound_messages(to=BOB)] == [BOB]
    assert temu.outbound_messages(from_="+15005550099") == []
    assert [m["body"] for m in temu.find_messages(direction="inbound")] == ["ack"]


# --- bad knobs ---------------------------------------------------------------------------------

@pytest.mark.parametrize("args", [(-1, 0), (0, -0.5), ("1", 0), (True, 0), (float("inf"), 0),
                                  (0, float("nan"))])
def test_bad_schedule_is_refused(args):
    with pytest.raises(ValueError, match="sent_after|delivered_after"):
        DeliverySchedule(*args)


@pytest.mark.parametrize("args,words", [
    (("bounced",), "one of delivered, undelivered, failed, sent"),
    (("undelivered",), "needs an integer error_code"),
    (("failed", "30003"), "needs an integer error_code"),
    (("delivered", 30003), "has no error_code"),
    (("sent", None, "lost"), "has no error_code"),
])
def test_bad_outcome_is_refused(temu, args, words):
    with pytest.raises(ValueError, match=words):
        temu.set_delivery_outcome(ALICE, *args)
    assert temu.delivery_outcomes == {}


def test_schedule_must_be_a_schedule(temu):
    with pytest.raises(TypeError):
        temu.delivery_schedule = (1, 2)


# --- the same knobs through the control API (real clock, zero delays: nothing to wait for) -----

def test_delivery_through_the_remote_control_api(emu, client):
    remote = RemoteEmulator(emu.base_url)
    assert remote.delivery_schedule is None
    remote.deliver_after(0, 0)
    assert remote.delivery_schedule == DeliverySchedule(0, 0) == emu.delivery_schedule
    remote.set_delivery_outcome(BOB, "undelivered", 30003)
    assert remote.delivery_outcomes == {BOB: DeliveryOutcome("undelivered", 30003)}
    to_alice = client.messages.create(to=ALICE, from_=SENDER, body="x").sid
    to_bob = client.messages.create(to=BOB, from_=SENDER, body="x").sid
    assert remote.message(to_alice)["status"] == "delivered"
    assert (remote.message(to_bob)["status"], remote.message(to_bob)["error_code"]) == ("undelivered", 30003)
    assert [m["sid"] for m in remote.outbound_messages(to=BOB)] == [to_bob]
    assert [m["sid"] for m in remote.outbound_messages()] == [to_alice, to_bob]
    with pytest.raises(KeyError):
        remote.message("SM" + "0" * 32)
    with pytest.raises(RuntimeError, match="HTTP 400"):
        remote._call("POST", "delivery/outcomes", {"recipient": ALICE, "status": "bounced"})
    with pytest.raises(RuntimeError, match="HTTP 400"):
        remote._call("POST", "delivery/schedule", {"sent_after": -1})
    remote.delivery_schedule = None
    assert emu.delivery_schedule is None
    remote.reset()
    assert remote.delivery_outcomes == {}
