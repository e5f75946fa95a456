"""Fault injection, latency, concurrency, the /_emulator control API and the CLI of the Twilio emulator."""
import json
import os
import signal
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone
from pathlib import Path

import pytest
import requests
from twilio.base.exceptions import TwilioException, TwilioRestException

from sandbox.twilio_emulator import (ACCOUNT_SID, SENDER, DeliverySchedule, RemoteEmulator,
                                     TwilioEmulator)

USER = "+353861234567"
REPO_ROOT = Path(__file__).resolve().parents[2]


def send(client, to=USER, body="x"):
    return client.messages.create(to=to, from_=SENDER, body=body)


# --- fault kinds as the SDK sees them ----------------------------------------------------------

@pytest.mark.parametrize("status,code,retry_after", [
    (429, None, 2), (429, None, None), (500, None, None), (503, 20503, 1), (400, 21611, None),
])
def test_status_fault(emu, client, status, code, retry_after):
    emu.inject_fault("status", status=status, code=code, retry_after=retry_after)
    with pytest.raises(TwilioRestException) as exc:
        send(client)
    expected_code = code or {429: 20429, 500: 20500}[status]
    assert exc.value.status == status and exc.value.code == expected_code
    rec = emu.requests[-1]
    assert rec.fault == "status" and rec.status == status
    body = rec.json()
    assert set(body) == {"code", "message", "more_info", "status"} and body["status"] == status
    assert rec.response_headers.get("Retry-After") == (None if retry_after is None else str(retry_after))
    assert emu.messages == []
    assert send(client).status == "queued"  # times=1: the next request is handled normally


def test_html_fault(emu, client):
    emu.inject_fault("html")
    with pytest.raises(TwilioRestException) as exc:
        send(client)
    assert exc.value.status == 502
    assert emu.requests[-1].response_headers["Content-Type"].startswith("text/html")
    assert emu.messages == []


def test_garbage_fault(emu, client):
    emu.inject_fault("garbage")
    with pytest.raises(ValueError):  # json.JSONDecodeError from the SDK's json.loads
        send(client)
    assert emu.requests[-1].status == 201 and emu.requests[-1].fault == "garbage"
    assert emu.messages == []


def test_empty_fault_on_create_gives_an_empty_instance(emu, client):
    # twilio 9.13.0 _parse_create returns {} for an empty 2xx body: a MessageInstance whose fields are
    # all None.
    emu.inject_fault("empty")
    msg = send(client)
    assert msg.sid is None and msg.status is None
    assert emu.requests[-1].status == 200 and emu.messages == []


@pytest.mark.parametrize("kind", ["garbage", "empty"])
def test_unparseable_list_fault(emu, client, kind):
    emu.inject_fault(kind, method="GET")
    with pytest.raises(ValueError):
        client.messages.list(limit=5)
    assert emu.requests[-1].fault == kind


def test_drop_fault_creates_nothing(emu, client):
    emu.inject_fault("drop")
    with pytest.raises(requests.exceptions.ConnectionError):
        send(client)
    rec = emu.requests[-1]
    assert rec.fault == "drop" and rec.status is None and rec.finished is not None
    assert emu.messages == []


def test_commit_then_drop_creates_the_message(emu, client):
    emu.inject_fault("commit_then_drop")
    with pytest.raises(requests.exceptions.ConnectionError):
        send(client, body="ambiguous")
    assert [m["body"] for m in emu.messages] == ["ambiguous"]
    # the outbound log shows it (newest first) to a listing by recipient and sender ...
    found = client.messages.list(to=USER, from_=SENDER, limit=20)
    assert [m.body for m in found] == ["ambiguous"]
    # ... but not to a DateSent filter while it is queued: its date_sent is still null, as on Twilio
    today = datetime.now(timezone.utc).date()
    assert client.messages.list(to=USER, from_=SENDER, date_sent_after=today) == []


