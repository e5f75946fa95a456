"""The playbooks, as SOAR runs them: imported by the real ``resilient-circuits customize``, then run
(activation with form values, the function's input script, the function through the real
``resilient-circuits run``, the local script on the results) against the Twilio emulator.

One sandbox serves the module: it starts empty, ``customize`` imports the app's customizations, then
the app runs.
"""
import threading
import time

import pytest

from customizations import definitions as d
from e2e_helpers import requires_app, requires_export
from sandbox.soar.driver import RuleNotAvailable
from sandbox.soar.sandbox import Sandbox

pytestmark = [pytest.mark.e2e, requires_app, requires_export]

SEND = "Example: Twilio Send SMS (Playbook)"
RECEIVE = "Example: Twilio Receive Messages (Playbook)"
GET_RESPONSES = "Twilio: Get Responses (Playbook)"
UPDATE_STATUS = "Twilio: Update Delivery Status (Playbook)"   # run in test_delivery_status.py
PAGE = "Example: Twilio Page On-Call (Playbook)"
LOG = "twilio_sms_log"


@pytest.fixture(scope="module")
def sandbox():
    with Sandbox(app_settings={"poll_interval": "1s"}) as sandbox:
        code, output = sandbox.app.customize()
        assert code == 0, output
        for incident_id in (3100, 3200, 3300, 3400, 3500, 3600):
            sandbox.rest.add_incident(incident_id, f"Playbook incident {incident_id}", "High")
        sandbox.run_app(timeout=90)
        yield sandbox


@pytest.fixture(scope="module")
def soar(sandbox):
    return sandbox.driver()


def sent_to(sandbox, number):
    return [m for m in sandbox.twilio.messages if m["to"] == number]


def test_customize_imports_a_playbook_for_every_example(sandbox):
    imported = {p["display_name"]: p for p in sandbox.rest.playbooks.values()}
    assert sorted(imported) == sorted([GET_RESPONSES, PAGE, RECEIVE, SEND, UPDATE_STATUS])
    assert len(d.PLAYBOOK_EXAMPLES) == len(imported)
    assert {p["activation_type"] for p in imported.values()} == {"manual"}
    assert imported[GET_RESPONSES]["object_type"] == LOG


def test_send_playbook_then_get_responses_playbook_on_a_log_row(sandbox, soar):
    sent = soar.run_playbook(SEND, incident_id=3100, inputs={
        "twilio_sms_destination": "+353861234101, +353861234102", "twilio_sms_message": "playbook page"})
    assert sent.error is None, sent.error
    assert sent.function_name == "twilio_send_sms" and sent.call.message["playbook_instance"]
    run_record = sandbox.rest.playbook_instances[sent.playbook_instance_id]
    assert (run_record["status"], run_record["incident_id"]) == ("completed", 3100)
    assert sent.inputs == {"twilio_sms_destination": "+353861234101, +353861234102",
                           "twilio_sms_message": "playbook page", "incident_id": 3100}
    rows = sent.rows_of(LOG)
    assert [(r["phone_number"], r["direction"], r["msg_body"]) for r in rows] == [
        ("+353861234101", "outbound-api", "playbook page"),
        ("+353861234102", "outbound-api", "playbook page")]
    assert all(r["message_id"].startswith("SM") and isinstance(r["date_created"], int) for r in rows)
    assert sandbox.rest.rows(3100, LOG) == rows
    notes = sandbox.rest.notes(3100)
    assert len(notes) == 2 and all("Twilio SMS sent" in str(n) for n in notes)
    assert [m["body"] for m in sent_to(sandbox, "+353861234101")] == ["playbook page"]

    sandbox.twilio.inject_inbound(from_="+353861234101", body="on it")
    got = soar.run_playbook(GET_RESPONSES, incident_id=3100, row=rows[0])
    assert got.error is None, got.error
    assert got.inputs == {"twilio_phone_number": "+353861234101",
                          "twilio_date_sent_ts": rows[0]["date_created"]}
    assert [(r["direction"], r["phone_number"], r["msg_body"]) for r in got.rows_of(LOG)] == [
        ("inbound", "+353861234101", "on it")]
    assert len(sandbox.rest.rows(3100, LOG)) == 3


def test_get_responses_playbook_is_not_offered_on_a_failed_row(soar):
    with pytest.raises(RuleNotAvailable, match="playbook .* not_equals"):
        soar.run_playbook(GET_RESPONSES, incident_id=3100,
                          row={"status": "Failed", "phone_number": "+353861234101"})


