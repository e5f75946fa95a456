"""The sandbox STOMP broker: STOMP 1.2 over TLS with the queue semantics resilient-circuits relies on."""
import itertools
import time

import pytest

from e2e_helpers import RawStomp, StompClient, assert_redelivered_as_activemq, die_holding_a_message

pytestmark = pytest.mark.e2e

_names = itertools.count(1)


@pytest.fixture
def qname():
    """A queue name no other test uses."""
    return f"actions.201.test{next(_names)}"


@pytest.fixture
def clients(broker):
    made = []

    def make(login="soar", passcode="soar-secret", connect=True, **kwargs):
        client = StompClient(broker.port, login, passcode, **kwargs)
        made.append(client)
        return client.connect() if connect else client

    yield make
    for client in made:
        client.close()


def test_connect_answers_version_1_2_without_heartbeats(broker):
    raw = RawStomp(broker.port)
    try:
        raw.send("CONNECT", {"accept-version": "1.2", "host": "localhost", "login": "soar",
                             "passcode": "soar-secret", "heart-beat": "0,15000"})
        frame = raw.read()
        assert frame.command == "CONNECTED"
        assert frame.headers["version"] == "1.2"
        assert frame.headers["heart-beat"] == "0,0"
    finally:
        raw.close()


def test_wrong_passcode_gets_error_frame_and_close(broker):
    raw = RawStomp(broker.port)
    try:
        raw.send("STOMP", {"accept-version": "1.2", "host": "localhost", "login": "soar", "passcode": "nope"})
        frame = raw.read()
        assert frame.command == "ERROR"
        assert "Authentication failed" in frame.headers["message"]
        assert raw.closed_by_peer()
    finally:
        raw.close()


def test_frame_before_connect_is_an_error(broker):
    raw = RawStomp(broker.port)
    try:
        raw.send("SUBSCRIBE", {"destination": "x", "id": "1"})
        assert raw.read().command == "ERROR"
        assert raw.closed_by_peer()
    finally:
        raw.close()


def test_message_sent_before_subscription_is_kept_and_prefix_is_optional(broker, clients, qname):
    producer = clients()
    producer.conn.send("/queue/" + qname, "early", headers={"reply-to": "/queue/acks.201.test",
                                                             "correlation-id": "invid:7", "x-custom": "kept"})
    broker.wait_for_frame("SEND", qname)
    assert [body for _, body in broker.pending(qname)] == [b"early"]

    consumer = clients()
    consumer.subscribe(qname, qname)               # unprefixed, as resilient-circuits subscribes
    frame = consumer.get()
    assert frame.body == "early"
    headers = frame.headers
    assert headers["destination"] == "/queue/" + qname
    assert headers["subscription"] == qname
    assert headers["message-id"]
    assert headers["ack"]
    assert headers["reply-to"] == "/queue/acks.201.test"
    assert headers["correlation-id"] == "invid:7"
    assert headers["x-custom"] == "kept"
    consumer.conn.ack(headers["ack"])
    broker.wait_for_frame("ACK", predicate=lambda f: f.headers.get("id") == headers["ack"])
    assert broker.unacked(qname) == []


def test_each_message_goes_to_one_subscriber_round_robin(broker, clients, qname):
    first, second = clients(), clients()
    first.subscribe(qname, "a", ack="auto")
    second.subscribe(qname, "b", ack="auto")
    broker.wait_for_subscription(qname, count=2)
    for i in range(6):
        broker.inject(qname, f"m{i}")
    got_first = [first.get().body for _ in range(3)]
    got_second = [second.get().body for _ in range(3)]
    assert sorted(got_first + got_second) == [f"m{i}" for i in range(6)]
    assert len(set(got_first) & set(got_second)) == 0
    first.get_nothing()
    second.get_nothing()


def test_prefetch_limits_unacknowledged_messages(broker, clients, qname):
    consumer = clients()
    consumer.subscribe(qname, qname, prefetch=2)
    for i in range(3):
        broker.inject(qname, f"p{i}")
    one, two = consumer.get(), consumer.get()
    consumer.get_nothing()                         # the third waits for an ACK
    assert len(broker.unacked(qname)) == 2
    consumer.conn.ack(one.headers["ack"])
    assert consumer.get().body == "p2"
    consumer.conn.ack(two.headers["ack"])


def test_nack_requeues_for_redelivery(broker, clients, qname):
    consumer = clients()
    consumer.subscribe(qname, qname)
    broker.inject(qname, "again")
    frame = consumer.get()
    consumer.conn.nack(frame.headers["ack"])
    again = consumer.get()
    assert again.body == "again"
    assert again.headers["message-id"] == frame.headers["message-id"]
    assert again.headers.get("redelivered") == "true"
    consumer.conn.ack(again.headers["ack"])


