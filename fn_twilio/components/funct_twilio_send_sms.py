"""SOAR function twilio_send_sms ("Twilio: Send SMS"): one text to a list of numbers."""

from resilient_circuits import AppFunctionComponent, FunctionResult, app_function
from resilient_circuits.action_message import FunctionError_

from fn_twilio.components._receive import incident_code
from fn_twilio.components._redelivery import delivery_handler, take_delivery
from fn_twilio.components._settings import check_at_load, function_settings
from fn_twilio.components._soar import soar_answer
from fn_twilio.lib.intents import page_code
from fn_twilio.lib.phone import parse_recipients
from fn_twilio.lib.reconcile import (LogUnreadable, describe, first_run_request_code, settled_by_digest,
                                     settled_for_send, unverified)
from fn_twilio.lib.records import SendSummary
from fn_twilio.lib.sender import MAX_BODY_LENGTH, SendJob, SendProgress, with_ack_request
from fn_twilio.lib.storm import DigestLine, describe_held, limiter_for
from fn_twilio.lib.termination import CredentialsRefused, StatusUnreadable

PACKAGE_NAME = "fn_twilio"
FN_NAME = "twilio_send_sms"
PROGRESS_EVERY = 1.0  # seconds between status messages while sending
DEFAULT_TEXT = "An incident {name} ({id}) with {severity} priority may require your attention"


def text_input(fn_inputs, name: str) -> str:
    """An input as trimmed text ('' when absent or blank)."""
    value = getattr(fn_inputs, name, None)
    return "" if value is None else str(value).strip()


def flag_input(fn_inputs, name: str) -> bool:
    """A boolean input (SOAR sends true/false; absent or null is false); FunctionError_ otherwise."""
    value = getattr(fn_inputs, name, None)
    if value is None or isinstance(value, bool):
        return bool(value)
    text = str(value).strip().lower()
    if text in ("", "false", "no", "0"):
        return False
    if text in ("true", "yes", "1"):
        return True
    raise FunctionError_(f"{name} must be true or false, not {value!r}")


class FunctionComponent(AppFunctionComponent):
    """Sends an SMS to every number in twilio_sms_destination and reports each one."""

    def __init__(self, opts):
        super().__init__(opts, PACKAGE_NAME)
        check_at_load(opts)

    _note_delivery = delivery_handler(FN_NAME)   # redelivery: records the frame's headers (see _delivery)

    @app_function(FN_NAME)
    def _app_function(self, fn_inputs):
        delivery = take_delivery(self.get_fn_msg())
        settings = function_settings(self.opts, fn_inputs)

        destination = text_input(fn_inputs, "twilio_sms_destination")
        if not destination:
            raise FunctionError_("twilio_sms_destination is empty: give one or more phone numbers, "
                                 "separated by commas")
        recipients = parse_recipients(destination, settings.default_region)
        if not recipients:
            raise FunctionError_("twilio_sms_destination holds no phone number (only separators or spaces)")
        if len(recipients) > settings.max_recipients:
            raise FunctionError_(f"twilio_sms_destination has {len(recipients)} different recipients, more "
                                 f"than max_recipients ({settings.max_recipients}); nothing was sent")
        valid = [r for r in recipients if r.valid]
        if not valid:
            reasons = "; ".join(r.reason for r in recipients)
            raise FunctionError_("twilio_sms_destination has no valid phone number, nothing was "
                                 f"sent: {reasons}")

        message = getattr(fn_inputs, "twilio_sms_message", None)
        message = "" if message is None else str(message)
        incident = None
        if not message.strip():
            incident = read_incident(self, fn_inputs, settings)
            message = incident.text
        if len(message) > MAX_BODY_LENGTH:
            raise FunctionError_(f"twilio_sms_message has {len(message)} characters, more than Twilio's "
                                 f"limit of {MAX_BODY_LENGTH}; nothing was sent")
        reply_code = None
        unreadable = None
        if flag_input(fn_inputs, "twilio_request_ack"):
            reply_code = incident_code(fn_inputs)
            if reply_code is None:
                # a redelivered call keeps the random code its first run texted (contract §13.3)
                try:
                    reply_code = first_run_request_code(settings, [r.e164 for r in valid], delivery, message)
                except LogUnreadable as err:
                    unreadable = str(err)
                reply_code = reply_code or page_code(None)
            try:
                message = with_ack_request(message, reply_code, settings.keywords)
            except ValueError as err:
                raise FunctionError_(f"twilio_request_ack: {err}; shorten twilio_sms_message; nothing was "
                                     "sent") from None

        # what this call's text becomes in a digest when a recipient is over the storm limit
        line = DigestLine.for_text(message, code=reply_code or incident_code(fn_inputs),
                                   asks=bool(reply_code), name=incident.name if incident else None,
                                   severity=incident.severity if incident else None)
        limiter = limiter_for(settings)

        skipped = len(recipients) - len(valid)
        yield self.status_message(f"Sending SMS to {len(valid)} recipient{'s' if len(valid) != 1 else ''}"
                                  + (f" ({skipped} invalid skipped)" if skipped else ""))
        # redelivery: recipients the interrupted run already sent to are reported, not sent again
        settled = unverified([r.e164 for r in valid], unreadable) if unreadable else \
            settled_for_send(settings, [r.e164 for r in valid], message, delivery)
        if delivery.redelivered and not unreadable:   # and those the interrupted run sent in a digest
            settled.update(settled_by_digest(settings, [r.e164 for r in valid if r.e164 not in settled],
                                             line, delivery))
        if delivery.redelivered:
            yield self.status_message(describe(settled))
        # leaving the block cancels and joins the workers (a closed call starts no new request)
        with SendJob(settings, recipients, message, already_sent=settled, limiter=limiter, line=line) as job:
            last = None
            for progress in job.progress(PROGRESS_EVERY):
                text = _progress(progress, limiter)
                if text != last:
                    yield self.status_message(text)
                    last = text
            yield self.status_message(_progress(job.snapshot(), limiter))
            summary = SendSummary(destination, message, tuple(job.outcomes()), reply_code=reply_code)
        yield FunctionResult(summary.as_result(), success=summary.success, reason=summary.reason,
                             custom_results=True)


