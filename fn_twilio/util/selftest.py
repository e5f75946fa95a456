"""`resilient-circuits selftest -l fn_twilio`: do the credentials work, is the sender ours, can it call?

Every fn_twilio section of app.config is checked: the unlabelled ``[fn_twilio_send_sms]`` and each
``[fn_twilio_send_sms:<label>]`` (see lib.labels). With the unlabelled section alone the answer is
``{"state": "success", "reason": "..."}`` or ``{"state": "failure", "reason": "<which check failed and
why>"}``. With labels, ``reason`` says for every section, by its label, what works and what does not,
and the state is ``failure`` as soon as one section fails.

An alphanumeric sender ID (``MyCompany``) is no number of the account: for it the credentials and the
sender ID's form are checked, and the success says so in its ``reason``.

Voice (a page's ``voice:`` entries, contract §14): the success's ``reason`` says whether the number
calls come from (``voice_sender``, else ``twilio_src_address``) can place calls, as the account's
IncomingPhoneNumbers report it (``capabilities.voice``). When that number is only the default, a
number that cannot call is said, not a failure (voice is optional); a ``voice_sender`` set on purpose
that is not a number of the account, or cannot call, is a failure. The reason never contains a secret,
and numbers in it are masked.
"""
import logging

from fn_twilio.lib.errors import Action, classify
from fn_twilio.lib.phone import mask, mask_numbers
from fn_twilio.lib.twilio_client import build_client
from fn_twilio.util.app_settings import configurations_from_opts

LOG = logging.getLogger(__name__)
ALPHANUMERIC_CHECKED = ("the credentials work; twilio_src_address {!r} is an alphanumeric sender ID of a "
                        "valid form (1-11 letters, digits and spaces), not a number of the account, so "
                        "whether Twilio accepts it for the recipients' countries is only known when an SMS "
                        "is sent")


def _failure(reason):
    return {"state": "failure", "reason": reason}


def _reason(exc, settings):
    return classify(exc, action=Action.READ, timeout=settings.timeout).message


def _capabilities(number_record):
    capabilities = getattr(number_record, "capabilities", None)
    return capabilities if isinstance(capabilities, dict) else {}


def _voice(client, settings, owned):
    """What selftest says about calls: (failure reason or None, the sentence for a success)."""
    caller = settings.caller
    if caller is None:
        why = ("the sender is a Messaging Service" if not settings.src_address
               else f"twilio_src_address {settings.src_address!r} cannot place calls")
        return None, f"voice: {why}, so a page's voice: entries are refused until voice_sender is set"
    chosen = "voice_sender" if settings.voice_sender else "twilio_src_address"
    if caller != settings.src_address:
        try:
            owned = client.incoming_phone_numbers.list(phone_number=caller, limit=1, page_size=1)
        except Exception as exc:  # every failure becomes a readable reason
            return f"cannot check voice_sender: {_reason(exc, settings)}", None
    if not owned:
        return "voice_sender is not a phone number of this Twilio account (check the number in the Twilio " \
               "console)", None
    if _capabilities(owned[0]).get("voice") is True:
        return None, f"voice: {chosen} {mask(caller)} can place calls"
    if settings.voice_sender:
        return (f"voice_sender {mask(caller)} cannot place calls: its voice capability is off (a number with "
                "voice is needed for a page's voice: entries)"), None
    return None, (f"voice: twilio_src_address {mask(caller)} cannot place calls (its voice capability is "
                  "off); set voice_sender to a number that can, to use a page's voice: entries")


def check_settings(settings):
    """Checks one section's credentials, that its sender belongs to the account, and whether it can call."""
    client = build_client(settings)
    try:
        # Listing the account's numbers checks the credentials (20003 when wrong) and, with a
        # number as sender, that the number belongs to the account.
        try:
            number = settings.src_address if not settings.alphanumeric_sender else None
            only_sender = {"phone_number": number} if number else {}
            owned = client.incoming_phone_numbers.list(limit=1, page_size=1, **only_sender)
        except Exception as exc:  # every failure becomes a readable reason
            return _failure(f"cannot use the Twilio account: {_reason(exc, settings)}")
        if settings.src_address and not settings.alphanumeric_sender and not owned:
            return _failure("twilio_src_address is not a phone number of this Twilio account "
                            "(check the number in the Twilio console)")
        if not settings.src_address:
            try:
                client.messaging.v1.services(settings.messaging_service_sid).fetch()
            except Exception as exc:
                return _failure("twilio_messaging_service_sid is not a Messaging Service of this account: "
                                f"{_reason(exc, settings)}")
        failure, voice = _voice(client, settings, owned)
        if failure:
            return _failure(failure)
    finally:
        client.http_client.close()
    if settings.alphanumeric_sender:
        return {"state": "success", "reason": f"{ALPHANUMERIC_CHECKED.format(settings.src_address)}; {voice}"}
    return {"state": "success",
            "reason": f"the credentials work and the sender belongs to the account; {voice}"}


def _check(config):
    if config.error is not None:
        if config.label is None:
            return _failure(f"app.config section [{config.section}]: {config.error}")
        return _failure(config.error)
    return check_settings(config.settings)


def selftest_function(opts):
    """Checks every section's settings, credentials and sender."""
    checked = [(config, _check(config)) for config in configurations_from_opts(opts)]
    if len(checked) == 1 and checked[0][0].label is None:
        result = checked[0][1]
        if result["state"] != "success":
            LOG.error("fn_twilio selftest failed: %s", mask_numbers(result["reason"]))
        return result

    failed = [config for config, result in checked if result["state"] != "success"]
    parts = []
    for config, result in checked:
        text = f"{config.describe()}: {result['state']}"
        if result.get("reason"):
            text += f": {result['reason']}"
        parts.append(text)
        if result["state"] != "success":
            LOG.error("fn_twilio selftest failed for %s: %s", config.describe(),
                      mask_numbers(result["reason"]))
    if failed:
        summary = (f"{len(failed)} of {len(checked)} configurations failed "
                   f"({', '.join(repr(c.label) if c.label is not None else 'unlabelled' for c in failed)})")
    else:
        summary = f"all {len(checked)} configurations work"
    return {"state": "failure" if failed else "success", "reason": f"{summary}. " + "; ".join(parts)}
