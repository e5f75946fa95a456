"""The playbooks: derived from the example rules and workflows, their scripts built from the same
script files, and those scripts run in their playbook form by the sandbox script engine against the
function output in payload_samples/."""
import io
import json
import os
import xml.etree.ElementTree as ET

import pytest

from customizations import build_export
from customizations import definitions as d
from customizations import playbooks as pb
from sandbox.scripting import ScriptError, run_script, script_path

from tests.customizations.conftest import EXPORT_RES_PATH, REPO_ROOT

INCIDENT = {"id": 2095, "name": "Phishing from example.com", "severity_code": "High"}
BPMN = "{http://www.omg.org/spec/BPMN/20100524/MODEL}"
RESILIENT = "{http://resilient.ibm.com/bpmn}"
PLAYBOOKS = {p.workflow: p for p in pb.all_playbooks(d)}


def payload_sample(function):
    with open(os.path.join(REPO_ROOT, "payload_samples", function, "output_json_example.json"),
              encoding="utf-8") as handle:
        return json.load(handle)


@pytest.fixture(scope="module")
def exported():
    with open(EXPORT_RES_PATH, encoding="utf-8") as handle:
        return {p["name"]: p for p in json.load(handle)["playbooks"]}


# ---------------------------------------------------------------------------------------------
# The rewriting of a workflow script into its playbook form
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("workflow_line,playbook_line", [
    ("inputs.a = rule.properties.a\n", "inputs.a = playbook.inputs.a\n"),
    ("x = rule.properties.b or rule.properties.c\n", "x = playbook.inputs.b or playbook.inputs.c\n"),
    ("workflow.addProperty('done', {})\n", "playbook.addProperty('done', {})\n"),
    ("seen = workflow.properties.get('done')\n", "seen = playbook.properties.get('done')\n"),
    ("# rule.properties.a stays as written in a comment\n",
     "# rule.properties.a stays as written in a comment\n"),
    ("inputs.b = row['phone_number']\n", "inputs.b = row['phone_number']\n"),
    ("my_rule.properties = 1\n", "my_rule.properties = 1\n"),
])
def test_rewrites(workflow_line, playbook_line):
    assert pb.to_playbook_code(workflow_line) == playbook_line


@pytest.mark.parametrize("line", ["x = rule.id\n", "workflow.instance_id\n"])
def test_a_script_with_no_playbook_form_stops_the_build(line):
    with pytest.raises(pb.PlaybookSourceError, match="line 2"):
        pb.to_playbook_code("# header\n" + line, "scripts/x_pre.py")


def test_the_local_script_binds_results_once_then_is_the_workflow_script():
    playbook = PLAYBOOKS["example_twilio_send_sms"]
    text = playbook.local_script()
    with open(os.path.join(REPO_ROOT, "customizations", playbook.post_script), encoding="utf-8") as handle:
        source = handle.read()
    code = [line for line in text.splitlines() if not line.startswith("#")]
    assert code[0] == "results = playbook.functions.results.twilio_send_sms_result"
    assert text.endswith(source)          # the post-processing script has no rule./workflow. to adapt


# ---------------------------------------------------------------------------------------------
# Derived from the rules and workflows
# ---------------------------------------------------------------------------------------------
def test_one_playbook_per_example_named_after_the_workflow():
    # every example rule ships as a playbook too (contract §11), each once
    assert len(d.PLAYBOOK_EXAMPLES) == len(set(d.PLAYBOOK_EXAMPLES)) == 5
    assert set(d.PLAYBOOK_EXAMPLES) == {r.name for r in d.RULES}
    rules = {r.name: r for r in d.RULES}
    workflows = {w.programmatic_name: w for w in d.WORKFLOWS}
    for playbook in pb.all_playbooks(d):
        rule, workflow = rules[playbook.rule], workflows[playbook.workflow]
        assert rule.workflow == workflow.programmatic_name
        assert playbook.display_name == workflow.name + " (Playbook)"
        assert playbook.object_type == rule.object_type == workflow.object_type
        assert playbook.function == workflow.function
        assert [f.name for f in playbook.form] == list(rule.fields)
        assert playbook.conditions == rule.conditions


def test_an_unknown_rule_is_a_clear_error():
    with pytest.raises(KeyError, match="no rule 'Example: Nothing'"):
        pb.playbook_for("Example: Nothing", d)


