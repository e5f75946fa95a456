"""Sending one text to many recipients: parallel, isolated, and never twice.

:class:`SendJob` sends to the valid recipients with at most ``max_concurrency`` requests in flight,
one twilio Client per worker thread. Each recipient ends in exactly one :class:`SendOutcome`,
whatever goes wrong; results keep the input order.

Retries follow :mod:`fn_twilio.lib.errors`: a 429 and a connection that never reached Twilio are
retried with back-off (``Retry-After`` when Twilio sends one, else exponential with jitter) within a
time budget; anything that may have reached Twilio (5xx, read timeout, broken connection, an
unreadable answer) is reported as "may or may not have been sent" and never resent.
"""
from __future__ import annotations

import logging
import random
import threading
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, replace
from typing import Callable, Mapping, Optional, Sequence

from fn_twilio.lib.errors import MAY_HAVE_SENT, Failure, FailureKind, Retry, classify, with_response
from fn_twilio.lib.phone import Recipient, mask, mask_numbers
from fn_twilio.lib.records import SendOutcome
from fn_twilio.lib.twilio_client import ThreadLocalClients

LOG = logging.getLogger(__name__)

MAX_BODY_LENGTH = 1600
NO_SID = Failure(FailureKind.BAD_RESPONSE, f"Twilio answered without a message SID; {MAY_HAVE_SENT}",
                 Retry.AMBIGUOUS)
WHATSAPP = "whatsapp:"
def _last_response(client):
    """The raw answer to the client's last request, None when no answer came (timeout, refused...)."""
    return getattr(getattr(client, "http_client", None), "last_response", None)


@dataclass(frozen=True)
class RetryPolicy:
    """How long one recipient may keep retrying requests that are safe to repeat."""

    max_attempts: int = 5        # requests per recipient, the first included
    base_delay: float = 1.0      # first back-off, doubled at each attempt
    max_delay: float = 20.0      # longest single wait (a longer Retry-After is capped)
    budget: float = 60.0         # total seconds one recipient may spend waiting between attempts

    def backoff(self, attempt: int) -> float:
        """Exponential back-off with full jitter for the wait after ``attempt`` failed requests."""
        ceiling = min(self.max_delay, self.base_delay * (2 ** (attempt - 1)))
        return random.uniform(ceiling / 2, ceiling)


def message_params(settings, to: str, body: str) -> dict:
    """The create() arguments for one recipient: sender or Messaging Service, channel kept."""
    params = {"to": to, "body": body}
    if settings.messaging_service_sid and not settings.src_address:
        params["messaging_service_sid"] = settings.messaging_service_sid
    elif to.startswith(WHATSAPP) and not settings.src_address.startswith(WHATSAPP):
        params["from_"] = WHATSAPP + settings.src_address
    else:
        params["from_"] = settings.src_address
    return params


def send_one(client, settings, to: str, body: str, *, policy: RetryPolicy = RetryPolicy(),
             sleep: Callable[[float], bool] = None) -> SendOutcome:
    """Send ``body`` to one E.164 address; every failure ends in the returned outcome.

    ``sleep(seconds)`` waits between attempts and returns True when the job was cancelled.
    """
    sleep = sleep or (lambda seconds: threading.Event().wait(seconds))
    params = message_params(settings, to, body)
    waited = 0.0
    attempt = 0
    while True:
        attempt += 1
        try:
            message = client.messages.create(**params)
        except Exception as exc:  # one recipient's failure, of any kind, stays with that recipient
            failure = with_response(classify(exc, action="create", timeout=settings.timeout),
                                    _last_response(client), action="create")
        else:
            if message.sid:
                LOG.info("Twilio accepted an SMS to %s (%s)", mask(to), message.sid)
                return SendOutcome.sent(to, message)
            failure = with_response(NO_SID, _last_response(client), action="create")
        if failure.retry is Retry.SAFE and attempt < policy.max_attempts:
            delay = failure.retry_after if failure.retry_after is not None else policy.backoff(attempt)
            delay = min(delay, policy.max_delay)
            if waited + delay <= policy.budget:
                # only %s: resilient-circuits' RedactingFilter turns arguments into text before formatting
                LOG.info("SMS to %s not sent yet (%s); retrying in %s s", mask(to), failure.kind.value,
                         f"{delay:.1f}")
                waited += delay
                if not sleep(delay):
                    continue
        LOG.warning("SMS to %s failed: %s", mask(to), mask_numbers(failure.message))
        if failure.retry is Retry.SAFE and attempt > 1:
            failure = _gave_up(failure, attempt)
        return SendOutcome.failed(to, failure)


