"""The emulator is faithful to Twilio's OpenAPI spec: every request the SDK makes and every success
response the emulator gives in a create/list/fetch/numbers/account run validate against it.

Needs ../shared/twilio-oai/twilio_api_v2010.json beside the repository root (or $TWILIO_OAI_SPEC);
skipped with the expected location named when it is absent."""
import email.utils
import json
import re
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
import requests
from twilio.base.exceptions import TwilioRestException

from sandbox import twilio_spec
from sandbox.twilio_emulator import ACCOUNT_SID, AUTH_TOKEN, MESSAGING_SERVICE_SID, SENDER

USER = "+353861234567"
RFC2822 = re.compile(r"^[A-Z][a-z]{2}, \d{2} [A-Z][a-z]{2} \d{4} \d{2}:\d{2}:\d{2} \+0000$")


@pytest.fixture(scope="module")
def spec(twilio_openapi):
    return twilio_openapi


def _validation_error():
    from openapi_core.validation.exceptions import ValidationError
    return ValidationError


def test_spec_location_is_relative_to_the_repository(monkeypatch):
    repo_root = Path(__file__).resolve().parents[2]
    assert twilio_spec.DEFAULT_SPEC_PATH.resolve() == (
        repo_root.parent / "shared" / "twilio-oai" / "twilio_api_v2010.json").resolve()
    monkeypatch.setenv(twilio_spec.SPEC_ENV, str(repo_root / "no-such-spec.json"))
    reason = twilio_spec.skip_reason()
    assert "no-such-spec.json" in reason and "../shared/twilio-oai/twilio_api_v2010.json" in reason
    assert twilio_spec.load_spec() is None


def _exercise(emu, client):
    """A run through everything the app uses."""
    emu.seed_history(7, from_=USER, to=SENDER, direction="inbound",
                     start=datetime.now(timezone.utc) - timedelta(hours=1))
    sent = client.messages.create(to=USER, from_=SENDER, body="Incident 7 needs you €")
    client.messages.create(to=USER, messaging_service_sid=MESSAGING_SERVICE_SID, body="via service 👍",
                           status_callback="https://example.com/cb", validity_period=600)
    client.messages.create(to="whatsapp:" + USER, from_="whatsapp:" + SENDER, body="wa")
    emu.set_status(sent.sid, "undelivered", 30007)
    emu.inject_inbound(from_=USER, to=SENDER, body="ACK")
    client.messages(sent.sid).fetch()
    today = datetime.now(timezone.utc).date()
    client.messages.list(to=SENDER, from_=USER, date_sent_after=today, page_size=3)
    client.messages.list(date_sent=datetime.now(timezone.utc).date(), limit=2)
    client.messages.list(date_sent_before=datetime.now(timezone.utc) + timedelta(days=1), page_size=1000)
    list(client.messages.stream(page_size=4))
    client.incoming_phone_numbers.list(phone_number=SENDER)
    client.api.v2010.accounts(ACCOUNT_SID).fetch()


def test_every_request_and_success_response_conforms(spec, emu, client):
    _exercise(emu, client)
    records = emu.requests
    assert len(records) >= 12
    kinds = set()
    for rec in records:
        assert rec.status in (200, 201), (rec.url, rec.response_body)
        twilio_spec.validate_request_record(rec)
        twilio_spec.validate_response(rec)
        kinds.add((rec.method, re.sub(r"/(AC|SM)[0-9a-f]{32}", "/{sid}", rec.path)))
    assert kinds == {
        ("POST", "/2010-04-01/Accounts/{sid}/Messages.json"),
        ("GET", "/2010-04-01/Accounts/{sid}/Messages.json"),
        ("GET", "/2010-04-01/Accounts/{sid}/Messages/{sid}.json"),
        ("GET", "/2010-04-01/Accounts/{sid}/IncomingPhoneNumbers.json"),
        ("GET", "/2010-04-01/Accounts/{sid}.json"),
    }


