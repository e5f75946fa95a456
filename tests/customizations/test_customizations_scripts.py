"""Each workflow script, run through sandbox.scripting with realistic function results."""
import re

import pytest

from customizations import definitions as d
from sandbox.scripting import ScriptError, run_script, script_path

INCIDENT = {"id": 2095, "name": "Phishing from example.com", "severity_code": "High"}
ROW_CREATED = re.compile(r"^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2} UTC$")
RECEIVE_WORKFLOWS = ["example_twilio_receive_messages", "twilio_get_responses"]


def test_every_workflow_has_both_scripts():
    import os
    for wf in d.WORKFLOWS:
        for kind in ("pre", "post"):
            assert os.path.isfile(script_path(wf.programmatic_name, kind))


# ---------------------------------------------------------------------------------------------
# Example: Twilio Send SMS
# ---------------------------------------------------------------------------------------------
def test_send_pre_passes_destination_message_and_incident():
    run = run_script(script_path("example_twilio_send_sms", "pre"), incident=INCIDENT,
                     rule_properties={"twilio_sms_destination": "+353861234567, +19788354530",
                                      "twilio_sms_message": "Server down, reply ACK"})
    assert run.inputs == {"twilio_sms_destination": "+353861234567, +19788354530",
                          "twilio_sms_message": "Server down, reply ACK",
                          "incident_id": 2095}
    assert run.notes == [] and run.rows == []


def test_send_pre_requests_an_acknowledgement_when_asked():
    run = run_script(script_path("example_twilio_send_sms", "pre"), incident=INCIDENT,
                     rule_properties={"twilio_sms_destination": "+353861234567", "twilio_request_ack": True})
    assert run.inputs["twilio_request_ack"] is True and run.inputs["incident_id"] == 2095


@pytest.mark.parametrize("message", [None, "", "   "])
def test_send_pre_leaves_message_empty_for_the_default_text(message):
    run = run_script(script_path("example_twilio_send_sms", "pre"), incident=INCIDENT,
                     rule_properties={"twilio_sms_destination": "+353861234567",
                                      "twilio_sms_message": message})
    assert "twilio_sms_message" not in run.inputs
    assert run.inputs["incident_id"] == 2095


def test_send_post_three_recipients_one_invalid(send_results_one_invalid):
    run = run_script(script_path("example_twilio_send_sms", "post"), incident=INCIDENT,
                     results=send_results_one_invalid)

    assert len(run.notes) == 3 and all(n["rich"] for n in run.notes)
    sent, sent2, failed = (n["text"] for n in run.notes)
    assert "Twilio SMS sent" in sent and "+353861234567" in sent
    assert "SM0123456789abcdef0123456789abcdef" in sent and "queued" in sent
    assert "+19788354530" in sent2
    assert "Unable to send Twilio SMS" in failed and "12345" in failed
    assert "no default_region" in failed
    for text in (sent, sent2, failed):  # user text is escaped, markup is ours
        assert "<needs>" not in text and "&lt;needs&gt; you &amp; your team" in text

    rows = run.rows_of("twilio_sms_log")
    assert [t for t, _ in run.rows] == ["twilio_sms_log"] * 3
    first, second, third = rows
    assert first["status"] == "queued" and second["status"] == "queued"
    assert first["message_id"] == "SM0123456789abcdef0123456789abcdef"   # the SID, not null
    assert second["message_id"] == "SMfedcba9876543210fedcba9876543210"
    assert first["date_created"] == 1764151201000                        # epoch ms
    assert first["phone_number"] == "+353861234567"
    assert first["direction"] == "outbound-api"
    assert first["msg_body"] == "Incident 2095 <needs> you & your team: reply ACK"
    assert third == {
        "row_created": third["row_created"], "status": "Failed", "date_created": None,
        "phone_number": "12345", "direction": "outbound-api",
        "msg_body": "12345 is not a valid phone number: it has no country code and no "
                    "default_region is set",
        "message_id": None}
    assert all(ROW_CREATED.match(r["row_created"]) for r in rows)