def _gave_up(failure: Failure, attempts: int) -> Failure:
    return replace(failure, message=f"{failure.message}; not sent after {attempts} attempts")


class SendJob:
    """Sends ``body`` to ``recipients`` in the background; :meth:`wait` reports progress."""

    def __init__(self, settings, recipients: Sequence[Recipient], body: str, *,
                 policy: RetryPolicy = RetryPolicy(), client_source: Optional[ThreadLocalClients] = None,
                 settled: Optional[Mapping[str, SendOutcome]] = None):
        self.settings = settings
        self.settled = dict(settled or {})   # recipient -> outcome known without sending (see reconcile)
        self.recipients = list(recipients)
        self.body = body
        self.policy = policy
        self._clients = client_source or ThreadLocalClients(settings)
        self._own_clients = client_source is None
        self._cancelled = threading.Event()
        self._outcomes: list[Optional[SendOutcome]] = [None] * len(self.recipients)
        self._futures: dict[Future, int] = {}
        self._executor: Optional[ThreadPoolExecutor] = None
        self._lock = threading.Lock()
        self.sent = 0
        self.failed = 0

    @property
    def total(self) -> int:
        """How many recipients need a request (the valid ones)."""
        return sum(1 for r in self.recipients if r.valid)

    @property
    def done(self) -> int:
        with self._lock:
            return self.sent + self.failed

    def start(self) -> "SendJob":
        for index, recipient in enumerate(self.recipients):
            if not recipient.valid:
                self._outcomes[index] = SendOutcome.invalid(recipient.raw, recipient.reason)
        todo = [i for i, r in enumerate(self.recipients) if r.valid]
        if todo:
            workers = max(1, min(int(self.settings.max_concurrency), len(todo)))
            self._executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="fn_twilio-send")
            for index in todo:
                future = self._executor.submit(self._send, index)
                self._futures[future] = index
        return self

    def _send(self, index: int) -> SendOutcome:
        to = self.recipients[index].e164
        if to in self.settled:
            outcome = self.settled[to]
        elif self._cancelled.is_set():
            outcome = SendOutcome.failed(to, _cancelled_failure())
        else:
            outcome = send_one(self._clients.get(), self.settings, to, self.body, policy=self.policy,
                               sleep=self._cancelled.wait)
        with self._lock:
            self._outcomes[index] = outcome
            if outcome.success:
                self.sent += 1
            else:
                self.failed += 1
        return outcome

    def wait(self, timeout: Optional[float] = None) -> bool:
        """Wait up to ``timeout`` s; True when every recipient has its outcome."""
        pending = [f for f in self._futures if not f.done()]
        if pending:
            wait(pending, timeout=timeout)
        finished = all(f.done() for f in self._futures)
        if finished:
            self._shutdown()
        return finished

    def run(self) -> list[SendOutcome]:
        """Start, wait for every recipient and return the outcomes (for callers without progress)."""
        self.start()
        self.wait(None)
        return self.outcomes()

    def outcomes(self) -> list[SendOutcome]:
        with self._lock:
            missing = [i for i, o in enumerate(self._outcomes) if o is None]
            if missing:
                raise RuntimeError(f"{len(missing)} recipients have no outcome yet")
            return list(self._outcomes)

    def cancel(self):
        """Stop retrying and starting sends; requests already in flight finish."""
        self._cancelled.set()

    def _shutdown(self):
        if self._executor is not None:
            self._executor.shutdown(wait=True)
            self._executor = None
            if self._own_clients:
                self._clients.close()


def _cancelled_failure() -> Failure:
    return Failure(FailureKind.UNREACHABLE, "not sent: the call was cancelled before this SMS was sent",
                   Retry.NEVER)
