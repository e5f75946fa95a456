"""Delivery statuses: one shared tracker per Twilio account and sender in a process.

Every call that wants to know how its messages ended registers a :class:`DeliveryWatch` (the message
SIDs it follows). All watches on the same account and sender share one :class:`DeliveryTracker` (a
:class:`~fn_twilio.lib.polling.SharedPoller`: its registry, thread, failure handling and page cap).

How a look stays cheap:

* **The shared listing.** One list request per look for every watch: the sender's messages
  (``From`` = the sender; every message of the account for a messaging service, which the list
  cannot filter on), newest first, with no ``DateSent`` filter, since a message still queued has no
  ``date_sent`` and such a filter would leave it out. The listing stops at the first of: every
  pending message seen; a page reaching below the oldest pending message (Twilio sorts by
  ``date_sent``, else ``date_created``, and neither is older than the message's creation); the last
  page; the page cap.
* **A fetch by SID** only for a pending message the listing did not show: one sent from another
  sender, one older than the page cap reaches, or one not on the account (its 404 makes it
  ``not_found``, which is settled and never asked again). A message never read is fetched in the
  look that first misses it (so a call's first look reads every message it asked for); one read
  before is fetched again at most :data:`MAX_FETCHES_PER_LOOK` per look, least recently asked first.
* **Settled messages cost nothing.** A final status (``delivered``, ``undelivered``, ``failed``,
  ``canceled``, ``read``) or ``not_found`` is kept and handed to any watch that asks for it; a look
  with nothing pending makes no request.

A look runs once per poll interval while a watch is registered, and early when a watch joins with
a message the tracker knows nothing of yet.

:func:`wait_for_statuses` is the wait loop the SOAR component calls. Another loop (the paging engine)
follows its messages with :func:`watch_deliveries`: ``watch.track(sids)`` adds messages as they are
sent, ``watch.statuses()`` gives what is known so far at any moment, ``watch.close()`` ends it.

**The sender's recent outbound log.** The same listing also keeps the sender's latest outbound texts
for whoever needs them (the storm limiter counts the texts each number got in its window from it):
an :class:`OutboundWatch` (:func:`watch_outbound`) asks for ``horizon`` seconds of them. While one is
registered, the listing of each interval reads back to that horizon (within the page cap) and hands
every such watch an :class:`OutboundView`; a watch that joins while the last view is less than one
interval old gets that view at once, without a request.
"""
from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Callable
from collections.abc import Iterable, Sequence

from fn_twilio.lib.clock import SYSTEM_CLOCK, Clock
from fn_twilio.lib.errors import Failure
from fn_twilio.lib.polling import ClientFactory, PageBudget, SharedPoller, Watch, register, wait_on
from fn_twilio.lib.records import DeliveryStatus, listed_at
from fn_twilio.lib.twilio_client import build_client

LOG = logging.getLogger(__name__)

KIND = "delivery tracker"
PAGE_SIZE = 100
MAX_FETCHES_PER_LOOK = 10    # fetches by SID one look may make; the rest waits for the next look
# Twilio's dates have whole seconds: the listing reaches this much below the oldest pending message
FLOOR_MARGIN = timedelta(seconds=1)
SID_PATTERN = re.compile(r"^(?:SM|MM)[0-9a-fA-F]{32}$")
SID_SEPARATORS = re.compile(r"[,;\s]+")

__all__ = ["KIND", "SidError", "parse_sids", "DeliveryWatch", "DeliveryTracker", "watch_deliveries",
           "TrackOutcome", "wait_for_statuses", "OutboundText", "OutboundView", "OutboundWatch",
           "watch_outbound"]


class SidError(ValueError):
    """Message SIDs that cannot be used; the message names the input."""


