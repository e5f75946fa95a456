"""One receive call as the components make it, without resilient-circuits (for benchmarks).

:meth:`ReceiveCall.run` reads the inputs the way twilio_receive_messages does (number, moment, wait)
and calls :func:`fn_twilio.lib.replies.collect`, the wait loop the component itself calls; the
workflow is never terminated (no SOAR REST call is made). It returns the outcome record.
"""
from __future__ import annotations

import time

import _common  # noqa: F401  (puts the repository root on sys.path)

from fn_twilio.lib.dates import parse_since
from fn_twilio.lib.durations import parse_duration
from fn_twilio.lib.phone import normalise
from fn_twilio.lib.replies import CollectOutcome, collect
from fn_twilio.lib.settings import SECTION, load_settings
from sandbox.twilio_emulator import ACCOUNT_SID, AUTH_TOKEN, SENDER


def receive_opts(base_url: str, sender: str = SENDER, **section) -> dict:
    """resilient-circuits opts with the [fn_twilio_send_sms] section for the emulator."""
    values = {"twilio_account_sid": ACCOUNT_SID, "twilio_auth_token": AUTH_TOKEN,
              "twilio_src_address": sender, "twilio_base_url": base_url, "timeout": "30"}
    values.update({k: str(v) for k, v in section.items()})
    return {SECTION: values}


class ReceiveCall:
    def __init__(self, opts: dict):
        self.settings = load_settings(opts[SECTION])

    def run(self, inputs: dict) -> tuple[float, CollectOutcome]:
        """Run one call to its outcome; returns (time.monotonic() of the outcome, the outcome)."""
        number = normalise(str(inputs["twilio_phone_number"]), self.settings.default_region)
        since = None
        for name in ("twilio_date_sent", "twilio_date_sent_ts"):
            if inputs.get(name) not in (None, ""):
                since = parse_since(inputs[name], name=name)
                break
        wait = parse_duration(inputs.get("twilio_wait_timeout") or "120s", name="twilio_wait_timeout")
        outcome = collect(self.settings, [number], since, time.monotonic() + wait)
        return time.monotonic(), outcome
