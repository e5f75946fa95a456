"""What twilio_receive_messages and its legacy name twilio_get_responses share.

The two SOAR functions are served by two components (a component whose function is not defined on
the SOAR server is not subscribed at all, so the legacy name must not take the current one down with
it). Each component's @app_function delegates to :meth:`ReceiveMessagesComponent.receive` here.
"""
import logging
import time

from resilient_circuits import AppFunctionComponent, FunctionResult
from resilient_circuits.action_message import FunctionError_
from resilient_lib import get_workflow_status

from fn_twilio.lib.dates import DateError, format_date, parse_since
from fn_twilio.lib.durations import DurationError, format_duration, parse_duration
from fn_twilio.lib.phone import PhoneNumberError, mask, normalise, split_entries
from fn_twilio.lib.replies import Ending, collect
from fn_twilio.lib.settings import SettingsError
from fn_twilio.util.app_settings import settings_from_opts

PACKAGE_NAME = "fn_twilio"
DEFAULT_WAIT = "120s"
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


class ReceiveMessagesComponent(AppFunctionComponent):
    """Returns the replies a number sent to this app's sender, waiting for one when there is none yet."""

    def __init__(self, opts):
        super().__init__(opts, PACKAGE_NAME)

    def receive(self, fn_inputs):
        try:
            settings = settings_from_opts(self.opts)
        except SettingsError as err:
            raise FunctionError_(f"fn_twilio is not configured correctly: {err}") from None
        number, since, wait = self._read_inputs(fn_inputs, settings)
        moment = format_date(since) if since else "the beginning"
        yield self.status_message(f"Looking for replies from {mask(number)} since {moment}"
                                  + (f", waiting up to {format_duration(wait)}" if wait else ""))

        outcome = collect(settings, [number], since, time.monotonic() + wait, is_terminated=self._terminated)
        content = [reply.as_result() for reply in outcome.replies]
        if outcome.ending == Ending.REPLIED:
            count = len(outcome.replies)
            yield self.status_message(f"{count} repl{'y' if count == 1 else 'ies'} received")
            yield RepliesResult(content, success=True)
        elif outcome.ending == Ending.FAILED and outcome.failure is not None:
            yield RepliesResult(content, success=False,
                                reason=f"Could not read replies from Twilio: {outcome.failure.message}")
        elif outcome.ending == Ending.TERMINATED:
            yield RepliesResult(content, success=False, reason="Workflow was terminated: "
                                                               f"{outcome.terminated}")
        else:
            yield RepliesResult(content, success=False,
                                reason=f"Timeout waiting for responses for phone number: {number} "
                                       f"since {moment}")

    @staticmethod
    def _read_inputs(fn_inputs, settings):
        raw_number = _value(fn_inputs, "twilio_phone_number")
        if raw_number is None:
            raise FunctionError_("twilio_phone_number is empty: give the number whose replies are wanted")
        if len(split_entries(str(raw_number))) > 1:
            raise FunctionError_("twilio_phone_number holds more than one number; give the one number "
                                 "whose replies are wanted")
        try:
            number = normalise(str(raw_number), settings.default_region)
        except PhoneNumberError as err:
            raise FunctionError_(f"twilio_phone_number is not a valid phone number: {err}") from None
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
        return number, since, wait

    def _terminated(self):
        """The termination reason when SOAR says the workflow was terminated, else None."""
        instance = (self.get_fn_msg() or {}).get("workflow_instance") or {}
        instance_id = instance.get("workflow_instance_id")
        if not instance_id:
            return None
        try:
            status = get_workflow_status(self.rest_client(), int(instance_id))
        except Exception as err:  # SOAR unreachable for a moment: keep waiting, look again next time
            LOG.debug("Could not read the status of workflow instance %s: %s", instance_id, err)
            return None
        if getattr(status, "is_terminated", False):
            return getattr(status, "reason", None) or "no reason given"
        return None
