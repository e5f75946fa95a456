"""The voice core (fn_twilio.lib.voice) against the Twilio emulator over HTTP in real time, through the real
twilio SDK and the app's own client: the flow made and found again, real executions started with
client.studio.v2.flows(...).executions.create and followed by the shared call watcher until each call's
outcome is known, and the app's requests checked against Twilio's OpenAPI specs."""
from __future__ import annotations

import json
import re
import time

import pytest

from fn_twilio.lib import voice
from fn_twilio.lib.errors import MAY_HAVE_CALLED
from fn_twilio.lib.settings import load_settings
from fn_twilio.lib.twilio_client import build_client
from fn_twilio.lib.voice import (CallOutcome, VoiceError, ensure_flow, forget_flows, start_call, start_calls,
                                 wait_for_calls)
from sandbox import twilio_spec
from sandbox.twilio_emulator import ACCOUNT_SID, AUTH_TOKEN, SENDER

TEXT = "Incident 2101 Phishing wave (High) needs you"

# number, script, outcome, status
SCRIPTED = [
    ("+353861230001", dict(action="answer", press="1"), CallOutcome.ACKNOWLEDGED, "completed"),
    ("+353861230002", dict(action="answer", press="2"), CallOutcome.DECLINED, "completed"),
    ("+353861230003", dict(action="answer"), CallOutcome.NO_KEY, "completed"),
    ("+353861230004", dict(action="machine"), CallOutcome.MACHINE, "completed"),
    ("+353861230005", dict(action="fax"), CallOutcome.MACHINE, "completed"),
    ("+353861230006", dict(action="busy"), CallOutcome.BUSY, "busy"),
    ("+353861230007", dict(action="no-answer"), CallOutcome.NOT_ANSWERED, "no-answer"),
    ("+353861230008", dict(action="fail"), CallOutcome.FAILED, "failed"),
]


@pytest.fixture(autouse=True)
def fresh_flows():
    forget_flows()
    yield
    forget_flows()


def settings_for(twilio, **extra):
    return load_settings({"twilio_account_sid": ACCOUNT_SID, "twilio_auth_token": AUTH_TOKEN,
                          "twilio_src_address": SENDER, "twilio_base_url": twilio.base_url,
                          "poll_interval": "0.2s", "timeout": "5", **extra})


def test_the_flow_is_created_then_found_after_a_restart_and_updated_when_its_definition_changed(twilio):
    s = settings_for(twilio)
    created = ensure_flow(build_client(s), s)
    assert created.how == "created" and created.revision == 1
    forget_flows()                                              # another process, or a restart
    found = ensure_flow(build_client(s), s)
    assert (found.sid, found.how) == (created.sid, "found")
    client = build_client(s)
    definition = voice.load_definition()
    definition["description"] = "edited by hand in the console"
    client.studio.v2.flows(created.sid).update(status="published", definition=definition)
    forget_flows()
    updated = ensure_flow(build_client(s), s)
    assert (updated.sid, updated.how, updated.revision) == (created.sid, "updated", 3)
    assert [f["sid"] for f in twilio.flows] == [created.sid]
    assert voice.readable_problems(twilio.flows[0]["definition"]) == []


def test_calls_run_as_real_executions_and_every_outcome_is_read_from_the_context(twilio):
    for number, script, _, _ in SCRIPTED:
        twilio.script_calls(number, ring=0.1, press_after=0.1, **script)
    s = settings_for(twilio, voice_sender=SENDER)
    flow = ensure_flow(build_client(s), s)
    starts = start_calls(s, flow, [n for n, *_ in SCRIPTED], TEXT, "2101")
    assert all(start.started for start in starts)
    calls = [start.placed for start in starts]
    reports, failure = wait_for_calls(s, calls, time.monotonic() + 20)
    assert failure is None
    assert [(r.to, r.outcome, r.status) for r in reports] == [(n, o, st) for n, _, o, st in SCRIPTED]
    assert all(r.ended and r.code == "2101" and r.reason for r in reports)
    by_number = {e["contact_channel_address"]: e for e in twilio.executions}
    for number in ("+353861230001", "+353861230002", "+353861230003"):
        assert by_number[number]["said"] == [f"{TEXT}\n\n{TEXT}\n\nPress 1 to acknowledge, 2 to decline."]
    assert by_number["+353861230004"]["said"] == []            # a machine is not asked for a key
    assert {c["to"]: c["from"] for c in twilio.calls}["+353861230001"] == SENDER