def parse_sids(raw: object, *, name: str, max_count: int) -> list[str]:
    """The distinct message SIDs in ``raw`` (separated by commas, semicolons or white space), in order.

    Raises :class:`SidError` naming ``name`` when there is none, one is not an ``SM``/``MM`` SID, or
    there are more than ``max_count``.
    """
    text = "" if raw is None else str(raw)
    entries = [e for e in SID_SEPARATORS.split(text.strip()) if e]
    if not entries:
        raise SidError(f"{name} is empty: give one or more message SIDs (SM... or MM...), "
                       "separated by commas")
    wrong = [e for e in entries if not SID_PATTERN.match(e)]
    if wrong:
        shown = ", ".join(repr(e[:40]) for e in wrong[:3]) + (" ..." if len(wrong) > 3 else "")
        raise SidError(f"{name} holds {len(wrong)} value{'s' if len(wrong) != 1 else ''} that "
                       f"{'are not message SIDs' if len(wrong) != 1 else 'is not a message SID'} "
                       f"({shown}): a message SID is SM or MM followed by 32 hexadecimal characters; "
                       "nothing was read")
    sids = list(dict.fromkeys(entries))
    if len(sids) > max_count:
        raise SidError(f"{name} has {len(sids)} different message SIDs, more than max_recipients "
                       f"({max_count}); nothing was read")
    return sids


class DeliveryWatch(Watch):
    """One caller's interest in the statuses of some messages (more may be added with :meth:`track`)."""

    def __init__(self, sids: Sequence[str], clock: Clock = SYSTEM_CLOCK) -> None:
        super().__init__(clock)
        self._sids: list[str] = list(dict.fromkeys(sids))
        self._statuses: dict[str, DeliveryStatus] = {}

    # -- read by the waiting call ------------------------------------------------------------
    @property
    def sids(self) -> list[str]:
        with self.changed:
            return list(self._sids)

    def statuses(self) -> dict[str, DeliveryStatus]:
        """The latest status read of each followed message, so far (a SID not read yet is absent)."""
        with self.changed:
            return {sid: self._statuses[sid] for sid in self._sids if sid in self._statuses}

    def pending(self) -> list[str]:
        """The followed SIDs that are not settled yet (no final status, not ``not_found``)."""
        with self.changed:
            return [s for s in self._sids if s not in self._statuses or not self._statuses[s].settled]

    def has_news(self) -> bool:
        return not self.pending()

    def track(self, sids: Iterable[str]) -> None:
        """Follow more messages; the tracker looks for them soon (at once when it knows nothing of them)."""
        with self.changed:
            added = [s for s in sids if s not in self._sids]
            self._sids.extend(dict.fromkeys(added))
        poller = self._poller
        if added and poller is not None:
            poller.poke()

    # -- written by the tracker --------------------------------------------------------------
    def offer(self, statuses: Iterable[DeliveryStatus]) -> None:
        with self.changed:
            for status in statuses:
                if status.sid in self._sids:
                    self._statuses[status.sid] = status
            self.changed.notify_all()


@dataclass(frozen=True)
class OutboundText:
    """One outbound message of the sender, as a listing read it."""

    sid: str
    to: str
    body: str
    status: str
    at: datetime        # the date Twilio lists it by: date_sent, else date_created (the listing's when none)


@dataclass(frozen=True)
class OutboundView:
    """The sender's outbound messages one listing read, newest first, back to its horizon.

    ``taken`` is ``clock.now()`` and ``wall`` ``clock.wall()`` when the listing began; ``complete`` is
    False when the page cap stopped it before the horizon (older texts of the window are then missing).
    """

    texts: tuple[OutboundText, ...]
    taken: float
    wall: datetime
    complete: bool = True


