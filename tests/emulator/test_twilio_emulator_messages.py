"""The Twilio emulator driven by the real twilio SDK: create, validation codes, auth, fetch, list,
paging, segments, status machine, numbers and account."""
import email.utils
import re
import time
from datetime import date, datetime, timedelta, timezone

import pytest
import requests
from twilio.base.exceptions import TwilioException, TwilioRestException

from sandbox.twilio_emulator import (ACCOUNT_SID, API_KEY_SECRET, API_KEY_SID, AUTH_TOKEN,
                                     MESSAGING_SERVICE_SID, SENDER, segment_count)

UTC = timezone.utc
USER = "+353861234567"
RFC2822 = re.compile(r"^[A-Z][a-z]{2}, \d{2} [A-Z][a-z]{2} \d{4} \d{2}:\d{2}:\d{2} \+0000$")


def raw_get(emu, path, auth=(ACCOUNT_SID, AUTH_TOKEN), **params):
    return requests.get(emu.base_url + path, params=params, auth=auth, timeout=5)


# --- constants ---------------------------------------------------------------------------------

def test_default_credentials_look_valid():
    assert re.fullmatch(r"AC[0-9a-f]{32}", ACCOUNT_SID)
    assert re.fullmatch(r"[0-9a-f]{32}", AUTH_TOKEN)
    assert re.fullmatch(r"SK[0-9a-f]{32}", API_KEY_SID)
    assert re.fullmatch(r"MG[0-9a-f]{32}", MESSAGING_SERVICE_SID)
    assert API_KEY_SECRET and SENDER == "+15005550006"


# --- create ------------------------------------------------------------------------------------

def test_create_returns_full_message_resource(emu, client):
    before = datetime.now(UTC).replace(microsecond=0)
    msg = client.messages.create(to=USER, from_=SENDER, body="Incident 42 needs you")
    raw = emu.requests[-1].json()
    assert emu.requests[-1].status == 201
    assert re.fullmatch(r"SM[0-9a-f]{32}", msg.sid)
    assert raw["account_sid"] == ACCOUNT_SID and raw["api_version"] == "2010-04-01"
    assert raw["body"] == "Incident 42 needs you"
    assert raw["direction"] == "outbound-api" and raw["status"] == "queued"
    assert raw["from"] == SENDER and raw["to"] == USER
    assert raw["messaging_service_sid"] is None
    assert raw["num_media"] == "0" and raw["num_segments"] == "1"
    assert raw["price"] is None and raw["price_unit"] == "USD"
    assert raw["error_code"] is None and raw["error_message"] is None
    assert RFC2822.match(raw["date_created"]) and RFC2822.match(raw["date_updated"])
    assert raw["date_sent"] is None
    assert raw["uri"] == f"/2010-04-01/Accounts/{ACCOUNT_SID}/Messages/{msg.sid}.json"
    assert set(raw["subresource_uris"]) == {"media", "feedback"}
    assert msg.date_created >= before  # the SDK parses the RFC 2822 date
    assert emu.messages[-1]["sid"] == msg.sid


def test_response_headers(emu, client):
    client.messages.create(to=USER, from_=SENDER, body="hi")
    headers = emu.requests[-1].response_headers
    assert headers["Content-Type"] == "application/json; charset=utf-8"
    assert re.fullmatch(r"RQ[0-9a-f]{32}", headers["Twilio-Request-Id"])


def test_create_with_messaging_service_is_accepted_without_sender(emu, client):
    msg = client.messages.create(to=USER, messaging_service_sid=MESSAGING_SERVICE_SID, body="hi")
    assert msg.status == "accepted" and msg.from_ is None
    assert msg.messaging_service_sid == MESSAGING_SERVICE_SID and msg.num_segments == "0"
    emu.advance_statuses(steps=1)
    fetched = client.messages(msg.sid).fetch()
    assert fetched.status == "queued" and fetched.from_ == SENDER and fetched.num_segments == "1"


