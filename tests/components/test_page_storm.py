"""twilio_page through the storm limit (contract §15), through resilient-circuits and the real twilio SDK
against the Twilio emulator: pages to a person over max_texts_per_person are held and sent together in
one digest; each page's entry is bundled with the digest's SID; ``ACK 2104`` acknowledges that incident
only, ``ACK ALL`` every incident the digest asked for, for pages and for Get Responses with incident_id."""
from fn_twilio.lib.storm import requested_codes
from sandbox.twilio_emulator import SENDER
from tests.components.test_send_sms_storm import finish, wait_until
from tests.conftest import call_function

ALICE, BOB = "+353861234567", "+14155552345"


def page(circuits_app, code, tiers, escalate_after="6s"):
    """Start a page for incident ``code`` without waiting for it; its message id."""
    return start_fn(circuits_app, "twilio_page", {"twilio_page_tiers": tiers, "incident_id": code,
                                                  "twilio_escalate_after": escalate_after,
                                                  "twilio_sms_message": f"Phishing wave {code}"})


def start_fn(circuits_app, fn, inputs):
    from resilient_circuits.actions_test_component import SubmitTestFunction
    event = SubmitTestFunction(fn, inputs)
    circuits_app.manager.fire(event)
    return event.kwargs["msg_id"]


def fill(circuits_app, number, count):
    """``count`` plain texts to ``number`` (other calls): the limit is reached."""
    for n in range(count):
        call = call_function(circuits_app, "twilio_send_sms", {"twilio_sms_destination": number,
                                                               "twilio_sms_message": f"FYI {n}"})
        assert call.result["success"]


def digests_to(twilio, number):
    return [m for m in twilio.outbound_messages(to=number) if m["body"].startswith("2 more incidents")]


class TestPagesInAStorm:
    APP_SETTINGS = {"max_texts_per_person": "2", "person_window": "5s", "poll_interval": "0.2s"}

    def _two_held_pages(self, circuits_app, twilio):
        fill(circuits_app, ALICE, 2)
        calls = [page(circuits_app, code, f"{ALICE}; {BOB}") for code in (2103, 2104)]
        wait_until(lambda: digests_to(twilio, ALICE), "the digest went to Alice", timeout=20)
        (digest,) = digests_to(twilio, ALICE)
        assert sorted(requested_codes(digest["body"])) == ["2103", "2104"]
        assert len(twilio.outbound_messages(to=ALICE)) == 3          # two texts, then one digest
        return calls, digest

    def test_ack_with_a_code_acknowledges_that_incident_and_the_other_page_goes_on(self, circuits_app,
                                                                                     twilio):
        (held, acked), digest = self._two_held_pages(circuits_app, twilio)
        twilio.inject_inbound(from_=ALICE, to=SENDER, body="ACK 2104")
        call = finish(circuits_app, acked, timeout=30)
        content = call.result["content"]
        assert call.result["success"] and content["acknowledged_by"] == ALICE and content["tier"] == 1
        (entry,) = content["pages"]
        assert entry["bundled"] is True and entry["sid"] == digest["sid"] == entry["messaging_service_sid"]
        assert entry["message_body"] == digest["body"] and entry["success"] is True
        assert [e["event"] for e in content["timeline"]] == ["held", "paged", "reply", "acknowledged"]
        assert [(r["reply_code"], r["reply_codes"]) for r in content["replies"]] == [("2104", ["2104"])]
        assert any("1 person held for a digest (limit 2 texts per 5s)" in s for s in call.statuses)
        other = finish(circuits_app, held, timeout=60)
        assert other.result["success"] is False and other.result["content"]["replies"] == []
        assert [p["phone_number"] for p in other.result["content"]["pages"]] == [ALICE, BOB]
        assert len(twilio.outbound_messages(to=BOB)) == 1           # 2103's tier 2 only

    def test_ack_all_acknowledges_every_page_the_digest_asked_for_and_get_responses_too(self, circuits_app,
                                                                                          twilio):
        calls, _ = self._two_held_pages(circuits_app, twilio)
        twilio.inject_inbound(from_=ALICE, to=SENDER, body="ACK ALL")
        for msg_id, code in zip(calls, ("2103", "2104")):
            content = finish(circuits_app, msg_id, timeout=30).result["content"]
            assert content["acknowledged"] is True and content["acknowledged_by"] == ALICE, code
            (reply,) = content["replies"]
            assert reply["reply_code"] == code and sorted(reply["reply_codes"]) == ["2103", "2104"]
        assert twilio.outbound_messages(to=BOB) == []
        got = call_function(circuits_app, "twilio_receive_messages", {
            "twilio_phone_number": ALICE, "twilio_wait_timeout": "5s", "twilio_wait_for": "acknowledgement",
            "incident_id": 2104})
        assert got.result["success"] is True
        (reply,) = got.result["content"]
        assert reply["message_body"] == "ACK ALL" and reply["reply_code"] == "2104"
        assert reply["intent"] == "acknowledge"
