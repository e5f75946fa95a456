"""twilio_send_sms through resilient-circuits, with the real twilio SDK talking to the Twilio emulator.

Each class runs its own resilient-circuits app with the app.config section its APP_SETTINGS give.
"""
import pytest

from fn_twilio.lib.errors import OPTED_OUT_MESSAGE
from sandbox.twilio_emulator import API_KEY_SECRET, API_KEY_SID, MESSAGING_SERVICE_SID, SENDER
from tests.conftest import call_function

FN = "twilio_send_sms"
BODY = "Major incident: join the bridge"


def creates(twilio):
    """The create requests Twilio received, in order of arrival."""
    return [r for r in twilio.requests if r.method == "POST" and r.path.endswith("/Messages.json")]


def sent_to(twilio):
    return sorted(r.form.get("To") for r in creates(twilio))


def send(circuits_app, destination, message=BODY, **inputs):
    values = {"twilio_sms_destination": destination, **inputs}
    if message is not None:
        values["twilio_sms_message"] = message
    return call_function(circuits_app, FN, values)


class TestRecipients:
    """Recipients without a default_region: E.164 and 00-prefixed numbers only."""

    APP_SETTINGS = {}

    @pytest.mark.parametrize("destination, expected", [
        ("+353861234567", ["+353861234567"]),
        ("+353 86 123 4567", ["+353861234567"]),
        ("00353861234567", ["+353861234567"]),
        ("+353-86-123-4567,", ["+353861234567"]),                       # trailing comma is no recipient
        ("+353861234567;+14155552345", ["+353861234567", "+14155552345"]),
        ("+353861234567\n+14155552345\n", ["+353861234567", "+14155552345"]),
        (" +353861234567 ,, +14155552345 ; ", ["+353861234567", "+14155552345"]),
        ("+353861234567, 00353861234567, +353 86 123 4567", ["+353861234567"]),  # one number, three ways
        ("whatsapp:+353861234567", ["whatsapp:+353861234567"]),
    ])
    def test_normalised_and_deduplicated(self, circuits_app, twilio, destination, expected):
        call = send(circuits_app, destination)
        assert call.error is None
        entries = call.result["twilio_status"]
        assert [e["phone_number"] for e in entries] == expected
        assert all(e["success"] for e in entries)
        assert sent_to(twilio) == sorted(expected)

    def test_whatsapp_keeps_its_channel_on_both_ends(self, circuits_app, twilio):
        send(circuits_app, "whatsapp:+353861234567")
        (request,) = creates(twilio)
        assert request.form["To"] == "whatsapp:+353861234567"
        assert request.form["From"] == f"whatsapp:{SENDER}"

    def test_national_number_without_region_is_invalid_and_others_still_sent(self, circuits_app, twilio):
        call = send(circuits_app, "(978) 835-4530, +353861234567")
        result = call.result
        assert result["success"] is False
        assert result["reason"] == "1 of 2 recipients failed"
        invalid, valid = result["twilio_status"]
        assert invalid["phone_number"] == "(978) 835-4530"
        assert invalid["status"] == "invalid" and invalid["success"] is False and invalid["sid"] is None
        assert "country code" in invalid["error_message"]
        assert valid["success"] is True and valid["sid"].startswith("SM")
        assert sent_to(twilio) == ["+353861234567"]

    def test_entry_shape(self, circuits_app, twilio):
        entry = send(circuits_app, "+353861234567").result["twilio_status"][0]
        message = twilio.messages[-1] if isinstance(twilio.messages, list) else twilio.messages()[-1]
        assert entry["sid"] == message["sid"]
        assert entry["messaging_service_sid"] == entry["sid"]
        assert entry["status"] == "queued"
        assert entry["direction"] == "outbound-api"
        assert entry["message_body"] == BODY
        assert entry["num_segments"] == 1
        assert entry["error_code"] is None and entry["error_message"] is None
        assert entry["date_created"].endswith("+00:00")
        # date_created_ts is the same instant in epoch milliseconds
        from fn_twilio.lib.dates import parse_since
        created = parse_since(entry["date_created"], name="x")
        assert entry["date_created_ts"] == int(created.timestamp() * 1000)

    def test_results_carry_inputs_at_top_level(self, circuits_app, twilio):
        result = send(circuits_app, "+353861234567").result
        assert set(result) >= {"success", "reason", "inputs", "twilio_status"}
        assert result["inputs"] == {"twilio_sms_destination": "+353861234567", "twilio_sms_message": BODY}
        assert "content" not in result   # not wrapped in ResultPayload

    def test_progress_reaches_the_action_status(self, circuits_app, twilio):
        call = send(circuits_app, "+353861234567, +14155552345, (978) 835-4530")
        assert call.statuses[0] == "Sending SMS to 2 recipients (1 invalid skipped)"
        assert call.statuses[-1] == "Sent 2 of 2"

    def test_twilio_error_is_reported_for_its_recipient_only(self, circuits_app, twilio):
        call = send(circuits_app, "+15005550001, +353861234567, +15005550004")
        by_number = {e["phone_number"]: e for e in call.result["twilio_status"]}
        assert by_number["+15005550001"]["error_code"] == 21211
        assert by_number["+15005550004"]["error_code"] == 21610
        assert OPTED_OUT_MESSAGE in by_number["+15005550004"]["error_message"]   # contract §9.3
        assert by_number["+353861234567"]["success"] is True
        assert call.result["reason"] == "2 of 3 recipients failed"
        assert [e["status"] for e in call.result["twilio_status"]] == ["failed", "queued", "opted_out"]

    def test_unicode_body_counts_segments(self, circuits_app, twilio):
        body = "Incident 🚨 " * 10          # UCS-2: 70 per single SMS, 67 per part
        entry = send(circuits_app, "+353861234567", message=body).result["twilio_status"][0]
        assert entry["message_body"] == body
        assert entry["num_segments"] == 2