def test_dates_are_rfc2822_utc_everywhere(emu, client):
    _exercise(emu, client)
    emu.advance_statuses()
    for msg in emu.messages:
        for key in ("date_created", "date_updated", "date_sent"):
            value = msg[key]
            assert value is None or RFC2822.match(value), (key, value)
            if value:
                assert email.utils.parsedate_to_datetime(value).utcoffset() == timedelta(0)


def test_records_from_the_control_api_validate_too(spec, emu, client):
    client.messages.create(to=USER, from_=SENDER, body="x")
    record = requests.get(emu.base_url + "/_emulator/requests", timeout=5).json()["requests"][-1]
    record["response_body"] = record["response_body"].encode()
    twilio_spec.validate_request_record(record)
    twilio_spec.validate_response(record)


def test_validator_catches_a_wrong_response(spec, emu, client):
    client.messages.create(to=USER, from_=SENDER, body="x")
    rec = emu.requests[-1]
    bad = json.loads(rec.response_body)
    bad["status"] = "bogus"
    with pytest.raises(_validation_error()):
        twilio_spec.validate_response(rec, json.dumps(bad).encode(), 201)
    bad = json.loads(rec.response_body)
    bad["sid"] = "XX" + "0" * 32
    with pytest.raises(_validation_error()):
        twilio_spec.validate_response(rec, json.dumps(bad).encode(), 201)


def test_validator_catches_a_wrong_request(spec, emu):
    r = requests.get(f"{emu.base_url}/2010-04-01/Accounts/{ACCOUNT_SID}/Messages.json",
                     params={"PageSize": 5000}, auth=(ACCOUNT_SID, AUTH_TOKEN), timeout=5)
    assert r.status_code == 400  # the emulator refuses it like Twilio ...
    with pytest.raises(_validation_error()):  # ... and the spec says why
        twilio_spec.validate_request_record(emu.requests[-1])
    requests.post(f"{emu.base_url}/2010-04-01/Accounts/{ACCOUNT_SID}/Messages.json", data={"Body": "no To"},
                  auth=(ACCOUNT_SID, AUTH_TOKEN), timeout=5)
    with pytest.raises(_validation_error()):
        twilio_spec.validate_request_record(emu.requests[-1])


def test_every_delivery_state_conforms(spec, emu, client):
    """Messages in each state of the lifecycle (queued, accepted, sent, delivered, undelivered, failed),
    fetched one by one and listed, validate against the spec."""
    emu.deliver_after(0, 0)
    emu.set_delivery_outcome("+353861234568", "undelivered", 30003)
    emu.set_delivery_outcome("+353861234569", "failed", 30001)
    emu.set_delivery_outcome("+353861234570", "sent")
    sids = [client.messages.create(to=to, from_=SENDER, body="Incident 2095").sid
            for to in (USER, "+353861234568", "+353861234569", "+353861234570")]
    sids.append(client.messages.create(to=USER, messaging_service_sid=MESSAGING_SERVICE_SID, body="svc").sid)
    emu.delivery_schedule = None
    sids.append(client.messages.create(to=USER, from_=SENDER, body="stays queued").sid)
    statuses = [client.messages(sid).fetch().status for sid in sids]
    assert statuses == ["delivered", "undelivered", "failed", "sent", "delivered", "queued"]
    client.messages.list(from_=SENDER, page_size=20)
    client.messages.list(to=USER, date_sent_after=datetime.now(timezone.utc) - timedelta(minutes=5))
    statuses_in_answers = set()
    for rec in emu.requests:
        assert rec.status in (200, 201), (rec.url, rec.response_body)
        twilio_spec.validate_request_record(rec)
        twilio_spec.validate_response(rec)
        body = rec.json()
        for msg in body.get("messages", [body]):
            statuses_in_answers.add(msg["status"])
            assert (msg["error_code"] is None) == (msg["status"] not in ("undelivered", "failed"))
            for key in ("date_created", "date_updated", "date_sent"):
                assert msg[key] is None or RFC2822.match(msg[key]), (key, msg[key])
    assert statuses_in_answers == {"accepted", "queued", "sent", "delivered", "undelivered", "failed"}


