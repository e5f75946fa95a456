"""What each reply means and which page it answers (contract §9.1, §9.2), read from Twilio's log.

:class:`Attribution` belongs to one call (a receive call, a page). ``read(reply)`` gives the reply
its ``intent`` (:func:`fn_twilio.lib.intents.read_reply`) and its ``reply_code``: the code it names,
or, for a reply that names none, the code of the latest text this app's sender sent to that number
at or before the reply (:func:`fn_twilio.lib.intents.reply_code`).

Those texts are read from Twilio's outbound messages (``To`` the number, ``From`` the sender; with a
Messaging Service, the messages of that service), newest first, without a ``DateSent`` filter (a
page still queued has no ``date_sent``), and only when a bare reply from that number needs them:
once per call and number, at most ``page_cap`` pages, stopping at the first text sent at or before
the reply. Texts the call sent itself are added with :meth:`Attribution.add`. Nothing is kept
beyond the call (contract §9.5: the codes live in the texts sent).

A listing that fails leaves the reply's code null (logged); it never fails the call.
"""
from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import replace
from datetime import datetime
from typing import Any

from fn_twilio.lib.errors import Action, classify
from fn_twilio.lib.intents import REFUSALS, Keywords, SentText, read_reply, reply_code
from fn_twilio.lib.phone import mask, mask_numbers
from fn_twilio.lib.polling import MAX_PAGES_PER_LOOK, ClientFactory, PageBudget
from fn_twilio.lib.records import Reply, SendOutcome
from fn_twilio.lib.twilio_client import build_client

LOG = logging.getLogger(__name__)

PAGE_SIZE = 50

__all__ = ["Attribution", "ReplyReader", "refused_by", "sent_text"]


def sent_text(outcome: SendOutcome) -> SentText | None:
    """A text this app sent (a send outcome with a SID), as attribution reads it."""
    if not outcome.success or outcome.date_created is None or outcome.message_body is None:
        return None
    return SentText(to=outcome.phone_number, body=outcome.message_body, date=outcome.date_created)


class _Listing:
    """What one number's outbound listing has read so far."""

    def __init__(self, page_cap: int) -> None:
        self.texts: list[SentText] = []
        self.page: Any = None          # the last page read (to go on from)
        self.started = False
        self.budget = PageBudget(page_cap)   # for the whole call: once per call and number

    @property
    def finished(self) -> bool:
        return self.started and (self.page is None or not self.page.next_page_url or self.budget.left <= 0)

    def reaches(self, at: datetime) -> bool:
        """True when the texts read hold one sent at or before ``at`` (the latest such is then known)."""
        return any(text.date <= at for text in self.texts)


class Attribution:
    """Intent and reply code for the replies of one call (see the module docstring)."""

    def __init__(self, settings: Any, *, client_factory: ClientFactory = build_client,
                 keywords: Keywords | None = None, page_cap: int = MAX_PAGES_PER_LOOK) -> None:
        self.settings = settings
        self.keywords = keywords if keywords is not None else settings.keywords
        self.page_cap = page_cap
        self._client_factory = client_factory
        self._client: Any = None
        self._own: list[SentText] = []
        self._listings: dict[str, _Listing] = {}
        self.requests = 0   # list requests made (tests and benchmarks)

    def add(self, texts: Iterable[SentText | None]) -> None:
        """Texts this call sent itself (they count even before Twilio lists them)."""
        self._own.extend(t for t in texts if t is not None)

    def read(self, reply: Reply) -> Reply:
        """``reply`` with its ``intent`` and ``reply_code``."""
        reading = read_reply(reply.body, self.keywords)
        code = reading.code
        if code is None:
            texts = self._texts_to(reply.from_, reply.date_sent)
            code = reply_code(reading, reply.from_, reply.date_sent, texts)
        return replace(reply, intent=reading.intent.value, reply_code=code)

    # -- the outbound listing ------------------------------------------------------------------
    def _texts_to(self, number: str, at: datetime) -> list[SentText]:
        listing = self._listings.setdefault(number, _Listing(self.page_cap))
        if not listing.reaches(at) and not listing.finished:
            try:
                self._read(listing, number, at)
            except Exception as exc:  # attribution is best effort: the reply is returned without a code
                failure = classify(exc, action=Action.READ, timeout=self.settings.timeout)
                LOG.warning("Could not read the texts sent to %s (%s): %s", mask(number), failure.kind.value,
                            mask_numbers(failure.message))
                listing.page, listing.started = None, True
        return [t for t in self._own if t.to == number] + listing.texts

    def _read(self, listing: _Listing, number: str, at: datetime) -> None:
        client = self._client = self._client or self._client_factory(self.settings)
        while not listing.finished and not listing.reaches(at):
            if not listing.budget.take():
                break
            self.requests += 1
            if not listing.started:
                listing.started = True
                listing.page = client.messages.page(**self._params(number))
            else:
                listing.page = listing.page.next_page()
            listing.texts.extend(self._sent(m) for m in listing.page if self._ours(m))

    def _params(self, number: str) -> dict[str, Any]:
        params: dict[str, Any] = {"to": number, "page_size": PAGE_SIZE}
        if self.settings.src_address:
            params["from_"] = self.settings.src_address
        return params

    def _ours(self, message: Any) -> bool:
        if not (message.direction or "").startswith("outbound"):
            return False
        if self.settings.src_address:
            return True
        return bool(message.messaging_service_sid == self.settings.messaging_service_sid)

    @staticmethod
    def _sent(message: Any) -> SentText:
        date = message.date_sent or message.date_created
        return SentText(to=message.to, body=message.body or "", date=date)


class ReplyReader:
    """The replies of one call as its result shows them: each read once (intent, reply code) and kept
    unless it names another code than the call's ``code`` (None: every reply is kept)."""

    def __init__(self, attribution: Attribution, code: str | None) -> None:
        self.attribution = attribution
        self.code = code
        self._read: dict[str, Reply] = {}

    def kept(self, replies: Iterable[Reply]) -> list[Reply]:
        out = []
        for reply in replies:
            if reply.sid not in self._read:
                self._read[reply.sid] = self.attribution.read(reply)
            read = self._read[reply.sid]
            if self.code is None or read.reply_code is None or read.reply_code == self.code:
                out.append(read)
        return out


def refused_by(replies: Iterable[Reply], numbers: Sequence[str]) -> list[str]:
    """The numbers when every one of them has declined or opted out (its latest such reply), else []."""
    latest: dict[str, str | None] = {}
    for reply in replies:
        latest[reply.from_] = reply.intent
    return list(numbers) if all(latest.get(n) in REFUSALS for n in numbers) else []
