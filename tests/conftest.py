"""Fixtures shared by the whole suite: the Twilio emulator and fn_twilio inside resilient-circuits.

Component tests run the app inside pytest-resilient-circuits' ``circuits_app`` (the real
resilient-circuits machinery with SOAR's REST API mocked and STOMP replaced by test actions). The
app talks HTTP to a real :class:`~sandbox.twilio_emulator.TwilioEmulator` through the real twilio
SDK: ``twilio_base_url`` in the app section points at it.

A test class sets ``APP_SETTINGS`` (a dict of [fn_twilio_send_sms] keys that override the defaults
below) and, for labelled configurations, ``LABELLED_SECTIONS``; the class-scoped autouse fixture turns
them into the module's ``config_data`` before ``circuits_app`` reads it.
"""
import json
import socket
import time

import pytest

from sandbox.twilio_emulator import ACCOUNT_SID, AUTH_TOKEN, SENDER, TwilioEmulator

SOAR_MOCK = "tests.soar_mock.FnTwilioSoarMock"


def no_active_poller(timeout: float = 5.0) -> bool:
    """Wait (real time, a guard against hanging) until no shared poller runs: one outlives its last
    watch briefly. True when none is left."""
    from fn_twilio.lib.polling import active_pollers

    deadline = time.monotonic() + timeout
    while active_pollers() and time.monotonic() < deadline:
        time.sleep(0.005)
    return active_pollers() == 0


@pytest.fixture
def no_poller_left():
    """The test starts once the last test's pollers stopped (a call an earlier test left waiting would
    list Twilio beside it), and leaves none running."""
    assert no_active_poller(), "a shared poller of an earlier test still runs"
    yield
    assert no_active_poller(), "a shared poller (replies, delivery statuses, calls) outlived the test"


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
    """The Twilio emulator, empty and without faults, for one test; the app's storm limiters start afresh
    with it (the emulator's log forgets the texts, the limiters must too)."""
    from fn_twilio.lib.storm import forget_limiters

    forget_limiters()
    twilio_emulator.reset()
    twilio_emulator.latency = 0.0
    yield twilio_emulator
    forget_limiters()
    twilio_emulator.reset()


def app_section(base_url, *, label=None, **overrides):
    """The [fn_twilio_send_sms] section text for the emulator, with overrides (None removes a key);
    with ``label``, the labelled section [fn_twilio_send_sms:<label>]."""
    values = {
        "twilio_account_sid": ACCOUNT_SID,
        "twilio_auth_token": AUTH_TOKEN,
        "twilio_src_address": SENDER,
        "twilio_base_url": base_url,
        "poll_interval": "0.2s",
        "timeout": "5",
    }
    values.update(overrides)
    name = "fn_twilio_send_sms" if label is None else f"fn_twilio_send_sms:{label}"
    lines = [f"[{name}]"] + [f"{k} = {v}" for k, v in values.items() if v is not None]
    return "\n".join(lines) + "\n"


# A second Twilio account, served by a second emulator (labelled configurations, contract §16).
SECOND_ACCOUNT_SID = "AC" + "5ec0dd00" * 4
SECOND_AUTH_TOKEN = "second-account-token-55aa66bb77cc"
SECOND_SENDER = "+353861230000"
SECOND = "second"       # in LABELLED_SECTIONS: this section is for the second account


@pytest.fixture(scope="session")
def twilio_emulator_second():
    """A Twilio emulator for a second account (its own SID, token and number)."""
    emulator = TwilioEmulator(account_sid=SECOND_ACCOUNT_SID, auth_token=SECOND_AUTH_TOKEN,
                              numbers=(SECOND_SENDER,), api_keys={}, messaging_services={}).start()
    yield emulator
    emulator.stop()


def second_section(base_url, label, **overrides):
    """A labelled section for the second account's emulator."""
    values = {"twilio_account_sid": SECOND_ACCOUNT_SID, "twilio_auth_token": SECOND_AUTH_TOKEN,
              "twilio_src_address": SECOND_SENDER}
    values.update(overrides)
    return app_section(base_url, label=label, **values)


