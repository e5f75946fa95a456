"""The receive component's logic, run without resilient-circuits' event plumbing (for benchmarks).

``ReceiveMessagesComponent.receive`` (what twilio_receive_messages and twilio_get_responses run)
executes unchanged with a :class:`ReceiveCall` as ``self``: real opts, the real ``status_message``;
``_terminated`` answers None, as SOAR does while the workflow runs (no REST call is made).
The result is the FunctionResult the component yields, before ``@app_function`` wraps its content
(the list of replies) in a ResultPayload.
"""
from __future__ import annotations

import time
from types import SimpleNamespace

import _common  # noqa: F401  (puts the repository root on sys.path)
from resilient_circuits import AppFunctionComponent, FunctionResult

from fn_twilio.components._receive import ReceiveMessagesComponent
from fn_twilio.lib.settings import SECTION
from sandbox.twilio_emulator import ACCOUNT_SID, AUTH_TOKEN, SENDER


def receive_opts(base_url: str, sender: str = SENDER, **section) -> dict:
    """resilient-circuits opts with the [fn_twilio_send_sms] section for the emulator."""
    values = {"twilio_account_sid": ACCOUNT_SID, "twilio_auth_token": AUTH_TOKEN, "twilio_src_address": sender,
              "twilio_base_url": base_url, "timeout": "30"}
    values.update({k: str(v) for k, v in section.items()})
    return {SECTION: values}


class ReceiveCall:
    status_message = staticmethod(AppFunctionComponent.status_message)
    _read_inputs = staticmethod(ReceiveMessagesComponent._read_inputs)

    def __init__(self, opts: dict):
        self.opts = opts

    def _terminated(self):
        return None

    def run(self, inputs: dict) -> tuple[float, FunctionResult]:
        """Run one call to its result; returns (time.monotonic() of the result, the FunctionResult)."""
        for item in ReceiveMessagesComponent.receive(self, SimpleNamespace(**inputs)):
            if isinstance(item, FunctionResult):
                return time.monotonic(), item
        raise RuntimeError("the receive component ended without a FunctionResult")
