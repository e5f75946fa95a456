"""The one clock seam of the core: monotonic time and waiting.

Every loop in :mod:`fn_twilio.lib` (sending with back-off, polling, waiting for replies) reads the time
and waits through a :class:`Clock`, so tests drive those loops with a :class:`FakeClock` in
milliseconds, without sleeping.

A clock does two things:

* ``now()``: monotonic seconds (only differences mean anything); ``wall()``: the aware UTC time;
* ``wait(event, timeout)``: wait until ``event`` is set or ``timeout`` seconds have passed on this
  clock; True when the event is set. Waiting on a condition is ``wait_for(condition, predicate,
  timeout)``, called with ``condition`` held, like :meth:`threading.Condition.wait_for`.
"""
from __future__ import annotations

import threading
import time
from datetime import datetime, timedelta, timezone
from typing import Callable, Protocol

# How often a FakeClock's waiter looks again at its event or condition (real seconds). Waiters are
# also woken at once when the fake time moves, so this only bounds how late a set event is noticed.
_FAKE_POLL = 0.002


class Clock(Protocol):
    def now(self) -> float: ...

    def wall(self) -> datetime: ...

    def wait(self, event: threading.Event, timeout: float | None) -> bool: ...

    def wait_for(self, condition: threading.Condition, predicate: Callable[[], bool],
                 timeout: float | None) -> bool: ...


class SystemClock:
    """The real clock: :func:`time.monotonic` and the threading primitives' own timeouts."""

    def now(self) -> float:
        return time.monotonic()

    def wall(self) -> datetime:
        return datetime.now(timezone.utc)

    def wait(self, event: threading.Event, timeout: float | None) -> bool:
        return event.wait(None if timeout is None else max(0.0, timeout))

    def wait_for(self, condition: threading.Condition, predicate: Callable[[], bool],
                 timeout: float | None) -> bool:
        return bool(condition.wait_for(predicate, None if timeout is None else max(0.0, timeout)))


SYSTEM_CLOCK = SystemClock()


class FakeClock:
    """A clock whose time moves only when told to.

    ``auto_advance=True``: a wait that would block moves the time to its end at once (for loops
    running in the test's own thread, such as one recipient's retries). Otherwise a wait blocks until
    its event or predicate holds or another thread calls :meth:`advance` past its end.
    ``waits`` records every wait's timeout, in order (the back-off schedule a test reads).
    """

    def __init__(self, start: float = 1000.0, *, auto_advance: bool = False,
                 wall_start: datetime | None = None):
        self._now = self._start = start
        self.wall_start = wall_start or datetime(2026, 1, 1, 12, 0, tzinfo=timezone.utc)
        self._auto = auto_advance
        self._moved = threading.Condition()
        self.waits: list[float | None] = []

    def now(self) -> float:
        with self._moved:
            return self._now

    def wall(self) -> datetime:
        """The wall-clock time: ``wall_start`` moved on as far as the fake monotonic time."""
        with self._moved:
            return self.wall_start + timedelta(seconds=self._now - self._start)

    def advance(self, seconds: float) -> None:
        with self._moved:
            self._now += seconds
            self._moved.notify_all()

    def _end(self, timeout: float | None) -> float | None:
        with self._moved:
            self.waits.append(timeout)
            return None if timeout is None else self._now + max(0.0, timeout)

    def _block(self, done: Callable[[], bool], end: float | None, pause: Callable[[], object]) -> bool:
        """Wait until ``done()``, or until the fake time reaches ``end``; ``pause()`` between looks."""
        while True:
            if done():
                return True
            with self._moved:
                if end is not None and self._now >= end:
                    return False
                if self._auto and end is not None:
                    self._now = end
                    self._moved.notify_all()
                    continue
            pause()

    def _pause(self) -> None:
        with self._moved:
            self._moved.wait(_FAKE_POLL)

    def wait(self, event: threading.Event, timeout: float | None) -> bool:
        return self._block(event.is_set, self._end(timeout), self._pause)

    def wait_for(self, condition: threading.Condition, predicate: Callable[[], bool],
                 timeout: float | None) -> bool:
        # called with ``condition`` held: pausing on it lets its writers in before the next look
        return self._block(predicate, self._end(timeout), lambda: condition.wait(_FAKE_POLL))
