"""twilio_send_sms in a storm, through resilient-circuits and the real twilio SDK against the Twilio
emulator: a recipient over max_texts_per_person is held, and the held calls are answered with one digest.
"""
import time


from fn_twilio.lib.storm import requested_codes
from sandbox.twilio_emulator import SENDER
from tests.conftest import call_function, finish_function, start_function

FN = "twilio_send_sms"
ALICE, BOB = "+353861234567", "+14155552345"


def start(circuits_app, inputs):
    """Submit a call without waiting for it; returns its message id."""
    return start_function(circuits_app, FN, inputs)


finish = finish_function


def wait_until(predicate, what, timeout=10):
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, what
        time.sleep(0.02)


def to_alice(twilio):
    return twilio.outbound_messages(to=ALICE)


class TestStormSend:
    APP_SETTINGS = {"max_texts_per_person": "2", "person_window": "5s", "poll_interval": "0.2s"}

    def test_every_entry_says_whether_it_was_bundled(self, circuits_app, twilio):
        call = call_function(circuits_app, FN, {"twilio_sms_destination": f"{ALICE}, {BOB}",
                                                "twilio_sms_message": "Bridge call now"})
        assert [e["bundled"] for e in call.result["twilio_status"]] == [False, False]
        assert not any("held" in s for s in call.statuses)

    def test_recipients_over_the_limit_are_held_and_answered_with_one_digest(self, circuits_app, twilio):
        for code in (2101, 2102):
            first = call_function(circuits_app, FN, {"twilio_sms_destination": ALICE, "incident_id": code,
                                                     "twilio_sms_message": f"Incident {code}: phishing"})
            assert first.result["twilio_status"][0]["bundled"] is False
        held = [start(circuits_app, {"twilio_sms_destination": f"{ALICE}, {BOB}", "incident_id": code,
                                     "twilio_sms_message": f"Scanner {code} on\n10.0.0.{code % 100}",
                                     "twilio_request_ack": True}) for code in (2103, 2104)]
        calls = [finish(circuits_app, msg_id) for msg_id in held]

        digest = to_alice(twilio)[-1]
        assert len(to_alice(twilio)) == 3, "two texts in the window, then one digest"
        lines = digest["body"].split("\n")
        assert lines[0] == "2 more incidents need you:"
        assert sorted(lines[1:3]) == ["2103 Scanner 2103 on 10.0.0.3", "2104 Scanner 2104 on 10.0.0.4"]
        assert lines[3] == "Reply ACK <id> to acknowledge one, ACK ALL for all."
        assert sorted(requested_codes(digest["body"])) == ["2103", "2104"]
        for call in calls:
            assert call.error is None and call.result["success"] is True
            alice, bob = call.result["twilio_status"]
            assert alice["bundled"] is True
            assert alice["sid"] == digest["sid"] == alice["messaging_service_sid"]
            assert alice["message_body"] == digest["body"] and alice["status"] == "queued"
            assert alice["date_created_ts"] and alice["success"] is True
            assert bob["bundled"] is False and bob["message_body"].startswith("Scanner")
            held_status = "1 recipient held for a digest (limit 2 texts per 5s)"
            assert any(s.endswith(held_status) for s in call.statuses), call.statuses
        assert all(m["status"] != "failed" for m in twilio.outbound_messages())

    def test_a_default_text_goes_in_the_digest_with_the_incidents_name_and_severity(self, circuits_app,
                                                                                        twilio):
        for _ in range(2):
            call_function(circuits_app, FN, {"twilio_sms_destination": ALICE, "twilio_sms_message": "x"})
        held = [start(circuits_app, {"twilio_sms_destination": ALICE, "incident_id": 2095,
                                     "twilio_request_ack": True}),
                start(circuits_app, {"twilio_sms_destination": ALICE, "twilio_sms_message": "Disk full"})]
        calls = [finish(circuits_app, msg_id) for msg_id in held]
        digest = to_alice(twilio)[-1]["body"].split("\n")
        assert digest[0] == "2 more messages for you:"          # not every line is an incident's
        assert sorted(digest[1:3]) == ["- Disk full", "2095 Phishing campaign (High)"]
        assert digest[3] == "Reply ACK <id> to acknowledge one, ACK ALL for all."
        assert all(c.result["twilio_status"][0]["bundled"] for c in calls)

    def test_one_held_text_goes_as_it_is_when_the_window_allows(self, circuits_app, twilio):
        for _ in range(2):
            call_function(circuits_app, FN, {"twilio_sms_destination": ALICE, "twilio_sms_message": "x"})
        started = time.monotonic()
        call = call_function(circuits_app, FN, {"twilio_sms_destination": ALICE,
                                                "twilio_sms_message": "Bridge call now"})
        entry = call.result["twilio_status"][0]
        assert entry["success"] and entry["bundled"] is False and entry["message_body"] == "Bridge call now"
        assert time.monotonic() - started > 3, "it waited for room in the window"
        assert [m["body"] for m in to_alice(twilio)] == ["x", "x", "Bridge call now"]


class TestStormSettings:
    APP_SETTINGS = {"max_texts_per_person": "12", "person_window": "10s"}

    def test_a_limit_twilio_would_fail_is_refused_naming_the_keys(self, circuits_app, twilio):
        call = call_function(circuits_app, FN, {"twilio_sms_destination": ALICE, "twilio_sms_message": "x"})
        assert call.result is None and "fn_twilio is not configured correctly" in call.error
        assert "max_texts_per_person 12 per person_window 10s" in call.error and "14107" in call.error
        assert not twilio.outbound_messages()


def test_the_emulator_guard_fails_what_the_limit_would_have_kept(twilio):
    """Without the limit (Twilio's own guard at 3 texts per 30 s here), the 4th text fails with 14107:
    the failure the storm limit keeps away."""
    from tests.emulator.conftest import sdk_client
    twilio.limit_pairs(limit=3, window=30, block=30)
    client = sdk_client(twilio)
    sids = [client.messages.create(to=ALICE, from_=SENDER, body=f"text {i}").sid for i in range(4)]
    assert [client.messages(s).fetch().error_code for s in sids] == [None, None, None, 14107]
