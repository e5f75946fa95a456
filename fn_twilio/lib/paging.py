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

Voice (contract §14): a tier's ``voice:`` entries are called while the others are texted, one Studio
execution each (:func:`fn_twilio.lib.voice.start_calls`, in the ``flow`` the caller prepared with
:func:`fn_twilio.lib.voice.prepare`), and followed with the shared call watcher (one list and at most one
read per call in progress per interval) in the same wait as the replies: the two watches share one
condition, so news of either wakes the page.

* Pressing 1 acknowledges the page (timeline ``acknowledged`` with ``channel`` ``voice``); pressing 2
  declines; a call not answered, busy, failed, answered by a machine, unreadable or stuck takes the person
  out (``call_failed`` with the reason in words); a call answered without 1 or 2 (``call_ended``) is no
  acknowledgement and takes nobody out. A call still ringing or talking when the window ends does not
  hold escalation back. A called person's SMS replies are read like anyone's: their acknowledgement of
  the page's code counts too.
* A call that may have been placed (a 5xx, a timeout) is never placed again; the person is escalated past
  but their SMS acknowledgement still counts. The call watcher failing for good (Studio refusing its
  listing) takes the people whose calls it followed out, and a key they press later still counts.
* When the page ends (acknowledged, nobody, terminated, closed), calls still ringing or in progress are
  ended. Resuming, the calls the first run placed are found in the flow's executions
  (:func:`fn_twilio.lib.voice.first_run_calls`) and followed, never placed again.

Storms (contract §15): with a ``limiter`` (:func:`fn_twilio.lib.storm.limiter_for`), a tier's texts go
through the per-person limit. A text to a person over it is held (timeline ``held``); the page goes on
reading replies and calls in its one wait (:meth:`Page._wait`: the held texts' SendJobs wake it through
the same condition) and records the person when their text, or the digest carrying it, is sent
(``bundled``). The tier's window starts when its first text or digest went out (the outcome's
``date_created``). A page that ends or is closed while a text is held drops it: that person is reported
not sent. Codes work per incident: a reply answers every code the text it answers asked for
(``Reply.answers``), so ``ACK 2102`` to a digest counts for 2102 only and a bare ``ack`` or ``ACK ALL``
for every page in it. Resuming, a text the first run sent in a digest is found too
(:func:`fn_twilio.lib.reconcile.settled_by_digest`). Calls are never held.

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

from fn_twilio.lib.attribution import Attribution, own_code, sent_text
from fn_twilio.lib.clock import SYSTEM_CLOCK, Clock
from fn_twilio.lib.dates import format_date, to_epoch_ms
from fn_twilio.lib.delivery import DeliveryWatch, watch_deliveries
from fn_twilio.lib.durations import format_duration
from fn_twilio.lib.errors import Failure, FailureKind, Retry
from fn_twilio.lib.intents import REFUSALS, Intent
from fn_twilio.lib.phone import SMS, VOICE, WHATSAPP, Recipient, mask, parse_recipients
from fn_twilio.lib.polling import ClientFactory, EveryInterval
from fn_twilio.lib.reconcile import Delivery, settled_by_digest, settled_for_send
from fn_twilio.lib.records import Reply, SendOutcome
from fn_twilio.lib.replies import ReplyWatch, watch_replies
from fn_twilio.lib.sender import SendJob
from fn_twilio.lib.storm import HELD_CANCELLED, DigestLine, Limiter, describe_held
from fn_twilio.lib.termination import terminated
from fn_twilio.lib.twilio_client import ThreadLocalClients, build_client, client_session
from fn_twilio.lib.voice import (CALL_TIME_LIMIT, CallReport, CallStart, CallWatch, FirstRunCalls, FlowRef,
                                 PlacedCall, call_parameters, end_calls, first_run_calls, start_calls,
                                 watch_calls)

LOG = logging.getLogger(__name__)

__all__ = ["Event", "TimelineEvent", "PagedEntry", "CallEntry", "PageOutcome", "Page", "DeliveryCheck",
           "parse_tiers", "TierError"]

_TIER_SEPARATOR = ";"
CANCELLED = "Page stopped: the call was closed (resilient-circuits shutting down) before it ended"
# a text still held for a digest (storm limit) when the page ended for another reason than a close
HELD_AT_END = Failure(FailureKind.UNREACHABLE, "not sent: the page ended while this SMS was held for a "
                                               "digest", Retry.NEVER)


