"""Storms end to end (contract §15): a burst of Send SMS calls to the same three on-call people, served by
two real ``resilient-circuits run`` instances at once against the sandbox SOAR and the Twilio emulator.

The app limits each person to 5 texts per 10 s (``max_texts_per_person``, ``person_window``); the
emulator's loop guard is shrunk to 8 texts per 10 s between two numbers (then 10 s of error 14107), so
without the limit most of the storm would fail. The first instance authenticates to Twilio with the
auth token, the second with an API key, so the emulator's request log tells which instance sent what.
"""
import time
from collections import Counter

import pytest

from e2e_helpers import requires_app, requires_export
from fn_twilio.lib.storm import requested_codes
from sandbox.soar.sandbox import Sandbox
from sandbox.twilio_emulator import ACCOUNT_SID, API_KEY_SECRET, API_KEY_SID

pytestmark = [pytest.mark.e2e, requires_app, requires_export]

PEOPLE = ["+353861234567", "+14155552345", "+14155552346"]
LIMIT, WINDOW, INTERVAL = 5, 10.0, 0.5
INSTANCES = 2
INCIDENTS = {3000 + i: (f"Phishing wave report {i}", ("Low", "Medium", "High")[i % 3]) for i in range(30)}
SPACING = 0.25        # 30 incidents in 7.5 s: the two instances reach the limit after about 2.5 s


@pytest.fixture(scope="module")
def sandbox():
    settings = {"poll_interval": f"{INTERVAL}s", "max_texts_per_person": str(LIMIT),
                "person_window": f"{WINDOW:g}s"}
    # 20 workers each: the calls held for a digest wait in them; no instance can take every call
    with Sandbox(preload="app", num_workers=20, app_settings=settings) as sandbox:
        for incident, (name, severity) in INCIDENTS.items():
            sandbox.rest.add_incident(incident, name, severity)
        sandbox.run_app(timeout=90)
        second = sandbox.launcher("second-instance", app_section=sandbox.app_section(
            twilio_api_key_sid=API_KEY_SID, twilio_api_key_secret=API_KEY_SECRET))
        second.start(timeout=90)
        yield sandbox


def creates_to(twilio, number):
    """(start time, instance, sid) of each text Twilio accepted for ``number``, in order."""
    found = []
    for record in twilio.requests:
        if record.method == "POST" and record.path.endswith("/Messages.json") and record.status == 201 \
                and record.form.get("To") == number:
            instance = "token" if record.auth_user == ACCOUNT_SID else "api key"
            found.append((record.started, instance, record.json()["sid"]))
    return found


def most_in_a_window(times, window):
    return max(sum(1 for t in times if start <= t < start + window) for start in times)


def test_a_storm_on_two_instances_keeps_the_limit_and_loses_no_incident(sandbox):
    twilio = sandbox.twilio
    twilio.limit_pairs(limit=8, window=WINDOW, block=WINDOW)
    soar = sandbox.driver()
    calls = {}
    for incident in INCIDENTS:                  # each incident texts the same 3 people
        calls[incident] = soar.start_function("twilio_send_sms", {
            "twilio_sms_destination": ", ".join(PEOPLE), "incident_id": incident,
            "twilio_request_ack": True})
        time.sleep(SPACING)
    for call in calls.values():
        call.wait(90)

    # every call succeeded, every person reported for every incident
    for incident, call in calls.items():
        assert call.error is None, call.error
        assert call.results["success"] is True and call.results["reply_code"] == str(incident)
        assert [e["phone_number"] for e in call.results["twilio_status"]] == PEOPLE
    entries = [e for c in calls.values() for e in c.results["twilio_status"]]
    bundled = [e for e in entries if e["bundled"]]
    assert bundled, "the storm went over the limit: some texts went in digests"
    assert any("held for a digest (limit 5 texts per 10s)" in s for c in calls.values() for s in c.statuses)

    messages = twilio.outbound_messages()
    # 0 texts failed with 14107 (nor in any other way)
    assert not [m for m in messages if m["error_code"] == 14107]
    assert {m["status"] for m in messages} == {"queued"}
    by_sid = {m["sid"]: m for m in messages}
    for entry in bundled:
        digest = by_sid[entry["sid"]]
        assert digest["to"] == entry["phone_number"] and digest["body"] == entry["message_body"]
        assert digest["body"].split("\n")[0].endswith("need you:")

    for person in PEOPLE:
        texts = [m for m in messages if m["to"] == person]
        # every incident reached the person, in its own text or in a digest
        reached = Counter(code for m in texts for code in requested_codes(m["body"]))
        assert set(reached) == {str(i) for i in INCIDENTS}, person
        # the limit, within one text per other instance (the contract's "within one poll interval")
        sent = creates_to(twilio, person)
        assert {instance for _, instance, _ in sent} == {"token", "api key"}, "both instances sent"
        assert most_in_a_window([t for t, _, _ in sent], WINDOW) <= LIMIT + INSTANCES - 1, sent
        assert len(sent) < len(INCIDENTS) / 2, "fewer texts than incidents: the digests carried the rest"