def test_commit_then_status_creates_the_message_and_answers_a_server_error(emu, client):
    """A 5xx that still made the message, as Twilio may answer: the outbound log shows it."""
    from twilio.base.exceptions import TwilioRestException
    emu.inject_fault("commit_then_status", status=500)
    with pytest.raises(TwilioRestException) as raised:
        send(client, body="made anyway")
    assert raised.value.status == 500 and raised.value.code == 20500
    assert [m["body"] for m in emu.messages] == ["made anyway"]
    assert emu.requests[-1].fault == "commit_then_status" and emu.requests[-1].status == 500


def test_delay_fault_times_out_the_client_but_still_creates(emu, make_client):
    client = make_client(timeout=0.3)
    emu.inject_fault("delay", delay=0.6)
    with pytest.raises(requests.exceptions.ReadTimeout):
        send(client)
    deadline = time.monotonic() + 3
    while not emu.messages and time.monotonic() < deadline:
        time.sleep(0.02)
    assert len(emu.messages) == 1  # the ambiguous case: Twilio went on and sent it


def test_delay_fault_without_timeout_just_slows_down(emu, client):
    emu.inject_fault("delay", delay=0.2)
    assert send(client).status == "queued"
    (record,) = emu.requests
    assert record.fault == "delay" and record.status == 201
    assert record.finished - record.started >= 0.2   # the emulator's own sleep, not the client's speed


def test_fault_on_list_raises_unable_to_fetch_page(emu, client):
    emu.inject_fault("status", method="GET", status=500)
    with pytest.raises(TwilioException, match="Unable to fetch page"):
        client.messages.list(limit=5)


def test_fault_matching_by_to_and_times(emu, client):
    bad = "+353869999999"
    emu.inject_fault("status", status=500, match_to=bad, times=2)
    assert send(client).status == "queued"
    for _ in range(2):
        with pytest.raises(TwilioRestException):
            send(client, to=bad)
    assert send(client, to=bad).status == "queued"
    assert emu.faults == []


def test_fault_forever_until_cleared(emu, client):
    emu.inject_fault("status", status=429, times=None)
    for _ in range(3):
        with pytest.raises(TwilioRestException):
            send(client)
    emu.clear_faults()
    assert send(client).status == "queued"


def test_fault_path_filter(emu, client):
    emu.inject_fault("status", status=500, method="GET", path_contains="/IncomingPhoneNumbers.json")
    assert send(client).status == "queued"
    with pytest.raises(TwilioException):
        client.incoming_phone_numbers.list()


def test_unknown_fault_kind_rejected(emu):
    with pytest.raises(ValueError):
        emu.inject_fault("explode")


# --- latency and concurrency -------------------------------------------------------------------

def test_latency_is_per_request_and_not_serialised(emu, make_client):
    emu.latency = 0.25
    send(make_client())
    (first,) = emu.requests
    assert first.finished - first.started >= 0.25   # every request waits the latency
    emu.clear_requests()
    clients = [make_client() for _ in range(8)]
    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(send, clients))
    assert all(r.status == "queued" for r in results)
    # 8 requests in parallel, not one after another: the latency windows overlap
    records = emu.requests
    assert len(records) == 8
    most_at_once = max(sum(1 for o in records if o.started <= r.started < o.finished) for r in records)
    assert most_at_once >= 2, [(r.started, r.finished) for r in records]
    assert all(r.duration >= 0.25 for r in emu.requests)


def test_many_concurrent_requests(emu, make_client):
    local = threading.local()

    def one(i):
        if not hasattr(local, "client"):
            local.client = make_client()
        if i % 5 == 0:
            return len(local.client.messages.list(limit=10, page_size=10))
        return send(local.client, body=f"m{i}").sid

    with ThreadPoolExecutor(16) as pool:
        results = list(pool.map(one, range(200)))
    sids = [r for r in results if isinstance(r, str)]
    assert len(set(sids)) == 160 and len(emu.messages) == 160
    assert len(emu.requests) == 200 and all(r.status in (200, 201) for r in emu.requests)


# --- control API over HTTP ---------------------------------------------------------------------

