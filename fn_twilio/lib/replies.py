"""Collecting replies: one shared reply poller per Twilio account and sender in a process.

Every call waiting for replies registers a :class:`ReplyWatch` (the numbers it waits on and the
moment since which replies count). All watches on the same account and sender share one
:class:`ReplyPoller` (a :class:`~fn_twilio.lib.polling.SharedPoller`).

How a look stays bounded:

* **A watch's own first look.** A watch whose moment is not covered by what the poller already holds
  (no ``since``, or one older than the cache's floor) gets a request per number it waits on,
  filtered by that number (``From``) as well as the sender (``To``) and by its moment: its cost is
  that person's messages, never the sender's whole history. A watch the cache covers costs nothing.
* **The shared look.** One list request per interval for all watches, newest first, stopping at the
  first page that reaches a message already seen (or older than the cache's floor). A poller's first
  look is only the watches' own; its second starts the shared listing (one page, from a little
  before the first look, or from the oldest moment of the watches when they all have one).
* **The page cap.** No listing of a look (the shared one, or one number's own) reads more than
  ``page_cap`` pages; a listing cut short keeps its place and goes on at the next interval.

* **Channels.** Replies are listed by the address they were sent to: ``To=<sender>`` for SMS and, while
  some watch waits on a ``whatsapp:`` number, ``To=whatsapp:<sender>`` too (contract §13.1: WhatsApp
  replies arrive there). Each channel has its own shared listing; a watch on a channel the shared
  listings do not cover yet gets its own first look.

A message listed without ``date_sent`` counts as sent at its ``date_created``, and without either at
the moment of the look. :func:`collect` is the wait loop the SOAR components call.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any, Callable
from collections.abc import Iterable, Sequence

from fn_twilio.lib.clock import SYSTEM_CLOCK, Clock
from fn_twilio.lib.errors import Failure
from fn_twilio.lib.phone import mask
from fn_twilio.lib.polling import (ClientFactory, PageBudget, SharedPoller, Watch, active_pollers, register,
                                   wait_on)
from fn_twilio.lib.records import Reply
from fn_twilio.lib.sender import message_params
from fn_twilio.lib.twilio_client import build_client

LOG = logging.getLogger(__name__)

PAGE_SIZE = 100
# The shared listing, when it starts after the watches' own first looks, reaches this much further
# back (seconds, on top of one interval) to allow for the difference between this host's and
# Twilio's clocks.
FRONTIER_MARGIN = 300.0
KIND = "reply poller"
_BEGINNING = datetime(1970, 1, 1, tzinfo=timezone.utc)

__all__ = ["PAGE_SIZE", "ReplyWatch", "ReplyPoller", "CollectOutcome", "Ending", "watch_replies", "collect",
           "active_pollers"]


def listening_address(settings: Any, number: str) -> str | None:
    """The address a reply from ``number`` is sent to: the sender on that number's channel
    (``whatsapp:<sender>`` for a WhatsApp number); None with a Messaging Service (no ``To`` filter)."""
    return message_params(settings, number, "").get("from_")


def _second(dt: datetime | None) -> datetime:
    """Twilio's dates have whole seconds: compare at that precision (None = the beginning)."""
    return _BEGINNING if dt is None else dt.astimezone(timezone.utc).replace(microsecond=0)


class ReplyWatch(Watch):
    """One call's interest in replies from ``numbers`` sent at or after ``since``."""

    def __init__(self, numbers: Sequence[str], since: datetime | None, clock: Clock = SYSTEM_CLOCK):
        super().__init__(clock)
        self.numbers = tuple(numbers)
        self.channels: dict[str, str | None] = {}   # number -> the address its replies go to (set on add)
        self.since = since
        self.floor = _second(since)
        self._found: dict[str, Reply] = {}
        self.backfill: dict[str, Any] = {}   # number -> the page to go on from (its own first look)
        self.handled = 0   # replies the waiting call has already dealt with: only more are news

    @property
    def number(self) -> str:
        return self.numbers[0]

    @property
    def replies(self) -> list[Reply]:
        """The replies found so far, oldest first, each once."""
        with self.changed:
            return sorted(self._found.values(), key=lambda r: (r.date_sent, r.date_created, r.sid))

    def has_news(self) -> bool:
        return len(self._found) > self.handled

    def offer(self, replies: Iterable[Reply]) -> None:
        with self.changed:
            for reply in replies:
                wanted = reply.from_ in self.numbers and reply.date_sent >= self.floor
                if wanted and reply.sid not in self._found:
                    self._found[reply.sid] = reply
            self.changed.notify_all()


