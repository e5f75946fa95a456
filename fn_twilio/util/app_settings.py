"""Reading fn_twilio's settings out of resilient-circuits' options (the SOAR side of lib.settings and
lib.labels): the unlabelled ``[fn_twilio_send_sms]`` section and every ``[fn_twilio_send_sms:<label>]``."""
import logging
import threading

from resilient_lib import RequestsCommon

from fn_twilio.lib.labels import Configurations, find_sections, load_configurations
from fn_twilio.lib.phone import mask_numbers
from fn_twilio.lib.settings import Settings, SettingsError, load_settings

LOG = logging.getLogger(__name__)


def configurations_from_opts(opts) -> Configurations:
    """Every fn_twilio section, each validated on its own (see lib.labels).

    Proxies and TLS verification of each section come from resilient-lib's RequestsCommon (the section
    beats ``[integrations]``); ``timeout`` falls back to ``[integrations] timeout`` like RequestsCommon does.
    """
    integrations_timeout = (opts.get("integrations") or {}).get("timeout")

    def load(name, raw_section):
        try:
            # $ENV and ^keystore references resolve here, section by section: one that cannot be
            # resolved makes its own section unusable, not the others
            section = dict(raw_section or {})
        except Exception as err:  # a PAM plugin's failure, whatever its type; its text may hold a value
            raise SettingsError(f"the [{name}] section cannot be read ({type(err).__name__} while resolving "
                                "its $ENV or ^keystore references)") from None
        rc = RequestsCommon(opts=opts, function_opts=section)
        timeout = section.get("timeout") or integrations_timeout
        return load_settings(section, proxies=rc.get_proxies(), verify=rc.get_verify(), timeout=timeout,
                             name=name)

    return load_configurations(find_sections(opts), load)


def settings_from_opts(opts, label=None) -> Settings:
    """The validated settings a call with ``twilio_label`` = ``label`` runs with.

    Raises SettingsError naming the section and the key at fault, or lib.labels.LabelError when the
    label selects no section.
    """
    return configurations_from_opts(opts).settings(label)


_reported_lock = threading.Lock()
_reported: set = set()


def report_configurations(opts):
    """Log, once per process for each set of findings, what a component finds at load: each section
    that cannot be used (ERROR, naming the section and the key) and, with labels, the usable ones.

    Nothing fails here: a broken section fails only the calls that select it."""
    configs = configurations_from_opts(opts)
    findings = tuple((c.section, c.error) for c in configs)
    with _reported_lock:
        if findings in _reported:
            return configs
        _reported.add(findings)
    for config in configs:
        if config.error is not None:
            # %s only: resilient-circuits' log filter turns every argument into text before formatting
            LOG.error("fn_twilio: %s cannot be used: %s. Calls that select it fail with this message; "
                      "the other sections are not affected", config.describe(), mask_numbers(config.error))
    if configs.labels:
        usable = [c.describe() for c in configs if c.usable]
        LOG.info("fn_twilio: %s of %s app.config sections usable: %s", str(len(usable)), str(len(configs)),
                 ", ".join(usable) or "none")
    return configs
