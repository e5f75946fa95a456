"""A crash in the middle of a page, and of a send with a random code (contract §13.3): the real
``resilient-circuits run`` killed with SIGKILL; the broker delivers the call again to another instance.

* The page resumes from Twilio's log: nobody is texted twice, and an acknowledgement sent while no
  instance ran ends the page at once (the next tier is not paged although its window has passed).
* A send asking for an acknowledgement without incident_id keeps the code its first run texted: every
  recipient gets one text, all with the same code, and the result reports that code.

Once with the built-in broker and once with Debian's ActiveMQ (skipped when it is not installed).
"""
import re
import time
from collections import Counter

import pytest

from e2e_helpers import requires_app, requires_export, wait_until
from sandbox.soar import activemq
from sandbox.soar.sandbox import Sandbox

pytestmark = [pytest.mark.e2e, requires_app, requires_export]

ALICE, BOB, CAROL = "+353861234567", "+14155552345", "+14155552346"
NUMBERS = [f"+3538612345{n:02d}" for n in range(30)]


@pytest.fixture(scope="module", params=["builtin", pytest.param("activemq", marks=pytest.mark.activemq)])
def sandbox(request):
    if request.param == "activemq" and not activemq.available():
        pytest.skip("ActiveMQ (Debian package activemq, with a java runtime) is not installed")
    with Sandbox(preload="app", broker=request.param,
                 app_settings={"poll_interval": "0.5s", "max_concurrency": "2"}) as sandbox:
        sandbox.run_app(timeout=90)
        yield sandbox



def restart_elsewhere(sandbox, call, timeout=60):
    """A second instance takes the redelivered call; the killed one stays down until it answers."""
    second = sandbox.launcher("second-instance")
    second.start(timeout=90)
    try:
        call.wait(timeout)
    finally:
        second.stop()
        sandbox.app.start(timeout=90)


def test_a_page_killed_midway_resumes_and_an_ack_sent_meanwhile_ends_it(sandbox):
    twilio = sandbox.twilio
    twilio.reset()
    soar = sandbox.driver()
    call = soar.start_function("twilio_page", {"twilio_page_tiers": f"{ALICE}; {BOB}; {CAROL}",
                                               "twilio_escalate_after": "4s", "incident_id": 2105,
                                               "twilio_sms_message": "Incident 2105 needs you."})
    wait_until(lambda: twilio.outbound_messages(to=ALICE), 30, "Alice was never paged")
    sandbox.app.kill()
    twilio.inject_inbound(from_=ALICE, body="ack")     # while no instance runs
    time.sleep(5)                                      # tier 2's window passes meanwhile
    assert not call.completed
    restart_elsewhere(sandbox, call)
    assert call.error is None, call.error
    content = call.results["content"]
    assert call.results["success"] is True and content["acknowledged_by"] == ALICE and content["tier"] == 1
    assert Counter(m["to"] for m in twilio.outbound_messages()) == Counter({ALICE: 1}), \
        "nobody texted twice, and no further tier although its window had passed"
    assert content["pages"][0]["already_sent"] is True
    assert any(s.startswith("Redelivered page: resuming; 1 person was already paged") for s in call.statuses)


def test_a_send_with_a_random_code_killed_midway_keeps_its_code(sandbox):
    twilio = sandbox.twilio
    twilio.reset()
    twilio.latency = 0.1
    soar = sandbox.driver()
    try:
        call = soar.start_function("twilio_send_sms", {"twilio_sms_destination": ", ".join(NUMBERS),
                                                       "twilio_sms_message": "Join the bridge.",
                                                       "twilio_request_ack": True})
        wait_until(lambda: len(twilio.messages) >= len(NUMBERS) // 3, 60, "the first run never got going")
        sandbox.app.kill()
        time.sleep(0.5)
        first_run = len(twilio.messages)
        assert 0 < first_run < len(NUMBERS), "the process died in the middle of the send"
        restart_elsewhere(sandbox, call)
    finally:
        twilio.latency = 0.0
    assert call.error is None, call.error
    bodies = {m["body"] for m in twilio.outbound_messages()}
    assert len(bodies) == 1, f"one text, one code: {bodies}"
    (code,) = re.findall(r"Reply ACK (\d+) to acknowledge\.$", bodies.pop())
    assert call.results["reply_code"] == code and call.results["success"] is True
    assert Counter(m["to"] for m in twilio.outbound_messages()) == Counter(NUMBERS)
    assert sum(e["already_sent"] for e in call.results["twilio_status"]) >= first_run