def test_create_accepts_whatsapp_addresses(client):
    msg = client.messages.create(to="whatsapp:" + USER, from_="whatsapp:" + SENDER, body="hi")
    assert msg.to == "whatsapp:" + USER and msg.status == "queued"


def test_create_records_form_fields(emu, client):
    client.messages.create(to=USER, from_=SENDER, body="hi", media_url=["https://a/1.png", "https://a/2.png"])
    rec = emu.requests[-1]
    assert rec.method == "POST" and rec.path.endswith("/Messages.json")
    assert rec.form["To"] == USER and rec.form["MediaUrl"] == ["https://a/1.png", "https://a/2.png"]
    assert rec.content_type == "application/x-www-form-urlencoded" and b"To=%2B353861234567" in rec.body
    assert rec.header("user-agent").startswith("twilio-python/")
    assert rec.auth_user == ACCOUNT_SID and rec.fault is None
    assert rec.started <= rec.finished
    assert emu.messages[-1]["num_media"] == "2" and emu.messages[-1]["sid"].startswith("MM")


def _setup_geo(emu):
    emu.disable_geo("44")


def _setup_opt_out(emu):
    emu.opt_out(SENDER, USER)


def _setup_landline(emu):
    emu.add_landline(USER)


ERROR_CASES = [
    # (id, create kwargs, setup, code)
    ("no-to", dict(to="", from_=SENDER, body="x"), None, 21604),
    ("no-sender", dict(to=USER, body="x"), None, 21603),
    ("no-body", dict(to=USER, from_=SENDER), None, 21602),
    ("no-body-service", dict(to=USER, messaging_service_sid=MESSAGING_SERVICE_SID), None, 21619),
    ("body-1601", dict(to=USER, from_=SENDER, body="x" * 1601), None, 21617),
    ("to-not-e164", dict(to="0861234567", from_=SENDER, body="x"), None, 21211),
    ("to-bad-whatsapp", dict(to="whatsapp:abc", from_=SENDER, body="x"), None, 21211),
    ("to-magic-21211", dict(to="+15005550001", from_=SENDER, body="x"), None, 21211),
    ("to-magic-21612", dict(to="+15005550002", from_=SENDER, body="x"), None, 21612),
    ("to-magic-21408", dict(to="+15005550003", from_=SENDER, body="x"), None, 21408),
    ("to-magic-21610", dict(to="+15005550004", from_=SENDER, body="x"), None, 21610),
    ("to-magic-21614", dict(to="+15005550009", from_=SENDER, body="x"), None, 21614),
    ("from-malformed", dict(to=USER, from_="555-1234", body="x"), None, 21212),
    ("from-magic-21212", dict(to=USER, from_="+15005550001", body="x"), None, 21212),
    ("from-not-owned", dict(to=USER, from_="+14155550100", body="x"), None, 21606),
    ("from-magic-21606", dict(to=USER, from_="+15005550007", body="x"), None, 21606),
    ("from-magic-21611", dict(to=USER, from_="+15005550008", body="x"), None, 21611),
    ("unknown-service", dict(to=USER, messaging_service_sid="MG" + "0" * 32, body="x"), None, 21701),
    ("geo-disabled", dict(to="+447911123456", from_=SENDER, body="x"), _setup_geo, 21408),
    ("opted-out", dict(to=USER, from_=SENDER, body="x"), _setup_opt_out, 21610),
    ("opted-out-service", dict(to=USER, messaging_service_sid=MESSAGING_SERVICE_SID, body="x"),
     _setup_opt_out, 21610),
    ("landline", dict(to=USER, from_=SENDER, body="x"), _setup_landline, 21614),
]


@pytest.mark.parametrize("kwargs,setup,code", [c[1:] for c in ERROR_CASES], ids=[c[0] for c in ERROR_CASES])
def test_create_validation_errors(emu, client, kwargs, setup, code):
    if setup:
        setup(emu)
    with pytest.raises(TwilioRestException) as exc:
        client.messages.create(**kwargs)
    assert exc.value.status == 400 and exc.value.code == code
    body = emu.requests[-1].json()
    assert body == {"code": code, "message": body["message"], "more_info": f"https://www.twilio.com/docs/errors/{code}",
                    "status": 400}
    assert body["message"] and emu.messages == []


