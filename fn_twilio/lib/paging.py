"""Paging until someone acknowledges (contract §9.4, §13): the escalation engine.

:class:`Page` pages tier 1 (one :class:`~fn_twilio.lib.sender.SendJob`, the text ending with the
acknowledgement request), then watches the replies of everyone paged so far with one
:class:`~fn_twilio.lib.replies.ReplyWatch` (the shared reply poller: one list request per interval
however many people are paged). Each new reply is read by :class:`~fn_twilio.lib.attribution.Attribution`
(intent, and the code it answers: the one it names, else that of the latest text the sender sent to that
number before the reply, read from Twilio's log when the reply is read). Only replies whose code is the
page's count; a reply whose code cannot be read yet counts for nothing and is read again next interval.

* An acknowledgement of the page's code from anyone paged so far ends the page (success), also from
  someone whose text "may have been sent" (a create that failed in a way that may still have made it).
* A decline of the page's code, or an opt-out (whichever text it answers: Twilio then blocks the sender),
  takes that person out; so does a send that failed (opted out, invalid, refused, may have been sent)
  and, when a ``delivery`` source is given, a text it reports undelivered. When everyone paged in the
  current tier is out, the next tier is paged at once.
* Otherwise the next tier is paged when the tier's window (``escalate_after``) passes: the wait is
  cut to that moment, so the tier goes out within one poll interval of its due time.
* After the last tier's window: "Nobody acknowledged"; ``is_terminated()`` (asked at most once per poll
  interval) giving a reason: "Workflow was terminated"; the whole page lasts at most ``max_wait``. A page
  closed (``cancel()``, resilient-circuits shutting down) pages no further tier, whatever the moment.
* ``resume`` (a redelivered call): the page reads from Twilio's outbound log which people its first run
  texted, texts nobody twice, keeps each tier's window from when it was first paged and counts every
  reply since the first run began (an acknowledgement sent while no instance ran ends it at once). When
  the log cannot be read, nobody is texted again and the reason says so.

Everything goes through ``clock`` and ``client_factory`` (tests drive it with fakes in milliseconds).
Nothing is kept beyond the call: the code lives in the texts, pages and replies in Twilio's log.
"""
from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from fn_twilio.lib.attribution import Attribution, sent_text
from fn_twilio.lib.clock import SYSTEM_CLOCK, Clock
from fn_twilio.lib.dates import format_date, to_epoch_ms
from fn_twilio.lib.delivery import DeliveryWatch, watch_deliveries
from fn_twilio.lib.durations import format_duration
from fn_twilio.lib.intents import REFUSALS, Intent
from fn_twilio.lib.phone import Recipient, mask, parse_recipients
from fn_twilio.lib.polling import ClientFactory, EveryInterval
from fn_twilio.lib.reconcile import Delivery, settled_for_send
from fn_twilio.lib.records import Reply, SendOutcome
from fn_twilio.lib.replies import watch_replies
from fn_twilio.lib.sender import SendJob
from fn_twilio.lib.termination import terminated
from fn_twilio.lib.twilio_client import ThreadLocalClients, build_client

LOG = logging.getLogger(__name__)

__all__ = ["Event", "TimelineEvent", "PageOutcome", "Page", "DeliveryCheck", "parse_tiers", "TierError"]

_TIER_SEPARATOR = ";"
CANCELLED = "Page stopped: the call was closed (resilient-circuits shutting down) before it ended"


class Event:
    """The timeline's event names (contract §9.4)."""

    PAGED = "paged"
    SEND_FAILED = "send_failed"
    REPLY = "reply"
    DECLINED = "declined"
    ESCALATED = "escalated"
    ACKNOWLEDGED = "acknowledged"
    TIMEOUT = "timeout"
    TERMINATED = "terminated"


class TierError(ValueError):
    """``twilio_page_tiers`` cannot be paged; the message names the input."""


