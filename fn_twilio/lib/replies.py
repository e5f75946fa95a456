"""Collecting replies: one shared poller per Twilio account and sender in a process.

Every call waiting for replies registers a :class:`Watch` (the number it waits on and the moment
since which replies count). All watches on the same account and sender share one
:class:`ReplyPoller`, whose thread makes one list request per ``poll_interval`` for all of them,
whatever number each waits on, and hands each watch the new inbound messages from its number.

A look costs one request when nothing new has arrived: messages are listed newest first with the
``DateSent>`` filter set to the oldest moment any watch needs, and the look stops at the first page
that reaches a message already seen (or older than that moment). Messages are de-duplicated by SID.

The first look happens as soon as a watch registers (registrations that arrive together share it);
the poller thread ends when the last watch closes.
"""
from __future__ import annotations

import hashlib
import logging
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Callable, Optional

from fn_twilio.lib.errors import Failure, Retry, classify
from fn_twilio.lib.phone import mask, mask_numbers
from fn_twilio.lib.records import Reply
from fn_twilio.lib.twilio_client import build_client

LOG = logging.getLogger(__name__)

PAGE_SIZE = 100
# A look that keeps failing with errors that are worth retrying ends the waiting calls after this many.
MAX_CONSECUTIVE_FAILURES = 5
_BEGINNING = datetime(1970, 1, 1, tzinfo=timezone.utc)


def _second(dt: Optional[datetime]) -> datetime:
    """Twilio's dates have whole seconds: compare at that precision (None = the beginning)."""
    return _BEGINNING if dt is None else dt.astimezone(timezone.utc).replace(microsecond=0)


class Watch:
    """One call's interest in replies from ``number`` sent at or after ``since``."""

    def __init__(self, poller: "ReplyPoller", number: str, since: Optional[datetime]):
        self.number = number
        self.since = since
        self._floor = _second(since)
        self._poller = poller
        self._found: dict[str, Reply] = {}
        self._looks = 0
        self._error: Optional[Failure] = None
        self._changed = threading.Condition()
        self._closed = False

    # -- read by the waiting call ------------------------------------------------------------
    @property
    def replies(self) -> list[Reply]:
        """The replies found so far, oldest first, each once."""
        with self._changed:
            return sorted(self._found.values(), key=lambda r: (r.date_sent, r.date_created, r.sid))

    @property
    def looks(self) -> int:
        """How many completed looks have covered this watch."""
        with self._changed:
            return self._looks

    @property
    def error(self) -> Optional[Failure]:
        with self._changed:
            return self._error

    def wait(self, timeout: float) -> bool:
        """Wait up to ``timeout`` s for a reply or an error; True when there is one to report."""
        deadline = time.monotonic() + max(0.0, timeout)
        with self._changed:
            while not (self._found or self._error):
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                self._changed.wait(remaining)
            return bool(self._found or self._error)

    def wait_for_look(self, timeout: float) -> bool:
        """Wait up to ``timeout`` s until at least one look has covered this watch."""
        deadline = time.monotonic() + max(0.0, timeout)
        with self._changed:
            while self._looks == 0 and not self._error:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._changed.wait(remaining)
            return True

    def close(self):
        """Stop waiting; the poller forgets this watch (and stops when it was the last)."""
        if not self._closed:
            self._closed = True
            self._poller.remove(self)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # -- written by the poller ---------------------------------------------------------------
    def _offer(self, replies, completed_look: bool):
        with self._changed:
            for reply in replies:
                if reply.from_ == self.number and reply.date_sent >= self._floor and reply.sid not in self._found:
                    self._found[reply.sid] = reply
            if completed_look:
                self._looks += 1
            self._changed.notify_all()

    def _fail(self, failure: Failure):
        with self._changed:
            self._error = failure
            self._changed.notify_all()


@dataclass
class _Cache:
    """Inbound messages to the sender seen so far, complete from ``floor`` to the last look."""

    floor: Optional[datetime] = None
    by_sid: dict = field(default_factory=dict)

    def prune(self, floor: datetime):
        self.floor = floor
        self.by_sid = {sid: r for sid, r in self.by_sid.items() if r.date_sent >= floor}


