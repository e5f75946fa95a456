"""Paging that can be trusted (contract §13), end to end: the real ``resilient-circuits run`` against the
sandbox SOAR and the Twilio emulator, one sandbox for the module, poll_interval 0.5 s.

Each scenario is one way 2.2.0's paging went wrong as a SOC uses it: a bare "ack" meant for another
incident's text, an "ok" to a plain text, a WhatsApp on-call, a 5xx that still made the message, replies
misread. (A page delivered again while it still runs, after the broker's connection dropped, is in
test_app_resilience.py.)
"""
import threading
import time

import pytest

from e2e_helpers import requires_app, requires_export, wait_until
from sandbox.soar.sandbox import Sandbox
from sandbox.twilio_emulator import SENDER

pytestmark = [pytest.mark.e2e, requires_app, requires_export]

ALICE, BOB = "+353861234567", "+14155552345"
WA_ALICE = "whatsapp:" + ALICE
INTERVAL = 0.5


@pytest.fixture(scope="module")
def sandbox():
    with Sandbox(preload="app", app_settings={"poll_interval": f"{INTERVAL}s"}) as sandbox:
        sandbox.run_app(timeout=90)
        yield sandbox


@pytest.fixture
def soar(sandbox):
    sandbox.twilio.reset()
    sandbox.twilio.clear_faults()
    return sandbox.driver()



def texts_to(twilio, number):
    return [m for m in twilio.outbound_messages() if m["to"] == number]


def later(action, delay):
    thread = threading.Thread(target=lambda: (time.sleep(delay), action()), daemon=True)
    thread.start()
    return thread


@pytest.mark.parametrize("in_between", ["another incident's page", "a plain text"])
def test_a_bare_reply_answers_the_latest_text_not_an_open_page(sandbox, soar, in_between):
    """Incident 2095 pages Alice; then she gets another text (incident 2096's page, or a plain Send SMS);
    her bare reply answers that text, so 2095's page goes on to tier 2."""
    twilio = sandbox.twilio
    call = soar.start_function("twilio_page", {"twilio_page_tiers": f"{ALICE}; {BOB}",
                                               "twilio_escalate_after": "4s", "incident_id": 2095,
                                               "twilio_sms_message": "Incident 2095 needs you."})
    wait_until(lambda: texts_to(twilio, ALICE), what="Alice's page")
    inputs = {"twilio_sms_destination": ALICE, "twilio_sms_message": "Incident 2096 needs you."}
    if in_between == "another incident's page":
        inputs.update(twilio_request_ack=True, incident_id=2096)
    sent = soar.call_function("twilio_send_sms", inputs)
    assert sent.results["success"] is True
    twilio.inject_inbound(from_=ALICE, body="ack" if in_between == "another incident's page" else "ok")
    wait_until(lambda: texts_to(twilio, BOB), what="tier 2's page")
    twilio.inject_inbound(from_=BOB, body="ack")
    call.wait(60)
    content = call.results["content"]
    assert call.results["success"] is True and content["acknowledged_by"] == BOB and content["tier"] == 2
    assert [r["phone_number"] for r in content["replies"]] == [BOB]
    if in_between == "another incident's page":   # the ack went to the page it answers
        got = soar.call_function("twilio_receive_messages", {
            "twilio_phone_number": ALICE, "incident_id": 2096, "twilio_wait_for": "acknowledgement",
            "twilio_wait_timeout": "0s"})
        assert got.results["success"] is True
        assert [(r["message_body"], r["reply_code"]) for r in got.results["content"]] == [("ack", "2096")]


def test_a_whatsapp_on_call_acknowledges_a_page_and_get_responses_reads_it(sandbox, soar):
    twilio = sandbox.twilio
    call = soar.start_function("twilio_page", {"twilio_page_tiers": f"{WA_ALICE}; {BOB}",
                                               "twilio_escalate_after": "20s", "incident_id": 2101,
                                               "twilio_sms_message": "Incident 2101 needs you."})
    wait_until(lambda: texts_to(twilio, WA_ALICE), what="the WhatsApp page")
    (page,) = texts_to(twilio, WA_ALICE)
    assert page["from"] == "whatsapp:" + SENDER
    twilio.inject_inbound(from_=WA_ALICE, to="whatsapp:" + SENDER, body="ack")
    call.wait(30)
    content = call.results["content"]
    assert call.results["success"] is True and content["acknowledged_by"] == WA_ALICE and content["tier"] == 1
    assert not texts_to(twilio, BOB)
    got = soar.call_function("twilio_receive_messages", {"twilio_phone_number": WA_ALICE,
                                                         "twilio_wait_timeout": "0s"})
    assert [(r["phone_number"], r["message_body"], r["reply_code"]) for r in got.results["content"]] == \
        [(WA_ALICE, "ack", "2101")]


def test_an_ack_from_someone_whose_create_answered_a_5xx_but_was_made_counts(sandbox, soar):
    twilio = sandbox.twilio
    twilio.inject_fault("commit_then_status", status=500, match_to=ALICE)
    call = soar.start_function("twilio_page", {"twilio_page_tiers": f"{ALICE}; {BOB}",
                                               "twilio_escalate_after": "30s", "incident_id": 2102,
                                               "twilio_sms_message": "Incident 2102 needs you."})
    wait_until(lambda: texts_to(twilio, BOB), timeout=10, what="tier 2 paged at once")
    twilio.inject_inbound(from_=ALICE, body="ack")
    call.wait(30)
    content = call.results["content"]
    alice = content["pages"][0]
    assert alice["phone_number"] == ALICE and alice["may_have_sent"] is True and alice["success"] is False
    assert content["acknowledged_by"] == ALICE and content["tier"] == 1
    assert len(texts_to(twilio, ALICE)) == 1, "the ambiguous create was not resent"


def test_replies_read_as_people_write_them(sandbox, soar):
    """ "No problem, on it" is no decline (no early escalation); "No worries, ＡＣＫ ２１０３" (full-width)
    acknowledges 2103."""
    twilio = sandbox.twilio
    call = soar.start_function("twilio_page", {"twilio_page_tiers": f"{ALICE}; {BOB}",
                                               "twilio_escalate_after": "6s", "incident_id": 2103,
                                               "twilio_sms_message": "Incident 2103 needs you."})
    wait_until(lambda: texts_to(twilio, ALICE), what="Alice's page")
    twilio.inject_inbound(from_=ALICE, body="No problem, on it")
    time.sleep(2.0)
    assert not texts_to(twilio, BOB), "not a decline: tier 2 waits for its window"
    twilio.inject_inbound(from_=ALICE, body="No worries, ＡＣＫ ２１０３")
    call.wait(30)
    content = call.results["content"]
    assert content["acknowledged_by"] == ALICE and content["tier"] == 1
    assert [(r["intent"], r["reply_code"]) for r in content["replies"]] == [("other", "2103"),
                                                                           ("acknowledge", "2103")]
    assert not texts_to(twilio, BOB)