@pytest.mark.parametrize("make_error", ["opted_out", "unknown_sid"])
def test_error_answers_have_twilios_shape(emu, client, make_error):
    """The spec has no error schema: the envelope is checked by hand (twilio-api.md §4)."""
    if make_error == "opted_out":
        emu.inject_inbound(from_=USER, to=SENDER, body="STOP")
        call, status, code = (lambda: client.messages.create(to=USER, from_=SENDER, body="x")), 400, 21610
    else:
        call, status, code = (lambda: client.messages("SM" + "a" * 32).fetch()), 404, 20404
    with pytest.raises(TwilioRestException):
        call()
    rec = emu.requests[-1]
    assert rec.status == status and rec.response_headers["Content-Type"] == "application/json; charset=utf-8"
    body = rec.json()
    assert list(body) == ["code", "message", "more_info", "status"]
    assert (body["code"], body["status"]) == (code, status)
    assert isinstance(body["message"], str) and body["message"]
    assert body["more_info"] == f"https://www.twilio.com/docs/errors/{code}"


# -- voice: Calls (twilio_api_v2010.json) and Studio (twilio_studio_v2.json) ----------------------------
FLOW_FILE = Path(__file__).resolve().parents[2] / "fn_twilio" / "lib" / "data" / "page_call_flow.json"


def test_the_studio_spec_location_is_relative_to_the_repository_too(monkeypatch):
    repo_root = Path(__file__).resolve().parents[2]
    assert twilio_spec.spec_path("studio") == (repo_root.parent / "shared" / "twilio-oai"
                                               / "twilio_studio_v2.json").resolve()
    monkeypatch.setenv(twilio_spec.STUDIO_SPEC_ENV, str(repo_root / "no-such-studio.json"))
    reason = twilio_spec.skip_reason("studio")
    assert "no-such-studio.json" in reason and "../shared/twilio-oai/twilio_studio_v2.json" in reason
    assert twilio_spec.load_spec("studio") is None
    assert twilio_spec.spec_for_path("/v2/Flows/FW1/Executions") == "studio"
    assert twilio_spec.spec_for_path(f"/2010-04-01/Accounts/{ACCOUNT_SID}/Calls.json") == "api"


def _exercise_voice(emu, client):
    """Calls and Studio as the app and the tests use them, in every state a call and an execution pass."""
    import time
    definition = json.loads(FLOW_FILE.read_text())
    flow = client.studio.v2.flows.create(friendly_name="fn_twilio page call", status="published",
                                         definition=definition, commit_message="first")
    client.studio.v2.flows.list(page_size=5)
    client.studio.v2.flows(flow.sid).fetch()
    client.studio.v2.flows(flow.sid).update(status="published", definition=dict(definition, description="v2"),
                                            commit_message="second")
    for number, action, press in ((USER, "answer", "1"), ("+353861234568", "machine", None),
                                  ("+353861234569", "busy", None), ("+353861234570", "no-answer", None),
                                  ("+353861234571", "fail", None), ("+353861234572", "answer", None)):
        emu.script_calls(number, action, press=press, ring=0.05, press_after=0.05)
    executions = client.studio.v2.flows(flow.sid).executions
    started = [executions.create(to=n, from_=SENDER, parameters={"text": "Incident 2101", "code": "2101"})
               for n in (USER, "+353861234568", "+353861234569", "+353861234570", "+353861234571",
                         "+353861234572")]
    emu.script_calls("+353861234573", "answer", ring=30)
    ringing = executions.create(to="+353861234573", from_=SENDER)
    executions.list(status="active")
    executions(ringing.sid).execution_context().fetch()
    time.sleep(0.3)
    executions.list(date_created_from=datetime.now(timezone.utc) - timedelta(minutes=1), page_size=3)
    executions.list(status="ended")
    for execution in started:
        executions(execution.sid).fetch()
        executions(execution.sid).execution_context().fetch()
    steps = executions(started[0].sid).steps.list()
    executions(started[0].sid).steps(steps[0].sid).fetch()
    executions(ringing.sid).update(status="ended")
    executions(ringing.sid).delete()
    emu.script_calls(USER, "answer", ring=0.05, press_after=0.05)
    twiml = client.calls.create(to=USER, from_=SENDER, twiml="<Response><Say>Incident 2101</Say></Response>",
                                machine_detection="Enable", timeout=20)
    emu.script_calls("+353861234574", "answer", queue=30)
    client.calls.create(to="+353861234574", from_=SENDER, url="https://example.com/twiml", method="GET")
    client.calls(twiml.sid).fetch()
    time.sleep(0.2)
    client.calls(twiml.sid).fetch()
    client.calls.list(to=USER, from_=SENDER, status="completed", page_size=2)
    list(client.calls.stream(page_size=3))


