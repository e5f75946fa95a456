"""Paging end to end (contract §9): the real ``resilient-circuits run`` against the sandbox SOAR and
the Twilio emulator, one sandbox for the module, poll_interval 0.5 s.

Two incidents and one responder; three tiers with a decline and an acknowledgement from tier 1;
nobody acknowledging; a page terminated mid-way; a STOP; and two instances on one destination.
"""
import threading
import time

import pytest

from e2e_helpers import requires_app, requires_export
from sandbox.soar.sandbox import Sandbox

pytestmark = [pytest.mark.e2e, requires_app, requires_export]

ALICE, BOB, CAROL, DAN = "+353861234567", "+14155552345", "+14155552346", "+14155552347"
INTERVAL = 0.5


@pytest.fixture(scope="module")
def sandbox():
    with Sandbox(preload="app", app_settings={"poll_interval": f"{INTERVAL}s"}) as sandbox:
        sandbox.run_app(timeout=90)
        yield sandbox


@pytest.fixture
def soar(sandbox):
    sandbox.twilio.reset()
    return sandbox.driver()


def when_paged(twilio, number, body, *, after=0.0, timeout=30.0):
    """Send ``body`` from ``number`` once a page reached it (``after`` seconds later)."""
    def run():
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and not twilio.outbound_messages(to=number):
            time.sleep(0.05)
        time.sleep(after)
        twilio.inject_inbound(from_=number, body=body)
    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def sent_to(twilio):
    return [m["to"] for m in twilio.outbound_messages()]


def test_two_incidents_each_receive_call_gets_its_own(sandbox, soar):
    for incident in (2095, 2096):
        sent = soar.call_function("twilio_send_sms", {"twilio_sms_destination": ALICE,
                                                      "twilio_sms_message": f"Incident {incident}",
                                                      "twilio_request_ack": True, "incident_id": incident})
        assert sent.results["reply_code"] == str(incident)
    sandbox.twilio.inject_inbound(from_=ALICE, body="ACK 2095")
    sandbox.twilio.inject_inbound(from_=ALICE, body="ack")
    first = soar.call_function("twilio_receive_messages", {"twilio_phone_number": ALICE, "incident_id": 2095,
                                                           "twilio_wait_timeout": "0s"})
    second = soar.call_function("twilio_receive_messages", {"twilio_phone_number": ALICE, "incident_id": 2096,
                                                            "twilio_wait_timeout": "0s"})
    assert [(r["message_body"], r["reply_code"]) for r in first.results["content"]] == [("ACK 2095", "2095")]
    assert [(r["message_body"], r["reply_code"]) for r in second.results["content"]] == [("ack", "2096")]
    assert all(r["intent"] == "acknowledge" for r in first.results["content"] + second.results["content"])


def test_three_tiers_escalate_on_their_windows_past_a_decline(sandbox, soar):
    twilio = sandbox.twilio
    when_paged(twilio, BOB, "no")
    when_paged(twilio, DAN, "not me")
    when_paged(twilio, DAN, "ACK 2095", after=0.5)   # lets Alice's ack below come after Dan is paged
    call = soar.start_function("twilio_page", {
        "twilio_page_tiers": f"{ALICE}; {BOB}, {CAROL}; {DAN}", "twilio_escalate_after": "3s",
        "twilio_sms_message": "Incident 2095 needs you.", "incident_id": 2095})
    # tier 2 after 3 s; Bob declines, Carol says nothing: tier 3 after tier 2's window
    call.wait(60)
    content = call.results["content"]
    order = sent_to(twilio)
    assert order[0] == ALICE and sorted(order[1:3]) == sorted([BOB, CAROL]) and order[3:] == [DAN]
    assert call.results["success"] is True and content["acknowledged_by"] == DAN and content["tier"] == 3
    events = [e["event"] for e in content["timeline"]]
    assert events.count("escalated") == 2 and "declined" in events and events[-1] == "acknowledged"
    assert call.statuses[0] == "Tier 1: paged 1 person, waiting up to 3s for an acknowledgement"


def test_a_decline_pages_the_next_tier_at_once_and_a_tier_one_ack_ends_it(sandbox, soar):
    twilio = sandbox.twilio
    when_paged(twilio, BOB, "no")
    when_paged(twilio, CAROL, "DECLINE")
    when_paged(twilio, DAN, "ok", after=60)            # too late: Alice acknowledges first
    started = time.monotonic()
    call = soar.start_function("twilio_page", {
        "twilio_page_tiers": f"{ALICE}; {BOB}, {CAROL}; {DAN}", "twilio_escalate_after": "3s",
        "twilio_sms_message": "Incident 2095 needs you.", "incident_id": 2095})
    deadline = time.monotonic() + 30
    while DAN not in sent_to(twilio) and time.monotonic() < deadline:
        time.sleep(0.05)
    dan_paged = time.monotonic() - started
    twilio.inject_inbound(from_=ALICE, body="ack")
    call.wait(60)
    content = call.results["content"]
    assert dan_paged < 3 + 3, "tier 3 went out as soon as tier 2 declined, before tier 2's window ended"
    assert content["acknowledged_by"] == ALICE and content["tier"] == 1
    assert [r["intent"] for r in content["replies"]] == ["decline", "decline", "acknowledge"]


