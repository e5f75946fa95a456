"""Delivery status end to end: the real ``resilient-circuits run`` with fn_twilio, the sandbox SOAR and
the Twilio emulator moving messages through queued -> sent -> delivered on a schedule.

One sandbox for the module (poll_interval 1 s); the tests run in order and share its incident.
"""
import time

import pytest

from e2e_helpers import requires_app, requires_export
from fn_twilio.lib.errors import TWILIO_CODES
from sandbox.soar.driver import RuleNotAvailable
from sandbox.soar.sandbox import API_KEY_ID, Sandbox

pytestmark = [pytest.mark.e2e, requires_app, requires_export]

ACTIONS = "actions.201.fn_twilio"
LOG = "twilio_sms_log"
INCIDENT = 2095
NUMBERS = ["+353861234567", "+14155552345", "+447911123456", "+4915112345678"]
UNREACHABLE = NUMBERS[3]
SILENT = "+33612345678"     # its carrier never sends a receipt: it stays "sent"
MISSING = "SM" + "0" * 32
EXPLAINED = TWILIO_CODES[30003].explanation


@pytest.fixture(scope="module")
def sandbox():
    with Sandbox(preload="app", app_settings={"poll_interval": "1s", "timeout": "3"}) as sandbox:
        sandbox.rest.add_incident(INCIDENT, "Suspicious login from 203.0.113.7", "High")
        sandbox.twilio.deliver_after(sent_after=0.5, delivered_after=1.5)
        sandbox.twilio.set_delivery_outcome(UNREACHABLE, "undelivered", error_code=30003)
        sandbox.twilio.set_delivery_outcome(SILENT, "sent")
        sandbox.run_app(timeout=90)
        yield sandbox


@pytest.fixture(scope="module")
def sent(sandbox):
    """The rule "Example: Send Twilio SMS" to the four numbers: their rows in the SMS Activity Log."""
    run = sandbox.driver().fire_rule("Example: Send Twilio SMS", incident_id=INCIDENT, properties={
        "twilio_sms_destination": ", ".join(NUMBERS), "twilio_sms_message": "Bridge call now"})
    assert run.error is None and run.results["success"] is True
    rows = sandbox.rest.rows(INCIDENT, LOG)
    assert [r["status"] for r in rows] == ["queued"] * 4
    return rows


def test_waiting_for_four_messages_three_delivered_one_undelivered_explained(sandbox, sent):
    call = sandbox.driver().call_function("twilio_get_message_status", {
        "twilio_message_sids": ", ".join(r["message_id"] for r in sent), "twilio_wait_timeout": "60s"},
        timeout=90)
    assert call.error is None, call.error
    content = call.results["content"]
    assert [e["sid"] for e in content] == [r["message_id"] for r in sent]
    assert [e["phone_number"] for e in content] == NUMBERS
    assert [e["status"] for e in content] == ["delivered"] * 3 + ["undelivered"]
    assert all(e["final"] for e in content) and call.results["success"] is True
    assert content[3]["error_code"] == 30003 and content[3]["error_message"] == EXPLAINED
    assert all(e["date_sent_ts"] and e["price"] for e in content)
    assert call.elapsed < 60    # it ended when the last status was final, not at the end of the wait
    assert any("3 delivered, 1 undelivered" in s for s in call.statuses)


def test_the_datatable_rule_updates_each_row_in_place(sandbox, sent):
    soar = sandbox.driver()
    for row in sent:
        run = soar.fire_rule("Twilio: Update Delivery Status", incident_id=INCIDENT, row=row)
        assert run.error is None and run.rows == []
    rows = sandbox.rest.rows(INCIDENT, LOG)
    assert [r["id"] for r in rows] == [r["id"] for r in sent]        # the same rows, none added
    assert [r["status"] for r in rows] == ["delivered"] * 3 + [f"undelivered (30003: {EXPLAINED})"]
    assert [r["msg_body"] for r in rows] == [r["msg_body"] for r in sent]


