"""Secrets and privacy over a broad set of scenarios, with the root logger and every logger at DEBUG.

Every test of tests/reliability already runs under the checks of conftest.py (no secret in any log
line, status message, result or error; no full phone number in fn_twilio's log lines above DEBUG or
in a status message). The tests here put the secrets to work on purpose and check explicitly:

* through the functions: Twilio API key credentials (the API key secret is sent on every request),
  the SOAR API key secret in the app.config, success, every fault kind on create and on the reply
  look-up, wrong credentials, a secret pasted into the wrong key, bad inputs;
* the selftest (``fn_twilio.util.selftest.selftest_function``): success and each failure reason,
  Twilio faults, unreachable Twilio or proxy, and bad settings.

Phone numbers: above DEBUG, only resilient-circuits' own report of an exception a function raised
(it logs the traceback and the function's inputs at ERROR, for bad inputs) may hold a full number;
anything else fails.
"""
import base64
import logging

import pytest

from fn_twilio.lib.settings import SECTION
from fn_twilio.util.selftest import selftest_function
from sandbox.twilio_emulator import (ACCOUNT_SID, API_KEY_SECRET, API_KEY_SID, AUTH_TOKEN,
                                     MESSAGING_SERVICE_SID, SENDER)
from tests.reliability import reliability_helpers as helpers
from tests.reliability.reliability_helpers import (ALICE, BOB, FULL_NUMBER, LEDGER, PrivacyWatch, closed_port,
                                                   lists, receive, send, unique_body)

WRONG_TOKEN = "badc0ffee0ddf00dbadc0ffee0ddf00d"
API_KEY_CREDENTIALS = {"twilio_api_key_sid": API_KEY_SID, "twilio_api_key_secret": API_KEY_SECRET,
                       "twilio_auth_token": None}
WRONG_KEY_SECRET = "wrong-api-key-secret-0987654321"
WRONG = {"a wrong auth token": WRONG_TOKEN, "a wrong API key secret": WRONG_KEY_SECRET}

# One create fault per recipient of a single call: (kind, keyword arguments)
CREATE_FAULTS = [
    ("status", {"status": 500}), ("status", {"status": 503}), ("status", {"status": 429, "retry_after": 0}),
    ("status", {"status": 401, "code": 20003}), ("status", {"status": 400, "code": 21617}),
    ("html", {}), ("garbage", {}), ("empty", {}), ("drop", {}), ("commit_then_drop", {}),
    ("delay", {"delay": 1.6}),
]
GET_FAULTS = [("status", {"status": 500}), ("html", {}), ("garbage", {}), ("drop", {})]
GET = {"method": "GET", "path_contains": "/Messages.json"}


def assert_only_expected_numbers(watch):
    """Above DEBUG, a full number may appear only where resilient-circuits reports a raised exception."""
    loud = [(name, text[:200]) for name, level, text in watch.records
            if level > logging.DEBUG and FULL_NUMBER.search(text)
            and not (name == "resilient_circuits.actions_component" and level >= logging.ERROR
                     and "FunctionError_" in text)]
    assert not loud, loud


class TestThroughTheFunctions:
    """API key credentials (the auth token is configured too: the key wins)."""

    APP_SETTINGS = {"twilio_api_key_sid": API_KEY_SID, "twilio_api_key_secret": API_KEY_SECRET,
                    "timeout": "1"}

    def test_secrets_stay_out_of_logs_statuses_results_and_errors(self, circuits_app, twilio):
        assert circuits_app.app.opts.get("api_key_secret") == helpers.SOAR_API_KEY_SECRET   # in play
        victims = [f"+3538612360{n:02d}" for n in range(len(CREATE_FAULTS))]
        for victim, (kind, kwargs) in zip(victims, CREATE_FAULTS):
            twilio.inject_fault(kind, match_to=victim, **kwargs)
        LEDGER["fault_scenarios"] += len(CREATE_FAULTS) + len(GET_FAULTS) + 1
        with PrivacyWatch() as watch:
            ok, _ = send(circuits_app, f"{ALICE}, {BOB}")
            faulty, _ = send(circuits_app, ", ".join(victims))
            twilio.inject_inbound(from_=ALICE, to=SENDER, body=unique_body("yes"))
            for kind, kwargs in GET_FAULTS:
                twilio.inject_fault(kind, **GET, **kwargs)
            found, _ = receive(circuits_app, ALICE, wait="20s")
            twilio.inject_fault("status", times=None, status=401, code=20003, **GET)
            lasting, _ = receive(circuits_app, BOB, wait="20s")
            twilio.clear_faults()
            refused = [send(circuits_app, "")[0], send(circuits_app, f"{ALICE}+{BOB[1:]}")[0],
                       receive(circuits_app, f"{ALICE}, abc")[0], receive(circuits_app, ALICE, wait="abc")[0]]
        watch.check()
        assert_only_expected_numbers(watch)
        # the scenarios did what they say
        assert ok.result["success"] is True
        retried = [kwargs.get("status") == 429 for _, kwargs in CREATE_FAULTS]   # a 429 is retried, then sent
        assert [e["phone_number"] for e in faulty.result["twilio_status"]] == victims
        assert [e["success"] for e in faulty.result["twilio_status"]] == retried
        assert found.result["success"] is True
        assert sum(1 for r in lists(twilio) if r.fault) >= len(GET_FAULTS) + 1
        assert lasting.result["reason"].startswith("Could not read replies from Twilio: Twilio error 20003")
        assert all(call.error for call in refused)
        # the API key secret was really sent with every request
        users = {base64.b64decode(r.header("Authorization")[6:]).decode().split(":")[0]
                 for r in twilio.requests}
        assert twilio.requests and users == {API_KEY_SID}


