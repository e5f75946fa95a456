"""The emulator's voice side: Calls (2010-04-01) and Studio v2 Flows that it runs, through the real SDK.

A manual clock drives the emulator, so every state of a call and an execution is looked at when it is
due, without sleeping."""
from __future__ import annotations

import json
import threading
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
import requests
from twilio.base.exceptions import TwilioException, TwilioRestException

from sandbox.twilio_emulator import (ACCOUNT_SID, AUTH_TOKEN, SENDER, CallScript, RemoteEmulator,
                                     TwilioEmulator)
from tests.emulator.conftest import sdk_client

ROOT = Path(__file__).resolve().parents[2]
FLOW = json.loads((ROOT / "fn_twilio" / "lib" / "data" / "page_call_flow.json").read_text())
ALICE = "+353861234567"
BOB = "+353861234568"
TWIML = "<Response><Say>Incident 2101</Say></Response>"


class ManualClock:
    def __init__(self):
        self.now = datetime(2026, 3, 1, 9, 0, tzinfo=timezone.utc)
        self.lock = threading.Lock()

    def __call__(self):
        with self.lock:
            return self.now

    def advance(self, seconds):
        with self.lock:
            self.now += timedelta(seconds=seconds)


@pytest.fixture(scope="module")
def clocked():
    clock = ManualClock()
    with TwilioEmulator(clock=clock) as emu:
        yield emu, clock


@pytest.fixture
def emu(clocked):
    emulator, _ = clocked
    emulator.reset()
    yield emulator
    emulator.reset()


@pytest.fixture
def clock(clocked):
    return clocked[1]


@pytest.fixture
def client(emu):
    return sdk_client(emu)


@pytest.fixture
def flow(client):
    return client.studio.v2.flows.create(friendly_name="fn_twilio page call", status="published",
                                         definition=FLOW)


def run(client, flow, to=ALICE, text="Incident 2101 Phishing wave (High) needs you", code="2101"):
    return client.studio.v2.flows(flow.sid).executions.create(to=to, from_=SENDER,
                                                              parameters={"text": text, "code": code})


def context(client, flow, execution):
    return client.studio.v2.flows(flow.sid).executions(execution.sid).execution_context().fetch().context


def status(client, flow, execution):
    return client.studio.v2.flows(flow.sid).executions(execution.sid).fetch().status


# -- Calls --------------------------------------------------------------------------------------------
CALL_CASES = [
    # action, detection, status after ringing, answered_by, final status
    ("answer", None, "in-progress", None, "completed"),
    ("answer", "Enable", "in-progress", "human", "completed"),
    ("machine", "Enable", "in-progress", "machine_start", "completed"),
    ("machine", "DetectMessageEnd", "in-progress", "machine_end_beep", "completed"),
    ("machine", None, "in-progress", None, "completed"),
    ("fax", "Enable", "in-progress", "fax", "completed"),
    ("no-answer", "Enable", "no-answer", None, "no-answer"),
    ("busy", None, "busy", None, "busy"),
]


@pytest.mark.parametrize("action,detection,decided,answered_by,final", CALL_CASES)
def test_a_call_goes_queued_ringing_then_as_its_number_is_scripted(emu, clock, client, action, detection,
                                                                   decided, answered_by, final):
    emu.script_calls(ALICE, action, ring=5, press_after=7, queue=1)
    extra = {"machine_detection": detection} if detection else {}
    call = client.calls.create(to=ALICE, from_=SENDER, twiml=TWIML, **extra)
    assert (call.status, call.start_time, call.duration, call.answered_by) == ("queued", None, None, None)
    assert call.sid.startswith("CA") and call.direction == "outbound-api" and call.to == ALICE
    clock.advance(1)
    ringing = client.calls(call.sid).fetch()
    assert ringing.status == "ringing" and ringing.start_time == clock.now and ringing.end_time is None
    clock.advance(5)
    after = client.calls(call.sid).fetch()
    assert (after.status, after.answered_by) == (decided, answered_by)
    clock.advance(7)
    ended = client.calls(call.sid).fetch()
    assert ended.status == final
    if final == "completed":
        assert ended.duration == "7" and ended.price and ended.end_time == clock.now
    else:
        assert ended.duration == "0" and ended.end_time == clock.now - timedelta(seconds=7)