def test_control_api_through_remote_client(emu, client):
    remote = RemoteEmulator(emu.base_url)
    assert remote.health()["account_sid"] == ACCOUNT_SID
    when = datetime(2024, 1, 2, 3, 4, 5, tzinfo=timezone.utc)
    reply = remote.inject_inbound(USER, SENDER, "ACK", date_sent=when)
    assert reply["direction"] == "inbound" and reply["date_sent"] == "Tue, 02 Jan 2024 03:04:05 +0000"
    assert [m["sid"] for m in remote.messages] == [reply["sid"]]

    remote.inject_fault("status", status=429, retry_after=1)
    with pytest.raises(TwilioRestException) as exc:
        send(client)
    assert exc.value.status == 429
    log = remote.requests
    assert log[-1]["fault"] == "status" and log[-1]["status"] == 429
    assert "To=%2B353861234567" in log[-1]["body"]

    sid = send(client).sid
    assert remote.advance_statuses(steps=1) == 1
    assert remote.set_status(sid, "undelivered", 30003)["error_code"] == 30003

    remote.inject_fault("status", status=500, times=None)
    remote.clear_faults()
    assert send(client).status == "queued"

    remote.latency = 0.05
    assert remote.latency == 0.05 and emu.latency == 0.05

    assert len(remote.seed_history(5, from_=USER, to=SENDER, direction="inbound")) == 5
    remote.add_number("+15005550013")
    remote.opt_out("+15005550013", USER)
    with pytest.raises(TwilioRestException) as exc:
        client.messages.create(to=USER, from_="+15005550013", body="x")
    assert exc.value.code == 21610
    remote.disable_geo(44)
    remote.add_landline("+353870000000")
    with pytest.raises(TwilioRestException) as exc:
        send(client, to="+353870000000")
    assert exc.value.code == 21614

    remote.reset()
    assert remote.messages == [] and remote.requests == [] and emu.latency == 0.0


def test_control_api_errors(emu):
    r = requests.post(emu.base_url + "/_emulator/nothing", json={}, timeout=5)
    assert r.status_code == 404
    r = requests.post(emu.base_url + "/_emulator/inbound", data=b"{not json", timeout=5)
    assert r.status_code == 400 and "error" in r.json()
    r = requests.post(emu.base_url + "/_emulator/faults", json={"kind": "nope"}, timeout=5)
    assert r.status_code == 400
    assert emu.requests == []  # control calls are not in the API request log


# --- CLI ---------------------------------------------------------------------------------------

def test_cli_prints_base_url_and_stops_on_sigterm():
    env = dict(os.environ, PYTHONPATH=str(REPO_ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    proc = subprocess.Popen([sys.executable, "-m", "sandbox.twilio_emulator", "--port", "0",
                             "--number", SENDER, "--number", "+15005550014", "--auth-token", "b" * 32,
                             "--sent-after", "1.5"],
                            cwd=REPO_ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline().strip()
        stderr = proc.stderr.read() if proc.poll() is not None else ""
        assert line.startswith("http://127.0.0.1:"), (line, stderr)
        health = requests.get(line + "/_emulator/health", timeout=5).json()
        assert health["base_url"] == line
        r = requests.get(f"{line}/2010-04-01/Accounts/{ACCOUNT_SID}/IncomingPhoneNumbers.json",
                         auth=(ACCOUNT_SID, "b" * 32), timeout=5)
        assert {n["phone_number"] for n in r.json()["incoming_phone_numbers"]} == {SENDER, "+15005550014"}
        assert RemoteEmulator(line).delivery_schedule == DeliverySchedule(sent_after=1.5, delivered_after=0)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=5) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_stopped_emulator_refuses_connections():
    emu = TwilioEmulator().start()
    url = emu.base_url
    session = requests.Session()
    assert session.get(url + "/_emulator/health", timeout=5).ok  # leaves a keep-alive connection open
    emu.stop()
    with pytest.raises(requests.exceptions.ConnectionError):
        session.get(url + "/_emulator/health", timeout=5)
    assert json.dumps(emu.messages) == "[]"
