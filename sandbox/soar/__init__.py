"""A local IBM SOAR for fn_twilio: REST API emulator, STOMP 1.2/TLS broker, SOAR driver and launchers.

    from sandbox.soar import Sandbox

    with Sandbox(preload="app", extra_functions=["twilio_get_responses"]) as sandbox:
        sandbox.rest.add_incident(2095, "Phishing", "High")
        sandbox.run_app()                       # the real `resilient-circuits run`
        soar = sandbox.driver()
        call = soar.call_function("twilio_send_sms", {"twilio_sms_destination": "+353861234567",
                                                      "incident_id": 2095})
        run = soar.fire_rule("Example: Send Twilio SMS", incident_id=2095,
                             properties={"twilio_sms_destination": "+353861234567"})

Command line: ``python -m sandbox.soar`` (serve until Ctrl-C) and ``python -m sandbox.soar demo``.
"""
from .broker import StompBroker
from .certs import CertPaths, make_self_signed
from .driver import FunctionCall, RuleNotAvailable, RuleRun, SoarDriver
from .export import ExportError, ExportIndex, check_export, load_export
from .process import CommandRun, ResilientCircuits, app_config_text
from .rest import SoarRestEmulator
from .sandbox import Sandbox, app_export_path

__all__ = ["Sandbox", "SoarRestEmulator", "StompBroker", "SoarDriver", "FunctionCall", "RuleRun",
           "RuleNotAvailable", "ResilientCircuits", "CommandRun", "app_config_text", "make_self_signed",
           "CertPaths", "ExportIndex", "ExportError", "check_export", "load_export", "app_export_path"]
