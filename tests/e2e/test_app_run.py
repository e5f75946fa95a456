"""The real ``resilient-circuits run`` serving fn_twilio against the sandbox SOAR and the Twilio emulator.

One sandbox (customizations preloaded, the legacy function defined, the app running) serves the module.
"""
import time

import pytest

from e2e_helpers import requires_app, requires_export
from sandbox.soar.sandbox import API_KEY_ID

pytestmark = [pytest.mark.e2e, requires_app, requires_export]

ACTIONS = "actions.201.fn_twilio"
ACKS = "acks.201.fn_twilio"
NUMBER = "+353861234567"


@pytest.fixture(scope="module")
def sandbox(running_sandbox):
    return running_sandbox


@pytest.fixture
def builtin_broker(sandbox):
    """Tests that read the broker's frame log or drop its connections need the built-in broker."""
    if sandbox.broker_kind != "builtin":
        pytest.skip("needs the built-in broker's test controls")


@pytest.fixture(scope="module")
def soar(sandbox):
    return sandbox.driver()


def test_startup_calls_the_rest_api_in_order_then_subscribes(sandbox, builtin_broker):
    subscribe = sandbox.broker.wait_for_frame("SUBSCRIBE", ACTIONS)[0]
    startup = [r for r in sandbox.rest.requests if r.time <= subscribe.time]
    paths = [r.path for r in startup]
    assert paths[:7] == [
        "/rest/session", "/rest/orgs/201", "/rest/const", "/rest/orgs/201/types/incident/fields",
        "/rest/orgs/201/types/actioninvocation/fields", "/rest/orgs/201/actions",
        "/rest/orgs/201/connectors/queues"]
    assert sorted(paths[7:]) == sorted(
        ["/rest/orgs/201/functions/" + name
         for name in ("twilio_send_sms", "twilio_receive_messages", "twilio_get_responses",
                      "twilio_get_message_status", "twilio_page")]
        + ["/rest/orgs/201/types/__function/fields"])
    assert all(r.status == 200 and r.method == "GET" for r in startup)
    assert all(r.query.get("handle_format") == "names" for r in startup if "/functions/" in r.path)

    connect = sandbox.broker.wait_for_frame(predicate=lambda f: f.command in ("CONNECT", "STOMP")
                                            and f.login == API_KEY_ID)[0]
    assert connect.headers["accept-version"] == "1.2"
    assert connect.headers["heart-beat"] == "0,15000"
    assert subscribe.login == API_KEY_ID
    assert subscribe.headers["destination"] == ACTIONS            # no /queue/ prefix
    assert subscribe.headers["id"] == ACTIONS
    assert subscribe.headers["ack"] == "client-individual"
    assert subscribe.headers["activemq.prefetchSize"] == "5"      # = num_workers
    assert "started successfully" in sandbox.app.log_text()


def test_send_sms_round_trip_through_the_broker(sandbox, soar):
    since = time.time()
    call = soar.call_function("twilio_send_sms", {"twilio_sms_destination": NUMBER,
                                                  "twilio_sms_message": "e2e hello"})
    assert call.error is None, call.error
    results = call.results
    assert results["success"] is True and results["reason"] is None
    assert results["inputs"]["twilio_sms_message"] == "e2e hello"
    [entry] = results["twilio_status"]
    assert entry["phone_number"] == NUMBER and entry["success"] is True
    assert entry["sid"].startswith("SM") and entry["messaging_service_sid"] == entry["sid"]
    assert call.statuses, "the app reports progress as status messages"
    sent = [m for m in sandbox.twilio.messages if m["sid"] == entry["sid"]]
    assert sent and sent[0]["body"] == "e2e hello" and sent[0]["to"] == NUMBER
    if sandbox.broker_kind != "builtin":
        return          # ActiveMQ keeps no frame log: the round trip above is what it proves

    # The app acknowledged the MESSAGE by its ack header, then replied to reply-to with the correlation-id.
    delivered = sandbox.broker.frames("MESSAGE", ACTIONS, direction="out", since=since)[-1]
    acks = sandbox.broker.frames("ACK", since=since)
    assert [a.headers["id"] for a in acks] == [delivered.headers["ack"]]
    replies = sandbox.broker.frames("SEND", ACKS, since=since)
    assert {r.headers["correlation-id"] for r in replies} == {call.correlation_id}
    assert replies[-1].time >= acks[0].time
    assert sandbox.broker.unacked(ACTIONS) == []


