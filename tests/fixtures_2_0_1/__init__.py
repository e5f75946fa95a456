"""Test fixtures for upgrades from fn_twilio 2.0.1, built from the facts of the 2.0.1 upgrade notes.

``upgrade-2.0.1.md`` (in the shared docs beside the repository: ``../shared/docs/``) lists the 2.0.1
objects and their UUIDs in markdown tables and describes 2.0.1's workflow scripts in words. This
module reads those tables (:func:`facts`) and builds from them an export shaped like a 2.0.1 install
(:func:`export_2_0_1`), with the fixture scripts of this folder written from that description.
Nothing of IBM's files is used. When the notes are absent, :func:`facts_or_skip` skips the test with
the path it looked for.
"""
import json
import os
import re
from dataclasses import dataclass

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
REPO_ROOT = os.path.dirname(os.path.dirname(HERE))
NOTES = os.path.normpath(os.path.join(REPO_ROOT, "..", "shared", "docs", "upgrade-2.0.1.md"))

_CODE = re.compile(r"`([^`]*)`")


@dataclass(frozen=True)
class Facts:
    """The tables of upgrade-2.0.1.md: {section heading: [row as {column header: cell text}]}."""
    tables: dict[str, list[dict[str, str]]]
    datatable_uuid: str

    def table(self, heading_start):
        [heading] = [h for h in self.tables if h.startswith(heading_start)]
        return self.tables[heading]


def _cell(text):
    """A table cell without its markdown: `x` -> x."""
    text = text.strip()
    match = _CODE.fullmatch(text)
    return match.group(1) if match else text


def parse_notes(text):
    tables, heading, header = {}, None, None
    datatable_uuid = None
    for line in text.splitlines():
        if line.startswith("## "):
            heading, header = line[3:].strip(), None
            continue
        found = re.search(r"Table uuid `([0-9a-f-]{36})`", line)
        if found:
            datatable_uuid = found.group(1)
        if not line.startswith("|") or heading is None:
            header = None if not line.startswith("|") else header
            continue
        cells = [_cell(c) for c in line.strip().strip("|").split("|")]
        if header is None:
            header = cells
        elif set("".join(cells)) <= set("-: "):
            continue
        else:
            tables.setdefault(heading, []).append(dict(zip(header, cells)))
    return Facts(tables, datatable_uuid)


def facts_or_skip():
    if not os.path.exists(NOTES):
        pytest.skip(f"the 2.0.1 upgrade notes are not at {NOTES} (the shared docs beside the repository)")
    with open(NOTES, encoding="utf-8") as handle:
        return parse_notes(handle.read())


def script(name):
    with open(os.path.join(HERE, name + ".py"), encoding="utf-8") as handle:
        return handle.read()


# ---------------------------------------------------------------------------------------------
# A 2.0.1-shaped export from the facts
# ---------------------------------------------------------------------------------------------
#: the fixture scripts of each 2.0.1 workflow (pre, post)
WORKFLOW_SCRIPTS = {
    "example_twilio_send_sms": ("send_pre", "send_post"),
    "example_twilio_receive_messages": ("receive_rule_pre", "receive_post"),
    "twilio_get_responses": ("receive_row_pre", "receive_post"),
}

_BPMN = ('<?xml version="1.0" encoding="UTF-8"?>'
         '<definitions xmlns="http://www.omg.org/spec/BPMN/20100524/MODEL" '
         'xmlns:resilient="http://resilient.ibm.com/bpmn" targetNamespace="http://www.camunda.org/test">'
         '<process id="{pid}" isExecutable="true" name="{name}"><startEvent id="start"/>'
         '<serviceTask id="task" name="{task}"><extensionElements>'
         '<resilient:function uuid="{fn_uuid}">{spec}</resilient:function></extensionElements></serviceTask>'
         '<endEvent id="end"/><sequenceFlow id="f1" sourceRef="start" targetRef="task"/>'
         '<sequenceFlow id="f2" sourceRef="task" targetRef="end"/></process></definitions>')


def _escape(text):
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace('"', "&quot;")


def workflow(programmatic_name, name, object_type, fn_uuid, pre, post, wf_uuid):
    """A one-task workflow calling the function ``fn_uuid`` with the given script sources."""
    spec = json.dumps({"inputs": {}, "pre_processing_script": pre,
                       "pre_processing_script_language": "python3", "post_processing_script": post,
                       "post_processing_script_language": "python3", "result_name": ""})
    xml = _BPMN.format(pid=programmatic_name, name=_escape(name), task="task", fn_uuid=fn_uuid,
                       spec=_escape(spec))
    return {"content": {"version": 1, "workflow_id": programmatic_name, "xml": xml}, "description": name,
            "export_key": programmatic_name, "name": name, "object_type": object_type,
            "programmatic_name": programmatic_name, "tags": [], "uuid": wf_uuid, "actions": []}


