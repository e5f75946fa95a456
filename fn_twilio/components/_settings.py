"""The settings a function call runs with: the app.config section, validated, or the call's clear error."""
from resilient_circuits.action_message import FunctionError_

from fn_twilio.lib.settings import Settings, SettingsError
from fn_twilio.util.app_settings import settings_from_opts


def function_settings(opts) -> Settings:
    """The validated settings; a bad section ends the call with one message naming the key at fault."""
    try:
        return settings_from_opts(opts)
    except SettingsError as err:
        raise FunctionError_(f"fn_twilio is not configured correctly: {err}") from None
