"""The export hangs together and holds contract.md §3, §4 and §6."""
import ast
import json
import os
import xml.etree.ElementTree as ET

import pytest

from customizations import definitions as d
from customizations.build_export import HERE as CUSTOMIZATIONS_DIR

BPMN = "{http://www.omg.org/spec/BPMN/20100524/MODEL}"
RESILIENT = "{http://resilient.ibm.com/bpmn}"


def _by(items, key):
    return {item[key]: item for item in items}


def _workflow_task(workflow):
    root = ET.fromstring(workflow["content"]["xml"].encode("utf-8"))
    process = root.find(BPMN + "process")
    return root, process


def _function_elements(workflow):
    _, process = _workflow_task(workflow)
    return process.findall(f"./{BPMN}serviceTask/{BPMN}extensionElements/{RESILIENT}function")


# ---------------------------------------------------------------------------------------------
# Shape of the export
# ---------------------------------------------------------------------------------------------
def test_top_level_shape(export_res):
    assert export_res["export_format_version"] == 2
    version = export_res["server_version"]          # as SOAR 51 writes it: v.r.m.f.build, major/minor 0
    assert version["v"] >= 51 and (version["major"], version["minor"]) == (0, 0)
    assert version["version"] == "{v}.{r}.{m}.{f}.{build_number}".format(**version)
    assert len(export_res["playbooks"]) == 5     # shape: test_customizations_playbooks.py
    for key in ("automatic_tasks", "incident_artifact_types", "layouts", "phases",
                "scripts", "roles", "workspaces", "apps", "action_order", "task_order"):
        assert export_res[key] == [], key
    assert [m["programmatic_name"] for m in export_res["message_destinations"]] == ["fn_twilio"]
    destination = export_res["message_destinations"][0]
    assert destination["destination_type"] == 0 and destination["expect_ack"] is True


def test_functions_and_their_inputs(export_res):
    functions = _by(export_res["functions"], "name")
    assert set(functions) == {"twilio_send_sms", "twilio_receive_messages", "twilio_get_responses",
                              "twilio_get_message_status", "twilio_page"}
    assert functions["twilio_get_message_status"]["display_name"] == "Twilio: Get Delivery Status"
    assert functions["twilio_send_sms"]["display_name"] == "Twilio: Send SMS"
    assert functions["twilio_page"]["display_name"] == "Twilio: Page Until Acknowledged"
    assert functions["twilio_receive_messages"]["display_name"] == "Twilio: Get Responses"
    legacy = functions["twilio_get_responses"]               # 2.0.x's name, kept for its workflows
    assert legacy["display_name"] == "Twilio: Get Responses (2.0.x)"
    assert "2.0.x" in legacy["description"]["content"]
    assert legacy["view_items"] == functions["twilio_receive_messages"]["view_items"]

    fields = _by([f for f in export_res["fields"] if f["type_id"] == 11], "uuid")
    receive_inputs = [("twilio_phone_number", "text", True),
                      ("twilio_date_sent", "text", False),
                      ("twilio_date_sent_ts", "datetimepicker", False),
                      ("twilio_wait_timeout", "text", False),
                      ("incident_id", "number", False),          # 2.2.0: reply codes (contract §9.2)
                      ("twilio_wait_for", "text", False),
                      ("twilio_label", "text", False)]           # 2.3.0: labelled sections (contract §16)
    expected = {
        "twilio_send_sms": [("twilio_sms_destination", "text", True),
                            ("twilio_sms_message", ("text", "textarea"), False),
                            ("incident_id", "number", False),
                            ("twilio_request_ack", "boolean", False),
                            ("twilio_label", "text", False)],
        "twilio_page": [("twilio_page_tiers", "text", True),
                        ("twilio_sms_message", ("text", "textarea"), False),
                        ("incident_id", "number", False),
                        ("twilio_escalate_after", "text", False),
                        ("twilio_label", "text", False)],
        "twilio_receive_messages": receive_inputs,
        "twilio_get_responses": receive_inputs,
        "twilio_get_message_status": [("twilio_message_sids", "text", True),
                                      ("twilio_wait_timeout", "text", False),
                                      ("twilio_label", "text", False)],
    }
    for name, inputs in expected.items():
        fn = functions[name]
        assert fn["destination_handle"] == "fn_twilio"
        assert fn["export_key"] == name
        assert all(v["field_type"] == "__function" for v in fn["view_items"])
        shown = [fields[v["content"]] for v in fn["view_items"]]   # KeyError: missing field
        assert [f["name"] for f in shown] == [i[0] for i in inputs]
        for field, (input_name, input_type, required) in zip(shown, inputs):
            assert field["export_key"] == "__function/" + input_name
            types = input_type if isinstance(input_type, tuple) else (input_type,)
            assert field["input_type"] in types
            assert (field.get("required") == "always") is required, input_name
            assert field["tooltip"].strip(), input_name


