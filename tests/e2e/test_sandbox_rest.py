"""The sandbox SOAR REST emulator: authentication, start-up routes, incidents, workflow instances,
playbook runs, status reads refused on demand, imports."""
import json
import re
import time

import pytest
import requests

from e2e_helpers import requires_export
from sandbox.soar.export import rows_written
from sandbox.soar.rest import SoarRestEmulator
from sandbox.soar.sandbox import API_KEY_ID, API_KEY_SECRET

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def http(rest, certs):
    session = requests.Session()
    session.trust_env = False            # REQUESTS_CA_BUNDLE would override session.verify
    session.auth = (API_KEY_ID, API_KEY_SECRET)
    session.verify = certs.cert          # the self-signed certificate verifies for "localhost"
    session.headers["Content-Type"] = "application/json"

    def call(method, path, body=None, **kwargs):
        return session.request(method, rest.url + path, data=None if body is None else json.dumps(body),
                               **kwargs)

    return call


def test_wrong_or_missing_credentials_get_401(rest, certs):
    assert requests.get(rest.url + "/rest/session", verify=certs.cert).status_code == 401
    assert requests.get(rest.url + "/rest/session", auth=(API_KEY_ID, "wrong"),
                        verify=certs.cert).status_code == 401


def test_startup_routes(http):
    session = http("GET", "/rest/session?include_permissions=false").json()
    assert session["orgs"][0] == {**session["orgs"][0], "id": 201, "name": "Test Organization",
                                  "enabled": True}
    assert session["api_key_handle"] == 7
    assert http("GET", "/rest/orgs/201").json()["actions_framework_enabled"] is True
    version = http("GET", "/rest/const").json()["server_version"]
    assert (version["v"], version["major"], version["version"]) == (51, 0, "51.0.0.0.9339")
    for path in ("/types/incident/fields", "/types/actioninvocation/fields", "/types/__function/fields"):
        response = http("GET", "/rest/orgs/201" + path)
        assert response.status_code == 200 and isinstance(response.json(), list)
    assert http("GET", "/rest/orgs/201/actions").json() == {"entities": []}
    assert http("GET", "/rest/orgs/201/connectors/queues").json() == {"queues": []}
    assert http("GET", "/rest/orgs/999").status_code == 403


def test_functions_known_and_unknown(http):
    legacy = http("GET", "/rest/orgs/201/functions/twilio_get_responses?handle_format=names")
    assert legacy.status_code == 200
    assert legacy.json()["destination_handle"] == "fn_twilio"
    assert http("GET", "/rest/orgs/201/functions/no_such_function?handle_format=names").status_code == 404


def test_incidents_with_and_without_handle_names(rest, http):
    rest.add_incident(3001, "Ransomware on host A", "Medium")
    named = http("GET", "/rest/orgs/201/incidents/3001?handle_format=names").json()
    assert (named["id"], named["name"], named["severity_code"]) == (3001, "Ransomware on host A", "Medium")
    assert http("GET", "/rest/orgs/201/incidents/3001").json()["severity_code"] == 5
    assert http("GET", "/rest/orgs/201/incidents/4040?handle_format=names").status_code == 404
    http("POST", "/rest/orgs/201/incidents/3001/comments", {"text": {"format": "text", "content": "hi"}})
    assert rest.notes(3001) == ["hi"]


def test_workflow_instance_status_and_termination(rest, http):
    instance = rest.add_workflow_instance()
    body = http("GET", f"/rest/orgs/201/workflow_instances/{instance}").json()
    assert body["status"] == "running" and body["end_date"] is None and body["terminate_reason"] is None
    rest.terminate_workflow_instance(instance, "stopped by the analyst")
    body = http("GET", f"/rest/orgs/201/workflow_instances/{instance}").json()
    assert body["status"] == "terminated"
    assert body["terminate_reason"] == "stopped by the analyst"
    assert body["end_date"] >= body["start_date"]
    assert http("GET", "/rest/orgs/201/workflow_instances/999999").status_code == 404


def runs(http, **conditions):
    body = {"filters": [{"conditions": [{"field_name": field, "method": method, "value": value}
                                        for field, (method, value) in conditions.items()]}], "sorts": []}
    return http("POST", "/rest/orgs/201/playbooks/execution/query_paged", body)