class TestBadInput:
    """Inputs refused whole: a clear error naming the input, nothing sent."""

    APP_SETTINGS = {"max_recipients": "3"}

    @pytest.mark.parametrize("destination, message, expected", [
        ("", BODY, "twilio_sms_destination is empty"),
        ("   ", BODY, "twilio_sms_destination is empty"),
        (" , ; \n", BODY, "twilio_sms_destination holds no phone number"),
        ("12345, abc", BODY, "twilio_sms_destination has no valid phone number"),
        ("+353861234567,+14155552345,+447911123456,+4915112345678", BODY,
         "twilio_sms_destination has 4 different recipients, more than max_recipients (3)"),
        ("+353861234567", "x" * 1601, "twilio_sms_message has 1601 characters"),
        ("+353861234567", None, "twilio_sms_message is empty and incident_id is not set"),
        ("+353861234567", "   ", "twilio_sms_message is empty and incident_id is not set"),
    ])
    def test_refused(self, circuits_app, twilio, destination, message, expected):
        call = send(circuits_app, destination, message=message)
        assert call.result is None
        assert expected in call.error
        assert not creates(twilio)

    def test_max_recipients_counts_unique_numbers(self, circuits_app, twilio):
        call = send(circuits_app, "+353861234567, 00353861234567, +14155552345, +447911123456")
        assert call.error is None
        assert len(call.result["twilio_status"]) == 3

    def test_1600_characters_are_allowed(self, circuits_app, twilio):
        call = send(circuits_app, "+353861234567", message="y" * 1600)
        assert call.result["success"] is True


class TestDefaultMessage:
    """No message: the 2.0.1 default text about the incident, read from SOAR by incident_id."""

    APP_SETTINGS = {}

    def test_default_text_names_the_incident(self, circuits_app, twilio):
        call = send(circuits_app, "+353861234567", message=None, incident_id=2095)
        text = "An incident Phishing campaign (2095) with High priority may require your attention"
        assert call.result["inputs"]["twilio_sms_message"] == text
        assert creates(twilio)[0].form["Body"] == text

    @pytest.mark.parametrize("incident_id, expected", [
        (4040, "could not read incident 4040 from SOAR"),
        ("abc", "incident_id must be a positive whole number"),
        (-3, "incident_id must be a positive whole number"),
    ])
    def test_unreadable_incident(self, circuits_app, twilio, incident_id, expected):
        call = send(circuits_app, "+353861234567", message="", incident_id=incident_id)
        assert expected in call.error
        assert not creates(twilio)

    @pytest.mark.parametrize("status, expected", [
        (401, "SOAR refused the app's credentials (401 Unauthorized: refused (401)) reading incident 2095 "
              "from SOAR for the default message; nothing was sent"),
        (500, "could not read incident 2095 from SOAR for the default message (500 Server Error: "
              "refused (500)); nothing was sent"),
        (403, "could not read incident 2095 from SOAR for the default message (403 Forbidden: "
              "refused (403))"),
    ])
    def test_a_refused_incident_read_is_one_request_and_a_clear_error(self, circuits_app, twilio, status,
                                                                       expected):
        """No retry loop of SOAR's client (a 500 cost 5 tries and about 30 s) and no exit on a 401."""
        from tests.soar_mock import FnTwilioSoarMock
        FnTwilioSoarMock.reset()
        FnTwilioSoarMock.incident_refusals.append(status)
        call = send(circuits_app, "+353861234567", message="", incident_id=2095)
        assert expected in call.error
        assert FnTwilioSoarMock.incident_reads == 1 and not creates(twilio)


class TestDefaultRegion:
    APP_SETTINGS = {"default_region": "US"}

    @pytest.mark.parametrize("destination, expected", [
        ("(978) 835-4530", "+19788354530"),
        ("978.835.4530", "+19788354530"),
        ("011 44 7911 123456", "+447911123456"),
        ("+353 86 123 4567", "+353861234567"),
    ])
    def test_national_numbers_use_the_region(self, circuits_app, twilio, destination, expected):
        entry = send(circuits_app, destination).result["twilio_status"][0]
        assert entry["phone_number"] == expected and entry["success"] is True


class TestApiKeyAndMessagingService:
    APP_SETTINGS = {"twilio_auth_token": None, "twilio_api_key_sid": API_KEY_SID,
                    "twilio_api_key_secret": API_KEY_SECRET, "twilio_src_address": None,
                    "twilio_messaging_service_sid": MESSAGING_SERVICE_SID}

    def test_sends_through_the_service_with_an_api_key(self, circuits_app, twilio):
        call = send(circuits_app, "+353861234567")
        entry = call.result["twilio_status"][0]
        assert entry["success"] is True and entry["status"] == "accepted"
        (request,) = creates(twilio)
        assert request.form["MessagingServiceSid"] == MESSAGING_SERVICE_SID
        assert "From" not in request.form


class TestWrongCredentials:
    APP_SETTINGS = {"twilio_auth_token": "0" * 32}

    def test_each_recipient_reports_20003(self, circuits_app, twilio):
        call = send(circuits_app, "+353861234567, +14155552345")
        assert call.result["success"] is False
        for entry in call.result["twilio_status"]:
            assert entry["error_code"] == 20003
            assert "credentials" in entry["error_message"]
        assert "0" * 32 not in str(call.result)


class TestMissingSettings:
    APP_SETTINGS = {"twilio_src_address": None}

    def test_error_names_the_keys(self, circuits_app, twilio):
        call = send(circuits_app, "+353861234567")
        assert "twilio_src_address" in call.error and "twilio_messaging_service_sid" in call.error
        assert not creates(twilio)