def test_a_call_that_fails_ends_failed_at_once(emu, clock, client):
    emu.script_calls(ALICE, "fail", ring=30)
    call = client.calls.create(to=ALICE, from_=SENDER, url="https://example.com/twiml")
    assert client.calls(call.sid).fetch().status == "failed"


CALL_ERRORS = [
    ({"From": SENDER, "Twiml": TWIML}, 21201),
    ({"To": ALICE, "Twiml": TWIML}, 21213),
    ({"To": ALICE, "From": SENDER}, 21205),
    ({"To": "12345", "From": SENDER, "Twiml": TWIML}, 21211),
    ({"To": ALICE, "From": "+15005550009", "Twiml": TWIML}, 21210),
    ({"To": ALICE, "From": SENDER, "Twiml": TWIML, "MachineDetection": "Sometimes"}, 21218),
]


@pytest.mark.parametrize("form,code", CALL_ERRORS)
def test_call_creates_are_refused_with_twilios_codes(emu, form, code):
    answer = requests.post(f"{emu.base_url}/2010-04-01/Accounts/{ACCOUNT_SID}/Calls.json", data=form,
                           auth=(ACCOUNT_SID, AUTH_TOKEN), timeout=5)
    body = answer.json()
    assert (answer.status_code, body["code"], body["status"]) == (400, code, 400)
    assert list(body) == ["code", "message", "more_info", "status"] and body["message"]
    assert emu.calls == []


def test_a_number_without_voice_cannot_call_and_says_so_in_its_capabilities(emu, client):
    emu.set_voice_capable(SENDER, False)
    with pytest.raises(TwilioRestException) as caught:
        client.calls.create(to=ALICE, from_=SENDER, twiml=TWIML)
    assert caught.value.code == 21210
    (number,) = client.incoming_phone_numbers.list(phone_number=SENDER)
    assert number.capabilities["voice"] is False and number.capabilities["sms"] is True
    emu.set_voice_capable(SENDER, True)
    assert client.incoming_phone_numbers.list(phone_number=SENDER)[0].capabilities["voice"] is True


def test_calls_list_filters_and_pages_without_repeats(emu, clock, client):
    emu.script_calls(BOB, "busy", ring=0)
    made = []
    for to in (ALICE, BOB, ALICE, BOB, ALICE):
        made.append(client.calls.create(to=to, from_=SENDER, twiml=TWIML).sid)
        clock.advance(1)
    assert [c.sid for c in client.calls.list(to=ALICE)] == [made[4], made[2], made[0]]
    assert {c.sid for c in client.calls.list(status="busy")} == {made[1], made[3]}
    assert client.calls.list(from_="+15005550009") == []
    streamed = [c.sid for c in client.calls.stream(page_size=2)]
    assert streamed == list(reversed(made))


def test_a_call_can_be_hung_up_or_canceled(emu, clock, client):
    emu.script_calls(ALICE, "answer", ring=1, press_after=60)
    talking = client.calls.create(to=ALICE, from_=SENDER, twiml=TWIML)
    emu.script_calls(BOB, "answer", ring=30)
    ringing = client.calls.create(to=BOB, from_=SENDER, twiml=TWIML)
    clock.advance(2)
    assert client.calls(talking.sid).update(status="completed").status == "completed"
    assert client.calls(ringing.sid).update(status="canceled").status == "canceled"
    with pytest.raises(TwilioRestException) as caught:
        client.calls("CA" + "0" * 32).fetch()
    assert (caught.value.status, caught.value.code) == (404, 20404)


# -- Studio Flows -------------------------------------------------------------------------------------
def test_a_flow_is_created_listed_fetched_and_updated_in_place(emu, clock, client):
    created = client.studio.v2.flows.create(friendly_name="fn_twilio page call", status="published",
                                            definition=FLOW, commit_message="first")
    assert created.sid.startswith("FW") and created.revision == 1 and created.valid is True
    assert (created.errors, created.definition, created.commit_message) == ([], FLOW, "first")
    (listed,) = client.studio.v2.flows.list()
    assert listed.sid == created.sid and listed.friendly_name == "fn_twilio page call"
    assert listed.definition is None   # a list does not carry definitions: fetch one to read it
    assert client.studio.v2.flows(created.sid).fetch().definition == FLOW
    same = client.studio.v2.flows(created.sid).update(status="published", definition=FLOW)
    assert same.revision == 1
    changed = dict(FLOW, description="another")
    clock.advance(1)
    updated = client.studio.v2.flows(created.sid).update(status="published", definition=changed,
                                                         commit_message="second")
    assert (updated.revision, updated.commit_message, updated.sid) == (2, "second", created.sid)
    assert updated.date_updated == clock.now
    assert len(client.studio.v2.flows.list()) == 1


