"""Storms (contract §15): nobody gets more than ``max_texts_per_person`` texts in any ``person_window``.

**The limit.** A :class:`Limiter` (one per process, account, sender and limit: :func:`limiter_for`)
counts the texts the sender sent to each number in the window from two sources:

* Twilio's outbound log of the sender, read by the delivery tracker's shared listing once per poll
  interval (:func:`fn_twilio.lib.delivery.watch_outbound`; no request per send), so the texts of
  every resilient-circuits instance on the account and sender count;
* this process's own texts: reserved before the create request goes out, so texts in flight count,
  and kept (by SID) until they leave the window, so a text the last view does not show yet counts.

A text Twilio lists as ``failed`` or ``canceled`` never reached the person and does not count. A
decision needs a view at most 1.5 poll intervals old: a send waits for the next look when the view is
older (bounded by the HTTP timeout plus one interval; when the log cannot be read it goes on with what
it knows, this process's texts and the last view, and says so once at WARNING).

Several instances: each keeps the limit with what its last view shows, so texts another instance sent
since that view (at most 1.5 poll intervals old) are not counted yet (the contract's "within one poll
interval"). To bound that, once the log shows another sender's text to a number in the window (another
instance), one instance sends that number at most one text every two poll intervals (``pace``): by the
time it sends the next, its previous one is in every other instance's view. So past the first poll
interval of a storm, N instances pass the limit by at most N - 1 texts in any window; one instance
alone keeps it exactly and is never paced. A slot freed by a text of another instance (the text left the
window and is not this process's) is left to that instance for two poll intervals, the time for its
reuse to show in the log; a slot freed by this process's own text is reused at once. So two instances
holding texts for one person do not both send a digest the moment a slot frees.

**Holds and digests.** A text to a number that has no room, whose pace (when paced) does not allow a
text yet, or that already has texts held, is held. Each held call waits; when the number has room and its pace
allows, the waiting call that sees it first takes every text held for that number (from any call of
the process) and sends them merged into one digest, oldest first, at most 1600 characters
(:func:`build_digests`; what does not fit waits for the next text the number may get)::

    3 more incidents need you:
    2101 Phishing wave (High)
    2102 Scanner on 10.0.0.5 (Medium)
    2103 Malware on a laptop (Low)
    Reply ACK <id> to acknowledge one, ACK ALL for all.

One line per text (:class:`DigestLine`): its code, the incident's name or the message's start, the
severity when known. A line whose text asked for an acknowledgement starts with its code; a line
that asked for none starts with ``-`` (``- 2104 Server restarted``), and a digest without such lines
has no acknowledgement footer. :func:`requested_codes` reads back every code a text (digest or page)
asked for. When the texts held for a number are all the same text, that text is sent as it is.

Every call whose text went in a digest reports that recipient with the digest's message
(``bundled`` true: SID, status, date, body); a call closed (shutdown) while its text is held reports
it not sent. A held text waits at most one window (plus two poll intervals and a second of margin):
if the number still has no room then, its digest goes anyway (and a WARNING says so) rather than the
text being lost (still one text per pace).

After a crash, :func:`fn_twilio.lib.reconcile.settled_by_digest` finds the digests the interrupted run
already sent (in Twilio's outbound log since the original delivery) that carry a call's line.

The SendJob (:mod:`fn_twilio.lib.sender`) takes a limiter and a line: every recipient goes through
:meth:`Limiter.send`, which returns the recipient's :class:`~fn_twilio.lib.records.SendOutcome`. Send SMS
and the page's tiers (:mod:`fn_twilio.lib.paging`) both send through the process's limiter, so one
person's texts of every call count together. A reply to a digest answers every code it asked for
(:mod:`fn_twilio.lib.attribution` reads them with :func:`requested_codes`); a redelivered call with a
random code finds the line its text made (:meth:`DigestLine.rendered_for`).
"""
from __future__ import annotations

