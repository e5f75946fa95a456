"""After a crash: which recipients a redelivered send already reached, read from Twilio's outbound log.

resilient-circuits acknowledges a function message only once the function has returned. When the
process dies in the middle of a send, the broker delivers the same message again, marked
``redelivered:true`` and with its original ``timestamp`` header (ActiveMQ keeps both). Twilio's
Messages API has no idempotency key, so the second run asks Twilio what the first one sent.

Cost. One list per sender address (``From``; one per Messaging Service when there is no sender
address), newest first, ``page_size`` records a request, stopping at the first message older than the
original timestamp minus ``skew``. Its cost is what the sender sent since the message was first
delivered, not the account's history, and it never reads more than ``max_pages`` pages. One list for
the whole send is cheaper than one ``To``+``From`` list per recipient (40 requests for 40 recipients).
No ``DateSent>`` filter is sent: a message still queued has no ``date_sent`` and could be filtered out,
which is exactly the message a crash leaves behind. The stop test uses ``date_sent``, else
``date_created``, the field Twilio sorts by.

A recipient whose part of the log could not be read to the start of the window (the page cap was
reached, or the list failed) is not sent to again: it is reported as failed, "may or may not have
been sent", so that no one gets the text twice.
"""
from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta, timezone
from typing import Any

from fn_twilio.lib.errors import MAY_HAVE_SENT, Action, Failure, FailureKind, Retry, classify
from fn_twilio.lib.intents import requested_code
from fn_twilio.lib.records import NOT_SENT, SendOutcome, listed_at, utc_date
from fn_twilio.lib.sender import message_params, with_ack_request
from fn_twilio.lib.storm import DigestLine, digest_lines, requested_codes
from fn_twilio.lib.twilio_client import client_session

SKEW = timedelta(minutes=2)      # clock difference allowed between the broker and Twilio
PAGE_SIZE = 1000                 # Twilio's largest page
MAX_PAGES = 3                    # at most this many list requests per sender address


@dataclass(frozen=True)
class Delivery:
    """What the broker says about one delivery of a function message."""

    redelivered: bool = False
    original: datetime | None = None    # the message's timestamp: when it was first put on the queue

    @classmethod
    def from_headers(cls, headers: Mapping[str, Any]) -> Delivery:
        """From the STOMP MESSAGE frame's headers (``redelivered``, ``timestamp`` in epoch ms)."""
        redelivered = str(headers.get("redelivered", "")).strip().lower() == "true"
        original = None
        try:
            original = datetime.fromtimestamp(int(str(headers.get("timestamp", "")).strip()) / 1000,
                                              timezone.utc)
        except (TypeError, ValueError, OverflowError, OSError):
            original = None
        return cls(redelivered=redelivered, original=original)


@dataclass(frozen=True)
class Wanted:
    """One recipient to look for: the message the first run would have created for it."""

    to: str
    from_: str | None = None                    # the sender address, or None with a Messaging Service
    messaging_service_sid: str | None = None


def _matches(message: Any, wanted: Wanted, body: str, since: datetime) -> bool:
    if not str(getattr(message, "direction", "") or "").startswith("outbound"):
        return False
    if getattr(message, "to", None) != wanted.to or (getattr(message, "body", None) or "") != body:
        return False
    if (getattr(message, "status", None) or "") in NOT_SENT:
        return False
    if wanted.from_ is not None:
        if getattr(message, "from_", None) != wanted.from_:
            return False
    elif getattr(message, "messaging_service_sid", None) != wanted.messaging_service_sid:
        return False
    created = utc_date(getattr(message, "date_created", None))
    return created is None or created >= since


def _unverified(to: str, why: str, *, digest: bool = False) -> SendOutcome:
    how = f"{MAY_HAVE_SENT} in a digest" if digest else MAY_HAVE_SENT
    failure = Failure(FailureKind.BAD_RESPONSE, f"not sent again after a redelivery: {why}; {how} by the "
                      "interrupted run", Retry.AMBIGUOUS)
    return SendOutcome.failed(to, failure)


class LogUnreadable(Exception):
    """Twilio's outbound log could not be read far enough to tell what an interrupted run sent."""


def unverified(recipients: Iterable[str], why: str) -> dict[str, SendOutcome]:
    """Every recipient as "may have been sent by the interrupted run" (not sent again), with ``why``."""
    return {to: _unverified(to, why) for to in recipients}


class _LogTooLong(Exception):
    """The outbound log since the first delivery is longer than the pages a scan may read."""


