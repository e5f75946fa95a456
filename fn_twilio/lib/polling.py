"""What every shared poller of the core has, whatever it polls (replies, delivery statuses...).

* A process-wide **registry**: calls that would make the same requests with the same credentials
  (account, credential digest, base URL, sender, interval and the poller's ``kind``) share one
  poller. :func:`register` returns the running one or starts a new one.
* A **thread that cannot die silently**: an exception in a look (a bug, an answer that cannot be
  parsed, a failed request) is counted and logged and, when lasting, reaches every waiting watch as
  a :class:`~fn_twilio.lib.errors.Failure`; an exception that escapes even that marks the poller
  dead, fails its watches with a clear reason and leaves the registry, and the next registration
  starts a new poller.
* **Failure counting**: consecutive failed looks; a permanent failure, or
  :data:`MAX_CONSECUTIVE_FAILURES` in a row, ends the watches' wait with the failure.
* A **page cap**: each listing a look makes reads at most :data:`MAX_PAGES_PER_LOOK` pages (the look
  gets a :class:`PageBudget` for its shared listing; :meth:`SharedPoller.listing_budget` gives one for
  each further listing, such as one number's own first look); what does not fit waits for the next
  interval.

A subclass sets ``kind`` and implements :meth:`SharedPoller.look`; its watches subclass
:class:`Watch`.
"""
from __future__ import annotations

import hashlib
import logging
import threading
from typing import Any, Callable, ClassVar, Generic, TypeVar

from fn_twilio.lib.clock import SYSTEM_CLOCK, Clock
from fn_twilio.lib.errors import Action, Failure, FailureKind, Retry, classify
from fn_twilio.lib.phone import mask_numbers
from fn_twilio.lib.twilio_client import build_client, close_client

LOG = logging.getLogger(__name__)

MAX_CONSECUTIVE_FAILURES = 5   # failed looks in a row, worth retrying, before the watches are told
MAX_PAGES_PER_LOOK = 5         # pages one listing of a look may read; the rest waits for the next interval

ClientFactory = Callable[[Any], Any]


class PageBudget:
    """How many more list requests the current look may make."""

    def __init__(self, pages: int = MAX_PAGES_PER_LOOK):
        self.left = pages
        self.used = 0

    def take(self) -> bool:
        """Spend one request; False (nothing spent) when the look has used its cap."""
        if self.left <= 0:
            return False
        self.left -= 1
        self.used += 1
        return True


_W = TypeVar("_W", bound="Watch")


class Watch:
    """One call's interest in what a poller finds. Thread-safe; subclasses add what they collect.

    Subclasses override :meth:`has_news` (True when the waiting call has something to report).
    """

    def __init__(self, clock: Clock = SYSTEM_CLOCK) -> None:
        self.clock = clock
        self.changed = threading.Condition()
        self._looks = 0
        self._error: Failure | None = None
        self._closed = False
        self._poller: SharedPoller[Any] | None = None

    # -- read by the waiting call ------------------------------------------------------------
    @property
    def looks(self) -> int:
        """How many completed looks have covered this watch."""
        with self.changed:
            return self._looks

    @property
    def error(self) -> Failure | None:
        with self.changed:
            return self._error

    def has_news(self) -> bool:
        return False

    def wait(self, timeout: float) -> bool:
        """Wait up to ``timeout`` s for news or an error; True when there is one to report."""
        with self.changed:
            return self.clock.wait_for(self.changed, lambda: self.has_news() or self._error is not None,
                                       timeout)

    def wait_for_look(self, timeout: float) -> bool:
        """Wait up to ``timeout`` s until a look has covered this watch (or it failed)."""
        with self.changed:
            return self.clock.wait_for(self.changed, lambda: self._looks > 0 or self._error is not None,
                                       timeout)

    def close(self) -> None:
        """Stop waiting; the poller forgets this watch (and stops when it was the last)."""
        if not self._closed:
            self._closed = True
            if self._poller is not None:
                self._poller.remove(self)

    def __enter__(self: _W) -> _W:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- written by the poller ---------------------------------------------------------------
    def looked(self) -> None:
        """A look covering this watch completed."""
        with self.changed:
            self._looks += 1
            self.changed.notify_all()

    def fail(self, failure: Failure) -> None:
        with self.changed:
            self._error = failure
            self.changed.notify_all()


W = TypeVar("W", bound=Watch)