def parse_tiers(text: str, default_region: str | None = None) -> list[list[Recipient]]:
    """Tiers separated by ``;`` or new lines, numbers in a tier by commas. A number already in an
    earlier tier is paged there only. TierError for no tier, or a tier without a valid number."""
    parts = (part.strip() for part in text.replace("\n", _TIER_SEPARATOR).split(_TIER_SEPARATOR))
    raw_tiers = [t for t in parts if t.strip(", \t")]
    if not raw_tiers:
        raise TierError("twilio_page_tiers is empty: give the people to page, tiers separated by ; or new "
                        "lines, numbers in a tier by commas")
    tiers: list[list[Recipient]] = []
    seen: set[str] = set()
    for index, raw in enumerate(raw_tiers, start=1):
        recipients = parse_recipients(raw, default_region)
        if not any(r.valid for r in recipients):
            reasons = "; ".join(r.reason or "invalid" for r in recipients)
            raise TierError(f"twilio_page_tiers: tier {index} has no valid phone number ({reasons}); nothing "
                            "was sent")
        tier = [r for r in recipients if not (r.valid and r.e164 in seen)]
        seen.update(r.e164 for r in recipients if r.valid and r.e164)
        tiers.append(tier)
    return tiers


@dataclass(frozen=True)
class TimelineEvent:
    at: datetime
    event: str
    tier: int | None
    phone_number: str | None
    detail: str | None = None

    def as_result(self) -> dict[str, Any]:
        return {"at": format_date(self.at), "at_ts": to_epoch_ms(self.at), "event": self.event,
                "tier": self.tier, "phone_number": self.phone_number, "detail": self.detail}


@dataclass(frozen=True)
class PagedEntry:
    """One send of the page: the §3 entry, with its tier and when it was paged."""

    outcome: SendOutcome
    tier: int
    paged_at: datetime

    def as_result(self) -> dict[str, Any]:
        return {**self.outcome.as_result(), "tier": self.tier, "paged_at_ts": to_epoch_ms(self.paged_at)}


@dataclass
class PageOutcome:
    """What a page did (the function's ResultPayload content, via :meth:`as_result`)."""

    reply_code: str
    success: bool = False
    reason: str | None = None
    acknowledged_by: str | None = None
    acknowledged_at: datetime | None = None
    tier: int | None = None
    pages: list[PagedEntry] = field(default_factory=list)
    replies: list[Reply] = field(default_factory=list)
    timeline: list[TimelineEvent] = field(default_factory=list)

    def as_result(self) -> dict[str, Any]:
        at = self.acknowledged_at
        return {
            "acknowledged": self.success,
            "acknowledged_by": self.acknowledged_by,
            "acknowledged_at": format_date(at) if at else None,
            "acknowledged_at_ts": to_epoch_ms(at) if at else None,
            "tier": self.tier,
            "reply_code": self.reply_code,
            "pages": [p.as_result() for p in self.pages],
            "replies": [r.as_result() for r in self.replies],
            "timeline": [e.as_result() for e in self.timeline],
        }