class Event:
    """The timeline's event names (contract §9.4)."""

    PAGED = "paged"
    HELD = "held"                 # a text held for a digest by the storm limit; "paged" when it goes
    SEND_FAILED = "send_failed"
    REPLY = "reply"
    DECLINED = "declined"
    ESCALATED = "escalated"
    ACKNOWLEDGED = "acknowledged"
    TIMEOUT = "timeout"
    TERMINATED = "terminated"
    CALL_FAILED = "call_failed"   # a call that takes its person out (not answered, busy, failed, machine...)
    CALL_ENDED = "call_ended"     # a call answered that ended without 1 or 2: no acknowledgement


class TierError(ValueError):
    """``twilio_page_tiers`` cannot be paged; the message names the input."""


def parse_tiers(text: str, default_region: str | None = None) -> list[list[Recipient]]:
    """Tiers separated by ``;`` or new lines, numbers in a tier by commas; an entry written
    ``voice:<number>`` is a person to call. An entry already in an earlier tier (the same number on the
    same channel) is paged there only; the same number texted in one tier may be called in another.
    TierError for no tier, a tier without a valid entry, or a ``voice:`` entry that is not a number to
    call (nothing is paged then)."""
    parts = (part.strip() for part in text.replace("\n", _TIER_SEPARATOR).split(_TIER_SEPARATOR))
    raw_tiers = [t for t in parts if t.strip(", \t")]
    if not raw_tiers:
        raise TierError("twilio_page_tiers is empty: give the people to page, tiers separated by ; or new "
                        "lines, numbers in a tier by commas")
    tiers: list[list[Recipient]] = []
    seen: set[tuple[str, str]] = set()
    for index, raw in enumerate(raw_tiers, start=1):
        recipients = parse_recipients(raw, default_region, voice=True)
        bad_calls = [r for r in recipients if r.is_voice and not r.valid]
        if bad_calls:
            reasons = "; ".join(r.reason or "invalid" for r in bad_calls)
            raise TierError(f"twilio_page_tiers: tier {index} has a voice: entry that cannot be called "
                            f"({reasons}); nothing was called or texted")
        if not any(r.valid for r in recipients):
            reasons = "; ".join(r.reason or "invalid" for r in recipients)
            raise TierError(f"twilio_page_tiers: tier {index} has no valid phone number ({reasons}); nothing "
                            "was sent")
        tier = [r for r in recipients if not (r.valid and r.key in seen)]
        seen.update(r.key for r in recipients if r.valid)
        tiers.append(tier)
    return tiers


def _channel_of(address: str) -> str:
    return WHATSAPP if address.lower().startswith("whatsapp:") else SMS


@dataclass(frozen=True)
class TimelineEvent:
    """One event of the timeline. ``channel`` is set (``voice``) on the events of a call, and only
    there: the result then has a seventh key, ``channel``; the events of texts keep the contract's six."""

    at: datetime
    event: str
    tier: int | None
    phone_number: str | None
    detail: str | None = None
    channel: str | None = None

    def as_result(self) -> dict[str, Any]:
        result = {"at": format_date(self.at), "at_ts": to_epoch_ms(self.at), "event": self.event,
                  "tier": self.tier, "phone_number": self.phone_number, "detail": self.detail}
        if self.channel is not None:
            result["channel"] = self.channel
        return result


@dataclass(frozen=True)
class PagedEntry:
    """One send of the page: the §3 entry, with its tier and when it was paged."""

    outcome: SendOutcome
    tier: int
    paged_at: datetime

    @property
    def phone_number(self) -> str:
        return self.outcome.phone_number

    def as_result(self) -> dict[str, Any]:
        return {**self.outcome.as_result(), "tier": self.tier, "paged_at_ts": to_epoch_ms(self.paged_at)}


ENDED_BY_PAGE = "the page ended while the call was still going; the app ended the call"