def _outbound_log(client: Any, from_: str | None, since: datetime, *, page_size: int,
                  max_pages: int) -> Iterator[Any]:
    """The sender's messages (``From`` = ``from_``; every message when None), newest first, down to the
    first one listed before ``since``; :class:`_LogTooLong` past ``max_pages`` pages."""
    page = client.messages.page(from_=from_, page_size=page_size) if from_ else \
        client.messages.page(page_size=page_size)
    pages = 1
    while True:
        for message in page:
            listed = listed_at(message)   # None: unknown, keep reading
            if listed is not None and listed < since:
                return
            yield message
        if not page.next_page_url:
            return
        if pages >= max_pages:
            raise _LogTooLong(f"Twilio's outbound log since the first delivery is longer than {max_pages} "
                              f"pages of {page_size} messages")
        page = page.next_page()
        if page is None:
            return
        pages += 1


def _scan(client: Any, group: Sequence[Wanted], body: str, since: datetime, *, page_size: int,
          max_pages: int, timeout: float | None) -> dict[str, SendOutcome]:
    """Outcomes for the recipients of one sender address; a recipient not found is left out."""
    todo = {w.to: w for w in group}
    found: dict[str, SendOutcome] = {}
    try:
        for message in _outbound_log(client, group[0].from_, since, page_size=page_size, max_pages=max_pages):
            to = getattr(message, "to", None)
            wanted = todo.get(to) if isinstance(to, str) else None
            if wanted is not None and _matches(message, wanted, body, since):
                found[wanted.to] = replace(SendOutcome.sent(wanted.to, message), already_sent=True)
                del todo[wanted.to]
                if not todo:
                    return found
        return found
    except _LogTooLong as exc:
        why = str(exc)
    except Exception as exc:  # any failure to read the log leaves these recipients unverified
        failure = classify(exc, action=Action.READ, timeout=timeout)
        why = f"Twilio's outbound log could not be read ({failure.message})"
    for to in todo:
        found[to] = _unverified(to, why)
    return found


def settled_outcomes(client: Any, wanted: Iterable[Wanted], body: str, delivery: Delivery, *,
                     skew: timedelta = SKEW, page_size: int = PAGE_SIZE, max_pages: int = MAX_PAGES,
                     timeout: float | None = None) -> dict[str, SendOutcome]:
    """For a redelivered message: {recipient: outcome} for every recipient that must not be sent to
    (already sent: a sent outcome with ``already_sent``; not verifiable: a "may have sent" failure).
    Empty for a first delivery. ``client`` is a twilio ``Client`` (``client.messages.page``)."""
    if not delivery.redelivered:
        return {}
    wanted = list(wanted)
    if delivery.original is None:
        return {w.to: _unverified(w.to, "the redelivered message carries no original timestamp")
                for w in wanted}
    since = delivery.original - skew
    groups: dict[tuple[str | None, str | None], list[Wanted]] = {}
    for w in wanted:
        groups.setdefault((w.from_, None if w.from_ else w.messaging_service_sid), []).append(w)
    settled: dict[str, SendOutcome] = {}
    for group in groups.values():
        settled.update(_scan(client, group, body, since, page_size=page_size, max_pages=max_pages,
                             timeout=timeout))
    return settled


def settled_for_send(settings: Any, recipients: Iterable[str], body: str, delivery: Delivery,
                     client: Any = None) -> dict[str, SendOutcome]:
    """:func:`settled_outcomes` for a send with ``settings``: what the first run would have created
    for each E.164 recipient (``message_params``), looked up with ``client`` (built when None)."""
    if not delivery.redelivered:
        return {}
    wanted = []
    for to in recipients:
        params = message_params(settings, to, body)
        wanted.append(Wanted(to, params.get("from_"), params.get("messaging_service_sid")))
    with client_session(settings, client) as session:
        return settled_outcomes(session, wanted, body, delivery, timeout=settings.timeout)


def first_run_code(settings: Any, recipients: Iterable[str], delivery: Delivery,
                   text_for: Callable[[str], str], client: Any = None,
                   line_for: Callable[[str], str] | None = None) -> str | None:
    """For a redelivered call that asked for an acknowledgement with a random code (contract §13.3): the
    code its first run texted, read from Twilio's outbound log (the oldest text since the original
    timestamp, to one of ``recipients``, whose body is ``text_for(code)`` for the code it asks for, or a
    digest of the storm limit carrying the line ``line_for(code)`` for one of the codes it asks for), or
    None when the first run texted nobody. :class:`LogUnreadable` when the log cannot be read (the caller
    then texts nobody: a new code could send everyone a second text)."""
    if not delivery.redelivered or delivery.original is None:
        return None
    wanted = set(recipients)
    senders = {message_params(settings, to, "").get("from_") for to in wanted}
    found: tuple[datetime, str] | None = None
    with client_session(settings, client) as session:
        try:
            for from_ in senders:
                for message in _outbound_log(session, from_, delivery.original - SKEW, page_size=PAGE_SIZE,
                                             max_pages=MAX_PAGES):
                    body = getattr(message, "body", None) or ""
                    if getattr(message, "to", None) not in wanted:
                        continue
                    code = _first_run_code_of(body, text_for, line_for)
                    if code is None:
                        continue
                    if not str(getattr(message, "direction", "") or "").startswith("outbound"):
                        continue
                    created = utc_date(getattr(message, "date_created", None)) or delivery.original
                    if found is None or created < found[0]:
                        found = (created, code)
        except _LogTooLong as exc:
            raise LogUnreadable(str(exc)) from None
        except Exception as exc:  # unreadable: the first run's code cannot be known
            failure = classify(exc, action=Action.READ, timeout=settings.timeout)
            raise LogUnreadable(f"Twilio's outbound log could not be read ({failure.message})") from None
    return found[1] if found else None


