"""Reading and checking a SOAR customization export (export.res), as the emulator's import does.

The model is deliberately small: what the sandbox needs to serve functions, fields, rules,
workflows and datatables, and to run a rule's workflow (pre-script, function, post-script).
"""
import base64
import json
import os
import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field

BPMN_NS = "http://www.omg.org/spec/BPMN/20100524/MODEL"
RESILIENT_NS = "http://resilient.ibm.com/bpmn"

# Incident fields every SOAR server has; rules may test them without the export defining them.
BUILTIN_INCIDENT_FIELDS = frozenset({
    "id", "name", "description", "severity_code", "plan_status", "phase_id", "owner_id", "members",
    "incident_type_ids", "discovered_date", "create_date", "start_date", "due_date", "end_date",
    "confirmed", "negative_pr_likely", "inc_training", "addr", "city", "state", "country", "zip",
    "reporter", "resolution_id", "resolution_summary", "workspace", "org_handle", "creator_id",
    "inc_last_modified_date", "exposure_type_id", "nist_attack_vectors", "data_compromised",
})
BUILTIN_OBJECT_TYPES = frozenset({"incident", "task", "artifact", "note", "attachment", "milestone"})


class ExportError(ValueError):
    """The export cannot be imported; ``problems`` lists every reason."""

    def __init__(self, problems):
        self.problems = list(problems)
        super().__init__("export rejected: " + "; ".join(self.problems))


@dataclass
class FunctionTask:
    """One function task of a workflow (a BPMN serviceTask with a resilient:function element)."""
    task_id: str
    task_name: str
    function_uuid: str
    function_name: str  # None when the uuid is not a function of the export
    static_inputs: dict = field(default_factory=dict)  # input name -> value
    pre_processing_script: str = ""
    post_processing_script: str = ""
    result_name: str = ""


def load_export(source):
    """An export as a dict, from a dict, a path, JSON text or the base64 text of an ImportDefinition."""
    if isinstance(source, dict):
        return source
    if isinstance(source, (bytes, bytearray)):
        source = source.decode("utf-8")
    if isinstance(source, os.PathLike) or (isinstance(source, str) and not source.lstrip().startswith("{")
                                           and os.path.exists(source)):
        with open(source, encoding="utf-8") as handle:
            return json.load(handle)
    text = source.strip()
    if not text.startswith("{"):
        text = base64.b64decode(text).decode("utf-8")
    return json.loads(text)


def _type_and_name(export_key):
    if "/" in (export_key or ""):
        return export_key.split("/", 1)
    return None, export_key


def _script_vars(script, pattern):
    return re.findall(pattern, script or "")


def parse_workflow_tasks(workflow, functions_by_uuid=None):
    """The function tasks of a workflow, in document order."""
    functions_by_uuid = functions_by_uuid or {}
    xml_text = (workflow.get("content") or {}).get("xml") or ""
    if not xml_text:
        return []
    root = ET.fromstring(xml_text.encode("utf-8"))
    tasks = []
    for task in root.iter(f"{{{BPMN_NS}}}serviceTask"):
        fn_el = task.find(f"{{{BPMN_NS}}}extensionElements/{{{RESILIENT_NS}}}function")
        if fn_el is None:
            continue
        uuid = fn_el.get("uuid")
        try:
            spec = json.loads(fn_el.text or "{}")
        except ValueError:
            spec = {}
        fn = functions_by_uuid.get(uuid)
        fields_by_uuid = {}
        if fn is not None:
            fields_by_uuid = fn.get("_fields_by_uuid", {})
        static = {}
        for key, value in (spec.get("inputs") or {}).items():
            name = fields_by_uuid.get(key, key)
            static[name] = _static_value(value)
        tasks.append(FunctionTask(
            task_id=task.get("id"), task_name=task.get("name"), function_uuid=uuid,
            function_name=fn["name"] if fn else None, static_inputs=static,
            pre_processing_script=spec.get("pre_processing_script") or "",
            post_processing_script=spec.get("post_processing_script") or "",
            result_name=spec.get("result_name") or ""))
    return tasks