class OutboundWatch(DeliveryWatch):
    """Asks the tracker to keep ``horizon`` seconds of the sender's outbound log; ``on_view`` receives
    each view the tracker reads (on the tracker's thread: keep it short, and take no lock there that
    is held while registering or closing a watch).

    ``linger(until)`` lets the tracker close the watch itself once ``clock.now()`` passes ``until``
    (so a caller that stopped sending keeps the view fresh a little longer without a thread of its
    own); ``keep()`` takes that back, and is False when the tracker already closed it."""

    def __init__(self, horizon: float, on_view: Callable[[OutboundView], None],
                 clock: Clock = SYSTEM_CLOCK) -> None:
        super().__init__((), clock)
        self.horizon = float(horizon)
        self._on_view = on_view
        self._until: float | None = None
        self._expired = False

    def has_news(self) -> bool:
        return False

    def linger(self, until: float) -> None:
        with self.changed:
            self._until = until

    def keep(self) -> bool:
        with self.changed:
            self._until = None
            return not self._expired

    def expire(self, now: float) -> bool:
        """True (once) when the watch has lingered long enough: the tracker then closes it."""
        with self.changed:
            if self._expired or self._until is None or now < self._until:
                return False
            self._expired = True
            return True

    def offer_view(self, view: OutboundView) -> None:
        self._on_view(view)
        with self.changed:
            self.changed.notify_all()


