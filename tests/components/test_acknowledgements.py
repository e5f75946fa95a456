"""Acknowledgement requests, reply intents and codes, opt-out (contract §9.1-§9.3) through
resilient-circuits, against the Twilio emulator: twilio_send_sms with twilio_request_ack, and
twilio_receive_messages with several numbers, incident_id and twilio_wait_for."""
import re
from datetime import datetime, timedelta, timezone

import pytest

from fn_twilio.lib.errors import OPTED_OUT_MESSAGE
from sandbox.twilio_emulator import SENDER
from tests.conftest import call_function

ALICE = "+353861234567"
BOB = "+14155552345"


def ago(seconds):
    return datetime.now(timezone.utc) - timedelta(seconds=seconds)


def send(circuits_app, destination, message="Incident needs you.", **inputs):
    return call_function(circuits_app, "twilio_send_sms",
                         {"twilio_sms_destination": destination, "twilio_sms_message": message, **inputs})


def receive(circuits_app, number, wait="0s", **inputs):
    return call_function(circuits_app, "twilio_receive_messages",
                         {"twilio_phone_number": number, "twilio_wait_timeout": wait, **inputs})


def creates(twilio):
    return [r for r in twilio.requests if r.method == "POST" and r.path.endswith("/Messages.json")]


class TestRequestAck:
    APP_SETTINGS = {}

    def test_the_incident_id_is_the_code(self, circuits_app, twilio):
        call = send(circuits_app, ALICE, twilio_request_ack=True, incident_id=2095)
        assert call.result["reply_code"] == "2095"
        (entry,) = call.result["twilio_status"]
        assert entry["message_body"] == "Incident needs you. Reply ACK 2095 to acknowledge."
        assert call.result["inputs"]["twilio_sms_message"] == entry["message_body"]

    def test_without_an_incident_a_random_four_digit_code(self, circuits_app, twilio):
        call = send(circuits_app, ALICE, twilio_request_ack=True)
        code = call.result["reply_code"]
        assert re.fullmatch(r"[1-9][0-9]{3}", code)
        assert call.result["twilio_status"][0]["message_body"].endswith(f" Reply ACK {code} to acknowledge.")

    def test_no_request_no_code(self, circuits_app, twilio):
        call = send(circuits_app, ALICE, twilio_request_ack=False, incident_id=2095)
        assert call.result["reply_code"] is None
        assert call.result["twilio_status"][0]["message_body"] == "Incident needs you."

    def test_the_request_counts_toward_1600_characters(self, circuits_app, twilio):
        call = send(circuits_app, ALICE, message="x" * 1580, twilio_request_ack=True, incident_id=2095)
        assert call.result is None and "twilio_request_ack" in call.error and "1600" in call.error
        assert creates(twilio) == []

    def test_the_request_counts_toward_the_segments(self, circuits_app, twilio):
        call = send(circuits_app, ALICE, message="x" * 150, twilio_request_ack=True, incident_id=2095)
        assert call.result["twilio_status"][0]["num_segments"] == 2

    def test_a_stop_makes_the_next_send_opted_out(self, circuits_app, twilio):
        twilio.inject_inbound(from_=ALICE, to=SENDER, body="STOP")
        call = send(circuits_app, f"{ALICE}, {BOB}")
        alice, bob = call.result["twilio_status"]
        assert alice["status"] == "opted_out" and alice["success"] is False
        assert alice["error_code"] == 21610 and OPTED_OUT_MESSAGE in alice["error_message"]
        assert bob["success"] is True


class TestReplyCodes:
    APP_SETTINGS = {}

    def test_two_incidents_each_gets_its_own(self, circuits_app, twilio):
        send(circuits_app, ALICE, twilio_request_ack=True, incident_id=2095)
        send(circuits_app, ALICE, twilio_request_ack=True, incident_id=2096)
        twilio.inject_inbound(from_=ALICE, to=SENDER, body="ACK 2095", date_sent=ago(0))
        twilio.inject_inbound(from_=ALICE, to=SENDER, body="ack", date_sent=ago(-1))
        first = receive(circuits_app, ALICE, incident_id=2095).result
        second = receive(circuits_app, ALICE, incident_id=2096).result
        every = receive(circuits_app, ALICE).result
        assert [(e["message_body"], e["intent"], e["reply_code"]) for e in first["content"]] == \
            [("ACK 2095", "acknowledge", "2095")]
        assert [(e["message_body"], e["reply_code"]) for e in second["content"]] == [("ack", "2096")]
        assert [e["reply_code"] for e in every["content"]] == ["2095", "2096"]

    @pytest.mark.parametrize("body, intent", [("STOP", "opt_out"), ("YES", "opt_in"), ("help", "help"),
                                              ("no", "decline"), ("on my way", "other")])
    def test_every_reply_has_an_intent(self, circuits_app, twilio, body, intent):
        twilio.inject_inbound(from_=ALICE, to=SENDER, body=body)
        (entry,) = receive(circuits_app, ALICE).result["content"]
        assert entry["intent"] == intent and entry["reply_code"] is None   # nothing was sent to Alice

    def test_replies_from_several_numbers(self, circuits_app, twilio):
        twilio.inject_inbound(from_=ALICE, to=SENDER, body="from alice")
        twilio.inject_inbound(from_=BOB, to=SENDER, body="from bob")
        result = receive(circuits_app, f"{ALICE}, {BOB}").result
        assert sorted(e["phone_number"] for e in result["content"]) == [BOB, ALICE]

    def test_wait_for_acknowledgement_ends_on_one(self, circuits_app, twilio):
        twilio.inject_inbound(from_=ALICE, to=SENDER, body="no", date_sent=ago(60))
        twilio.inject_inbound(from_=BOB, to=SENDER, body="ok, on it")
        call = receive(circuits_app, f"{ALICE}; {BOB}", wait="30s", twilio_wait_for="acknowledgement")
        assert call.result["success"] is True
        assert [e["intent"] for e in call.result["content"]] == ["decline", "acknowledge"]

    def test_wait_for_acknowledgement_goes_on_past_other_replies(self, circuits_app, twilio):
        twilio.inject_inbound(from_=ALICE, to=SENDER, body="who is this?")
        call = receive(circuits_app, ALICE, wait="1s", twilio_wait_for="acknowledgement")
        assert call.result["success"] is False and call.result["reason"].startswith("Timeout waiting")
        assert [e["message_body"] for e in call.result["content"]] == ["who is this?"]

    def test_everyone_declined(self, circuits_app, twilio):
        twilio.inject_inbound(from_=ALICE, to=SENDER, body="no")
        twilio.inject_inbound(from_=BOB, to=SENDER, body="STOP")
        call = receive(circuits_app, f"{ALICE}, {BOB}", wait="30s", twilio_wait_for="acknowledgement")
        assert call.result["success"] is False
        assert call.result["reason"] == f"Declined by {ALICE}, {BOB}"

    @pytest.mark.parametrize("inputs, named", [
        ({"twilio_wait_for": "ack"}, "twilio_wait_for"),
        ({"incident_id": "abc"}, "incident_id"),
        ({"twilio_phone_number": f"{ALICE}, 12345"}, "twilio_phone_number"),
    ])
    def test_bad_inputs_name_the_input(self, circuits_app, twilio, inputs, named):
        values = {"twilio_phone_number": ALICE, "twilio_wait_timeout": "0s", **inputs}
        call = call_function(circuits_app, "twilio_receive_messages", values)
        assert call.result is None and named in call.error