def test_every_voice_request_and_success_response_conforms(spec, twilio_studio_openapi, emu, client):
    _exercise_voice(emu, client)
    kinds, statuses, call_statuses = set(), set(), set()
    for rec in emu.requests:
        assert rec.status in (200, 201, 204), (rec.url, rec.response_body)
        twilio_spec.validate_request_record(rec)
        if rec.status != 204:
            twilio_spec.validate_response(rec)
        kinds.add((rec.method, re.sub(r"/(AC|CA|FW|FN|FT)[0-9a-f]{32}", "/{sid}", rec.path)))
        body = rec.json() or {}
        statuses.update(e["status"] for e in body.get("executions", [body]) if "contact_channel_address" in e)
        call_statuses.update(c["status"] for c in body.get("calls", [body])
                             if c.get("sid", "").startswith("CA"))
    assert kinds == {
        ("POST", "/v2/Flows"), ("GET", "/v2/Flows"), ("GET", "/v2/Flows/{sid}"), ("POST", "/v2/Flows/{sid}"),
        ("POST", "/v2/Flows/{sid}/Executions"), ("GET", "/v2/Flows/{sid}/Executions"),
        ("GET", "/v2/Flows/{sid}/Executions/{sid}"), ("POST", "/v2/Flows/{sid}/Executions/{sid}"),
        ("DELETE", "/v2/Flows/{sid}/Executions/{sid}"), ("GET", "/v2/Flows/{sid}/Executions/{sid}/Context"),
        ("GET", "/v2/Flows/{sid}/Executions/{sid}/Steps"),
        ("GET", "/v2/Flows/{sid}/Executions/{sid}/Steps/{sid}"),
        ("POST", "/2010-04-01/Accounts/{sid}/Calls.json"), ("GET", "/2010-04-01/Accounts/{sid}/Calls.json"),
        ("GET", "/2010-04-01/Accounts/{sid}/Calls/{sid}.json"),
    }
    assert statuses == {"active", "ended"}
    assert {"queued", "ringing", "completed", "busy", "no-answer", "failed"} <= call_statuses
    answered = {c["answered_by"] for c in emu.calls}
    assert {"human", "machine_start", None} <= answered


def test_the_validator_catches_a_wrong_studio_answer_and_request(spec, twilio_studio_openapi, emu, client):
    flow = client.studio.v2.flows.create(friendly_name="f", status="published",
                                         definition=json.loads(FLOW_FILE.read_text()))
    execution = client.studio.v2.flows(flow.sid).executions.create(to=USER, from_=SENDER)
    rec = emu.requests[-1]
    bad = json.loads(rec.response_body)
    bad["status"] = "running"
    with pytest.raises(_validation_error()):
        twilio_spec.validate_response(rec, json.dumps(bad).encode(), 201)
    requests.get(f"{emu.base_url}/v2/Flows/{flow.sid}/Executions", params={"status": "sleeping"},
                 auth=(ACCOUNT_SID, AUTH_TOKEN), timeout=5)
    assert emu.requests[-1].status == 400   # the emulator refuses it like Twilio ...
    with pytest.raises(_validation_error()):  # ... and the spec says why
        twilio_spec.validate_request_record(emu.requests[-1])
    assert execution.sid.startswith("FN")