class Page:
    """One page (see the module docstring). ``run()`` returns the :class:`PageOutcome`.

    ``progress(text)`` receives each status message; ``delivery(entries)`` (optional, e.g. a
    :class:`DeliveryCheck`) returns ``(number, why)`` for the paged entries whose text a delivery
    tracker reports undelivered or failed, asked once per poll interval. ``resume`` (a redelivered
    call's :class:`~fn_twilio.lib.reconcile.Delivery`) makes the page resume what its first run did,
    read from Twilio's outbound log (contract §13.3).
    """

    RESUME_ATTEMPTS = 3   # reads of the outbound log when resuming, one poll interval apart

    def __init__(self, settings: Any, tiers: Sequence[Sequence[Recipient]], body: str, code: str, *,
                 escalate_after: float, max_wait: float,
                 is_terminated: Callable[[], str | None] = lambda: None,
                 progress: Callable[[str], None] = lambda text: None,
                 delivery: Callable[[Sequence[PagedEntry]], Iterable[tuple[str, str]]] | None = None,
                 resume: Delivery | None = None, describe_stop: Callable[[str], str] = terminated,
                 clock: Clock = SYSTEM_CLOCK, client_factory: ClientFactory = build_client) -> None:
        self.settings = settings
        self.tiers = [list(t) for t in tiers]
        self.body = body
        self.escalate_after = escalate_after
        self.max_wait = max_wait
        self.is_terminated = EveryInterval(is_terminated, settings.poll_interval, clock)
        self.describe_stop = describe_stop   # the call's reason for what is_terminated() gave
        self.progress = progress
        self.delivery = delivery
        self.resume = resume if resume is not None and resume.redelivered else None
        self.clock = clock
        self.client_factory = client_factory
        self.outcome = PageOutcome(reply_code=code)
        self.attribution = Attribution(settings, client_factory=client_factory)
        self._out: set[str] = set()         # paged numbers that no longer hold escalation back
        self._listening: list[str] = []     # numbers whose acknowledgement counts (paged, or may have been)
        self._tier_numbers: list[str] = []  # the numbers of the current tier
        self._started = 0.0
        self._seen: set[str] = set()        # replies handled (kept or left out)
        self._unread: dict[str, Reply] = {}   # replies whose code could not be read yet
        self._settled: dict[str, SendOutcome] = {}   # resuming: what the first run already did, by number
        self._cancelled = threading.Event()

    def cancel(self) -> None:
        """End the page at the next step (the call was closed: resilient-circuits shutting down); no
        further tier is paged, whatever the moment."""
        self._cancelled.set()

    # -- the loop --------------------------------------------------------------------------------
    def run(self) -> PageOutcome:
        try:
            return self._run()
        finally:
            self.attribution.close()

    def _run(self) -> PageOutcome:
        self._started = self.clock.now()
        numbers = [r.e164 for tier in self.tiers for r in tier if r.valid and r.e164]
        if self.resume is not None:
            failed = self._read_first_run(numbers)
            if failed is not None:
                return self._fail(failed)
            since = self.resume.original or self.clock.wall()
            end = self._at(since) + self.max_wait
        else:
            since = self.clock.wall()
            end = self._started + self.max_wait
        with watch_replies(self.settings, numbers, since, client_factory=self.client_factory,
                           clock=self.clock) as watch:
            watch.wait_for_look(self.settings.timeout + self.settings.poll_interval)
            if self.resume is None:
                # replies already there when the page starts answer something else (Twilio's dates have
                # whole seconds, so a reply of the same second as the page would otherwise count for it)
                earlier = watch.replies
                self._seen.update(reply.sid for reply in earlier)
                watch.handled = len(earlier)
            for index in range(len(self.tiers)):
                tier = index + 1
                if self._cancelled.is_set():
                    return self._stopped(tier, CANCELLED)
                paged_at = self._page_tier(tier)
                due = min(self._at(paged_at) + self.escalate_after, end)
                self.progress(f"Tier {tier}: paged {len(self._tier_numbers)} "
                              f"{'person' if len(self._tier_numbers) == 1 else 'people'}, waiting up to "
                              f"{format_duration(max(0.0, due - self.clock.now()))} for an acknowledgement")
                ending = self._wait(watch, tier, due)
                if ending == "done":
                    return self._finish()
                last = index == len(self.tiers) - 1
                if last or self.clock.now() >= end:
                    break
                if self._cancelled.is_set():   # closed as the window ended: no further tier
                    return self._stopped(tier, CANCELLED)
                why = "everyone paged in this tier declined or cannot be reached" if ending == "tier_out" \
                    else f"no acknowledgement within {format_duration(self.escalate_after)}"
                self._event(Event.ESCALATED, tier + 1, None, why)
                self.progress(f"Escalating to tier {tier + 1}: {why}")
            return self._nobody()

    def _at(self, moment: datetime) -> float:
        """A wall-clock moment on this clock's monotonic scale."""
        return self.clock.now() - (self.clock.wall() - moment).total_seconds()

    def _read_first_run(self, numbers: Sequence[str]) -> str | None:
        """Resuming: which people the first run texted, from Twilio's outbound log (None), or the reason
        the log could not be read, after a few tries."""
        assert self.resume is not None
        body = self.body
        why = "no attempt made"
        for attempt in range(1, self.RESUME_ATTEMPTS + 1):
            client = self.client_factory(self.settings)
            try:
                settled = settled_for_send(self.settings, numbers, body, self.resume, client=client)
            finally:
                _close(client)
            unverified = [o for o in settled.values() if not o.already_sent]
            if not unverified:
                self._settled = settled
                texted = len(settled)
                self.progress(f"Redelivered page: resuming; {texted} "
                              f"{'person was' if texted == 1 else 'people were'} already paged by the "
                              "interrupted run and are not texted again")
                return None
            why = unverified[0].error_message or "Twilio's outbound log could not be read"
            interval = self.settings.poll_interval
            if attempt < self.RESUME_ATTEMPTS and self.clock.wait(self._cancelled, interval):
                break
        return (f"Could not resume the page after a redelivery, so nobody was texted again (no one may get "
                f"the page twice): {why}")

    def _page_tier(self, tier: int) -> datetime:
        """Text the tier's people (those the first run did not text already); the moment the tier was
        first paged."""
        recipients = self.tiers[tier - 1]
        todo = [r for r in recipients if not (r.valid and r.e164 in self._settled)]
        outcomes: dict[int, SendOutcome] = {}
        if any(r.valid for r in todo):
            clients = ThreadLocalClients(self.settings, factory=self.client_factory)
            with SendJob(self.settings, todo, self.body, clock=self.clock, client_source=clients) as job:
                job.wait(None)
                sent = job.outcomes()
            clients.close()
            outcomes = {id(r): o for r, o in zip(todo, sent)}
        elif todo:
            outcomes = {id(r): SendOutcome.invalid(r.raw, r.reason or "invalid") for r in todo}
        now = self.clock.wall()
        self._tier_numbers = []
        moments: list[datetime] = []
        for recipient in recipients:
            earlier = self._settled.get(recipient.e164 or "") if recipient.valid else None
            outcome = earlier if earlier is not None else outcomes[id(recipient)]
            paged_at = (outcome.date_created or now) if earlier is not None else now
            self.outcome.pages.append(PagedEntry(outcome, tier, paged_at))
            number = outcome.phone_number
            self._tier_numbers.append(number)
            if outcome.success:
                moments.append(paged_at)
                self._listening.append(number)
                detail = outcome.sid if earlier is None else f"{outcome.sid} (texted by the interrupted run)"
                self._event(Event.PAGED, tier, number, detail, at=paged_at)
            else:
                self._out.add(number)
                if outcome.may_have_sent:   # escalate past them, but their acknowledgement counts
                    self._listening.append(number)
                self._event(Event.SEND_FAILED, tier, number, outcome.error_message)
        self.attribution.add(sent_text(o) for o in outcomes.values())
        return min(moments, default=now)

    def _wait(self, watch: Any, tier: int, due: float) -> str:
        """Wait for the tier: "done" (acknowledged, terminated, closed, or replies cannot be read),
        "tier_out" or "window". Replies are read before the window is judged, so an acknowledgement
        already there (a resumed page) ends the page before another tier is paged."""
        while True:
            if self._cancelled.is_set():
                return self._stop(tier, CANCELLED)
            found = watch.replies
            watch.handled = len(found)
            if self._read([r for r in found if r.sid not in self._seen], tier):
                return "done"
            if watch.error is not None:   # a lasting failure: the page cannot see acknowledgements
                return self._stop(tier, f"Could not read replies from Twilio: {watch.error.message}")
            self._consult_delivery(tier)
            if self._tier_is_out():
                return "tier_out"
            remaining = due - self.clock.now()
            if remaining <= 0:
                return "window"
            reason = self.is_terminated()
            if reason is not None:
                return self._stop(tier, self.describe_stop(reason), detail=reason)
            waiting = min(self.settings.poll_interval, remaining)
            if self._unread:   # replies whose code is not known yet are read again at the next interval
                self.clock.wait(self._cancelled, waiting)
            else:
                watch.wait(waiting)

    def _stop(self, tier: int, reason: str, detail: str | None = None) -> str:
        self._event(Event.TERMINATED, tier, None, detail or reason)
        self.outcome.reason = reason
        self.progress(reason)
        return "done"

    def _stopped(self, tier: int, reason: str) -> PageOutcome:
        self._stop(tier, reason)
        return self._finish()

    def _fail(self, reason: str) -> PageOutcome:
        self.outcome.reason = reason
        self.progress(reason)
        return self.outcome

    def _read(self, new: Sequence[Reply], tier: int) -> bool:
        """Handle new replies (and those whose code was not known yet); True when one acknowledges."""
        batch = list(self._unread.values()) + [r for r in new if r.sid not in self._unread]
        for reply in self.attribution.read_all(batch):
            if reply.code_pending:   # the outbound log could not be read: never guess, read it again
                self._unread[reply.sid] = reply
                continue
            self._unread.pop(reply.sid, None)
            self._seen.add(reply.sid)
            if reply.from_ not in self._listening:
                continue   # from someone not paged (yet)
            if reply.intent == Intent.OPT_OUT.value:   # Twilio blocks this sender to them for every page
                self._keep(reply, tier)
                self._take_out(reply, tier)
                continue
            if reply.reply_code != self.outcome.reply_code:
                continue   # another page's reply, or an answer to a text that asked for nothing
            self._keep(reply, tier)
            if reply.intent == Intent.ACKNOWLEDGE.value:
                return self._acknowledged(reply)
            if reply.intent in REFUSALS:
                self._take_out(reply, tier)
        return False

    def _keep(self, reply: Reply, tier: int) -> None:
        self.outcome.replies.append(reply)
        self._event(Event.REPLY, tier, reply.from_, reply.body, at=reply.date_sent)

    def _take_out(self, reply: Reply, tier: int) -> None:
        self._out.add(reply.from_)
        self._event(Event.DECLINED, tier, reply.from_, reply.intent, at=reply.date_sent)

    def _acknowledged(self, reply: Reply) -> bool:
        tier = next(p.tier for p in self.outcome.pages if p.outcome.phone_number == reply.from_)
        out = self.outcome
        out.success, out.acknowledged_by, out.acknowledged_at = True, reply.from_, reply.date_sent
        out.tier = tier
        self._event(Event.ACKNOWLEDGED, tier, reply.from_, reply.body, at=reply.date_sent)
        self.progress(f"Acknowledged by {mask(reply.from_)} after "
                      f"{format_duration(round(self.clock.now() - self._started))}")
        return True

    def _consult_delivery(self, tier: int) -> None:
        """The seam for a delivery tracker: numbers whose text was not delivered are out."""
        if self.delivery is None:
            return
        for number, why in self.delivery(self.outcome.pages):
            if number in self._listening and number not in self._out:
                self._out.add(number)
                self._event(Event.SEND_FAILED, tier, number, why)

    def _tier_is_out(self) -> bool:
        return all(n in self._out for n in self._tier_numbers)

    def _nobody(self) -> PageOutcome:
        people = len(self.outcome.pages)
        tiers = len({p.tier for p in self.outcome.pages})
        self._event(Event.TIMEOUT, tiers, None, None)
        self.outcome.reason = f"Nobody acknowledged: paged {people} people in {tiers} tiers"
        self.progress(self.outcome.reason)
        return self._finish()

    def _finish(self) -> PageOutcome:
        """The outcome, with the replies whose code could never be read said in it (never guessed)."""
        unread = sorted(self._unread.values(), key=lambda r: (r.date_sent, r.sid))
        unread = [r for r in unread if r.from_ in self._listening]
        if unread and not self.outcome.success:
            self.outcome.replies.extend(unread)
            count = len(unread)
            self.outcome.reason = (f"{self.outcome.reason}; {count} repl{'y' if count == 1 else 'ies'} could "
                                   "not be matched with a page (Twilio's outbound log could not be read), "
                                   "so reply_code is null and they acknowledged nothing")
        return self.outcome

    def _event(self, event: str, tier: int | None, number: str | None, detail: str | None, *,
               at: datetime | None = None) -> None:
        self.outcome.timeline.append(TimelineEvent(at or self.clock.wall(), event, tier, number, detail))


