"""Has SOAR stopped the workflow or playbook behind a waiting call? (contract §13.4)

The core's wait loops (:func:`fn_twilio.lib.polling.wait_on`, :class:`fn_twilio.lib.paging.Page`) take an
``is_terminated()`` callable, ask it once per poll interval and end the call when it gives a reason.
:class:`TerminationCheck` is that callable. It wraps a ``read()`` that asks SOAR once (the component
side knows SOAR's REST API; this module does not) and adds what every waiting call needs:

* **at most one read per poll interval**, whatever the loop does: a loop woken early by news asks
  again, and the check answers from what it read last instead of asking SOAR;
* **a read SOAR refuses does not stop the call**: ``read()`` raises :class:`StatusUnreadable` (a 403,
  a 404, a 5xx, an answer without a status, no answer within the HTTP timeout); the check answers
  "not terminated", so the call goes on to its own end. The first such failure is said once, through
  ``say(text)`` (the component turns it into a status message in SOAR's action status) and a WARNING
  log line; later ones are logged at DEBUG only;
* **a 401 ends the call with a reason that says so**: ``read()`` raises :class:`CredentialsRefused`;
  the check keeps answering the reason ``ended`` ("SOAR refused the app's credentials (401) while
  checking whether the workflow was terminated: ...") so every wait loop ends as for a termination,
  and :meth:`TerminationCheck.reason` gives the call's reason: that text as it stands, where a real
  termination reads ``Workflow was terminated: <reason>``.

``read()`` itself must make one request bounded by the HTTP timeout (no retry loop): the check is
asked inside the escalation loop of a page, and a slow read delays the next tier by as much.
"""
from __future__ import annotations

import logging
import threading
from typing import Callable

from fn_twilio.lib.clock import SYSTEM_CLOCK, Clock
from fn_twilio.lib.polling import EveryInterval

LOG = logging.getLogger(__name__)

NO_REASON = "no reason given"
TERMINATED = "Workflow was terminated: {reason}"


def terminated(reason: str) -> str:
    """The reason of a call whose workflow or playbook SOAR stopped: ``Workflow was terminated: <reason>``."""
    return TERMINATED.format(reason=reason)


class StatusUnreadable(Exception):
    """SOAR's answer (or its silence) does not tell whether the caller was stopped; ``str()`` says why,
    e.g. ``403 Forbidden: ...``."""


class CredentialsRefused(Exception):
    """SOAR answered the status read with 401: it no longer accepts the app's credentials."""


class TerminationCheck:
    """``is_terminated()`` for the core's wait loops; see the module docstring.

    ``read`` returns SOAR's termination reason (``None`` while the caller runs) or raises
    :class:`StatusUnreadable` / :class:`CredentialsRefused`; ``read=None`` means there is nothing to
    check (a call from neither a workflow nor a playbook). ``kind`` names the caller in the texts
    (``workflow`` or ``playbook``); ``instance`` (its id) goes into the log lines only.
    """

    def __init__(self, read: Callable[[], str | None] | None, *, interval: float, kind: str = "workflow",
                 instance: object = None, say: Callable[[str], None] = lambda text: None,
                 clock: Clock = SYSTEM_CLOCK) -> None:
        self._read = read
        self.interval = interval
        self.kind = kind
        self.instance = instance
        self.say = say
        self.clock = clock
        self.reads = 0                  # requests made (one per read)
        self.failures = 0               # reads that could not tell
        self.ended: str | None = None   # the call's reason when a 401 ended it
        self._said = False
        self._lock = threading.Lock()
        self._limited = EveryInterval(self._ask, interval, clock)   # at most one read per interval

    def __call__(self) -> str | None:
        with self._lock:
            if self.ended is not None:
                return self.ended
            if self._read is None:
                return None
            return self._limited()

    def _ask(self) -> str | None:
        assert self._read is not None
        self.reads += 1
        try:
            return self._read()
        except CredentialsRefused as err:
            self.ended = (f"SOAR refused the app's credentials (401) while checking whether the "
                          f"{self.kind} was terminated: {err}")
            LOG.error("fn_twilio: %s (%s instance %s)", self.ended, self.kind, self.instance)
            return self.ended
        except StatusUnreadable as err:
            self.failures += 1
            self._tell(err)
            return None
        except Exception as err:  # a read that broke in a way nobody foresaw: still just unread
            self.failures += 1
            self._tell(StatusUnreadable(f"the read failed ({type(err).__name__})"))
            return None

    def _tell(self, err: StatusUnreadable) -> None:
        text = (f"Cannot tell whether the {self.kind} was terminated: {err}; the call goes on until it "
                "ends on its own")
        if self._said:
            LOG.debug("fn_twilio: %s (%s instance %s, failure %d)", text, self.kind, self.instance,
                      self.failures)
            return
        self._said = True
        LOG.warning("fn_twilio: %s (%s instance %s)", text, self.kind, self.instance)
        try:
            self.say(text)
        except Exception:  # a status message that cannot be passed on must not end the wait
            LOG.debug("fn_twilio: passing on a status message failed", exc_info=True)

    def reason(self, given: str) -> str:
        """The call's reason when a wait loop ended on ``given`` (what this check returned):
        ``Workflow was terminated: <reason>``, or the 401 text as it stands."""
        if self.ended is not None and given == self.ended:
            return self.ended
        return terminated(given)