class SharedPoller(Generic[W]):
    """One thread polling Twilio for every watch registered on one (account, sender, kind)."""

    kind: ClassVar[str] = "poller"

    def __init__(self, settings: Any, key: tuple[Any, ...], *, client_factory: ClientFactory = build_client,
                 clock: Clock = SYSTEM_CLOCK, page_cap: int = MAX_PAGES_PER_LOOK,
                 autostart: bool = True) -> None:
        self.settings = settings
        self.key = key
        self.interval = float(settings.poll_interval)
        self.clock = clock
        self.page_cap = page_cap
        self._client_factory = client_factory
        self.lock = threading.RLock()
        self.watches: list[W] = []
        self.fresh: list[W] = []            # registered, not yet covered by a look
        self._wake = threading.Event()
        self.failures = 0                   # consecutive failed looks
        self.requests = 0                   # list requests made (diagnostics and benchmarks)
        self.largest_look = 0               # the most pages one listing of a look read (<= page_cap)
        self._budgets: list[PageBudget] = []
        self.accepting = True
        self.dead: BaseException | None = None
        self._thread: threading.Thread | None = None
        self._autostart = autostart   # False: no thread; the owner calls look_once() (tests)

    # -- what a kind of poller implements ------------------------------------------------------
    def look(self, client: Any, watches: list[W], fresh: list[W], budget: PageBudget) -> None:
        """One look for ``watches`` (``fresh`` ones have had none yet). Raise on failure."""
        raise NotImplementedError

    # -- registration --------------------------------------------------------------------------
    @property
    def alive(self) -> bool:
        return self.accepting and self.dead is None and (self._thread is None or self._thread.is_alive())

    def add(self, watch: W, *, fresh: bool = True) -> None:
        """Register ``watch``; ``fresh`` asks for a look for it now (else the next look covers it)."""
        with self.lock:
            watch._poller = self
            self.watches.append(watch)
            if fresh:
                self.fresh.append(watch)
            if self._thread is None and self._autostart:
                self._thread = threading.Thread(target=self._run, name=f"fn_twilio-{self.kind}", daemon=True)
                self._thread.start()
        if fresh:
            self._wake.set()

    def remove(self, watch: W) -> None:
        with self.lock:
            if watch in self.watches:
                self.watches.remove(watch)
            if watch in self.fresh:
                self.fresh.remove(watch)
            last = not self.watches
        if last:   # let the thread end now rather than after its interval
            self._wake.set()

    def hand_out(self, watch: W, give: Callable[[W], None]) -> None:
        """Call ``give(watch)``; a failure there ends that watch's wait with a reason, not the thread."""
        try:
            give(watch)
        except Exception as exc:  # a bug in one hand-out must not stop the others
            LOG.error("fn_twilio %s: handing out results failed", self.kind, exc_info=True)
            watch.fail(Failure(FailureKind.BAD_RESPONSE,
                               f"the app could not handle Twilio's answer ({type(exc).__name__})",
                               Retry.NEVER))

    def listing_budget(self) -> PageBudget:
        """A page budget for one more listing in the current look (counted in ``largest_look``)."""
        budget = PageBudget(self.page_cap)
        self._budgets.append(budget)
        return budget

    def poke(self) -> None:
        """Ask for a look now."""
        self._wake.set()

    # -- the thread ----------------------------------------------------------------------------
    def _take_watches(self) -> tuple[list[W], list[W]] | None:
        with self.lock:
            if not self.watches:
                self.accepting = False
                return None
            fresh, self.fresh = self.fresh, []
            return list(self.watches), fresh

    def look_once(self, client: Any) -> bool:
        """One look with failure handling (the thread's step; tests call it directly).
        False when there is no watch left."""
        with _REGISTRY_LOCK:   # deciding to stop is atomic with the registry
            taken = self._take_watches()
            if taken is None:
                _forget(self)
                return False
        watches, fresh = taken
        self._wake.clear()
        self._budgets = []
        budget = self.listing_budget()
        try:
            self.look(client, watches, fresh, budget)
        except Exception as exc:  # every failure of a look is counted and told, never the thread's end
            with self.lock:   # watches waiting for their first look still wait for it
                self.fresh.extend(w for w in fresh if w in self.watches and w not in self.fresh)
            self._look_failed(classify(exc, action=Action.READ, timeout=self.settings.timeout), watches, exc)
        else:
            self.failures = 0
        finally:
            self.largest_look = max([self.largest_look] + [b.used for b in self._budgets])
        return True

    def _look_failed(self, failure: Failure, watches: list[W], exc: BaseException) -> None:
        self.failures += 1
        lasting = failure.retry is Retry.NEVER or self.failures >= MAX_CONSECUTIVE_FAILURES
        # %s only: resilient-circuits' log filter turns every argument into text before formatting
        LOG.warning("fn_twilio %s: a look failed (%s, attempt %s): %s", self.kind, failure.kind.value,
                    self.failures, mask_numbers(failure.message),
                    exc_info=LOG.isEnabledFor(logging.DEBUG) and not _is_twilio_failure(exc))
        if lasting:
            for watch in watches:
                watch.fail(failure)

    def _run(self) -> None:
        client = None
        try:
            while True:
                started = self.clock.now()
                if client is None:
                    client = self._client_factory(self.settings)
                if not self.look_once(client):
                    return
                remaining = self.interval - (self.clock.now() - started)
                if remaining > 0:
                    self.clock.wait(self._wake, remaining)
        except BaseException as exc:  # nothing may end this thread without telling
            self._died(exc)
            if not isinstance(exc, Exception):
                raise   # interpreter shutdown, KeyboardInterrupt: told, then let through
        finally:
            close_client(client)

    def _died(self, exc: BaseException) -> None:
        self.dead = exc
        LOG.error("fn_twilio %s stopped unexpectedly (%s); the next call starts a new one", self.kind,
                  type(exc).__name__, exc_info=True)
        with _REGISTRY_LOCK:
            self.accepting = False
            _forget(self)
        failure = Failure(FailureKind.CONNECTION_LOST,
                          f"the app's {self.kind} stopped unexpectedly ({type(exc).__name__})", Retry.SAFE)
        with self.lock:
            watches = list(self.watches)
        for watch in watches:
            watch.fail(failure)


