"""The termination check of the four waiting functions through resilient-circuits, against a SOAR REST
mock that can refuse status reads (tests/soar_mock.py) and the Twilio emulator.

Proven here: a status read costs one request (resilient's client would make five for a 500) and at
most one HTTP timeout; a refused read (403, 404, 500, garbage, no status, too slow) is said once in
the action status and logged once at WARNING, and the call goes on to its own end; a 401 ends the call
with a reason that says so (the process is not made to exit); a playbook's run read from
``playbooks/execution/query_paged`` ends the call when it is canceled, terminated, in error or
completed. The app's poll_interval is 0.2 s here (tests/conftest.py).
"""
import logging
import threading
import time

import pytest

from sandbox.twilio_emulator import SENDER
from tests.conftest import call_function
from tests.soar_mock import FnTwilioSoarMock

ALICE, BOB = "+353861234567", "+14155552345"
INTERVAL = 0.2
WORKFLOW = 999                        # the workflow instance of resilient-circuits' test messages
PLAYBOOK = 4242
FROM_PLAYBOOK = {"workflow_instance": None, "playbook_instance": {"playbook_instance_id": PLAYBOOK}}
SAID = "Cannot tell whether the {kind} was terminated: {why}; the call goes on until it ends on its own"
REFUSED_401 = ("SOAR refused the app's credentials (401) while checking whether the {kind} was terminated: "
               "401 Unauthorized: refused by the test (401)")

REFUSALS = [
    (403, "403 Forbidden: refused by the test (403)"),
    (404, "404 Not Found: refused by the test (404)"),
    (500, "500 Server Error: refused by the test (500)"),
    ("garbage", "SOAR's answer (200) is not JSON"),
    ("no_status", "SOAR's answer has no status"),
]


@pytest.fixture(autouse=True)
def soar_state():
    FnTwilioSoarMock.reset()
    yield FnTwilioSoarMock
    FnTwilioSoarMock.reset()


def receive(circuits_app, wait, fn="twilio_receive_messages", message=None):
    return call_function(circuits_app, fn, {"twilio_phone_number": ALICE, "twilio_wait_timeout": wait},
                         timeout=60, message=message)


def page(circuits_app, tiers, escalate_after, message=None):
    return call_function(circuits_app, "twilio_page", {"twilio_page_tiers": tiers, "incident_id": 2095,
                                                       "twilio_escalate_after": escalate_after,
                                                       "twilio_sms_message": "Hi"},
                         timeout=60, message=message)


def said(call, kind="workflow"):
    return [s for s in call.statuses if s.startswith(f"Cannot tell whether the {kind} was terminated")]


def reads(kind="workflow"):
    return [at for k, _, at in FnTwilioSoarMock.status_reads if k == kind]


def creates(twilio):
    return [r for r in twilio.requests if r.method == "POST" and r.path.endswith("/Messages.json")]


