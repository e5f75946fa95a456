"""Labelled configurations (contract §16) through resilient-circuits: every function with its
``twilio_label`` input, against two Twilio accounts (two emulators, the real twilio SDK over HTTP).

The unlabelled section and ``backup`` are the first account (the suite's emulator, ``twilio``); ``eu``
is a second account with its own number (``twilio_emulator_second``).
"""
import threading
import time

import pytest

from fn_twilio.lib.polling import active_pollers
from fn_twilio.lib.replies import ReplyPoller
from sandbox.twilio_emulator import SENDER
from tests.conftest import SECOND, SECOND_ACCOUNT_SID, SECOND_SENDER, call_function

ALICE, BOB = "+353861234567", "+14155552345"


@pytest.fixture
def second(twilio_emulator_second):
    """The second account's emulator, empty, for one test."""
    twilio_emulator_second.reset()
    yield twilio_emulator_second
    twilio_emulator_second.reset()


def creates(emulator):
    return [r for r in emulator.requests if r.method == "POST" and r.path.endswith("/Messages.json")]


def send(circuits_app, label=None, to=ALICE, message="Labelled hello", **inputs):
    values = {"twilio_sms_destination": to, "twilio_sms_message": message, **inputs}
    if label is not None:
        values["twilio_label"] = label
    return call_function(circuits_app, "twilio_send_sms", values)


def reply_when_texted(emulator, number, body, to, timeout=20.0):
    """A thread that waits until ``number`` got a text on ``emulator``, then answers ``body``."""
    def run():
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and not emulator.outbound_messages(to=number):
            time.sleep(0.02)
        emulator.inject_inbound(from_=number, to=to, body=body)
    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