def test_every_field_is_used(export_res):
    used = {v["content"] for o in export_res["functions"] + export_res["actions"]
            for v in o["view_items"] if v["element"] == "field_uuid"}
    for field in export_res["fields"]:
        if not field.get("internal"):
            assert field["uuid"] in used, field["export_key"]


def test_message_tooltip_states_the_segment_facts(export_res):
    texts = [f["tooltip"] + " " + f["placeholder"] for f in export_res["fields"]
             if f["name"] == "twilio_sms_message"]
    assert len(texts) == 2  # the function input and the rule field
    for text in texts:
        for fact in ("160", "70", "153", "67", "1600", "GSM-7", "UCS-2"):
            assert fact in text, fact
        assert "144" not in text


def test_datatable(export_res):
    assert len(export_res["types"]) == 1
    table = export_res["types"][0]
    assert table["type_id"] == 8 and table["type_name"] == "twilio_sms_log"
    assert table["display_name"] == "SMS Activity Log"
    assert table["parent_types"] == ["incident"]
    columns = sorted(table["fields"].values(), key=lambda c: c["order"])
    assert [(c["name"], c["text"], c["input_type"]) for c in columns] == [
        ("row_created", "Row Created", "text"),
        ("status", "Status", "text"),
        ("date_created", "Msg Created", "datetimepicker"),
        ("phone_number", "Phone Number", "text"),
        ("direction", "Direction", "text"),
        ("msg_body", "Msg Body", "text"),
        ("message_id", "Msg Id", "text"),
    ]
    for name, column in table["fields"].items():
        assert column["name"] == name and column["export_key"] == "twilio_sms_log/" + name


# ---------------------------------------------------------------------------------------------
# Rules and workflows (contract §6)
# ---------------------------------------------------------------------------------------------
LABEL_FIELD = ("twilio_label", "Label", "text", False)     # 2.3.0: every rule (contract §16)
CONTRACT_RULES = [
    # rule, object type, [(field, label, input type, required)], workflow, workflow name
    ("Example: Send Twilio SMS", "incident",
     [("twilio_sms_destination", "Destination Number", "text", True),
      ("twilio_sms_message", "Message", "text", False),
      ("twilio_request_ack", "Request acknowledgement", "boolean", False),
      LABEL_FIELD],
     "example_twilio_send_sms", "Example: Twilio Send SMS"),
    ("Example: Twilio Receive Messages", "incident",
     [("twilio_sms_destination", "Destination Number", "text", True),
      ("twilio_after_date_ts", "Date Sent", "datetimepicker", False),
      ("twilio_wait_timeout", "Wait Timeout", "text", False),
      LABEL_FIELD],
     "example_twilio_receive_messages", "Example: Twilio Receive Messages"),
    ("Twilio: Get Responses", "twilio_sms_log", [LABEL_FIELD],
     "twilio_get_responses", "Twilio: Get Responses"),
    ("Twilio: Update Delivery Status", "twilio_sms_log",
     [("twilio_status_wait_timeout", "Wait for Final Status", "text", False), LABEL_FIELD],
     "twilio_update_delivery_status", "Twilio: Update Delivery Status"),
    ("Example: Twilio Page On-Call", "incident",
     [("twilio_page_tiers", "Tiers", "text", True),
      ("twilio_escalate_after", "Escalate After", "text", False),
      ("twilio_sms_message", "Message", "text", False),
      LABEL_FIELD],
     "example_twilio_page_on_call", "Example: Twilio Page On-Call"),
]


