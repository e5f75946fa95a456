"""Reconciling a redelivered send with Twilio's outbound log (fn_twilio.lib.reconcile).

The table tests drive the scan with a fake client (no HTTP, no sleeps) that counts its list
requests; one test runs the real twilio SDK against the Twilio emulator.
"""
from datetime import datetime, timedelta, timezone
from types import SimpleNamespace

import pytest

from fn_twilio.lib.phone import parse_recipients
from fn_twilio.lib.reconcile import Delivery, Wanted, settled_for_send, settled_outcomes
from fn_twilio.lib.sender import SendJob
from fn_twilio.lib.settings import load_settings
from fn_twilio.lib.twilio_client import build_client
from sandbox.twilio_emulator import ACCOUNT_SID, AUTH_TOKEN, SENDER

T0 = datetime(2026, 3, 1, 12, 0, 0, tzinfo=timezone.utc)     # the original message's timestamp
ALICE, BOB, CAROL = "+353861234567", "+14155552345", "+447700900123"
MG = "MG" + "0" * 32
TEXT = "Incident 2095 needs you"


def msg(to, *, at=T0 + timedelta(seconds=5), body=TEXT, from_=SENDER, sent=None, status="queued",
        direction="outbound-api", mss=None, sid=None):
    """A listed message as the SDK gives it; ``sent`` None: still queued (no date_sent)."""
    sid = sid or f"SM{abs(hash((to, at, body, from_))) % 10**32:032d}"
    return SimpleNamespace(sid=sid, to=to, from_=from_, body=body, date_created=at, date_sent=sent,
                           status=status, direction=direction, messaging_service_sid=mss, num_segments="1")


class FakePage(list):
    def __init__(self, client, items, index, size, filters):
        super().__init__(items[index:index + size])
        self._client, self._items, self._filters = client, items, filters
        self._index, self._size = index, size
        self.next_page_url = "next" if index + size < len(items) else None

    def next_page(self):
        if not self.next_page_url:
            return None
        self._client.requests.append(self._filters)
        return FakePage(self._client, self._items, self._index + self._size, self._size, self._filters)


class FakeClient:
    """messages.page(from_=, page_size=) over a log sorted newest first, counting requests."""

    def __init__(self, log, fail=None):
        self.log = sorted(log, key=lambda m: m.date_sent or m.date_created, reverse=True)
        self.fail = fail
        self.requests = []
        self.messages = self

    def page(self, from_=None, page_size=50):
        self.requests.append({"from_": from_})
        if self.fail is not None:
            raise self.fail
        items = [m for m in self.log if from_ is None or m.from_ == from_]
        return FakePage(self, items, 0, page_size, {"from_": from_})


def history(count, start=T0 - timedelta(days=30)):
    """Old traffic from the sender: ``count`` messages before the window."""
    return [msg(f"+1415555{n % 10000:04d}", at=start + timedelta(seconds=n),
                sent=start + timedelta(seconds=n), status="delivered", body=f"old {n}") for n in range(count)]


REDELIVERED = Delivery(redelivered=True, original=T0)


@pytest.mark.parametrize("headers, expected", [
    ({}, Delivery(False, None)),
    ({"redelivered": "true", "timestamp": "1772366400000"}, Delivery(True, T0)),
    ({"redelivered": "TRUE", "timestamp": " 1772366400000 "}, Delivery(True, T0)),
    ({"redelivered": "false", "timestamp": "1772366400000"}, Delivery(False, T0)),
    ({"redelivered": "true", "timestamp": "soon"}, Delivery(True, None)),
    ({"redelivered": "true"}, Delivery(True, None)),
])
def test_delivery_from_frame_headers(headers, expected):
    assert Delivery.from_headers(headers) == expected


CASES = [
    # (name, log, wanted recipients, already-sent recipients, requests)
    ("sent to two of three, still queued", [msg(ALICE), msg(BOB)], [ALICE, BOB, CAROL], [ALICE, BOB], 1),
    ("delivered ones count too", [msg(ALICE, sent=T0 + timedelta(seconds=9), status="delivered")],
     [ALICE, BOB], [ALICE], 1),
    ("another text is not this send", [msg(ALICE, body="something else")], [ALICE], [], 1),
    ("another sender is not this send", [msg(ALICE, from_="+15005550007")], [ALICE], [], 1),
    ("an inbound message is not a send", [msg(ALICE, direction="inbound")], [ALICE], [], 1),
    ("failed and canceled were not sent", [msg(ALICE, status="failed"), msg(BOB, status="canceled")],
     [ALICE, BOB], [], 1),
    ("the same text before the window is an earlier call",
     [msg(ALICE, at=T0 - timedelta(hours=1), sent=T0 - timedelta(hours=1), status="delivered")],
     [ALICE], [], 1),
    ("created just before the timestamp, within the skew", [msg(ALICE, at=T0 - timedelta(seconds=30))],
     [ALICE], [ALICE], 1),
    ("created before the window but sent inside it",
     [msg(ALICE, at=T0 - timedelta(hours=1), sent=T0 + timedelta(seconds=1))], [ALICE], [], 1),
    ("a long history stops at the window", [msg(ALICE)] + history(5000), [ALICE, BOB], [ALICE], 1),
    ("nothing sent yet, long history", history(5000), [ALICE], [], 1),
]