@dataclass
class CallEntry:
    """One call of the page: the §3 entry's keys (``sid`` the Studio execution, ``status`` the call's),
    with ``channel`` ``voice``, its tier, when it was paged, and what the call came to so far
    (``outcome``, ``reason``, ``answered_by``, ``digits``, ``call_sid``)."""

    phone_number: str
    tier: int
    paged_at: datetime
    text: str
    start: CallStart | None = None       # how starting it went (None: the interrupted run placed it)
    placed: PlacedCall | None = None
    report: CallReport | None = None
    already_called: bool = False         # placed by the interrupted run of a redelivered page
    ended_by_page: bool = False
    told: bool = False                   # its outcome is in the timeline

    @property
    def key(self) -> tuple[str, str]:
        return VOICE, self.phone_number

    @property
    def may_have_called(self) -> bool:
        return self.start is not None and self.start.may_have_called

    def as_result(self) -> dict[str, Any]:
        report, failure = self.report, self.start.failure if self.start is not None else None
        placed = self.placed
        created = placed.started_at if placed is not None else None
        if placed is None:
            status = (failure.status if failure is not None and failure.status else "failed")
        else:
            status = report.status if report is not None else "ringing"
        reason = report.reason if report is not None else None
        if self.ended_by_page:
            reason = ENDED_BY_PAGE
        error_message = failure.message if failure is not None else (
            reason if report is not None and report.out else None)
        return {
            "channel": VOICE,
            "phone_number": self.phone_number,
            "success": placed is not None,
            "status": status,
            "sid": placed.execution_sid if placed is not None else None,
            # as in a text's entry, the same SID (the Msg Id column of the example scripts)
            "messaging_service_sid": placed.execution_sid if placed is not None else None,
            "date_created": format_date(created) if created else None,
            "date_created_ts": to_epoch_ms(created) if created else None,
            "direction": "outbound-api",
            "message_body": self.text,
            "num_segments": None,
            "error_code": failure.code if failure is not None else None,
            "error_message": error_message,
            "may_have_sent": self.may_have_called,
            "already_sent": self.already_called,
            "tier": self.tier,
            "paged_at_ts": to_epoch_ms(self.paged_at),
            "outcome": report.outcome.value if report is not None and report.outcome else None,
            "reason": reason,
            "answered_by": report.answered_by if report is not None else None,
            "digits": report.digits if report is not None else None,
            "call_sid": report.call_sid if report is not None else None,
            "ended_by_page": self.ended_by_page,
        }