@pytest.mark.parametrize("rule_name, object_type, fields, wf_name, wf_display", CONTRACT_RULES)
def test_contract_rules(export_res, rule_name, object_type, fields, wf_name, wf_display):
    rule = _by(export_res["actions"], "name")[rule_name]
    assert rule["object_type"] == object_type
    assert rule["type"] == 1 and rule["enabled"] is True  # a manual menu item
    assert rule["workflows"] == [wf_name]
    by_uuid = _by(export_res["fields"], "uuid")
    shown = [by_uuid[v["content"]] for v in rule["view_items"]]
    assert [(f["name"], f["text"], f["input_type"], f.get("required") == "always")
            for f in shown] == fields
    for f in shown:
        assert f["type_id"] == 6 and f["prefix"] == "properties"
        assert f["export_key"] == "actioninvocation/" + f["name"]

    workflow = _by(export_res["workflows"], "programmatic_name")[wf_name]
    assert workflow["name"] == wf_display
    assert workflow["object_type"] == object_type


def test_get_responses_rule_hides_failed_rows(export_res):
    rule = _by(export_res["actions"], "name")["Twilio: Get Responses"]
    assert rule["conditions"] == [{"evaluation_id": None, "field_name": "twilio_sms_log.status",
                                   "method": "not_equals", "type": None, "value": "Failed"}]
    assert rule["logic_type"] == "all"


def test_exactly_the_contract_rules_and_workflows(export_res):
    assert sorted(a["name"] for a in export_res["actions"]) == sorted(r[0] for r in CONTRACT_RULES)
    assert sorted(w["programmatic_name"] for w in export_res["workflows"]) == \
        sorted(r[3] for r in CONTRACT_RULES)


@pytest.mark.parametrize("wf", d.WORKFLOWS, ids=lambda w: w.programmatic_name)
def test_workflow_is_start_task_end_calling_an_existing_function(export_res, wf):
    workflow = _by(export_res["workflows"], "programmatic_name")[wf.programmatic_name]
    assert workflow["content"]["workflow_id"] == wf.programmatic_name
    _, process = _workflow_task(workflow)
    assert process.get("id") == wf.programmatic_name and process.get("name") == wf.name
    kinds = sorted(child.tag.replace(BPMN, "") for child in process
                   if child.tag.replace(BPMN, "") not in ("documentation",))
    assert kinds == ["endEvent", "sequenceFlow", "sequenceFlow", "serviceTask", "startEvent"]

    elements = _function_elements(workflow)
    assert len(elements) == 1
    functions = _by(export_res["functions"], "uuid")
    function = functions[elements[0].get("uuid")]          # KeyError: unknown function
    assert function["name"] == wf.function
    assert wf.programmatic_name in [w["programmatic_name"] for w in function["workflows"]]

    settings = json.loads(elements[0].text)
    assert set(settings) == {"inputs", "pre_processing_script", "pre_processing_script_language",
                             "post_processing_script", "post_processing_script_language",
                             "result_name"}
    assert settings["pre_processing_script_language"] == "python3"
    assert settings["post_processing_script_language"] == "python3"
    for key, path in (("pre_processing_script", wf.pre_script),
                      ("post_processing_script", wf.post_script)):
        with open(os.path.join(CUSTOMIZATIONS_DIR, path), encoding="utf-8") as handle:
            assert settings[key] == handle.read(), f"{path} is not embedded verbatim"
    # resilient-sdk validate flags python 2 scripts by this exact text
    assert '"pre_processing_script_language":"python"' not in workflow["content"]["xml"]
    assert '"post_processing_script_language":"python"' not in workflow["content"]["xml"]