@pytest.mark.parametrize("name, log, recipients, already, requests", CASES, ids=[c[0] for c in CASES])
def test_scan_finds_what_the_first_run_sent(name, log, recipients, already, requests):
    client = FakeClient(log)
    settled = settled_outcomes(client, [Wanted(to, SENDER) for to in recipients], TEXT, REDELIVERED,
                               page_size=100, max_pages=3)
    assert sorted(settled) == sorted(already)
    for to in already:
        outcome = settled[to]
        assert outcome.success and outcome.already_sent and outcome.sid.startswith("SM")
        assert outcome.as_result()["already_sent"] is True
        assert outcome.phone_number == to
    assert len(client.requests) == requests


def test_a_first_delivery_reads_nothing():
    client = FakeClient([msg(ALICE)])
    assert settled_outcomes(client, [Wanted(ALICE, SENDER)], TEXT, Delivery()) == {}
    assert client.requests == []


def test_the_page_cap_leaves_the_unfound_unverified_and_unsent():
    """More traffic inside the window than the cap allows: found ones are reported, the others are
    'may have sent' failures (never sent twice), and no more than max_pages requests are made."""
    busy = [msg(f"+1202555{n:04d}", at=T0 + timedelta(seconds=1 + n / 1000), body=f"other call {n}")
            for n in range(1000)]
    client = FakeClient([msg(ALICE, at=T0 + timedelta(seconds=3))] + busy)
    settled = settled_outcomes(client, [Wanted(ALICE, SENDER), Wanted(BOB, SENDER)], TEXT, REDELIVERED,
                               page_size=100, max_pages=3)
    assert settled[ALICE].already_sent
    assert not settled[BOB].success and settled[BOB].may_have_sent and not settled[BOB].already_sent
    assert "longer than 3 pages of 100" in settled[BOB].error_message
    assert len(client.requests) == 3


@pytest.mark.parametrize("delivery, fail, reason", [
    (Delivery(True, None), None, "no original timestamp"),
    (REDELIVERED, RuntimeError("boom"), "could not be read"),
])
def test_what_cannot_be_checked_is_not_sent_again(delivery, fail, reason):
    client = FakeClient([], fail=fail)
    settled = settled_outcomes(client, [Wanted(ALICE, SENDER), Wanted(BOB, SENDER)], TEXT, delivery)
    assert sorted(settled) == sorted([ALICE, BOB])
    for outcome in settled.values():
        assert not outcome.success and outcome.may_have_sent and reason in outcome.error_message


def test_one_scan_per_sender_address():
    """WhatsApp recipients are sent from whatsapp:<sender>: their own list; a Messaging Service
    send (no From yet while accepted) is matched on the service SID."""
    wa = "whatsapp:" + BOB
    log = [msg(ALICE), msg(wa, from_="whatsapp:" + SENDER), msg(CAROL, from_=None, mss=MG)]
    client = FakeClient(log)
    settled = settled_outcomes(client, [Wanted(ALICE, SENDER), Wanted(wa, "whatsapp:" + SENDER),
                                        Wanted(CAROL, None, MG)], TEXT, REDELIVERED)
    assert sorted(settled) == sorted([ALICE, wa, CAROL])
    assert sorted(r["from_"] or "" for r in client.requests) == ["", SENDER, "whatsapp:" + SENDER]


def test_settled_recipients_are_reported_by_the_send_job_without_a_request():
    settled = settled_outcomes(FakeClient([msg(ALICE, sid="SM" + "1" * 32)]), [Wanted(ALICE, SENDER)], TEXT,
                               REDELIVERED)

    class NoRequests:
        def get(self):
            raise AssertionError("a settled recipient must not be sent to")

        def close(self):
            pass

    settings = load_settings({"twilio_account_sid": ACCOUNT_SID, "twilio_auth_token": AUTH_TOKEN,
                              "twilio_src_address": SENDER})
    outcomes = SendJob(settings, parse_recipients(ALICE), TEXT, client_source=NoRequests(),
                       already_sent=settled).run()
    assert [(o.sid, o.already_sent) for o in outcomes] == [("SM" + "1" * 32, True)]


