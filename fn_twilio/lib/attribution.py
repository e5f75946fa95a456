"""What each reply means and which page it answers (contract §9.1, §9.2, §13.1), read from Twilio's log.

:class:`Attribution` belongs to one call (a receive call, a page). ``read_all(replies)`` gives each
reply its ``intent`` (:func:`fn_twilio.lib.intents.read_reply`) and its ``reply_code``:

* the code it names, whatever was sent;
* for a reply that names none (``ack``, ``ACK ALL``), the code of the **latest text this app's sender
  sent to that number before the reply**, or null when that text asked for no acknowledgement: an "ok"
  to a plain Send SMS acknowledges nothing. A digest (contract §15) asks for several codes: the reply
  answers each of them (``reply_codes``, read with :func:`fn_twilio.lib.storm.requested_codes`;
  ``reply_code`` is the first). ``ACK 2102`` to a digest answers 2102 alone.

A call with a code of its own asks :meth:`Reply.answers` (``ReplyReader.answers``, the page): a reply
answers it when the call's code is among the reply's codes; such a reply is shown with the call's code
as its ``reply_code``.

Those texts are read from Twilio's outbound messages **when the reply is read**, never from a copy read
earlier in the call: texts sent since then (by this call, another call, another instance) count. One
listing per number per ``read_all`` (``To`` the number, ``From`` the sender on that number's channel,
``whatsapp:<sender>`` for a WhatsApp number; with a Messaging Service, the messages of that service),
newest first, without a ``DateSent`` filter (a page still queued has no ``date_sent``), stopping at the
first page that reaches a text sent at or before the earliest reply being read, at most ``page_cap``
pages. Texts the call sent itself are added with :meth:`Attribution.add` (they count before Twilio
lists them).

When the listing cannot be read (or is cut by the page cap before it reaches the reply), the reply's
code is **not known yet**: it comes back with ``reply_code`` null and ``code_pending`` true, it
acknowledges nothing, and the next ``read_all`` reads it again. A reply whose code is known is read
once per call. Nothing is kept beyond the call (contract §9.5: the codes live in the texts sent).
"""
from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import replace
from datetime import datetime
from typing import Any

from fn_twilio.lib.errors import Action, classify
from fn_twilio.lib.intents import REFUSALS, Keywords, Reading, SentText, latest_page, read_reply
from fn_twilio.lib.phone import mask, mask_numbers
from fn_twilio.lib.polling import MAX_PAGES_PER_LOOK, ClientFactory, PageBudget
from fn_twilio.lib.records import Reply, SendOutcome, listed_at
from fn_twilio.lib.sender import message_params
from fn_twilio.lib.storm import requested_codes
from fn_twilio.lib.twilio_client import build_client, close_client

LOG = logging.getLogger(__name__)

PAGE_SIZE = 20

__all__ = ["Attribution", "ReplyReader", "refused_by", "sent_text", "pending", "answered_codes",
           "own_code"]


def sent_text(outcome: SendOutcome) -> SentText | None:
    """A text this app sent (a send outcome with a SID), as attribution reads it."""
    if not outcome.success or outcome.date_created is None or outcome.message_body is None:
        return None
    return SentText(to=outcome.phone_number, body=outcome.message_body, date=outcome.date_created,
                    sid=outcome.sid)


def answered_codes(reading: Reading, number: str, at: datetime, sent: Sequence[SentText]) -> list[str]:
    """Every code a reply from ``number`` received ``at`` answers: the one it names; else each code the
    latest text sent to that number at or before the reply asked for (several for a digest; none when
    it asked for none, or nothing was sent)."""
    if reading.code is not None:
        return [reading.code]
    latest = latest_page(number, at, sent)
    return requested_codes(latest.body) if latest is not None else []


