"""SoarDriver against a stand-in app (a stomp.py client that answers like resilient-circuits does)."""
import json
import threading
import time

import pytest

from e2e_helpers import StompClient
from sandbox.soar.driver import SoarDriver
from sandbox.soar.sandbox import API_KEY_ID, API_KEY_SECRET

pytestmark = pytest.mark.e2e

QUEUE = "actions.201.fn_twilio"


class FakeApp:
    """Answers each function message: statuses, then a result, or an error for inputs with "fail"."""

    def __init__(self, port):
        self.client = StompClient(port, API_KEY_ID, API_KEY_SECRET).connect()
        self.client.subscribe(QUEUE, QUEUE, prefetch=5)
        self.received = []
        self._stop = threading.Event()
        self.thread = threading.Thread(target=self._loop, daemon=True)
        self.thread.start()

    def _loop(self):
        import queue
        while not self._stop.is_set():
            try:
                frame = self.client.get(timeout=0.1)
            except queue.Empty:
                continue
            self.received.append(frame)
            body = json.loads(frame.body)
            reply = frame.headers["reply-to"]
            headers = {"correlation-id": frame.headers["correlation-id"]}
            send = self.client.conn.send
            send(reply, json.dumps({"message_type": 0, "message": "working", "complete": False}),
                 headers=headers)
            self.client.conn.ack(frame.headers["ack"])
            if body["inputs"].get("fail"):
                send(reply, json.dumps({"message_type": 1, "message": "ERROR:\n\nboom", "complete": True}),
                     headers=headers)
            else:
                send(reply, json.dumps({"message_type": 0, "message": "Completed", "complete": True,
                                        "results": {"echo": body["inputs"], "fn": body["function"]["name"]}}),
                     headers=headers)

    def close(self):
        self._stop.set()
        self.thread.join(2)
        self.client.close()


@pytest.fixture
def fake_app(broker):
    app = FakeApp(broker.port)
    broker.wait_for_subscription(QUEUE)
    yield app
    app.close()


@pytest.fixture
def driver(broker, rest):
    driver = SoarDriver(broker.port, rest).connect()
    yield driver
    driver.close()


def test_call_function_collects_statuses_and_results(fake_app, driver, rest):
    call = driver.call_function("twilio_get_responses", {"twilio_phone_number": "+353861234567"}, timeout=10)
    assert call.completed and call.error is None
    assert call.statuses == ["working"]
    assert call.results == {"echo": {"twilio_phone_number": "+353861234567"}, "fn": "twilio_get_responses"}
    message = fake_app.received[-1]
    assert message.headers["reply-to"] == "/queue/acks.201.fn_twilio"
    assert message.headers["correlation-id"] == call.correlation_id
    assert call.correlation_id.startswith("invid:")
    body = json.loads(message.body)
    assert body["function"]["name"] == "twilio_get_responses"
    assert body["function"]["uuid"] == rest.functions["twilio_get_responses"]["uuid"]
    assert body["workflow_instance"] == {"workflow_instance_id": call.workflow_instance_id}
    assert rest.workflow_instances[call.workflow_instance_id]["status"] == "running"
    assert "incident" not in body                       # function messages carry no incident


def test_error_reply_sets_error(fake_app, driver):
    call = driver.call_function("twilio_get_responses", {"fail": True}, timeout=10)
    assert call.results is None
    assert call.error == "ERROR:\n\nboom"


def test_concurrent_calls_are_matched_by_correlation_id(fake_app, driver):
    calls = [driver.start_function("twilio_get_responses", {"n": n}) for n in range(8)]
    for n, call in enumerate(calls):
        assert call.wait(10).results["echo"] == {"n": n}


def test_driver_reconnects_after_its_connection_drops(fake_app, driver, broker):
    broker.drop_connections(login="soar")
    call = driver.start_function("twilio_get_responses", {"after": "drop"})
    assert call.wait(10).results["echo"] == {"after": "drop"}


def test_a_quiet_connection_stays_open_so_no_send_goes_twice(driver, broker):
    """Nothing comes from the broker for longer than stomp.py's 5 s connect timeout: the driver keeps
    its one connection (a connection it dropped itself would lose the receipt of a send in flight and
    send the function message again)."""
    since = time.time()
    time.sleep(6.5)
    driver.start_function("twilio_get_responses", {"after": "silence"})
    assert broker.frames("CONNECT", since=since) == broker.frames("STOMP", since=since) == []
    assert len(broker.frames("SEND", QUEUE, since=since)) == 1
    assert broker.purge(QUEUE) == 1


def test_timeout_names_the_call(driver, broker):
    with pytest.raises(TimeoutError, match="twilio_send_sms"):
        driver.call_function("twilio_send_sms", {"twilio_sms_destination": "+1"}, timeout=0.3)
    assert broker.purge(QUEUE) == 1                     # nobody consumed it