@dataclass
class PlaybookStep:
    """One step of a playbook, in the order the sequence flows run them: a function (``task``)
    or a local script (``script``: the local_scripts entry)."""
    kind: str                 # "function" or "script"
    element_id: str
    task: FunctionTask = None
    script: dict = None


def parse_playbook_steps(playbook, functions_by_uuid=None):
    """The function and local-script steps of a playbook, following its sequence flows from the start."""
    bpmn = f"{{{BPMN_NS}}}"
    root = ET.fromstring(((playbook.get("content") or {}).get("xml") or "").encode("utf-8"))
    process = root.find(bpmn + "process")
    if process is None:
        return []
    tasks = {t.task_id: t for t in parse_workflow_tasks(playbook, functions_by_uuid)}
    scripts = {s.get("uuid"): s for s in playbook.get("local_scripts") or []}
    flows = {f.get("sourceRef"): f.get("targetRef") for f in process.iter(bpmn + "sequenceFlow")}
    elements = {el.get("id"): el for el in process}
    start = next((el.get("id") for el in process if el.tag == bpmn + "startEvent"), None)
    steps, seen, current = [], set(), flows.get(start)
    while current is not None and current not in seen:
        seen.add(current)
        el = elements.get(current)
        if current in tasks:
            steps.append(PlaybookStep("function", current, task=tasks[current]))
        elif el is not None and el.tag == bpmn + "scriptTask":
            ref = el.find(f"{bpmn}extensionElements/{{{RESILIENT_NS}}}script")
            uuid = ref.get("uuid") if ref is not None else None
            steps.append(PlaybookStep("script", current, script=scripts.get(uuid, {"uuid": uuid})))
        current = flows.get(current)
    return steps


def _static_value(value):
    if not isinstance(value, dict):
        return value
    static = value.get("static_input") or {}
    for key in ("text_value", "number_value", "boolean_value", "select_value", "multiselect_value",
                "date_value", "textarea_value"):
        if key in static:
            return static[key]
    return None


