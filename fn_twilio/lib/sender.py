"""Sending one text to many recipients: parallel, isolated, and never twice.

:class:`SendJob` sends to the valid recipients with at most ``max_concurrency`` requests in flight,
one twilio Client per worker thread. Each recipient ends in exactly one :class:`SendOutcome`,
whatever goes wrong; results keep the input order.

Retries follow :mod:`fn_twilio.lib.errors`: a 429 and a connection that never reached Twilio are
retried with back-off (``Retry-After`` when Twilio sends one, else exponential with jitter) within a
time budget; anything that may have reached Twilio (5xx, read timeout, broken connection, an
unreadable answer) is reported as "may or may not have been sent" and never resent.

A job is used as a context manager: leaving the ``with`` block (the call finished, failed, or its
generator was closed at shutdown) cancels what has not started, starts no new request, waits for the
requests in flight and leaves no worker thread behind. Recipients already sent (found after a
redelivery) are passed as ``already_sent`` and reported with the outcome given, without a request.

With a ``limiter`` (:class:`fn_twilio.lib.storm.Limiter`), each recipient goes through it: sent when
the number has room under the storm limit, else held for a digest (``held`` counts those waiting;
the outcome is the digest's, ``bundled`` true) and reported not sent when the job is closed first.
``line`` is what the text becomes in a digest (by default the text's start). A caller that goes on
with other work while texts are held (a page reading replies) waits with ``wait_settled()`` for every
recipient to have its outcome or be held, then reads ``outcome_of(index)`` as held texts go out;
``on_change`` is called (on a worker thread) whenever a recipient gets its outcome or is held.
"""
from __future__ import annotations

import logging
import random
import threading
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, replace
from typing import Any
from collections.abc import Callable, Iterator, Mapping, Sequence

from fn_twilio.lib.clock import SYSTEM_CLOCK, Clock
from fn_twilio.lib.errors import Action, Failure, FailureKind, Retry, classify, missing_sid
from fn_twilio.lib.intents import Keywords, ack_request
from fn_twilio.lib.phone import Recipient, mask, mask_numbers
from fn_twilio.lib.records import SendOutcome
from fn_twilio.lib.storm import DigestLine, Limiter
from fn_twilio.lib.twilio_client import ThreadLocalClients

LOG = logging.getLogger(__name__)

MAX_BODY_LENGTH = 1600
WHATSAPP = "whatsapp:"


def _last_response(client: Any) -> Any:
    """The raw answer to the client's last request, None when no answer came (timeout, refused...)."""
    return getattr(getattr(client, "http_client", None), "last_response", None)


@dataclass(frozen=True)
class RetryPolicy:
    """How long one recipient may keep retrying requests that are safe to repeat."""

    max_attempts: int = 5        # requests per recipient, the first included
    base_delay: float = 1.0      # first back-off, doubled at each attempt
    max_delay: float = 20.0      # longest single wait (a longer Retry-After is capped)
    budget: float = 60.0         # total seconds one recipient may spend waiting between attempts
    jitter: bool = True          # full jitter (half to all of the ceiling); False for the ceiling itself

    def backoff(self, attempt: int) -> float:
        """Exponential back-off with full jitter for the wait after ``attempt`` failed requests."""
        ceiling = min(self.max_delay, self.base_delay * (2 ** (attempt - 1)))
        return random.uniform(ceiling / 2, ceiling) if self.jitter else ceiling


def with_ack_request(body: str, code: str, keywords: Keywords) -> str:
    """``body`` ending with the acknowledgement request for ``code`` (contract §9.2); ValueError when
    the whole text would pass :data:`MAX_BODY_LENGTH` (the request counts toward it and the segments)."""
    text = body.rstrip() + ack_request(code, keywords)
    if len(text) > MAX_BODY_LENGTH:
        raise ValueError(f"the text with the acknowledgement request has {len(text)} characters, more than "
                         f"Twilio's limit of {MAX_BODY_LENGTH} (the request takes "
                         f"{len(ack_request(code, keywords))})")
    return text


def message_params(settings: Any, to: str, body: str) -> dict[str, str]:
    """The create() arguments for one recipient: sender or Messaging Service, channel kept."""
    params = {"to": to, "body": body}
    if settings.messaging_service_sid and not settings.src_address:
        params["messaging_service_sid"] = settings.messaging_service_sid
    elif to.startswith(WHATSAPP) and not settings.src_address.startswith(WHATSAPP):
        params["from_"] = WHATSAPP + settings.src_address
    else:
        params["from_"] = settings.src_address
    return params


@dataclass(frozen=True)
class Created:
    """What :func:`create_with_retries` came to: the resource Twilio made, or the failure; and how many
    requests it took."""

    made: Any
    failure: Failure | None
    attempts: int