import logging
import re
import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

from fn_twilio.lib.clock import SYSTEM_CLOCK, Clock
from fn_twilio.lib.delivery import OutboundText, OutboundView, OutboundWatch, watch_outbound
from fn_twilio.lib.durations import format_duration
from fn_twilio.lib.errors import Failure, FailureKind, Retry
from fn_twilio.lib.intents import Keywords, requested_code
from fn_twilio.lib.phone import mask
from fn_twilio.lib.polling import ClientFactory, poller_key
from fn_twilio.lib.records import NOT_SENT, SendOutcome
from fn_twilio.lib.twilio_client import build_client

LOG = logging.getLogger(__name__)

__all__ = ["DigestLine", "Digest", "build_digests", "requested_codes", "digest_lines", "Limiter",
           "limiter_for", "forget_limiters", "describe_held", "DIGEST_LIMIT",
           "HELD_CANCELLED"]

DIGEST_LIMIT = 1600              # Twilio's longest text
LINE_TEXT = 60                   # characters of a name or message start a line keeps
MARGIN = timedelta(seconds=1)    # Twilio's dates have whole seconds: a text counts one second longer
FRESH_VIEW = 1.5                 # a decision needs a view at most this many poll intervals old
KIND = "storm limiter"

HELD_CANCELLED = Failure(FailureKind.UNREACHABLE, "not sent: the call was closed while this SMS was held "
                                                  "for a digest", Retry.NEVER)

DEFAULT_KEYWORDS = Keywords()
_SPACES = re.compile(r"\s+")
_ACK_REQUEST = re.compile(r"\s*Reply \w+ #?[0-9]+ to acknowledge\.\s*$")
_HEADER = re.compile(r"^[0-9]+ more (?:incidents? needs? you|messages? for you):$")
_FOOTER = re.compile(r"^Reply \w+ <id> to acknowledge one, \w+ ALL for all\.$")
_ASKING = re.compile(r"^([0-9]+)(?: |$)")


# -- digests ----------------------------------------------------------------------------------------
def _one_line(text: str | None, width: int) -> str:
    """``text`` on one line (white space runs made one space), at most ``width`` characters."""
    flat = _SPACES.sub(" ", text or "").strip()
    return flat if len(flat) <= width else flat[:width - 3].rstrip() + "..."


@dataclass(frozen=True)
class DigestLine:
    """What one held text becomes in a digest: ``code`` (the incident id or reply code), ``text`` (the
    incident's name, or the message's start), ``severity`` when known; ``asks`` when the text asked for
    an acknowledgement of ``code``."""

    text: str
    code: str | None = None
    asks: bool = False
    severity: str | None = None

    @classmethod
    def for_text(cls, body: str, *, code: str | None = None, asks: bool = False, name: str | None = None,
                 severity: str | None = None) -> DigestLine:
        """The line of a text: the incident's ``name`` when known, else the message without its
        acknowledgement request."""
        return cls(name if name and name.strip() else _ACK_REQUEST.sub("", body), code, asks, severity)

    @property
    def asking(self) -> bool:
        return self.asks and bool(self.code)

    @classmethod
    def rendered_for(cls, text_for: Callable[[str], str]) -> Callable[[str], str]:
        """For a call whose text asks for a random code (no incident): ``code`` -> the line its text
        asking for ``code`` makes in a digest, rendered (how a redelivered call recognises the digest its
        first run's text went in: :func:`fn_twilio.lib.reconcile.first_run_code`)."""
        def line(code: str) -> str:
            return cls.for_text(text_for(code), code=code, asks=True).render()
        return line

    def render(self) -> str:
        """The line as the digest writes it: ``2101 Phishing wave (High)``, ``- Server restarted``."""
        severity = f" ({_one_line(self.severity, 20)})" if self.severity and self.severity.strip() else ""
        text = _one_line(self.text, LINE_TEXT)
        if self.asking:
            return f"{self.code} {text}{severity}".rstrip()
        return f"- {self.code + ' ' if self.code else ''}{text}{severity}".rstrip()


