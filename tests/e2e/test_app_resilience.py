"""The real ``resilient-circuits run`` when SOAR's broker connection drops, and what its log file holds.

One sandbox for the module, the app logging at DEBUG and authenticating to Twilio with an API key
while the auth token is configured too (so both Twilio secrets are in the app.config it reads).
"""
import json
import time

import pytest

from e2e_helpers import requires_app, requires_export, wait_until
from sandbox.soar.sandbox import API_KEY_ID, API_KEY_SECRET as SOAR_API_SECRET, Sandbox
from sandbox.twilio_emulator import API_KEY_SECRET, API_KEY_SID, AUTH_TOKEN, SENDER

pytestmark = [pytest.mark.e2e, requires_app, requires_export]

ACTIONS = "actions.201.fn_twilio"
ALICE = "+353861234567"
BOB = "+14155552345"
CAROL, DAN = "+14155552346", "+14155552347"


@pytest.fixture(scope="module")
def sandbox():
    with Sandbox(preload="app", extra_functions=["twilio_get_responses"], loglevel="DEBUG",
                 app_settings={"poll_interval": "1s", "timeout": "3", "twilio_api_key_sid": API_KEY_SID,
                               "twilio_api_key_secret": API_KEY_SECRET,
                               # the fault drill texts the same two people a dozen times in a row: the
                               # storm limit as high as Twilio allows, so no drill waits for a digest
                               "max_texts_per_person": "30", "person_window": "30s"}) as sandbox:
        sandbox.rest.add_incident(2095, "Suspicious login from 203.0.113.7", "High")
        sandbox.run_app(timeout=60)
        yield sandbox


@pytest.fixture(scope="module")
def calls():
    """Every FunctionCall of the module, for the secrets check at the end."""
    return []


def test_calls_in_flight_when_the_connection_drops_complete_after_reconnect(sandbox, calls):
    """A receive call waiting, a page waiting for its tier 1 and a send call inside Twilio when the broker
    drops the app's connection, and a call sent while the app is away: after resilient-circuits reconnects
    (it waits 20 s), the broker delivers the unacknowledged messages again to the same process, which does
    not run them again (resilient-circuits skips a message it is still processing); every result reaches
    SOAR once and every SMS went once."""
    soar = sandbox.driver()
    subscriptions = len(sandbox.broker.frames("SUBSCRIBE", ACTIONS))
    waiting = soar.start_function("twilio_receive_messages", {"twilio_phone_number": ALICE,
                                                              "twilio_wait_timeout": "90s"})
    paging = soar.start_function("twilio_page", {"twilio_page_tiers": f"{CAROL}; {DAN}", "incident_id": 2095,
                                                 "twilio_escalate_after": "25s", "twilio_sms_message": "Hi"})
    wait_until(lambda: sandbox.twilio.outbound_messages(to=CAROL), what="tier 1 of the page")
    time.sleep(1.0)
    sandbox.twilio.latency = 1.5
    sending = soar.start_function("twilio_send_sms", {"twilio_sms_destination": BOB,
                                                      "twilio_sms_message": "sent across a broker hiccup"})
    time.sleep(0.5)                                   # the create is inside Twilio now
    sandbox.broker.drop_connections(login=API_KEY_ID)
    sandbox.twilio.inject_inbound(from_=ALICE, to=SENDER, body="replied while SOAR was away")
    queued = soar.start_function("twilio_send_sms", {"twilio_sms_destination": ALICE,
                                                     "twilio_sms_message": "queued while the app was away"})
    time.sleep(0.5)
    assert [b for _, b in sandbox.broker.pending(ACTIONS)], "the new call waits on the queue"
    sandbox.broker.wait_for_frame("SUBSCRIBE", ACTIONS, count=subscriptions + 1, timeout=45)
    sandbox.twilio.latency = 0.0
    for call in (sending, waiting, queued):
        call.wait(90)
    assert not paging.completed, "the page still runs after the reconnect"
    wait_until(lambda: sandbox.twilio.outbound_messages(to=DAN), timeout=30, what="tier 2 of the page")
    sandbox.twilio.inject_inbound(from_=DAN, to=SENDER, body="ack")
    paging.wait(30)
    calls.extend([waiting, sending, queued, paging])
    assert paging.results["content"]["acknowledged_by"] == DAN
    assert [m["to"] for m in sandbox.twilio.outbound_messages() if m["to"] in (CAROL, DAN)] == [CAROL, DAN]
    assert "already in progress" in sandbox.app.log_text(), "a message came again while it still ran"
    assert queued.error is None and queued.results["success"] is True
    assert "STOMP connected" in sandbox.app.log_text()
    assert sending.error is None and sending.results["success"] is True
    assert waiting.error is None and waiting.results["success"] is True
    assert [m["message_body"] for m in waiting.results["content"]] == ["replied while SOAR was away"]
    creates = [r for r in sandbox.twilio.requests if r.method == "POST" and r.form.get("To") == BOB]
    assert len(creates) == 1, "the SMS was sent once"


