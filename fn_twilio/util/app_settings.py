"""Reading fn_twilio's settings out of resilient-circuits' options (the SOAR side of lib.settings)."""
from resilient_lib import RequestsCommon

from fn_twilio.lib.settings import SECTION, Settings, load_settings


def app_section(opts) -> dict:
    """The ``[fn_twilio_send_sms]`` section (empty when absent)."""
    return dict(opts.get(SECTION) or {})


def settings_from_opts(opts) -> Settings:
    """Validated settings; raises SettingsError naming the key at fault.

    Proxies and TLS verification come from resilient-lib's RequestsCommon (the app section beats
    ``[integrations]``); ``timeout`` falls back to ``[integrations] timeout`` like RequestsCommon does.
    """
    section = app_section(opts)
    rc = RequestsCommon(opts=opts, function_opts=section)
    timeout = section.get("timeout") or (opts.get("integrations") or {}).get("timeout")
    return load_settings(section, proxies=rc.get_proxies(), verify=rc.get_verify(), timeout=timeout)