def test_receive_playbook_collects_a_reply_and_notes_when_none(sandbox, soar):
    sandbox.twilio.inject_inbound(from_="+353861234201", body="acknowledged")
    got = soar.run_playbook(RECEIVE, incident_id=3200, inputs={
        "twilio_sms_destination": "+353861234201", "twilio_wait_timeout": "0s"})
    assert got.error is None, got.error
    assert [(r["phone_number"], r["msg_body"]) for r in sandbox.rest.rows(3200, LOG)] == [
        ("+353861234201", "acknowledged")]

    none = soar.run_playbook(RECEIVE, incident_id=3300, inputs={
        "twilio_sms_destination": "+353861234301", "twilio_wait_timeout": "0s"})
    assert none.error is None, none.error
    assert sandbox.rest.rows(3300, LOG) == []
    [note] = sandbox.rest.notes(3300)
    assert "no reply" in str(note) and "+353861234301" in str(note)


def test_page_playbook_escalates_and_writes_its_rows_and_note(sandbox, soar):
    def answer():
        deadline = time.monotonic() + 30
        while not sent_to(sandbox, "+14155553501") and time.monotonic() < deadline:
            time.sleep(0.05)
        sandbox.twilio.inject_inbound(from_="+14155553501", body="ACK 3500")

    threading.Thread(target=answer, daemon=True).start()
    run = soar.run_playbook(PAGE, incident_id=3500, inputs={
        "twilio_page_tiers": "+353861233501; +14155553501", "twilio_escalate_after": "2s"})
    assert run.error is None, run.error
    rows = sandbox.rest.rows(3500, LOG)
    assert [(r["phone_number"], r["status"]) for r in rows] == [
        ("+353861233501", "queued"), ("+14155553501", "queued"), ("+14155553501", "Acknowledged")]
    assert rows[0]["msg_body"].endswith(" Reply ACK 3500 to acknowledge.")
    [note] = sandbox.rest.notes(3500)
    assert "Twilio page acknowledged" in str(note) and "tier 2" in str(note)


def test_page_playbook_calls_a_voice_entry_and_writes_the_calls_row(sandbox, soar):
    sandbox.twilio.script_calls("+14155553601", "answer", press="1")
    run = soar.run_playbook(PAGE, incident_id=3600, inputs={
        "twilio_page_tiers": "+353861233601; voice:+14155553601", "twilio_escalate_after": "2s"})
    assert run.error is None, run.error
    rows = sandbox.rest.rows(3600, LOG)
    assert [(r["phone_number"], r["status"], r["direction"]) for r in rows] == [
        ("+353861233601", "queued", "outbound-api"), ("+14155553601", "Call acknowledged", "outbound-call")]
    assert rows[1]["msg_body"] == "pressed 1: acknowledged" and rows[1]["message_id"].startswith("FN")
    [note] = sandbox.rest.notes(3600)
    assert "by voice (pressed 1 on the call) (tier 2)" in str(note)


@pytest.mark.parametrize("playbook,form,named", [
    (SEND, {"twilio_sms_message": "no one to send to"}, "twilio_sms_destination"),
    (SEND, {"twilio_sms_destination": "  ", "twilio_sms_message": "blank"}, "twilio_sms_destination"),
    (RECEIVE, {"twilio_wait_timeout": "0s"}, "twilio_phone_number"),
    (RECEIVE, {"twilio_sms_destination": "+353861234401", "twilio_wait_timeout": "soon"},
     "twilio_wait_timeout"),
    (PAGE, {"twilio_page_tiers": "+353861234401", "twilio_escalate_after": "0s"}, "twilio_escalate_after"),
])
def test_bad_form_values_give_the_function_message_and_send_nothing(sandbox, soar, playbook, form, named):
    before = len(sandbox.twilio.messages)
    notes, rows = len(sandbox.rest.notes(3400)), len(sandbox.rest.rows(3400, LOG))
    run = soar.run_playbook(playbook, incident_id=3400, inputs=form)
    assert run.error is not None and named in run.error, run.error
    assert "Traceback" not in run.error
    assert run.post is None                       # the local script does not run after a failed function
    run_record = sandbox.rest.playbook_instances[run.playbook_instance_id]
    assert run_record["status"] == "error" and named in run_record["detail_msg"]
    assert len(sandbox.twilio.messages) == before
    assert (len(sandbox.rest.notes(3400)), len(sandbox.rest.rows(3400, LOG))) == (notes, rows)
