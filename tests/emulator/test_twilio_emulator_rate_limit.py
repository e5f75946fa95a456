"""Twilio's loop guard in the emulator (error 14107): a text beyond 30 between the same two numbers
within 30 s is accepted and then fails, and so does every further text between them for 30 s.

Read back through the real twilio SDK; the emulator runs on a clock the tests move, so nothing sleeps."""
from datetime import timezone

import pytest

from sandbox.twilio_emulator import (MESSAGING_SERVICE_SID, SENDER, PairRateLimit, RemoteEmulator,
                                     TwilioEmulator)

UTC = timezone.utc
ALICE, BOB = "+353861234567", "+353861234568"
OTHER_SENDER = "+15005550010"



@pytest.fixture(scope="module")
def server(clock):
    with TwilioEmulator(clock=clock, numbers=(SENDER, OTHER_SENDER)) as emu:
        yield emu


@pytest.fixture
def temu(server, clock):
    clock.reset()
    server.reset()
    yield server
    server.reset()


@pytest.fixture
def tclient(temu, client_for):
    return client_for(temu)


def send(client, to=ALICE, from_=SENDER, **kwargs):
    if "messaging_service_sid" not in kwargs:
        kwargs["from_"] = from_
    return client.messages.create(to=to, body="Incident 2095 needs you", **kwargs)


def statuses(client, sids):
    return [(m.status, m.error_code) for m in (client.messages(sid).fetch() for sid in sids)]


def test_twilios_figures_are_the_default_and_reset_keeps_the_constructors(temu):
    assert temu.pair_limit == PairRateLimit(30, 30.0, 30.0)
    temu.limit_pairs(3, 10, 5)
    temu.reset()
    assert temu.pair_limit == PairRateLimit()


def test_the_31st_text_within_30s_is_accepted_then_fails_with_14107(temu, tclient, clock):
    sids = []
    for _ in range(30):
        sids.append(send(tclient).sid)
        clock.advance(0.5)
    beyond = send(tclient)
    assert beyond.status == "queued" and beyond.error_code is None      # Twilio accepts it first (201)
    assert set(statuses(tclient, sids)) == {("queued", None)}
    failed = tclient.messages(beyond.sid).fetch()
    assert (failed.status, failed.error_code) == ("failed", 14107)
    assert failed.error_message == "SMS send rate limit exceeded" and failed.date_sent is None
    listed = {m.sid: m for m in tclient.messages.list(from_=SENDER, to=ALICE)}
    assert listed[beyond.sid].status == "failed"                         # the list shows it too


def test_every_further_text_fails_for_the_block_then_counting_starts_again(temu, tclient, clock):
    temu.limit_pairs(limit=3, window=10, block=20)
    first = [send(tclient).sid for _ in range(3)]
    clock.advance(1)
    blocked = [send(tclient).sid]                        # the 4th within 10 s: the block starts now
    clock.advance(15)                                    # the window has passed, the block has not
    blocked.append(send(tclient).sid)
    clock.advance(4.5)
    blocked.append(send(tclient).sid)                    # 19.5 s into the block
    clock.advance(0.5)                                   # the block is over: a fresh count
    after = [send(tclient).sid for _ in range(3)]
    assert set(statuses(tclient, first + after)) == {("queued", None)}
    assert set(statuses(tclient, blocked)) == {("failed", 14107)}
    assert statuses(tclient, [send(tclient).sid]) == [("failed", 14107)]   # 4th of the new count


def test_the_window_slides_so_a_steady_text_a_second_never_fails(temu, tclient, clock):
    sids = []
    for _ in range(90):
        sids.append(send(tclient).sid)
        clock.advance(1)
    assert set(statuses(tclient, sids)) == {("queued", None)}


def test_pairs_are_counted_apart(temu, tclient, clock):
    temu.limit_pairs(limit=2, window=30, block=30)
    same = [send(tclient).sid for _ in range(2)]
    other_to = [send(tclient, to=BOB).sid for _ in range(2)]
    other_from = [send(tclient, from_=OTHER_SENDER).sid for _ in range(2)]
    assert set(statuses(tclient, same + other_to + other_from)) == {("queued", None)}
    assert statuses(tclient, [send(tclient).sid]) == [("failed", 14107)]
    assert statuses(tclient, [send(tclient, to=BOB).sid]) == [("failed", 14107)]


def test_a_messaging_service_pair_is_guarded_too(temu, tclient):
    temu.limit_pairs(limit=1, window=30, block=30)
    ok = send(tclient, messaging_service_sid=MESSAGING_SERVICE_SID)
    beyond = send(tclient, messaging_service_sid=MESSAGING_SERVICE_SID)
    assert beyond.status == "accepted"
    assert statuses(tclient, [ok.sid, beyond.sid]) == [("accepted", None), ("failed", 14107)]


def test_a_failed_text_stays_failed_whatever_the_delivery_schedule(temu, tclient, clock):
    temu.deliver_after(sent_after=1, delivered_after=1)
    temu.limit_pairs(limit=1, window=30, block=30)
    ok, beyond = send(tclient).sid, send(tclient).sid
    clock.advance(5)
    assert statuses(tclient, [ok, beyond]) == [("delivered", None), ("failed", 14107)]
    temu.advance_statuses()
    assert statuses(tclient, [beyond]) == [("failed", 14107)]


def test_none_turns_the_guard_off(temu, tclient):
    temu.pair_limit = None
    sids = [send(tclient).sid for _ in range(40)]
    assert set(statuses(tclient, sids)) == {("queued", None)}


@pytest.mark.parametrize("kwargs", [dict(limit=0), dict(limit=True), dict(limit=2.5), dict(window=0),
                                    dict(block=-1), dict(window=float("inf")), dict(block="30")])
def test_a_bad_rule_is_refused(kwargs):
    with pytest.raises(ValueError):
        PairRateLimit(**kwargs)


def test_the_control_api_sets_reads_and_clears_the_rule(temu, tclient):
    remote = RemoteEmulator(temu.base_url)
    assert remote.pair_limit == PairRateLimit()
    remote.limit_pairs(limit=1, window=5, block=5)
    assert temu.pair_limit == PairRateLimit(1, 5.0, 5.0) == remote.pair_limit
    assert statuses(tclient, [send(tclient).sid, send(tclient).sid]) == [("queued", None), ("failed", 14107)]
    remote.pair_limit = None
    assert temu.pair_limit is None and remote.pair_limit is None