def test_body_of_1600_chars_is_accepted(client):
    assert client.messages.create(to=USER, from_=SENDER, body="x" * 1600).num_segments == "11"


def test_stop_opts_out_and_start_opts_back_in(emu, client):
    emu.inject_inbound(from_=USER, to=SENDER, body=" stop ")
    with pytest.raises(TwilioRestException) as exc:
        client.messages.create(to=USER, from_=SENDER, body="x")
    assert exc.value.code == 21610
    emu.add_number("+15005550010")
    assert client.messages.create(to=USER, from_="+15005550010", body="x").status == "queued"  # per sender
    emu.inject_inbound(from_=USER, to=SENDER, body="START")
    assert client.messages.create(to=USER, from_=SENDER, body="x").status == "queued"


def test_add_number_allows_a_new_sender(emu, client):
    with pytest.raises(TwilioRestException):
        client.messages.create(to=USER, from_="+15005550011", body="x")
    emu.add_number("+15005550011")
    assert client.messages.create(to=USER, from_="+15005550011", body="x").from_ == "+15005550011"


# --- auth --------------------------------------------------------------------------------------

@pytest.mark.parametrize("username,password,account_sid", [
    (ACCOUNT_SID, "0" * 32, None),
    ("AC" + "1" * 32, AUTH_TOKEN, None),
    (API_KEY_SID, "wrong-secret", ACCOUNT_SID),
    (API_KEY_SID, API_KEY_SECRET, "AC" + "2" * 32),
], ids=["wrong-token", "wrong-account", "api-key-wrong-secret", "api-key-other-account"])
def test_auth_failures_are_20003(emu, make_client, username, password, account_sid):
    client = make_client(username, password, account_sid=account_sid)
    with pytest.raises(TwilioRestException) as exc:
        client.messages.create(to=USER, from_=SENDER, body="x")
    assert exc.value.status == 401 and exc.value.code == 20003
    assert emu.requests[-1].json() == {"code": 20003, "message": "Authenticate",
                                       "more_info": "https://www.twilio.com/docs/errors/20003", "status": 401}
    assert emu.messages == []


def test_api_key_auth_works(emu, make_client):
    client = make_client(API_KEY_SID, API_KEY_SECRET, account_sid=ACCOUNT_SID)
    assert client.messages.create(to=USER, from_=SENDER, body="x").status == "queued"
    assert emu.requests[-1].auth_user == API_KEY_SID


def test_missing_auth_is_401(emu):
    resp = raw_get(emu, f"/2010-04-01/Accounts/{ACCOUNT_SID}/Messages.json", auth=None)
    assert resp.status_code == 401 and resp.json()["code"] == 20003
    assert resp.headers["WWW-Authenticate"].startswith("Basic")


def test_account_path_mismatch_with_valid_credentials_is_401(emu):
    resp = raw_get(emu, f"/2010-04-01/Accounts/AC{'3' * 32}/Messages.json")
    assert resp.status_code == 401 and resp.json()["code"] == 20003


def test_unknown_path_is_404(emu):
    resp = raw_get(emu, "/2010-04-01/Nothing.json")
    assert resp.status_code == 404 and resp.json()["code"] == 20404


# --- fetch, numbers, account -------------------------------------------------------------------

def test_fetch_and_404(emu, client):
    sid = client.messages.create(to=USER, from_=SENDER, body="x").sid
    assert client.messages(sid).fetch().body == "x"
    with pytest.raises(TwilioRestException) as exc:
        client.messages("SM" + "0" * 32).fetch()
    assert exc.value.status == 404 and exc.value.code == 20404


def test_update_redacts_and_delete_removes(emu, client):
    sid = client.messages.create(to=USER, from_=SENDER, body="secret").sid
    assert client.messages(sid).update(body="").body == ""
    assert client.messages(sid).delete() is True
    assert emu.messages == []


