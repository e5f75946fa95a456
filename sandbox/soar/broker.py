"""A STOMP 1.2 broker over TLS with ActiveMQ-like queue semantics, for the SOAR sandbox.

One thread accepts, each connection has a reader thread and a writer thread. Queue state lives under
one lock. ``/queue/x`` and ``x`` name the same queue; a message goes to one subscriber (round robin),
is kept until acknowledged (``auto``, ``client``, ``client-individual``), and goes back to the front of
its queue when it is NACKed or its connection drops. As with ActiveMQ, a message delivered again
carries ``redelivered:true`` and keeps the ``timestamp`` it got when it reached the broker.
"""
import itertools
import logging
import queue as queuelib
import socket
import ssl
import threading
import time
from collections import OrderedDict, deque
from dataclasses import dataclass, field

from .stomp_frames import Frame, FrameError, FrameParser, encode

LOG = logging.getLogger(__name__)

# Headers of a SEND that are about the SEND itself and are not copied to the MESSAGE.
_NOT_COPIED = frozenset({"destination", "content-length", "receipt", "transaction"})
_CLOSE = object()


def queue_name(destination):
    """The queue a destination names: '/queue/x' and 'x' are the same queue."""
    destination = (destination or "").strip()
    if destination.startswith("/queue/"):
        return destination[len("/queue/"):]
    return destination


@dataclass
class LoggedFrame:
    """A frame the broker received ("in") or sent ("out")."""
    direction: str
    connection: int
    login: str
    command: str
    headers: dict
    body: bytes
    time: float = field(default_factory=time.time)

    @property
    def text(self):
        return self.body.decode("utf-8", "replace")

    @property
    def queue(self):
        return queue_name(self.headers.get("destination"))

    def __str__(self):
        return "{} #{} {} {}".format(self.direction, self.connection, self.command,
                                     self.headers.get("destination", ""))


@dataclass
class _Message:
    seq: int
    message_id: str
    queue: str
    headers: dict
    body: bytes
    redelivered: bool = False
    deliveries: int = 0


class _Subscription:
    def __init__(self, conn, sub_id, queue, ack_mode, prefetch):
        self.conn = conn
        self.id = sub_id
        self.queue = queue
        self.ack_mode = ack_mode
        self.prefetch = prefetch
        self.unacked = OrderedDict()   # ack id -> _Message

    def has_capacity(self):
        return self.ack_mode == "auto" or len(self.unacked) < self.prefetch


class _Connection:
    def __init__(self, broker, conn_id, sock, address):
        self.broker = broker
        self.id = conn_id
        self.sock = sock
        self.address = address
        self.login = None
        self.connected = False
        self.closed = False      # detached from the broker: no more deliveries
        self.aborted = False     # the socket was closed abruptly
        self.subscriptions = {}
        self.transactions = {}
        self.outbox = queuelib.Queue()
        self.heartbeat_send_ms = 0

    def send_frame(self, frame):
        self.broker._log("out", self, frame)
        self.outbox.put(encode(frame))

    def close_after_flush(self):
        self.outbox.put(_CLOSE)

    def abort(self):
        """Close the socket at once, as a network failure would."""
        self.closed = True
        self.aborted = True
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        try:
            self.sock.close()
        except OSError:
            pass
        self.outbox.put(_CLOSE)