def test_unacked_messages_of_a_dropped_connection_are_redelivered(broker, clients, qname):
    doomed = clients()
    doomed.subscribe(qname, qname)
    broker.inject(qname, "in-flight")
    first = doomed.get()
    survivor = clients()
    survivor.subscribe(qname, "survivor")
    broker.wait_for_subscription(qname, count=2)
    # Close only the first client's connection, as a network failure would.
    conn_id = next(s["connection"] for s in broker.subscriptions(qname) if s["id"] == qname)
    broker.drop_connections(connection=conn_id)
    again = survivor.get()
    assert again.body == "in-flight"
    assert again.headers["message-id"] == first.headers["message-id"]
    assert again.headers.get("redelivered") == "true"


@pytest.mark.parametrize("sent_by", ["inject", "SEND"])
def test_a_client_that_dies_leaves_its_message_to_the_next_subscriber_as_activemq_does(broker, clients, qname,
                                                                                     sent_by):
    """A consumer whose socket just closes (its process was killed): the unacknowledged message goes
    to a subscriber that comes later, marked redelivered:true, with the timestamp of its first delivery."""
    if sent_by == "inject":
        broker.inject(qname, "in-flight")
    else:
        clients().conn.send(qname, "in-flight")
    first = die_holding_a_message(broker.port, qname)
    time.sleep(0.05)                                   # the first delivery and the next differ in time
    later = clients()
    later.subscribe(qname, "later")
    again = later.get()
    assert_redelivered_as_activemq(first, again)
    later.conn.ack(again.headers["ack"])


def test_receipts_for_subscribe_send_and_disconnect(broker, clients, qname):
    client = clients()
    client.subscribe(qname, qname, receipt="sub-1")
    client.conn.send(qname, "x", headers={"receipt": "send-1"})
    deadline = time.monotonic() + 5
    while len(client.listener.receipts) < 2 and time.monotonic() < deadline:
        time.sleep(0.02)
    assert client.listener.receipts[:2] == ["sub-1", "send-1"]
    client.conn.disconnect(receipt="bye")          # stomp.py waits for the receipt
    assert "bye" in client.listener.receipts


def test_header_values_are_escaped_both_ways(broker, qname):
    raw = RawStomp(broker.port)
    try:
        raw.send("CONNECT", {"accept-version": "1.2", "host": "localhost", "login": "soar",
                             "passcode": "soar-secret"})
        assert raw.read().command == "CONNECTED"
        raw.send("SUBSCRIBE", {"destination": qname, "id": "s", "ack": "auto"})
        raw.send("SEND", {"destination": "/queue/" + qname, "note": "a:b\nc\\d"}, b"body\x00less")
        message = raw.read()
        assert message.command == "MESSAGE"
        assert message.headers["note"] == "a:b\nc\\d"
        assert message.body == b"body\x00less"           # content-length carries NUL bytes
    finally:
        raw.close()


def test_broker_sends_heartbeats_when_configured(certs):
    from sandbox.soar.broker import StompBroker
    beating = StompBroker(certs, heartbeat_ms=100).start()
    raw = RawStomp(beating.port)
    try:
        raw.send("CONNECT", {"accept-version": "1.2", "host": "localhost", "login": "soar",
                             "passcode": "soar-secret", "heart-beat": "0,200"})
        connected = raw.read()
        assert connected.headers["heart-beat"] == "200,0"
        assert raw.read(timeout=2, want_heartbeats=True) is None
    finally:
        raw.close()
        beating.stop()


def test_drop_connections_and_restart_on_the_same_port(broker, clients, qname):
    client = clients()
    client.subscribe(qname, qname, ack="auto")
    broker.wait_for_subscription(qname)
    port = broker.port
    broker.drop_connections()
    deadline = time.monotonic() + 5
    while client.listener.disconnected == 0 and time.monotonic() < deadline:
        time.sleep(0.02)
    assert client.listener.disconnected == 1
    assert broker.subscriptions(qname) == []

    broker.inject(qname, "kept while down")
    broker.stop()
    broker.start()
    assert broker.port == port
    again = clients()
    again.subscribe(qname, qname, ack="auto")
    assert again.get().body == "kept while down"


def test_transactions_deliver_on_commit_only(broker, clients, qname):
    client = clients()
    client.subscribe(qname, qname, ack="auto")
    tx = client.conn.begin()
    client.conn.send(qname, "tx-1", transaction=tx)
    client.get_nothing()
    client.conn.commit(tx)
    assert client.get().body == "tx-1"