@dataclass(frozen=True)
class Digest:
    """One digest text and the rendered lines it carries."""

    body: str
    lines: tuple[str, ...]


def _digest_body(lines: Sequence[DigestLine], keywords: Keywords) -> str:
    count = len(lines)
    if all(line.code for line in lines):
        head = f"{count} more {'incident needs' if count == 1 else 'incidents need'} you:"
    else:
        head = f"{count} more {'message' if count == 1 else 'messages'} for you:"
    parts = [head] + [line.render() for line in lines]
    if any(line.asking for line in lines):
        word = keywords.acknowledge[0]
        parts.append(f"Reply {word} <id> to acknowledge one, {word} ALL for all.")
    return "\n".join(parts)


def build_digests(lines: Iterable[DigestLine], keywords: Keywords = DEFAULT_KEYWORDS,
                  limit: int = DIGEST_LIMIT) -> list[Digest]:
    """The digests carrying ``lines`` (the same rendered line once), in order, each at most ``limit``
    characters: as many lines in each as fit."""
    distinct: dict[str, DigestLine] = {}
    for line in lines:
        distinct.setdefault(line.render(), line)
    digests: list[Digest] = []
    current: list[DigestLine] = []
    for line in distinct.values():
        if current and len(_digest_body(current + [line], keywords)) > limit:
            digests.append(Digest(_digest_body(current, keywords), tuple(x.render() for x in current)))
            current = []
        current.append(line)
    if current:
        digests.append(Digest(_digest_body(current, keywords), tuple(x.render() for x in current)))
    return digests


def digest_lines(body: str | None) -> list[str] | None:
    """The lines a digest carries (header and footer left out); None when ``body`` is not a digest."""
    rows = (body or "").replace("\r\n", "\n").strip().split("\n")
    if len(rows) < 2 or not _HEADER.match(rows[0].strip()):
        return None
    inner = rows[1:-1] if _FOOTER.match(rows[-1].strip()) else rows[1:]
    return [row.strip() for row in inner]


def requested_codes(body: str | None) -> list[str]:
    """Every code a text this app sent asks to have acknowledged, in order: the codes of a digest's
    asking lines (when it ends with the acknowledgement footer), or the code of a page's
    acknowledgement request (:func:`fn_twilio.lib.intents.requested_code`); [] when it asks for none."""
    rows = (body or "").replace("\r\n", "\n").strip().split("\n")
    if len(rows) >= 2 and _HEADER.match(rows[0].strip()):
        if not _FOOTER.match(rows[-1].strip()):
            return []
        codes = [str(int(m.group(1))) for row in rows[1:-1] if (m := _ASKING.match(row.strip()))]
        return list(dict.fromkeys(codes))
    code = requested_code(body)
    return [code] if code is not None else []


# -- the limiter ------------------------------------------------------------------------------------
@dataclass
class _Own:
    """A text this process sent (or is sending) to one number."""

    at: datetime                  # when it was reserved (wall clock)
    body: str                     # its text: a listing may show it before Twilio's answer gives its SID
    sid: str | None = None        # known once Twilio accepted it
    confirmed: float | None = None   # clock.now() when the SID became known


@dataclass
class _Hold:
    """A text held for a digest."""

    to: str
    body: str
    line: DigestLine
    deadline: float                      # clock.now() after which its digest goes whatever the count
    taken: bool = False                  # in a digest being sent
    outcome: SendOutcome | None = None


@dataclass
class _Batch:
    body: str
    own: _Own
    holds: list[_Hold]
    bundled: bool


@dataclass
class _State:
    """What the limiter knows of one number."""

    own: list[_Own] = field(default_factory=list)
    held: list[_Hold] = field(default_factory=list)