@dataclass
class PageOutcome:
    """What a page did (the function's ResultPayload content, via :meth:`as_result`)."""

    reply_code: str
    success: bool = False
    reason: str | None = None
    acknowledged_by: str | None = None
    acknowledged_at: datetime | None = None
    tier: int | None = None
    pages: list[PagedEntry | CallEntry] = field(default_factory=list)
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

    ``flow`` (from :func:`fn_twilio.lib.voice.prepare`) is needed when a tier has ``voice:`` entries;
    ``call_text`` is what a call says (the page text without the SMS's acknowledgement request; default
    ``body``); ``call_time_limit`` how long a call's execution is followed before it counts as stuck.

    ``limiter`` (:func:`fn_twilio.lib.storm.limiter_for`) puts the tiers' texts through the storm limit;
    ``line`` is what the page's text becomes in a digest (default: its start, asking for ``code``).
    """

    RESUME_ATTEMPTS = 3   # reads of the outbound log when resuming, one poll interval apart

    def __init__(self, settings: Any, tiers: Sequence[Sequence[Recipient]], body: str, code: str, *,
                 escalate_after: float, max_wait: float,
                 is_terminated: Callable[[], str | None] = lambda: None,
                 progress: Callable[[str], None] = lambda text: None,
                 delivery: Callable[[Sequence[PagedEntry]], Iterable[tuple[str, str]]] | None = None,
                 resume: Delivery | None = None, describe_stop: Callable[[str], str] = terminated,
                 flow: FlowRef | None = None, call_text: str | None = None,
                 call_time_limit: float = CALL_TIME_LIMIT, limiter: Limiter | None = None,
                 line: DigestLine | None = None,
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
        self.flow = flow
        self.call_text = (call_text if call_text is not None and call_text.strip() else body).strip()
        self.call_time_limit = call_time_limit
        self.limiter = limiter
        self.line = line if line is not None else DigestLine.for_text(body, code=code, asks=True)
        if any(r.is_voice and r.valid for tier in self.tiers for r in tier):
            if flow is None:
                raise ValueError("a page with voice: entries needs the page call's Studio flow "
                                 "(fn_twilio.lib.voice.prepare)")
            call_parameters(self.call_text, code)   # ValueError before anything is sent
        self.clock = clock
        self.client_factory = client_factory
        self.outcome = PageOutcome(reply_code=code)
        self.attribution = Attribution(settings, client_factory=client_factory)
        self._out: set[tuple[str, str]] = set()      # paged entries (channel, number) not holding escalation
        self._listening: set[str] = set()   # numbers whose SMS acknowledgement counts (paged, or may be)
        self._paged: list[tuple[str, str]] = []      # every entry paged so far
        self._tier_keys: list[tuple[str, str]] = []  # the entries of the current tier
        self._started = 0.0
        self._seen: set[str] = set()        # replies handled (kept or left out)
        self._unread: dict[str, Reply] = {}   # replies whose code could not be read yet
        self._settled: dict[str, SendOutcome] = {}   # resuming: what the first run already texted, by number
        self._settled_calls: dict[str, PlacedCall] = {}   # resuming: the first run's calls, by number
        self._calls: CallWatch | None = None
        self._call_entries: dict[str, CallEntry] = {}   # by execution SID
        self._calls_lost = False            # the call watcher failed for good (said once)
        self._cancelled = threading.Event()
        self._texts: list[_HeldTexts] = []   # tiers' texts held for a digest (storm limit), not sent yet
        self._tier_start: datetime | None = None   # when the current tier's first text or call went out
        self._changed: threading.Condition | None = None   # the reply watch's: news of held texts too
        self._text_news = False

    def cancel(self) -> None:
        """End the page at the next step (the call was closed: resilient-circuits shutting down); no
        further tier is paged, whatever the moment."""
        self._cancelled.set()

    # -- the loop --------------------------------------------------------------------------------
    def run(self) -> PageOutcome:
        try:
            return self._run()
        finally:
            try:
                self._end_calls()
            finally:
                try:
                    self._drop_held()
                finally:
                    self.attribution.close()

    def _run(self) -> PageOutcome:
        self._started = self.clock.now()
        numbers = list(dict.fromkeys(r.e164 for tier in self.tiers for r in tier if r.valid and r.e164))
        if self.resume is not None:
            failed = self._read_first_run()
            if failed is not None:
                return self._fail(failed)
            since = self.resume.original or self.clock.wall()
            end = self._at(since) + self.max_wait
        else:
            since = self.clock.wall()
            end = self._started + self.max_wait
        with watch_replies(self.settings, numbers, since, client_factory=self.client_factory,
                           clock=self.clock) as watch:
            self._changed = watch.changed
            watch.wait_for_look(self.settings.timeout + self.settings.poll_interval)
            if self.resume is None:
                # replies already there when the page starts answer something else (Twilio's dates have
                # whole seconds, so a reply of the same second as the page would otherwise count for it)
                earlier = watch.replies
                self._seen.update(reply.sid for reply in earlier)
                watch.handled = len(earlier)
            try:
                return self._tiers(watch, end)
            finally:
                if self._calls is not None:
                    self._update_calls()
                    self._calls.close()

    def _tiers(self, watch: ReplyWatch, end: float) -> PageOutcome:
        for index in range(len(self.tiers)):
            tier = index + 1
            if self._cancelled.is_set():
                return self._stopped(tier, CANCELLED)
            self._tier_start = self._page_tier(tier, watch)
            if self._tier_start is not None:
                self._say_paged(tier, end)
            else:   # every text of the tier held for a digest: its window starts when they go
                held = sum(len(t.waiting) for t in self._texts if t.tier == tier)
                limit = f" ({self.limiter.described})" if self.limiter is not None else ""
                self.progress(f"Tier {tier}: {held} {'person' if held == 1 else 'people'} held for a digest"
                              f"{limit}; the tier's window starts when their text is sent")
            ending = self._wait(watch, tier, end)
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

    def _say_paged(self, tier: int, end: float) -> None:
        count = len(self._tier_keys)
        called = sum(1 for key in self._tier_keys if key[0] == VOICE)
        how = f" ({called} by a call)" if called else ""
        held = sum(len(t.waiting) for t in self._texts if t.tier == tier)
        if held and self.limiter is not None:
            how += f"; {describe_held(held, self.limiter)}"
        people = "person" if count == 1 else "people"
        left = format_duration(max(0.0, self._due(end) - self.clock.now()))
        self.progress(f"Tier {tier}: paged {count} {people}{how}, waiting up to {left} for an "
                      "acknowledgement")

    def _due(self, end: float) -> float:
        """When the current tier's window ends (``end`` while none of its texts or calls went out)."""
        if self._tier_start is None:
            return end
        return min(self._at(self._tier_start) + self.escalate_after, end)

    def _at(self, moment: datetime) -> float:
        """A wall-clock moment on this clock's monotonic scale."""
        return self.clock.now() - (self.clock.wall() - moment).total_seconds()

    def _read_first_run(self) -> str | None:
        """Resuming: which people the first run texted (Twilio's outbound log) and called (the flow's
        executions); None, or the reason they could not be read, after a few tries."""
        assert self.resume is not None
        texted = list(dict.fromkeys(r.e164 for tier in self.tiers for r in tier
                                    if r.valid and r.e164 and not r.is_voice))
        called = list(dict.fromkeys(r.e164 for tier in self.tiers for r in tier
                                    if r.valid and r.e164 and r.is_voice))
        again = "texted or called" if called else "texted"
        why = "no attempt made"
        for attempt in range(1, self.RESUME_ATTEMPTS + 1):
            with client_session(self.settings, factory=self.client_factory) as client:
                settled = settled_for_send(self.settings, texted, self.body, self.resume, client=client) \
                    if texted else {}
                rest = [number for number in texted if number not in settled]
                if rest:   # and the texts the first run held and sent in a digest (storm limit)
                    settled.update(settled_by_digest(self.settings, rest, self.line, self.resume,
                                                     client=client))
                calls = first_run_calls(client, self.flow, called, self.call_text, self.resume,
                                        code=self.outcome.reply_code, timeout=self.settings.timeout) \
                    if called and self.flow is not None else FirstRunCalls()
            unverified = [o.error_message or "Twilio's outbound log could not be read"
                          for o in settled.values() if not o.already_sent] + list(calls.unverified.values())
            if not unverified:
                self._settled, self._settled_calls = settled, calls.found
                paged = len(settled) + len(calls.found)
                self.progress(f"Redelivered page: resuming; {paged} "
                              f"{'person was' if paged == 1 else 'people were'} already paged by the "
                              f"interrupted run and {'is' if paged == 1 else 'are'} not {again} again")
                return None
            why = unverified[0]
            interval = self.settings.poll_interval
            if attempt < self.RESUME_ATTEMPTS and self.clock.wait(self._cancelled, interval):
                break
        return (f"Could not resume the page after a redelivery, so nobody was {again} again (no one may get "
                f"the page twice): {why}")

    def _page_tier(self, tier: int, watch: ReplyWatch) -> datetime | None:
        """Text the tier's people and call its voice entries (those the first run did not reach
        already); the moment the tier was first paged, None while every text of it is held for a digest
        (storm limit: those texts are followed by :meth:`_collect` in the page's wait)."""
        recipients = self.tiers[tier - 1]
        texts = [r for r in recipients if not (r.is_voice and r.e164)]   # an invalid entry is reported so
        todo = [r for r in texts if not (r.valid and r.e164 in self._settled)]
        to_call = [r.e164 for r in recipients if r.is_voice and r.e164 and r.e164 not in self._settled_calls]
        calling = _Calling(self, to_call)
        outcomes: dict[int, SendOutcome] = {}
        held: set[int] = set()    # ids of the recipients whose text is held for a digest
        try:
            if any(r.valid for r in todo):
                clients = ThreadLocalClients(self.settings, factory=self.client_factory)
                job = SendJob(self.settings, todo, self.body, clock=self.clock, client_source=clients,
                              limiter=self.limiter, line=self.line, on_change=self._texts_changed)
                try:
                    job.start()
                    job.wait_settled()   # the requests in flight; texts held for a digest come later
                except BaseException:
                    job.close()
                    clients.close()
                    raise
                for index, recipient in enumerate(todo):
                    outcome = job.outcome_of(index)
                    if outcome is None:
                        held.add(id(recipient))
                    else:
                        outcomes[id(recipient)] = outcome
                waiting = {i for i, r in enumerate(todo) if id(r) in held}
                if waiting:
                    self._texts.append(_HeldTexts(tier, job, clients, todo, waiting))
                else:
                    job.close()
                    clients.close()
            elif todo:
                outcomes = {id(r): SendOutcome.invalid(r.raw, r.reason or "invalid") for r in todo}
        finally:
            starts = calling.result()
        now = self.clock.wall()
        self._tier_keys = []
        moments: list[datetime] = []
        placed: list[PlacedCall] = []
        for recipient in recipients:
            if recipient.is_voice and recipient.e164:
                moment = self._called(tier, recipient.e164, starts.get(recipient.e164), now, placed)
                if moment is not None:
                    moments.append(moment)
                continue
            number = recipient.e164 or recipient.raw
            if id(recipient) in held:   # its entry comes when its digest is sent
                key = (_channel_of(number), number)
                self._tier_keys.append(key)
                self._paged.append(key)
                self._event(Event.HELD, tier, number, "held for a digest"
                            + (f" ({self.limiter.described})" if self.limiter is not None else ""), at=now)
                continue
            earlier = self._settled.get(recipient.e164 or "") if recipient.valid else None
            outcome = earlier if earlier is not None else outcomes[id(recipient)]
            moment = self._text_outcome(tier, outcome, earlier is not None, now)
            if moment is not None:
                moments.append(moment)
        self.attribution.add(sent_text(o) for o in outcomes.values())
        self._follow(placed, watch)
        if not moments and held:
            return None
        return min(moments, default=now)

    def _text_outcome(self, tier: int, outcome: SendOutcome, earlier: bool, now: datetime,
                      *, held: bool = False) -> datetime | None:
        """The entry of one texted person; the moment they were paged when the text (or the digest
        carrying it) went out. ``earlier``: sent by the interrupted run of a redelivered page; ``held``:
        held for a digest, sent since (its key is in the tier already; it is dated by Twilio)."""
        paged_at = (outcome.date_created or now) if earlier or held else now
        self.outcome.pages.append(PagedEntry(outcome, tier, paged_at))
        number = outcome.phone_number
        key = (_channel_of(number), number)
        if not held:
            self._tier_keys.append(key)
            self._paged.append(key)
        if outcome.success:
            self._listening.add(number)
            detail = outcome.sid or ""
            if outcome.bundled:
                detail += " (in a digest)"
            if earlier:
                detail += " (texted by the interrupted run)"
            self._event(Event.PAGED, tier, number, detail, at=paged_at)
            return paged_at
        self._out.add(key)
        if outcome.may_have_sent:   # escalate past them, but their acknowledgement counts
            self._listening.add(number)
        self._event(Event.SEND_FAILED, tier, number, outcome.error_message)
        return None

    # -- texts held for a digest (storm limit) ------------------------------------------------------
    def _texts_changed(self) -> None:
        """A held text got its outcome (on a send worker's thread): wake the page's wait."""
        changed = self._changed
        if changed is None:
            return
        with changed:
            self._text_news = True
            changed.notify_all()

    def _collect(self, tier: int, end: float) -> None:
        """The held texts that went out (or failed) since the last look: their entries, and the current
        tier's window when its first text went out now."""
        if not self._texts:
            return
        if self._changed is not None:
            with self._changed:
                self._text_news = False
        now = self.clock.wall()
        for held in list(self._texts):
            sent = []
            for index in sorted(held.waiting):
                outcome = held.job.outcome_of(index)
                if outcome is None:
                    continue
                held.waiting.discard(index)
                sent.append(outcome)
                moment = self._text_outcome(held.tier, outcome, False, now, held=True)
                if moment is not None and held.tier == tier and self._tier_start is None:
                    self._tier_start = moment
                    self._say_paged(tier, end)
            self.attribution.add(sent_text(o) for o in sent)
            if not held.waiting:
                self._texts.remove(held)
                held.close()

    def _drop_held(self) -> None:
        """The page has ended: texts still held for a digest are not sent (their people are reported
        not sent: the call was closed, or the page ended first)."""
        texts, self._texts = self._texts, []
        for held in texts:
            held.close()
            for index in sorted(held.waiting):
                outcome = held.job.outcome_of(index)
                if outcome is None:
                    continue
                if outcome.error_message == HELD_CANCELLED.message and not self._cancelled.is_set():
                    outcome = SendOutcome.failed(outcome.phone_number, HELD_AT_END)
                if outcome.success:   # its digest went out as the page ended
                    self._text_outcome(held.tier, outcome, False, self.clock.wall(), held=True)
                else:
                    self.outcome.pages.append(PagedEntry(outcome, held.tier, self.clock.wall()))

    def _called(self, tier: int, number: str, start: CallStart | None, now: datetime,
                placed: list[PlacedCall]) -> datetime | None:
        """The entry of one voice recipient (called now, or by the interrupted run); the moment it was
        paged when the call went out."""
        key = (VOICE, number)
        self._tier_keys.append(key)
        self._paged.append(key)
        earlier = self._settled_calls.get(number)
        if earlier is not None:
            entry = CallEntry(number, tier, earlier.started_at, self.call_text, placed=earlier,
                              report=CallReport.placed(earlier), already_called=True)
            detail: str | None = f"{earlier.execution_sid} (called by the interrupted run)"
        else:
            assert start is not None
            entry = CallEntry(number, tier, now, self.call_text, start=start, placed=start.placed,
                              report=CallReport.placed(start.placed) if start.placed else None)
            detail = start.placed.execution_sid if start.placed else None
        self.outcome.pages.append(entry)
        if entry.placed is None:
            assert start is not None and start.failure is not None
            self._out.add(key)
            if entry.may_have_called:   # escalate past them, but their SMS acknowledgement counts
                self._listening.add(number)
            entry.told = True
            self._event(Event.CALL_FAILED, tier, number, start.failure.message, channel=VOICE)
            return None
        self._call_entries[entry.placed.execution_sid] = entry
        placed.append(entry.placed)
        self._listening.add(number)   # the called number listens: their SMS acknowledgement counts
        self._event(Event.PAGED, tier, number, detail, at=entry.paged_at, channel=VOICE)
        return entry.paged_at

    def _follow(self, placed: list[PlacedCall], watch: ReplyWatch) -> None:
        """Follow the calls placed with the shared call watcher, in the same wait as the replies."""
        if not placed:
            return
        if self._calls is None:
            self._calls = watch_calls(self.settings, placed, client_factory=self.client_factory,
                                      clock=self.clock, time_limit=self.call_time_limit,
                                      changed=watch.changed)
        else:
            self._calls.track(placed)

    def _wait(self, watch: ReplyWatch, tier: int, end: float) -> str:
        """Wait for the tier: "done" (acknowledged, terminated, closed, or replies cannot be read),
        "tier_out" or "window". Replies and calls are read before the window is judged, so an
        acknowledgement already there (a resumed page) ends the page before another tier is paged.
        Texts held for a digest are followed here too: the tier's window starts when its first text
        went out (``end``, the page's own end, while all are held)."""
        while True:
            if self._cancelled.is_set():
                return self._stop(tier, CANCELLED)
            self._collect(tier, end)
            found = watch.replies
            watch.handled = len(found)
            if self._read([r for r in found if r.sid not in self._seen], tier):
                return "done"
            if self._consult_calls(tier):
                return "done"
            if watch.error is not None:   # a lasting failure: the page cannot see acknowledgements
                return self._stop(tier, f"Could not read replies from Twilio: {watch.error.message}")
            self._consult_delivery(tier)
            if self._tier_is_out():
                return "tier_out"
            remaining = self._due(end) - self.clock.now()
            if remaining <= 0:
                return "window"
            reason = self.is_terminated()
            if reason is not None:
                return self._stop(tier, self.describe_stop(reason), detail=reason)
            waiting = min(self.settings.poll_interval, remaining)
            if self._unread:   # replies whose code is not known yet are read again at the next interval
                self.clock.wait(self._cancelled, waiting)
            else:
                self._wait_for_news(watch, waiting)

    def _wait_for_news(self, watch: ReplyWatch, timeout: float) -> None:
        """Wait until the replies, the calls or the held texts have news (they share one condition), or
        ``timeout``."""
        calls = self._calls
        if calls is None and not self._texts:
            watch.wait(timeout)
            return

        def news() -> bool:
            return (watch.has_news() or watch.error is not None or self._text_news
                    or (calls is not None and (calls.has_news()
                                               or (calls.error is not None and not self._calls_lost))))

        with watch.changed:
            self.clock.wait_for(watch.changed, news, timeout)

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
            if not reply.answers(self.outcome.reply_code):
                continue   # another page's reply, or an answer to a text that asked for nothing
            reply = own_code(reply, self.outcome.reply_code)   # a digest's answer: this page's code
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
        """A decline or an opt-out: every entry of that person paged so far is out."""
        self._out.update(key for key in self._paged if key[1] == reply.from_)
        self._event(Event.DECLINED, tier, reply.from_, reply.intent, at=reply.date_sent)

    def _acknowledged(self, reply: Reply) -> bool:
        tier = next(p.tier for p in self.outcome.pages if p.phone_number == reply.from_)
        self._acknowledge(reply.from_, tier, reply.date_sent, reply.body)
        return True

    def _acknowledge(self, number: str, tier: int, at: datetime, detail: str | None,
                     channel: str | None = None) -> None:
        out = self.outcome
        out.success, out.acknowledged_by, out.acknowledged_at, out.tier = True, number, at, tier
        self._event(Event.ACKNOWLEDGED, tier, number, detail, at=at, channel=channel)
        how = " (pressed 1 on the call)" if channel == VOICE else ""
        self.progress(f"Acknowledged by {mask(number)}{how} after "
                      f"{format_duration(round(self.clock.now() - self._started))}")

    def _consult_calls(self, tier: int) -> bool:
        """What the call watcher found since the last look: True when a call was acknowledged (pressed 1);
        a decline (2) or a call that reached nobody takes its person out."""
        calls = self._calls
        if calls is None:
            return False
        if calls.error is not None and not self._calls_lost:
            self._calls_lost = True
            why = f"the call could not be followed: {calls.error.message}"
            for entry in self._call_entries.values():
                if entry.report is not None and not entry.report.ended and not entry.told:
                    entry.told = True
                    self._out.add(entry.key)
                    self._event(Event.CALL_FAILED, entry.tier, entry.phone_number, why, channel=VOICE)
            self.progress(f"Calls: {why}; escalation goes on without them (a key pressed later still counts)")
        for report in calls.news():
            found = self._call_entries.get(report.execution_sid)
            if found is None:
                continue
            entry = found
            entry.report = report
            if report.acknowledged:
                self._acknowledge(entry.phone_number, entry.tier, self.clock.wall(), report.reason, VOICE)
                return True
            if not report.ended or entry.told:
                continue
            entry.told = True
            if report.declined:
                self._out.add(entry.key)
                self._event(Event.DECLINED, entry.tier, entry.phone_number, report.reason, channel=VOICE)
            elif report.out:
                self._out.add(entry.key)
                self._event(Event.CALL_FAILED, entry.tier, entry.phone_number, report.reason, channel=VOICE)
            else:
                self._event(Event.CALL_ENDED, entry.tier, entry.phone_number, report.reason, channel=VOICE)
        return False

    def _consult_delivery(self, tier: int) -> None:
        """The seam for a delivery tracker: numbers whose text was not delivered are out."""
        if self.delivery is None:
            return
        texts = [p for p in self.outcome.pages if isinstance(p, PagedEntry)]
        for number, why in self.delivery(texts):
            key = (_channel_of(number), number)
            if number in self._listening and key in self._paged and key not in self._out:
                self._out.add(key)
                self._event(Event.SEND_FAILED, tier, number, why)

    def _tier_is_out(self) -> bool:
        return all(key in self._out for key in self._tier_keys)

    def _update_calls(self) -> None:
        """Every call entry with its watcher's latest report (for the result)."""
        if self._calls is None:
            return
        reports = self._calls.reports()
        for sid, entry in self._call_entries.items():
            if sid in reports:
                entry.report = reports[sid]

    def _end_calls(self) -> None:
        """The page has ended: calls still ringing or in progress are ended (a key pressed now would count
        for nothing)."""
        going = [e for e in self._call_entries.values()
                 if e.placed is not None and (e.report is None or not e.report.ended)]
        if not going:
            return
        ended = end_calls(self.settings, [e.placed for e in going if e.placed is not None],
                          client_factory=self.client_factory)
        for entry, done in zip(going, ended):
            entry.ended_by_page = done
        LOG.info("Twilio: the page ended; %s call(s) still going ended", len(going))

    def _nobody(self) -> PageOutcome:
        self._drop_held()   # a text still held counts as a person paged in vain, like a failed send
        people = len({p.phone_number for p in self.outcome.pages})
        tiers = len({p.tier for p in self.outcome.pages})
        self._event(Event.TIMEOUT, tiers, None, None)
        self.outcome.reason = f"Nobody acknowledged: paged {people} people in {tiers} tiers"
        self.progress(self.outcome.reason)
        return self._finish()

    def _finish(self) -> PageOutcome:
        """The outcome, with the texts still held for a digest dropped (their people not sent) and the
        replies whose code could never be read said in it (never guessed)."""
        self._drop_held()
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
               at: datetime | None = None, channel: str | None = None) -> None:
        moment = at or self.clock.wall()
        self.outcome.timeline.append(TimelineEvent(moment, event, tier, number, detail, channel))