@pytest.fixture(scope="class", autouse=True)
def _fn_twilio_app_config(request, twilio_emulator):
    """Write the module's config_data/resilient_mock for circuits_app from the class's APP_SETTINGS."""
    if request.cls is None or not hasattr(request.cls, "APP_SETTINGS"):
        yield
        return
    module = request.module
    settings = request.cls.APP_SETTINGS
    # APP_SETTINGS None: no unlabelled section; LABELLED_SECTIONS: {label: overrides} adds
    # [fn_twilio_send_sms:<label>] sections (overrides {"twilio": SECOND, ...}: the second account)
    text = "" if settings is None else app_section(twilio_emulator.base_url, **settings)
    for label, overrides in getattr(request.cls, "LABELLED_SECTIONS", {}).items():
        overrides = dict(overrides)
        if overrides.pop("twilio", None) == SECOND:
            second = request.getfixturevalue("twilio_emulator_second")
            text += "\n" + second_section(second.base_url, label, **overrides)
        else:
            text += "\n" + app_section(twilio_emulator.base_url, label=label, **overrides)
    module.config_data = text
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


def call_function(circuits_app, fn_name, inputs, timeout=30, message=None):
    """Submit a function message through resilient-circuits; return what SOAR would receive.

    The replies are the messages resilient-circuits sends back (status messages, then one final
    message with ``complete`` true carrying the results or the error). ``message`` replaces keys of
    the function message (e.g. a playbook's call: ``{"workflow_instance": None, "playbook_instance":
    {"playbook_instance_id": 7}}``).
    """
    return finish_function(circuits_app, start_function(circuits_app, fn_name, inputs, message), timeout,
                           what=fn_name)


def start_function(circuits_app, fn_name, inputs, message=None):
    """Submit a function message without waiting for it; returns its message id (see call_function)."""
    from resilient_circuits.actions_test_component import SubmitTestFunction

    event = SubmitTestFunction(fn_name, inputs)
    event.kwargs["message"].update(message or {})
    circuits_app.manager.fire(event)
    return event.kwargs["msg_id"]


def finish_function(circuits_app, msg_id, timeout=30, what="the call"):
    """Wait for the call submitted as ``msg_id`` to complete; what SOAR would receive."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        replies = _replies(circuits_app, msg_id)
        final = [r for r in replies if r.get("complete")]
        if final:
            return FunctionCall(final[0].get("results"), replies)
        time.sleep(0.01)
    raise AssertionError(f"{what} gave neither a result nor an error within {timeout} s")


def _replies(circuits_app, msg_id):
    found = []
    with circuits_app.watcher._lock:
        events = list(circuits_app.watcher._events)
    for evt in events:
        if evt.name == "test_response" and evt.args and evt.args[0] == msg_id:
            found.append(json.loads(evt.args[1]))
    return found


# -- the reliability matrices' totals, from one process or from several (pytest-xdist) ----------------
def pytest_sessionfinish(session):
    """In a worker of a parallel run: hand the reliability totals to the controller."""
    output = getattr(session.config, "workeroutput", None)
    if output is not None:
        from tests.reliability import reliability_helpers as helpers
        output["fn_twilio_ledger"] = dict(helpers.LEDGER)


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node, error):
    """In the controller of a parallel run: add up each worker's reliability totals."""
    from tests.reliability import reliability_helpers as helpers
    helpers.LEDGER.update(getattr(node, "workeroutput", {}).get("fn_twilio_ledger") or {})


def pytest_terminal_summary(terminalreporter):
    from tests.reliability import reliability_helpers as helpers
    ledger = helpers.LEDGER
    if not ledger:
        return
    terminalreporter.section("fn_twilio reliability totals")
    terminalreporter.write_line(
        f"fault scenarios: {ledger['fault_scenarios']}, faulted responses served by the emulator: "
        f"{ledger['faulted_responses']}, bad inputs tried: {ledger['bad_inputs']}, "
        f"duplicate SMS seen: {ledger['duplicate_sms']}, function calls: {ledger['calls']}")