def test_incoming_phone_numbers(emu, client):
    emu.add_number("+15005550012")
    numbers = client.incoming_phone_numbers.list(phone_number=SENDER)
    assert [n.phone_number for n in numbers] == [SENDER]
    n = numbers[0]
    assert re.fullmatch(r"PN[0-9a-f]{32}", n.sid) and n.account_sid == ACCOUNT_SID
    assert n.capabilities["sms"] is True
    assert client.incoming_phone_numbers.list(phone_number="+19999999999") == []
    assert {n.phone_number for n in client.incoming_phone_numbers.list()} == {SENDER, "+15005550012"}
    body = raw_get(emu, f"/2010-04-01/Accounts/{ACCOUNT_SID}/IncomingPhoneNumbers.json").json()
    assert set(body) - {"incoming_phone_numbers"} == {"first_page_uri", "next_page_uri", "previous_page_uri",
                                                      "uri", "page", "page_size", "start", "end"}


def test_account_fetch(client):
    account = client.api.v2010.accounts(ACCOUNT_SID).fetch()
    assert account.sid == ACCOUNT_SID and account.status == "active"


# --- status machine ----------------------------------------------------------------------------

def test_advance_statuses_step_by_step_then_to_the_end(emu, client):
    sid = client.messages.create(to=USER, from_=SENDER, body="x").sid
    seen = []
    for _ in range(3):
        assert emu.advance_statuses(steps=1) == 1
        seen.append(emu.message(sid)["status"])
    assert seen == ["sending", "sent", "delivered"]
    assert emu.advance_statuses() == 0
    msg = client.messages(sid).fetch()
    assert msg.date_sent is not None and msg.price.startswith("-")
    assert RFC2822.match(emu.message(sid)["date_sent"])


def test_advance_statuses_all_the_way(emu, client):
    sids = [client.messages.create(to=USER, from_=SENDER, body="x").sid for _ in range(3)]
    emu.inject_inbound(from_=USER, to=SENDER, body="reply")
    assert emu.advance_statuses() == 3
    assert [emu.message(s)["status"] for s in sids] == ["delivered"] * 3


def test_set_status_with_error(emu, client):
    sid = client.messages.create(to=USER, from_=SENDER, body="x").sid
    emu.set_status(sid, "undelivered", 30007)
    msg = client.messages(sid).fetch()
    assert msg.status == "undelivered" and msg.error_code == 30007 and msg.error_message
    with pytest.raises(KeyError):
        emu.set_status("SM" + "0" * 32, "sent")


# --- segments ----------------------------------------------------------------------------------

SEGMENT_CASES = [
    ("gsm-short", "Hello, world!", 1),
    ("gsm-160", "a" * 160, 1),
    ("gsm-161", "a" * 161, 2),
    ("gsm-306", "a" * 306, 2),
    ("gsm-307", "a" * 307, 3),
    ("gsm-euro", "Price: 5€", 1),
    ("gsm-80-euro", "€" * 80, 1),
    ("gsm-81-euro", "€" * 81, 2),
    ("gsm-bracket-160-septets", "[" + "a" * 158, 1),
    ("gsm-bracket-161-septets", "[" + "a" * 159, 2),
    ("gsm-accents", "Ça été où? ÄÖÜ ñ", 1),
    ("ucs2-70", "ж" * 70, 1),
    ("ucs2-71", "ж" * 71, 2),
    ("ucs2-134", "ж" * 134, 2),
    ("ucs2-135", "ж" * 135, 3),
    ("ucs2-emoji", "Thanks 👍", 1),
    ("ucs2-35-emoji", "😀" * 35, 1),
    ("ucs2-36-emoji", "😀" * 36, 2),
    ("ucs2-lowercase-c-cedilla", "ç" * 71, 2),
]


@pytest.mark.parametrize("body,segments", [c[1:] for c in SEGMENT_CASES], ids=[c[0] for c in SEGMENT_CASES])
def test_num_segments(client, body, segments):
    assert segment_count(body) == segments
    assert client.messages.create(to=USER, from_=SENDER, body=body).num_segments == str(segments)


# --- list, filters, paging ---------------------------------------------------------------------