def _is_twilio_failure(exc: BaseException) -> bool:
    from twilio.base.exceptions import TwilioException
    import requests
    return isinstance(exc, (TwilioException, requests.RequestException))




# -- the process-wide registry --------------------------------------------------------------------
_REGISTRY_LOCK = threading.Lock()
_POLLERS: dict[tuple[Any, ...], SharedPoller[Any]] = {}

P = TypeVar("P", bound=SharedPoller[Any])


class EveryInterval:
    """A check (``() -> reason or None``, such as "was the workflow terminated?") asked at most once per
    ``interval`` on ``clock``: a call between asks answers None without asking. Once the check has given a
    reason, every later call gives it again without asking."""

    def __init__(self, check: Callable[[], str | None], interval: float, clock: Clock = SYSTEM_CLOCK) -> None:
        self.check = check
        self.interval = float(interval)
        self.clock = clock
        self.asked = 0                      # how many times the check was asked (tests)
        self._last: float | None = None
        self._reason: str | None = None

    def __call__(self) -> str | None:
        if self._reason is not None:
            return self._reason
        now = self.clock.now()
        if self._last is not None and now - self._last < self.interval:
            return None
        self._last = now
        self.asked += 1
        self._reason = self.check()
        return self._reason


def wait_on(watch: Watch, settings: Any, deadline: float, *,
            is_terminated: Callable[[], str | None] = lambda: None, clock: Clock = SYSTEM_CLOCK,
            done: Callable[[], bool] = lambda: True) -> str | None:
    """The wait loop of every waiting call: wait on ``watch`` until it has news that is ``done()``, a
    look fails for good (``watch.error``), ``is_terminated()`` gives a reason, or ``clock.now()`` reaches
    ``deadline``; return that reason, or None.

    ``done`` is asked each time the watch has news (default: any news ends the wait). The first look
    is always waited for (up to the HTTP timeout and one interval), so a deadline already past still
    reads Twilio once. ``is_terminated`` is asked at most once per poll interval while waiting.
    """
    is_terminated = EveryInterval(is_terminated, settings.poll_interval, clock)
    while True:
        remaining = deadline - clock.now()
        if remaining <= 0:
            watch.wait_for_look(settings.timeout + settings.poll_interval)
            return None
        if watch.wait(min(settings.poll_interval, remaining)) and (watch.error is not None or done()):
            return None
        reason = is_terminated()
        if reason is not None:
            return reason


def poller_key(settings: Any, kind: str) -> tuple[Any, ...]:
    """Calls share a poller only when they would make the same requests with the same credentials
    (a changed token after a configuration reload gets a poller of its own; only a digest is kept)."""
    secret = settings.api_key_secret if settings.api_key_sid else settings.auth_token
    credential = (settings.api_key_sid or settings.account_sid,
                  hashlib.sha256((secret or "").encode()).hexdigest())
    return (kind, settings.base_url, settings.account_sid, credential, settings.sender,
            float(settings.poll_interval))


def register(poller_class: type[P], settings: Any, watch: Watch, *, fresh: bool = True,
             client_factory: ClientFactory = build_client, clock: Clock = SYSTEM_CLOCK) -> P:
    """Add ``watch`` to the running poller of ``poller_class`` for ``settings`` (a new one when there
    is none, or when the one registered has stopped or died). Returns the poller."""
    key = poller_key(settings, poller_class.kind)
    with _REGISTRY_LOCK:
        poller = _POLLERS.get(key)
        if poller is None or not poller.alive:
            if poller is not None and poller.dead is None and poller.accepting:
                LOG.warning("fn_twilio %s thread ended without notice; starting a new one", poller_class.kind)
            poller = poller_class(settings, key, client_factory=client_factory, clock=clock)
            _POLLERS[key] = poller
        poller.add(watch, fresh=fresh)
    return poller  # type: ignore[return-value]


def _forget(poller: SharedPoller[Any]) -> None:
    if _POLLERS.get(poller.key) is poller:
        del _POLLERS[poller.key]


def active_pollers(kind: str | None = None) -> int:
    """How many pollers (of ``kind``, or of any kind) run in this process."""
    with _REGISTRY_LOCK:
        return sum(1 for key in _POLLERS if kind is None or key[0] == kind)
