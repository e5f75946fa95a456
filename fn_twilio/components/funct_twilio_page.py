"""SOAR function twilio_page ("Twilio: Page Until Acknowledged"): page tier by tier until someone
acknowledges (contract §9.4, §14, §15). The escalation itself is fn_twilio.lib.paging; this adapter reads
the inputs, checks before anything is sent that voice: entries can be called (a number to call from, the
page call's Studio flow, found once per process by the label's name), hands the engine the process's
storm limiter for the sender and what the page's text becomes in a digest, passes the engine's status
messages on as they happen, and shapes the result."""
import queue

from resilient_circuits import AppFunctionComponent, FunctionResult, app_function
from resilient_circuits.action_message import FunctionError_

from fn_twilio.components._receive import incident_code
from fn_twilio.components._redelivery import delivery_handler, take_delivery
from fn_twilio.components._settings import check_at_load, function_label, function_settings
from fn_twilio.components._termination import run_waiting, termination_check
from fn_twilio.components.funct_twilio_send_sms import read_incident
from fn_twilio.lib.durations import DurationError, parse_duration
from fn_twilio.lib.intents import page_code
from fn_twilio.lib.paging import DeliveryCheck, Page, TierError, parse_tiers
from fn_twilio.lib.reconcile import LogUnreadable, first_run_request_code
from fn_twilio.lib.sender import MAX_BODY_LENGTH, with_ack_request
from fn_twilio.lib.storm import DigestLine, limiter_for
from fn_twilio.lib.voice import VoiceError, first_run_call_code, prepare

PACKAGE_NAME = "fn_twilio"
FN_NAME = "twilio_page"
DEFAULT_ESCALATE_AFTER = "5m"


def _text(fn_inputs, name):
    value = getattr(fn_inputs, name, None)
    return "" if value is None else str(value)


class FunctionComponent(AppFunctionComponent):
    """Pages the tiers one after another until someone acknowledges, and reports every page and reply."""

    def __init__(self, opts):
        super().__init__(opts, PACKAGE_NAME)
        check_at_load(opts)

    _note_delivery = delivery_handler(FN_NAME)   # redelivery: records the frame's headers (see _redelivery)

    @app_function(FN_NAME)
    def _app_function(self, fn_inputs):
        delivery = take_delivery(self.get_fn_msg())
        settings = function_settings(self.opts, fn_inputs)
        try:
            tiers = parse_tiers(_text(fn_inputs, "twilio_page_tiers"), settings.default_region)
        except TierError as err:
            raise FunctionError_(str(err)) from None
        people = sum(1 for tier in tiers for r in tier if r.valid)
        if people > settings.max_recipients:
            raise FunctionError_(f"twilio_page_tiers has {people} different people, more than max_recipients "
                                 f"({settings.max_recipients}); nothing was sent")
        try:
            escalate_after = parse_duration(_text(fn_inputs, "twilio_escalate_after").strip()
                                            or DEFAULT_ESCALATE_AFTER, name="twilio_escalate_after",
                                            allow_zero=False, maximum=settings.max_wait_timeout)
        except DurationError as err:
            raise FunctionError_(str(err)) from None
        message = _text(fn_inputs, "twilio_sms_message")
        incident = None
        if not message.strip():
            incident = read_incident(self, fn_inputs, settings)
            message = incident.text
        if len(message) > MAX_BODY_LENGTH:
            raise FunctionError_(f"twilio_sms_message has {len(message)} characters, more than Twilio's "
                                 f"limit of {MAX_BODY_LENGTH}; nothing was sent")
        called = [r.e164 for tier in tiers for r in tier if r.valid and r.is_voice]
        flow = None
        if called:   # a number to call from and the flow, before anything is called or texted
            try:
                flow = prepare(settings, label=function_label(self.opts, fn_inputs))
            except VoiceError as err:
                raise FunctionError_(f"twilio_page_tiers has voice: entries, but calls cannot be made: "
                                     f"{err}; nothing was called or texted") from None
        code = incident_code(fn_inputs)
        if code is None:   # a redelivered page keeps the random code its first run used (contract §13.3)
            texted = [r.e164 for tier in tiers for r in tier if r.valid and not r.is_voice]
            again = "texted or called" if called else "texted"
            try:
                code = first_run_request_code(settings, texted, delivery, message)
                if code is None and flow is not None:
                    code = first_run_call_code(settings, flow, called, message, delivery)
            except (LogUnreadable, VoiceError) as err:
                raise FunctionError_(f"Could not resume the page after a redelivery, so nobody was {again} "
                                     f"again (no one may get the page twice): {err}") from None
            code = code or page_code(None)
        try:
            body = with_ack_request(message, code, settings.keywords)
        except ValueError as err:
            raise FunctionError_(f"twilio_sms_message: {err}; shorten it; nothing was sent") from None

        # the tiers' texts go through the storm limit; what the page's text becomes in a digest
        line = DigestLine.for_text(body, code=code, asks=True, name=incident.name if incident else None,
                                   severity=incident.severity if incident else None)
        statuses = queue.Queue()
        tracker = DeliveryCheck(settings)   # a text that ends undelivered or failed: that person is out
        check = termination_check(self, settings, say=statuses.put)
        page = Page(settings, tiers, body, code, escalate_after=escalate_after,
                    max_wait=settings.max_wait_timeout, is_terminated=check,
                    progress=statuses.put, delivery=tracker, resume=delivery, describe_stop=check.reason,
                    flow=flow, call_text=message, limiter=limiter_for(settings), line=line)
        try:   # a call closed early (shutdown): the page stops and pages no further tier
            result = yield from run_waiting(self, page.run, statuses, on_close=page.cancel,
                                            close_wait=settings.timeout + settings.poll_interval)
        except Exception as err:  # reported as the call's error, never lost in the thread
            raise FunctionError_(f"the page failed: {type(err).__name__}: {err}") from None
        finally:
            tracker.close()
        yield FunctionResult(result.as_result(), success=result.success, reason=result.reason)