class ExportIndex:
    """Lookup tables over one export."""

    def __init__(self, export):
        self.export = export
        self.fields = {}                # export_key -> field
        self.fields_by_uuid = {}
        for fld in export.get("fields") or []:
            self.fields[fld.get("export_key")] = fld
            if fld.get("uuid"):
                self.fields_by_uuid[fld["uuid"]] = fld
        self.datatables = {t.get("type_name"): t for t in export.get("types") or [] if t.get("type_name")}
        self.message_destinations = {d.get("programmatic_name"): d
                                     for d in export.get("message_destinations") or []}
        self.functions = {}
        self.functions_by_uuid = {}
        for fn in export.get("functions") or []:
            fn = dict(fn)
            fn["_fields_by_uuid"] = {}
            for item in fn.get("view_items") or []:
                fld = self.fields_by_uuid.get(item.get("content"))
                if fld is not None:
                    fn["_fields_by_uuid"][fld["uuid"]] = fld["name"]
            self.functions[fn.get("name")] = fn
            if fn.get("uuid"):
                self.functions_by_uuid[fn["uuid"]] = fn
        self.workflows = {w.get("programmatic_name"): w for w in export.get("workflows") or []}
        self.rules = {r.get("name"): r for r in export.get("actions") or []}
        self.playbooks = {p.get("name"): p for p in export.get("playbooks") or []}

    # -- helpers used by the driver --
    def function_inputs(self, fn_name):
        """Names of the inputs (function fields) of a function."""
        fn = self.functions.get(fn_name) or {}
        return list(fn.get("_fields_by_uuid", {}).values())

    def workflow_tasks(self, programmatic_name):
        return parse_workflow_tasks(self.workflows[programmatic_name], self.functions_by_uuid)

    def playbook_steps(self, name):
        return parse_playbook_steps(self.playbooks[name], self.functions_by_uuid)

    def fields_of_type(self, type_name):
        return [f for key, f in self.fields.items() if _type_and_name(key)[0] == type_name]

    def datatable_columns(self, table):
        return set((self.datatables.get(table) or {}).get("fields", {}).keys())

    # -- checks --
    def problems(self):
        """Every reason the export cannot be imported (empty when it is fine)."""
        problems = []
        problems += self._check_functions()
        problems += self._check_rules()
        problems += self._check_workflows()
        problems += self._check_playbooks()
        return problems

    def _check_playbooks(self):
        problems = []
        for name, playbook in self.playbooks.items():
            where = f"playbook '{name}'"
            object_type = playbook.get("object_type")
            if object_type not in BUILTIN_OBJECT_TYPES and object_type not in self.datatables:
                problems.append(f"{where} is on object type '{object_type}', not a built-in type nor a "
                                "datatable of the export")
            try:
                steps = parse_playbook_steps(playbook, self.functions_by_uuid)
            except ET.ParseError as exc:
                problems.append(f"{where} has XML that does not parse: {exc}")
                continue
            form = (playbook.get("fields_type") or {}).get("fields") or {}
            form_uuids = {f.get("uuid") for f in form.values()}
            for item in (playbook.get("manual_settings") or {}).get("view_items") or []:
                if item.get("element") == "field_uuid" and item.get("content") not in form_uuids:
                    problems.append(f"{where} shows field uuid {item.get('content')} which is not in its "
                                    "activation form")
            for step in steps:
                if step.kind == "function" and step.task.function_name is None:
                    problems.append(f"{where} calls function uuid {step.task.function_uuid} which is not a "
                                    "function of the export")
                elif step.kind == "script" and "script_text" not in step.script:
                    problems.append(f"{where} runs script uuid {step.script.get('uuid')} which is not one of "
                                    "its local scripts")
                script = (step.task.pre_processing_script if step.kind == "function"
                          else step.script.get("script_text"))
                for read in _script_vars(script, r"\bplaybook\.inputs\.(\w+)"):
                    if read not in form:
                        problems.append(f"{where} script reads playbook.inputs.{read}, not a field of its "
                                        "activation form")
        return problems

    def _check_functions(self):
        problems = []
        for name, fn in self.functions.items():
            for item in fn.get("view_items") or []:
                if item.get("element") != "field_uuid":
                    continue
                fld = self.fields_by_uuid.get(item.get("content"))
                if fld is None:
                    problems.append("function '{}' names input field uuid {} which is not in the export's "
                                    "fields".format(name, item.get("content")))
                elif _type_and_name(fld.get("export_key"))[0] != "__function":
                    problems.append("function '{}' names field '{}' which is not a function input "
                                    "(export_key {})".format(name, fld.get("name"), fld.get("export_key")))
            handle = fn.get("destination_handle")
            if handle and handle not in self.message_destinations:
                problems.append(f"function '{name}' uses message destination '{handle}' which is not in the "
                                "export")
        return problems

    def _field_exists(self, type_name, name):
        if f"{type_name}/{name}" in self.fields:
            return True
        if type_name == "incident" and name in BUILTIN_INCIDENT_FIELDS:
            return True
        if type_name in self.datatables:
            return name in self.datatable_columns(type_name)
        return False

    def _check_rules(self):
        problems = []
        for name, rule in self.rules.items():
            object_type = rule.get("object_type")
            if object_type not in BUILTIN_OBJECT_TYPES and object_type not in self.datatables:
                problems.append(f"rule '{name}' is on object type '{object_type}' which is neither a "
                                "built-in type nor a datatable of the export")
            for item in rule.get("view_items") or []:
                if item.get("element") != "field_uuid":
                    continue
                fld = self.fields_by_uuid.get(item.get("content"))
                if fld is None:
                    problems.append("rule '{}' shows field uuid {} which is not in the export's fields"
                                    .format(name, item.get("content")))
                elif _type_and_name(fld.get("export_key"))[0] != "actioninvocation":
                    problems.append("rule '{}' shows field '{}' which is not a rule (actioninvocation) field"
                                    .format(name, fld.get("export_key")))
            for cond in rule.get("conditions") or []:
                field_name = cond.get("field_name") or ""
                if "." not in field_name:
                    continue
                type_name, fname = field_name.split(".", 1)
                if type_name in ("properties", "actioninvocation"):
                    type_name = "actioninvocation"
                if not self._field_exists(type_name, fname):
                    problems.append(f"rule '{name}' has a condition on field '{field_name}' which does not "
                                    "exist")
            for wf in rule.get("workflows") or []:
                if wf not in self.workflows:
                    problems.append(f"rule '{name}' runs workflow '{wf}' which is not in the export")
        return problems

    def _check_workflows(self):
        problems = []
        action_fields = {f.get("name") for f in self.fields_of_type("actioninvocation")}
        for wf_name, wf in self.workflows.items():
            try:
                tasks = parse_workflow_tasks(wf, self.functions_by_uuid)
            except ET.ParseError as exc:
                problems.append(f"workflow '{wf_name}' has XML that does not parse: {exc}")
                continue
            object_type = wf.get("object_type")
            if isinstance(object_type, dict):
                object_type = object_type.get("name")
            for task in tasks:
                where = f"workflow '{wf_name}' task '{task.task_name}'"
                if task.function_name is None:
                    problems.append(f"{where} calls function uuid {task.function_uuid} which is not a "
                                    "function of the export")
                    continue
                inputs = set(self.function_inputs(task.function_name))
                for input_name in task.static_inputs:
                    if input_name not in inputs:
                        problems.append(f"{where} sets input '{input_name}' which is not an input of "
                                        f"function '{task.function_name}'")
                pre = task.pre_processing_script
                for input_name in _script_vars(pre, r"\binputs\.(\w+)\s*=(?!=)"):
                    if input_name not in inputs:
                        problems.append(f"{where} pre-processing script sets inputs.{input_name} which is "
                                        f"not an input of function '{task.function_name}'")
                for script_kind, script in (("pre", pre), ("post", task.post_processing_script)):
                    for prop in _script_vars(script, r"\brule\.properties\.(\w+)"):
                        if prop not in action_fields:
                            problems.append(f"{where} {script_kind}-processing script reads "
                                            f"rule.properties.{prop} which is not a rule field of the export")
                    if object_type in self.datatables:
                        columns = self.datatable_columns(object_type)
                        for col in _row_reads(script):
                            if col not in columns:
                                problems.append(f"{where} {script_kind}-processing script reads row.{col} "
                                                f"but datatable '{object_type}' has no such column")
                problems += self._check_added_rows(where, task.post_processing_script, "post")
                problems += self._check_added_rows(where, pre, "pre")
        return problems

    def _check_added_rows(self, where, script, kind):
        problems = []
        for table, columns in rows_written(script).items():
            if table not in self.datatables:
                problems.append(f"{where} {kind}-processing script adds rows to datatable '{table}' which is "
                                "not in the export")
                continue
            have = self.datatable_columns(table)
            for col in columns:
                if col not in have:
                    problems.append(f"{where} {kind}-processing script writes column '{col}' but datatable "
                                    f"'{table}' has no such column")
        return problems


