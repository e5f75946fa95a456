"""Helpers for the end-to-end tests: STOMP test clients and a throwaway SOAR app with its own export."""
import json
import os
import queue
import socket
import ssl
import textwrap
import time

from importlib.metadata import entry_points

import pytest
import stomp

from sandbox.soar.sandbox import app_export_path
from sandbox.soar.stomp_frames import Frame, FrameParser, encode


def app_components():
    """Names of fn_twilio's installed resilient-circuits components."""
    return sorted(ep.name for ep in entry_points(group="resilient.circuits.components")
                  if ep.dist is not None and ep.dist.name == "fn_twilio")


requires_app = pytest.mark.skipif(not app_components(), reason="fn_twilio components are not installed yet "
                                  "(pip install -e . --no-deps after they appear)")
requires_export = pytest.mark.skipif(not os.path.exists(app_export_path()),
                                     reason="fn_twilio/util/data/export.res does not exist yet")


class Collector(stomp.ConnectionListener):
    def __init__(self):
        self.messages = queue.Queue()
        self.errors = []
        self.receipts = []
        self.disconnected = 0

    def on_message(self, frame):
        self.messages.put(frame)

    def on_error(self, frame):
        self.errors.append(frame)

    def on_receipt(self, frame):
        self.receipts.append(frame.headers.get("receipt-id"))

    def on_disconnected(self):
        self.disconnected += 1


class StompClient:
    """A stomp.py client (Connection12 over unverified TLS, as resilient-circuits connects)."""

    CONNECT_ATTEMPTS = 3

    def __init__(self, port, login="soar", passcode="soar-secret", heartbeats=(0, 0)):
        self.port = port
        self.listener = Collector()
        self.heartbeats = heartbeats
        self.conn = self._connection()
        self.login, self.passcode = login, passcode

    def _connection(self):
        conn = stomp.Connection12([("127.0.0.1", self.port)], heartbeats=self.heartbeats,
                                  reconnect_attempts_max=1, timeout=5)
        conn.set_ssl(for_hosts=[("127.0.0.1", self.port)])
        conn.set_listener("test", self.listener)
        return conn

    def connect(self):
        """Connect, on a new connection each time the CONNECT goes unanswered. stomp.py's concurrent TLS
        reads and writes can lose it to a broker's post-handshake TLS 1.3 session tickets: the built-in
        broker sends none, ActiveMQ's Java TLS does (a fresh ActiveMQ connection failed so, now and then)."""
        for attempt in range(1, self.CONNECT_ATTEMPTS + 1):
            try:
                self.conn.connect(self.login, self.passcode, wait=True)
                return self
            except stomp.exception.ConnectFailedException:
                if attempt == self.CONNECT_ATTEMPTS:
                    raise
                self.conn = self._connection()
        return self

    def subscribe(self, destination, sub_id, ack="client-individual", prefetch=None, receipt=None):
        headers = {"activemq.prefetchSize": str(prefetch)} if prefetch else {}
        if receipt:
            headers["receipt"] = receipt
        self.conn.subscribe(destination, id=sub_id, ack=ack, headers=headers)

    def get(self, timeout=5.0):
        return self.listener.messages.get(timeout=timeout)

    def get_nothing(self, wait=0.3):
        try:
            frame = self.listener.messages.get(timeout=wait)
        except queue.Empty:
            return True
        raise AssertionError(f"unexpected message: {frame.headers} {frame.body}")

    def close(self):
        try:
            if self.conn.is_connected():
                self.conn.disconnect()
        except Exception:  # noqa: BLE001 - already gone
            pass