def create_with_retries(create: Callable[[], Any], client: Any, settings: Any, *, action: Action, what: str,
                        undone: str, policy: RetryPolicy = RetryPolicy(), clock: Clock = SYSTEM_CLOCK,
                        cancelled: threading.Event | None = None) -> Created:
    """The one retry loop of every create (an SMS, a call's execution): ``create()`` is made again only
    when Twilio cannot have processed it (a 429, after ``Retry-After`` or a back-off; a connection that
    never reached Twilio), within ``policy``; anything that may have reached Twilio is never repeated.
    ``what`` names the resource in log lines (``SMS to +35386*****67``), ``undone`` the failure's
    words after retries (``not sent``). Back-off waits go through ``clock``; a set ``cancelled`` ends them
    and stops further attempts."""
    cancelled = cancelled or threading.Event()
    waited = 0.0
    attempt = 0
    while True:
        attempt += 1
        try:
            made = create()
        except Exception as exc:  # one recipient's failure, of any kind, stays with that recipient
            failure = classify(exc, action=action, timeout=settings.timeout, response=_last_response(client))
        else:
            if made.sid:
                return Created(made, None, attempt)
            failure = missing_sid(_last_response(client), action)
        if failure.retry is Retry.SAFE and attempt < policy.max_attempts and not cancelled.is_set():
            delay = failure.retry_after if failure.retry_after is not None else policy.backoff(attempt)
            delay = min(delay, policy.max_delay)
            if waited + delay <= policy.budget:
                # only %s: resilient-circuits' RedactingFilter turns arguments into text before formatting
                LOG.info("%s %s yet (%s); retrying in %s s", what, undone, failure.kind.value, f"{delay:.1f}")
                waited += delay
                if not clock.wait(cancelled, delay):
                    continue
        LOG.warning("%s failed: %s", what, mask_numbers(failure.message))
        if failure.retry is Retry.SAFE and attempt > 1:
            failure = replace(failure, message=f"{failure.message}; {undone} after {attempt} attempts")
        return Created(None, failure, attempt)


def send_one(client: Any, settings: Any, to: str, body: str, *, policy: RetryPolicy = RetryPolicy(),
             clock: Clock = SYSTEM_CLOCK, cancelled: threading.Event | None = None) -> SendOutcome:
    """Send ``body`` to one E.164 address; every failure ends in the returned outcome
    (:func:`create_with_retries`'s rules)."""
    params = message_params(settings, to, body)
    created = create_with_retries(lambda: client.messages.create(**params), client, settings,
                                  action=Action.CREATE, what=f"SMS to {mask(to)}", undone="not sent",
                                  policy=policy, clock=clock, cancelled=cancelled)
    if created.failure is not None:
        return SendOutcome.failed(to, created.failure)
    LOG.info("Twilio accepted an SMS to %s (%s)", mask(to), created.made.sid)
    return SendOutcome.sent(to, created.made)


@dataclass(frozen=True)
class SendProgress:
    """Where a job stands (for status messages)."""

    sent: int
    failed: int
    total: int
    held: int = 0        # recipients waiting for a digest (storm limit)


CANCELLED = Failure(FailureKind.UNREACHABLE, "not sent: the call was cancelled before this SMS was sent",
                    Retry.NEVER)


