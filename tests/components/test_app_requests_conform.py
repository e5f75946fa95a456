"""The requests fn_twilio makes to Twilio, and the emulator's answers, checked against Twilio's OpenAPI spec.

Every request the app's functions and selftest sent in one run (creates, lists with the date filter
and paging, fetches by SID, the numbers lookup) is validated with openapi-core against
twilio_api_v2010.json, and so is every success response the emulator gave. Skipped, with the
expected location, when the spec is not beside the repository.
"""

from fn_twilio.util.selftest import selftest_function
from sandbox import twilio_spec
from sandbox.twilio_emulator import ACCOUNT_SID, AUTH_TOKEN, SENDER
from tests.conftest import call_function


class TestAppRequestsConform:
    APP_SETTINGS = {}

    def test_every_request_and_answer_conforms(self, twilio_openapi, circuits_app, twilio):
        twilio.inject_inbound(from_="+353861234567", to=SENDER, body="ACK")
        twilio.seed_history(120, from_=SENDER, to="+14155552345")
        call_function(circuits_app, "twilio_send_sms", {
            "twilio_sms_destination": "+353861234567, +15005550001, whatsapp:+14155552345",
            "twilio_sms_message": "Bridge call: dial in now"})
        call_function(circuits_app, "twilio_receive_messages", {
            "twilio_phone_number": "+353861234567", "twilio_date_sent": "2026-01-25 14:59:51+00:00",
            "twilio_wait_timeout": "0s"})
        call_function(circuits_app, "twilio_receive_messages", {
            "twilio_phone_number": "+14155552345", "twilio_wait_timeout": "0s"})
        sent = [e["sid"] for e in call_function(circuits_app, "twilio_send_sms", {
            "twilio_sms_destination": "+353861234567",
            "twilio_sms_message": "status"}).result["twilio_status"]]
        twilio.advance_statuses()
        call_function(circuits_app, "twilio_get_message_status", {   # a list, and a fetch of an unknown SID
            "twilio_message_sids": ", ".join(sent + ["SM" + "0" * 32]), "twilio_wait_timeout": "0s"})
        assert selftest_function({"fn_twilio_send_sms": {
            "twilio_account_sid": ACCOUNT_SID, "twilio_auth_token": AUTH_TOKEN, "twilio_src_address": SENDER,
            "twilio_base_url": twilio.base_url}})["state"] == "success"

        records = [r for r in twilio.requests if r.path.startswith("/2010-04-01/")]
        kinds = {(r.method, r.path.rsplit("/", 1)[-1]) for r in records}
        assert {("POST", "Messages.json"), ("GET", "Messages.json"),
                ("GET", "IncomingPhoneNumbers.json")} <= kinds
        assert any("DateSent>" in key for r in records for key in r.query)
        assert any(r.method == "GET" and r.path.endswith("/Messages/SM" + "0" * 32 + ".json")
                   for r in records)
        for record in records:
            twilio_spec.validate_request_record(record)
            if 200 <= (record.status or 0) < 300:
                twilio_spec.validate_response(record)