@pytest.mark.parametrize("workflow", sorted(PLAYBOOKS))
def test_export_entry_is_a_manual_playbook_with_the_rule_form(exported, workflow):
    playbook = PLAYBOOKS[workflow]
    entry = exported[playbook.name]
    assert entry["activation_type"] == "manual" and entry["status"] == "enabled"
    assert entry["display_name"] == playbook.display_name
    assert entry["object_type"] == playbook.object_type
    form = entry["fields_type"]
    assert form["type_name"] == entry["field_type_handle"] == "playbook_" + entry["uuid"].replace("-", "_")
    assert sorted(form["fields"]) == sorted(f.name for f in playbook.form)   # the order: view_items
    for f in playbook.form:
        fld = form["fields"][f.name]
        rule_field = d.RULE_FIELDS[f.name]
        assert (fld["text"], fld["input_type"], fld["tooltip"]) == (
            rule_field.label, rule_field.input_type, rule_field.tooltip)
        assert fld["export_key"] == "{}/{}".format(form["type_name"], f.name)
        assert (fld.get("required") == "always") == rule_field.required
    settings = entry["manual_settings"]
    assert [v["content"] for v in settings["view_items"]] == [
        form["fields"][f.name]["uuid"] for f in playbook.form]
    assert [(c["field_name"], c["method"], c["value"])
            for c in settings["activation_conditions"]["conditions"]] == [
        (c.field_name, c.method, c.value) for c in playbook.conditions]

    root = ET.fromstring(entry["content"]["xml"])
    [function] = root.iter(RESILIENT + "function")
    assert function.get("uuid") == build_export.stable_uuid("function", playbook.function)
    spec = json.loads(function.text)
    assert spec["result_name"] == playbook.result_name
    assert spec["pre_processing_script_language"] == "python3"
    assert spec["pre_processing_script"] == playbook.input_script()
    [script] = root.iter(RESILIENT + "script")
    [local] = entry["local_scripts"]
    assert script.get("uuid") == local["uuid"] and local["language"] == "python3"
    assert local["script_text"] == playbook.local_script()
    flow = [(f.get("sourceRef"), f.get("targetRef")) for f in root.iter(BPMN + "sequenceFlow")]
    assert len(flow) == 3          # start -> function -> local script -> end


def test_the_get_responses_playbook_is_offered_on_rows_that_are_not_failed(exported):
    entry = exported["twilio_get_responses_pb"]
    assert entry["object_type"] == "twilio_sms_log"
    assert entry["manual_settings"]["activation_conditions"]["conditions"] == [
        {"evaluation_id": None, "field_name": "twilio_sms_log.status", "method": "not_equals",
         "type": None, "value": "Failed"}]


# ---------------------------------------------------------------------------------------------
# The scripts in their playbook form, run like SOAR, give what the workflow form gives
# ---------------------------------------------------------------------------------------------
def _without_row_created(rows):
    return [(table, {k: v for k, v in cells.items() if k != "row_created"}) for table, cells in rows]


SEND_FORM = {"twilio_sms_destination": "+353861234567, +19788354530",
             "twilio_sms_message": "Server down, reply ACK"}
RECEIVE_FORM = {"twilio_sms_destination": "+353861234567", "twilio_after_date_ts": 1764151201000,
                "twilio_wait_timeout": "0s"}
ROW = {"phone_number": "+353861234567", "date_created": 1764151201000, "status": "queued",
       "direction": "outbound-api", "message_id": "SM0123456789abcdef0123456789abcdef"}

CASES = [
    # workflow, activation form values, the row (for a datatable playbook), the function's output
    ("example_twilio_send_sms", SEND_FORM, None, "twilio_send_sms"),
    ("example_twilio_send_sms", {"twilio_sms_destination": "+353861234567", "twilio_sms_message": " "},
     None, "twilio_send_sms"),
    ("example_twilio_receive_messages", RECEIVE_FORM, None, "twilio_receive_messages"),
    ("twilio_get_responses", {}, ROW, "twilio_receive_messages"),
]


@pytest.mark.parametrize("workflow,form,row,function", CASES)
def test_playbook_scripts_do_what_the_workflow_scripts_do(workflow, form, row, function):
    playbook = PLAYBOOKS[workflow]
    output = payload_sample(function)
    row_kw = {"row": row} if row else {}

    pre = run_script(script_path(workflow, "pre"), incident=INCIDENT, rule_properties=form, **row_kw)
    post = run_script(script_path(workflow, "post"), incident=INCIDENT, results=output)
    pb_in = run_script(playbook.input_script(), incident=INCIDENT, context="playbook",
                       playbook_inputs=form, **row_kw)
    pb_local = run_script(playbook.local_script(), incident=INCIDENT, context="playbook",
                          results=output, result_name=playbook.result_name)

    assert pb_in.inputs == pre.inputs and pb_in.inputs
    assert pb_local.notes == post.notes
    assert _without_row_created(pb_local.rows) == _without_row_created(post.rows)
    assert pb_local.notes or pb_local.rows


def test_send_playbook_rows_and_notes_from_the_payload_sample():
    playbook = PLAYBOOKS["example_twilio_send_sms"]
    output = payload_sample("twilio_send_sms")
    run = run_script(playbook.local_script(), incident=INCIDENT, context="playbook", results=output,
                     result_name=playbook.result_name)
    rows = run.rows_of("twilio_sms_log")
    assert [r["phone_number"] for r in rows] == [e["phone_number"] for e in output["twilio_status"]]
    assert [r["message_id"] for r in rows] == [e["sid"] for e in output["twilio_status"]]
    assert len(run.notes) == len(output["twilio_status"])