def pending(replies: Iterable[Reply]) -> list[Reply]:
    """The replies whose code could not be read yet (Twilio's outbound log was not readable)."""
    return [r for r in replies if r.code_pending]


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
        self._known: dict[str, Reply] = {}   # sid -> the reply read with a known code
        self.requests = 0   # list requests made (tests and benchmarks)

    def add(self, texts: Iterable[SentText | None]) -> None:
        """Texts this call sent itself (they count even before Twilio lists them)."""
        self._own.extend(t for t in texts if t is not None)

    def read(self, reply: Reply) -> Reply:
        """``reply`` with its ``intent`` and ``reply_code`` (see :meth:`read_all`)."""
        return self.read_all([reply])[0]

    def read_all(self, replies: Sequence[Reply]) -> list[Reply]:
        """Each reply with its ``intent`` and ``reply_code``, in the order given; a reply whose code
        cannot be read yet has ``code_pending`` true (read it again later)."""
        out: dict[int, Reply] = {}
        bare: dict[str, list[int]] = {}
        for index, reply in enumerate(replies):
            known = self._known.get(reply.sid)
            if known is not None:
                out[index] = known
                continue
            reading = read_reply(reply.body, self.keywords)
            if reading.code is not None:
                out[index] = self._keep(replace(reply, intent=reading.intent.value, reply_code=reading.code,
                                                code_pending=False, reply_codes=(reading.code,)))
            else:
                bare.setdefault(reply.from_, []).append(index)
        for number, indexes in bare.items():
            earliest = min(replies[i].date_sent for i in indexes)
            listed = self._texts_to(number, earliest)
            for i in indexes:
                reply = replies[i]
                reading = read_reply(reply.body, self.keywords)
                if listed is None:
                    out[i] = replace(reply, intent=reading.intent.value, reply_code=None, code_pending=True,
                                     reply_codes=())
                    continue
                # Twilio's order first (of texts of the same second, the first listed is the later);
                # the call's own texts only where the listing does not show them yet
                shown = {t.sid for t in listed}
                texts = listed + [t for t in self._own if t.to == number and t.sid not in shown]
                codes = answered_codes(reading, number, reply.date_sent, texts)
                out[i] = self._keep(replace(reply, intent=reading.intent.value, reply_code=codes[0] if codes
                                            else None, code_pending=False, reply_codes=tuple(codes)))
        return [out[i] for i in range(len(replies))]

    def close(self) -> None:
        """Close the HTTP session of the client this call built (if any)."""
        client, self._client = self._client, None
        close_client(client)

    def __enter__(self) -> Attribution:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _keep(self, reply: Reply) -> Reply:
        self._known[reply.sid] = reply
        return reply

    # -- the outbound listing ------------------------------------------------------------------
    def _texts_to(self, number: str, at: datetime) -> list[SentText] | None:
        """The texts sent to ``number`` newest first, down to one sent at or before ``at``; None when
        the log could not be read that far (the code is not known yet)."""
        try:
            return self._list(number, at)
        except Exception as exc:  # the reply's code stays unknown; it is read again next time
            failure = classify(exc, action=Action.READ, timeout=self.settings.timeout)
            LOG.warning("Could not read the texts sent to %s (%s): %s; the reply's code is read again at "
                        "the next look", mask(number), failure.kind.value, mask_numbers(failure.message))
            return None

    def _list(self, number: str, at: datetime) -> list[SentText] | None:
        client = self._client = self._client or self._client_factory(self.settings)
        budget = PageBudget(self.page_cap)
        texts: list[SentText] = []
        page: Any = None
        while budget.take():
            self.requests += 1
            page = client.messages.page(**self._params(number)) if page is None else page.next_page()
            listed = [self._sent(m) for m in page if self._ours(m)]
            texts.extend(t for t in listed if t is not None)
            if any(t.date <= at for t in texts) or not page.next_page_url:
                return texts
        LOG.warning("The texts sent to %s before a reply are more than %s pages back; the reply's code is "
                    "not known", mask(number), self.page_cap)
        return None

    def _params(self, number: str) -> dict[str, Any]:
        params: dict[str, Any] = {"to": number, "page_size": PAGE_SIZE}
        sender = message_params(self.settings, number, "").get("from_")
        if sender:
            params["from_"] = sender
        return params

    def _ours(self, message: Any) -> bool:
        if not (message.direction or "").startswith("outbound"):
            return False
        if self.settings.src_address:
            return True
        return bool(message.messaging_service_sid == self.settings.messaging_service_sid)

    @staticmethod
    def _sent(message: Any) -> SentText | None:
        date = listed_at(message)
        return None if date is None else SentText(to=message.to, body=message.body or "", date=date,
                                                  sid=message.sid)


class ReplyReader:
    """The replies of one call as its result shows them: each read (intent, reply code) and kept unless
    it answers other codes only than the call's ``code`` (None: every reply is kept); a reply answering
    the call's code among others (a digest's) is shown with the call's code as its ``reply_code``. A reply
    whose code is not known yet is kept with ``reply_code`` null and read again the next time."""

    def __init__(self, attribution: Attribution, code: str | None) -> None:
        self.attribution = attribution
        self.code = code

    def kept(self, replies: Iterable[Reply]) -> list[Reply]:
        read = self.attribution.read_all(list(replies))
        code = self.code
        if code is None:
            return read
        return [own_code(r, code) for r in read if r.reply_code is None or r.answers(code)]

    def answers(self, reply: Reply) -> bool:
        """True when ``reply`` answers this call: the call's code is among its codes; without a call code,
        any reply (2.2.0's rule for Get Responses without ``incident_id``)."""
        return self.code is None or reply.answers(self.code)


def own_code(reply: Reply, code: str) -> Reply:
    """``reply`` as a call with ``code`` shows it: ``reply_code`` the call's code when it answers it."""
    return replace(reply, reply_code=code) if reply.answers(code) and reply.reply_code != code else reply


def refused_by(replies: Iterable[Reply], numbers: Sequence[str]) -> list[str]:
    """The numbers when every one of them has declined or opted out (its latest such reply), else []."""
    latest: dict[str, str | None] = {}
    for reply in replies:
        latest[reply.from_] = reply.intent
    return list(numbers) if all(latest.get(n) in REFUSALS for n in numbers) else []
