"""`resilient-circuits selftest -l fn_twilio`: do the credentials work, and is the sender ours?

Every fn_twilio section of app.config is checked: the unlabelled ``[fn_twilio_send_sms]`` and each
``[fn_twilio_send_sms:<label>]`` (see lib.labels). With the unlabelled section alone the answer is
2.0.x's: ``{"state": "success"}`` or ``{"state": "failure", "reason": "<which check failed and why>"}``.
With labels, ``reason`` says for every section, by its label, what works and what does not, and the
state is ``failure`` as soon as one section fails.

An alphanumeric sender ID (``MyCompany``) is no number of the account: for it the credentials and the
sender ID's form are checked, and the success says so in its ``reason``. The reason never contains a
secret.
"""
import logging

from fn_twilio.lib.errors import Action, classify
from fn_twilio.lib.phone import mask_numbers
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


def check_settings(settings):
    """Checks one section's credentials and that its sender belongs to the account."""
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
        if settings.alphanumeric_sender:
            return {"state": "success", "reason": ALPHANUMERIC_CHECKED.format(settings.src_address)}
        if settings.src_address and not owned:
            return _failure("twilio_src_address is not a phone number of this Twilio account "
                            "(check the number in the Twilio console)")
        if not settings.src_address:
            try:
                client.messaging.v1.services(settings.messaging_service_sid).fetch()
            except Exception as exc:
                return _failure("twilio_messaging_service_sid is not a Messaging Service of this account: "
                                f"{_reason(exc, settings)}")
    finally:
        client.http_client.close()
    return {"state": "success"}


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
