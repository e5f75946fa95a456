"""What twilio_receive_messages and its legacy name twilio_get_responses share.

The two SOAR functions are served by two components (a component whose function is not defined on
the SOAR server is not subscribed at all, so the legacy name must not take the current one down with
it). Each component's @app_function delegates to :meth:`ReceiveMessagesComponent.receive` here.

Every reply returned carries ``intent`` and ``reply_code`` (contract §9.1, §9.2, §13.1: read by
``lib.attribution``). ``incident_id`` leaves out the replies whose code is another one;
``twilio_wait_for`` ``acknowledgement`` waits for an acknowledgement (or until every number waited on
declined or opted out): with ``incident_id``, only those whose ``reply_code`` is that incident's count.
A reply whose code could not be read is returned with ``reply_code`` null and the reason says so.
The legacy function has neither input, so it keeps its 2.0.1 behaviour.
"""
import logging
import queue
import time

from resilient_circuits import AppFunctionComponent, FunctionResult
from resilient_circuits.action_message import FunctionError_

from fn_twilio.components._settings import check_at_load, function_settings
from fn_twilio.components._termination import run_waiting, termination_check
from fn_twilio.lib.attribution import Attribution, ReplyReader, pending, refused_by
from fn_twilio.lib.dates import DateError, format_date, parse_since
from fn_twilio.lib.durations import DurationError, format_duration, parse_duration
from fn_twilio.lib.intents import Intent
from fn_twilio.lib.phone import PhoneNumberError, mask, normalise, split_entries
from fn_twilio.lib.replies import Ending, collect

PACKAGE_NAME = "fn_twilio"
DEFAULT_WAIT = "120s"
WAIT_FOR_REPLY = "reply"
WAIT_FOR_ACK = "acknowledgement"
WAIT_FOR = (WAIT_FOR_REPLY, WAIT_FOR_ACK)
LOG = logging.getLogger(__name__)


class RepliesResult(FunctionResult):
    """A FunctionResult whose content is the list of replies (the 2.0.x shape of Get Responses).

    resilient-circuits wraps it in the standard ResultPayload as usual; building it with a dict first
    only avoids FunctionResult's warning that a non-dict value "may cause the workflow to fail".
    """

    def __init__(self, replies, success, reason=None):
        super().__init__({}, success=success, reason=reason)
        self.value = replies


def _value(fn_inputs, name):
    value = getattr(fn_inputs, name, None)
    return None if value is None or (isinstance(value, str) and not value.strip()) else value


def incident_code(fn_inputs, name="incident_id"):
    """The optional incident id input as a reply code (its digits), or None; FunctionError_ when malformed."""
    raw = _value(fn_inputs, name)
    if raw is None:
        return None
    try:
        number = int(str(raw).strip())
        if number <= 0 or isinstance(raw, bool):
            raise ValueError
    except ValueError:
        raise FunctionError_(f"{name} must be a positive whole number, not {raw!r}") from None
    return str(number)


def _unread_note(replies):
    """The reason's note about replies whose code could not be read (None when there is none)."""
    count = len(pending(replies))
    if not count:
        return None
    return (f"{count} repl{'y' if count == 1 else 'ies'} could not be matched with a page (Twilio's outbound "
            "log could not be read), so reply_code is null")


def _joined(reason, note):
    return f"{reason}; {note}" if note else reason