@pytest.mark.parametrize("definition,why", [
    ({"states": []}, "no states"),
    ({"initial_state": "Nowhere", "states": FLOW["states"]}, "initial_state"),
    ({"initial_state": "Trigger", "states": [dict(FLOW["states"][0], type="teleport")]},
     "unknown widget type"),
    ({"initial_state": "Trigger", "states": FLOW["states"][:1]}, "'call', which is not a state"),
])
def test_an_invalid_definition_is_refused_with_the_reason(emu, client, definition, why):
    with pytest.raises(TwilioRestException) as caught:
        client.studio.v2.flows.create(friendly_name="broken", status="published", definition=definition)
    assert (caught.value.status, caught.value.code) == (400, 20001)
    assert why in caught.value.msg
    assert emu.flows == []


def test_unknown_flows_and_executions_are_404_and_deleting_a_flow_removes_it(emu, client, flow):
    with pytest.raises(TwilioRestException) as caught:
        client.studio.v2.flows("FW" + "0" * 32).fetch()
    assert (caught.value.status, caught.value.code) == (404, 20404)
    with pytest.raises(TwilioRestException):
        client.studio.v2.flows("FW" + "0" * 32).executions.create(to=ALICE, from_=SENDER)
    with pytest.raises(TwilioRestException):
        client.studio.v2.flows(flow.sid).executions("FN" + "0" * 32).execution_context().fetch()
    assert client.studio.v2.flows(flow.sid).delete() is True
    assert client.studio.v2.flows.list() == []


def test_studio_needs_the_accounts_credentials(emu, flow):
    other = sdk_client(emu, password="wrong" * 6 + "xx")
    with pytest.raises(TwilioException):
        other.studio.v2.flows.list()
    assert emu.requests[-1].status == 401


# -- Executions: the flow runs ------------------------------------------------------------------------
RUNS = [
    # script, widgets.call.CallStatus, AnsweredBy, ask.Digits (None: no ask widget), the call's final status
    (CallScript("answer", press="1"), "in-progress", "human", "1", "completed"),
    (CallScript("answer", press="2"), "in-progress", "human", "2", "completed"),
    (CallScript("answer", press="7"), "in-progress", "human", "7", "completed"),
    (CallScript("answer", press="12"), "in-progress", "human", "1", "completed"),
    (CallScript("answer"), "in-progress", "human", None, "completed"),
    (CallScript("machine"), "in-progress", "machine_start", None, "completed"),
    (CallScript("fax"), "in-progress", "fax", None, "completed"),
    (CallScript("no-answer"), "no-answer", None, None, "no-answer"),
    (CallScript("busy"), "busy", None, None, "busy"),
    (CallScript("fail"), "failed", None, None, "failed"),
]


@pytest.mark.parametrize("script,call_status,answered_by,digits,final", RUNS)
def test_an_execution_calls_and_ends_with_twilios_context(emu, clock, client, flow, script, call_status,
                                                          answered_by, digits, final):
    emu.voice.script_calls(ALICE, script)
    execution = run(client, flow)
    assert execution.status == ("ended" if script.action == "fail" else "active")   # a failed call: at once
    assert execution.sid.startswith("FN")
    assert execution.contact_channel_address == ALICE and execution.flow_version == 1
    clock.advance(script.ring + script.press_after + 1)
    assert status(client, flow, execution) == "ended"
    ctx = context(client, flow, execution)
    assert ctx["flow"]["data"] == {"text": "Incident 2101 Phishing wave (High) needs you", "code": "2101"}
    assert ctx["flow"]["channel"]["address"] == SENDER and ctx["contact"]["channel"]["address"] == ALICE
    call = ctx["widgets"]["call"]
    assert call["CallStatus"] == call_status and call.get("AnsweredBy") == answered_by
    assert (ctx["widgets"].get("ask") or {}).get("Digits") == digits
    (placed,) = emu.calls
    assert placed["sid"] == call["CallSid"] and placed["status"] == final
    assert placed["to"] == ALICE and placed["from"] == SENDER


