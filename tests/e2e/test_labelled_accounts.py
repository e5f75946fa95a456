"""Labelled configurations end to end (contract §16): the real ``resilient-circuits run`` against the
sandbox SOAR and two Twilio accounts, each served by an emulator of its own.

app.config: the unlabelled [fn_twilio_send_sms] for the sandbox's emulator (the first account),
[fn_twilio_send_sms:eu] for a second account with its own number, and [fn_twilio_send_sms:broken]
without credentials (the app starts anyway, logs it, and only calls that choose it fail).
"""
import threading
import time

import pytest

from e2e_helpers import requires_app, requires_export
from sandbox.soar.sandbox import Sandbox
from sandbox.twilio_emulator import SENDER

pytestmark = [pytest.mark.e2e, requires_app, requires_export]

EU_ACCOUNT = "AC" + "e0e0e0e0" * 4
EU_TOKEN = "eu-account-token-0123456789abcdef"
EU_SENDER = "+353861230000"
ALICE, BOB = "+353861234567", "+14155552345"
INTERVAL = 0.5
LABELS = {"eu": {"account": (EU_ACCOUNT, EU_TOKEN, EU_SENDER)}, "broken": {"twilio_auth_token": None}}


@pytest.fixture(scope="module")
def sandbox():
    with Sandbox(preload="app", extra_functions=["twilio_get_responses"], labels=LABELS,
                 app_settings={"poll_interval": f"{INTERVAL}s"}) as sandbox:
        sandbox.rest.add_incident(2095, "Suspicious login from 203.0.113.7", "High")
        sandbox.run_app(timeout=90)
        yield sandbox


@pytest.fixture
def soar(sandbox):
    for emulator in (sandbox.twilio, sandbox.twilio_for("eu")):
        emulator.reset()
    return sandbox.driver()


def creates(emulator):
    return [r for r in emulator.requests if r.method == "POST" and r.path.endswith("/Messages.json")]


def test_the_app_starts_and_logs_the_section_it_cannot_use(sandbox):
    assert sandbox.twilio_for("eu") is not sandbox.twilio and sandbox.twilio_for("broken") is sandbox.twilio
    log = sandbox.app.log_text()
    assert ("fn_twilio: [fn_twilio_send_sms:broken] (twilio_label 'broken') cannot be used: "
            "twilio_auth_token is not set in [fn_twilio_send_sms:broken]") in log
    assert log.count("[fn_twilio_send_sms:broken] (twilio_label 'broken') cannot be used") == 1  # once
    assert ("fn_twilio: 2 of 3 app.config sections usable: [fn_twilio_send_sms] (twilio_label empty), "
            "[fn_twilio_send_sms:eu] (twilio_label 'eu')") in log


def test_send_through_each_label(sandbox, soar):
    eu = sandbox.twilio_for("eu")
    via_eu = soar.call_function("twilio_send_sms", {"twilio_sms_destination": ALICE,
                                                    "twilio_sms_message": "via eu", "twilio_label": "eu"})
    default = soar.call_function("twilio_send_sms", {"twilio_sms_destination": ALICE,
                                                     "twilio_sms_message": "via the default"})
    assert via_eu.error is None and default.error is None, (via_eu.error, default.error)
    assert via_eu.results["success"] is True and default.results["success"] is True
    [on_eu] = creates(eu)
    assert on_eu.form["From"] == EU_SENDER and on_eu.form["Body"] == "via eu"
    assert f"/Accounts/{EU_ACCOUNT}/" in on_eu.path
    [on_default] = creates(sandbox.twilio)
    assert on_default.form["From"] == SENDER and on_default.form["Body"] == "via the default"
    assert eu.message(via_eu.results["twilio_status"][0]["sid"])["to"] == ALICE


def test_receive_through_each_label(sandbox, soar):
    eu = sandbox.twilio_for("eu")
    call = soar.start_function("twilio_receive_messages", {"twilio_phone_number": ALICE, "twilio_label": "eu",
                                                           "twilio_wait_timeout": "30s"})
    time.sleep(INTERVAL)
    sandbox.twilio.inject_inbound(from_=ALICE, to=SENDER, body="to the first account")
    eu.inject_inbound(from_=ALICE, to=EU_SENDER, body="to the eu account")
    call.wait(30)
    assert call.error is None, call.error
    assert [r["message_body"] for r in call.results["content"]] == ["to the eu account"]
    legacy = soar.call_function("twilio_get_responses", {"twilio_phone_number": ALICE,
                                                         "twilio_wait_timeout": "0s"})
    assert [r["message_body"] for r in legacy.results["content"]] == ["to the first account"]