def test_the_playbook_updates_its_row_and_the_rule_is_not_offered_on_a_reply(sandbox, sent):
    soar = sandbox.driver()
    row = dict(sandbox.rest.rows(INCIDENT, LOG)[0], status="queued")
    sandbox.rest.update_row(INCIDENT, LOG, row["id"], {"status": "queued"})
    run = soar.run_playbook("Twilio: Update Delivery Status (Playbook)", incident_id=INCIDENT, row=row,
                            inputs={"twilio_status_wait_timeout": "10s"})
    assert run.error is None and run.inputs["twilio_wait_timeout"] == "10s"
    assert sandbox.rest.rows(INCIDENT, LOG)[0]["status"] == "delivered"
    reply = {"status": "received", "direction": "inbound", "message_id": "SM" + "1" * 32}
    with pytest.raises(RuleNotAvailable, match="direction equals 'outbound-api'"):
        soar.fire_rule("Twilio: Update Delivery Status", incident_id=INCIDENT, row=reply)


def test_a_message_that_stays_sent_is_not_final_when_the_wait_ends(sandbox):
    soar = sandbox.driver()
    send = soar.call_function("twilio_send_sms", {"twilio_sms_destination": SILENT,
                                                  "twilio_sms_message": "no receipt will come"})
    sid = send.results["twilio_status"][0]["sid"]
    call = soar.call_function("twilio_get_message_status", {"twilio_message_sids": sid,
                                                            "twilio_wait_timeout": "4s"}, timeout=30)
    (entry,) = call.results["content"]
    assert entry["status"] == "sent" and entry["final"] is False and entry["date_sent"]
    assert call.results["success"] is True and call.elapsed >= 4
    assert any("1 not final yet" in s for s in call.statuses)


def test_an_unknown_sid_and_a_malformed_one(sandbox, sent):
    soar = sandbox.driver()
    call = soar.call_function("twilio_get_message_status", {
        "twilio_message_sids": f"{MISSING}, {sent[0]['message_id']}"})
    assert [e["status"] for e in call.results["content"]] == ["not_found", "delivered"]
    assert call.results["content"][0]["error_code"] == 20404
    assert call.results["success"] is False and MISSING in call.results["reason"]
    before = len(sandbox.twilio.requests)
    bad = soar.call_function("twilio_get_message_status", {"twilio_message_sids": "SM-not-a-sid"})
    assert bad.error is not None and "twilio_message_sids" in bad.error and "not a message SID" in bad.error
    assert len(sandbox.twilio.requests) == before


def test_a_status_call_waits_across_a_dropped_broker_connection(sandbox):
    """The call is waiting when the broker drops the app's connection; resilient-circuits reconnects
    (it waits about 20 s) and the result reaches SOAR, with the statuses final by then."""
    soar = sandbox.driver()
    sandbox.twilio.deliver_after(sent_after=1.0, delivered_after=4.0)
    try:
        send = soar.call_function("twilio_send_sms", {"twilio_sms_destination": NUMBERS[0],
                                                      "twilio_sms_message": "across a broker drop"})
    finally:
        sandbox.twilio.deliver_after(sent_after=0.5, delivered_after=1.5)
    sid = send.results["twilio_status"][0]["sid"]
    subscriptions = len(sandbox.broker.frames("SUBSCRIBE", ACTIONS))
    waiting = soar.start_function("twilio_get_message_status", {"twilio_message_sids": sid,
                                                                "twilio_wait_timeout": "90s"})
    time.sleep(1.0)
    sandbox.broker.drop_connections(login=API_KEY_ID)
    sandbox.broker.wait_for_frame("SUBSCRIBE", ACTIONS, count=subscriptions + 1, timeout=45)
    waiting.wait(90)
    assert waiting.error is None, waiting.error
    (entry,) = waiting.results["content"]
    assert entry["status"] == "delivered" and entry["final"] is True