def first_run_request_code(settings: Any, recipients: Iterable[str], delivery: Delivery,
                           message: str) -> str | None:
    """:func:`first_run_code` for a call whose text is ``message`` with the acknowledgement request for a
    random code (``with_ack_request``), alone or in a digest."""
    def asking(code: str) -> str:
        return with_ack_request(message, code, settings.keywords)

    return first_run_code(settings, recipients, delivery, asking, line_for=DigestLine.rendered_for(asking))


def settled_by_digest(settings: Any, recipients: Iterable[str], line: DigestLine, delivery: Delivery, *,
                      client: Any = None, page_size: int = PAGE_SIZE,
                      max_pages: int = MAX_PAGES) -> dict[str, SendOutcome]:
    """For a redelivered call with the storm limit: {recipient: outcome} for each recipient a digest in
    Twilio's outbound log since the original delivery already carries ``line`` to (``already_sent`` and
    ``bundled`` true), read as :func:`settled_outcomes` reads (one list of the sender, newest first, at
    most ``max_pages`` pages); a recipient whose part of the log could not be read is reported "may have
    been sent" and not sent again. Empty for a first delivery."""
    todo = list(dict.fromkeys(recipients))
    if not delivery.redelivered or delivery.original is None or not todo:
        return {}
    since = delivery.original - SKEW
    rendered = line.render()
    found: dict[str, SendOutcome] = {}
    with client_session(settings, client) as session:
        try:
            for message in _outbound_log(session, settings.src_address, since, page_size=page_size,
                                         max_pages=max_pages):
                if _carries(message, settings, todo, rendered, since) and message.to not in found:
                    found[message.to] = replace(SendOutcome.sent(message.to, message), already_sent=True,
                                                bundled=True)
                    if len(found) == len(todo):
                        return found
            return found
        except _LogTooLong as exc:
            why = str(exc)
        except Exception as exc:  # a log that cannot be read leaves these recipients unverified
            why = f"Twilio's outbound log could not be read ({classify(exc, action=Action.READ).message})"
    return {**{to: _unverified(to, why, digest=True) for to in todo if to not in found}, **found}


def _carries(message: Any, settings: Any, todo: Sequence[str], rendered: str, since: datetime) -> bool:
    """``message`` is an outbound digest of this sender since ``since``, to one of ``todo``, carrying the
    line ``rendered``."""
    if not str(getattr(message, "direction", "") or "").startswith("outbound"):
        return False
    if getattr(message, "to", None) not in todo or (getattr(message, "status", None) or "") in NOT_SENT:
        return False
    if settings.src_address:
        if getattr(message, "from_", None) != settings.src_address:
            return False
    elif getattr(message, "messaging_service_sid", None) != settings.messaging_service_sid:
        return False
    created = utc_date(getattr(message, "date_created", None))
    if created is not None and created < since:
        return False
    return rendered in (digest_lines(getattr(message, "body", None)) or [])


def _first_run_code_of(body: str, text_for: Callable[[str], str],
                       line_for: Callable[[str], str] | None) -> str | None:
    """The code a text of the first run asked for: the text itself, or a digest carrying its line."""
    lines = digest_lines(body)
    if lines is None:
        code = requested_code(body)
        return code if code is not None and body == _text(text_for, code) else None
    if line_for is None:
        return None
    for code in requested_codes(body):
        try:
            if line_for(code) in lines:
                return code
        except ValueError:   # no text with that code could be sent (too long): not the first run's
            continue
    return None


def _text(text_for: Callable[[str], str], code: str) -> str | None:
    try:
        return text_for(code)
    except ValueError:   # no text with that code could be sent (too long): not the first run's
        return None


def describe(settled: Mapping[str, SendOutcome]) -> str:
    """A status line for SOAR about a redelivered call's settled recipients."""
    already = sum(1 for o in settled.values() if o.already_sent)
    unknown = len(settled) - already
    text = f"Redelivered call: {already} recipient{'s' if already != 1 else ''} already sent by the " \
           "interrupted run, not sent again"
    if unknown:
        text += f"; {unknown} could not be checked in Twilio's log and are not sent again"
    return text