class RawStomp:
    """A bare TLS socket speaking STOMP frames, for what stomp.py hides (escaping, heart-beats)."""

    def __init__(self, port):
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        self.sock = ctx.wrap_socket(socket.create_connection(("127.0.0.1", port), timeout=5),
                                    server_hostname="localhost")
        self.parser = FrameParser()
        self.items = []        # frames, and None for each heart-beat EOL

    def send(self, command, headers=None, body=b""):
        self.sock.sendall(encode(Frame(command, dict(headers or {}), body)))

    def send_bytes(self, data):
        self.sock.sendall(data)

    def read(self, timeout=5.0, want_heartbeats=False):
        """The next frame (or heart-beat None when want_heartbeats)."""
        deadline = time.monotonic() + timeout
        while True:
            while self.items:
                item = self.items.pop(0)
                if item is not None or want_heartbeats:
                    return item
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"no frame within {timeout}s")
            self.sock.settimeout(left)
            data = self.sock.recv(65536)
            if not data:
                raise ConnectionError("closed by the broker")
            self.items += self.parser.feed(data)

    def closed_by_peer(self, timeout=3.0):
        self.sock.settimeout(timeout)
        try:
            while True:
                data = self.sock.recv(65536)
                if not data:
                    return True
        except (ssl.SSLError, ConnectionError, OSError):
            return True

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass


def make_customize_app(folder, name, export):
    """A throwaway installed-looking distribution on ``folder``.

    Its customize entry point imports ``export``.

    Put ``folder`` on PYTHONPATH and run ``resilient-circuits customize -y -l <name>``.
    """
    pkg = os.path.join(folder, name)
    os.makedirs(pkg, exist_ok=True)
    with open(os.path.join(pkg, "__init__.py"), "w", encoding="utf-8") as handle:
        handle.write("")
    with open(os.path.join(pkg, "export.json"), "w", encoding="utf-8") as handle:
        json.dump(export, handle)
    with open(os.path.join(pkg, "customize.py"), "w", encoding="utf-8") as handle:
        handle.write(textwrap.dedent("""\
            import base64, os
            from resilient import ImportDefinition

            def customization_data(client=None):
                with open(os.path.join(os.path.dirname(__file__), "export.json"), "rb") as handle:
                    yield ImportDefinition(base64.b64encode(handle.read()))
            """))
    dist = os.path.join(folder, f"{name}-1.0.0.dist-info")
    os.makedirs(dist, exist_ok=True)
    with open(os.path.join(dist, "METADATA"), "w", encoding="utf-8") as handle:
        handle.write(f"Metadata-Version: 2.1\nName: {name}\nVersion: 1.0.0\n")
    with open(os.path.join(dist, "entry_points.txt"), "w", encoding="utf-8") as handle:
        handle.write(f"[resilient.circuits.customize]\ncustomize = {name}.customize:customization_data\n")
    return folder


def die_holding_a_message(port, queue_name, login="soar", passcode="soar-secret"):
    """A consumer that takes one message from ``queue_name`` (client-individual) and then just closes
    its socket, with no ACK and no DISCONNECT, as a killed process does; returns the MESSAGE frame."""
    raw = RawStomp(port)
    try:
        raw.send("CONNECT", {"accept-version": "1.2", "host": "localhost", "login": login,
                             "passcode": passcode})
        assert raw.read(timeout=10).command == "CONNECTED"
        raw.send("SUBSCRIBE", {"destination": queue_name, "id": "doomed", "ack": "client-individual"})
        return raw.read(timeout=10)
    finally:
        raw.close()


def assert_redelivered_as_activemq(first, again):
    """``again`` is ``first`` delivered a second time: same message, redelivered:true, same timestamp."""
    assert first.command == "MESSAGE" and "redelivered" not in first.headers
    assert int(first.headers["timestamp"]) > 0
    first_body = first.body.decode() if isinstance(first.body, bytes) else first.body
    assert again.body == first_body
    assert again.headers["message-id"] == first.headers["message-id"]
    assert again.headers.get("redelivered") == "true"
    assert again.headers["timestamp"] == first.headers["timestamp"]


def wait_until(predicate, timeout=30.0, what="the condition"):
    """Poll ``predicate`` until it holds; TimeoutError naming ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} did not happen within {timeout}s")
        time.sleep(0.02)
