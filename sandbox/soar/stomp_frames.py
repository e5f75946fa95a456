"""STOMP 1.2 frame encoding and incremental parsing (shared by the broker and tests)."""
from dataclasses import dataclass, field

_ESCAPES = {"\\": "\\\\", "\n": "\\n", ":": "\\c", "\r": "\\r"}
_UNESCAPES = {"\\": "\\", "n": "\n", "c": ":", "r": "\r"}
# CONNECT and CONNECTED frames never escape their headers (STOMP 1.2 spec).
_RAW_COMMANDS = frozenset({"CONNECT", "CONNECTED"})


class FrameError(ValueError):
    """A malformed frame."""


@dataclass
class Frame:
    command: str
    headers: dict = field(default_factory=dict)
    body: bytes = b""

    def get(self, name, default=None):
        return self.headers.get(name, default)

    @property
    def text(self):
        return self.body.decode("utf-8", "replace")


def escape(value, command):
    value = str(value)
    if command in _RAW_COMMANDS:
        return value
    return "".join(_ESCAPES.get(ch, ch) for ch in value)


def unescape(value, command):
    if command in _RAW_COMMANDS or "\\" not in value:
        return value
    out, i = [], 0
    while i < len(value):
        ch = value[i]
        if ch == "\\":
            if i + 1 >= len(value) or value[i + 1] not in _UNESCAPES:
                raise FrameError(f"undefined escape sequence in header value {value!r}")
            out.append(_UNESCAPES[value[i + 1]])
            i += 2
        else:
            out.append(ch)
            i += 1
    return "".join(out)


def encode(frame, with_content_length=True):
    """Bytes of a frame; adds content-length when the body is not empty."""
    body = frame.body if isinstance(frame.body, (bytes, bytearray)) else str(frame.body).encode("utf-8")
    lines = [frame.command]
    headers = dict(frame.headers)
    if with_content_length and body:
        headers["content-length"] = str(len(body))
    for key, value in headers.items():
        lines.append(f"{escape(key, frame.command)}:{escape(value, frame.command)}")
    head = ("\n".join(lines) + "\n\n").encode("utf-8")
    return head + bytes(body) + b"\x00"


class FrameParser:
    """Feed bytes, get frames. Heart-beat EOLs between frames are reported as ``None`` items."""

    def __init__(self, max_frame=16 * 1024 * 1024):
        self.buffer = bytearray()
        self.max_frame = max_frame

    def feed(self, data):
        self.buffer += data
        frames = []
        while True:
            item = self._next()
            if item is _NEED_MORE:
                break
            frames.append(item)
        return frames

    def _next(self):
        buf = self.buffer
        # heart-beats: bare EOLs before a frame
        if buf[:1] == b"\n":
            del buf[:1]
            return None
        if buf[:2] == b"\r\n":
            del buf[:2]
            return None
        if buf[:1] == b"\r":
            return _NEED_MORE if len(buf) < 2 else self._error("bare CR between frames")
        end_head = buf.find(b"\n\n")
        end_head_crlf = buf.find(b"\r\n\r\n")
        candidates = [(end_head, 2), (end_head_crlf, 4)]
        candidates = [c for c in candidates if c[0] >= 0]
        if not candidates:
            if len(buf) > self.max_frame:
                self._error("frame headers too large")
            return _NEED_MORE
        pos, size = min(candidates)
        head = buf[:pos].decode("utf-8")
        lines = head.replace("\r\n", "\n").split("\n")
        command = lines[0]
        if not command or not command.isupper():
            self._error(f"bad command line {command!r}")
        headers = {}
        for line in lines[1:]:
            if ":" not in line:
                self._error(f"header line without colon: {line!r}")
            key, _, value = line.partition(":")
            key, value = unescape(key, command), unescape(value, command)
            headers.setdefault(key, value)   # the first occurrence wins (STOMP 1.2)
        start = pos + size
        if "content-length" in headers:
            try:
                length = int(headers["content-length"])
            except ValueError:
                self._error("bad content-length")
            if len(buf) < start + length + 1:
                return _NEED_MORE
            body = bytes(buf[start:start + length])
            if buf[start + length] != 0:
                self._error("frame body not followed by NUL")
            del buf[:start + length + 1]
        else:
            nul = buf.find(b"\x00", start)
            if nul < 0:
                if len(buf) > self.max_frame:
                    self._error("frame too large")
                return _NEED_MORE
            body = bytes(buf[start:nul])
            del buf[:nul + 1]
        return Frame(command, headers, body)

    @staticmethod
    def _error(message):
        raise FrameError(message)


_NEED_MORE = object()
