"""Fixtures shared by the whole suite: the Twilio emulator and fn_twilio inside resilient-circuits.

Component tests run the app inside pytest-resilient-circuits' ``circuits_app`` (the real
resilient-circuits machinery with SOAR's REST API mocked and STOMP replaced by test actions). The
app talks HTTP to a real :class:`~sandbox.twilio_emulator.TwilioEmulator` through the real twilio
SDK: ``twilio_base_url`` in the app section points at it.

A test class sets ``APP_SETTINGS`` (a dict of [fn_twilio_send_sms] keys that override the defaults
below); the class-scoped autouse fixture turns it into the module's ``config_data`` before
``circuits_app`` reads it.
"""
import json
import socket
import time

import pytest

from sandbox.twilio_emulator import ACCOUNT_SID, AUTH_TOKEN, SENDER, TwilioEmulator

SOAR_MOCK = "tests.soar_mock.FnTwilioSoarMock"


@pytest.fixture(scope="session")
def twilio_emulator():
    """One Twilio emulator for the session; tests reset it through ``twilio``."""
    emulator = TwilioEmulator().start()
    yield emulator
    emulator.stop()


@pytest.fixture(scope="session")
def twilio_openapi():
    """Twilio's OpenAPI spec (openapi-core), or a skip naming where the file was expected."""
    from sandbox import twilio_spec

    reason = twilio_spec.skip_reason()
    if reason:
        pytest.skip(reason)
    return twilio_spec.load_spec()


@pytest.fixture(scope="session")
def twilio_studio_openapi():
    """Twilio's Studio v2 OpenAPI spec (openapi-core), or a skip naming where the file was expected."""
    from sandbox import twilio_spec

    reason = twilio_spec.skip_reason("studio")
    if reason:
        pytest.skip(reason)
    return twilio_spec.load_spec("studio")


@pytest.fixture
def twilio(twilio_emulator):
    """The Twilio emulator, empty and without faults, for one test."""
    twilio_emulator.reset()
    twilio_emulator.latency = 0.0
    yield twilio_emulator
    twilio_emulator.reset()


def app_section(base_url, **overrides):
    """The [fn_twilio_send_sms] section text for the emulator, with overrides (None removes a key)."""
    values = {
        "twilio_account_sid": ACCOUNT_SID,
        "twilio_auth_token": AUTH_TOKEN,
        "twilio_src_address": SENDER,
        "twilio_base_url": base_url,
        "poll_interval": "0.2s",
        "timeout": "5",
    }
    values.update(overrides)
    lines = ["[fn_twilio_send_sms]"] + [f"{k} = {v}" for k, v in values.items() if v is not None]
    return "\n".join(lines) + "\n"


@pytest.fixture(scope="class", autouse=True)
def _fn_twilio_app_config(request, twilio_emulator):
    """Write the module's config_data/resilient_mock for circuits_app from the class's APP_SETTINGS."""
    if request.cls is None or not hasattr(request.cls, "APP_SETTINGS"):
        yield
        return
    module = request.module
    module.config_data = app_section(twilio_emulator.base_url, **request.cls.APP_SETTINGS)
    module.resilient_mock = SOAR_MOCK
    # resilient-circuits' test-actions server binds a fixed default port (the fixture's test_port=0
    # reads as "unset"): give it a free one, so test runs on the same machine do not collide.
    from resilient_circuits.actions_test_component import ResilientTestActions
    defaults = ResilientTestActions.__init__.__defaults__
    ResilientTestActions.__init__.__defaults__ = (defaults[0], _free_port())
    yield
    ResilientTestActions.__init__.__defaults__ = defaults


def _free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class FunctionCall:
    """What SOAR would receive for one function invocation."""

    def __init__(self, result, replies):
        self.result = result            # the `results` SOAR receives (dict), or None
        self.replies = replies          # every reply message, in order
        self.statuses = [r["message"] for r in replies
                         if r.get("message_type") == 0 and not r.get("complete")]
        errors = [r["message"] for r in replies if r.get("message_type") == 1]
        self.error = errors[0] if errors else None


def call_function(circuits_app, fn_name, inputs, timeout=30):
    """Submit a function message through resilient-circuits; return what SOAR would receive.

    The replies are the messages resilient-circuits sends back (status messages, then one final
    message with ``complete`` true carrying the results or the error).
    """
    from resilient_circuits.actions_test_component import SubmitTestFunction

    event = SubmitTestFunction(fn_name, inputs)
    msg_id = event.kwargs["msg_id"]
    circuits_app.manager.fire(event)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        replies = _replies(circuits_app, msg_id)
        final = [r for r in replies if r.get("complete")]
        if final:
            return FunctionCall(final[0].get("results"), replies)
        time.sleep(0.01)
    raise AssertionError(f"{fn_name} gave neither a result nor an error within {timeout} s")


def _replies(circuits_app, msg_id):
    found = []
    with circuits_app.watcher._lock:
        events = list(circuits_app.watcher._events)
    for evt in events:
        if evt.name == "test_response" and evt.args and evt.args[0] == msg_id:
            found.append(json.loads(evt.args[1]))
    return found