def test_get_responses_playbook_reads_the_row_it_runs_on():
    playbook = PLAYBOOKS["twilio_get_responses"]
    run = run_script(playbook.input_script(), incident=INCIDENT, context="playbook", row=ROW)
    assert run.inputs == {"twilio_phone_number": "+353861234567", "twilio_date_sent_ts": 1764151201000}


def test_an_empty_form_field_reaches_the_function_as_none():
    playbook = PLAYBOOKS["example_twilio_send_sms"]
    run = run_script(playbook.input_script(), incident=INCIDENT, context="playbook", playbook_inputs={})
    assert run.inputs == {"twilio_sms_destination": None, "incident_id": 2095}


def test_the_workflow_form_does_not_run_as_a_playbook():
    """Without the build's adaptation a workflow script fails in a playbook: the rewrite is needed."""
    with pytest.raises(ScriptError, match="name 'rule' is not defined"):
        run_script(script_path("example_twilio_send_sms", "pre"), incident=INCIDENT, context="playbook",
                   playbook_inputs=SEND_FORM)
    with pytest.raises(ScriptError, match="name 'results' is not defined"):
        run_script(script_path("example_twilio_send_sms", "post"), incident=INCIDENT, context="playbook")


def test_playbook_properties_and_earlier_results():
    run = run_script("playbook.addProperty('seen', {'n': len(playbook.functions.results.a.content)})\n"
                     "assert playbook.inputs.missing is None\n",
                     context="playbook", playbook_results={"a": {"content": [1, 2]}})
    assert run.playbook_properties == {"seen": {"n": 2}}


# ---------------------------------------------------------------------------------------------
# The README's Playbooks section stays true to the build
# ---------------------------------------------------------------------------------------------
def _readme_playbooks_section():
    with open(os.path.join(REPO_ROOT, "README.md"), encoding="utf-8") as handle:
        text = handle.read()
    assert "- [Playbooks](#playbooks)" in text
    return text[text.index("\n## Playbooks\n"):].split("\n---\n", 1)[0]


@pytest.mark.parametrize("workflow", sorted(PLAYBOOKS))
def test_readme_documents_each_playbook_as_built(workflow):
    playbook = PLAYBOOKS[workflow]
    section = _readme_playbooks_section()
    assert f"### Playbook - {playbook.display_name}\n" in section
    assert f"| `{playbook.name}` | `{playbook.object_type}` |" in section
    assert playbook.input_script().rstrip("\n") in section
    local = playbook.local_script()
    head = local[:local.index(pb.results_prologue(playbook.result_name))]
    assert head + pb.results_prologue(playbook.result_name) + "# ... then customizations/" + \
        playbook.post_script in section
    for f in playbook.form:
        assert f"| {f.label} | `{f.name}` | `{f.input_type}` | {'Yes' if f.required else 'No'} |" in section
    for c in playbook.conditions:
        assert f"`{c.field_name} {c.method} {c.value}`" in section


# ---------------------------------------------------------------------------------------------
# One source: a script edit reaches the playbooks, and the staleness check sees it
# ---------------------------------------------------------------------------------------------
def test_an_edited_script_file_changes_the_playbook_and_makes_the_export_stale(monkeypatch):
    original = pb._read

    def edited(relative_path):
        text = original(relative_path)
        return text + "inputs.twilio_wait_timeout = rule.properties.twilio_wait_timeout\n" \
            if relative_path.endswith("example_twilio_receive_messages_pre.py") else text

    monkeypatch.setattr(pb, "_read", edited)
    [entry] = [p for p in build_export.build_playbooks() if p["name"] == "example_twilio_receive_messages_pb"]
    spec = json.loads(next(ET.fromstring(entry["content"]["xml"]).iter(RESILIENT + "function")).text)
    assert spec["pre_processing_script"].endswith(
        "inputs.twilio_wait_timeout = playbook.inputs.twilio_wait_timeout\n")
    out = io.StringIO()
    assert build_export.check(EXPORT_RES_PATH, out=out) == 1 and "stale" in out.getvalue()


def test_playbook_uuids_are_unique_across_the_export(exported):
    with open(EXPORT_RES_PATH, encoding="utf-8") as handle:
        export = json.load(handle)
    uuids = [o["uuid"] for key in ("functions", "workflows", "actions", "types", "fields")
             for o in export[key]]
    for entry in exported.values():
        uuids += [entry["uuid"], entry["fields_type"]["uuid"], entry["tag"]["uuid"]]
        uuids += [s["uuid"] for s in entry["local_scripts"]]
        uuids += [f["uuid"] for f in entry["fields_type"]["fields"].values()]
    assert len(uuids) == len(set(uuids))
