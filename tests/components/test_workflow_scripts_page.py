"""The example workflow "Example: Twilio Page On-Call" as SOAR runs it: the real pre-processing script,
twilio_page inside resilient-circuits against the Twilio emulator, the real post-processing script;
the rows and the note it writes."""
import threading

from sandbox.scripting import run_script, script_path
from sandbox.twilio_emulator import SENDER
from tests.components.test_page import answer_when_paged
from tests.conftest import call_function

INCIDENT = {"id": 2095, "name": "Phishing campaign", "severity_code": "High"}
ALICE, BOB, CAROL = "+353861234567", "+14155552345", "+14155552346"
WORKFLOW = "example_twilio_page_on_call"


def fire(circuits_app, rule_properties):
    pre = run_script(script_path(WORKFLOW, "pre"), incident=INCIDENT, rule_properties=rule_properties)
    call = call_function(circuits_app, "twilio_page", pre.inputs, timeout=60)
    assert call.error is None, call.error
    post = run_script(script_path(WORKFLOW, "post"), incident=INCIDENT, results=call.result)
    return pre, call, post


class TestPageWorkflow:
    APP_SETTINGS = {}

    def test_rows_per_page_and_reply_and_a_note(self, circuits_app, twilio):
        answer_when_paged(twilio, ALICE, "STOP")
        answer_when_paged(twilio, BOB, "no")
        answer_when_paged(twilio, CAROL, "ack")
        tiers = f"{ALICE}, {BOB}; {CAROL}"
        pre, call, post = fire(circuits_app, {"twilio_page_tiers": tiers, "twilio_escalate_after": "5m",
                                              "twilio_sms_message": "Bridge now"})
        assert pre.inputs == {"twilio_page_tiers": tiers, "twilio_escalate_after": "5m",
                              "twilio_sms_message": "Bridge now", "incident_id": 2095}
        rows = [values for _, values in post.rows]
        pages, replies = rows[:3], rows[3:]
        assert [(r["phone_number"], r["status"]) for r in pages] == \
            [(ALICE, "queued"), (BOB, "queued"), (CAROL, "queued")]
        assert {r["direction"] for r in pages} == {"outbound-api"}
        assert all(r["msg_body"] == "Bridge now Reply ACK 2095 to acknowledge." for r in pages)
        assert sorted((r["phone_number"], r["status"]) for r in replies) == \
            sorted([(ALICE, "Opted out"), (BOB, "Declined"), (CAROL, "Acknowledged")])
        assert all(r["message_id"].startswith("SM") and r["date_created"] for r in rows)
        (note,) = post.notes
        assert "Twilio page acknowledged" in note["text"]
        assert CAROL in note["text"] and "tier 2" in note["text"]

    def test_nobody_acknowledged_note_and_an_opted_out_page_row(self, circuits_app, twilio):
        twilio.opt_out(SENDER, ALICE)
        _, call, post = fire(circuits_app, {"twilio_page_tiers": ALICE, "twilio_escalate_after": "1s",
                                            "twilio_sms_message": None})   # the default text
        (row,) = [values for _, values in post.rows]
        assert row["status"] == "Opted out" and row["msg_body"].startswith("Error 21610:")
        (note,) = post.notes
        assert "Twilio page not acknowledged" in note["text"] and "Nobody acknowledged" in note["text"]