class TestRefusedReads:
    APP_SETTINGS = {"timeout": "1"}

    @pytest.mark.parametrize("answer, why", REFUSALS)
    def test_receive_goes_on_to_its_timeout_saying_it_once(self, circuits_app, twilio, answer, why, caplog):
        FnTwilioSoarMock.refuse_always = answer
        caplog.set_level(logging.WARNING, logger="fn_twilio.lib.termination")
        started = time.monotonic()
        call = receive(circuits_app, "1.5s")
        took = time.monotonic() - started
        assert call.result["success"] is False
        assert call.result["reason"].startswith(f"Timeout waiting for responses for phone number: {ALICE}")
        assert said(call) == [SAID.format(kind="workflow", why=why)]
        warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
        assert warnings == [f"fn_twilio: {SAID.format(kind='workflow', why=why)} (workflow instance 999)"]
        # one request per read, one read per interval: resilient's client would try a 500 five times
        times = reads()
        assert 1 <= len(times) <= 1.5 / INTERVAL + 1
        assert all(b - a >= INTERVAL * 0.9 for a, b in zip(times, times[1:])), times
        assert took < 1.5 + 2.0

    def test_a_slow_soar_costs_at_most_one_http_timeout_per_read(self, circuits_app, twilio):
        FnTwilioSoarMock.refuse_always = ("slow", 3.0)         # longer than the app's timeout (1 s)
        started = time.monotonic()
        call = receive(circuits_app, "1s")
        took = time.monotonic() - started
        assert said(call) == [SAID.format(kind="workflow", why="SOAR did not answer within 1s")]
        assert call.result["reason"].startswith("Timeout waiting for responses")
        assert took < 1 + 1 + 1.5, "the wait plus one timed-out read at most (and some slack)"

    def test_a_read_that_works_again_still_sees_the_termination(self, circuits_app, twilio):
        FnTwilioSoarMock.refusals.extend([500, 403, 404])
        FnTwilioSoarMock.workflows[WORKFLOW] = {"status": "terminated",
                                                "terminate_reason": "closed by analyst"}
        call = receive(circuits_app, "30s")
        assert call.result["reason"] == "Workflow was terminated: closed by analyst"
        assert said(call) == [SAID.format(kind="workflow", why="500 Server Error: refused by the test (500)")]
        assert len(reads()) == 4

    def test_the_legacy_get_responses_has_the_same_check(self, circuits_app, twilio):
        FnTwilioSoarMock.refuse_always = 403
        call = receive(circuits_app, "0.6s", fn="twilio_get_responses")
        assert said(call) == [SAID.format(kind="workflow", why=REFUSALS[0][1])]
        assert call.result["reason"].startswith("Timeout waiting for responses")

    def test_a_page_escalates_on_its_windows_and_ends_on_its_own(self, circuits_app, twilio):
        FnTwilioSoarMock.refusals.extend([500, 403])
        FnTwilioSoarMock.refuse_always = 404
        started = time.monotonic()
        call = page(circuits_app, f"{ALICE}; {BOB}", "1s")
        assert [r.form["To"] for r in creates(twilio)] == [ALICE, BOB]
        tier_two = creates(twilio)[1].started - started
        assert tier_two < 1 + INTERVAL + 1.0, tier_two
        assert call.result["reason"] == "Nobody acknowledged: paged 2 people in 2 tiers"
        assert said(call) == [SAID.format(kind="workflow", why="500 Server Error: refused by the test (500)")]

    def test_delivery_status_goes_on_saying_it_once(self, circuits_app, twilio):
        sent = call_function(circuits_app, "twilio_send_sms", {"twilio_sms_destination": ALICE,
                                                               "twilio_sms_message": "Bridge now"})
        sid = sent.result["twilio_status"][0]["sid"]
        FnTwilioSoarMock.refuse_always = 500
        call = call_function(circuits_app, "twilio_get_message_status",
                             {"twilio_message_sids": sid, "twilio_wait_timeout": "1s"})
        assert said(call) == [SAID.format(kind="workflow", why=REFUSALS[2][1])]
        assert call.result["content"][0]["sid"] == sid and call.result["reason"] is None


class TestCredentialsRefused:
    APP_SETTINGS = {}

    def test_receive_ends_with_the_reason_and_the_app_keeps_running(self, circuits_app, twilio):
        FnTwilioSoarMock.refuse_always = 401
        call = receive(circuits_app, "30s")
        assert call.result["success"] is False
        assert call.result["reason"] == REFUSED_401.format(kind="workflow")
        assert len(reads()) == 1
        twilio.inject_inbound(from_=ALICE, to=SENDER, body="still here")
        FnTwilioSoarMock.refuse_always = None
        again = receive(circuits_app, "0s")                    # the process did not exit
        assert [r["message_body"] for r in again.result["content"]] == ["still here"]

    def test_a_page_ends_with_the_reason_and_pages_no_further_tier(self, circuits_app, twilio):
        FnTwilioSoarMock.refuse_always = 401
        call = page(circuits_app, f"{ALICE}; {BOB}", "30s")
        expected = REFUSED_401.format(kind="workflow")
        assert call.result["reason"] == expected
        assert call.result["content"]["timeline"][-1]["detail"] == expected
        assert expected in call.statuses and not any(s.startswith("Workflow was terminated")
                                                     for s in call.statuses)
        assert [r.form["To"] for r in creates(twilio)] == [ALICE]

    def test_delivery_status_ends_with_the_reason(self, circuits_app, twilio):
        sent = call_function(circuits_app, "twilio_send_sms", {"twilio_sms_destination": ALICE,
                                                               "twilio_sms_message": "Bridge now"})
        FnTwilioSoarMock.refuse_always = 401
        call = call_function(circuits_app, "twilio_get_message_status",
                             {"twilio_message_sids": sent.result["twilio_status"][0]["sid"],
                              "twilio_wait_timeout": "30s"})
        assert call.result["reason"] == REFUSED_401.format(kind="workflow")

    def test_a_playbooks_call_says_playbook(self, circuits_app, twilio):
        FnTwilioSoarMock.refuse_always = 401
        call = receive(circuits_app, "30s", message=FROM_PLAYBOOK)
        assert call.result["reason"] == REFUSED_401.format(kind="playbook")