class Incident:
    """The incident a default text is about: its name, severity (a name) and the text itself."""

    def __init__(self, incident_id, name, severity):
        self.id, self.name, self.severity = incident_id, name, severity

    @property
    def text(self) -> str:
        return DEFAULT_TEXT.format(name=self.name, id=self.id, severity=self.severity or "unknown")


def read_incident(component, fn_inputs, settings) -> Incident:
    """The incident named by incident_id, read from SOAR by ``component``'s REST client, for the default
    text; FunctionError_ when there is none or it cannot be read."""
    code = incident_code(fn_inputs)
    if code is None:
        raise FunctionError_("twilio_sms_message is empty and incident_id is not set: give a message, "
                             "or the incident whose name the default message uses")
    incident_id = int(code)
    what = f"incident {incident_id} from SOAR for the default message"
    uri = f"/incidents/{incident_id}?handle_format=names"
    try:   # one request, bounded by the timeout: no retry loop, and a 401 is said, not an exit
        incident = soar_answer(component.rest_client(), "GET", uri, settings.timeout)
    except CredentialsRefused as err:
        raise FunctionError_(f"SOAR refused the app's credentials ({err}) reading {what}; nothing was "
                             "sent") from None
    except StatusUnreadable as err:
        raise FunctionError_(f"could not read {what} ({err}); nothing was sent") from None
    except Exception as err:  # no client (SOAR unreachable while reconnecting), a bug
        raise FunctionError_(f"could not read {what} ({type(err).__name__}); nothing was sent") from None
    if not isinstance(incident, dict):
        raise FunctionError_(f"could not read {what} (its answer is not an incident); nothing was sent")
    severity = incident.get("severity_code")
    if isinstance(severity, dict):
        severity = severity.get("name")
    return Incident(incident.get("id", incident_id), incident.get("name"), severity)


def _progress(progress: SendProgress, limiter) -> str:
    text = f"Sent {progress.sent} of {progress.total}"
    if progress.failed:
        text += f", {progress.failed} failed"
    if progress.held:
        text += f"; {describe_held(progress.held, limiter)}"
    return text