class TestVoicePage:
    """A page that calls, through API key credentials, with Studio faults: the secrets stay out and the
    numbers are masked in the voice core's log lines (calls started, failed, followed, ended)."""

    APP_SETTINGS = {"twilio_api_key_sid": API_KEY_SID, "twilio_api_key_secret": API_KEY_SECRET,
                    "timeout": "1", "poll_interval": "0.2s"}

    def test_a_voice_page_with_studio_faults_keeps_secrets_and_masks_numbers(self, circuits_app, twilio):
        from fn_twilio.lib.voice import forget_flows
        forget_flows()   # the emulator was emptied: a flow found by an earlier test is gone
        failing, garbled, answering = "+353861236101", "+353861236102", "+353861236103"
        twilio.inject_fault("status", path_contains="/Executions", match_to=failing, status=500)
        twilio.inject_fault("garbage", path_contains="/Executions", match_to=garbled)
        twilio.inject_fault("status", method="GET", path_contains="/Executions", status=500)
        twilio.script_calls(answering, "answer", press="1", press_after=0.5)
        LEDGER["fault_scenarios"] += 3
        with PrivacyWatch() as watch:
            paged, _ = helpers.call(circuits_app, "twilio_page", {
                "twilio_page_tiers": f"voice:{failing}, voice:{garbled}; voice:{answering}",
                "twilio_sms_message": unique_body("Voice"), "twilio_escalate_after": "10m",
                "incident_id": 2095})
        watch.check()
        assert_only_expected_numbers(watch)
        content = paged.result["content"]
        assert content["acknowledged_by"] == answering and content["tier"] == 2
        assert [(p["phone_number"], p["success"], p["may_have_sent"]) for p in content["pages"]] == [
            (failing, False, True), (garbled, False, True), (answering, True, False)]
        assert {r.header("Authorization") for r in twilio.requests} == \
            {"Basic " + base64.b64encode(f"{API_KEY_SID}:{API_KEY_SECRET}".encode()).decode()}


class TestWrongCredentials:
    APP_SETTINGS = {"twilio_auth_token": WRONG_TOKEN}

    def test_a_wrong_token_is_not_repeated_anywhere(self, circuits_app, twilio):
        LEDGER["fault_scenarios"] += 1
        with PrivacyWatch() as watch:
            sent, _ = send(circuits_app, f"{ALICE}, {BOB}")
            looked, _ = receive(circuits_app, ALICE, wait="5s")
        watch.check(extra_secrets=WRONG)
        assert_only_expected_numbers(watch)
        assert {e["error_code"] for e in sent.result["twilio_status"]} == {20003}
        assert "20003" in looked.result["reason"]


class TestSecretInTheWrongKey:
    """The auth token pasted as the sender: the error names the key and hides the value."""

    APP_SETTINGS = {"twilio_src_address": AUTH_TOKEN}

    def test_the_error_names_the_key_not_the_value(self, circuits_app, twilio):
        with PrivacyWatch() as watch:
            sent, _ = send(circuits_app, ALICE)
            looked, _ = receive(circuits_app, ALICE)
        watch.check()
        for call in (sent, looked):
            assert "fn_twilio is not configured correctly: twilio_src_address" in call.error
        assert not twilio.requests


