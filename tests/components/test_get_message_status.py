"""twilio_get_message_status through resilient-circuits against the Twilio emulator, and the workflow
"Twilio: Update Delivery Status" (its real scripts around the real function).

The app's poll_interval is 0.2 s here (tests/conftest.py), so "one interval" is short.
"""
import pytest

from fn_twilio.lib.errors import TWILIO_CODES
from sandbox.scripting import run_script, script_path
from tests.conftest import call_function

FN = "twilio_get_message_status"
ALICE = "+353861234567"
BOB = "+14155552345"
MISSING = "SM" + "0" * 32
KEYS = {"sid", "phone_number", "status", "final", "error_code", "error_message", "date_sent",
        "date_sent_ts", "date_updated", "date_updated_ts", "num_segments", "price", "price_unit"}


def send(circuits_app, *numbers):
    call = call_function(circuits_app, "twilio_send_sms", {"twilio_sms_destination": ", ".join(numbers),
                                                           "twilio_sms_message": "Bridge now"})
    return [entry["sid"] for entry in call.result["twilio_status"]]


def status(circuits_app, sids, wait=None):
    inputs = {"twilio_message_sids": ", ".join(sids)}
    if wait is not None:
        inputs["twilio_wait_timeout"] = wait
    return call_function(circuits_app, FN, inputs)


class TestGetDeliveryStatus:
    APP_SETTINGS = {}

    def test_looks_once_by_default_one_entry_per_sid_in_order(self, circuits_app, twilio):
        sids = send(circuits_app, ALICE, BOB)
        twilio.advance_statuses()
        call = status(circuits_app, [sids[1], MISSING, sids[0]])
        result = call.result
        assert [e["sid"] for e in result["content"]] == [sids[1], MISSING, sids[0]]
        assert all(set(e) == KEYS for e in result["content"])
        bob, missing, alice = result["content"]
        assert bob["status"] == alice["status"] == "delivered" and bob["final"] is True
        assert bob["phone_number"] == BOB and bob["num_segments"] == 1 and bob["price"]
        assert isinstance(bob["date_sent_ts"], int) and bob["date_sent"].endswith("+00:00")
        assert missing["status"] == "not_found" and missing["error_code"] == 20404 and not missing["final"]
        assert result["success"] is False and MISSING in result["reason"]
        assert result["inputs"]["twilio_message_sids"]

    def test_waits_until_every_status_is_final_and_explains_the_error(self, circuits_app, twilio):
        twilio.deliver_after(sent_after=0.2, delivered_after=0.4)
        twilio.set_delivery_outcome(BOB, "undelivered", error_code=30003)
        sids = send(circuits_app, ALICE, BOB)
        call = status(circuits_app, sids, wait="20s")
        alice, bob = call.result["content"]
        assert call.result["success"] is True and call.result["reason"] is None
        assert alice["status"] == "delivered" and bob["status"] == "undelivered"
        assert bob["final"] and bob["error_code"] == 30003
        assert bob["error_message"] == TWILIO_CODES[30003].explanation
        assert any("waiting up to 20s" in s for s in call.statuses)
        assert any("1 delivered" in s and "1 undelivered" in s for s in call.statuses)

    def test_a_message_still_sent_at_the_end_is_not_final(self, circuits_app, twilio):
        twilio.deliver_after(sent_after=0.0, delivered_after=0.0)
        twilio.set_delivery_outcome(ALICE, "sent")
        (sid,) = send(circuits_app, ALICE)
        call = status(circuits_app, [sid], wait="1s")
        (entry,) = call.result["content"]
        assert entry["status"] == "sent" and entry["final"] is False
        assert call.result["success"] is True
        assert any("not final yet" in s for s in call.statuses)

    @pytest.mark.parametrize("sids, words", [
        ("", "twilio_message_sids is empty"),
        ("SM123", "twilio_message_sids holds 1 value that is not a message SID"),
    ])
    def test_bad_sids_are_refused_and_nothing_is_read(self, circuits_app, twilio, sids, words):
        twilio.clear_requests()
        call = call_function(circuits_app, FN, {"twilio_message_sids": sids})
        assert call.error is not None and words in call.error
        assert not twilio.requests


class TestUpdateDeliveryStatusWorkflow:
    APP_SETTINGS = {}

    def run(self, circuits_app, row, wait=None):
        pre = run_script(script_path("twilio_update_delivery_status", "pre"), row=row,
                         rule_properties={"twilio_status_wait_timeout": wait})
        call = call_function(circuits_app, FN, pre.inputs)
        assert call.error is None, call.error
        post = run_script(script_path("twilio_update_delivery_status", "post"), results=call.result, row=row)
        return pre, post

    def test_the_row_status_is_updated_in_place_with_the_error_explained(self, circuits_app, twilio):
        twilio.set_delivery_outcome(ALICE, "undelivered", error_code=30003)
        (sid,) = send(circuits_app, ALICE)
        twilio.advance_statuses()
        row = {"status": "queued", "phone_number": ALICE, "direction": "outbound-api", "message_id": sid}
        pre, post = self.run(circuits_app, row, wait="5s")
        assert pre.inputs == {"twilio_message_sids": sid, "twilio_wait_timeout": "5s"}
        explained = TWILIO_CODES[30003].explanation
        assert post.row_updates == {"status": f"undelivered (30003: {explained})"}
        assert not post.rows and not post.notes

    def test_an_empty_wait_looks_once_and_a_delivered_message_reads_delivered(self, circuits_app, twilio):
        (sid,) = send(circuits_app, ALICE)
        twilio.advance_statuses()
        pre, post = self.run(circuits_app, {"direction": "outbound-api", "message_id": sid})
        assert "twilio_wait_timeout" not in pre.inputs
        assert post.row_updates == {"status": "delivered"}

    def test_a_status_that_cannot_be_read_leaves_the_row_and_says_why(self, circuits_app, twilio):
        twilio.inject_fault("status", method="GET", path_contains="/Messages", status=401, code=20003,
                            times=None)
        try:
            _, post = self.run(circuits_app, {"direction": "outbound-api", "message_id": MISSING})
        finally:
            twilio.clear_faults()
        assert post.row_updates == {}
        assert "delivery status not read" in post.notes[0]["text"] and "credentials" in post.notes[0]["text"]