def test_playbook_runs_as_query_paged_lists_them(rest, http):
    first = rest.add_playbook_instance(incident_id=3101, playbook_name="Example: Twilio Page On-Call (PB)")
    second = rest.add_playbook_instance(incident_id=3102)
    (record,) = runs(http, id=("equals", first)).json()["data"]
    assert record["status"] == "running" and record["incident_id"] == 3101 and record["detail_msg"] is None
    assert record["playbook"]["display_name"] == "Example: Twilio Page On-Call (PB)"
    assert {"id", "playbook", "start_time", "last_activity_time", "elapsed_time", "status", "object",
            "object_is_deleted", "incident_id", "detail_msg"} <= set(record)
    rest.cancel_playbook_instance(first, "closed by analyst")
    rest.end_playbook_instance(second, "error", "The playbook was terminated by the system")
    (record,) = runs(http, id=("equals", first)).json()["data"]
    assert (record["status"], record["detail_msg"]) == ("canceled", "closed by analyst")
    by_incident = runs(http, incident_id=("gte", 3101)).json()["data"]
    assert [(r["id"], r["status"]) for r in by_incident if r["incident_id"] <= 3102] == [
        (first, "canceled"), (second, "error")]
    assert runs(http, id=("equals", 999999)).json()["data"] == []
    assert runs(http, name=("equals", "x")).status_code == 400
    assert http("GET", f"/rest/orgs/201/playbooks/instances/{first}").status_code == 404   # no such route


def test_status_reads_refused_in_turn_then_answered(rest, http):
    instance, other = rest.add_workflow_instance(), rest.add_workflow_instance()
    rest.refuse_status_reads(403, 500, None, instance=instance)
    try:
        path = f"/rest/orgs/201/workflow_instances/{instance}"
        assert [http("GET", path).status_code for _ in range(4)] == [403, 500, 200, 200]
        assert http("GET", f"/rest/orgs/201/workflow_instances/{other}").status_code == 200
        reads = [(k, i, status) for k, i, status, _ in rest.status_reads("workflow") if i == instance]
        assert reads == [("workflow", instance, 403), ("workflow", instance, 500),
                         ("workflow", instance, 200), ("workflow", instance, 200)]
    finally:
        rest.refuse_status_reads(instance=instance)


@pytest.mark.parametrize("answer, check", [
    (404, lambda r: r.status_code == 404 and "refused" in r.json()["message"]),
    (401, lambda r: r.status_code == 401),
    ("garbage", lambda r: r.status_code == 200 and r.text.startswith("<html>")),
    ("no_status", lambda r: r.status_code == 200 and "status" not in r.json()),
])
def test_every_status_read_refused_as_told(rest, http, answer, check):
    workflow = rest.add_workflow_instance()
    playbook = rest.add_playbook_instance(incident_id=3103)
    rest.refuse_status_reads(answer)
    try:
        assert check(http("GET", f"/rest/orgs/201/workflow_instances/{workflow}"))
        assert check(runs(http, id=("equals", playbook)))
        assert http("GET", "/rest/orgs/201/incidents/4040").status_code == 404   # other routes as usual
    finally:
        rest.refuse_status_reads()
    assert http("GET", f"/rest/orgs/201/workflow_instances/{workflow}").json()["status"] == "running"


def test_a_slow_status_read(rest, http):
    instance = rest.add_workflow_instance()
    rest.refuse_status_reads(("slow", 1.0), instance=instance)
    try:
        started = time.monotonic()
        assert http("GET", f"/rest/orgs/201/workflow_instances/{instance}").json()["status"] == "running"
        assert time.monotonic() - started >= 1.0
        with pytest.raises(requests.Timeout):
            http("GET", f"/rest/orgs/201/workflow_instances/{instance}", timeout=0.3)
        started = time.monotonic()
        assert http("GET", "/rest/orgs/201").status_code == 200          # not held up by the slow read
        assert time.monotonic() - started < 0.5
    finally:
        rest.refuse_status_reads(instance=instance)


def test_injected_failure(rest, http):
    rest.fail("GET", r"/incidents/3002$", 503, "maintenance")
    try:
        rest.add_incident(3002, "x")
        response = http("GET", "/rest/orgs/201/incidents/3002")
        assert response.status_code == 503 and "maintenance" in response.text
    finally:
        rest.clear_failures()