def rule(name, object_type, workflow_name, field_uuids, uuid, conditions=()):
    return {"name": name, "export_key": name, "object_type": object_type, "type": 1, "enabled": True,
            "logic_type": "all", "uuid": uuid, "workflows": [workflow_name], "conditions": list(conditions),
            "view_items": [{"element": "field_uuid", "field_type": "actioninvocation", "content": u,
                            "show_if": None} for u in field_uuids]}


def export_2_0_1(facts):
    """The customizations a 2.0.1 install left on SOAR, with the UUIDs and names of the notes."""
    destination = facts.table("Message destination")[0]
    fields = []
    input_uuids = {}
    for row in facts.table("Function input fields"):
        input_uuids[row["name"]] = row["uuid"]
        fields.append({"export_key": "__function/" + row["name"], "name": row["name"], "text": row["name"],
                       "input_type": row["input type"], "type_id": 11, "uuid": row["uuid"],
                       **({"required": "always"} if row["required (2.0.1)"].startswith("always") else {})})
    rule_field_uuids = {}
    for row in facts.table("Rule (action) fields"):
        rule_field_uuids[row["name"]] = row["uuid"]
        fields.append({"export_key": "actioninvocation/" + row["name"], "name": row["name"],
                       "text": row["label"], "input_type": row["input type"].split(",")[0].strip(),
                       "type_id": 6, "prefix": "properties", "uuid": row["uuid"],
                       **({"required": "always"} if "required always" in row["input type"] else {})})
    functions = []
    function_uuids = {}
    for row in facts.table("Functions"):
        function_uuids[row["name"]] = row["uuid"]
        functions.append({"name": row["name"], "export_key": row["name"],
                          "display_name": row["display name (2.0.1)"], "uuid": row["uuid"],
                          "destination_handle": destination["programmatic name"],
                          "version": 1, "tags": [], "workflows": [],
                          "view_items": [{"element": "field_uuid", "field_type": "__function",
                                          "content": input_uuids[i.strip()], "show_if": None}
                                         for i in row["inputs, in this order"].split(",")]})
    workflows = []
    for row in facts.table("Workflows"):
        pre, post = WORKFLOW_SCRIPTS[row["programmatic name"]]
        workflows.append(workflow(row["programmatic name"], row["display name (2.0.1)"], row["object type"],
                                  function_uuids[row["function it calls (2.0.1)"]], script(pre), script(post),
                                  row["uuid"]))
    rules = []
    for row in facts.table("Rules"):
        object_type = row["object type"].split(" ")[0]
        conditions = []
        condition = re.search(r"condition (\S+) (\S+) (\S+)\)", row["object type"].replace("`", ""))
        if condition:
            conditions.append({"field_name": condition.group(1), "method": condition.group(2),
                               "value": condition.group(3), "evaluation_id": None, "type": None})
        shown = [] if row["fields shown"] == "none" else [f.strip() for f in row["fields shown"].split(",")]
        rules.append(rule(row["name (= export_key)"], object_type, row["workflow"],
                          [rule_field_uuids[f] for f in shown], row["uuid"], conditions))
    columns = {}
    table_name = "twilio_sms_log"
    for row in facts.table("Datatable"):
        columns[row["column"]] = {"export_key": "{}/{}".format(table_name, row["column"]),
                                  "name": row["column"], "text": row["label"],
                                  "input_type": row["input type"], "order": int(row["order"]),
                                  "type_id": 1000, "uuid": row["uuid"]}
    datatable = {"type_name": table_name, "display_name": "SMS Activity Log", "export_key": table_name,
                 "type_id": 8, "parent_types": ["incident"], "fields": columns, "uuid": facts.datatable_uuid}
    return {"export_format_version": 2, "server_version": {"major": 51, "minor": 0, "version": "51.0.0.0"},
            "message_destinations": [{"programmatic_name": destination["programmatic name"],
                                      "name": destination["programmatic name"], "export_key": destination[
                                          "programmatic name"], "destination_type": 0, "expect_ack": True,
                                      "uuid": destination["uuid"], "api_keys": [], "users": []}],
            "functions": functions, "fields": fields, "workflows": workflows, "actions": rules,
            "types": [datatable]}