def test_send_post_twilio_error_keeps_code_and_text(send_results_twilio_error):
    run = run_script(script_path("example_twilio_send_sms", "post"), incident=INCIDENT,
                     results=send_results_twilio_error)
    (row,) = run.rows_of("twilio_sms_log")
    assert row["status"] == "Failed"
    assert row["msg_body"] == "Error 21610: Attempt to send to unsubscribed recipient"
    (note,) = run.notes
    assert "Unable to send" in note["text"]
    assert "Error 21610: Attempt to send to unsubscribed recipient" in note["text"]


def test_send_post_without_entries_says_why():
    run = run_script(script_path("example_twilio_send_sms", "post"), incident=INCIDENT,
                     results={"success": False, "reason": "no <valid> recipient",
                              "inputs": {}, "twilio_status": []})
    assert run.rows == []
    (note,) = run.notes
    assert "nothing was sent" in note["text"] and "no &lt;valid&gt; recipient" in note["text"]


# ---------------------------------------------------------------------------------------------
# Receiving
# ---------------------------------------------------------------------------------------------
def test_example_receive_pre_maps_rule_fields():
    run = run_script(script_path("example_twilio_receive_messages", "pre"), incident=INCIDENT,
                     rule_properties={"twilio_sms_destination": "+353861234567",
                                      "twilio_after_date_ts": 1764151201000,
                                      "twilio_wait_timeout": "5m"})
    assert run.inputs == {"twilio_phone_number": "+353861234567",
                          "twilio_date_sent_ts": 1764151201000,
                          "twilio_wait_timeout": "5m"}


def test_example_receive_pre_with_only_the_number():
    run = run_script(script_path("example_twilio_receive_messages", "pre"), incident=INCIDENT,
                     rule_properties={"twilio_sms_destination": "+353861234567"})
    assert run.inputs == {"twilio_phone_number": "+353861234567", "twilio_date_sent_ts": None,
                          "twilio_wait_timeout": None}


def test_get_responses_pre_reads_the_row_since_its_creation():
    row = {"row_created": "2025-11-26 10:00:02 UTC", "status": "queued",
           "date_created": 1764151201000, "phone_number": "+353861234567",
           "direction": "outbound-api", "msg_body": "Server down",
           "message_id": "SM0123456789abcdef0123456789abcdef"}
    run = run_script(script_path("twilio_get_responses", "pre"), incident=INCIDENT, row=row)
    assert run.inputs == {"twilio_phone_number": "+353861234567",
                          "twilio_date_sent_ts": 1764151201000}


@pytest.mark.parametrize("workflow", RECEIVE_WORKFLOWS)
def test_receive_post_adds_a_row_per_reply(workflow, receive_results_replies):
    run = run_script(script_path(workflow, "post"), incident=INCIDENT,
                     results=receive_results_replies,
                     row=({"phone_number": "+353861234567", "date_created": 1764151201000}
                          if workflow == "twilio_get_responses" else None))
    assert run.notes == []
    first, second = run.rows_of("twilio_sms_log")
    assert first["message_id"] == "SMaaaa0000000000000000000000000001"
    assert first["date_created"] == 1764151333000
    assert first["status"] == "received" and first["direction"] == "inbound"
    assert first["phone_number"] == "+353861234567" and first["msg_body"] == "ACK"
    assert second["msg_body"] == "On my way <10 min>"     # rows hold text, not HTML
    assert ROW_CREATED.match(first["row_created"])


@pytest.mark.parametrize("workflow", RECEIVE_WORKFLOWS)
def test_receive_post_timeout_gives_a_note(workflow, receive_results_timeout):
    run = run_script(script_path(workflow, "post"), incident=INCIDENT,
                     results=receive_results_timeout)
    assert run.rows == []
    (note,) = run.notes
    assert note["text"].startswith("<b>Twilio: no reply</b> from +353861234567: ")
    assert "Timeout waiting for responses for phone number: +353861234567 since " \
           "2025-11-26 10:00:01+00:00" in note["text"]


@pytest.mark.parametrize("workflow", RECEIVE_WORKFLOWS)
def test_receive_post_terminated_workflow(workflow, receive_results_timeout):
    results = dict(receive_results_timeout, reason="Workflow was terminated: <by admin>")
    run = run_script(script_path(workflow, "post"), incident=INCIDENT, results=results)
    (note,) = run.notes
    assert "Workflow was terminated: &lt;by admin&gt;" in note["text"]