class DeliveryTracker(SharedPoller[DeliveryWatch]):
    """Reads the statuses of the messages every :class:`DeliveryWatch` of one sender follows."""

    kind = KIND

    def __init__(self, settings: Any, key: tuple[Any, ...], **kwargs: Any) -> None:
        super().__init__(settings, key, **kwargs)
        self.known: dict[str, DeliveryStatus] = {}
        self.fetches = 0                            # fetches by SID made (diagnostics and benchmarks)
        self._asked: dict[str, float] = {}          # sid -> clock.now() of its last fetch
        self._last_listing: float | None = None     # clock.now() of the last shared listing
        self.view: OutboundView | None = None       # the last outbound view read

    def add(self, watch: DeliveryWatch, *, fresh: bool = True) -> None:
        """Register ``watch``, handing it what is known at once; a look for it when it follows a
        message the tracker knows nothing of (``fresh`` asks for one in any case). An
        :class:`OutboundWatch` gets the last view at once when it is less than one interval old, and a
        look when it is not (whatever ``fresh`` says)."""
        if isinstance(watch, OutboundWatch):
            with self.lock:
                view = self.view
                current = view is not None and self.clock.now() - view.taken < self.interval
                super().add(watch, fresh=not current)
            if view is not None and current:
                self.hand_out(watch, _view_giver(view))
                watch.looked()
            return
        with self.lock:
            known = [self.known[s] for s in watch.sids if s in self.known]
            covered = len(known) == len(watch.sids)
            watch.offer(known)
            super().add(watch, fresh=fresh or not covered)
        if covered and not fresh:
            watch.looked()

    # -- one look -------------------------------------------------------------------------------
    def look(self, client: Any, watches: list[DeliveryWatch], fresh: list[DeliveryWatch],
             budget: PageBudget) -> None:
        expired = [w for w in watches if isinstance(w, OutboundWatch) and w.expire(self.clock.now())]
        for lingered in expired:
            lingered.close()
        watches = [w for w in watches if w not in expired]
        fresh = [w for w in fresh if w not in expired]
        with self.lock:
            wanted = list(dict.fromkeys(s for w in watches for s in w.sids))
            pending = [s for s in wanted if s not in self.known or not self.known[s].settled]
        unknown = [s for s in pending if s not in self.known]
        due = self._last_listing is None or self.clock.now() - self._last_listing >= self.interval * 0.9
        horizon = max((w.horizon for w in watches if isinstance(w, OutboundWatch)), default=0.0)
        wants_view = horizon > 0 and (due or any(isinstance(w, OutboundWatch) for w in fresh))
        found: dict[str, DeliveryStatus] = {}
        view: OutboundView | None = None
        failure: Exception | None = None
        try:
            if (pending and (due or unknown)) or wants_view:
                self._last_listing = self.clock.now()
                found, view = self._listing(client, budget, pending, horizon)
            if pending and not found.keys() >= set(pending) and (due or unknown):
                self._fetch(client, [s for s in pending if s not in found], found)
        except Exception as exc:  # hand out what was read, then let the look count as failed
            failure = exc
        with self.lock:
            self.known.update(found)
            self.known = {s: v for s, v in self.known.items() if s in wanted}
            # no SID is kept past the watches that follow it
            self._asked = {s: t for s, t in self._asked.items() if s in wanted}
            current = list(self.watches)
            if view is not None:
                self.view = view
        for watch in current:
            self.hand_out(watch, lambda w: w.offer(self.known.values()))
            if view is not None and isinstance(watch, OutboundWatch):
                self.hand_out(watch, _view_giver(view))
        if failure is not None:
            raise failure
        with self.lock:
            covered = [w for w in current if w not in self.fresh]
        for watch in covered:   # a watch registered during this look is covered by the next one
            watch.looked()
        ended = sum(1 for s in found.values() if s.settled)
        if ended:
            LOG.info("Twilio: %s message%s reached a final status", ended, "" if ended == 1 else "s")

    def _listing(self, client: Any, budget: PageBudget, pending: list[str],
                 horizon: float = 0.0) -> tuple[dict[str, DeliveryStatus], OutboundView | None]:
        """The pending messages found in the sender's list, newest first, as far as they can be; with a
        ``horizon`` (seconds), also the view of the sender's outbound texts back to it."""
        wanted = set(pending)
        floors = [self.known[s].date_created for s in pending if s in self.known]
        floor = (min(d for d in floors if d is not None) - FLOOR_MARGIN
                 if floors and len(floors) == len(pending) and all(d is not None for d in floors) else None)
        taken, wall = self.clock.now(), self.clock.wall()
        view_floor = wall - timedelta(seconds=horizon) - FLOOR_MARGIN if horizon > 0 else None
        params: dict[str, Any] = {"page_size": PAGE_SIZE}
        if self.settings.src_address:
            params["from_"] = self.settings.src_address
        found: dict[str, DeliveryStatus] = {}
        texts: list[OutboundText] = []
        page = None
        reached = last = False
        while budget.take():
            self.requests += 1
            page = client.messages.page(**params) if page is None else page.next_page()
            oldest: datetime | None = None
            for message in page:
                if message.sid in wanted:
                    found[message.sid] = DeliveryStatus.from_message(message)
                listed = listed_at(message)
                if view_floor is not None and (listed is None or listed >= view_floor) \
                        and self._from_sender(message):
                    texts.append(OutboundText(message.sid, message.to or "", message.body or "",
                                              message.status or "", listed or wall))
                oldest = listed if listed is not None else oldest
            below = floor is not None and oldest is not None and oldest < floor
            reached = view_floor is None or (oldest is not None and oldest < view_floor)
            last = not page.next_page_url
            if ((len(found) == len(wanted) or below) and reached) or last:
                break
        view = OutboundView(tuple(texts), taken, wall, reached or last) if view_floor is not None else None
        return found, view

    def _from_sender(self, message: Any) -> bool:
        """An outbound message of this sender (the number, else the Messaging Service)."""
        if not str(getattr(message, "direction", "") or "").startswith("outbound"):
            return False
        if self.settings.src_address:
            return bool(getattr(message, "from_", None) == self.settings.src_address)
        return bool(getattr(message, "messaging_service_sid", None) == self.settings.messaging_service_sid)

    def _fetch(self, client: Any, sids: list[str], found: dict[str, DeliveryStatus]) -> None:
        """Fetch by SID what the listing did not show into ``found`` (what was read before a failure
        stays there): every message never read yet, so that each call's first look reads all its
        messages, then those read before, least recently asked first, up to the cap."""
        from twilio.base.exceptions import TwilioRestException

        never = [s for s in sids if s not in self.known]
        again = sorted((s for s in sids if s in self.known), key=lambda s: self._asked.get(s, float("-inf")))
        chosen = never + again[:MAX_FETCHES_PER_LOOK]
        for sid in chosen:
            self._asked[sid] = self.clock.now()
            self.fetches += 1
            try:
                found[sid] = DeliveryStatus.from_message(client.messages(sid).fetch())
            except TwilioRestException as exc:
                if exc.status != 404:
                    raise
                found[sid] = DeliveryStatus.not_found(sid, exc.code if isinstance(exc.code, int) else 20404)