class TestLabelledSections:
    """Labelled sections (contract §16): one with the API key, one with a wrong token, one with a secret
    pasted into the wrong key; calls through each, and labels that name no section."""

    APP_SETTINGS = {}
    LABELLED_SECTIONS = {"eu": API_KEY_CREDENTIALS, "wrong": {"twilio_auth_token": WRONG_TOKEN},
                         "pasted": {"twilio_src_address": API_KEY_SECRET}}

    def test_secrets_of_every_section_stay_out_of_everything(self, circuits_app, twilio):
        LEDGER["fault_scenarios"] += 1
        with PrivacyWatch() as watch:
            via_eu, _ = send(circuits_app, ALICE, twilio_label="eu")
            twilio.inject_inbound(from_=ALICE, to=SENDER, body=unique_body("ack"))
            looked, _ = receive(circuits_app, ALICE, wait="5s", twilio_label="eu")
            wrong, _ = send(circuits_app, BOB, twilio_label="wrong")
            wrong_look, _ = receive(circuits_app, BOB, wait="5s", twilio_label="wrong")
            pasted, _ = send(circuits_app, ALICE, twilio_label="pasted")
            unknown, _ = send(circuits_app, ALICE, twilio_label="apac")
        watch.check(extra_secrets=WRONG)
        assert_only_expected_numbers(watch)
        assert via_eu.result["success"] is True and looked.result["success"] is True
        assert {e["error_code"] for e in wrong.result["twilio_status"]} == {20003}
        assert "20003" in wrong_look.result["reason"]
        assert pasted.error.startswith("fn_twilio is not configured correctly: [fn_twilio_send_sms:pasted] "
                                       "twilio_src_address")
        assert unknown.error.startswith("twilio_label 'apac' names no configuration") \
            and "its labels are eu, pasted, wrong" in unknown.error
        users = {base64.b64decode(r.header("Authorization")[6:]).decode().split(":")[0]
                 for r in twilio.requests}
        assert users == {API_KEY_SID, ACCOUNT_SID}       # eu's key; the wrong token's account


# -- the selftest ---------------------------------------------------------------------------------------

def opts(emu, integrations=None, **section):
    values = {"twilio_account_sid": ACCOUNT_SID, "twilio_auth_token": AUTH_TOKEN,
              "twilio_src_address": SENDER, "twilio_base_url": emu.base_url, "timeout": "1"}
    values.update(section)
    return {SECTION: {k: v for k, v in values.items() if v is not None}, "integrations": integrations or {},
            "resilient": {"api_key_id": helpers.SOAR_API_KEY_ID,
                          "api_key_secret": helpers.SOAR_API_KEY_SECRET},
            "api_key_secret": helpers.SOAR_API_KEY_SECRET}


NUMBERS = {"method": "GET", "path_contains": "/IncomingPhoneNumbers.json"}
API_KEY = {"twilio_api_key_sid": API_KEY_SID, "twilio_api_key_secret": API_KEY_SECRET}


def fault_then(kind, **kwargs):
    return lambda emu: emu.inject_fault(kind, **NUMBERS, **kwargs)


SELFTESTS = [
    # id, section overrides, setup(emu), expected reason text (None: success)
    ("success with the auth token", {}, None, None),
    ("success with an API key", API_KEY, None, None),
    ("success with a Messaging Service", {**API_KEY, "twilio_src_address": None,
                                          "twilio_messaging_service_sid": MESSAGING_SERVICE_SID}, None, None),
    ("wrong auth token", {"twilio_auth_token": WRONG_TOKEN}, None, "Twilio rejected the credentials"),
    ("wrong API key secret", {**API_KEY, "twilio_api_key_secret": WRONG_KEY_SECRET}, None,
     "Twilio rejected the credentials"),
    ("sender not on the account", {"twilio_src_address": "+15005550123"}, None,
     "twilio_src_address is not a phone number of this Twilio account"),
    ("Messaging Service not on the account", {"twilio_src_address": None,
                                              "twilio_messaging_service_sid": "MG" + "7" * 32}, None,
     "twilio_messaging_service_sid is not a Messaging Service of this account"),
    ("Twilio 500", {}, fault_then("status", status=500), "HTTP 500"),
    ("Twilio 503 HTML page", {}, fault_then("html", status=503), "HTML page"),
    ("Twilio garbage", {}, fault_then("garbage"), "not JSON"),
    ("Twilio empty answer", {}, fault_then("empty"), "Twilio"),
    ("Twilio drops the connection", {}, fault_then("drop"), "broke before it answered"),
    ("Twilio slower than timeout", {}, fault_then("delay", delay=1.6), "did not answer within 1 s"),
    ("Twilio unreachable", {"twilio_base_url": "closed"}, None, "Twilio could not be reached"),
    ("proxy unreachable", {"proxy": "closed"}, None, "the proxy configured for Twilio"),
    ("auth token pasted as the sender", {"twilio_src_address": AUTH_TOKEN}, None, "twilio_src_address"),
    ("API key secret pasted as the account SID", {**API_KEY, "twilio_account_sid": API_KEY_SECRET}, None,
     "twilio_account_sid"),
    ("credentials in twilio_base_url", {"twilio_base_url": f"http://{ACCOUNT_SID}:{AUTH_TOKEN}@127.0.0.1:1"},
     None, "twilio_base_url must not contain a user name or password"),
    ("token in twilio_base_url's query", {"twilio_base_url": f"http://127.0.0.1:1/?token={AUTH_TOKEN}"}, None,
     "twilio_base_url"),
    ("auth token missing", {"twilio_auth_token": None}, None, "twilio_auth_token is not set"),
    ("API key without its secret", {"twilio_api_key_sid": API_KEY_SID}, None,
     "twilio_api_key_secret is not set"),
    ("unresolved $ENV reference", {"twilio_auth_token": "$TWILIO_AUTH_TOKEN_NOT_SET"}, None,
     "unresolved $ENV or ^keystore reference"),
]