def test_list_newest_first_with_to_and_from_filters(emu, client):
    emu.seed_history(3, from_=USER, to=SENDER, direction="inbound")
    emu.seed_history(2, from_=SENDER, to=USER)
    emu.seed_history(2, from_="+447911123456", to=SENDER, direction="inbound")
    replies = client.messages.list(from_=USER, to=SENDER)
    assert len(replies) == 3 and {m.direction for m in replies} == {"inbound"}
    assert len(client.messages.list(to=SENDER)) == 5
    everything = client.messages.list()
    assert len(everything) == 7
    dates = [m.date_sent for m in everything]
    assert dates == sorted(dates, reverse=True)


def test_inject_inbound_shape(emu, client):
    when = datetime(2024, 5, 1, 12, 30, 15, tzinfo=UTC)
    msg = emu.inject_inbound(from_=USER, to=SENDER, body="ACK", date_sent=when)
    assert msg["direction"] == "inbound" and msg["status"] == "received"
    assert msg["from"] == USER and msg["to"] == SENDER and msg["body"] == "ACK"
    assert msg["date_sent"] == "Wed, 01 May 2024 12:30:15 +0000"
    assert msg["messaging_service_sid"] == MESSAGING_SERVICE_SID  # SENDER is in the service's pool
    assert client.messages(msg["sid"]).fetch().date_sent == when


@pytest.fixture
def two_days(emu):
    """48 inbound replies, one an hour, 2024-03-01T00:00Z .. 2024-03-02T23:00Z."""
    emu.seed_history(48, from_=USER, to=SENDER, direction="inbound",
                     start=datetime(2024, 3, 1, tzinfo=UTC), step=timedelta(hours=1))
    return emu


DATE_CASES = [
    ("date_sent-date", dict(date_sent=date(2024, 3, 1)), 24),
    ("date_sent-datetime", dict(date_sent=datetime(2024, 3, 2, 5, 0, tzinfo=UTC)), 24),
    ("after-datetime", dict(date_sent_after=datetime(2024, 3, 1, 12, tzinfo=UTC)), 36),
    ("after-date", dict(date_sent_after=date(2024, 3, 2)), 24),
    ("after-str-space", dict(date_sent_after="2024-03-01 12:00:00+00:00"), 36),
    ("after-str-naive", dict(date_sent_after="2024-03-01 12:00:00"), 36),
    ("after-str-date", dict(date_sent_after="2024-03-02"), 24),
    ("before-datetime", dict(date_sent_before=datetime(2024, 3, 1, 5, tzinfo=UTC)), 6),
    ("before-str-date", dict(date_sent_before="2024-03-01"), 24),
    ("between", dict(date_sent_after=datetime(2024, 3, 1, 10, tzinfo=UTC),
                     date_sent_before=datetime(2024, 3, 1, 19, tzinfo=UTC)), 10),
    ("after-everything", dict(date_sent_after=datetime(2024, 3, 3, tzinfo=UTC)), 0),
]


@pytest.mark.parametrize("kwargs,expected", [c[1:] for c in DATE_CASES], ids=[c[0] for c in DATE_CASES])
def test_date_sent_filters(two_days, client, kwargs, expected):
    assert len(client.messages.list(page_size=1000, **kwargs)) == expected


def test_date_sent_after_goes_out_as_DateSent_gt(two_days, client):
    client.messages.list(date_sent_after=datetime(2024, 3, 1, 12, tzinfo=UTC), limit=1)
    rec = two_days.requests[-1]
    assert "DateSent%3E=2024-03-01T12%3A00%3A00Z" in rec.query_string
    assert rec.query["DateSent>"] == ["2024-03-01T12:00:00Z"]


@pytest.mark.parametrize("params", [{"PageSize": "0"}, {"PageSize": "1001"}, {"PageSize": "abc"},
                                    {"Page": "-1"}, {"DateSent>": "not-a-date"}, {"PageToken": "garbage"}])
