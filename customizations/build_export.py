#!/usr/bin/env python
"""Build fn_twilio/util/data/export.res from customizations/ (definitions, template, scripts).

    python customizations/build_export.py            # (re)write the export
    python customizations/build_export.py --check    # exit 1, and say what differs, if stale
    python -m customizations.build_export [--check] [--output PATH]

The output is deterministic: UUIDs are 2.0.1's for the objects 2.0.1 had (customizations/identities.py),
else uuid5 of the object's kind and name; ids are positions,
the export date and server version are fixed, keys are sorted and lists keep the order of the
definitions. The workflows' scripts are embedded verbatim from customizations/scripts/; the
playbooks' scripts are built from the same files by customizations/playbooks.py.
"""
import argparse
import difflib
import json
import os
import re
import string
import sys
import uuid
from xml.sax.saxutils import escape as xml_escape

if __package__ in (None, ""):  # run as a file: make the repository root importable
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from customizations import definitions as d  # noqa: E402
from customizations import playbooks as pb  # noqa: E402
from customizations.identities import IDENTITIES_2_0_1  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
REPO_ROOT = os.path.dirname(HERE)
EXPORT_RES = os.path.join(REPO_ROOT, "fn_twilio", "util", "data", "export.res")
TEMPLATE = os.path.join(HERE, "templates", "workflow.bpmn")
PLAYBOOK_TEMPLATE = os.path.join(HERE, "templates", "playbook.bpmn")
REBUILD_COMMAND = "python customizations/build_export.py"

#: uuid5 namespace of every object this app exports (never change: SOAR matches objects by uuid)
UUID_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "https://github.com/fn-twilio/fn_twilio/customizations")
#: fixed, so that a rebuild of unchanged definitions is byte-identical (2025-11-26T00:00:00Z)
EXPORT_DATE = 1764115200000
#: the oldest SOAR the export targets (becomes app.json minimum_resilient_version), as SOAR 51 writes
#: it: v.r.m.f plus the build number in "version", "major"/"minor" 0 (kept for older readers);
#: resilient-sdk's `dev --set-version` writes the same shape, and IBM's fn_alienvault_otx export.res
#: (resilient-community-apps) carries this very value
SERVER_VERSION = {"build_number": 9339, "major": 0, "minor": 0, "version": "51.0.0.0.9339",
                  "v": 51, "r": 0, "m": 0, "f": 0}
AUTHOR = "fn_twilio"
DATATABLE_FIELD_TYPE_ID = 1000
COLUMN_ID_BASE = 101  # datatable column ids, apart from the ids of function/rule fields
TAGS = []  # no tags: resilient-circuits customize strips them anyway

# SOAR adds these two internal objects to every customization export; importing needs them.
INTERNAL_INCIDENT_TYPE = {
    "create_date": EXPORT_DATE, "description": "Customization Packages (internal)",
    "enabled": False, "export_key": "Customization Packages (internal)", "hidden": False,
    "id": 0, "name": "Customization Packages (internal)", "parent_id": None, "system": False,
    "update_date": EXPORT_DATE, "uuid": "bfeec2d4-3770-11e8-ad39-4a0004044aa0"}
INTERNAL_FIELD = {
    "export_key": "incident/internal_customizations_field", "id": 0, "input_type": "text",
    "internal": True, "name": "internal_customizations_field", "read_only": True,
    "text": "Customizations Field (internal)", "type_id": 0,
    "uuid": "bfeec2d4-3770-11e8-ad39-4a0004044aa1"}


def stable_uuid(kind, name):
    """The uuid of one exported object, e.g. stable_uuid("__function", "incident_id"): the 2.0.1
    UUID for an object 2.0.1 had under that name (customizations/identities.py), else a uuid5."""
    kept = IDENTITIES_2_0_1.get((kind, name))
    return kept if kept is not None else str(uuid.uuid5(UUID_NAMESPACE, f"{kind}/{name}"))


def read_script(relative_path):
    with open(os.path.join(HERE, relative_path), encoding="utf-8") as handle:
        return handle.read()


# --------------------------------------------------------------------------------------------
# One builder per object type
# --------------------------------------------------------------------------------------------
def _field(f, kind, type_id, field_id, prefix):
    out = {
        "allow_default_value": False, "blank_option": False, "calculated": False,
        "changeable": True, "chosen": False, "default_chosen_by_server": False,
        "deprecated": False, "export_key": f"{kind}/{f.name}",
        "hide_notification": False, "id": field_id, "input_type": f.input_type,
        "internal": False, "is_tracked": False, "name": f.name, "operation_perms": {},
        "operations": [], "placeholder": f.placeholder, "prefix": prefix, "read_only": False,
        "rich_text": False, "tags": list(TAGS), "templates": [], "text": f.label,
        "tooltip": f.tooltip, "type_id": type_id, "uuid": stable_uuid(kind, f.name),
        "values": []}
    if f.required:
        out["required"] = "always"
    if kind == "actioninvocation":
        out["short_text"] = ""
    return out