def _close(client: Any) -> None:
    try:
        client.http_client.close()
    except Exception:  # closing is best effort
        LOG.debug("closing a Twilio session failed", exc_info=True)


class DeliveryCheck:
    """The page's delivery source: follows the texts paged so far with the shared delivery tracker
    (:func:`fn_twilio.lib.delivery.watch_deliveries`, one list request per interval for every caller of
    the sender) and names the people whose text ended ``undelivered`` or ``failed``, with the error.

    Calling it only reads what the tracker already holds; close it when the page ends.
    """

    UNREACHED = ("undelivered", "failed")

    def __init__(self, settings: Any, *, clock: Clock = SYSTEM_CLOCK,
                 client_factory: ClientFactory = build_client) -> None:
        self.settings = settings
        self.clock = clock
        self.client_factory = client_factory
        self._watch: DeliveryWatch | None = None

    def __call__(self, entries: Sequence[PagedEntry]) -> list[tuple[str, str]]:
        sent = {e.outcome.sid: e.outcome.phone_number for e in entries if e.outcome.success and e.outcome.sid}
        if not sent:
            return []
        if self._watch is None:
            self._watch = watch_deliveries(self.settings, list(sent), client_factory=self.client_factory,
                                           clock=self.clock)
        else:
            self._watch.track(sent)
        return [(sent[sid], self.why(status.status, status.error_code, status.error_message))
                for sid, status in self._watch.statuses().items()
                if sid in sent and status.status in self.UNREACHED]

    @staticmethod
    def why(status: str, code: int | None, explanation: str | None) -> str:
        """The timeline's detail, e.g. ``the text was not delivered: undelivered (30003: ...)``."""
        error = f" ({code}: {explanation or 'no explanation given'})" if code is not None else ""
        return f"the text was not delivered: {status}{error}"

    def close(self) -> None:
        if self._watch is not None:
            self._watch.close()
            self._watch = None

    def __enter__(self) -> DeliveryCheck:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
