"""Termination checks against a SOAR that refuses them (contract §13.4), end to end: the real
``resilient-circuits run`` against the sandbox SOAR and the Twilio emulator.

The app runs with resilient's own retry settings (``request_max_retries`` 5, ``request_retry_delay`` 2,
``request_retry_backoff`` 2): through its client's ``get`` a 500 would cost about 30 s. A page whose
status reads SOAR answers 500, then 403, then 404 escalates on time, says so once and ends on its own; a
slow SOAR costs one HTTP timeout per read at most; a 401 ends the page with a reason that says so and the
app goes on serving. A canceled playbook stopping a page is in test_paging.py.
"""
import time

import pytest

from e2e_helpers import requires_app, requires_export
from sandbox.soar.sandbox import Sandbox

pytestmark = [pytest.mark.e2e, requires_app, requires_export]

ALICE, BOB = "+353861234567", "+14155552345"
INTERVAL = 0.5
TIMEOUT = 2
RESILIENT_DEFAULTS = {"request_max_retries": 5, "request_retry_delay": 2, "request_retry_backoff": 2}


@pytest.fixture(scope="module")
def sandbox():
    settings = {"poll_interval": f"{INTERVAL}s", "timeout": TIMEOUT}
    with Sandbox(preload="app", app_settings=settings) as sandbox:
        sandbox.app = sandbox.launcher("app-with-resilient-retries", extra_resilient=RESILIENT_DEFAULTS)
        sandbox.run_app(timeout=90)
        yield sandbox


@pytest.fixture
def soar(sandbox):
    sandbox.twilio.reset()
    yield sandbox.driver()
    sandbox.rest.refuse_status_reads()


def creates(twilio):
    return [r for r in twilio.requests if r.method == "POST" and r.path.endswith("/Messages.json")]


def page(soar, escalate_after, **extra):
    return soar.start_function("twilio_page", {"twilio_page_tiers": f"{ALICE}; {BOB}", "incident_id": 2095,
                                               "twilio_escalate_after": escalate_after,
                                               "twilio_sms_message": "Hi"}, **extra)


def said(call):
    return [s for s in call.statuses if s.startswith("Cannot tell whether the workflow was terminated")]


def test_refused_status_reads_neither_delay_escalation_nor_stop_the_page(sandbox, soar):
    sandbox.rest.refuse_status_reads(500, 403, 404)
    call = page(soar, "3s").wait(60)
    tier_one, tier_two = creates(sandbox.twilio)
    assert (tier_one.form["To"], tier_two.form["To"]) == (ALICE, BOB)
    late = tier_two.started - (tier_one.started + 3)
    assert 0 <= late < INTERVAL + 1.0, f"tier 2 paged {late:.2f} s after its due time"
    assert call.results["reason"] == "Nobody acknowledged: paged 2 people in 2 tiers"
    assert said(call) == ["Cannot tell whether the workflow was terminated: 500 Internal Server Error: "
                          "status read refused by the sandbox (500); the call goes on until it ends on "
                          "its own"]
    reads = [(status, at) for _, instance, status, at in sandbox.rest.status_reads("workflow")
             if instance == call.workflow_instance_id]
    assert [status for status, _ in reads[:3]] == [500, 403, 404]
    assert {status for status, _ in reads[3:]} <= {404}
    # one request per read, at most one read per interval
    assert len(reads) <= (call.finished - call.started) / INTERVAL + 1
    assert all(b - a >= INTERVAL * 0.8 for (_, a), (_, b) in zip(reads, reads[1:]))
    assert sandbox.app.process.poll() is None


def test_a_slow_soar_costs_at_most_one_http_timeout_per_read(sandbox, soar):
    sandbox.rest.refuse_status_reads(("slow", TIMEOUT + 2))
    call = page(soar, "2s").wait(60)
    tier_one, tier_two = creates(sandbox.twilio)
    late = tier_two.started - (tier_one.started + 2)
    assert 0 <= late < INTERVAL + TIMEOUT + 1.0, f"tier 2 paged {late:.2f} s after its due time"
    assert said(call) == [f"Cannot tell whether the workflow was terminated: SOAR did not answer within "
                          f"{TIMEOUT}s; the call goes on until it ends on its own"]
    assert call.results["reason"] == "Nobody acknowledged: paged 2 people in 2 tiers"


def test_a_401_ends_the_page_with_its_reason_and_the_app_goes_on(sandbox, soar):
    sandbox.rest.refuse_status_reads(401)
    call = page(soar, "30s").wait(60)
    expected = ("SOAR refused the app's credentials (401) while checking whether the workflow was "
                "terminated: 401 Unauthorized: status read refused by the sandbox (401)")
    assert call.results["success"] is False and call.results["reason"] == expected
    assert call.finished - call.started < 30, "ended at the 401, not at the end of tier 1's window"
    assert expected in call.statuses
    assert [r.form["To"] for r in creates(sandbox.twilio)] == [ALICE]
    time.sleep(1.0)
    assert sandbox.app.process.poll() is None, "resilient's client did not make the app exit"
    sandbox.rest.refuse_status_reads()
    sent = soar.call_function("twilio_send_sms", {"twilio_sms_destination": BOB, "twilio_sms_message": "Hi"})
    assert sent.results["twilio_status"][0]["status"] == "queued"