def build_fields():
    fields = []
    for f in d.FUNCTION_INPUTS.values():
        fields.append(_field(f, "__function", 11, 0, None))
    for f in d.RULE_FIELDS.values():
        fields.append(_field(f, "actioninvocation", 6, 0, "properties"))
    fields.sort(key=lambda f: f["export_key"])
    for position, f in enumerate(fields, start=1):
        f["id"] = position
    return fields + [dict(INTERNAL_FIELD)]


def _view_item(field_uuid, field_type):
    return {"content": field_uuid, "element": "field_uuid", "field_type": field_type,
            "show_if": None, "show_link_header": False, "step_label": None}


def _workflow_id(programmatic_name):
    return [w.programmatic_name for w in d.WORKFLOWS].index(programmatic_name) + 1


def build_functions():
    out = []
    for position, fn in enumerate(d.FUNCTIONS, start=1):
        out.append({
            "created_date": EXPORT_DATE,
            "description": {"content": fn.description, "format": "text"},
            "destination_handle": fn.destination, "display_name": fn.display_name,
            "export_key": fn.name, "id": position,
            "last_modified_by": {"display_name": AUTHOR, "id": 1, "name": AUTHOR, "type": "user"},
            "last_modified_time": EXPORT_DATE, "name": fn.name,
            "output_description": {"content": None, "format": "text"},
            "tags": list(TAGS), "uuid": stable_uuid("function", fn.name), "version": 1,
            "view_items": [_view_item(stable_uuid("__function", i), "__function")
                           for i in fn.inputs],
            "workflows": [{"actions": [], "description": None, "name": w.name,
                           "object_type": w.object_type,
                           "programmatic_name": w.programmatic_name, "tags": list(TAGS),
                           "uuid": None, "workflow_id": _workflow_id(w.programmatic_name)}
                          for w in d.WORKFLOWS if w.function == fn.name],
        })
    return out


def build_message_destinations():
    name = d.MESSAGE_DESTINATION
    return [{"api_keys": [], "destination_type": 0, "expect_ack": True, "export_key": name,
             "name": name, "programmatic_name": name, "tags": list(TAGS), "users": [],
             "uuid": stable_uuid("message_destination", name)}]


def _template(path=TEMPLATE):
    with open(path, encoding="utf-8") as handle:
        text = handle.read()
    text = re.sub(r"<!--.*?-->", "", text, flags=re.S)     # the template's own comment
    text = re.sub(r">\s+<", "><", text).strip()             # SOAR stores the XML on one line
    return string.Template(text)


def function_json(workflow):
    """The JSON SOAR keeps inside <resilient:function> for the workflow's task."""
    return json.dumps({
        "inputs": {},
        "pre_processing_script": read_script(workflow.pre_script),
        "pre_processing_script_language": "python3",
        "post_processing_script": read_script(workflow.post_script),
        "post_processing_script_language": "python3",
        "result_name": workflow.result_name,
    }, sort_keys=True, separators=(",", ":"))


def workflow_xml(workflow):
    fn = d.function_by_name(workflow.function)
    attr = {'"': "&quot;"}
    return _template().substitute(
        process_id=xml_escape(workflow.programmatic_name, attr),
        process_name=xml_escape(workflow.name, attr),
        documentation=xml_escape(workflow.description),
        task_name=xml_escape(fn.display_name, attr),
        function_uuid=stable_uuid("function", fn.name),
        function_json=xml_escape(function_json(workflow)))


def build_workflows():
    out = []
    for w in d.WORKFLOWS:
        out.append({
            "actions": [],
            "content": {"version": 1, "workflow_id": w.programmatic_name, "xml": workflow_xml(w)},
            "content_version": 1, "description": w.description, "export_key": w.programmatic_name,
            "last_modified_by": AUTHOR, "last_modified_time": EXPORT_DATE, "name": w.name,
            "object_type": w.object_type, "programmatic_name": w.programmatic_name,
            "tags": list(TAGS), "uuid": stable_uuid("workflow", w.programmatic_name),
            "workflow_id": _workflow_id(w.programmatic_name)})
    return out


