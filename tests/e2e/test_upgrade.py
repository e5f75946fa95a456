"""Upgrade in place from 2.0.x (contract §8): the real ``resilient-circuits customize`` over a SOAR that
holds fn_twilio 2.0.1's customizations, then the real ``resilient-circuits run``.

The 2.0.1 customizations are built in the test from the facts of upgrade-2.0.1.md (tests/fixtures_2_0_1),
plus what a 2.0.x user typically adds: an own copy of the Get Responses workflow, calling the 2.0.x
function ``twilio_get_responses`` with 2.0.1's pre-processing inputs, and a rule that runs it. The
sandbox's import is strict: it matches existing objects by UUID and by name and refuses an import that
would leave two functions with one display name or a workflow calling an unknown function UUID.
One sandbox serves the module.
"""
import re
import time
from collections import Counter

import pytest

from e2e_helpers import requires_app, requires_export
from sandbox.soar.rest import SoarRestEmulator
from sandbox.soar.sandbox import API_KEY_ID, API_KEY_SECRET, Sandbox
from sandbox.twilio_emulator import SENDER
from tests.fixtures_2_0_1 import export_2_0_1, facts_or_skip, rule, script, workflow

pytestmark = pytest.mark.e2e

NUMBER = "+353861234567"
INCIDENT = 2095
USER_WORKFLOW = "soc_twilio_get_responses"       # a 2.0.x user's own workflow, not in any export of the app
USER_RULE = "SOC: Get Twilio Replies"
LEGACY_UUID = "0e4931d4-6af6-44f7-8b44-9c5b2f7e700b"


def seed_with_a_users_workflow(facts):
    """2.0.1's customizations plus a user's copy of the row workflow, calling twilio_get_responses."""
    seed = export_2_0_1(facts)
    legacy = next(fn for fn in seed["functions"] if fn["name"] == "twilio_get_responses")
    seed["workflows"].append(workflow(USER_WORKFLOW, "SOC: Get Twilio Replies", "twilio_sms_log",
                                      legacy["uuid"], script("receive_row_pre"), script("receive_post"),
                                      "6f1d6f0e-0000-4000-8000-00000000a001"))
    seed["actions"].append(rule(USER_RULE, "twilio_sms_log", USER_WORKFLOW, [],
                                "6f1d6f0e-0000-4000-8000-00000000a002"))
    return seed


@pytest.fixture(scope="module")
def facts():
    return facts_or_skip()


# ---------------------------------------------------------------------------------------------
# The sandbox's strict import, without the app: what a stricter server would refuse
# ---------------------------------------------------------------------------------------------
@pytest.fixture
def soar_2_0_1(certs, facts):
    """A REST emulator holding 2.0.1's customizations (not started: only its import logic is used)."""
    return SoarRestEmulator(certs, api_key_id=API_KEY_ID, api_key_secret=API_KEY_SECRET,
                            preload=seed_with_a_users_workflow(facts))


@requires_export
def test_this_export_imports_cleanly_over_2_0_1(soar_2_0_1, app_export):
    assert soar_2_0_1.check_export(app_export) == []


@requires_export
def test_an_export_without_the_legacy_function_is_refused_for_the_display_name_clash(soar_2_0_1, app_export):
    """What 2.1.0 did: the new twilio_receive_messages and 2.0.1's twilio_get_responses would both be
    "Twilio: Get Responses"."""
    app_export["functions"] = [fn for fn in app_export["functions"] if fn["name"] != "twilio_get_responses"]
    problems = soar_2_0_1.check_export(app_export)
    assert "functions 'twilio_get_responses' and 'twilio_receive_messages' would share the display name " \
           "'Twilio: Get Responses'" in problems


@requires_export
def test_an_object_matched_by_uuid_under_a_new_name_replaces_the_old_one(soar_2_0_1, app_export):
    rule = next(r for r in app_export["actions"] if r["name"] == "Twilio: Get Responses")
    rule["name"] = rule["export_key"] = "Twilio: Get Replies"
    state, problems = soar_2_0_1._merge(app_export)
    assert problems == []
    assert "Twilio: Get Responses" not in state["rules"]
    assert state["rules"]["Twilio: Get Replies"]["uuid"] == "67f0466d-6e0a-4b72-adfb-8c85d86258bb"


@requires_export
def test_an_object_whose_uuid_and_name_name_two_existing_objects_is_refused(soar_2_0_1, app_export):
    send = next(fn for fn in app_export["functions"] if fn["name"] == "twilio_send_sms")
    send["uuid"] = LEGACY_UUID                     # the uuid of the existing twilio_get_responses
    problems = soar_2_0_1.check_export(app_export)
    clash = (f"functions 'twilio_send_sms' has the uuid {LEGACY_UUID} of the existing functions "
             "'twilio_get_responses'")
    assert any(clash in p for p in problems), problems


@requires_export
def test_other_uuids_for_2_0_1_names_are_matched_by_name_but_orphan_a_2_0_x_workflow(soar_2_0_1, app_export):
    """Why the identities are kept: with other UUIDs (what 2.1.0 exported) a server matching by name keeps
    one object each, but the user's own workflow would call a function UUID that no longer exists."""
    for fn in app_export["functions"]:
        fn["uuid"] = fn["uuid"][:-4] + "beef"
    for wf in app_export["workflows"] + app_export.get("playbooks", []):
        wf["content"]["xml"] = re.sub(r'(<resilient:function uuid="[0-9a-f-]+)[0-9a-f]{4}"', r'\1beef"',
                                      wf["content"]["xml"])
    state, problems = soar_2_0_1._merge(app_export)
    assert sorted(state["functions"]) == ["twilio_get_message_status", "twilio_get_responses", "twilio_page",
                                          "twilio_receive_messages", "twilio_send_sms"]
    assert problems == [f"workflow '{USER_WORKFLOW}' task 'task' would call function uuid {LEGACY_UUID}, "
                        "which is not a function of this server"]
    assert soar_2_0_1.check_export(app_export) == problems