def test_page_through_a_label(sandbox, soar):
    eu = sandbox.twilio_for("eu")

    def answer():
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not eu.outbound_messages(to=BOB):
            time.sleep(0.05)
        eu.inject_inbound(from_=BOB, to=EU_SENDER, body="ACK 2095")

    threading.Thread(target=answer, daemon=True).start()
    call = soar.start_function("twilio_page", {"twilio_page_tiers": f"{ALICE}; {BOB}", "incident_id": 2095,
                                               "twilio_escalate_after": "2s", "twilio_label": "eu",
                                               "twilio_sms_message": "Incident 2095 needs you."})
    call.wait(60)
    assert call.error is None, call.error
    content = call.results["content"]
    assert content["acknowledged"] is True and content["acknowledged_by"] == BOB and content["tier"] == 2
    assert sorted(m["to"] for m in eu.outbound_messages()) == sorted([ALICE, BOB])
    assert creates(sandbox.twilio) == []


def test_delivery_status_through_each_label(sandbox, soar):
    eu = sandbox.twilio_for("eu")
    sent = soar.call_function("twilio_send_sms", {"twilio_sms_destination": BOB,
                                                  "twilio_sms_message": "status", "twilio_label": "eu"})
    sid = sent.results["twilio_status"][0]["sid"]
    eu.advance_statuses()
    via_eu = soar.call_function("twilio_get_message_status",
                                {"twilio_message_sids": sid, "twilio_label": "eu"})
    assert [(e["sid"], e["status"], e["final"]) for e in via_eu.results["content"]] == \
        [(sid, "delivered", True)]
    via_default = soar.call_function("twilio_get_message_status", {"twilio_message_sids": sid})
    assert via_default.results["content"][0]["status"] == "not_found"


@pytest.mark.parametrize("label, expected", [
    ("apac", "twilio_label 'apac' names no configuration: app.config has no [fn_twilio_send_sms:apac] "
             "section; its labels are broken, eu (and the unlabelled [fn_twilio_send_sms], used when "
             "twilio_label is empty); nothing was done"),
    ("broken", "fn_twilio is not configured correctly: twilio_auth_token is not set in "
               "[fn_twilio_send_sms:broken]"),
])
def test_a_label_that_cannot_be_used_sends_nothing(sandbox, soar, label, expected):
    call = soar.call_function("twilio_send_sms", {"twilio_sms_destination": ALICE,
                                                  "twilio_sms_message": "no", "twilio_label": label})
    assert call.results is None and expected in call.error
    assert "Traceback" not in call.error
    assert sandbox.twilio.requests == [] and sandbox.twilio_for("eu").requests == []


def test_the_example_rule_and_playbook_pass_their_label_field(sandbox, soar):
    eu = sandbox.twilio_for("eu")
    run = soar.fire_rule("Example: Send Twilio SMS", incident_id=2095,
                         properties={"twilio_sms_destination": ALICE, "twilio_sms_message": "rule via eu",
                                     "twilio_label": "eu"})
    assert run.error is None and run.inputs["twilio_label"] == "eu"
    book = soar.run_playbook("Example: Twilio Send SMS (Playbook)", incident_id=2095,
                             inputs={"twilio_sms_destination": BOB, "twilio_sms_message": "playbook via eu",
                                     "twilio_label": "eu"})
    assert book.error is None and book.inputs["twilio_label"] == "eu"
    assert sorted((m["to"], m["body"]) for m in eu.outbound_messages()) == \
        [(BOB, "playbook via eu"), (ALICE, "rule via eu")]
    plain = soar.fire_rule("Example: Send Twilio SMS", incident_id=2095,
                           properties={"twilio_sms_destination": ALICE, "twilio_sms_message": "no label"})
    assert plain.error is None and "twilio_label" not in plain.inputs
    assert [m["body"] for m in sandbox.twilio.outbound_messages()] == ["no label"]


def test_selftest_says_per_label_what_works(sandbox):
    wrong = "wrong-eu-token-000000000000000000"
    section = sandbox.app_section(labels={"eu": {"twilio_auth_token": wrong}})
    launcher = sandbox.launcher("selftest-labels", app_section=section)
    code, output = launcher.selftest()
    assert code == 1, output
    assert "3 of 3 configurations failed" not in output
    assert "2 of 3 configurations failed ('broken', 'eu')" in output
    assert "[fn_twilio_send_sms] (twilio_label empty): success" in output
    assert ("[fn_twilio_send_sms:eu] (twilio_label 'eu'): failure: cannot use the Twilio account: Twilio "
            "error 20003: Twilio rejected the credentials") in output
    assert ("[fn_twilio_send_sms:broken] (twilio_label 'broken'): failure: twilio_auth_token is not "
            "set") in output
    assert wrong not in output and wrong not in launcher.log_text() and EU_TOKEN not in output


def test_selftest_succeeds_when_every_label_works(sandbox):
    section = sandbox.app_section(labels={"broken": {"twilio_auth_token": sandbox.twilio.auth_token}})
    launcher = sandbox.launcher("selftest-labels-ok", app_section=section)
    code, output = launcher.selftest()
    assert code == 0, output
    assert "all 3 configurations work" in output