def test_following_k_calls_costs_one_list_and_at_most_k_reads_per_look(twilio):
    numbers = [f"+3538612310{i:02d}" for i in range(6)]
    for number in numbers:
        twilio.script_calls(number, "answer", press="1", ring=0.6, press_after=0.6)
    s = settings_for(twilio)
    flow = ensure_flow(build_client(s), s)
    calls = [start.placed for start in start_calls(s, flow, numbers, TEXT, "2101")]
    twilio.clear_requests()
    reports, _ = wait_for_calls(s, calls, time.monotonic() + 20)
    assert all(r.acknowledged for r in reports)
    looks, current = [], None
    for record in twilio.requests:
        if record.method == "GET" and record.path.endswith("/Executions"):
            current = []
            looks.append(current)
        else:
            assert current is not None and record.path.endswith("/Context"), record.path
            current.append(record.path)
    assert looks and all(len(reads) <= len(numbers) for reads in looks)
    assert sum(len(reads) for reads in looks) < len(looks) * len(numbers)   # unchanged calls are not read


def test_a_caller_that_cannot_call_fails_the_call_and_a_studio_flow_sid_is_checked(twilio):
    twilio.set_voice_capable(SENDER, False)
    s = settings_for(twilio)
    flow = ensure_flow(build_client(s), s)
    start = start_call(build_client(s), s, flow, "+353861230001", TEXT, "2101")
    (report,), _ = wait_for_calls(s, [start.placed], time.monotonic() + 10)
    assert report.outcome is CallOutcome.FAILED and twilio.calls == []
    forget_flows()
    unknown = settings_for(twilio, studio_flow_sid="FW" + "0" * 32)
    with pytest.raises(VoiceError, match=r"studio_flow_sid FW0{32} is not a Studio Flow of this Twilio"):
        ensure_flow(build_client(unknown), unknown)
    other = build_client(s).studio.v2.flows.create(friendly_name="IVR", status="published", definition={
        "initial_state": "Trigger", "states": [{"name": "Trigger", "type": "trigger", "transitions": []}]})
    theirs = settings_for(twilio, studio_flow_sid=other.sid)
    with pytest.raises(VoiceError, match="is not a flow the app can read"):
        ensure_flow(build_client(theirs), theirs)


def test_studio_faults_follow_the_errors_table_over_http(twilio):
    s = settings_for(twilio)
    flow = ensure_flow(build_client(s), s)
    twilio.inject_fault("status", path_contains="/Executions", status=429, retry_after=0)
    retried = start_call(build_client(s), s, flow, "+353861230001", TEXT, "2101")
    assert retried.started and retried.attempts == 2
    twilio.inject_fault("garbage", path_contains="/Executions")
    unclear = start_call(build_client(s), s, flow, "+353861230002", TEXT, "2101")
    assert not unclear.started and unclear.may_have_called and MAY_HAVE_CALLED in unclear.failure.message
    twilio.inject_fault("status", path_contains="/Executions", status=500)
    server = start_call(build_client(s), s, flow, "+353861230003", TEXT, "2101")
    assert not server.started and server.may_have_called
    twilio.inject_fault("commit_then_drop", path_contains="/Executions")   # started, then the answer is lost
    lost = start_call(build_client(s), s, flow, "+353861230004", TEXT, "2101")
    assert not lost.started and lost.may_have_called
    creates = [r for r in twilio.requests if r.method == "POST" and r.path.endswith("/Executions")]
    assert len(creates) == 5                       # the 429 once more; the others never again
    called = [e["contact_channel_address"] for e in twilio.executions]
    assert called == ["+353861230001", "+353861230004"]      # each person at most once


def test_the_apps_voice_requests_conform_to_twilios_specs(twilio, twilio_openapi, twilio_studio_openapi):
    twilio.script_calls("+353861230001", "answer", press="1", ring=0.1, press_after=0.1)
    s = settings_for(twilio)
    flow = ensure_flow(build_client(s), s)
    forget_flows()
    ensure_flow(build_client(s), s)
    start = start_call(build_client(s), s, flow, "+353861230001", TEXT, "2101")
    wait_for_calls(s, [start.placed], time.monotonic() + 10)
    kinds = set()
    for record in twilio.requests:
        assert record.status in (200, 201), (record.url, record.response_body)
        twilio_spec.validate_request_record(record)
        twilio_spec.validate_response(record)
        kinds.add((record.method, re.sub(r"/(FW|FN)[0-9a-f]{32}", "/{sid}", record.path)))
    assert kinds == {("GET", "/v2/Flows"), ("POST", "/v2/Flows"), ("GET", "/v2/Flows/{sid}"),
                     ("POST", "/v2/Flows/{sid}/Executions"), ("GET", "/v2/Flows/{sid}/Executions"),
                     ("GET", "/v2/Flows/{sid}/Executions/{sid}/Context")}
    create = next(r for r in twilio.requests if r.path.endswith("/Executions") and r.method == "POST")
    assert json.loads(create.form["Parameters"]) == {"text": TEXT, "code": "2101"}
