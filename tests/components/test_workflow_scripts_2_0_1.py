"""Workflows written for 2.0.x keep working against this app (contract §8).

The scripts are test fixtures (tests/fixtures_2_0_1/*.py) doing what fn_twilio 2.0.1's workflow scripts do,
as upgrade-2.0.1.md describes them in words; they run in sandbox.scripting's SOAR-like engine around the
real functions inside resilient-circuits, sending to the Twilio emulator. Receive workflows call the 2.0.x
function name ``twilio_get_responses``, as 2.0.1's did. The rows they write must stay correct: the message
SID (SM…) in Msg Id, epoch milliseconds in Msg Created, and a note when something failed.
"""
import os

from sandbox.scripting import run_script
from sandbox.twilio_emulator import SENDER
from tests.conftest import call_function
from tests.fixtures_2_0_1 import HERE as FIXTURES

INCIDENT = {"id": 2095, "name": "Phishing campaign", "severity_code": "High"}
ALICE = "+353861234567"


def fixture_script(name):
    return os.path.join(FIXTURES, name + ".py")


def fire(circuits_app, pre, function, post, *, rule_properties=None, row=None):
    """One 2.0.x workflow: the fixture pre-processing script, the real function, the fixture post script."""
    before = run_script(fixture_script(pre), incident=INCIDENT, rule_properties=rule_properties, row=row)
    call = call_function(circuits_app, function, before.inputs)
    assert call.error is None, call.error
    after = run_script(fixture_script(post), incident=INCIDENT, results=call.result)
    return before, call, after


class TestWorkflowsWrittenFor2_0_x:
    APP_SETTINGS = {}

    def test_send_rows_carry_the_message_sid_and_epoch_ms(self, circuits_app, twilio):
        pre, call, post = fire(circuits_app, "send_pre", "twilio_send_sms", "send_post", rule_properties={
            "twilio_sms_destination": f"{ALICE}, 12345", "twilio_sms_message": "Bridge now"})
        assert pre.inputs == {"twilio_sms_destination": f"{ALICE}, 12345",
                              "twilio_sms_message": "Bridge now"}
        sent, invalid = [cells for _, cells in post.rows]
        [message] = [m for m in twilio.messages if m["to"] == ALICE]
        assert sent["message_id"] == message["sid"] and sent["message_id"].startswith("SM")
        assert isinstance(sent["date_created"], int) and sent["date_created"] > 1_700_000_000_000
        assert sent["date_created"] == call.result["twilio_status"][0]["date_created_ts"]
        assert sent["status"] == "queued" and sent["phone_number"] == ALICE
        # 2.0.1 had no status on failure ("Failed" came from the script); this app says why
        assert invalid["status"] == "invalid" and invalid["message_id"] is None
        assert len(post.notes) == 2
        assert "failed" in post.notes[1]["text"] and "12345" in post.notes[1]["text"]

    def test_send_without_message_builds_the_2_0_1_default_text(self, circuits_app, twilio):
        _, call, post = fire(circuits_app, "send_pre", "twilio_send_sms", "send_post",
                             rule_properties={"twilio_sms_destination": ALICE})
        text = "An incident Phishing campaign (2095) with High priority may require your attention"
        assert call.result["inputs"]["twilio_sms_message"] == text
        assert post.rows[0][1]["msg_body"] == text

    def test_the_2_0_1_documentation_example_destination(self, circuits_app, twilio):
        """2.0.1's own example sends to 1234,353834463164 and reports +353834463164 sent."""
        _, call, post = fire(circuits_app, "send_pre", "twilio_send_sms", "send_post", rule_properties={
            "twilio_sms_destination": "1234,353834463164", "twilio_sms_message": "Test"})
        entries = {e["phone_number"]: e for e in call.result["twilio_status"]}
        assert entries["+353834463164"]["success"] is True
        assert entries["1234"]["status"] == "invalid"
        assert [m["to"] for m in twilio.messages] == ["+353834463164"]

    def test_receive_from_a_row_via_twilio_get_responses(self, circuits_app, twilio):
        _, _, sent = fire(circuits_app, "send_pre", "twilio_send_sms", "send_post",
                          rule_properties={"twilio_sms_destination": ALICE, "twilio_sms_message": "Ack?"})
        row = sent.rows[0][1]
        reply = twilio.inject_inbound(from_=ALICE, to=SENDER, body="ACK")
        pre, call, post = fire(circuits_app, "receive_row_pre", "twilio_get_responses", "receive_post",
                               row=row)
        assert pre.inputs == {"twilio_phone_number": ALICE, "twilio_date_sent_ts": row["date_created"]}
        [written] = [cells for _, cells in post.rows]
        assert written["message_id"] == reply["sid"] and written["message_id"].startswith("SM")
        assert isinstance(written["date_created"], int) and written["date_created"] >= row["date_created"]
        assert written["msg_body"] == "ACK" and written["status"] == "received"
        assert not post.notes

    def test_receive_from_the_rule_with_no_reply_gives_the_2_0_1_note(self, circuits_app, twilio):
        _, call, post = fire(circuits_app, "receive_rule_pre", "twilio_get_responses", "receive_post",
                             rule_properties={"twilio_sms_destination": ALICE, "twilio_wait_timeout": "0s",
                                              "twilio_after_date_ts": 1772366400000})
        assert call.result["success"] is False
        assert not post.rows
        [note] = post.notes
        assert note["text"] == ("Twilio Received Messages failed: Timeout waiting for responses for phone "
                                "number: +353861234567 since 2026-03-01 12:00:00+00:00")