# ---------------------------------------------------------------------------------------------
# The real customize, then the real run
# ---------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def upgraded(facts):
    """A sandbox seeded with 2.0.1, after ``resilient-circuits customize -y -l fn_twilio``, app running."""
    with Sandbox(preload=seed_with_a_users_workflow(facts), app_settings={"poll_interval": "1s"}) as sandbox:
        sandbox.rest.add_incident(INCIDENT, "Suspicious login from 203.0.113.7", "High")
        before = sandbox.rest.export_index()
        code, output = sandbox.app.customize()
        sandbox.before = before
        sandbox.customize_result = (code, output)
        if code == 0:
            sandbox.run_app(timeout=90)
        yield sandbox


@requires_app
@requires_export
def test_customize_is_accepted(upgraded):
    code, output = upgraded.customize_result
    assert code == 0, output
    posts = upgraded.rest.request_log("POST", "/configurations/imports")
    assert [r.status for r in posts] == [200], output
    assert [imp["status"] for imp in upgraded.rest.imports.values()] == ["ACCEPTED"]


@requires_app
@requires_export
def test_every_object_is_present_once_with_its_2_0_1_identity(upgraded, app_export, facts):
    rest = upgraded.rest
    kinds = (("functions", rest.functions, "name"), ("actions", rest.rules, "name"),
             ("workflows", rest.workflows, "programmatic_name"), ("types", rest.datatables, "type_name"),
             ("fields", rest.fields, "export_key"),
             ("message_destinations", rest.message_destinations, "programmatic_name"))
    for section, objects, key in kinds:
        uuids = Counter(o.get("uuid") for o in objects.values())
        assert [u for u, n in uuids.items() if n > 1] == [], section
        for exported in app_export[section]:
            assert objects[exported[key]]["uuid"] == exported["uuid"], (section, exported[key])
    # the 2.0.1 objects were updated in place: same UUIDs before and after, nothing added beside them
    before = upgraded.before
    for name, fn in before.functions.items():
        assert rest.functions[name]["uuid"] == fn["uuid"], name
    for name, wf in before.workflows.items():
        assert rest.workflows[name]["uuid"] == wf["uuid"], name
    assert sorted(rest.functions) == ["twilio_get_message_status", "twilio_get_responses", "twilio_page",
                                      "twilio_receive_messages", "twilio_send_sms"]
    new_in_2_2 = ["example_twilio_page_on_call", "twilio_update_delivery_status"]   # beside the 2.0.1 ones
    old_workflows = [r["programmatic name"] for r in facts.table("Workflows")]
    assert sorted(rest.workflows) == sorted([USER_WORKFLOW] + new_in_2_2 + old_workflows)
    assert len(rest.datatables) == 1
    columns = rest.datatables["twilio_sms_log"]["fields"]
    noted = {r["column"]: r["uuid"] for r in facts.table("Datatable")}
    assert {c: columns[c]["uuid"] for c in columns} == noted
    assert rest.message_destinations["fn_twilio"]["api_keys"] == [rest.api_key_handle]


@requires_app
@requires_export
def test_no_two_functions_share_a_display_name(upgraded):
    names = Counter(fn["display_name"] for fn in upgraded.rest.functions.values())
    assert max(names.values()) == 1, names
    assert upgraded.rest.functions["twilio_get_responses"]["display_name"] == "Twilio: Get Responses (2.0.x)"


@requires_app
@requires_export
def test_every_workflow_function_reference_resolves(upgraded):
    index = upgraded.rest.export_index()
    called = {}
    for name in index.workflows:
        tasks = index.workflow_tasks(name)
        assert tasks, name
        for task in tasks:
            assert task.function_name is not None, (name, task.function_uuid)
            called[name] = task.function_name
    assert called[USER_WORKFLOW] == "twilio_get_responses"
    assert called["twilio_get_responses"] == "twilio_receive_messages"


@requires_app
@requires_export
def test_a_2_0_x_workflow_calling_twilio_get_responses_still_gets_the_replies(upgraded):
    """The user's 2.0.x workflow, run from an SMS Activity Log row: its pre-processing script passes
    twilio_phone_number and twilio_date_sent_ts from the row, the real app answers as twilio_get_responses."""
    since_ms = int(time.time() * 1000) - 60_000
    row = upgraded.rest.add_row(INCIDENT, "twilio_sms_log", {
        "row_created": "2026-12-01 10:00:00", "status": "queued", "date_created": since_ms,
        "phone_number": "353861234567",                     # written the 2.0.1 way, without +
        "direction": "outbound-api", "msg_body": "Ack?", "message_id": "SM" + "0" * 32})
    reply = upgraded.twilio.inject_inbound(from_=NUMBER, to=SENDER, body="ACK, on it")
    run = upgraded.driver().fire_rule(USER_RULE, incident_id=INCIDENT, row=row, timeout=60)
    assert run.function_name == "twilio_get_responses"
    assert run.inputs == {"twilio_phone_number": "353861234567", "twilio_date_sent_ts": since_ms}
    assert run.error is None, run.error
    assert run.results["success"] is True, run.results["reason"]
    [written] = run.rows_of("twilio_sms_log")
    assert written["message_id"] == reply["sid"] and written["message_id"].startswith("SM")
    assert isinstance(written["date_created"], int) and written["date_created"] >= since_ms
    assert written["msg_body"] == "ACK, on it" and written["phone_number"] == NUMBER
    assert not run.notes