class ReplyPoller(SharedPoller[ReplyWatch]):
    """Polls Twilio for the inbound messages to one sender, for every :class:`ReplyWatch`."""

    kind = KIND

    def __init__(self, settings: Any, key: tuple[Any, ...], **kwargs: Any) -> None:
        super().__init__(settings, key, **kwargs)
        self.floor: datetime | None = None   # the cache holds every inbound message since this
        self.known: dict[str, Reply] = {}
        self._backlog: list[tuple[str | None, Any]] = []   # shared listings cut short by the page cap
        self._started = False
        self._first_seen: datetime | None = None   # the moment of the first look (watches' own)
        self._last_shared: float | None = None     # clock.now() of the last shared listing
        self.listed: set[str | None] = set()       # the channels (To addresses) the shared listings cover

    # -- what a look asks Twilio --------------------------------------------------------------
    def _params(self, number: str | None = None, after: datetime | None = None,
                to: str | None = None) -> dict[str, Any]:
        params: dict[str, Any] = {"page_size": PAGE_SIZE}
        if to:
            params["to"] = to
        if number:
            params["from_"] = number
        if after is not None and after > _BEGINNING:
            params["date_sent_after"] = after
        return params

    def _first_page(self, client: Any, budget: PageBudget, **params: Any) -> Any:
        if not budget.take():
            return None
        self.requests += 1
        return client.messages.page(**self._params(**params))

    def _next_page(self, page: Any, budget: PageBudget) -> Any:
        if not page.next_page_url or not budget.take():
            return None
        self.requests += 1
        return page.next_page()

    def _inbound(self, message: Any) -> bool:
        if (message.direction or "") != "inbound":
            return False
        if self.settings.src_address:
            return True
        return bool(message.messaging_service_sid == self.settings.messaging_service_sid)

    def _replies(self, page: Any, seen_at: datetime) -> list[Reply]:
        return [Reply.from_message(m, seen_at) for m in page if self._inbound(m)]

    def add(self, watch: ReplyWatch, *, fresh: bool = True) -> None:
        """Register ``watch``: served from the cache when it covers the watch's moment, else a look of
        its own (``fresh`` asks for one in any case)."""
        watch.channels = {number: listening_address(self.settings, number) for number in watch.numbers}
        with self.lock:
            covered = self.floor is not None and watch.since is not None and watch.floor >= self.floor \
                and set(watch.channels.values()) <= self.listed
            if covered and not fresh:
                super().add(watch, fresh=False)
                watch.offer(self.known.values())
                watch.looked()
                return
            if watch.since is None or (self._started and not covered):
                watch.backfill = {number: None for number in watch.numbers}
        super().add(watch, fresh=True)

    # -- one look -------------------------------------------------------------------------------
    def look(self, client: Any, watches: list[ReplyWatch], fresh: list[ReplyWatch],
             budget: PageBudget) -> None:
        seen_at = self.clock.wall()
        # the shared listing runs once per interval; a look made early for a watch joining with a
        # look of its own (its number's) does not repeat it
        due = self._last_shared is None or self.clock.now() - self._last_shared >= self.interval * 0.9
        waiting_on = self._started or any(w not in fresh for w in watches)   # beyond their own look
        if any(not w.backfill for w in fresh) or (due and waiting_on):
            self._last_shared = self.clock.now()
            new = self._shared_look(client, budget, seen_at, watches)
        else:
            new = []
            self._first_seen = self._first_seen or seen_at
        with self.lock:
            for reply in new:
                self.known[reply.sid] = reply
            current = list(self.watches)
        for watch in current:
            self.hand_out(watch, lambda w: w.offer(new))
        for watch in fresh:
            if not watch.backfill:   # covered by the cache
                self.hand_out(watch, lambda w: w.offer(self.known.values()))
        for watch in current:
            if watch.backfill:
                self._backfill(client, watch, seen_at)
        with self.lock:
            covered = [w for w in current if not w.backfill and w not in self.fresh]
        for watch in covered:   # a watch registered during this look is covered by the next one
            watch.looked()
        self._prune()
        if new:
            LOG.info("Twilio: %s new repl%s to %s", len(new), "y" if len(new) == 1 else "ies",
                     mask(self.settings.sender))

    def _shared_look(self, client: Any, budget: PageBudget, seen_at: datetime,
                     watches: list[ReplyWatch]) -> list[Reply]:
        """New inbound messages to the sender, newest first, down to what is already known."""
        if not self._started:
            # the shared listing starts at the oldest moment of the watches it serves, or (when every
            # watch had a look of its own) a little before the first look
            moments = [w.floor for w in watches if not w.backfill]
            first = self._first_seen or seen_at
            self.floor = min(moments) if moments else _second(
                first - timedelta(seconds=self.interval + FRONTIER_MARGIN))
            self._started = True
        floor = self.floor or _BEGINNING
        channels = sorted({c for w in watches for c in w.channels.values()}, key=str)
        with self.lock:   # a channel no watch waits on any more is not listed (nor covered) until one does
            self.listed &= set(channels)
        new: list[Reply] = []
        # a new listing from the top for each channel, then the listings the cap cut short
        listings: list[tuple[str | None, Any]] = [(c, None) for c in channels] + self._backlog
        self._backlog = []
        for channel, listing in listings:
            if listing is not None and budget.left <= 0:
                self._backlog.append((channel, listing))   # the cap: go on at the next interval
                continue
            page = self._first_page(client, budget, after=floor, to=channel) if listing is None \
                else self._next_page(listing, budget)
            if listing is None and page is not None:
                with self.lock:
                    self.listed.add(channel)
            while page is not None:
                reached_known = False
                for reply in self._replies(page, seen_at):
                    if reply.sid in self.known or reply.date_sent < floor:
                        reached_known = True
                    elif reply.sid not in {r.sid for r in new}:
                        new.append(reply)
                if reached_known or not page.next_page_url:
                    break
                following = self._next_page(page, budget)
                if following is None:
                    self._backlog.append((channel, page))
                    break
                page = following
        return new

    def _backfill(self, client: Any, watch: ReplyWatch, seen_at: datetime) -> None:
        """The watch's own first look: per number, filtered by that number and its moment."""
        for number, listing in list(watch.backfill.items()):
            budget = self.listing_budget()
            page = self._first_page(client, budget, number=number, after=watch.floor,
                                    to=watch.channels.get(number)) if listing is None \
                else self._next_page(listing, budget)
            while page is not None:
                found = self._replies(page, seen_at)
                self.hand_out(watch, lambda w, f=found: w.offer(f))  # type: ignore[misc]
                if not page.next_page_url:
                    del watch.backfill[number]
                    break
                following = self._next_page(page, budget)
                if following is None:
                    watch.backfill[number] = page   # the cap: go on at the next interval
                    return
                page = following


    def _prune(self) -> None:
        """Keep the messages some watch may still need (from the oldest moment of those covered)."""
        with self.lock:
            moments = [w.floor for w in self.watches if not w.backfill]
            if not moments or self.floor is None:
                return
            floor = max(self.floor, min(moments))
            self.floor = floor
            self.known = {sid: r for sid, r in self.known.items() if r.date_sent >= floor}


