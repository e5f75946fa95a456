"""twilio_page ("Twilio: Page Until Acknowledged") through resilient-circuits, against the Twilio
emulator: the result shape, status messages, escalation on a decline, termination, and every bad input
refused with one message naming it and nothing sent. The escalation logic itself is proven in
tests/lib/test_paging.py."""
import threading
import time

import pytest

from sandbox.twilio_emulator import SENDER
from tests.conftest import call_function
from tests.soar_mock import FnTwilioSoarMock

ALICE, BOB = "+353861234567", "+14155552345"
FN = "twilio_page"


def page(circuits_app, tiers, **inputs):
    inputs = {"twilio_page_tiers": tiers, "incident_id": 2095, **inputs}
    return call_function(circuits_app, FN, inputs, timeout=60)


def answer_when_paged(twilio, number, body, timeout=20.0):
    """A thread that waits until ``number`` has been paged, then sends ``body`` from it."""
    def run():
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and not twilio.outbound_messages(to=number):
            time.sleep(0.02)
        twilio.inject_inbound(from_=number, to=SENDER, body=body)
    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def creates(twilio):
    return [r for r in twilio.requests if r.method == "POST" and r.path.endswith("/Messages.json")]


class TestPage:
    APP_SETTINGS = {"max_wait_timeout": "1h"}

    def test_a_decline_escalates_and_an_acknowledgement_ends_the_page(self, circuits_app, twilio):
        answer_when_paged(twilio, ALICE, "no")
        answer_when_paged(twilio, BOB, "ACK 2095")
        call = page(circuits_app, f"{ALICE}; {BOB}", twilio_escalate_after="10m",
                    twilio_sms_message="Incident 2095 needs you.")
        result = call.result
        assert result["success"] is True and result["reason"] is None
        content = result["content"]
        assert content["acknowledged"] is True and content["acknowledged_by"] == BOB and content["tier"] == 2
        assert content["reply_code"] == "2095"
        assert [(p["phone_number"], p["tier"]) for p in content["pages"]] == [(ALICE, 1), (BOB, 2)]
        assert all(p["message_body"] == "Incident 2095 needs you. Reply ACK 2095 to acknowledge."
                   for p in content["pages"])
        assert [(r["phone_number"], r["intent"]) for r in content["replies"]] == \
            [(ALICE, "decline"), (BOB, "acknowledge")]
        assert [e["event"] for e in content["timeline"]] == \
            ["paged", "reply", "declined", "escalated", "paged", "reply", "acknowledged"]
        assert call.statuses[0] == "Tier 1: paged 1 person, waiting up to 10m for an acknowledgement"
        assert call.statuses[-1].startswith("Acknowledged by +14155****45 after ")

    def test_an_undelivered_text_takes_its_person_out_and_the_next_tier_is_paged(self, circuits_app, twilio):
        twilio.deliver_after(sent_after=0.0, delivered_after=0.1)
        twilio.set_delivery_outcome(ALICE, "undelivered", error_code=30003)
        answer_when_paged(twilio, BOB, "ack")
        call = page(circuits_app, f"{ALICE}; {BOB}", twilio_escalate_after="10m", twilio_sms_message="Hi")
        content = call.result["content"]
        assert content["acknowledged_by"] == BOB and content["tier"] == 2
        failed = [e for e in content["timeline"] if e["event"] == "send_failed"]
        assert [(e["phone_number"], e["tier"]) for e in failed] == [(ALICE, 1)]
        assert failed[0]["detail"].startswith("the text was not delivered: undelivered (30003: ")
        assert [e["event"] for e in content["timeline"]][:4] == ["paged", "send_failed", "escalated", "paged"]

    def test_nobody_acknowledges(self, circuits_app, twilio):
        call = page(circuits_app, f"{ALICE}, {BOB}", twilio_escalate_after="1s", twilio_sms_message="Hi")
        assert call.result["success"] is False
        assert call.result["reason"] == "Nobody acknowledged: paged 2 people in 1 tiers"
        assert call.result["content"]["acknowledged_by"] is None

    def test_the_default_text_names_the_incident(self, circuits_app, twilio):
        call = page(circuits_app, ALICE, twilio_escalate_after="1s")
        assert call.result["content"]["pages"][0]["message_body"] == (
            "An incident Phishing campaign (2095) with High priority may require your attention "
            "Reply ACK 2095 to acknowledge.")

    def test_a_terminated_workflow_stops_the_page(self, circuits_app, twilio):
        FnTwilioSoarMock.workflows[999] = {"status": "running"}
        timer = threading.Timer(0.8, lambda: FnTwilioSoarMock.workflows.__setitem__(
            999, {"status": "terminated", "terminate_reason": "closed by analyst"}))
        timer.start()
        try:
            call = page(circuits_app, f"{ALICE}; {BOB}", twilio_escalate_after="30s", twilio_sms_message="Hi")
        finally:
            timer.cancel()
            FnTwilioSoarMock.workflows.clear()
        assert call.result["reason"] == "Workflow was terminated: closed by analyst"
        assert [r.form["To"] for r in creates(twilio)] == [ALICE]

    @pytest.mark.parametrize("inputs, words", [
        ({"twilio_page_tiers": ""}, "twilio_page_tiers is empty"),
        ({"twilio_page_tiers": " ; "}, "twilio_page_tiers is empty"),
        ({"twilio_page_tiers": f"{ALICE}; 12345"}, "twilio_page_tiers: tier 2 has no valid phone number"),
        ({"twilio_escalate_after": "soon"}, "twilio_escalate_after"),
        ({"twilio_escalate_after": "0s"}, "twilio_escalate_after"),
        ({"twilio_escalate_after": "2h"}, "twilio_escalate_after"),          # max_wait_timeout is 1h
        ({"twilio_sms_message": "x" * 1590}, "twilio_sms_message"),         # no room for the request
        ({"incident_id": "abc"}, "incident_id"),
    ])
    def test_bad_inputs_are_refused_and_nothing_is_sent(self, circuits_app, twilio, inputs, words):
        values = {"twilio_sms_message": "Hi", "twilio_escalate_after": "1m", **inputs}
        call = page(circuits_app, values.pop("twilio_page_tiers", ALICE), **values)
        assert call.result is None and words in call.error, call.error
        assert creates(twilio) == []