def test_against_the_emulator_over_http(twilio):
    """The real SDK lists the emulator's log: two of three sent since the timestamp (still queued),
    the same text to the third an hour before, under 2,000 old messages; one request."""
    now = datetime.now(timezone.utc)
    twilio.seed_history(2000, start=now - timedelta(days=2), step=timedelta(seconds=30))
    twilio.seed_history(1, to=CAROL, body=TEXT, start=now - timedelta(hours=1))   # an earlier call
    settings = load_settings({"twilio_account_sid": ACCOUNT_SID, "twilio_auth_token": AUTH_TOKEN,
                              "twilio_src_address": SENDER, "twilio_base_url": twilio.base_url,
                              "timeout": "5"})
    client = build_client(settings)
    try:
        original = datetime.now(timezone.utc)
        sids = {to: client.messages.create(to=to, from_=SENDER, body=TEXT).sid for to in (ALICE, BOB)}
        twilio.clear_requests()
        settled = settled_for_send(settings, [ALICE, BOB, CAROL], TEXT, Delivery(True, original), client)
    finally:
        client.http_client.close()
    assert {to: o.sid for to, o in settled.items()} == sids
    assert all(o.already_sent and o.status == "queued" for o in settled.values())
    lists = [r for r in twilio.requests if r.method == "GET"]
    assert len(lists) == 1 and "From=" in lists[0].url and "DateSent" not in lists[0].url


# -- a redelivered call with a random code keeps its first run's code (contract §13.3) -----------------
def _settings():
    return load_settings({"twilio_account_sid": ACCOUNT_SID, "twilio_auth_token": AUTH_TOKEN,
                          "twilio_src_address": SENDER})


def _asking(code):
    return f"{TEXT} Reply ACK {code} to acknowledge."


@pytest.mark.parametrize("log, code", [
    ([msg(ALICE, body=_asking(4821))], "4821"),                                   # the first run's code
    ([msg(BOB, body=_asking(4821), at=T0 + timedelta(seconds=2)),
      msg(ALICE, body=_asking(1111), at=T0 + timedelta(seconds=9))], "4821"),     # the oldest since the call
    ([msg(ALICE, body=_asking(4821), at=T0 - timedelta(minutes=10))], None),      # before the call
    ([msg(CAROL, body=_asking(4821))], None),                                     # not one of the recipients
    ([msg(ALICE, body="Other text Reply ACK 4821 to acknowledge.")], None),      # another message
    ([msg(ALICE, body=TEXT)], None),                                              # asked for nothing
    ([], None),                                                                   # the first run sent nothing
])
def test_first_run_code(log, code):
    from fn_twilio.lib.reconcile import first_run_code
    client = FakeClient(log)
    found = first_run_code(_settings(), [ALICE, BOB], Delivery(redelivered=True, original=T0), _asking,
                           client=client)
    assert found == code


def test_first_run_code_is_not_looked_up_on_a_first_delivery():
    from fn_twilio.lib.reconcile import first_run_code
    client = FakeClient([msg(ALICE, body=_asking(4821))])
    assert first_run_code(_settings(), [ALICE], Delivery(), _asking, client=client) is None
    assert client.requests == []


def test_first_run_code_says_when_the_log_cannot_be_read():
    from twilio.base.exceptions import TwilioRestException

    from fn_twilio.lib.reconcile import LogUnreadable, first_run_code
    client = FakeClient([], fail=TwilioRestException(500, "uri", "boom"))
    with pytest.raises(LogUnreadable, match="outbound log could not be read"):
        first_run_code(_settings(), [ALICE], Delivery(redelivered=True, original=T0), _asking, client=client)


# -- ... also when its first run's text went out in a digest of the storm limit (contract §15) ---------
def _digest(*texts_and_codes):
    from fn_twilio.lib.storm import DigestLine, build_digests
    lines = [DigestLine.for_text(text, code=code, asks=True) for text, code in texts_and_codes]
    return build_digests(lines)[0].body


@pytest.mark.parametrize("log, code", [
    ([msg(ALICE, body=_digest(("Other call Reply ACK 1234 to acknowledge.", "1234"),
                              (_asking(4821), "4821")))], "4821"),                 # its line in a digest
    ([msg(BOB, body=_digest((_asking(4821), "4821"), ("Other", "77")), at=T0 + timedelta(seconds=2)),
      msg(ALICE, body=_asking(1111), at=T0 + timedelta(seconds=9))], "4821"),     # the oldest, digest or not
    ([msg(ALICE, body=_digest(("Other call Reply ACK 1234 to acknowledge.", "1234"),
                              ("Another", "5678")))], None),                       # other calls' lines only
    ([msg(ALICE, body=_digest((_asking(4821), "4821"), ("Other", "77")),
          at=T0 - timedelta(minutes=10))], None),                                  # before the call
])
def test_first_run_code_recognises_a_digest_carrying_the_first_runs_text(log, code):
    from fn_twilio.lib.reconcile import first_run_code
    from fn_twilio.lib.storm import DigestLine
    found = first_run_code(_settings(), [ALICE, BOB], Delivery(redelivered=True, original=T0), _asking,
                           client=FakeClient(log), line_for=DigestLine.rendered_for(_asking))
    assert found == code


def test_without_the_line_a_digest_gives_no_code():
    from fn_twilio.lib.reconcile import first_run_code
    log = [msg(ALICE, body=_digest((_asking(4821), "4821"), ("Other", "77")))]
    assert first_run_code(_settings(), [ALICE], Delivery(redelivered=True, original=T0), _asking,
                          client=FakeClient(log)) is None