def test_nobody_acknowledges(sandbox, soar):
    call = soar.call_function("twilio_page", {"twilio_page_tiers": f"{ALICE}, {BOB}",
                                              "twilio_escalate_after": "2s", "twilio_sms_message": "Hi",
                                              "incident_id": 2095}, timeout=60)
    assert call.results["success"] is False
    assert call.results["reason"] == "Nobody acknowledged: paged 2 people in 1 tiers"


def test_terminated_mid_page_stops_within_an_interval_and_pages_no_further_tier(sandbox, soar):
    call = soar.start_function("twilio_page", {"twilio_page_tiers": f"{ALICE}; {BOB}",
                                               "twilio_escalate_after": "5s", "twilio_sms_message": "Hi",
                                               "incident_id": 2095})
    deadline = time.monotonic() + 30
    while not sent_to(sandbox.twilio) and time.monotonic() < deadline:
        time.sleep(0.05)
    sandbox.rest.terminate_workflow_instance(call.workflow_instance_id, "closed by analyst")
    terminated = time.monotonic()
    call.wait(30)
    stopped_after = call.finished - terminated
    assert call.results["reason"] == "Workflow was terminated: closed by analyst"
    assert stopped_after < INTERVAL + 1.0, stopped_after
    time.sleep(5)
    assert sent_to(sandbox.twilio) == [ALICE], "no further tier was paged"


def test_a_stop_makes_the_next_send_opted_out_and_the_page_skips_that_person(sandbox, soar):
    sandbox.twilio.inject_inbound(from_=ALICE, body="STOP")
    sent = soar.call_function("twilio_send_sms", {"twilio_sms_destination": ALICE,
                                                  "twilio_sms_message": "Hi"})
    (entry,) = sent.results["twilio_status"]
    assert entry["status"] == "opted_out" and entry["error_code"] == 21610
    when_paged(sandbox.twilio, BOB, "ack")
    call = soar.call_function("twilio_page", {"twilio_page_tiers": f"{ALICE}; {BOB}",
                                              "twilio_escalate_after": "1m", "twilio_sms_message": "Hi",
                                              "incident_id": 2095}, timeout=60)
    content = call.results["content"]
    assert content["timeline"][0]["event"] == "send_failed" and content["pages"][0]["status"] == "opted_out"
    assert content["acknowledged_by"] == BOB and content["tier"] == 2   # well before the 1m window


def test_two_instances_whichever_serves_the_receive_call(sandbox, soar):
    """A page sent through one instance, the reply read by another: nothing lives in the app."""
    sent = soar.call_function("twilio_send_sms", {"twilio_sms_destination": CAROL, "twilio_sms_message": "Hi",
                                                  "twilio_request_ack": True, "incident_id": 2097})
    second = sandbox.launcher("second-instance")
    second.start(timeout=90)
    try:
        sandbox.app.stop()                        # only the second instance serves now
        sandbox.twilio.inject_inbound(from_=CAROL, body="ack")
        got = soar.call_function("twilio_receive_messages", {
            "twilio_phone_number": CAROL, "incident_id": 2097, "twilio_wait_for": "acknowledgement",
            "twilio_wait_timeout": "30s"}, timeout=60)
    finally:
        second.stop()
        sandbox.app.start(timeout=90)
    assert sent.results["reply_code"] == "2097"
    assert got.results["success"] is True
    assert [(r["reply_code"], r["intent"]) for r in got.results["content"]] == [("2097", "acknowledge")]


@pytest.mark.parametrize("function, inputs", [
    ("twilio_receive_messages", {"twilio_phone_number": DAN, "twilio_wait_timeout": "30s"}),
    ("twilio_page", {"twilio_page_tiers": f"{DAN}; {CAROL}", "twilio_escalate_after": "20s",
                     "twilio_sms_message": "Hi", "incident_id": 2095}),
])
def test_a_canceled_playbook_stops_a_waiting_call(sandbox, soar, function, inputs):
    """A call from a playbook names playbook_instance only; an analyst canceling the run stops the wait
    too (the run read from playbooks/execution/query_paged)."""
    instance = sandbox.rest.add_playbook_instance(incident_id=2095)
    call = soar.start_function(function, inputs, playbook_instance_id=instance)
    assert call.message["workflow_instance"] is None
    time.sleep(1.0)
    sandbox.rest.cancel_playbook_instance(instance, "closed by analyst")
    terminated = time.monotonic()
    call.wait(30)
    assert call.results["reason"] == "Workflow was terminated: playbook canceled: closed by analyst"
    assert call.finished - terminated < INTERVAL + 1.0
    assert CAROL not in sent_to(sandbox.twilio)