def test_default_text_names_the_incident_read_from_soar(sandbox, soar):
    call = soar.call_function("twilio_send_sms", {"twilio_sms_destination": NUMBER, "incident_id": 2095})
    assert call.error is None, call.error
    text = call.results["inputs"]["twilio_sms_message"]
    assert "Suspicious login from 203.0.113.7" in text and "2095" in text and "High" in text
    reads = sandbox.rest.request_log("GET", "/incidents/2095")
    assert reads and reads[-1].query.get("handle_format") == "names"


def test_bad_input_is_one_clear_error_message(soar):
    call = soar.call_function("twilio_send_sms", {"twilio_sms_destination": " ", "twilio_sms_message": "x"})
    assert call.results is None
    assert "twilio_sms_destination" in call.error
    assert "Traceback" not in call.error


def test_unknown_incident_is_an_error_naming_the_id(sandbox, soar):
    before = len(sandbox.twilio.messages)
    call = soar.call_function("twilio_send_sms", {"twilio_sms_destination": NUMBER, "incident_id": 4040})
    assert call.error is not None and "4040" in call.error
    assert len(sandbox.twilio.messages) == before          # nothing sent


def test_receive_messages_returns_a_reply_sent_while_waiting(sandbox, soar):
    call = soar.start_function("twilio_receive_messages", {"twilio_phone_number": NUMBER,
                                                           "twilio_wait_timeout": "30s"})
    time.sleep(0.5)
    sandbox.twilio.inject_inbound(from_=NUMBER, body="on my way")
    call.wait(20)
    assert call.error is None, call.error
    assert call.results["success"] is True
    assert "on my way" in [m["message_body"] for m in call.results["content"]]


def test_receive_messages_stops_when_the_workflow_is_terminated(sandbox, soar):
    call = soar.start_function("twilio_receive_messages", {"twilio_phone_number": "+353869999999",
                                                           "twilio_wait_timeout": "60s"})
    time.sleep(1.0)
    sandbox.rest.terminate_workflow_instance(call.workflow_instance_id, "stopped by the analyst")
    call.wait(10)                       # poll_interval is 1s: it stops within about one interval
    assert call.results["success"] is False
    assert call.results["reason"] == "Workflow was terminated: stopped by the analyst"


def test_legacy_function_name_is_served(sandbox, soar):
    sandbox.twilio.inject_inbound(from_="+353861110000", body="legacy reply")
    call = soar.call_function("twilio_get_responses", {"twilio_phone_number": "+353861110000",
                                                       "twilio_wait_timeout": "0s"})
    assert call.error is None, call.error
    assert [m["message_body"] for m in call.results["content"]] == ["legacy reply"]


def test_rules_send_then_collect_replies_into_the_datatable(sandbox, soar):
    sandbox.rest.add_incident(2200, "Phishing campaign", "Medium")
    sent = soar.fire_rule("Example: Send Twilio SMS", incident_id=2200,
                          properties={"twilio_sms_destination": "+353861234001, +353861234002",
                                      "twilio_sms_message": "please call the SOC"})
    assert sent.error is None, sent.error
    assert sent.function_name == "twilio_send_sms"
    rows = sent.rows_of("twilio_sms_log")
    assert [r["phone_number"] for r in rows] == ["+353861234001", "+353861234002"]
    assert all(r["message_id"].startswith("SM") and isinstance(r["date_created"], int) for r in rows)
    assert len(sent.notes) >= 1
    assert sandbox.rest.rows(2200, "twilio_sms_log") == rows

    sandbox.twilio.inject_inbound(from_="+353861234001", body="calling now")
    got = soar.fire_rule("Twilio: Get Responses", incident_id=2200, row=rows[0])
    assert got.error is None, got.error
    assert got.inputs["twilio_phone_number"] == "+353861234001"
    replies = got.rows_of("twilio_sms_log")
    assert [(r["direction"], r["msg_body"]) for r in replies] == [("inbound", "calling now")]
    assert len(sandbox.rest.rows(2200, "twilio_sms_log")) == 3


def test_get_responses_is_not_offered_on_a_failed_row(soar):
    from sandbox.soar.driver import RuleNotAvailable
    with pytest.raises(RuleNotAvailable, match="not_equals"):
        soar.fire_rule("Twilio: Get Responses", incident_id=2095,
                       row={"status": "Failed", "phone_number": "+353861234001"})