class ReceiveMessagesComponent(AppFunctionComponent):
    """Returns the replies a number sent to this app's sender, waiting for one when there is none yet."""

    def __init__(self, opts):
        super().__init__(opts, PACKAGE_NAME)
        check_at_load(opts)

    def receive(self, fn_inputs):
        settings = function_settings(self.opts, fn_inputs)
        numbers, since, wait = self._read_inputs(fn_inputs, settings)
        code = incident_code(fn_inputs)
        wait_for = self._wait_for(fn_inputs)
        moment = format_date(since) if since else "the beginning"
        waited_for = " for an acknowledgement" if wait_for == WAIT_FOR_ACK else ""
        yield self.status_message(f"Looking for replies from {', '.join(mask(n) for n in numbers)} since "
                                  f"{moment}" + (f", waiting up to {format_duration(wait)}{waited_for}"
                                                 if wait else ""))

        with Attribution(settings) as attribution:
            reader = ReplyReader(attribution, code)

            def answering(replies):
                """The kept replies that count for the wait (with incident_id: its code only)."""
                return [r for r in reader.kept(replies) if reader.answers(r)]

            def enough(replies):
                if wait_for == WAIT_FOR_REPLY:
                    return bool(reader.kept(replies))
                counted = answering(replies)
                return any(r.intent == Intent.ACKNOWLEDGE.value for r in counted) \
                    or bool(refused_by(counted, numbers))

            statuses = queue.Queue()   # a status read SOAR refuses is said once, while the call waits
            check = termination_check(self, settings, say=statuses.put)
            deadline = time.monotonic() + wait
            outcome = yield from run_waiting(self, lambda: collect(settings, numbers, since, deadline,
                                                                   is_terminated=check, enough=enough),
                                             statuses)
            kept = reader.kept(outcome.replies)
            counted = answering(outcome.replies)
        content = [reply.as_result() for reply in kept]
        number = ", ".join(numbers)
        acked = [r for r in counted if r.intent == Intent.ACKNOWLEDGE.value]
        refused = refused_by(counted, numbers) if wait_for == WAIT_FOR_ACK else []
        unread = _unread_note(kept)
        if outcome.ending == Ending.REPLIED and wait_for == WAIT_FOR_ACK and not acked and refused:
            yield RepliesResult(content, success=False, reason=f"Declined by {', '.join(refused)}")
        elif outcome.ending == Ending.REPLIED:
            count = len(kept)
            yield self.status_message(f"{count} repl{'y' if count == 1 else 'ies'} received"
                                      + (f", acknowledged by {mask(acked[0].from_)}" if acked and waited_for
                                         else ""))
            yield RepliesResult(content, success=True, reason=unread)
        elif outcome.ending == Ending.FAILED and outcome.failure is not None:
            yield RepliesResult(content, success=False,
                                reason=f"Could not read replies from Twilio: {outcome.failure.message}")
        elif outcome.ending == Ending.TERMINATED:
            yield RepliesResult(content, success=False,
                                reason=_joined(check.reason(outcome.terminated), unread))
        else:
            yield RepliesResult(content, success=False,
                                reason=_joined(f"Timeout waiting for responses for phone number: {number} "
                                               f"since {moment}", unread))

    @staticmethod
    def _wait_for(fn_inputs):
        raw = _value(fn_inputs, "twilio_wait_for")
        value = WAIT_FOR_REPLY if raw is None else str(raw).strip().lower()
        if value not in WAIT_FOR:
            raise FunctionError_(f"twilio_wait_for must be {WAIT_FOR_REPLY!r} or {WAIT_FOR_ACK!r}, "
                                 f"not {raw!r}")
        return value

    @staticmethod
    def _read_inputs(fn_inputs, settings):
        raw_number = _value(fn_inputs, "twilio_phone_number")
        if raw_number is None:
            raise FunctionError_("twilio_phone_number is empty: give the number whose replies are wanted")
        numbers = []
        for entry in split_entries(str(raw_number)):
            try:
                number = normalise(entry, settings.default_region)
            except PhoneNumberError as err:
                raise FunctionError_(f"twilio_phone_number is not a valid phone number: {err}") from None
            if number not in numbers:
                numbers.append(number)
        if not numbers:
            raise FunctionError_("twilio_phone_number holds no phone number (only separators or spaces)")
        try:
            since = None
            for name in ("twilio_date_sent", "twilio_date_sent_ts"):
                value = _value(fn_inputs, name)
                if value is not None:
                    since = parse_since(value, name=name)
                    break
        except DateError as err:
            raise FunctionError_(str(err)) from None
        try:
            wait = parse_duration(_value(fn_inputs, "twilio_wait_timeout") or DEFAULT_WAIT,
                                  name="twilio_wait_timeout", allow_zero=True,
                                  maximum=settings.max_wait_timeout)
        except DurationError as err:
            raise FunctionError_(str(err)) from None
        return numbers, since, wait