def build_actions():
    out = []
    for position, rule in enumerate(d.RULES, start=1):
        out.append({
            "automations": [],
            "conditions": [{"evaluation_id": None, "field_name": c.field_name,
                            "method": c.method, "type": None, "value": c.value}
                           for c in rule.conditions],
            "enabled": True, "export_key": rule.name, "id": position, "logic_type": "all",
            "message_destinations": [], "name": rule.name, "object_type": rule.object_type,
            "tags": list(TAGS), "timeout_seconds": 86400, "type": 1,
            "uuid": stable_uuid("action", rule.name),
            "view_items": [_view_item(stable_uuid("actioninvocation", f), "actioninvocation")
                           for f in rule.fields],
            "workflows": [rule.workflow]})
    return out


def build_types():
    out = []
    for dt in d.DATATABLES:
        columns = {}
        for order, c in enumerate(dt.columns):
            columns[c.name] = {
                "allow_default_value": False, "blank_option": False, "calculated": False,
                "changeable": True, "chosen": False, "default_chosen_by_server": False,
                "deprecated": False, "export_key": f"{dt.name}/{c.name}",
                "hide_notification": False, "id": COLUMN_ID_BASE + order,
                "input_type": c.input_type,
                "internal": False, "is_tracked": False, "name": c.name, "operation_perms": {},
                "operations": [], "order": order, "placeholder": "", "prefix": None,
                "read_only": False, "rich_text": False, "tags": list(TAGS), "templates": [],
                "text": c.label, "tooltip": c.tooltip, "type_id": DATATABLE_FIELD_TYPE_ID,
                "uuid": stable_uuid(dt.name, c.name), "values": [], "width": c.width}
        out.append({
            "actions": [], "display_name": dt.display_name, "export_key": dt.name,
            "fields": columns, "for_actions": False, "for_custom_fields": False,
            "for_notifications": False, "for_workflows": False, "id": None,
            "parent_types": ["incident"],
            "properties": {"can_create": False, "can_destroy": False, "for_who": []},
            "scripts": [], "tags": list(TAGS), "type_id": 8, "type_name": dt.name,
            "uuid": stable_uuid("datatable", dt.name)})
    return out


# --------------------------------------------------------------------------------------------
# Playbooks: derived from the rules and workflows by customizations/playbooks.py
# --------------------------------------------------------------------------------------------
PLAYBOOK_FORM_TYPE_ID = 28        # the type of a playbook's activation form
PLAYBOOK_FORM_FIELD_TYPE_ID = 1030
PLAYBOOK_FIELD_ID_BASE = 201      # activation form field ids, apart from the other fields' ids
_AUTHOR_PRINCIPAL = {"display_name": AUTHOR, "id": 1, "name": AUTHOR, "type": "user"}


def playbook_xml(playbook, playbook_uuid, script_uuid):
    attr = {'"': "&quot;"}
    function_json = json.dumps({
        "inputs": {}, "pre_processing_script": playbook.input_script(),
        "pre_processing_script_language": "python3", "result_name": playbook.result_name,
    }, sort_keys=True, separators=(",", ":"))
    return _template(PLAYBOOK_TEMPLATE).substitute(
        process_id=pb.form_handle(playbook_uuid),
        function_name=xml_escape(playbook.function_display_name, attr),
        function_uuid=stable_uuid("function", playbook.function),
        function_json=xml_escape(function_json),
        script_name=xml_escape(playbook.local_script_name, attr), script_uuid=script_uuid)


def _playbook_form(playbook, handle, first_id):
    fields = {}
    for offset, f in enumerate(playbook.form):
        fld = _field(f, handle, PLAYBOOK_FORM_FIELD_TYPE_ID, first_id + offset, None)
        fields[f.name] = fld
    return {
        "actions": [], "display_name": playbook.display_name, "export_key": handle,
        "fields": fields, "for_actions": False, "for_custom_fields": False,
        "for_notifications": False, "for_workflows": False, "id": None,
        "parent_types": ["__playbook"],
        "properties": {"can_create": False, "can_destroy": False, "for_who": []},
        "scripts": [], "tags": list(TAGS), "type_id": PLAYBOOK_FORM_TYPE_ID, "type_name": handle,
        "uuid": stable_uuid("playbook_form", playbook.name)}


