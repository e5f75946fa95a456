"""A storm of pages end to end (contract §15): a handful of incidents page the same three people at once
through the real ``resilient-circuits run`` against the sandbox SOAR and the Twilio emulator.

The app limits each person to 3 texts per 10 s; the emulator's loop guard is shrunk to 4 texts per 10 s
between two numbers (then 10 s of error 14107), so without the limit half of the storm would fail. The
pages beyond the limit are held and reach each person in one digest; the first person answers the
digest with ``ACK <code>`` (that incident only), then ``ACK ALL`` (every other incident it asked for).
"""
import time
from collections import Counter

import pytest

from e2e_helpers import requires_app, requires_export, wait_until
from fn_twilio.lib.storm import requested_codes
from sandbox.soar.sandbox import Sandbox

pytestmark = [pytest.mark.e2e, requires_app, requires_export]

ALICE, BOB, CAROL = PEOPLE = ["+353861234567", "+14155552345", "+14155552346"]
LIMIT, WINDOW = 3, 10.0
INCIDENTS = list(range(4000, 4008))       # 8 pages in about 2 s


@pytest.fixture(scope="module")
def sandbox():
    settings = {"poll_interval": "0.5s", "max_texts_per_person": str(LIMIT), "person_window": f"{WINDOW:g}s"}
    with Sandbox(preload="app", num_workers=20, app_settings=settings) as sandbox:
        sandbox.run_app(timeout=90)
        yield sandbox


def most_in_a_window(times, window):
    return max(sum(1 for t in times if start <= t < start + window) for start in times)


def test_a_storm_of_pages_keeps_the_limit_and_a_digest_is_acknowledged_by_code_and_by_ack_all(sandbox):
    twilio = sandbox.twilio
    twilio.reset()
    twilio.limit_pairs(limit=4, window=WINDOW, block=WINDOW)
    soar = sandbox.driver()
    calls = {}
    for incident in INCIDENTS:
        calls[incident] = soar.start_function("twilio_page", {
            "twilio_page_tiers": ", ".join(PEOPLE), "incident_id": incident, "twilio_escalate_after": "20s",
            "twilio_sms_message": f"Phishing wave {incident}"})
        time.sleep(0.25)

    def digest_to_alice():
        return [m for m in twilio.outbound_messages(to=ALICE) if "more incidents need you" in m["body"]]

    wait_until(digest_to_alice, 40, "the held pages never reached Alice in a digest")
    (digest,) = digest_to_alice()
    in_digest = requested_codes(digest["body"])
    assert len(in_digest) == len(INCIDENTS) - LIMIT, digest["body"]
    by_code = in_digest[0]

    twilio.inject_inbound(from_=ALICE, body=f"ACK {by_code}")        # that incident only
    calls[int(by_code)].wait(30)
    twilio.inject_inbound(from_=ALICE, body="ACK ALL")                 # every other code of the digest
    for call in calls.values():
        call.wait(60)
        assert call.error is None, call.error

    for incident, call in calls.items():
        content = call.results["content"]
        alice = next(p for p in content["pages"] if p["phone_number"] == ALICE)
        code = str(incident)
        if code in in_digest:
            assert content["acknowledged_by"] == ALICE and call.results["success"] is True, code
            assert alice["bundled"] is True and alice["sid"] == digest["sid"]
            (reply,) = [r for r in content["replies"] if r["phone_number"] == ALICE]
            assert reply["reply_code"] == code
            assert reply["message_body"] == (f"ACK {by_code}" if code == by_code else "ACK ALL")
            events = [e["event"] for e in content["timeline"] if e["phone_number"] == ALICE]
            assert events[:2] == ["held", "paged"]
        else:   # texted at once, not in the digest: neither reply was for it
            assert alice["bundled"] is False and call.results["success"] is False, code
            assert call.results["reason"] == "Nobody acknowledged: paged 3 people in 1 tiers"

    messages = twilio.outbound_messages()
    assert not [m for m in messages if m["error_code"] == 14107]
    assert {m["status"] for m in messages} == {"queued"}
    for person in PEOPLE:
        texts = [m for m in messages if m["to"] == person]
        reached = Counter(code for m in texts for code in requested_codes(m["body"]))
        assert set(reached) == {str(i) for i in INCIDENTS}, person       # every incident reached them
        starts = [r.started for r in twilio.requests if r.method == "POST" and r.status == 201
                  and r.path.endswith("/Messages.json") and r.form.get("To") == person]
        assert len(starts) == LIMIT + 1 and most_in_a_window(starts, WINDOW) <= LIMIT, person