class TestTwoAccounts:
    APP_SETTINGS = {"max_wait_timeout": "1h"}
    LABELLED_SECTIONS = {"eu": {"twilio": SECOND}, "backup": {"max_recipients": "2", "default_region": "IE"}}

    def test_send_goes_through_the_account_and_sender_of_its_label(self, circuits_app, twilio, second):
        labelled = send(circuits_app, "eu", message="via eu")
        default = send(circuits_app, None, message="via the unlabelled section")
        assert labelled.error is None and default.error is None
        [on_second] = creates(second)
        assert on_second.form["From"] == SECOND_SENDER
        assert f"/Accounts/{SECOND_ACCOUNT_SID}/" in on_second.path
        assert on_second.form["Body"] == "via eu"
        [on_first] = creates(twilio)
        assert on_first.form["From"] == SENDER and on_first.form["Body"] == "via the unlabelled section"
        sid = labelled.result["twilio_status"][0]["sid"]
        assert second.message(sid)["to"] == ALICE

    def test_the_label_brings_its_own_settings(self, circuits_app, twilio, second):
        # backup: same account and sender, default_region IE and max_recipients 2
        call = send(circuits_app, "backup", to="086 123 4567")
        assert call.error is None and [e["phone_number"] for e in call.result["twilio_status"]] == [ALICE]
        refused = send(circuits_app, "backup", to=f"{ALICE}, {BOB}, +447911123456")
        assert "more than max_recipients (2)" in refused.error
        unlabelled = send(circuits_app, None, to="086 123 4567")      # no default_region there
        assert "has no country code" in unlabelled.error
        assert len(creates(twilio)) == 1 and creates(second) == []

    @pytest.mark.parametrize("label, expected", [
        ("apac", "twilio_label 'apac' names no configuration: app.config has no [fn_twilio_send_sms:apac] "
                 "section; its labels are backup, eu (and the unlabelled [fn_twilio_send_sms], used when "
                 "twilio_label is empty); nothing was done"),
        ("EU", "did you mean 'eu'? Labels are case-sensitive"),
        ("eu west", "twilio_label 'eu west' is not a valid label: it holds a space"),
        ("eu]", "it holds ']'"),
    ])
    @pytest.mark.parametrize("fn, inputs", [
        ("twilio_send_sms", {"twilio_sms_destination": ALICE, "twilio_sms_message": "x"}),
        ("twilio_receive_messages", {"twilio_phone_number": ALICE, "twilio_wait_timeout": "0s"}),
        ("twilio_get_responses", {"twilio_phone_number": ALICE, "twilio_wait_timeout": "0s"}),
        ("twilio_get_message_status", {"twilio_message_sids": "SM" + "1" * 32}),
        ("twilio_page", {"twilio_page_tiers": ALICE, "twilio_sms_message": "x"}),
    ])
    def test_a_label_that_names_no_section_is_refused_and_nothing_is_asked(self, circuits_app, twilio, second,
                                                                           fn, inputs, label, expected):
        call = call_function(circuits_app, fn, {**inputs, "twilio_label": label})
        assert call.result is None and expected in call.error
        assert twilio.requests == [] and second.requests == []

    def test_receive_reads_the_replies_of_its_labels_account(self, circuits_app, twilio, second):
        second.inject_inbound(from_=ALICE, to=SECOND_SENDER, body="reply on the second account")
        twilio.inject_inbound(from_=ALICE, to=SENDER, body="reply on the first account")
        for fn in ("twilio_receive_messages", "twilio_get_responses"):
            call = call_function(circuits_app, fn, {"twilio_phone_number": ALICE, "twilio_wait_timeout": "5s",
                                                    "twilio_label": "eu"})
            assert [r["message_body"] for r in call.result["content"]] == ["reply on the second account"]
            assert call.result["inputs"]["twilio_label"] == "eu"
        default = call_function(circuits_app, "twilio_receive_messages",
                                {"twilio_phone_number": ALICE, "twilio_wait_timeout": "0s"})
        assert [r["message_body"] for r in default.result["content"]] == ["reply on the first account"]

    def test_delivery_status_reads_its_labels_account(self, circuits_app, twilio, second):
        sid = send(circuits_app, "eu").result["twilio_status"][0]["sid"]
        second.advance_statuses()
        via_eu = call_function(circuits_app, "twilio_get_message_status",
                               {"twilio_message_sids": sid, "twilio_label": "eu"})
        assert [(e["sid"], e["status"]) for e in via_eu.result["content"]] == [(sid, "delivered")]
        via_default = call_function(circuits_app, "twilio_get_message_status", {"twilio_message_sids": sid})
        assert via_default.result["content"][0]["status"] == "not_found"      # not on the first account

    def test_page_through_a_label(self, circuits_app, twilio, second):
        reply_when_texted(second, BOB, "ACK 2095", to=SECOND_SENDER)
        call = call_function(circuits_app, "twilio_page", {
            "twilio_page_tiers": f"{ALICE}; {BOB}", "twilio_sms_message": "Incident 2095 needs you.",
            "incident_id": 2095, "twilio_escalate_after": "1s", "twilio_label": "eu"}, timeout=60)
        content = call.result["content"]
        assert content["acknowledged"] is True and content["acknowledged_by"] == BOB and content["tier"] == 2
        assert sorted(m["to"] for m in second.outbound_messages()) == sorted([ALICE, BOB])
        assert twilio.requests == []                                          # nothing on the first account

    def test_two_labels_on_one_account_and_sender_share_one_reply_poller(self, circuits_app, twilio, second):
        calls = {}

        def receive(label):
            inputs = {"twilio_phone_number": BOB if label else ALICE, "twilio_wait_timeout": "20s"}
            if label:
                inputs["twilio_label"] = label
            calls[label] = call_function(circuits_app, "twilio_receive_messages", inputs, timeout=40)

        threads = [threading.Thread(target=receive, args=(label,)) for label in (None, "backup", "eu")]
        for thread in threads:
            thread.start()

        def looked_for(emulator, number):   # a call without a moment reads its number's messages first
            return any(r.method == "GET" and r.path.endswith("/Messages.json")
                       and number in r.query.get("From", [])
                       for r in emulator.requests)

        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and not (looked_for(twilio, ALICE) and looked_for(twilio, BOB)
                                                   and looked_for(second, BOB)):
            time.sleep(0.02)
        assert looked_for(twilio, ALICE) and looked_for(twilio, BOB) and looked_for(second, BOB)
        # the unlabelled section and backup: one account and sender, one poller; eu: its own
        assert active_pollers(ReplyPoller.kind) == 2
        twilio.inject_inbound(from_=ALICE, to=SENDER, body="for the unlabelled call")
        twilio.inject_inbound(from_=BOB, to=SENDER, body="for the backup call")
        second.inject_inbound(from_=BOB, to=SECOND_SENDER, body="for the eu call")
        for thread in threads:
            thread.join(40)
        assert [r["message_body"] for r in calls[None].result["content"]] == ["for the unlabelled call"]
        assert [r["message_body"] for r in calls["backup"].result["content"]] == ["for the backup call"]
        assert [r["message_body"] for r in calls["eu"].result["content"]] == ["for the eu call"]