def watch_deliveries(settings: Any, sids: Sequence[str], *, client_factory: ClientFactory = build_client,
                     clock: Clock = SYSTEM_CLOCK) -> DeliveryWatch:
    """Follow the statuses of ``sids`` (messages of the sender of ``settings``); close the watch after.

    The watch holds what is known at once and gets each look's news; ``watch.track(more)`` follows more
    messages, ``watch.statuses()`` reads the statuses so far, ``watch.wait(timeout)`` waits until all
    are settled (True) or a look failed for good (``watch.error``).
    """
    watch = DeliveryWatch(sids, clock)
    register(DeliveryTracker, settings, watch, fresh=True, client_factory=client_factory, clock=clock)
    return watch


def _view_giver(view: OutboundView) -> Callable[[DeliveryWatch], None]:
    """What hands ``view`` to an outbound watch (other watches take no view)."""
    def give(watch: DeliveryWatch) -> None:
        if isinstance(watch, OutboundWatch):
            watch.offer_view(view)
    return give


def watch_outbound(settings: Any, horizon: float, on_view: Callable[[OutboundView], None], *,
                   client_factory: ClientFactory = build_client,
                   clock: Clock = SYSTEM_CLOCK) -> OutboundWatch:
    """Keep ``horizon`` seconds of the sender's outbound log (the delivery tracker's listing, once per
    interval); ``on_view`` receives each view. Close the watch when done."""
    watch = OutboundWatch(horizon, on_view, clock)
    register(DeliveryTracker, settings, watch, fresh=True, client_factory=client_factory, clock=clock)
    return watch


# -- the wait loop the component calls ------------------------------------------------------------
@dataclass(frozen=True)
class TrackOutcome:
    """What one wait for delivery statuses found."""

    statuses: tuple[DeliveryStatus, ...]   # one per SID read, in the order asked
    unread: tuple[str, ...] = ()           # SIDs whose status could not be read at all
    failure: Failure | None = None         # a look failed for good
    terminated: str | None = None          # the workflow was terminated: the reason SOAR gave

    @property
    def all_final(self) -> bool:
        return not self.unread and all(s.final for s in self.statuses)

    @property
    def success(self) -> bool:
        """Every SID could be read (a final status or not, but not ``not_found``)."""
        found = all(s.status != "not_found" for s in self.statuses)
        return not self.unread and self.failure is None and found


def wait_for_statuses(settings: Any, sids: Sequence[str], deadline: float, *,
                      is_terminated: Callable[[], str | None] = lambda: None, clock: Clock = SYSTEM_CLOCK,
                      client_factory: ClientFactory = build_client) -> TrackOutcome:
    """Wait until every message of ``sids`` is settled, a look fails for good, ``is_terminated()``
    returns a reason, or ``clock.now()`` reaches ``deadline``; return the latest statuses.

    A deadline already past looks once. The first look is always waited for (up to the HTTP timeout
    and one interval), so a short wait still reads Twilio once. ``is_terminated`` is asked once per
    poll interval while waiting.
    """
    with watch_deliveries(settings, sids, client_factory=client_factory, clock=clock) as watch:
        terminated = wait_on(watch, settings, deadline, is_terminated=is_terminated, clock=clock)
        statuses, failure = watch.statuses(), watch.error
    return TrackOutcome(tuple(statuses[s] for s in sids if s in statuses),
                        tuple(s for s in sids if s not in statuses), failure, terminated)