class TestPageWorkflowWithCalls:
    """The example workflow with voice: entries: a row per call with what it came to, and a note that
    says who acknowledged by voice."""

    APP_SETTINGS = {}

    @staticmethod
    def _flows():
        from fn_twilio.lib.voice import forget_flows
        forget_flows()   # the emulator is emptied between tests: the flow found earlier is gone

    def test_a_row_per_call_and_a_note_naming_the_voice_acknowledgement(self, circuits_app, twilio):
        self._flows()
        twilio.script_calls(ALICE, "no-answer")
        twilio.script_calls(BOB, "answer", press="2")
        twilio.script_calls(CAROL, "answer", press="1")
        tiers = f"voice:{ALICE}, voice:{BOB}; voice:{CAROL}"
        pre, call, post = fire(circuits_app, {"twilio_page_tiers": tiers, "twilio_escalate_after": "5m",
                                              "twilio_sms_message": "Bridge now"})
        assert pre.inputs["twilio_page_tiers"] == tiers
        rows = [values for _, values in post.rows]
        assert [(r["phone_number"], r["status"], r["direction"]) for r in rows] == [
            (ALICE, "Call not answered", "outbound-call"), (BOB, "Call declined", "outbound-call"),
            (CAROL, "Call acknowledged", "outbound-call")]
        assert [r["msg_body"] for r in rows] == ["the call was not answered", "pressed 2: declined",
                                                 "pressed 1: acknowledged"]
        assert all(r["message_id"].startswith("FN") and r["date_created"] for r in rows)
        (note,) = post.notes
        assert f"by {CAROL} by voice (pressed 1 on the call) (tier 2)" in note["text"]
        assert "3 people in 2 tiers (3 by a call)" in note["text"]

    def test_a_call_still_ringing_when_an_sms_ack_ends_the_page(self, circuits_app, twilio):
        self._flows()
        twilio.script_calls(BOB, "answer", ring=30)
        answer_when_paged(twilio, ALICE, "ACK 2095")
        _, call, post = fire(circuits_app, {"twilio_page_tiers": f"{ALICE}, voice:{BOB}",
                                            "twilio_escalate_after": "5m", "twilio_sms_message": "Bridge"})
        rows = {r["phone_number"]: r for _, r in post.rows if r["direction"] != "inbound"}
        assert rows[BOB]["status"] == "Call ended by the page" and rows[ALICE]["status"] == "queued"
        (note,) = post.notes
        assert f"by {ALICE} (tier 1)" in note["text"] and "by voice" not in note["text"]
        (execution,) = twilio.executions
        assert execution["status"] == "ended"


class TestPageWorkflowInAStorm:
    """The example workflow when the page's text to a person went out in a digest (storm limit): its row
    carries the digest's SID as Msg Id (so "Update Delivery Status" follows the digest) and its text."""

    APP_SETTINGS = {"max_texts_per_person": "2", "person_window": "5s", "poll_interval": "0.2s"}

    def test_a_bundled_page_row_has_the_digests_sid(self, circuits_app, twilio):
        from tests.components.test_page_storm import digests_to, fill, finish, page, wait_until

        fill(circuits_app, ALICE, 2)
        other = page(circuits_app, 2096, ALICE, escalate_after="30s")     # another incident's page, held

        def ack_the_digest():
            wait_until(lambda: digests_to(twilio, ALICE), "the digest went", timeout=30)
            twilio.inject_inbound(from_=ALICE, to=SENDER, body="ACK ALL")

        threading.Thread(target=ack_the_digest, daemon=True).start()
        _, call, post = fire(circuits_app, {"twilio_page_tiers": f"{ALICE}; {BOB}",
                                            "twilio_escalate_after": "30s",
                                            "twilio_sms_message": "Bridge now"})
        (digest,) = digests_to(twilio, ALICE)
        (entry,) = call.result["content"]["pages"]
        assert entry["bundled"] is True and entry["sid"] == digest["sid"]
        rows = [values for _, values in post.rows]
        assert [(r["phone_number"], r["status"], r["direction"]) for r in rows] == [
            (ALICE, "queued", "outbound-api"), (ALICE, "Acknowledged", "inbound")]
        assert rows[0]["message_id"] == digest["sid"] and rows[0]["msg_body"] == digest["body"]
        assert "2095 Bridge now" in rows[0]["msg_body"] and "2096 Phishing wave 2096" in rows[0]["msg_body"]
        (note,) = post.notes
        assert "Twilio page acknowledged" in note["text"] and "<b>Reply code:</b> 2095" in note["text"]
        assert finish(circuits_app, other, timeout=30).result["content"]["acknowledged_by"] == ALICE