@requires_export
def test_import_flow_defines_functions_on_acceptance(certs, app_export):
    with SoarRestEmulator(certs, api_key_id=API_KEY_ID, api_key_secret=API_KEY_SECRET) as rest:
        session = requests.Session()
        session.trust_env = False
        session.auth, session.verify = (API_KEY_ID, API_KEY_SECRET), certs.cert
        url = rest.url + "/rest/orgs/201"
        assert session.get(url + "/functions/twilio_send_sms").status_code == 404
        created = session.post(url + "/configurations/imports", json=app_export).json()
        assert created["status"] == "PENDING" and created["messages"] == []
        assert session.get(url + "/functions/twilio_send_sms").status_code == 404   # not before acceptance
        created["status"] = "ACCEPTED"
        assert session.put(url + "/configurations/imports/{}".format(created["id"]), json=created).ok
        fn = session.get(url + "/functions/twilio_send_sms?handle_format=names").json()
        assert fn["destination_handle"] == "fn_twilio"
        assert session.get(url + "/functions/twilio_receive_messages").ok
        legacy = session.get(url + "/functions/twilio_get_responses?handle_format=names").json()
        assert legacy["display_name"] == "Twilio: Get Responses (2.0.x)"        # exported since 2.2.0
        names = {r["name"] for r in session.get(url + "/actions").json()["entities"]}
        assert {"Example: Send Twilio SMS", "Twilio: Get Responses"} <= names
        assert "twilio_sms_log" in rest.datatables
        function_fields = {f["name"] for f in session.get(url + "/types/__function/fields").json()}
        assert {"twilio_sms_destination", "twilio_phone_number"} <= function_fields
        dests = session.get(url + "/message_destinations").json()["entities"]
        assert [d["programmatic_name"] for d in dests] == ["fn_twilio"]


# -- broken exports: each mutation names its problem ------------------------------------------------

def _drop_function_used_by_a_workflow(export):
    export["functions"] = [f for f in export["functions"] if f["name"] != "twilio_send_sms"]
    return r"calls function uuid .* not a function of the export"


def _rule_shows_a_missing_field(export):
    rule = next(r for r in export["actions"] if r["view_items"])
    rule["view_items"][0]["content"] = "00000000-dead-beef-0000-000000000000"
    return r"rule '.*' shows field uuid 00000000-dead-beef-0000-000000000000"


def _rule_condition_on_a_missing_column(export):
    rule = next(r for r in export["actions"] if r["conditions"])
    rule["conditions"][0]["field_name"] = "twilio_sms_log.no_such_column"
    return r"condition on field 'twilio_sms_log.no_such_column'"


def _function_input_field_missing(export):
    fn = next(f for f in export["functions"] if f["name"] == "twilio_send_sms")
    missing = fn["view_items"][0]["content"]
    export["fields"] = [f for f in export["fields"] if f.get("uuid") != missing]
    return r"function 'twilio_send_sms' names input field uuid"


def _datatable_lacks_a_written_column(export):
    table = next(t for t in export["types"] if t["type_name"] == "twilio_sms_log")
    del table["fields"]["message_id"]
    return r"writes column 'message_id' but datatable 'twilio_sms_log' has no such column"


BROKEN = [_drop_function_used_by_a_workflow, _rule_shows_a_missing_field, _rule_condition_on_a_missing_column,
          _function_input_field_missing, _datatable_lacks_a_written_column]


@requires_export
@pytest.mark.parametrize("breaker", BROKEN, ids=[b.__name__.strip("_") for b in BROKEN])
def test_import_rejects_broken_exports(rest, http, app_export, breaker):
    expected = breaker(app_export)
    response = http("POST", "/rest/orgs/201/configurations/imports", app_export)
    assert response.status_code == 400
    assert re.search(expected, response.json()["message"]), response.json()["message"]


@requires_export
def test_app_export_is_importable(rest, app_export):
    assert rest.check_export(app_export) == []


def test_rows_written_finds_item_and_attribute_assignments():
    script = ("row = incident.addRow('twilio_sms_log')\nrow['status'] = 'x'\nrow[\"phone_number\"] = 1\n"
              "row.msg_body = 'b'\nif row.status == 'x':\n  pass\n"
              "other = incident.addRow(\"t2\")\nother.a = 1\n")
    assert rows_written(script) == {"twilio_sms_log": ["status", "phone_number", "msg_body"], "t2": ["a"]}


def test_session_login_with_email_and_password(certs):
    with SoarRestEmulator(certs) as rest:
        session = requests.Session()
        session.trust_env = False
        session.verify = certs.cert
        login = session.post(rest.url + "/rest/session",
                             json={"email": rest.email, "password": rest.password})
        assert login.ok and login.json()["csrf_token"]
        session.headers["X-sess-id"] = login.json()["csrf_token"]
        assert session.get(rest.url + "/rest/orgs/201").ok
        assert session.post(rest.url + "/rest/session",
                            json={"email": rest.email, "password": "x"}).status_code == 401
