"""twilio_page's voice tier (contract §14) through resilient-circuits, against the Twilio emulator over HTTP
with the real SDK: a tier that calls and a key pressed, a decline by key, the flow found once per process
(per label), and every bad input or setting refused before anything is called or texted. The engine's
voice paths are proven in tests/lib/test_paging_voice.py."""
import pytest

from fn_twilio.lib.voice import FLOW_NAME, forget_flows
from sandbox.twilio_emulator import MESSAGING_SERVICE_SID, SENDER
from tests.components.test_page import answer_when_paged, page

ALICE, BOB = "+353861234567", "+14155552345"


@pytest.fixture(autouse=True)
def fresh_flows():
    """The emulator is emptied between tests; the flow the app found in this process goes with it."""
    forget_flows()
    yield
    forget_flows()


def executions_started(twilio):
    return [r for r in twilio.requests if r.method == "POST" and r.path.endswith("/Executions")]


def texts(twilio):
    return [r for r in twilio.requests if r.method == "POST" and r.path.endswith("/Messages.json")]


def flow_requests(twilio, method):
    return [r for r in twilio.requests if r.method == method and r.path == "/v2/Flows"]


class TestPageCalls:
    APP_SETTINGS = {"max_wait_timeout": "1h"}

    def test_a_tier_2_call_acknowledged_by_pressing_1(self, circuits_app, twilio):
        twilio.script_calls(BOB, "answer", press="1")
        call = page(circuits_app, f"{ALICE}; voice:{BOB}", twilio_escalate_after="1s",
                    twilio_sms_message="Incident 2095 needs you.")
        assert call.error is None, call.error
        content = call.result["content"]
        assert call.result["success"] is True
        assert (content["acknowledged_by"], content["tier"]) == (BOB, 2)
        assert [r.form["To"] for r in texts(twilio)] == [ALICE]
        (started,) = executions_started(twilio)
        assert (started.form["To"], started.form["From"]) == (BOB, SENDER)
        (execution,) = twilio.executions
        assert execution["said"][0].startswith("Incident 2095 needs you.")     # the text, not the SMS request
        assert "Reply ACK" not in execution["said"][0]
        entry = content["pages"][1]
        assert (entry["channel"], entry["sid"], entry["outcome"], entry["digits"]) == \
            ("voice", execution["sid"], "acknowledged", "1")
        acknowledged = content["timeline"][-1]
        assert (acknowledged["event"], acknowledged["channel"], acknowledged["phone_number"]) == \
            ("acknowledged", "voice", BOB)
        assert "channel" not in content["timeline"][0]                      # a text's event: the six keys
        assert any(s.startswith("Tier 2: paged 1 person (1 by a call), waiting up to ")
                   for s in call.statuses)
        assert call.statuses[-1].startswith("Acknowledged by +14155****45 (pressed 1 on the call) after ")

    def test_pressing_2_declines_and_the_next_tier_acknowledges_by_sms(self, circuits_app, twilio):
        twilio.script_calls(ALICE, "answer", press="2")
        answer_when_paged(twilio, BOB, "ACK 2095")
        call = page(circuits_app, f"voice:{ALICE}; {BOB}", twilio_escalate_after="10m",
                    twilio_sms_message="Bridge now")
        content = call.result["content"]
        assert content["acknowledged_by"] == BOB and content["tier"] == 2
        declined = [e for e in content["timeline"] if e["event"] == "declined"]
        assert [(e["phone_number"], e["channel"], e["detail"]) for e in declined] == \
            [(ALICE, "voice", "pressed 2: declined")]
        assert content["pages"][0]["outcome"] == "declined"

    def test_the_flow_is_made_once_and_two_pages_share_it(self, circuits_app, twilio):
        twilio.script_calls(ALICE, "answer", press="1")
        for _ in range(2):
            call = page(circuits_app, f"voice:{ALICE}", twilio_escalate_after="1m", twilio_sms_message="Hi")
            assert call.result["content"]["acknowledged_by"] == ALICE
        assert len(flow_requests(twilio, "POST")) == 1 and [f["friendly_name"] for f in twilio.flows] == \
            [FLOW_NAME]
        assert len(flow_requests(twilio, "GET")) == 2      # the lookup, and the check after creating it
        assert {e["flow_sid"] for e in twilio.executions} == {twilio.flows[0]["sid"]}
        assert len(twilio.executions) == 2

    def test_a_voice_entry_that_cannot_be_called_refuses_the_page(self, circuits_app, twilio):
        call = page(circuits_app, f"{ALICE}; voice:12345", twilio_sms_message="Hi")
        assert call.result is None
        assert "twilio_page_tiers: tier 2 has a voice: entry that cannot be called" in call.error
        assert "nothing was called or texted" in call.error
        assert texts(twilio) == [] and executions_started(twilio) == [] and twilio.flows == []


class TestSenderThatCannotCall:
    APP_SETTINGS = {"twilio_src_address": None, "twilio_messaging_service_sid": MESSAGING_SERVICE_SID}

    def test_voice_entries_are_refused_naming_voice_sender_and_nothing_is_sent(self, circuits_app, twilio):
        call = page(circuits_app, f"{ALICE}; voice:{BOB}", twilio_sms_message="Hi")
        assert call.result is None and "voice_sender is not set" in call.error, call.error
        assert "nothing was called or texted" in call.error
        assert texts(twilio) == [] and executions_started(twilio) == [] and twilio.calls == []


class TestStudioFlowSidNotOnTheAccount:
    MISSING = "FW" + "0123456789abcdef" * 2
    APP_SETTINGS = {"studio_flow_sid": MISSING}

    def test_the_page_is_refused_naming_studio_flow_sid_and_nothing_is_sent(self, circuits_app, twilio):
        call = page(circuits_app, f"{ALICE}; voice:{BOB}", twilio_sms_message="Hi")
        assert call.result is None
        assert f"studio_flow_sid {self.MISSING} is not a Studio Flow of this Twilio account" in call.error
        assert texts(twilio) == [] and executions_started(twilio) == [] and twilio.calls == []

    def test_a_page_without_voice_entries_does_not_need_the_flow(self, circuits_app, twilio):
        call = page(circuits_app, ALICE, twilio_sms_message="Hi", twilio_escalate_after="1s")
        assert call.error is None and [r.form["To"] for r in texts(twilio)] == [ALICE]
        assert not [r for r in twilio.requests if r.path.startswith("/v2/")]


class TestLabelledFlow:
    APP_SETTINGS = {}
    LABELLED_SECTIONS = {"eu": {}}

    def test_a_labelled_page_calls_through_the_labels_own_flow(self, circuits_app, twilio):
        twilio.script_calls(BOB, "answer", press="1")
        call = page(circuits_app, f"voice:{BOB}", twilio_label="eu", twilio_sms_message="Hi")
        assert call.result["content"]["acknowledged_by"] == BOB
        assert [f["friendly_name"] for f in twilio.flows] == [f"{FLOW_NAME} (eu)"]