class _HeldTexts:
    """A tier's SendJob whose texts to some people (``waiting``: indexes in ``recipients``) are held for a
    digest by the storm limit; closing it drops what is still held."""

    def __init__(self, tier: int, job: SendJob, clients: ThreadLocalClients, recipients: list[Recipient],
                 waiting: set[int]) -> None:
        self.tier, self.job, self.clients = tier, job, clients
        self.recipients, self.waiting = recipients, waiting

    def close(self) -> None:
        try:
            self.job.close()
        finally:
            self.clients.close()


class _Calling:
    """A tier's calls, started on a thread of their own while its texts are sent."""

    def __init__(self, page: Page, numbers: list[str]) -> None:
        self._starts: list[CallStart] = []
        self._error: BaseException | None = None
        self._numbers = numbers
        self._thread: threading.Thread | None = None
        if numbers and page.flow is not None:
            flow = page.flow

            def run() -> None:
                try:
                    self._starts = start_calls(page.settings, flow, numbers, page.call_text,
                                               page.outcome.reply_code, client_factory=page.client_factory,
                                               clock=page.clock, cancelled=page._cancelled)
                except BaseException as exc:  # raised in the page's thread by result()
                    self._error = exc

            self._thread = threading.Thread(target=run, name="fn_twilio-page-calls", daemon=True)
            self._thread.start()

    def result(self) -> dict[str, CallStart]:
        if self._thread is not None:
            self._thread.join()
        if self._error is not None:
            raise self._error
        return {start.to: start for start in self._starts}


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