def test_broker_restart_while_a_receive_call_waits(sandbox, calls):
    """The broker goes away for a second and comes back on the same port: the waiting call's result
    is delivered once resilient-circuits has reconnected."""
    soar = sandbox.driver()
    waiting = soar.start_function("twilio_receive_messages", {"twilio_phone_number": BOB,
                                                              "twilio_wait_timeout": "90s"})
    time.sleep(1.5)
    sandbox.broker.restart(down_seconds=1.0)
    sandbox.twilio.inject_inbound(from_=BOB, to=SENDER, body="yes, after the restart")
    waiting.wait(90)
    calls.append(waiting)
    assert waiting.error is None and waiting.results["success"] is True
    assert [m["message_body"] for m in waiting.results["content"]] == ["yes, after the restart"]


FAULTS = [
    dict(kind="status", status=500), dict(kind="status", status=503),
    dict(kind="status", status=429, times=2), dict(kind="status", status=401, code=20003),
    dict(kind="html"), dict(kind="garbage"), dict(kind="empty"), dict(kind="drop"),
    dict(kind="commit_then_drop"), dict(kind="delay", delay=4.0),
]


def test_the_process_survives_every_fault(sandbox, calls):
    """Each Twilio fault ends in a reported recipient; afterwards the same process serves a normal call."""
    soar = sandbox.driver()
    pid = sandbox.app.pid
    for fault in FAULTS:
        sandbox.twilio.clear_faults()
        sandbox.twilio.inject_fault(match_to=BOB, **{"times": 1, **fault})
        call = soar.call_function("twilio_send_sms", {"twilio_sms_destination": f"{BOB}, {ALICE}",
                                                      "twilio_sms_message": "fault drill"}, timeout=120)
        calls.append(call)
        assert call.error is None, (fault, call.error)
        by_number = {e["phone_number"]: e for e in call.results["twilio_status"]}
        assert by_number[ALICE]["success"] is True, fault
        assert set(by_number) == {ALICE, BOB}, fault
    sandbox.twilio.clear_faults()
    ok = soar.call_function("twilio_send_sms",
                            {"twilio_sms_destination": BOB, "twilio_sms_message": "all clear"})
    calls.append(ok)
    assert ok.results["success"] is True
    assert sandbox.app.running and sandbox.app.pid == pid


def test_example_rules_after_reconnect(sandbox, calls):
    soar = sandbox.driver()
    sent = soar.fire_rule("Example: Send Twilio SMS", incident_id=2095,
                          properties={"twilio_sms_destination": f"{ALICE}, 12345"})
    sandbox.twilio.inject_inbound(from_=ALICE, to=SENDER, body="ACK")
    received = soar.fire_rule("Example: Twilio Receive Messages", incident_id=2095, properties={
        "twilio_sms_destination": ALICE,
        "twilio_after_date_ts": sent.rows_of("twilio_sms_log")[0]["date_created"],
        "twilio_wait_timeout": "10s"})
    calls.extend([sent.call, received.call])
    assert received.error is None, received.error
    assert [r["msg_body"] for r in received.rows_of("twilio_sms_log")] == ["ACK"]
    bad = soar.call_function("twilio_receive_messages",
                             {"twilio_phone_number": ALICE, "twilio_wait_timeout": "5y"})
    calls.append(bad)
    assert "twilio_wait_timeout" in bad.error


def test_no_secret_in_the_log_file_or_any_reply(sandbox, calls):
    assert calls, "the scenarios above ran"
    config = sandbox.app.config_text()
    for secret in (AUTH_TOKEN, API_KEY_SECRET, SOAR_API_SECRET):
        assert secret in config                     # the app was given every secret ...
    log = sandbox.app.log_text() + sandbox.app.console_text()
    assert "DEBUG" in log
    replies = json.dumps([c.replies for c in calls] + [c.results for c in calls] + [c.error for c in calls])
    for secret in (AUTH_TOKEN, API_KEY_SECRET, SOAR_API_SECRET):
        assert secret not in log                    # ... and never wrote or returned one
        assert secret not in replies
