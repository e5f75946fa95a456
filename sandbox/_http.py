"""The threaded HTTP server both emulators (SOAR REST, Twilio) run on.

It keeps the connections it is serving, so that a test can cut them all at once
(``close_open_sockets``) and stopping an emulator does not wait for keep-alive clients.
"""
import socket
import threading
from contextlib import contextmanager
from http.server import ThreadingHTTPServer


class TrackingHTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address, handler):
        self.open_sockets: set = set()
        self.sockets_lock = threading.Lock()
        super().__init__(address, handler)

    @contextmanager
    def tracked(self, sock):
        """Count ``sock`` as open while the block runs."""
        with self.sockets_lock:
            self.open_sockets.add(sock)
        try:
            yield sock
        finally:
            with self.sockets_lock:
                self.open_sockets.discard(sock)

    def close_open_sockets(self):
        with self.sockets_lock:
            socks = list(self.open_sockets)
        for sock in socks:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