def test_receive_workflows_share_one_post_script():
    assert script_path(RECEIVE_WORKFLOWS[0], "post") == script_path(RECEIVE_WORKFLOWS[1], "post")


def test_send_then_get_responses_chain(send_results_one_invalid, receive_results_replies):
    """The row the send script writes is what the Get Responses rule runs on."""
    send = run_script(script_path("example_twilio_send_sms", "post"), incident=INCIDENT,
                      results=send_results_one_invalid)
    outbound = send.rows_of("twilio_sms_log")[0]
    pre = run_script(script_path("twilio_get_responses", "pre"), incident=INCIDENT,
                     row=outbound)
    assert pre.inputs == {"twilio_phone_number": "+353861234567",
                          "twilio_date_sent_ts": 1764151201000}
    post = run_script(script_path("twilio_get_responses", "post"), incident=INCIDENT,
                      row=outbound, results=receive_results_replies)
    assert len(post.rows) == 2


def test_scripts_fail_on_a_result_of_the_wrong_shape(receive_results_replies):
    """The send post script reads top-level keys; a ResultPayload-wrapped value has none."""
    wrapped = dict(receive_results_replies, content={"twilio_status": "not a list"})
    run = run_script(script_path("example_twilio_send_sms", "post"), incident=INCIDENT,
                     results=wrapped)
    assert run.rows == [] and "nothing was sent" in run.notes[0]["text"]
    with pytest.raises(ScriptError):
        run_script(script_path("example_twilio_receive_messages", "post"), incident=INCIDENT,
                   results={"success": True, "content": [{"date_created_ts": "2025-11-26"}]})


@pytest.mark.parametrize("workflow", RECEIVE_WORKFLOWS)
def test_receive_post_never_drops_a_reply(workflow, receive_results_replies):
    """2.0.x reported a late reply with success false and its script dropped it (peers.md §3.4)."""
    results = dict(receive_results_replies, success=False, reason=None)
    run = run_script(script_path(workflow, "post"), incident=INCIDENT, results=results)
    assert len(run.rows) == 2 and run.notes == []


# ---------------------------------------------------------------------------------------------
# Label: every example passes its rule's (or playbook's) Label field to the function's twilio_label
# ---------------------------------------------------------------------------------------------
LOG_ROW = {"row_created": "2025-11-26 10:00:02 UTC", "status": "queued", "date_created": 1764151201000,
           "phone_number": "+353861234567", "direction": "outbound-api", "msg_body": "Server down",
           "message_id": "SM0123456789abcdef0123456789abcdef"}
FORMS = {   # the other fields each example needs
    "example_twilio_send_sms": {"twilio_sms_destination": "+353861234567"},
    "example_twilio_receive_messages": {"twilio_sms_destination": "+353861234567"},
    "twilio_get_responses": {},
    "twilio_update_delivery_status": {},
    "example_twilio_page_on_call": {"twilio_page_tiers": "+353861234567; +14155552345"},
}


def _label_runs(workflow, label):
    """The example's pre-processing script (workflow form) and function input script (playbook form)."""
    from customizations import playbooks as pb
    wf = next(w for w in d.WORKFLOWS if w.programmatic_name == workflow)
    form = {**FORMS[workflow], "twilio_label": label}
    row = {"row": LOG_ROW} if wf.object_type == d.SMS_LOG.name else {}
    playbook = next(p for p in pb.all_playbooks(d) if p.workflow == workflow)
    return (run_script(script_path(workflow, "pre"), incident=INCIDENT, rule_properties=form, **row),
            run_script(playbook.input_script(), incident=INCIDENT, context="playbook", playbook_inputs=form,
                       **row))


@pytest.mark.parametrize("workflow", sorted(FORMS))
@pytest.mark.parametrize("label, passed", [("eu", "eu"), ("  us-east \n", "us-east"), ("", None),
                                           ("   ", None), (None, None)])
def test_every_example_passes_its_label_field_to_twilio_label(workflow, label, passed):
    assert {w.programmatic_name for w in d.WORKFLOWS} == set(FORMS)
    for run in _label_runs(workflow, label):
        assert run.inputs.get("twilio_label") == passed
        assert ("twilio_label" in run.inputs) is (passed is not None)   # empty: the function's default