class SendJob:
    """Sends ``body`` to ``recipients`` in the background; use it as a context manager.

    ``already_sent`` maps an E.164 number to the outcome to report for it without sending (the
    recipients a previous run of the same call already sent to). ``client_source`` gives each worker
    its twilio Client (default: one per thread for ``settings``). ``limiter`` and ``line``: the storm
    limit (see the module docstring).
    """

    def __init__(self, settings: Any, recipients: Sequence[Recipient], body: str, *,
                 policy: RetryPolicy = RetryPolicy(), clock: Clock = SYSTEM_CLOCK,
                 client_source: ThreadLocalClients | None = None,
                 already_sent: Mapping[str, SendOutcome] | None = None,
                 limiter: Limiter | None = None, line: DigestLine | None = None,
                 on_change: Callable[[], None] | None = None) -> None:
        self.settings = settings
        self.recipients = list(recipients)
        self.body = body
        self.policy = policy
        self.clock = clock
        self.already_sent = dict(already_sent or {})
        self._clients = client_source or ThreadLocalClients(settings)
        self._own_clients = client_source is None
        self._cancelled = threading.Event()
        self._outcomes: list[SendOutcome | None] = [None] * len(self.recipients)
        self._futures: dict[Future[SendOutcome], int] = {}
        self._executor: ThreadPoolExecutor | None = None
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._on_change = on_change
        self.sent = 0
        self.failed = 0
        self._held: set[int] = set()     # recipients held for a digest, by index
        self.limiter = limiter
        self.line = line if line is not None else DigestLine.for_text(body)
        self._leased = False

    @property
    def total(self) -> int:
        """How many recipients need a request (the valid ones)."""
        return sum(1 for r in self.recipients if r.valid)

    def start(self) -> SendJob:
        todo = []
        for index, recipient in enumerate(self.recipients):
            if not recipient.valid:
                self._outcomes[index] = SendOutcome.invalid(recipient.raw, recipient.reason or "invalid")
            elif recipient.e164 in self.already_sent:
                self._record(index, self.already_sent[recipient.e164])
            else:
                todo.append(index)
        if todo:
            if self.limiter is not None:
                self.limiter.open()
                self._leased = True
            workers = max(1, min(int(self.settings.max_concurrency), len(todo)))
            self._executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="fn_twilio-send")
            for index in todo:
                self._futures[self._executor.submit(self._send, index)] = index
        return self

    def __enter__(self) -> SendJob:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _record(self, index: int, outcome: SendOutcome) -> None:
        with self._lock:
            self._outcomes[index] = outcome
            if outcome.success:
                self.sent += 1
            else:
                self.failed += 1
            self._changed.notify_all()
        self._tell()

    def _tell(self) -> None:
        if self._on_change is not None:
            self._on_change()

    def _send(self, index: int) -> SendOutcome:
        to = self.recipients[index].e164 or ""
        if self._cancelled.is_set():
            outcome = SendOutcome.failed(to, CANCELLED)
        elif self.limiter is not None:
            outcome = self.limiter.send(to, self.body, self.line, lambda body: self._send_text(to, body),
                                        cancelled=self._cancelled, on_hold=lambda: self._count_held(index, 1),
                                        on_release=lambda: self._count_held(index, -1))
        else:
            outcome = self._send_text(to, self.body)
        self._record(index, outcome)
        return outcome

    def _send_text(self, to: str, body: str) -> SendOutcome:
        return send_one(self._clients.get(), self.settings, to, body, policy=self.policy, clock=self.clock,
                        cancelled=self._cancelled)

    def _count_held(self, index: int, change: int) -> None:
        with self._lock:
            if change > 0:
                self._held.add(index)
            else:
                self._held.discard(index)
            self._changed.notify_all()
        if change > 0:
            self._tell()

    def settled(self) -> bool:
        """True when every recipient has its outcome or is held for a digest."""
        with self._lock:
            return self._settled()

    def _settled(self) -> bool:
        return all(o is not None or i in self._held for i, o in enumerate(self._outcomes))

    def wait_settled(self, timeout: float | None = None) -> bool:
        """Wait up to ``timeout`` s (None: as long as it takes; the requests in flight are bounded by the
        HTTP timeout and the retry policy) for every recipient to have its outcome or be held; True
        when they do."""
        with self._changed:
            return self._changed.wait_for(self._settled, timeout)

    def outcome_of(self, index: int) -> SendOutcome | None:
        """The outcome of the recipient at ``index`` (in ``recipients``), or None while it has none."""
        with self._lock:
            return self._outcomes[index]

    def is_held(self, index: int) -> bool:
        """True while the recipient at ``index`` is held for a digest."""
        with self._lock:
            return index in self._held

    def wait(self, timeout: float | None = None) -> bool:
        """Wait up to ``timeout`` s; True when every recipient has its outcome."""
        pending = [f for f in self._futures if not f.done()]
        if pending:
            wait(pending, timeout=timeout)
        finished = all(f.done() for f in self._futures)
        if finished:
            self._shutdown()
        return finished

    def progress(self, every: float) -> Iterator[SendProgress]:
        """Yield where the job stands every ``every`` s until every recipient has its outcome."""
        while not self.wait(every):
            yield self.snapshot()

    def snapshot(self) -> SendProgress:
        with self._lock:
            return SendProgress(self.sent, self.failed, self.total, len(self._held))

    def run(self) -> list[SendOutcome]:
        """Send, wait for every recipient and return the outcomes (for callers without progress)."""
        with self:
            self.wait(None)
            return self.outcomes()

    def outcomes(self) -> list[SendOutcome]:
        with self._lock:
            missing = [i for i, o in enumerate(self._outcomes) if o is None]
            if missing:
                raise RuntimeError(f"{len(missing)} recipients have no outcome yet")
            return [o for o in self._outcomes if o is not None]

    def cancel(self) -> None:
        """Stop retrying and starting sends (texts held for a digest are not sent); requests already
        in flight finish."""
        self._cancelled.set()
        if self.limiter is not None:
            self.limiter.wake()

    def close(self) -> None:
        """Cancel what has not started and wait for the requests in flight: no worker is left."""
        self.cancel()
        self._shutdown()
        with self._lock:
            for index, outcome in enumerate(self._outcomes):
                if outcome is None:
                    self._outcomes[index] = SendOutcome.failed(self.recipients[index].e164 or "", CANCELLED)

    def _shutdown(self) -> None:
        if self._executor is not None:
            self._executor.shutdown(wait=True, cancel_futures=True)
            self._executor = None
            if self._own_clients:
                self._clients.close()
        if self._leased and self.limiter is not None:
            self._leased = False
            self.limiter.close()