def build_playbooks():
    """The export's ``playbooks``: one per definitions.PLAYBOOK_EXAMPLES entry."""
    out = []
    first_field_id = PLAYBOOK_FIELD_ID_BASE
    for position, playbook in enumerate(pb.all_playbooks(d), start=1):
        playbook_uuid = stable_uuid("playbook", playbook.name)
        script_uuid = stable_uuid("playbook_script", playbook.name)
        handle = pb.form_handle(playbook_uuid)
        conditions = [{"evaluation_id": None, "field_name": c.field_name, "method": c.method,
                       "type": None, "value": c.value} for c in playbook.conditions]
        out.append({
            "activation_type": "manual",
            "content": {"content_version": 1,
                        "xml": playbook_xml(playbook, playbook_uuid, script_uuid)},
            "create_date": EXPORT_DATE, "creator_principal": dict(_AUTHOR_PRINCIPAL),
            "deployment_id": handle,
            "description": {"content": playbook.description, "format": "text"},
            "display_name": playbook.display_name, "export_key": playbook.name,
            "field_type_handle": handle,
            "fields_type": _playbook_form(playbook, handle, first_field_id),
            "has_logical_errors": False, "id": position, "is_deleted": False, "is_locked": False,
            "last_modified_principal": dict(_AUTHOR_PRINCIPAL), "last_modified_time": EXPORT_DATE,
            "local_scripts": [{
                "actions": [], "created_date": EXPORT_DATE,
                "description": f"Writes the results of {playbook.function_display_name} to the incident.",
                "enabled": False, "export_key": playbook.local_script_name, "id": position,
                "language": "python3", "last_modified_by": AUTHOR,
                "last_modified_time": EXPORT_DATE, "name": playbook.local_script_name,
                "object_type": playbook.object_type, "playbook_handle": playbook.name,
                "programmatic_name": f"{playbook.name}_local_script",
                "script_text": playbook.local_script(), "tags": list(TAGS), "uuid": script_uuid}],
            "manual_settings": {
                "activation_conditions": {"conditions": conditions, "logic_type": "all"},
                "view_items": [_view_item(stable_uuid(handle, f.name), handle)
                               for f in playbook.form]},
            "name": playbook.name, "object_type": playbook.object_type, "status": "enabled",
            "tag": {"display_name": f"Playbook_{playbook_uuid}", "id": position,
                    "name": handle, "type": "playbook",
                    "uuid": stable_uuid("playbook_tag", playbook.name)},
            "tags": list(TAGS), "type": "default", "uuid": playbook_uuid, "version": 1})
        first_field_id += len(playbook.form)
    return out


def build_export():
    """The whole export as a dict."""
    return {
        "action_order": [], "actions": build_actions(), "apps": [], "automatic_tasks": [],
        "case_matching_profiles": [], "export_date": EXPORT_DATE, "export_format_version": 2,
        "export_type": None, "fields": build_fields(), "functions": build_functions(),
        "geos": None, "groups": None, "id": 1, "inbound_destinations": [],
        "inbound_mailboxes": None, "incident_artifact_types": [],
        "incident_types": [dict(INTERNAL_INCIDENT_TYPE)], "layouts": [], "locale": None,
        "message_destinations": build_message_destinations(), "notifications": None,
        "overrides": [], "phases": [], "playbooks": build_playbooks(), "regulators": None, "roles": [],
        "scripts": [], "server_version": dict(SERVER_VERSION), "tags": [], "task_order": [],
        "timeframes": None, "types": build_types(), "workflows": build_workflows(),
        "workspaces": []}


def render():
    """The export.res text, exactly as committed."""
    return json.dumps(build_export(), indent=2, sort_keys=True) + "\n"


def check(path=EXPORT_RES, out=sys.stdout):
    """0 when the file at path is what the builder makes, else 1 with a summary of the changes."""
    expected = render()
    try:
        with open(path, encoding="utf-8") as handle:
            actual = handle.read()
    except FileNotFoundError:
        out.write(f"{path} is missing. Rebuild it with: {REBUILD_COMMAND}\n")
        return 1
    if actual == expected:
        out.write(f"{path} is up to date.\n")
        return 0
    diff = list(difflib.unified_diff(actual.splitlines(), expected.splitlines(),
                                     "committed export.res", "built from customizations/",
                                     lineterm="", n=1))
    out.write("{} is stale ({} changed lines). Rebuild it with: {}\n".format(
        path, sum(1 for d in diff if d[:1] in "+-" and d[:3] not in ("+++", "---")),
        REBUILD_COMMAND))
    for line in diff[:60]:
        out.write(line[:200] + "\n")
    if len(diff) > 60:
        out.write(f"... ({len(diff) - 60} more diff lines)\n")
    return 1


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true",
                        help="do not write; exit 1 and show the differences when the file is stale")
    parser.add_argument("--output", default=EXPORT_RES,
                        help="where to write (default: fn_twilio/util/data/export.res)")
    args = parser.parse_args(argv)
    if args.check:
        return check(args.output)
    text = render()
    os.makedirs(os.path.dirname(os.path.abspath(args.output)), exist_ok=True)
    with open(args.output, "w", encoding="utf-8", newline="\n") as handle:
        handle.write(text)
    print("wrote {} ({} bytes)".format(os.path.relpath(args.output), len(text.encode("utf-8"))))
    return 0


if __name__ == "__main__":
    sys.exit(main())
