"""The settings a function call runs with: the app.config section its ``twilio_label`` input selects,
validated, or the call's clear error (nothing is sent then)."""
import logging

from resilient_circuits.action_message import FunctionError_

from fn_twilio.lib.labels import LABEL_INPUT, LabelError
from fn_twilio.lib.settings import Settings, SettingsError
from fn_twilio.util.app_settings import configurations_from_opts, report_configurations, settings_from_opts

LOG = logging.getLogger(__name__)


def function_settings(opts, fn_inputs=None) -> Settings:
    """The validated settings of the section ``fn_inputs.twilio_label`` selects (see lib.labels); a bad
    label or a bad section ends the call with one message naming the label, or the section and the key."""
    try:
        return settings_from_opts(opts, getattr(fn_inputs, LABEL_INPUT, None))
    except LabelError as err:
        raise FunctionError_(f"{err}; nothing was done") from None
    except SettingsError as err:
        raise FunctionError_(f"fn_twilio is not configured correctly: {err}") from None


def function_label(opts, fn_inputs=None):
    """The label of the section the call's settings come from (None: the unlabelled one); what names the
    per-label things the app keeps in the account, such as the page call's Studio flow. Call it after
    :func:`function_settings` succeeded."""
    try:
        return configurations_from_opts(opts).select(getattr(fn_inputs, LABEL_INPUT, None)).label
    except (LabelError, SettingsError) as err:
        raise FunctionError_(f"{err}; nothing was done") from None


def check_at_load(opts) -> None:
    """At component load: every section is checked and each one that cannot be used is logged (once per
    process), naming the section and the key. Nothing fails at load: a broken section fails only the calls
    that select it, so one misconfigured label never takes the other labels (or the 2.0.x section) down."""
    try:
        report_configurations(opts)
    except Exception:  # the check only reports: it must never stop resilient-circuits loading the app
        LOG.warning("fn_twilio: checking the app.config sections at load failed", exc_info=True)