def test_list_bad_parameters_are_400(emu, params):
    resp = raw_get(emu, f"/2010-04-01/Accounts/{ACCOUNT_SID}/Messages.json", **params)
    body = resp.json()
    assert resp.status_code == 400 and body["status"] == 400 and body["code"] and body["message"]


def test_list_bad_page_size_raises_in_sdk(client):
    with pytest.raises(TwilioException, match="Unable to fetch page"):
        client.messages.list(page_size=5000, limit=5000)


def test_list_envelope_and_paging(emu, client):
    emu.seed_history(120, from_=USER, to=SENDER, direction="inbound")
    body = raw_get(emu, f"/2010-04-01/Accounts/{ACCOUNT_SID}/Messages.json", To=SENDER, PageSize=50).json()
    assert set(body) == {"first_page_uri", "next_page_uri", "previous_page_uri", "uri", "page", "page_size",
                         "start", "end", "messages"}
    path = f"/2010-04-01/Accounts/{ACCOUNT_SID}/Messages.json"
    assert body["first_page_uri"] == f"{path}?To=%2B15005550006&PageSize=50&Page=0"
    assert body["next_page_uri"].startswith(f"{path}?To=%2B15005550006&PageSize=50&Page=1&PageToken=PA")
    assert body["previous_page_uri"] is None
    assert (body["page"], body["page_size"], body["start"], body["end"]) == (0, 50, 0, 49)

    page1 = client.messages.page(to=SENDER, page_size=50)
    page2 = page1.next_page()
    page3 = page2.next_page()
    pages = [[m.sid for m in p] for p in (page1, page2, page3)]  # a Page iterates once
    assert [len(p) for p in pages] == [50, 50, 20]
    assert page3.next_page() is None
    sids = [sid for p in pages for sid in p]
    assert len(set(sids)) == 120
    # the previous page of page 2 is page 1 again
    assert [m.sid for m in page2.previous_page()] == pages[0]
    # offset paging without a token
    body = raw_get(emu, path, PageSize=50, Page=2).json()
    assert (body["start"], body["end"], len(body["messages"]), body["next_page_uri"]) == (100, 119, 20, None)
    assert [m["sid"] for m in body["messages"]] == sids[100:]


def test_cursor_is_stable_while_messages_arrive(emu, client):
    emu.seed_history(120, from_=USER, to=SENDER, direction="inbound")
    expected = [m.sid for m in client.messages.list(to=SENDER, page_size=1000)]
    page = client.messages.page(to=SENDER, page_size=50)
    seen = [m.sid for m in page]
    while page is not None:
        for i in range(3):  # newer replies arrive between pages
            emu.inject_inbound(from_=USER, to=SENDER, body=f"late {i}")
        page = page.next_page()
        if page is not None:
            seen += [m.sid for m in page]
    assert seen == expected


def test_list_stream_with_sdk_follows_all_pages(emu, client):
    emu.seed_history(120, from_=USER, to=SENDER, direction="inbound")
    assert len({m.sid for m in client.messages.stream(to=SENDER, page_size=50)}) == 120
    assert sum(1 for r in emu.requests if r.method == "GET") == 3


def test_seed_history_is_fast(emu, client):
    t0 = time.perf_counter()
    sids = emu.seed_history(10_000, from_=USER, to=SENDER, direction="inbound")
    assert time.perf_counter() - t0 < 1.0
    assert len(sids) == 10_000 and len(set(sids)) == 10_000
    newest = client.messages.list(to=SENDER, limit=1, page_size=1)[0]
    assert newest.sid == sids[-1] and newest.date_sent < datetime.now(UTC)
    assert email.utils.parsedate_to_datetime(emu.message(sids[0])["date_sent"]) < newest.date_sent


def test_reset_clears_everything(emu, client):
    client.messages.create(to=USER, from_=SENDER, body="x")
    emu.opt_out(SENDER, "+353861111111")
    emu.inject_fault("status", status=500, times=None)
    emu.latency = 0.5
    emu.reset()
    assert emu.messages == [] and emu.requests == [] and emu.faults == [] and emu.latency == 0.0
    assert client.messages.create(to="+353861111111", from_=SENDER, body="x").status == "queued"
