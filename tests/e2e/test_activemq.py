"""Fidelity check: the same app round trips with Debian's ActiveMQ as the broker (soar-runtime.md §8).

Skipped when ActiveMQ is not installed (``apt-get install --no-install-recommends activemq``).
"""
import time

import pytest

from e2e_helpers import (StompClient, assert_redelivered_as_activemq, die_holding_a_message, requires_app,
                         requires_export)
from sandbox.soar import activemq
from sandbox.soar.sandbox import Sandbox

pytestmark = [pytest.mark.e2e, pytest.mark.activemq, requires_app, requires_export,
              pytest.mark.skipif(not activemq.available(),
                                 reason="ActiveMQ (Debian package activemq) is not installed")]

NUMBER = "+353861234567"


@pytest.fixture(scope="module")
def sandbox():
    with Sandbox(preload="app", extra_functions=["twilio_get_responses"], broker="activemq",
                 app_settings={"poll_interval": "1s"}) as sandbox:
        sandbox.rest.add_incident(2095, "Suspicious login from 203.0.113.7", "High")
        sandbox.run_app(timeout=90)
        yield sandbox


def test_app_subscribes_through_activemq(sandbox):
    assert "Subscribed to message destination actions.201.fn_twilio" in sandbox.app.log_text()


def test_send_round_trip_through_activemq(sandbox):
    soar = sandbox.driver()
    call = soar.call_function("twilio_send_sms", {"twilio_sms_destination": NUMBER, "incident_id": 2095})
    assert call.error is None, call.error
    assert call.results["success"] is True
    assert "Suspicious login" in call.results["inputs"]["twilio_sms_message"]
    assert call.statuses


def test_message_sent_before_the_app_listens_is_delivered(sandbox):
    """The unprefixed subscription is a queue in ActiveMQ too: a message waits for a consumer."""
    sandbox.app.stop()
    soar = sandbox.driver()
    call = soar.start_function("twilio_send_sms", {"twilio_sms_destination": NUMBER,
                                                   "twilio_sms_message": "queued for later"})
    time.sleep(0.5)
    sandbox.app.start(timeout=90)
    assert call.wait(20).results["success"] is True


def test_rules_through_activemq(sandbox):
    soar = sandbox.driver()
    sent = soar.fire_rule("Example: Send Twilio SMS", incident_id=2095,
                          properties={"twilio_sms_destination": NUMBER})
    assert sent.error is None, sent.error
    sandbox.twilio.inject_inbound(from_=NUMBER, body="via activemq")
    got = soar.fire_rule("Twilio: Get Responses", incident_id=2095, row=sent.rows_of("twilio_sms_log")[0])
    assert "via activemq" in [r["msg_body"] for r in got.rows_of("twilio_sms_log")]


def test_two_instances_share_the_destination_and_handle_each_call_once(sandbox):
    """Two resilient-circuits processes consume actions.201.fn_twilio on ActiveMQ: the calls are
    shared between them, each is handled by exactly one, and each SMS is sent once."""
    marker = "[twilio_send_sms] Validated function inputs"
    second = sandbox.launcher("second-instance")
    second.start(timeout=90)
    try:
        before = sandbox.app.log_text().count(marker)
        soar = sandbox.driver()
        numbers = [f"+3538612340{n:02d}" for n in range(12)]
        pending = [soar.start_function("twilio_send_sms", {"twilio_sms_destination": number,
                                                           "twilio_sms_message": "shared queue"})
                   for number in numbers]
        for call in pending:
            call.wait(60)
            assert call.error is None and call.results["success"] is True, call.error
        handled = [sandbox.app.log_text().count(marker) - before, second.log_text().count(marker)]
        assert sum(handled) == len(numbers) and min(handled) > 0, handled
        for number in numbers:
            creates = [r for r in sandbox.twilio.requests
                       if r.method == "POST" and r.form.get("To") == number]
            assert len(creates) == 1, number
    finally:
        second.stop()


def test_a_consumer_that_dies_gets_its_message_redelivered_with_the_original_timestamp(sandbox):
    """What the app relies on after a crash (and the built-in broker imitates): the unacknowledged
    message goes to the next subscriber with redelivered:true and its first timestamp."""
    queue_name = "actions.201.redelivery_check"
    sender = StompClient(sandbox.broker.port).connect()
    later = StompClient(sandbox.broker.port)
    try:
        sender.conn.send("/queue/" + queue_name, "in-flight")
        first = die_holding_a_message(sandbox.broker.port, queue_name)
        time.sleep(0.05)
        later.connect()
        later.subscribe(queue_name, "later")
        again = later.get(timeout=10)
        assert_redelivered_as_activemq(first, again)
        later.conn.ack(again.headers["ack"])
    finally:
        later.close()
        sender.close()