class TestOnlyLabelledSections:
    APP_SETTINGS = None                 # no unlabelled [fn_twilio_send_sms]
    LABELLED_SECTIONS = {"eu": {"twilio": SECOND}, "us": {}}

    def test_an_empty_label_is_refused_naming_the_labels(self, circuits_app, twilio, second):
        call = send(circuits_app, None)
        assert call.error == ("twilio_label is empty, but app.config has no unlabelled [fn_twilio_send_sms] "
                              "section and 2 labelled ones: give twilio_label one of eu, us (or add an "
                              "unlabelled [fn_twilio_send_sms] section for calls without a label); nothing "
                              "was done")
        assert twilio.requests == [] and second.requests == []

    def test_each_label_works(self, circuits_app, twilio, second):
        assert send(circuits_app, "us").result["success"] is True
        assert send(circuits_app, "eu").result["success"] is True
        assert len(creates(twilio)) == 1 and len(creates(second)) == 1


class TestTheOnlySection:
    APP_SETTINGS = None
    LABELLED_SECTIONS = {"eu": {"twilio": SECOND}}

    def test_an_empty_label_uses_the_only_section(self, circuits_app, twilio, second):
        assert send(circuits_app, None).result["success"] is True
        assert send(circuits_app, " ").result["success"] is True
        assert len(creates(second)) == 2 and twilio.requests == []


class TestBrokenSections:
    APP_SETTINGS = {}
    LABELLED_SECTIONS = {
        "eu": {"twilio": SECOND, "twilio_auth_token": None},                   # no credentials
        "eu-a": {"twilio": SECOND, "max_recipients": "3"},                      # one account and sender...
        "eu-b": {"twilio": SECOND, "poll_interval": "1s"},                     # ...with another poll_interval
        "ok": {"twilio": SECOND, "twilio_src_address": "+353861239999"},        # another sender: unaffected
    }

    def test_a_labelled_section_without_credentials_fails_alone_naming_section_and_key(self, circuits_app,
                                                                                       twilio, second):
        call = send(circuits_app, "eu")
        assert call.error.startswith("fn_twilio is not configured correctly: twilio_auth_token is not set in "
                                     "[fn_twilio_send_sms:eu]; set it")
        assert send(circuits_app, None).result["success"] is True
        assert len(creates(twilio)) == 1 and second.requests == []

    @pytest.mark.parametrize("label", ["eu-a", "eu-b"])
    def test_two_sections_that_disagree_fail_naming_both_and_the_key(self, circuits_app, twilio, second,
                                                                      label):
        call = call_function(circuits_app, "twilio_receive_messages",
                             {"twilio_phone_number": ALICE, "twilio_wait_timeout": "0s",
                              "twilio_label": label})
        assert ("[fn_twilio_send_sms:eu-a] and [fn_twilio_send_sms:eu-b] use the same Twilio account and "
                "sender but a different poll_interval (0.2s and 1s)") in call.error, call.error
        assert second.requests == []

    def test_a_section_of_another_sender_is_not_affected(self, circuits_app, twilio, second):
        second.add_number("+353861239999")
        call = send(circuits_app, "ok")
        assert call.error is None and creates(second)[0].form["From"] == "+353861239999"