@pytest.mark.parametrize("name, section, setup, expected", SELFTESTS, ids=[s[0] for s in SELFTESTS])
def test_selftest_keeps_secrets(twilio, caplog, name, section, setup, expected):
    caplog.set_level(logging.DEBUG)
    section = dict(section)
    integrations = {}
    if section.get("twilio_base_url") == "closed":
        section["twilio_base_url"] = f"http://127.0.0.1:{closed_port()}"
    if section.pop("proxy", None) == "closed":
        integrations = {"http_proxy": f"http://127.0.0.1:{closed_port()}"}
    if setup is not None:
        setup(twilio)
        LEDGER["fault_scenarios"] += 1
    with PrivacyWatch() as watch:
        result = selftest_function(opts(twilio, integrations, **section))
    watch.extra_records = helpers.caplog_records(caplog)
    watch.check(extra_texts=[repr(result)], extra_secrets=WRONG)
    if expected is None:
        assert result["state"] == "success" and set(result) == {"state", "reason"}
        assert "can place calls" in result["reason"] or "a Messaging Service" in result["reason"]
    else:
        assert result["state"] == "failure" and expected in result["reason"], result


class TestLogLinesReachTheLogFile:
    APP_SETTINGS = {}

    def test_reply_poller_lines_survive_the_redacting_filter(self, circuits_app, twilio):
        twilio.inject_inbound(from_=ALICE, to=SENDER, body=unique_body("ok"))
        twilio.inject_fault("status", status=500, **GET)
        with PrivacyWatch() as watch:
            found, _ = receive(circuits_app, ALICE, wait="10s")
        assert found.result["success"] is True
        assert not watch.dropped, watch.dropped


def test_selftest_of_labelled_sections_keeps_secrets(twilio, caplog):
    """Every section checked, one per label; the failing ones named, no secret of any section shown."""
    caplog.set_level(logging.DEBUG)
    options = opts(twilio)
    base = dict(options[SECTION])
    options[f"{SECTION}:eu"] = {**base, **API_KEY, "twilio_auth_token": None}
    options[f"{SECTION}:wrong-key"] = {**base, **API_KEY, "twilio_api_key_secret": WRONG_KEY_SECRET}
    options[f"{SECTION}:pasted"] = {**base, "twilio_src_address": API_KEY_SECRET}
    options[f"{SECTION}:unresolved"] = {**base, "twilio_auth_token": "$TWILIO_AUTH_TOKEN_UNSET"}
    with PrivacyWatch() as watch:
        result = selftest_function(options)
        from fn_twilio.util.app_settings import report_configurations
        report_configurations(options)           # what a component logs at load
    watch.extra_records = helpers.caplog_records(caplog)
    watch.check(extra_texts=[repr(result)], extra_secrets=WRONG)
    assert result["state"] == "failure"
    reason = result["reason"]
    assert reason.startswith("3 of 5 configurations failed ('pasted', 'unresolved', 'wrong-key'). ")
    assert "[fn_twilio_send_sms] (twilio_label empty): success" in reason
    assert "[fn_twilio_send_sms:eu] (twilio_label 'eu'): success" in reason
    assert "(twilio_label 'wrong-key'): failure: cannot use the Twilio account" in reason
    assert "(twilio_label 'pasted'): failure: [fn_twilio_send_sms:pasted] twilio_src_address" in reason
    assert ("(twilio_label 'unresolved'): failure: [fn_twilio_send_sms:unresolved] twilio_auth_token is not "
            "set") in reason
    logged = {text for name, level, text in watch.records       # the watch's records and caplog's
              if level == logging.ERROR and "cannot be used" in text}
    assert len(logged) == 2 and all("[fn_twilio_send_sms:" in text for text in logged)
