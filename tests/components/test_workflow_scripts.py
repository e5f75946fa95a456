"""The three example workflows, as SOAR runs them.

Each runs pre-processing script -> function -> post-processing script.

The scripts are the real files from customizations/scripts (the ones export.res embeds), run by
sandbox.scripting's SOAR-like engine; the function in between is the real one, inside
resilient-circuits, sending to the Twilio emulator. The rows and notes checked are what SOAR
would write into the incident.
"""
import threading

import pytest

from sandbox.scripting import run_script, script_path
from sandbox.twilio_emulator import SENDER
from tests.conftest import call_function
from tests.soar_mock import FnTwilioSoarMock

INCIDENT = {"id": 2095, "name": "Phishing campaign", "severity_code": "High"}
ALICE = "+353861234567"


def fire(circuits_app, workflow, function, *, rule_properties=None, row=None):
    """Run one workflow; returns (pre-processing run, function call, post-processing run)."""
    pre = run_script(script_path(workflow, "pre"), incident=INCIDENT, rule_properties=rule_properties,
                     row=row)
    call = call_function(circuits_app, function, pre.inputs)
    assert call.error is None, call.error
    post = run_script(script_path(workflow, "post"), incident=INCIDENT, results=call.result)
    return pre, call, post


class TestExampleWorkflows:
    APP_SETTINGS = {}

    def test_send_writes_a_row_and_a_note_per_recipient(self, circuits_app, twilio):
        pre, call, post = fire(circuits_app, "example_twilio_send_sms", "twilio_send_sms", rule_properties={
            "twilio_sms_destination": f"{ALICE}, 12345, +15005550004", "twilio_sms_message": "Bridge <now>"})
        assert pre.inputs["incident_id"] == 2095
        entries = call.result["twilio_status"]
        rows = [values for table, values in post.rows]
        assert {table for table, _ in post.rows} == {"twilio_sms_log"}
        assert [r["phone_number"] for r in rows] == [ALICE, "12345", "+15005550004"]
        sent, invalid, opted_out = rows
        assert sent["status"] == "queued"
        assert sent["message_id"] == entries[0]["sid"] and sent["message_id"].startswith("SM")
        assert sent["date_created"] == entries[0]["date_created_ts"]
        assert sent["direction"] == "outbound-api" and sent["msg_body"] == "Bridge <now>"
        assert invalid["status"] == "Failed" and "12345" in invalid["msg_body"]
        assert opted_out["status"] == "Opted out" and opted_out["msg_body"].startswith("Error 21610:")
        assert len(post.notes) == 3
        assert "Twilio SMS sent" in post.notes[0]["text"] and "Bridge &lt;now&gt;" in post.notes[0]["text"]
        assert "Unable to send" in post.notes[1]["text"]

    def test_send_without_message_uses_the_incident_default(self, circuits_app, twilio):
        _, call, post = fire(circuits_app, "example_twilio_send_sms", "twilio_send_sms",
                             rule_properties={"twilio_sms_destination": ALICE})
        text = "An incident Phishing campaign (2095) with High priority may require your attention"
        assert call.result["inputs"]["twilio_sms_message"] == text
        assert post.rows[0][1]["msg_body"] == text

    def test_receive_example_with_a_reply(self, circuits_app, twilio):
        reply = twilio.inject_inbound(from_=ALICE, to=SENDER, body="ACK, joining")
        _, call, post = fire(circuits_app, "example_twilio_receive_messages", "twilio_receive_messages",
                             rule_properties={"twilio_sms_destination": ALICE, "twilio_after_date_ts": None,
                                              "twilio_wait_timeout": "0s"})
        (row,) = [values for _, values in post.rows]
        assert row["message_id"] == reply["sid"] and row["direction"] == "inbound"
        assert row["msg_body"] == "ACK, joining" and row["status"] == "received"
        assert row["date_created"] == call.result["content"][0]["date_created_ts"]
        assert not post.notes

    def test_receive_example_timeout_gives_a_note(self, circuits_app, twilio):
        _, call, post = fire(circuits_app, "example_twilio_receive_messages", "twilio_receive_messages",
                             rule_properties={"twilio_sms_destination": ALICE,
                                              "twilio_after_date_ts": 1772366400000,
                                              "twilio_wait_timeout": "0s"})
        assert not post.rows
        (note,) = post.notes
        assert ("Timeout waiting for responses for phone number: +353861234567 "
                "since 2026-03-01 12:00:00+00:00") in note["text"]

    def test_get_responses_from_a_sent_row(self, circuits_app, twilio):
        _, _, sent = fire(circuits_app, "example_twilio_send_sms", "twilio_send_sms",
                          rule_properties={"twilio_sms_destination": ALICE, "twilio_sms_message": "Ack?"})
        sent_row = sent.rows[0][1]
        twilio.inject_inbound(from_=ALICE, to=SENDER, body="ACK")
        _, call, post = fire(circuits_app, "twilio_get_responses", "twilio_receive_messages", row=sent_row)
        assert call.result["inputs"]["twilio_date_sent_ts"] == sent_row["date_created"]
        (reply_row,) = [values for _, values in post.rows]
        assert reply_row["msg_body"] == "ACK" and reply_row["phone_number"] == ALICE
        assert reply_row["date_created"] >= sent_row["date_created"]

    def test_get_responses_ignores_replies_before_the_sent_message(self, circuits_app, twilio):
        from datetime import datetime, timedelta, timezone
        twilio.inject_inbound(from_=ALICE, to=SENDER, body="old reply",
                              date_sent=datetime.now(timezone.utc) - timedelta(hours=1))
        _, _, sent = fire(circuits_app, "example_twilio_send_sms", "twilio_send_sms",
                          rule_properties={"twilio_sms_destination": ALICE, "twilio_sms_message": "Ack?"})
        FnTwilioSoarMock.workflows[999] = {"status": "running"}
        timer = threading.Timer(0.5, lambda: FnTwilioSoarMock.workflows.__setitem__(
            999, {"status": "terminated", "terminate_reason": "closed by analyst"}))
        timer.start()
        try:
            _, call, post = fire(circuits_app, "twilio_get_responses", "twilio_receive_messages",
                                 row=sent.rows[0][1])
        finally:
            timer.cancel()
            FnTwilioSoarMock.workflows.clear()
        assert call.result["content"] == []
        assert not post.rows
        assert "Workflow was terminated: closed by analyst" in post.notes[0]["text"]

    @pytest.mark.parametrize("workflow", ["example_twilio_send_sms", "example_twilio_receive_messages",
                                          "twilio_get_responses"])
    def test_scripts_are_python3_files_that_compile(self, workflow):
        for kind in ("pre", "post"):
            with open(script_path(workflow, kind), encoding="utf-8") as handle:
                compile(handle.read(), f"{workflow}_{kind}", "exec")