class ReplyPoller:
    """Polls Twilio for the inbound messages to one sender, for every :class:`Watch` registered."""

    def __init__(self, settings, *, key=None, client_factory: Callable = build_client):
        self.settings = settings
        self.interval = float(settings.poll_interval)
        self._key = key
        self._client_factory = client_factory
        self._lock = threading.Lock()
        self._watches: list[Watch] = []
        self._fresh: list[Watch] = []       # registered, not yet covered by a look
        self._wake = threading.Event()
        self._cache = _Cache()
        self._failures = 0
        self._thread: Optional[threading.Thread] = None
        self.accepting = True
        self.requests = 0                   # list requests made (for diagnostics and benchmarks)

    # -- registration --------------------------------------------------------------------------
    def add(self, watch: Watch, *, fresh_look: bool = False):
        """Register a watch. Its first look is the cache of a running poller when that covers its
        moment (the cache is at most one interval old), else a look made at once for it.
        ``fresh_look`` always asks for a look of its own (a call that looks once, without waiting).
        """
        with self._lock:
            self._watches.append(watch)
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="fn_twilio-reply-poller", daemon=True)
                self._thread.start()
            cache = self._cache
            if not fresh_look and cache.floor is not None and _second(watch.since) >= cache.floor:
                watch._offer(cache.by_sid.values(), completed_look=True)
                return
            self._fresh.append(watch)
        self._wake.set()

    def remove(self, watch: Watch):
        with self._lock:
            if watch in self._watches:
                self._watches.remove(watch)
            if watch in self._fresh:
                self._fresh.remove(watch)
            last = not self._watches
        if last:   # let the thread end now rather than after its interval
            self._wake.set()

    def _take_watches(self):
        """The current watches and the fresh ones; stops accepting when there is none."""
        with self._lock:
            if not self._watches:
                self.accepting = False
                return None, None
            fresh, self._fresh = self._fresh, []
            return list(self._watches), fresh

    # -- the poller thread ---------------------------------------------------------------------
    def _run(self):
        client = None
        try:
            while True:
                with _REGISTRY_LOCK:   # decide to stop atomically with the registry
                    watches, fresh = self._take_watches()
                    if watches is None:
                        _forget(self)
                        return
                self._wake.clear()
                started = time.monotonic()
                if client is None:
                    client = self._client_factory(self.settings)
                self._look(client, watches, fresh)
                remaining = self.interval - (time.monotonic() - started)
                if remaining > 0:
                    self._wake.wait(remaining)
        finally:
            if client is not None:
                try:
                    client.http_client.close()
                except Exception:  # best effort
                    LOG.debug("closing the poller's HTTP session failed", exc_info=True)

    def _list_page(self, client, after: Optional[datetime]):
        params = {"page_size": PAGE_SIZE}
        if self.settings.src_address:
            params["to"] = self.settings.src_address
        if after is not None and after > _BEGINNING:
            params["date_sent_after"] = after
        self.requests += 1
        return client.messages.page(**params)

    def _matches_sender(self, message) -> bool:
        if (message.direction or "") != "inbound":
            return False
        if self.settings.src_address:
            return True
        return message.messaging_service_sid == self.settings.messaging_service_sid

    def _look(self, client, watches: list[Watch], fresh: list[Watch]):
        need = min(_second(w.since) for w in watches)
        cache = self._cache
        deep = cache.floor is None or need < cache.floor
        stop_before = need if deep else cache.floor
        try:
            new = self._fetch_new(client, stop_before, deep)
        except Exception as exc:  # every failure of a look ends in a Failure, never in the thread dying
            with self._lock:   # watches waiting for their first look still wait for it
                self._fresh.extend(w for w in fresh if w in self._watches and w not in self._fresh)
            self._look_failed(classify(exc, action="read", timeout=self.settings.timeout), watches)
            return
        self._failures = 0
        with self._lock:
            for reply in new:
                cache.by_sid[reply.sid] = reply
            cache.prune(min([need] + [_second(w.since) for w in self._watches if w not in self._fresh]))
            everything = list(cache.by_sid.values())
            for watch in self._watches:
                if watch in fresh:
                    watch._offer(everything, completed_look=True)
                elif watch not in self._fresh:   # registered during this look: covered by the next one
                    watch._offer(new, completed_look=True)
        if new:
            LOG.info("Twilio: %s new repl%s to %s", len(new), "y" if len(new) == 1 else "ies",
                     mask(self.settings.sender))

    def _fetch_new(self, client, stop_before: datetime, deep: bool) -> list[Reply]:
        """Inbound messages to the sender not in the cache, newest first, down to ``stop_before``.

        Pages are read until one reaches a message already seen (or, for a deep look that fills the
        cache further back, one older than ``stop_before``).
        """
        known = self._cache.by_sid
        new: list[Reply] = []
        page = self._list_page(client, stop_before)
        while page is not None:
            reached_known = False
            for message in page:
                sent = message.date_sent or message.date_created
                if sent is not None and _second(sent) < stop_before:
                    reached_known = True
                    continue
                if not self._matches_sender(message):
                    continue
                if message.sid in known:
                    reached_known = reached_known or not deep
                    continue
                new.append(Reply.from_message(message))
            if reached_known or not page.next_page_url:
                break
            self.requests += 1
            page = page.next_page()
        return new

    def _look_failed(self, failure: Failure, watches: list[Watch]):
        self._failures += 1
        lasting = failure.retry is Retry.NEVER or self._failures >= MAX_CONSECUTIVE_FAILURES
        # %s only: resilient-circuits' log filter turns every argument into text before formatting
        LOG.warning("Looking for replies failed (%s, attempt %s): %s", failure.kind.value, self._failures,
                    mask_numbers(failure.message))
        if lasting:
            for watch in watches:
                watch._fail(failure)


# -- the process-wide registry of pollers -------------------------------------------------------
_REGISTRY_LOCK = threading.Lock()
_POLLERS: dict = {}


def _poller_key(settings) -> tuple:
    """Calls share a poller only when they would make the same requests with the same credentials
    (a changed token after a configuration reload gets a poller of its own; only a digest is kept)."""
    secret = settings.api_key_secret if settings.api_key_sid else settings.auth_token
    credential = (settings.api_key_sid or settings.account_sid,
                  hashlib.sha256((secret or "").encode()).hexdigest())
    return (settings.base_url, settings.account_sid, credential, settings.sender, float(settings.poll_interval))


def _forget(poller: ReplyPoller):
    if _POLLERS.get(poller._key) is poller:
        del _POLLERS[poller._key]


def watch_replies(settings, number: str, since: Optional[datetime], *, fresh_look: bool = False,
                  client_factory: Callable = build_client) -> Watch:
    """Register interest in replies from ``number`` to the sender of ``settings``; close the Watch after."""
    key = _poller_key(settings)
    with _REGISTRY_LOCK:
        poller = _POLLERS.get(key)
        if poller is None or not poller.accepting:
            poller = ReplyPoller(settings, key=key, client_factory=client_factory)
            _POLLERS[key] = poller
        watch = Watch(poller, number, since)
        poller.add(watch, fresh_look=fresh_look)
    return watch


def active_pollers() -> int:
    """How many pollers run in this process (for tests and diagnostics)."""
    with _REGISTRY_LOCK:
        return len(_POLLERS)


