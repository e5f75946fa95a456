"""The administrator's commands against the sandbox SOAR: customize, selftest, config -u.

The module's sandbox starts empty (no functions defined), as a fresh SOAR organisation does.
"""
import copy

import pytest

from e2e_helpers import make_customize_app, requires_app, requires_export
from sandbox.soar.export import load_export
from sandbox.soar.sandbox import Sandbox, app_export_path

pytestmark = [pytest.mark.e2e, requires_app, requires_export]


@pytest.fixture(scope="module")
def sandbox():
    with Sandbox() as sandbox:
        yield sandbox


@pytest.fixture(scope="module", autouse=True)
def broken_customize(sandbox, tmp_path_factory):
    """``customize`` of an export whose datatable lacks a column its scripts write, started first and in
    the background: customize's REST client ignores request_max_retries and retries the 400 answer
    five times with back-off (about 30 s), so it runs while the other tests do."""
    export = copy.deepcopy(load_export(app_export_path()))
    table = next(t for t in export["types"] if t["type_name"] == "twilio_sms_log")
    del table["fields"]["msg_body"]
    folder = make_customize_app(str(tmp_path_factory.mktemp("broken-app")), "broken_export_app", export)
    launcher = sandbox.launcher("broken-customize", env={"PYTHONPATH": folder})
    return launcher.command_async("customize", "-y", "-l", "broken_export_app")


@pytest.fixture(scope="module")
def customized(sandbox):
    """``resilient-circuits customize -y -l fn_twilio`` once for the module: (exit code, output)."""
    return sandbox.app.customize()


def test_customize_imports_the_customizations(sandbox, customized):
    code, output = customized
    assert code == 0, output
    rest = sandbox.rest
    assert {"twilio_send_sms", "twilio_receive_messages"} <= set(rest.functions)
    # the legacy name is exported since 2.2.0, under a display name of its own
    assert rest.functions["twilio_get_responses"]["display_name"] == "Twilio: Get Responses (2.0.x)"
    assert {"Example: Send Twilio SMS", "Example: Twilio Receive Messages",
            "Twilio: Get Responses"} <= set(rest.rules)
    assert "twilio_sms_log" in rest.datatables
    assert rest.message_destinations["fn_twilio"]["api_keys"] == [rest.api_key_handle]
    calls = [(r.method, r.path.replace("/rest/orgs/201", ""), r.status) for r in rest.requests
             if ("/configurations/" in r.path or "/message_destinations" in r.path)
             and r.status != 400]          # leaves out the broken export's rejected POSTs
    dest_id = rest.message_destinations["fn_twilio"]["id"]
    assert [(m, p) for m, p, _ in calls] == [
        ("POST", "/configurations/imports"),
        ("PUT", f"/configurations/imports/{list(rest.imports)[0]}"),
        ("GET", "/message_destinations"),
        ("GET", f"/message_destinations/{dest_id}"),
        ("PUT", f"/message_destinations/{dest_id}"),
    ]
    assert all(status == 200 for _, _, status in calls)


def test_run_without_the_legacy_function_serves_the_others(sandbox, customized):
    """A server where twilio_get_responses is not defined (an administrator deleted it after customize):
    it is unknown (404) and only its own component stays unsubscribed; the others serve."""
    legacy_definition = sandbox.rest.functions["twilio_get_responses"]
    sandbox.rest.remove_function("twilio_get_responses")
    launcher = sandbox.launcher("run-after-customize")
    launcher.start(timeout=60)
    try:
        sandbox.broker.wait_for_frame("SUBSCRIBE", "actions.201.fn_twilio")
        legacy = sandbox.rest.request_log("GET", "/functions/twilio_get_responses")
        assert legacy and legacy[-1].status == 404
        assert "Function 'twilio_get_responses' is not defined" in launcher.log_text()
        call = sandbox.driver().call_function("twilio_send_sms", {"twilio_sms_destination": "+353861234567",
                                                                  "twilio_sms_message": "after customize"})
        assert call.results["success"] is True, call.error
    finally:
        launcher.stop()
        sandbox.rest.functions["twilio_get_responses"] = legacy_definition


def test_selftest_succeeds_with_working_credentials(sandbox, customized):
    code, output = sandbox.app.selftest()
    assert code == 0, output
    assert "fn_twilio" in output and "success" in output


def test_selftest_fails_with_a_reason_on_a_wrong_token(sandbox, customized):
    secret = "not-the-token-1234567890"
    launcher = sandbox.launcher("selftest-bad-token",
                                app_section=sandbox.app_section(twilio_auth_token=secret))
    code, output = launcher.selftest()
    assert code == 1, output
    assert "failure" in output and "Twilio rejected the credentials" in output
    assert secret not in output and secret not in launcher.log_text()


def test_selftest_fails_when_the_sender_is_not_on_the_account(sandbox, customized):
    launcher = sandbox.launcher("selftest-bad-sender",
                                app_section=sandbox.app_section(twilio_src_address="+15005550123"))
    code, output = launcher.selftest()
    assert code == 1, output
    assert "twilio_src_address is not a phone number of this Twilio account" in output


def test_config_update_appends_the_section_once(sandbox):
    launcher = sandbox.launcher("config-update", app_section="")
    assert "[fn_twilio_send_sms]" not in launcher.config_text()
    code, output = launcher.config_update()
    assert code == 0, output
    text = launcher.config_text()
    assert text.count("[fn_twilio_send_sms]") == 1
    assert "twilio_account_sid" in text and "#max_recipients=100" in text
    code, output = launcher.config_update()
    assert code == 0 and launcher.config_text() == text
    assert "No updates" in output


def test_dashed_package_name_is_not_found(sandbox):
    """resilient-circuits matches -l against the exact distribution name (contract §7)."""
    code, output = sandbox.app.command("config", "-u", "-l", "fn-twilio")
    assert code == 0
    assert "not found" in output


def test_customize_rejects_an_export_whose_datatable_lacks_a_written_column(sandbox, broken_customize):
    code, output = broken_customize.wait(90)
    assert code != 0, output
    assert "Import rejected" in output
    assert "writes column 'msg_body' but datatable 'twilio_sms_log' has no such column" in output
    rejected = [r for r in sandbox.rest.requests
                if r.path.endswith("/configurations/imports") and r.status == 400]
    assert len(rejected) == 5               # resilient's default request_max_retries
    assert all(imp["export"]["types"][0]["fields"].get("msg_body") for imp in sandbox.rest.imports.values())