Send = Callable[[str], SendOutcome]


class Limiter:
    """The limit and the digests for one account and sender in a process (see the module docstring).

    Thread-safe. ``open()``/``close()`` (or ``with limiter.using():``) bracket the time a caller sends
    through it: while one is open the tracker keeps the sender's outbound log fresh.
    """

    def __init__(self, settings: Any, *, clock: Clock = SYSTEM_CLOCK,
                 client_factory: ClientFactory = build_client, keywords: Keywords | None = None) -> None:
        self.settings = settings
        self.limit = int(settings.max_texts_per_person)
        self.window = float(settings.person_window)
        self.interval = float(settings.poll_interval)
        self.keywords = keywords if keywords is not None else settings.keywords
        self.clock = clock
        self.client_factory = client_factory
        self.grace = 2 * self.interval        # a slot freed by another instance's text is left to it
        self.pace = 2 * self.interval         # one text to a number per pace from this process
        self.max_hold = self.window + MARGIN.total_seconds() + self.grace + self.pace
        self.horizon = self.window + MARGIN.total_seconds() + self.grace + 2 * self.interval
        self._cond = threading.Condition()
        self._generation = 0
        self._numbers: dict[str, _State] = {}
        self._view: OutboundView | None = None
        self._lease = threading.Lock()
        self._watch: OutboundWatch | None = None
        self._users = 0
        self._blind = False            # the log could not be read in time: no more waiting for it
        # diagnostics (tests, benchmarks)
        self.held = 0          # texts held so far
        self.digests = 0       # digests sent (accepted by Twilio)

    def refresh(self, settings: Any) -> None:
        """Take the latest settings of the same account, sender and limit (a reloaded app.config may
        change the proxy, the timeout or the keywords): the next listing it asks for uses them."""
        self.settings = settings
        self.keywords = settings.keywords

    @property
    def described(self) -> str:
        """``limit 10 texts per 1m``, for status messages."""
        return f"limit {self.limit} texts per {format_duration(self.window)}"

    # -- keeping the outbound log fresh ----------------------------------------------------------
    def open(self) -> None:
        """A caller starts sending: the tracker keeps the sender's outbound log while one is open (and
        two poll intervals after the last one closed, so that calls in a row share its listings)."""
        with self._lease:
            self._users += 1
            if self._watch is None or not self._watch.keep():
                self._renew_watch()

    def close(self) -> None:
        with self._lease:
            self._users = max(0, self._users - 1)
            if self._users == 0 and self._watch is not None:
                self._watch.linger(self.clock.now() + 2 * self.interval)

    def _renew_watch(self) -> None:
        if self._watch is not None:
            self._watch.close()
        self._watch = watch_outbound(self.settings, self.horizon, self._on_view,
                                     client_factory=self.client_factory, clock=self.clock)

    def using(self) -> _Using:
        return _Using(self)

    def _on_view(self, view: OutboundView) -> None:
        with self._cond:
            if self._view is None or view.taken >= self._view.taken:
                self._view = view
                self._blind = False
                self._forget_unlisted(view)
            self._changed()

    def _changed(self) -> None:
        """Wake every waiting call to look again (called with the condition held)."""
        self._generation += 1
        self._cond.notify_all()

    def _news(self, cancelled: threading.Event) -> Callable[[], bool]:
        """A wait's predicate: something changed since now (called with the condition held), or the
        call was cancelled."""
        generation = self._generation
        return lambda: self._generation != generation or cancelled.is_set()

    def wake(self) -> None:
        """Make the waiting calls look at their state again (a SendJob was cancelled)."""
        with self._cond:
            self._changed()

    def _fresh(self) -> bool:
        view = self._view
        return view is not None and self.clock.now() - view.taken <= FRESH_VIEW * self.interval

    def _await_view(self, cancelled: threading.Event) -> None:
        """Wait until the view is fresh, at most the HTTP timeout plus one interval. When a wait ends
        without one, the limiter goes on "blind" (this process's texts and the last view) and does not
        wait again until a view comes."""
        with self._cond:
            if self._fresh() or self._blind:
                return
        with self._lease:
            watch = self._watch
            poller = getattr(watch, "_poller", None)
            if watch is not None and watch.error is not None and (poller is None or not poller.alive):
                self._renew_watch()   # the tracker stopped: a new one
        end = self.clock.now() + float(self.settings.timeout) + self.interval
        with self._cond:
            while not self._fresh() and not cancelled.is_set():
                remaining = end - self.clock.now()
                if remaining <= 0:
                    self._blind = True
                    LOG.warning("fn_twilio storm limit: Twilio's outbound log could not be read in time; "
                                "counting this process's texts and the last log read until it can be")
                    return
                self.clock.wait_for(self._cond, self._news(cancelled), min(remaining, self.interval))

    # -- counting ----------------------------------------------------------------------------------
    def _state(self, to: str) -> _State:
        return self._numbers.setdefault(to, _State())

    def _forget_unlisted(self, view: OutboundView) -> None:
        """Own texts a complete view taken well after they were accepted does not show are not on
        Twilio's log (deleted, or an emulator reset): they no longer count."""
        if not view.complete:
            return
        lag = max(2 * self.interval, 2.0)
        listed = {text.sid for text in view.texts}
        floor = view.wall - timedelta(seconds=self.horizon) + MARGIN
        for to, state in self._numbers.items():
            if ":" in to:     # a channel address (whatsapp:): the sender's listing never shows it
                continue
            state.own = [o for o in state.own if o.sid is None or o.sid in listed or o.confirmed is None
                         or view.taken - o.confirmed < lag or o.at < floor]

    def _texts(self, to: str, now: datetime) -> list[tuple[datetime, bool]]:
        """Every text to ``to`` that may still count, oldest first: (the moment it counts from, sent by
        this process)."""
        state = self._state(to)
        keep = now - timedelta(seconds=self.window + self.grace) - 2 * MARGIN
        state.own = [o for o in state.own if o.at > keep]
        listed = {t.sid: t for t in self._view.texts if t.to == to} if self._view is not None else {}
        found = {id(own): listed.pop(own.sid, None) for own in state.own if own.sid is not None}
        for own in state.own:
            if own.sid is None:   # in flight (or may have been sent): the listing may already show it
                found[id(own)] = _claim(listed, own)
        texts: list[tuple[datetime, bool]] = []
        for own in state.own:
            text = found[id(own)]
            if text is not None and text.status in NOT_SENT:
                continue
            texts.append((max(own.at, text.at) if text is not None else own.at, True))
        texts += [(t.at, False) for t in listed.values() if t.status not in NOT_SENT]
        return sorted(texts)

    def _paced_until(self, to: str, now: datetime) -> datetime | None:
        """When this process may send its next text to ``to`` (None: at once): one pace after its last
        one, while the log shows another sender (an instance) texting that number in the window."""
        own = self._state(to).own
        if not own or not any(not mine for at, mine in self._texts(to, now)
                              if at > now - timedelta(seconds=self.window) - MARGIN):
            return None
        return max(o.at for o in own) + timedelta(seconds=self.pace)

    def _room(self, to: str, now: datetime) -> tuple[int, datetime | None]:
        """How many texts may go to ``to`` at ``now``, and when more room comes (None: not known)."""
        span = timedelta(seconds=self.window) + MARGIN
        texts = self._texts(to, now)
        inside = [at for at, _ in texts if at > now - span]
        # slots freed within the grace by another instance's texts are left to that instance
        grace = timedelta(seconds=self.grace)
        reserved = sorted(at + span + grace for at, own in texts
                          if not own and now - span - grace < at <= now - span)
        room = self.limit - len(inside) - len(reserved)
        moments = reserved[:1]
        if len(inside) >= self.limit:     # the moment enough of them have left the window
            moments.append(inside[len(inside) - self.limit] + span)
        return max(0, room), min(moments) if moments else None

    # -- sending ------------------------------------------------------------------------------------
    def send(self, to: str, body: str, line: DigestLine, send: Send, *, cancelled: threading.Event,
             on_hold: Callable[[], None] = lambda: None,
             on_release: Callable[[], None] = lambda: None) -> SendOutcome:
        """Send ``body`` to ``to`` with ``send`` (one create, returning the outcome) when the number has
        room and its pace allows; otherwise hold it (``on_hold()``), wait for its digest, and return the
        digest's outcome (``bundled``), or not sent when ``cancelled`` is set while it is held
        (``on_release()`` when a held text ends either way). Call it between ``open()`` and ``close()``
        (a SendJob with a limiter does)."""
        self._await_view(cancelled)
        if cancelled.is_set():
            return SendOutcome.failed(to, HELD_CANCELLED)
        with self._cond:
            now = self.clock.wall()
            state = self._state(to)
            room, _ = self._room(to, now)
            paced = self._paced_until(to, now)
            if room > 0 and (paced is None or now >= paced) and all(h.taken for h in state.held):
                own = _Own(now, body)
                state.own.append(own)
                hold = None
            else:
                hold = _Hold(to, body, line, self.clock.now() + self.max_hold)
                state.held.append(hold)
                self.held += 1
                self._changed()
        if hold is None:
            outcome = send(body)
            self._settle(to, own, outcome)
            return outcome
        LOG.info("SMS to %s held for a digest (%s)", mask(to), self.described)
        on_hold()
        try:
            return self._wait(hold, send, cancelled)
        finally:
            on_release()

    def _settle(self, to: str, own: _Own, outcome: SendOutcome) -> None:
        """Keep a sent text (by SID), or one that may have been sent; forget one that was not."""
        with self._cond:
            if outcome.success and outcome.sid:
                own.sid, own.confirmed = outcome.sid, self.clock.now()
            elif not outcome.may_have_sent:
                state = self._state(to)
                state.own = [o for o in state.own if o is not own]
            self._changed()

    def _wait(self, hold: _Hold, send: Send, cancelled: threading.Event) -> SendOutcome:
        while True:
            with self._cond:
                batches: list[_Batch] = []
                while not batches:
                    if hold.outcome is not None:
                        return hold.outcome
                    pause = self.interval
                    if not hold.taken:
                        if cancelled.is_set():
                            self._drop(hold)
                            return SendOutcome.failed(hold.to, HELD_CANCELLED)
                        batches, pause = self._take(hold)
                    if not batches:
                        self.clock.wait_for(self._cond, self._news(cancelled), pause)
            for batch in batches:
                self._send_batch(hold.to, batch, send)

    def _drop(self, hold: _Hold) -> None:
        state = self._state(hold.to)
        state.held = [h for h in state.held if h is not hold]
        self._changed()

    def _take(self, hold: _Hold) -> tuple[list[_Batch], float]:
        """The text to send now for ``hold``'s number (taken from the held texts: the one text they all
        are, or a digest of them), or none and how long to wait before looking again (called with the
        condition held)."""
        to = hold.to
        state = self._state(to)
        waiting = [h for h in state.held if not h.taken]
        now, now_m = self.clock.wall(), self.clock.now()
        room, more_at = self._room(to, now)
        paced = self._paced_until(to, now)
        forced = room == 0 and any(now_m >= h.deadline for h in waiting)
        if (room == 0 and not forced) or (paced is not None and now < paced):
            moments = [min(h.deadline for h in waiting) - now_m]
            if room == 0 and more_at is not None:
                moments.append((more_at - now).total_seconds())
            if paced is not None and now < paced:
                moments.append((paced - now).total_seconds())
            return [], max(0.0, min([self.interval] + moments))
        if forced:
            LOG.warning("fn_twilio storm limit: %s still has no room after %s; its held texts go in a digest "
                        "now rather than be lost", mask(to), format_duration(self.max_hold))
        if len({h.body for h in waiting}) == 1:       # the same text each time: send it as it is
            batch = _Batch(waiting[0].body, _Own(now, waiting[0].body), waiting, bundled=False)
        else:
            digest = build_digests([h.line for h in waiting], self.keywords)[0]
            rows = set(digest.lines)
            batch = _Batch(digest.body, _Own(now, digest.body),
                           [h for h in waiting if h.line.render() in rows], bundled=True)
        state.own.append(batch.own)
        for taken in batch.holds:
            taken.taken = True
        self._changed()
        return [batch], 0.0

    def _send_batch(self, to: str, batch: _Batch, send: Send) -> None:
        outcome = send(batch.body)
        self._settle(to, batch.own, outcome)
        result = replace(outcome, bundled=batch.bundled)
        with self._cond:
            if outcome.success and batch.bundled:
                self.digests += 1
                LOG.info("Digest of %s held text%s sent to %s (%s)", len(batch.holds),
                         "" if len(batch.holds) == 1 else "s", mask(to), outcome.sid)
            for hold in batch.holds:
                hold.outcome = result
            state = self._state(to)
            state.held = [h for h in state.held if h.outcome is None]
            self._changed()