_ADD_ROW = re.compile(r"\b(\w+)\s*=\s*incident\.addRow\(\s*['\"](\w+)['\"]\s*\)")


def rows_written(script):
    """{table: [columns]} that a script writes on rows it adds with incident.addRow("table")."""
    written = {}
    for var, table in _ADD_ROW.findall(script or ""):
        cols = written.setdefault(table, [])
        var_re = re.escape(var)
        patterns = (rf"\b{var_re}\s*\[\s*['\"](\w+)['\"]\s*\]\s*=(?!=)",
                    rf"\b{var_re}\.(\w+)\s*=(?!=)")
        for pattern in patterns:
            for col in re.findall(pattern, script):
                if col not in cols:
                    cols.append(col)
    return written


def _row_reads(script):
    """Columns a script reads or writes on ``row`` (the datatable row a rule runs on)."""
    cols = re.findall(r"(?<![\w.])row\.(\w+)", script or "")
    cols += re.findall(r"(?<![\w.])row\s*\[\s*['\"](\w+)['\"]\s*\]", script or "")
    return [c for c in dict.fromkeys(cols) if c not in ("get", "keys", "items", "values", "id")]


def check_export(export):
    """Raise ExportError when the export is not importable; return its ExportIndex otherwise."""
    index = ExportIndex(load_export(export))
    problems = index.problems()
    if problems:
        raise ExportError(problems)
    return index
