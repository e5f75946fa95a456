"""Fixtures of the reliability matrices: DEBUG capture with privacy checks after every test, counters.

Every test in tests/reliability runs inside a :class:`PrivacyWatch`: the root logger and every logger
at DEBUG, a handler on the root logger (and on any logger that does not propagate) keeping each
record, plus pytest's caplog. After the test the watch asserts that no secret (Twilio auth token,
Twilio API key secret, SOAR API key secret) reached a log line, status message, result or error, and
that fn_twilio's log lines above DEBUG and the status messages hold no full phone number; then that
Twilio (the emulator) accepted no SMS twice. The faulted responses the emulator served are added to
the session's totals, printed at the end (tests/conftest.py adds up the workers' when the suite runs
in several processes).
"""
import logging

import pytest

from tests.reliability import reliability_helpers as helpers


@pytest.fixture(scope="class", autouse=True)
def _soar_api_key(request, _fn_twilio_app_config):
    """The app.config of a class with APP_SETTINGS also carries a SOAR API key (a secret to guard)."""
    if request.cls is not None and hasattr(request.cls, "APP_SETTINGS"):
        request.module.config_data += helpers.SOAR_SECTION
    yield


@pytest.fixture(autouse=True)
def _observe(twilio, caplog):
    caplog.set_level(logging.DEBUG)
    with helpers.PrivacyWatch() as watch:
        yield watch.observer
    helpers.settle(twilio)
    helpers.LEDGER["faulted_responses"] += sum(1 for r in twilio.requests if r.fault)
    duplicated = helpers.duplicates(twilio)
    helpers.LEDGER["duplicate_sms"] += duplicated
    watch.extra_records = helpers.caplog_records(caplog)
    watch.check()
    assert duplicated == 0, f"{duplicated} SMS were accepted twice by Twilio"
