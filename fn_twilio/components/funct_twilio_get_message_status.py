"""SOAR function twilio_get_message_status ("Twilio: Get Delivery Status"): where sent messages stand."""
import queue
import time
from collections import Counter

from resilient_circuits import AppFunctionComponent, app_function
from resilient_circuits.action_message import FunctionError_

from fn_twilio.components._receive import RepliesResult as ListResult
from fn_twilio.components._settings import check_at_load, function_settings
from fn_twilio.components._termination import run_waiting, termination_check
from fn_twilio.lib.delivery import SidError, parse_sids, wait_for_statuses
from fn_twilio.lib.durations import DurationError, format_duration, parse_duration

PACKAGE_NAME = "fn_twilio"
FN_NAME = "twilio_get_message_status"
DEFAULT_WAIT = "0s"


class FunctionComponent(AppFunctionComponent):
    """Returns the delivery status of each message SID, waiting (when asked) until all are final."""

    def __init__(self, opts):
        super().__init__(opts, PACKAGE_NAME)
        check_at_load(opts)

    @app_function(FN_NAME)
    def _app_function(self, fn_inputs):
        settings = function_settings(self.opts, fn_inputs)
        try:
            sids = parse_sids(getattr(fn_inputs, "twilio_message_sids", None), name="twilio_message_sids",
                              max_count=settings.max_recipients)
            raw_wait = getattr(fn_inputs, "twilio_wait_timeout", None)
            wait = parse_duration(raw_wait if raw_wait not in (None, "") and str(raw_wait).strip()
                                  else DEFAULT_WAIT, name="twilio_wait_timeout", allow_zero=True,
                                  maximum=settings.max_wait_timeout)
        except (SidError, DurationError) as err:
            raise FunctionError_(str(err)) from None

        count = f"{len(sids)} message{'s' if len(sids) != 1 else ''}"
        yield self.status_message(f"Reading the delivery status of {count}"
                                  + (f", waiting up to {format_duration(wait)} for final statuses" if wait
                                     else ""))
        statuses = queue.Queue()   # a status read SOAR refuses is said once, while the call waits
        check = termination_check(self, settings, say=statuses.put)
        deadline = time.monotonic() + wait
        outcome = yield from run_waiting(self, lambda: wait_for_statuses(settings, sids, deadline,
                                                                         is_terminated=check), statuses)
        yield self.status_message(_summary(outcome))
        content = [status.as_result() for status in outcome.statuses]
        yield ListResult(content, success=outcome.success, reason=_reason(outcome, check))


def _summary(outcome):
    counts = Counter(status.status for status in outcome.statuses)
    text = ", ".join(f"{n} {status}" for status, n in counts.most_common()) or "no status read"
    waiting = sum(1 for status in outcome.statuses if not status.final and status.status != "not_found")
    if waiting:
        text += f"; {waiting} not final yet"
    return text


def _reason(outcome, check):
    if outcome.failure is not None:
        unread = f" ({len(outcome.unread)} not read)" if outcome.unread else ""
        return f"Could not read delivery statuses from Twilio{unread}: {outcome.failure.message}"
    missing = [status.sid for status in outcome.statuses if status.status == "not_found"]
    if missing:
        return (f"{len(missing)} of {len(outcome.statuses)} message SIDs are not on this Twilio account: "
                + ", ".join(missing))
    if outcome.terminated is not None:
        return check.reason(outcome.terminated)
    if outcome.unread:
        return (f"{len(outcome.unread)} message SIDs could not be read from Twilio in time: "
                + ", ".join(outcome.unread))
    return None