def test_while_it_rings_and_talks_the_execution_is_active_and_its_context_grows(emu, clock, client, flow):
    emu.script_calls(ALICE, "answer", press="1", ring=10, press_after=20)
    execution = run(client, flow)
    assert context(client, flow, execution)["widgets"] == {}
    assert emu.calls[0]["status"] == "ringing"
    clock.advance(10)
    ctx = context(client, flow, execution)
    assert ctx["widgets"]["call"]["CallStatus"] == "in-progress" and "ask" not in ctx["widgets"]
    assert status(client, flow, execution) == "active" and emu.calls[0]["status"] == "in-progress"
    updated = client.studio.v2.flows(flow.sid).executions(execution.sid).fetch().date_updated
    assert updated == clock.now
    clock.advance(20)
    assert status(client, flow, execution) == "ended"
    assert emu.calls[0]["status"] == "completed" and emu.calls[0]["duration"] == "20"
    steps = client.studio.v2.flows(flow.sid).executions(execution.sid).steps.list()
    assert [(s.transitioned_from, s.name, s.transitioned_to) for s in reversed(steps)] == [
        ("Trigger", "incomingRequest", "call"), ("call", "answered", "screen"), ("screen", "noMatch", "ask"),
        ("ask", "keypress", "Ended")]
    fetched = client.studio.v2.flows(flow.sid).executions(execution.sid).steps(steps[0].sid).fetch()
    assert fetched.type == "gather-input-on-call"


def test_the_call_says_the_page_text_twice_then_asks_for_a_key(emu, clock, client, flow):
    emu.script_calls(ALICE, "answer", press="1", ring=0, press_after=0)
    run(client, flow, text="Incident 2101 needs you")
    (execution,) = emu.executions
    assert execution["said"] == ["Incident 2101 needs you\n\nIncident 2101 needs you\n\n"
                                 "Press 1 to acknowledge, 2 to decline."]


def test_a_machine_hears_nothing_and_a_sender_that_cannot_call_fails_its_call(emu, clock, client, flow):
    emu.script_calls(ALICE, "machine", ring=0)
    run(client, flow)
    emu.set_voice_capable(SENDER, False)
    second = run(client, flow, to=BOB)
    first, failed = emu.executions
    assert first["said"] == [] and first["status"] == "ended"
    assert failed["status"] == "ended" and failed["context"]["widgets"]["call"]["CallStatus"] == "failed"
    assert failed["call_sid"] is None and len(emu.calls) == 1
    assert second.status in ("active", "ended")


def test_ending_an_execution_hangs_up_or_cancels_its_call(emu, clock, client, flow):
    emu.script_calls(ALICE, "answer", ring=1, press_after=60)
    talking = run(client, flow)
    emu.script_calls(BOB, "answer", ring=60)
    ringing = run(client, flow, to=BOB)
    clock.advance(2)
    for execution in (talking, ringing):
        ended = client.studio.v2.flows(flow.sid).executions(execution.sid).update(status="ended")
        assert ended.status == "ended"
    assert {c["to"]: c["status"] for c in emu.calls} == {ALICE: "completed", BOB: "canceled"}
    assert client.studio.v2.flows(flow.sid).executions(talking.sid).delete() is True
    with pytest.raises(TwilioRestException):
        client.studio.v2.flows(flow.sid).executions(talking.sid).fetch()


def test_executions_list_newest_first_with_the_specs_filters(emu, clock, client, flow):
    emu.script_calls(BOB, "answer", ring=600)
    first = run(client, flow, to=ALICE)
    clock.advance(5)
    second = run(client, flow, to=BOB)
    clock.advance(5)
    third = run(client, flow, to=ALICE)
    clock.advance(1)
    executions = client.studio.v2.flows(flow.sid).executions
    assert [e.sid for e in executions.list()] == [third.sid, second.sid, first.sid]
    assert [e.sid for e in executions.list(status="active")] == [second.sid]
    assert {e.sid for e in executions.list(status="ended")} == {first.sid, third.sid}
    since = clock.now - timedelta(seconds=7)
    assert [e.sid for e in executions.list(date_created_from=since)] == [third.sid, second.sid]
    assert [e.sid for e in executions.list(date_created_to=clock.now - timedelta(seconds=2))] == [
        second.sid, first.sid]
    assert [e.sid for e in executions.stream(page_size=1)] == [third.sid, second.sid, first.sid]