class TestPlaybookRuns:
    APP_SETTINGS = {}

    @pytest.mark.parametrize("status, detail, reason", [
        ("canceled", "closed by analyst", "playbook canceled: closed by analyst"),
        ("terminated", None, "playbook terminated: no reason given"),
        ("error", "The playbook was terminated by the system due to a function error.\nERROR:\n\nboom",
         "playbook error: The playbook was terminated by the system due to a function error."),
        ("completed", None, "playbook completed: no reason given"),
    ])
    def test_an_ended_run_ends_the_wait_within_an_interval(self, circuits_app, twilio, status, detail,
                                                            reason):
        FnTwilioSoarMock.playbooks[PLAYBOOK] = {"status": "running"}
        FnTwilioSoarMock.playbooks[PLAYBOOK + 1] = {"status": "canceled", "detail_msg": "another run"}
        ended = {}

        def end():
            FnTwilioSoarMock.playbooks[PLAYBOOK] = {"status": status, "detail_msg": detail}
            ended["at"] = time.monotonic()

        timer = threading.Timer(0.8, end)
        timer.start()
        try:
            call = receive(circuits_app, "30s", message=FROM_PLAYBOOK)
        finally:
            timer.cancel()
        assert call.result["reason"] == f"Workflow was terminated: {reason}"
        assert {k for k, _, _ in FnTwilioSoarMock.status_reads} == {"playbook"}
        assert {i for _, i, _ in FnTwilioSoarMock.status_reads} == {PLAYBOOK}
        assert reads("playbook")[-1] - ended["at"] < INTERVAL + 0.5

    def test_a_canceled_playbook_stops_a_page(self, circuits_app, twilio):
        FnTwilioSoarMock.playbooks[PLAYBOOK] = {"status": "running"}
        timer = threading.Timer(0.8, lambda: FnTwilioSoarMock.playbooks.__setitem__(
            PLAYBOOK, {"status": "canceled", "detail_msg": "incident closed"}))
        timer.start()
        try:
            call = page(circuits_app, f"{ALICE}; {BOB}", "30s", message=FROM_PLAYBOOK)
        finally:
            timer.cancel()
        assert call.result["reason"] == "Workflow was terminated: playbook canceled: incident closed"
        assert [r.form["To"] for r in creates(twilio)] == [ALICE]

    def test_a_run_soar_does_not_list_is_said_once(self, circuits_app, twilio):
        FnTwilioSoarMock.playbooks[PLAYBOOK + 1] = {"status": "running"}
        call = receive(circuits_app, "0.6s", message=FROM_PLAYBOOK)
        assert said(call, "playbook") == [SAID.format(kind="playbook",
                                                      why=f"SOAR's answer has no playbook run {PLAYBOOK}")]
        assert call.result["reason"].startswith("Timeout waiting for responses")

    def test_a_call_from_neither_reads_nothing(self, circuits_app, twilio):
        call = receive(circuits_app, "0.6s", message={"workflow_instance": None})
        assert call.result["reason"].startswith("Timeout waiting for responses")
        assert FnTwilioSoarMock.status_reads == []
