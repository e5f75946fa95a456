"""The voice tier of twilio_page (contract §14) through the real ``resilient-circuits run`` against the
sandbox SOAR and the Twilio emulator (calls run as executions of the app's Studio flow, each number
following its call script).

* Two pages through one flow, made once: the first has a tier whose calls are not answered, busy and
  answered by a machine (everyone out: the next tier at once), then a call acknowledged by pressing 1;
  the second has a call declined by pressing 2, then a called person who presses nothing and
  acknowledges by SMS.
* A crash mid-call (SIGKILL while the call rings): the page delivered again to another instance follows
  the call its first run placed and never calls again; the key pressed meanwhile acknowledges it.

One module-scoped sandbox, poll_interval 0.5 s, short rings; the built-in broker.
"""
import threading
import time
from collections import Counter

import pytest

from e2e_helpers import requires_app, requires_export
from sandbox.soar.sandbox import Sandbox

pytestmark = [pytest.mark.e2e, requires_app, requires_export]

NOBODY, BUSY, MACHINE, DANA = "+353861230001", "+353861230002", "+353861230003", "+353861230004"
ERIN, FRANK, GRACE = "+353861230005", "+353861230006", "+353861230007"


@pytest.fixture(scope="module")
def sandbox():
    with Sandbox(preload="app", app_settings={"poll_interval": "0.5s"}) as sandbox:
        sandbox.run_app(timeout=90)
        yield sandbox


def wait_until(predicate, timeout, what):
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError(what)
        time.sleep(0.05)


def executions_to(twilio, number):
    return [e for e in twilio.executions if e["contact_channel_address"] == number]


def events(content, *names):
    return [(e["event"], e["tier"], e["phone_number"], e.get("channel"), e["detail"])
            for e in content["timeline"] if e["event"] in names]


def texts_when_called(twilio, number, body, timeout=30.0):
    """``number`` sends an SMS once it has been called (the person answered, pressed nothing, texted)."""
    def run():
        try:
            wait_until(lambda: executions_to(twilio, number), timeout, f"{number} was never called")
        except TimeoutError:
            return
        twilio.inject_inbound(from_=number, body=body)
    threading.Thread(target=run, daemon=True).start()


def test_two_pages_call_through_one_flow_every_outcome_drives_the_page(sandbox):
    twilio, soar = sandbox.twilio, sandbox.driver()
    twilio.script_calls(NOBODY, "no-answer", ring=0.5)
    twilio.script_calls(BUSY, "busy", ring=0.2)
    twilio.script_calls(MACHINE, "machine", ring=0.2)
    twilio.script_calls(DANA, "answer", press="1")

    first = soar.start_function("twilio_page", {
        "twilio_page_tiers": f"voice:{NOBODY}, voice:{BUSY}, voice:{MACHINE}; voice:{DANA}",
        "twilio_escalate_after": "5m", "incident_id": 2106, "twilio_sms_message": "Incident 2106 needs you."})
    first.wait(60)
    assert first.error is None, first.error
    content = first.results["content"]
    assert first.results["success"] is True and (content["acknowledged_by"], content["tier"]) == (DANA, 2)
    assert first.elapsed < 60, "tier 1 all out: tier 2 was called at once, not after the 5m window"
    failed = {number: detail for _, _, number, channel, detail in events(content, "call_failed")
              if channel == "voice"}
    assert failed == {NOBODY: "the call was not answered", BUSY: "the line was busy",
                      MACHINE: "an answering machine (machine_start) answered"}
    assert events(content, "acknowledged") == [("acknowledged", 2, DANA, "voice", "pressed 1: acknowledged")]
    assert [(p["phone_number"], p["outcome"]) for p in content["pages"]] == [
        (NOBODY, "not_answered"), (BUSY, "busy"), (MACHINE, "machine"), (DANA, "acknowledged")]
    said = executions_to(twilio, DANA)[0]["said"][0]
    assert said.startswith("Incident 2106 needs you.") and "Reply ACK" not in said

    twilio.script_calls(ERIN, "answer", press="2")
    twilio.script_calls(FRANK, "answer", press=None, press_after=0.3)   # answers, presses nothing
    texts_when_called(twilio, FRANK, "ACK 2107")
    second = soar.start_function("twilio_page", {
        "twilio_page_tiers": f"voice:{ERIN}; voice:{FRANK}", "twilio_escalate_after": "5m",
        "incident_id": 2107, "twilio_sms_message": "Incident 2107 needs you."})
    second.wait(60)
    assert second.error is None, second.error
    content = second.results["content"]
    assert second.results["success"] is True and (content["acknowledged_by"], content["tier"]) == (FRANK, 2)
    assert events(content, "declined") == [("declined", 1, ERIN, "voice", "pressed 2: declined")]
    assert events(content, "acknowledged") == [("acknowledged", 2, FRANK, None, "ACK 2107")]   # by SMS
    assert [r["message_body"] for r in content["replies"]] == ["ACK 2107"]

    # one flow, made once, and both pages' calls ran in it; nobody was called twice or texted
    assert len(twilio.flows) == 1
    flow_creates = [r for r in twilio.requests if r.method == "POST" and r.path == "/v2/Flows"]
    assert len(flow_creates) == 1
    assert {e["flow_sid"] for e in twilio.executions} == {twilio.flows[0]["sid"]}
    assert Counter(e["contact_channel_address"] for e in twilio.executions) == \
        Counter({n: 1 for n in (NOBODY, BUSY, MACHINE, DANA, ERIN, FRANK)})
    assert twilio.outbound_messages() == []


def test_a_page_killed_mid_call_follows_its_first_runs_call_and_never_calls_again(sandbox):
    twilio, soar = sandbox.twilio, sandbox.driver()
    twilio.script_calls(GRACE, "answer", press="1", ring=1.0, press_after=8.0)
    call = soar.start_function("twilio_page", {
        "twilio_page_tiers": f"voice:{GRACE}", "twilio_escalate_after": "5m", "incident_id": 2108,
        "twilio_sms_message": "Incident 2108 needs you."})
    wait_until(lambda: executions_to(twilio, GRACE), 30, "Grace was never called")
    sandbox.app.kill()
    assert not call.completed
    second = sandbox.launcher("second-instance")
    second.start(timeout=90)
    try:
        call.wait(60)
    finally:
        second.stop()
        sandbox.app.start(timeout=90)
    assert call.error is None, call.error
    content = call.results["content"]
    assert call.results["success"] is True and content["acknowledged_by"] == GRACE
    assert len(executions_to(twilio, GRACE)) == 1, "the redelivered page called nobody again"
    (entry,) = content["pages"]
    assert entry["already_sent"] is True and entry["sid"] == executions_to(twilio, GRACE)[0]["sid"]
    assert events(content, "acknowledged") == [("acknowledged", 1, GRACE, "voice", "pressed 1: acknowledged")]
    assert any(s.startswith("Redelivered page: resuming; 1 person was already paged") for s in call.statuses)