def test_a_new_revision_applies_to_executions_started_after_it(emu, clock, client, flow):
    emu.script_calls(ALICE, "answer", ring=0, press_after=0)
    run(client, flow)
    quiet = json.loads(json.dumps(FLOW))
    quiet["states"][3]["properties"]["say"] = "Changed: {{flow.data.text}}"
    client.studio.v2.flows(flow.sid).update(status="published", definition=quiet)
    later = run(client, flow, text="x")
    assert later.flow_version == 2
    assert [e["said"] for e in emu.executions][1] == ["Changed: x"]


@pytest.mark.parametrize("form,why", [
    ({"From": SENDER}, "To"), ({"To": ALICE}, "From"),
    ({"To": ALICE, "From": SENDER, "Parameters": "{not json"}, "Parameters")])
def test_an_execution_needs_to_from_and_json_parameters(emu, client, flow, form, why):
    answer = requests.post(f"{emu.base_url}/v2/Flows/{flow.sid}/Executions", data=form,
                           auth=(ACCOUNT_SID, AUTH_TOKEN), timeout=5)
    assert answer.status_code == 400 and why in answer.json()["message"]
    assert emu.executions == []


def test_studio_faults_are_injected_like_the_apis(emu, client, flow):
    emu.inject_fault("status", method="GET", path_contains="/Executions", status=429, retry_after=1)
    with pytest.raises(TwilioException):
        client.studio.v2.flows(flow.sid).executions.list()
    assert emu.requests[-1].status == 429 and emu.requests[-1].response_headers["Retry-After"] == "1"
    emu.inject_fault("garbage", path_contains="/Executions")
    with pytest.raises(ValueError):   # the SDK cannot read the answer (json.JSONDecodeError)
        client.studio.v2.flows(flow.sid).executions.create(to=ALICE, from_=SENDER)
    assert emu.requests[-1].status == 201 and emu.requests[-1].fault == "garbage"


def test_reset_forgets_calls_flows_executions_and_scripts(emu, client, flow):
    emu.script_calls(ALICE, "busy")
    emu.set_voice_capable(SENDER, False)
    run(client, flow)
    emu.reset()
    assert (emu.calls, emu.flows, emu.executions, emu.call_scripts) == ([], [], [], {})
    assert client.incoming_phone_numbers.list(phone_number=SENDER)[0].capabilities["voice"] is True


@pytest.mark.parametrize("bad", [dict(action="shout"), dict(action="busy", press="1"), dict(press="1x"),
                                 dict(ring=-1), dict(press_after="soon")])
def test_a_malformed_call_script_is_refused(bad):
    with pytest.raises(ValueError):
        CallScript(**bad)


def test_the_control_api_drives_voice_from_another_process(emu, clock, client, flow):
    remote = RemoteEmulator(emu.base_url)
    remote.script_calls(ALICE, "answer", press="1", ring=0, press_after=0)
    assert remote.call_scripts == {ALICE: CallScript("answer", "1", 0, 0)}
    run(client, flow)
    (execution,) = remote.executions
    assert execution["context"]["widgets"]["ask"]["Digits"] == "1" and execution["said"]
    (call,) = remote.calls
    assert remote.find_calls(to=ALICE) == [call] and remote.find_calls(to=BOB) == []
    assert remote.call(call["sid"])["status"] == "completed"
    with pytest.raises(KeyError):
        remote.call("CA" + "0" * 32)
    assert [f["sid"] for f in remote.flows] == [flow.sid]
    remote.set_voice_capable(SENDER, False)
    assert client.incoming_phone_numbers.list(phone_number=SENDER)[0].capabilities["voice"] is False
    with pytest.raises(RuntimeError, match="HTTP 400"):
        remote.script_calls(ALICE, "shout")
    remote.clear_call_scripts()
    assert remote.call_scripts == {}