def _claim(listed: dict[str, OutboundText], own: _Own) -> OutboundText | None:
    """The listed text that is ``own`` before its SID is known (taken out of ``listed``): the oldest
    with its text, created no earlier than it was reserved (Twilio's whole seconds allowed for); None
    when the listing does not show it. Without this, a process's own text listed while Twilio's answer
    is on its way would pass for another instance's and slow its next texts to the pace."""
    mine = [t for t in listed.values() if t.body == own.body and t.at >= own.at - MARGIN]
    if not mine:
        return None
    text = min(mine, key=lambda t: t.at)
    del listed[text.sid]
    return text


class _Using:
    def __init__(self, limiter: Limiter) -> None:
        self.limiter = limiter

    def __enter__(self) -> Limiter:
        self.limiter.open()
        return self.limiter

    def __exit__(self, *exc: object) -> None:
        self.limiter.close()


# -- one limiter per process, account, sender and limit ------------------------------------------------
_LIMITERS: dict[tuple[Any, ...], Limiter] = {}
_LIMITERS_LOCK = threading.Lock()


def limiter_for(settings: Any, *, clock: Clock = SYSTEM_CLOCK,
                client_factory: ClientFactory = build_client) -> Limiter:
    """The process's limiter for the account and sender of ``settings`` (keyed as the shared pollers
    are, and by the limit and window)."""
    key = (poller_key(settings, KIND), int(settings.max_texts_per_person), float(settings.person_window))
    with _LIMITERS_LOCK:
        limiter = _LIMITERS.get(key)
        if limiter is None:
            limiter = _LIMITERS[key] = Limiter(settings, clock=clock, client_factory=client_factory)
        else:
            limiter.refresh(settings)
        return limiter


def forget_limiters() -> int:
    """Drop every limiter of the process and stop the outbound listings they keep, at once (what this
    process counted is forgotten; Twilio's log still counts). For tests that must not see another test's
    texts; returns how many there were."""
    with _LIMITERS_LOCK:
        limiters = list(_LIMITERS.values())
        _LIMITERS.clear()
    for limiter in limiters:
        with limiter._lease:
            if limiter._watch is not None:
                limiter._watch.close()
                limiter._watch = None
    return len(limiters)


def describe_held(count: int, limiter: Limiter) -> str:
    """``2 recipients held for a digest (limit 10 texts per 1m)``."""
    return f"{count} recipient{'s' if count != 1 else ''} held for a digest ({limiter.described})"