def test_every_function_but_the_legacy_one_has_a_workflow(export_res):
    for function in export_res["functions"]:
        if function["name"] == d.LEGACY_FUNCTION:
            assert function["workflows"] == [], "no shipped workflow calls the legacy function"
        else:
            assert function["workflows"], function["name"]
    legacy_uuid = _by(export_res["functions"], "name")[d.LEGACY_FUNCTION]["uuid"]
    for workflow in export_res["workflows"]:
        assert legacy_uuid not in workflow["content"]["xml"], workflow["programmatic_name"]


# ---------------------------------------------------------------------------------------------
# What the scripts touch exists (static check; the script tests run them)
# ---------------------------------------------------------------------------------------------
def _script_tree(path):
    with open(os.path.join(CUSTOMIZATIONS_DIR, path), encoding="utf-8") as handle:
        return ast.parse(handle.read(), path)


def _attribute_chain(node):
    names = []
    while isinstance(node, ast.Attribute):
        names.append(node.attr)
        node = node.value
    if isinstance(node, ast.Name):
        names.append(node.id)
    return list(reversed(names))


def _rows_written(tree):
    """(table, column) for every `x = incident.addRow("t")` then `x["col"] = ...`/`x.col = ...`."""
    row_vars = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign) and isinstance(node.value, ast.Call) and \
                _attribute_chain(node.value.func) == ["incident", "addRow"]:
            for target in node.targets:
                row_vars[target.id] = node.value.args[0].value
    written = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign):
            for target in node.targets:
                if isinstance(target, ast.Subscript) and isinstance(target.value, ast.Name) \
                        and target.value.id in row_vars:
                    written.add((row_vars[target.value.id], target.slice.value))
                elif isinstance(target, ast.Attribute) and isinstance(target.value, ast.Name) \
                        and target.value.id in row_vars:
                    written.add((row_vars[target.value.id], target.attr))
    return written


def _row_cells_updated(tree):
    """The columns of ``row`` (the row a datatable workflow runs on) that a script writes."""
    return {target.slice.value for node in ast.walk(tree) if isinstance(node, ast.Assign)
            for target in node.targets
            if isinstance(target, ast.Subscript) and isinstance(target.value, ast.Name)
            and target.value.id == "row"}


@pytest.mark.parametrize("wf", d.WORKFLOWS, ids=lambda w: w.programmatic_name)
def test_scripts_use_only_what_exists(export_res, wf):
    function = _by(export_res["functions"], "name")[wf.function]
    by_uuid = _by(export_res["fields"], "uuid")
    function_inputs = {by_uuid[v["content"]]["name"] for v in function["view_items"]}
    rules = [a for a in export_res["actions"] if wf.programmatic_name in a["workflows"]]
    assert rules, f"no rule runs {wf.programmatic_name}"
    rule_fields = {by_uuid[v["content"]]["name"] for r in rules for v in r["view_items"]}
    tables = {t["type_name"]: set(t["fields"]) for t in export_res["types"]}

    pre = _script_tree(wf.pre_script)
    post = _script_tree(wf.post_script)
    for tree in (pre, post):
        for node in ast.walk(tree):
            chain = _attribute_chain(node) if isinstance(node, ast.Attribute) else []
            if chain[:2] == ["rule", "properties"] and len(chain) == 3:
                assert chain[2] in rule_fields, "rule field {} not shown by {}".format(
                    chain[2], [r["name"] for r in rules])
            if chain[:1] == ["inputs"] and len(chain) == 2 and tree is pre:
                assert chain[1] in function_inputs, f"{wf.function} has no input {chain[1]}"
            if isinstance(node, ast.Subscript) and isinstance(node.value, ast.Name) and \
                    node.value.id == "row":
                assert wf.object_type in tables, "row used outside a datatable workflow"
                assert node.slice.value in tables[wf.object_type]
    for table, column in _rows_written(post):
        assert table in tables and column in tables[table], (table, column)
    updated = _row_cells_updated(post)
    for column in updated:      # the row the workflow runs on, updated in place
        assert wf.object_type in tables and column in tables[wf.object_type], column
    assert _rows_written(post) or updated, "the post-processing script writes no row"
