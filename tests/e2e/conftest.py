"""End-to-end fixtures: the sandbox SOAR (REST + STOMP over TLS), the Twilio emulator, the real
``resilient-circuits`` processes. Everything listens on free ports of 127.0.0.1 and is stopped, and
its folders removed, even when a test fails.
"""
import copy

import pytest

from sandbox.soar import activemq
from sandbox.soar.broker import StompBroker
from sandbox.soar.certs import make_self_signed
from sandbox.soar.export import load_export
from sandbox.soar.rest import SoarRestEmulator
from sandbox.soar.sandbox import (API_KEY_ID, API_KEY_SECRET, SOAR_LOGIN, SOAR_PASSCODE, Sandbox,
                                  app_export_path)


@pytest.fixture(scope="module")
def certs(tmp_path_factory):
    return make_self_signed(str(tmp_path_factory.mktemp("certs")))


@pytest.fixture(scope="module")
def broker(certs):
    broker = StompBroker(certs, users={API_KEY_ID: API_KEY_SECRET, SOAR_LOGIN: SOAR_PASSCODE}).start()
    try:
        yield broker
    finally:
        broker.stop()


@pytest.fixture(scope="module")
def rest(certs):
    rest = SoarRestEmulator(certs, api_key_id=API_KEY_ID, api_key_secret=API_KEY_SECRET,
                            extra_functions=["twilio_get_responses"]).start()
    try:
        yield rest
    finally:
        rest.stop()


@pytest.fixture
def app_export():
    """A fresh copy of the app's export.res as a dict."""
    return copy.deepcopy(load_export(app_export_path()))


@pytest.fixture(scope="module", params=["builtin", pytest.param("activemq", marks=pytest.mark.activemq)])
def running_sandbox(request):
    """A sandbox preloaded with the app's customizations (plus the legacy function), app running;
    once with the built-in broker and once with Debian's ActiveMQ (skipped when not installed)."""
    if request.param == "activemq" and not activemq.available():
        pytest.skip("ActiveMQ (Debian package activemq, with a java runtime) is not installed")
    with Sandbox(preload="app", extra_functions=["twilio_get_responses"], broker=request.param,
                 app_settings={"poll_interval": "1s"}) as sandbox:
        sandbox.rest.add_incident(2095, "Suspicious login from 203.0.113.7", "High")
        sandbox.run_app(timeout=90)
        yield sandbox