class StompBroker:
    """STOMP 1.2 over TLS on 127.0.0.1.

    ``users``: {login: passcode}. ``heartbeat_ms``: the interval at which the broker offers to send
    heart-beats (0 = answers ``heart-beat:0,0``). ``default_prefetch``: unacknowledged messages per
    subscription when SUBSCRIBE has no ``activemq.prefetchSize``.
    """

    def __init__(self, cert, *, host="127.0.0.1", port=0, users=None, heartbeat_ms=0, default_prefetch=1000):
        self.cert = cert
        self.host = host
        self.port = port or None
        self._requested_port = port
        self.users = dict(users or {"emu-key-id": "emu-key-secret", "soar": "soar-secret"})
        self.heartbeat_ms = heartbeat_ms
        self.default_prefetch = default_prefetch
        self._lock = threading.RLock()
        self._changed = threading.Condition(self._lock)
        self._queues = {}                 # name -> deque of _Message
        self._round_robin = {}            # name -> next index
        self._connections = {}            # id -> _Connection
        self._conn_ids = itertools.count(1)
        self._msg_ids = itertools.count(1)
        self._ack_ids = itertools.count(1)
        self.log = []                     # LoggedFrame, both directions
        self.errors = []                  # texts of protocol errors the broker saw
        self.events = []                  # (time, connection id, event text): accepts, closes, TLS failures
        self._listener = None
        self._accept_thread = None
        self._ssl_context = None
        self._running = False

    # ------------------------------------------------------------------ lifecycle
    def start(self):
        """Listen (again) on the port; after a stop() the same port is reused."""
        if self._running:
            return self
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(self.cert.cert, self.cert.key)
        # No TLS 1.3 session tickets: a server sends them just after the handshake, while a stomp.py
        # client already reads in one thread and writes its CONNECT in another on the same SSL object;
        # that race sometimes swallows the CONNECT (the client then times out after 5 s).
        ctx.num_tickets = 0
        self._ssl_context = ctx
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((self.host, self.port or self._requested_port or 0))
        sock.listen(64)
        sock.settimeout(0.2)
        self.port = sock.getsockname()[1]
        self._listener = sock
        self._running = True
        self._accept_thread = threading.Thread(target=self._accept_loop, name=f"stomp-accept-{self.port}",
                                               daemon=True)
        self._accept_thread.start()
        return self

    def stop(self):
        """Stop listening and drop every connection; queued messages are kept for a later start()."""
        if not self._running:
            return
        self._running = False
        self._accept_thread.join(5)
        try:
            self._listener.close()
        except OSError:
            pass
        self.drop_connections()

    def restart(self, down_seconds=0.0):
        self.stop()
        if down_seconds:
            time.sleep(down_seconds)
        return self.start()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    # ------------------------------------------------------------------ test controls
    def inject(self, destination, body, headers=None):
        """Put a message on a queue as another client (SOAR) would; returns its message-id."""
        if isinstance(body, str):
            body = body.encode("utf-8")
        with self._lock:
            msg = self._enqueue(queue_name(destination), dict(headers or {}), body)
            self._dispatch()
            return msg.message_id

    def drop_connections(self, *, login=None, connection=None):
        """Abruptly close client sockets (every one by default; or those of a login, or one
        connection id); their unacknowledged messages are redelivered."""
        with self._lock:
            conns = [c for c in self._connections.values()
                     if (login is None or c.login == login) and (connection is None or c.id == connection)]
        for conn in conns:
            conn.abort()
        for conn in conns:
            self._cleanup(conn)

    def frames(self, command=None, destination=None, direction="in", since=0.0):
        """Logged frames, filtered by command, destination (either queue spelling) and direction."""
        want = queue_name(destination) if destination is not None else None
        with self._lock:
            return [f for f in self.log
                    if (direction is None or f.direction == direction)
                    and (command is None or f.command == command)
                    and (want is None or f.queue == want)
                    and f.time >= since]

    def wait_for_frame(self, command=None, destination=None, direction="in", timeout=10.0, predicate=None,
                       count=1, since=0.0):
        """Wait until ``count`` matching frames are logged; returns them (raises TimeoutError)."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                found = [f for f in self.frames(command, destination, direction, since)
                         if predicate is None or predicate(f)]
                if len(found) >= count:
                    return found
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError("no {} {} frame{} for {} within {}s".format(
                        count, command or "", "" if count == 1 else "s", destination or "any destination",
                        timeout))
                self._changed.wait(left)

    def clear_log(self):
        with self._lock:
            self.log.clear()
            self.errors.clear()

    def pending(self, destination):
        """(headers, body) of the messages waiting on a queue, in delivery order."""
        with self._lock:
            return [(dict(m.headers), m.body) for m in self._queues.get(queue_name(destination), ())]

    def purge(self, destination):
        """Drop the messages waiting on a queue; returns how many there were."""
        with self._lock:
            pending = self._queues.get(queue_name(destination))
            count = len(pending or ())
            if pending:
                pending.clear()
            return count

    def unacked(self, destination=None):
        """Messages delivered but not acknowledged yet.

        A list of (connection id, subscription id, message-id).
        """
        want = queue_name(destination) if destination is not None else None
        with self._lock:
            out = []
            for conn in self._connections.values():
                for sub in conn.subscriptions.values():
                    if want is None or sub.queue == want:
                        out += [(conn.id, sub.id, m.message_id) for m in sub.unacked.values()]
            return out

    def subscriptions(self, destination=None):
        """Active subscriptions: list of dicts (connection, login, id, queue, ack, prefetch)."""
        want = queue_name(destination) if destination is not None else None
        with self._lock:
            return [{"connection": c.id, "login": c.login, "id": s.id, "queue": s.queue, "ack": s.ack_mode,
                     "prefetch": s.prefetch}
                    for c in self._connections.values() for s in c.subscriptions.values()
                    if want is None or s.queue == want]

    def wait_for_subscription(self, destination, timeout=10.0, count=1):
        deadline = time.monotonic() + timeout
        with self._changed:
            while len(self.subscriptions(destination)) < count:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"no subscription to {destination} within {timeout}s")
                self._changed.wait(left)

    @property
    def connection_count(self):
        with self._lock:
            return sum(1 for c in self._connections.values() if c.connected)

    # ------------------------------------------------------------------ network
    def _accept_loop(self):
        while self._running:
            try:
                raw, address = self._listener.accept()
            except socket.timeout:
                continue
            except OSError:
                break
            raw.settimeout(None)
            conn_id = next(self._conn_ids)
            threading.Thread(target=self._serve, args=(raw, address, conn_id),
                             name=f"stomp-conn-{conn_id}", daemon=True).start()

    def _serve(self, raw, address, conn_id):
        try:
            raw.settimeout(10)
            sock = self._ssl_context.wrap_socket(raw, server_side=True)
            sock.settimeout(None)
        except (ssl.SSLError, OSError) as exc:
            LOG.debug("TLS handshake from %s failed: %s", address, exc)
            self._event(conn_id, f"TLS handshake failed: {exc}")
            raw.close()
            return
        self._event(conn_id, "connected from {}:{}".format(*address[:2]))
        conn = _Connection(self, conn_id, sock, address)
        with self._lock:
            if not self._running:
                sock.close()
                return
            self._connections[conn_id] = conn
        writer = threading.Thread(target=self._write_loop, args=(conn,), name=f"stomp-write-{conn_id}",
                                  daemon=True)
        writer.start()
        parser = FrameParser()
        try:
            while not conn.closed:
                try:
                    data = sock.recv(65536)
                except (OSError, ValueError) as exc:
                    self._event(conn.id, f"read failed: {exc!r}")
                    break
                if not data:
                    self._event(conn.id, "closed by the client")
                    break
                try:
                    frames = parser.feed(data)
                except (FrameError, UnicodeDecodeError) as exc:
                    self._protocol_error(conn, f"malformed frame: {exc}")
                    break
                for frame in frames:
                    if frame is None:   # heart-beat
                        continue
                    self._log("in", conn, frame)
                    if not self._handle(conn, frame):
                        break
                else:
                    continue
                break
        finally:
            self._cleanup(conn)

    def _write_loop(self, conn):
        while True:
            timeout = conn.heartbeat_send_ms / 1000.0 if conn.heartbeat_send_ms else None
            try:
                item = conn.outbox.get(timeout=timeout)
            except queuelib.Empty:
                item = b"\n"   # heart-beat
            if item is _CLOSE:
                break
            try:
                conn.sock.sendall(item)
            except (OSError, ValueError) as exc:
                self._event(conn.id, f"write failed: {exc!r}")
                break
        if not conn.aborted:
            conn.closed = True
            try:   # a graceful TLS close (close_notify), as after DISCONNECT or ERROR
                conn.sock.settimeout(1.0)
                conn.sock.unwrap()
            except (OSError, ValueError):
                pass
            try:
                conn.sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            try:
                conn.sock.close()
            except OSError:
                pass

    def _cleanup(self, conn):
        with self._lock:
            if self._connections.pop(conn.id, None) is None:
                return
            conn.closed = True
            returned = []
            for sub in conn.subscriptions.values():
                returned += list(sub.unacked.values())
                sub.unacked.clear()
            conn.subscriptions.clear()
            self._requeue(returned)
            self._dispatch()
            self._changed.notify_all()
        conn.outbox.put(_CLOSE)

    # ------------------------------------------------------------------ protocol
    def _event(self, conn_id, text):
        with self._lock:
            self.events.append((time.time(), conn_id, text))

    def _log(self, direction, conn, frame):
        login = conn.login
        if login is None and frame.command in ("CONNECT", "STOMP"):
            login = frame.headers.get("login")
        with self._lock:
            self.log.append(LoggedFrame(direction, conn.id, login, frame.command, dict(frame.headers),
                                        bytes(frame.body)))
            self._changed.notify_all()

    def _protocol_error(self, conn, message, receipt_of=None):
        with self._lock:
            self.errors.append(message)
        headers = {"message": message, "content-type": "text/plain"}
        if receipt_of is not None and "receipt" in receipt_of.headers:
            headers["receipt-id"] = receipt_of.headers["receipt"]
        conn.send_frame(Frame("ERROR", headers, message.encode("utf-8")))
        conn.close_after_flush()

    def _handle(self, conn, frame):
        """Process one client frame; False ends the connection."""
        cmd = frame.command
        if not conn.connected:
            if cmd not in ("CONNECT", "STOMP"):
                self._protocol_error(conn, f"{cmd} before CONNECT")
                return False
            return self._connect(conn, frame)
        handler = {
            "SEND": self._on_send, "SUBSCRIBE": self._on_subscribe, "UNSUBSCRIBE": self._on_unsubscribe,
            "ACK": self._on_ack, "NACK": self._on_nack, "BEGIN": self._on_begin, "COMMIT": self._on_commit,
            "ABORT": self._on_abort,
        }.get(cmd)
        if cmd == "DISCONNECT":
            self._receipt(conn, frame)
            conn.close_after_flush()
            return False
        if handler is None:
            self._protocol_error(conn, f"unknown command {cmd}", frame)
            return False
        error = handler(conn, frame)
        if error:
            self._protocol_error(conn, error, frame)
            return False
        self._receipt(conn, frame)
        return True

    def _receipt(self, conn, frame):
        if "receipt" in frame.headers:
            conn.send_frame(Frame("RECEIPT", {"receipt-id": frame.headers["receipt"]}))

    def _connect(self, conn, frame):
        versions = [v.strip() for v in frame.headers.get("accept-version", "1.0").split(",")]
        if "1.2" not in versions:
            conn.send_frame(Frame("ERROR",
                                  {"version": "1.2", "message": "Supported protocol versions are 1.2"}))
            conn.close_after_flush()
            return False
        login, passcode = frame.headers.get("login"), frame.headers.get("passcode")
        if login not in self.users or self.users[login] != passcode:
            self._protocol_error(conn, f"Authentication failed for user '{login}'")
            return False
        try:
            cx, cy = (int(x) for x in frame.headers.get("heart-beat", "0,0").split(","))
        except ValueError:
            self._protocol_error(conn, "bad heart-beat header")
            return False
        send_ms = max(self.heartbeat_ms, cy) if (self.heartbeat_ms and cy) else 0
        conn.login = login
        conn.heartbeat_send_ms = send_ms
        conn.connected = True
        conn.send_frame(Frame("CONNECTED", {"version": "1.2", "heart-beat": f"{send_ms},0",
                                            "server": "sandbox-stomp/1.0",
                                            "session": f"sandbox-session-{conn.id}"}))
        with self._lock:
            self._changed.notify_all()
        return True

    def _on_send(self, conn, frame):
        destination = frame.headers.get("destination")
        if not destination:
            return "SEND without destination"
        tx = frame.headers.get("transaction")
        if tx is not None:
            if tx not in conn.transactions:
                return f"unknown transaction {tx}"
            conn.transactions[tx].append(frame)
            return None
        self._deliver_send(frame)
        return None

    def _deliver_send(self, frame):
        headers = {k: v for k, v in frame.headers.items() if k not in _NOT_COPIED}
        with self._lock:
            self._enqueue(queue_name(frame.headers["destination"]), headers, frame.body)
            self._dispatch()

    def _on_subscribe(self, conn, frame):
        destination, sub_id = frame.headers.get("destination"), frame.headers.get("id")
        if not destination or sub_id is None:
            return "SUBSCRIBE needs destination and id"
        ack_mode = frame.headers.get("ack", "auto")
        if ack_mode not in ("auto", "client", "client-individual"):
            return f"bad ack mode {ack_mode}"
        try:
            prefetch = int(frame.headers.get("activemq.prefetchSize", self.default_prefetch))
        except ValueError:
            return "bad activemq.prefetchSize"
        with self._lock:
            if sub_id in conn.subscriptions:
                return f"duplicate subscription id {sub_id}"
            conn.subscriptions[sub_id] = _Subscription(conn, sub_id, queue_name(destination), ack_mode,
                                                       max(prefetch, 1))
            self._dispatch()
            self._changed.notify_all()
        return None

    def _on_unsubscribe(self, conn, frame):
        sub_id = frame.headers.get("id")
        with self._lock:
            sub = conn.subscriptions.pop(sub_id, None)
            if sub is None:
                return f"no subscription {sub_id}"
            self._requeue(list(sub.unacked.values()))
            self._dispatch()
            self._changed.notify_all()
        return None

    def _find_unacked(self, conn, ack_id):
        for sub in conn.subscriptions.values():
            if ack_id in sub.unacked:
                return sub
        return None

    def _on_ack(self, conn, frame):
        ack_id = frame.headers.get("id")
        with self._lock:
            sub = self._find_unacked(conn, ack_id)
            if sub is None:
                # ActiveMQ answers an unknown ack with an ERROR; the sandbox records it and goes on,
                # so that a late ACK after a reconnect does not end the new session.
                self.errors.append(f"ACK of unknown id {ack_id} on connection {conn.id}")
                return None
            if sub.ack_mode == "client":
                for key in list(sub.unacked):
                    sub.unacked.pop(key)
                    if key == ack_id:
                        break
            else:
                sub.unacked.pop(ack_id)
            self._dispatch()
            self._changed.notify_all()
        return None

    def _on_nack(self, conn, frame):
        ack_id = frame.headers.get("id")
        with self._lock:
            sub = self._find_unacked(conn, ack_id)
            if sub is None:
                self.errors.append(f"NACK of unknown id {ack_id} on connection {conn.id}")
                return None
            returned = []
            if sub.ack_mode == "client":
                for key in list(sub.unacked):
                    returned.append(sub.unacked.pop(key))
                    if key == ack_id:
                        break
            else:
                returned.append(sub.unacked.pop(ack_id))
            self._requeue(returned)
            self._dispatch()
            self._changed.notify_all()
        return None

    def _on_begin(self, conn, frame):
        tx = frame.headers.get("transaction")
        if not tx or tx in conn.transactions:
            return f"bad or duplicate transaction {tx}"
        conn.transactions[tx] = []
        return None

    def _on_commit(self, conn, frame):
        tx = frame.headers.get("transaction")
        if tx not in conn.transactions:
            return f"unknown transaction {tx}"
        for send in conn.transactions.pop(tx):
            self._deliver_send(send)
        return None

    def _on_abort(self, conn, frame):
        tx = frame.headers.get("transaction")
        if tx not in conn.transactions:
            return f"unknown transaction {tx}"
        conn.transactions.pop(tx)
        return None

    # ------------------------------------------------------------------ queues (call with the lock held)
    def _enqueue(self, name, headers, body):
        # As ActiveMQ: the timestamp is the moment the message reached the broker, and a redelivery
        # keeps it (a SEND's own timestamp header wins).
        headers.setdefault("timestamp", str(int(time.time() * 1000)))
        msg = _Message(next(self._msg_ids), "", name, headers, bytes(body))
        msg.message_id = f"ID:sandbox-broker-{self.port}-{msg.seq}"
        self._queues.setdefault(name, deque()).append(msg)
        return msg

    def _requeue(self, messages):
        by_queue = {}
        for msg in messages:
            msg.redelivered = True
            by_queue.setdefault(msg.queue, []).append(msg)
        for name, msgs in by_queue.items():
            pending = self._queues.setdefault(name, deque())
            merged = sorted(list(pending) + msgs, key=lambda m: m.seq)
            pending.clear()
            pending.extend(merged)

    def _dispatch(self):
        for name, pending in self._queues.items():
            if not pending:
                continue
            subs = [s for c in self._connections.values() if c.connected and not c.closed
                    for s in c.subscriptions.values() if s.queue == name]
            if not subs:
                continue
            while pending:
                start = self._round_robin.get(name, 0)
                chosen = None
                for offset in range(len(subs)):
                    candidate = subs[(start + offset) % len(subs)]
                    if candidate.has_capacity():
                        chosen = candidate
                        self._round_robin[name] = (start + offset + 1) % len(subs)
                        break
                if chosen is None:
                    break
                self._deliver(chosen, pending.popleft())

    def _deliver(self, sub, msg):
        msg.deliveries += 1
        headers = dict(msg.headers)
        headers.update({
            "destination": f"/queue/{msg.queue}",
            "message-id": msg.message_id,
            "subscription": sub.id,
        })
        headers.setdefault("expires", "0")
        headers.setdefault("priority", "4")
        headers.setdefault("persistent", "true")
        if msg.redelivered:
            headers["redelivered"] = "true"
        if sub.ack_mode != "auto":
            ack_id = f"ID:sandbox-ack-{next(self._ack_ids)}"
            headers["ack"] = ack_id
            sub.unacked[ack_id] = msg
        sub.conn.send_frame(Frame("MESSAGE", headers, msg.body))