def watch_replies(settings: Any, numbers: Sequence[str] | str, since: datetime | None, *,
                  fresh_look: bool = False, client_factory: ClientFactory = build_client,
                  clock: Clock = SYSTEM_CLOCK) -> ReplyWatch:
    """Register interest in replies from ``numbers`` to the sender of ``settings``; close the watch after.

    ``fresh_look`` asks for a look made for this watch even when the cache covers it (a call that
    looks once without waiting).
    """
    watch = ReplyWatch([numbers] if isinstance(numbers, str) else list(numbers), since, clock)
    register(ReplyPoller, settings, watch, fresh=fresh_look, client_factory=client_factory, clock=clock)
    return watch


# -- the wait loop the components call ------------------------------------------------------------
class Ending:
    """How a collect() call ended."""

    REPLIED = "replied"
    FAILED = "failed"
    TERMINATED = "terminated"
    TIMED_OUT = "timed_out"


@dataclass(frozen=True)
class CollectOutcome:
    """What one wait for replies found."""

    ending: str                        # one of Ending's values
    replies: tuple[Reply, ...]
    failure: Failure | None = None  # ending FAILED
    terminated: str | None = None   # ending TERMINATED: the reason SOAR gave


def collect(settings: Any, numbers: Sequence[str], since: datetime | None, deadline: float, *,
            is_terminated: Callable[[], str | None] = lambda: None, clock: Clock = SYSTEM_CLOCK,
            client_factory: ClientFactory = build_client,
            enough: Callable[[tuple[Reply, ...]], bool] = bool) -> CollectOutcome:
    """Wait until the replies from ``numbers`` (sent at or after ``since``) are ``enough`` (default: at
    least one), a look fails for good, ``is_terminated()`` returns a reason, or ``clock.now()`` reaches
    ``deadline``.

    ``enough`` is asked each time more replies arrive (the components pass one that reads them, e.g.
    "an acknowledgement has come"); the ending is REPLIED when it said yes, else the replies found so
    far come with the other ending. A deadline already past makes one look (its own, not the cache's)
    and returns what it found. The first look is always waited for (up to the HTTP timeout and one
    interval), so a short wait still reads Twilio once. ``is_terminated`` is asked once per poll
    interval while waiting.
    """
    with watch_replies(settings, numbers, since, fresh_look=deadline <= clock.now(),
                       client_factory=client_factory, clock=clock) as watch:

        def satisfied() -> bool:
            found = tuple(watch.replies)
            if enough(found):
                return True
            watch.handled = len(found)   # not enough yet: wait for replies beyond these
            return False

        terminated = wait_on(watch, settings, deadline, is_terminated=is_terminated, clock=clock,
                             done=satisfied)
        replies, failure = tuple(watch.replies), watch.error
    if replies and enough(replies):
        return CollectOutcome(Ending.REPLIED, replies)
    if failure is not None:
        return CollectOutcome(Ending.FAILED, replies, failure=failure)
    if terminated is not None:
        return CollectOutcome(Ending.TERMINATED, replies, terminated=terminated)
    return CollectOutcome(Ending.TIMED_OUT, replies)
