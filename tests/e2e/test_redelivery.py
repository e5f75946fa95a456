"""No duplicate after a crash: the real ``resilient-circuits run`` killed with SIGKILL in the middle of
a 40-recipient send; the broker delivers the call again to another instance, which reports every
recipient, sends to no one twice, and marks what the first run sent with ``already_sent``.

Once with the built-in broker and once with Debian's ActiveMQ (skipped when it is not installed).
One sandbox per broker; the Twilio emulator's latency slows the send enough to kill it midway.
"""
import time
from collections import Counter

import pytest

from e2e_helpers import requires_app, requires_export, wait_until
from sandbox.soar import activemq
from sandbox.soar.sandbox import Sandbox

pytestmark = [pytest.mark.e2e, requires_app, requires_export]

NUMBERS = [f"+3538612345{n:02d}" for n in range(40)]
TEXT = "Major incident 2095: join the bridge"
LATENCY = 0.1        # seconds per Twilio request; with 2 in flight, 40 creates take about 2 s


@pytest.fixture(scope="module", params=["builtin", pytest.param("activemq", marks=pytest.mark.activemq)])
def sandbox(request):
    if request.param == "activemq" and not activemq.available():
        pytest.skip("ActiveMQ (Debian package activemq, with a java runtime) is not installed")
    with Sandbox(preload="app", broker=request.param, app_settings={"max_concurrency": "2"}) as sandbox:
        sandbox.run_app(timeout=90)
        yield sandbox



def test_a_send_killed_midway_is_finished_by_another_instance_without_duplicates(sandbox):
    twilio = sandbox.twilio
    twilio.latency = LATENCY
    soar = sandbox.driver()
    call = soar.start_function("twilio_send_sms", {"twilio_sms_destination": ", ".join(NUMBERS),
                                                   "twilio_sms_message": TEXT})
    wait_until(lambda: len(twilio.messages) >= len(NUMBERS) // 2, 60, "the first run never got halfway")
    sandbox.app.kill()
    time.sleep(LATENCY * 5)                        # requests already inside the emulator finish
    first_run = {m["to"] for m in twilio.messages}
    assert 0 < len(first_run) < len(NUMBERS), "the process died in the middle of the send"
    assert not call.completed, "the killed run never answered"

    second = sandbox.launcher("second-instance")
    second.start(timeout=90)
    try:
        call.wait(60)
    finally:
        second.stop()
    assert call.error is None, call.error

    entries = call.results["twilio_status"]
    assert [e["phone_number"] for e in entries] == NUMBERS, "every recipient is reported, in order"
    assert all(e["success"] for e in entries) and call.results["success"] is True
    per_number = Counter(m["to"] for m in twilio.messages if m["body"] == TEXT)
    assert per_number == Counter(NUMBERS), "each recipient got the text exactly once"
    assert {e["phone_number"] for e in entries if e["already_sent"]} == first_run
    sids = {m["to"]: m["sid"] for m in twilio.messages}
    assert all(e["sid"] == sids[e["phone_number"]] for e in entries)
    note = (f"Redelivered call: {len(first_run)} recipients already sent by the interrupted run, "
            "not sent again")
    assert note in call.statuses
