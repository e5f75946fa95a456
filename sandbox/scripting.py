"""A SOAR-like engine for workflow pre/post-processing scripts (python3).

It runs one script the way SOAR's python3 script engine does, with the globals SOAR provides,
and records what the script did, so tests (and the sandbox's SOAR emulator) can check the notes,
datatable rows and function inputs a workflow would produce:

    run = run_script("customizations/scripts/example_twilio_send_sms_post.py",
                     incident={"id": 2095, "name": "Phishing"}, results=function_results)
    run.notes   # [{"text": "<b>Twilio SMS sent</b> to ...", "rich": True}, ...]
    run.rows    # [("twilio_sms_log", {"row_created": ..., "status": "queued", ...}), ...]
    run.inputs  # {"twilio_sms_destination": "+353...", ...}   (pre-processing scripts)

Globals, shaped like SOAR's:
- ``incident``: ``.id``, ``.name``, ``.severity_code``, any other key of the ``incident`` dict,
  ``.properties.<custom field>`` (None when unset), ``addNote(text or rich text)``,
  ``addRow(table)`` -> a row taking ``row["col"] = v`` and ``row.col = v``.
- ``rule``: ``rule.properties.<field>`` (None for a field not given).
- ``row``: the datatable row the workflow runs on (only when ``row`` is given); cells the script
  writes (``row["status"] = ...``) update that row in place: ``run.row_updates`` holds them.
- ``inputs``: ``inputs.x = v`` records a function input (pre-processing).
- ``results``: the function's results (only when ``results`` is given), with ``results["k"]``,
  ``results.k`` and ``results.get("k")`` at every depth.
- ``helper``: ``createRichText(html)``, ``createPlainText(text)``.
- ``workflow``: ``workflow.properties`` and ``workflow.addProperty(name, dict)``.

In a playbook (``context="playbook"``) there is no ``rule``, ``workflow`` or ``results``; instead
``playbook`` gives ``playbook.inputs.<form field>`` (None when not filled in),
``playbook.functions.results.<result_name>`` (the results of the functions run so far),
``playbook.properties`` and ``playbook.addProperty(name, dict)``:

    run = run_script(local_script_text, context="playbook", results=function_results,
                     result_name="twilio_send_sms_result")

Strict like SOAR: writing a column the datatable does not define (or a value of the wrong type
for the column, e.g. text into a datetimepicker) raises; so does ``addRow`` on an unknown table,
reading a key that the results do not have as an attribute, importing a module SOAR does not
offer, file access, and any Python 2-only construct (the script is compiled as Python 3).
"""
import builtins
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Optional, Union

__all__ = ["run_script", "ScriptRun", "ScriptError", "SoarDict", "RichText", "script_path",
           "ALLOWED_IMPORTS", "default_datatables"]

#: Modules a script may import (SOAR offers a small, fixed set; keep scripts within it).
ALLOWED_IMPORTS = frozenset({"datetime", "time", "re", "json", "math"})

#: Builtins SOAR's engine does not offer to scripts.
_FORBIDDEN_BUILTINS = frozenset({"open", "exec", "eval", "compile", "input", "breakpoint",
                                 "globals", "locals", "vars", "exit", "quit", "help",
                                 "memoryview", "__loader__", "__spec__"})

_HERE = os.path.dirname(os.path.abspath(__file__))
_SCRIPTS_DIR = os.path.join(os.path.dirname(_HERE), "customizations", "scripts")

DEFAULT_INCIDENT = {"id": 2095, "name": "Suspicious login from 203.0.113.7",
                    "severity_code": "Medium"}


class ScriptError(Exception):
    """The script cannot run in SOAR, or did something SOAR refuses."""


def script_path(workflow: str, kind: str) -> str:
    """Absolute path of a workflow's pre- or post-processing script (kind: "pre" or "post"),
    as the customizations definitions name it (customizations/scripts/<workflow>_<kind>.py, or a
    script the workflow shares)."""
    if kind not in ("pre", "post"):
        raise ValueError(f"kind must be 'pre' or 'post', not {kind!r}")
    from customizations import definitions  # imported lazily: sandbox -> customizations
    for wf in definitions.WORKFLOWS:
        if wf.programmatic_name == workflow:
            relative = wf.pre_script if kind == "pre" else wf.post_script
            return os.path.join(os.path.dirname(_SCRIPTS_DIR), relative)
    return os.path.join(_SCRIPTS_DIR, f"{workflow}_{kind}.py")


def default_datatables() -> dict[str, dict[str, str]]:
    """{table: {column: input_type}} from the customizations definitions."""
    from customizations import definitions  # imported lazily: sandbox -> customizations
    return {dt.name: {c.name: c.input_type for c in dt.columns} for dt in definitions.DATATABLES}


# --------------------------------------------------------------------------------------------
# Values scripts see
# --------------------------------------------------------------------------------------------
def _wrap(value):
    if isinstance(value, SoarDict):
        return value
    if isinstance(value, Mapping):
        return SoarDict(value)
    if isinstance(value, (list, tuple)):
        return [_wrap(v) for v in value]
    return value


def _unwrap(value):
    if isinstance(value, SoarDict):
        return {k: _unwrap(v) for k, v in value._data.items()}
    if isinstance(value, list):
        return [_unwrap(v) for v in value]
    return value


class SoarDict:
    """A read-mostly dict with attribute access, as SOAR gives ``results`` to scripts."""

    __slots__ = ("_data",)

    def __init__(self, data: Mapping):
        object.__setattr__(self, "_data", {k: _wrap(v) for k, v in dict(data).items()})

    def __getitem__(self, key):
        return self._data[key]

    def __getattr__(self, name):
        if name.startswith("__"):
            raise AttributeError(name)
        try:
            return self._data[name]
        except KeyError:
            raise AttributeError(f"results have no key {name!r} (use .get() for an optional key)") from None

    def __setitem__(self, key, value):
        self._data[key] = _wrap(value)

    def __setattr__(self, name, value):
        self._data[name] = _wrap(value)

    def get(self, key, default=None):
        return self._data.get(key, default)

    def __contains__(self, key):
        return key in self._data

    def __iter__(self):
        return iter(self._data)

    def __len__(self):
        return len(self._data)

    def __bool__(self):
        return bool(self._data)

    def __eq__(self, other):
        if isinstance(other, SoarDict):
            other = other.to_dict()
        return self.to_dict() == other

    def keys(self):
        return self._data.keys()

    def values(self):
        return self._data.values()

    def items(self):
        return self._data.items()

    def to_dict(self):
        return _unwrap(self)

    def __repr__(self):
        return f"SoarDict({self.to_dict()!r})"


class _Namespace:
    """Attribute bag whose missing attributes read as None (rule.properties, incident.properties)."""

    def __init__(self, values: Optional[Mapping] = None):
        object.__setattr__(self, "_values", dict(values or {}))

    def __getattr__(self, name):
        if name.startswith("__"):
            raise AttributeError(name)
        return _wrap(self._values.get(name))

    def __setattr__(self, name, value):
        self._values[name] = value

    def __getitem__(self, name):
        return _wrap(self._values.get(name))

    def get(self, name, default=None):
        return _wrap(self._values.get(name, default))

    def __repr__(self):
        return f"Properties({self._values!r})"


class RichText:
    """What helper.createRichText() returns."""

    def __init__(self, html: str):
        if not isinstance(html, str):
            raise ScriptError(f"helper.createRichText() takes a string, not {type(html).__name__}")
        self.html = html

    def __str__(self):
        return self.html

    def __repr__(self):
        return f"RichText({self.html!r})"


class _PlainText(RichText):
    pass


class _Helper:
    def createRichText(self, html):  # noqa: N802 (SOAR's name)
        return RichText(html)

    def createPlainText(self, text):  # noqa: N802 (SOAR's name)
        return _PlainText(text)


_TYPE_CHECKS = {
    "text": (lambda v: isinstance(v, str), "text"),
    "textarea": (lambda v: isinstance(v, str), "text"),
    "datetimepicker": (lambda v: isinstance(v, int) and not isinstance(v, bool),
                       "epoch milliseconds (int)"),
    "datepicker": (lambda v: isinstance(v, int) and not isinstance(v, bool),
                   "epoch milliseconds (int)"),
    "number": (lambda v: isinstance(v, (int, float)) and not isinstance(v, bool), "a number"),
    "boolean": (lambda v: isinstance(v, bool), "a boolean"),
}


class DatatableRow:
    """A datatable row: ``row["col"]`` and ``row.col``, both reading and writing.

    Only the table's columns exist; a value must suit the column's type (None clears it).
    """

    def __init__(self, table: str, columns: Mapping[str, str], values: Optional[Mapping] = None):
        object.__setattr__(self, "_table", table)
        object.__setattr__(self, "_columns", dict(columns))
        object.__setattr__(self, "_values", {})
        for key, value in dict(values or {}).items():
            self[key] = value
        object.__setattr__(self, "_changed", {})   # cells written after the row was loaded

    def _check(self, column):
        if column not in self._columns:
            raise ScriptError("datatable {!r} has no column {!r} (columns: {})".format(
                self._table, column, ", ".join(self._columns)))

    def __setitem__(self, column, value):
        self._check(column)
        if value is not None:
            check = _TYPE_CHECKS.get(self._columns[column])
            if check and not check[0](value):
                raise ScriptError(f"datatable {self._table!r} column {column!r} ({self._columns[column]}) "
                                  f"takes {check[1]}, not {value!r}")
        self._values[column] = value
        changed = self.__dict__.get("_changed")   # None while the row is being loaded
        if changed is not None:
            changed[column] = value

    def __getitem__(self, column):
        self._check(column)
        return self._values.get(column)

    def __setattr__(self, column, value):
        self[column] = value

    def __getattr__(self, column):
        if column.startswith("__"):
            raise AttributeError(column)
        return self[column]

    def get(self, column, default=None):
        self._check(column)
        value = self._values.get(column)
        return default if value is None else value

    def to_dict(self) -> dict[str, Any]:
        return dict(self._values)

    def __repr__(self):
        return f"DatatableRow({self._table!r}, {self._values!r})"


class _Incident:
    def __init__(self, run: "ScriptRun", values: Mapping, datatables: Mapping[str, Mapping]):
        values = dict(values)
        object.__setattr__(self, "_run", run)
        object.__setattr__(self, "_datatables", datatables)
        object.__setattr__(self, "properties", _Namespace(values.pop("properties", None)))
        object.__setattr__(self, "_values", values)

    def __getattr__(self, name):
        if name.startswith("__"):
            raise AttributeError(name)
        if name in self._values:
            return _wrap(self._values[name])
        raise AttributeError(f"incident has no field {name!r} in this run")

    def __setattr__(self, name, value):
        self._values[name] = value

    def addNote(self, note):  # noqa: N802 (SOAR's name)
        if isinstance(note, _PlainText):
            entry = {"text": note.html, "rich": False}
        elif isinstance(note, RichText):
            entry = {"text": note.html, "rich": True}
        elif isinstance(note, str):
            entry = {"text": note, "rich": False}
        else:
            raise ScriptError("incident.addNote() takes a string or helper.createRichText(...), "
                              f"not {type(note).__name__}")
        self._run.notes.append(entry)

    def addRow(self, table_name):  # noqa: N802 (SOAR's name)
        if table_name not in self._datatables:
            raise ScriptError("incident has no datatable {!r} (known: {})".format(
                table_name, ", ".join(sorted(self._datatables))))
        new_row = DatatableRow(table_name, self._datatables[table_name])
        self._run._row_objects.append((table_name, new_row))
        return new_row


class _Rule:
    def __init__(self, properties: Optional[Mapping]):
        self.properties = _Namespace(properties)


class _Inputs:
    """``inputs.x = v`` records the function input x."""

    def __init__(self, values: dict[str, Any]):
        object.__setattr__(self, "_values", values)

    def __setattr__(self, name, value):
        self._values[name] = _unwrap(value)

    def __getattr__(self, name):
        if name.startswith("__"):
            raise AttributeError(name)
        return self._values.get(name)


class _Workflow:
    def __init__(self, properties: Optional[Mapping]):
        self.properties = SoarDict(properties or {})

    def addProperty(self, name, value):  # noqa: N802 (SOAR's name)
        self.properties[name] = value


class _PlaybookFunctions:
    def __init__(self, results: Mapping):
        self.results = SoarDict(results)


class _Playbook:
    """``playbook`` in a playbook's input and local scripts."""

    def __init__(self, inputs: Optional[Mapping], results: Mapping, properties: Optional[Mapping]):
        self.inputs = _Namespace(inputs)
        self.functions = _PlaybookFunctions(results)
        self.properties = SoarDict(properties or {})

    def addProperty(self, name, value):  # noqa: N802 (SOAR's name)
        self.properties[name] = value


# --------------------------------------------------------------------------------------------
# The run
# --------------------------------------------------------------------------------------------
@dataclass
class ScriptRun:
    """What one script did."""
    name: str
    notes: list[dict[str, Any]] = field(default_factory=list)   # {"text": str, "rich": bool}
    inputs: dict[str, Any] = field(default_factory=dict)        # function inputs after the script
    workflow_properties: dict[str, Any] = field(default_factory=dict)
    playbook_properties: dict[str, Any] = field(default_factory=dict)
    row_updates: dict[str, Any] = field(default_factory=dict)   # cells of ``row`` the script wrote
    _row_objects: list[tuple[str, DatatableRow]] = field(default_factory=list, repr=False)

    @property
    def rows(self) -> list[tuple[str, dict[str, Any]]]:
        """[(table name, {column: value})] in the order the rows were added."""
        return [(table, r.to_dict()) for table, r in self._row_objects]

    def rows_of(self, table: str) -> list[dict[str, Any]]:
        return [values for name, values in self.rows if name == table]


def _restricted_import(name, globals=None, locals=None, fromlist=(), level=0):
    top = name.split(".")[0]
    if level != 0 or top not in ALLOWED_IMPORTS:
        raise ScriptError("import of {!r} is not available in SOAR scripts (allowed: {})".format(
            name, ", ".join(sorted(ALLOWED_IMPORTS))))
    return builtins.__import__(name, globals, locals, fromlist, level)


def _script_builtins() -> dict[str, Any]:
    safe = {k: v for k, v in vars(builtins).items() if k not in _FORBIDDEN_BUILTINS}
    safe["__import__"] = _restricted_import
    return safe


def _read_source(path_or_source: Union[str, "os.PathLike[str]"]) -> tuple[str, str]:
    if isinstance(path_or_source, os.PathLike):
        path = os.fspath(path_or_source)
    elif isinstance(path_or_source, str) and "\n" not in path_or_source \
            and path_or_source.endswith(".py"):
        path = path_or_source
    else:
        return "<script>", str(path_or_source)
    with open(path, encoding="utf-8") as handle:
        return path, handle.read()


def run_script(path_or_source, *, incident: Optional[Mapping] = None,
               rule_properties: Optional[Mapping] = None, row: Optional[Mapping] = None,
               results: Optional[Mapping] = None, inputs: Optional[Mapping] = None,
               datatables: Optional[Mapping[str, Any]] = None,
               row_table: str = "twilio_sms_log",
               workflow_properties: Optional[Mapping] = None, context: str = "workflow",
               playbook_inputs: Optional[Mapping] = None, result_name: str = "",
               playbook_results: Optional[Mapping] = None,
               playbook_properties: Optional[Mapping] = None) -> ScriptRun:
    """Run one script like SOAR (a workflow's pre/post-processing script, or a playbook's
    function input script or local script) and return what it did.

    :param path_or_source: a path to a .py file (str or PathLike) or the script's text.
    :param incident: the incident's fields (id, name, severity_code, properties...);
        a default incident when None.
    :param rule_properties: the rule's fields, ``rule.properties.<name>``.
    :param row: the datatable row the workflow runs on (``row`` is undefined when None).
    :param results: the function's results (``results`` is undefined when None, as in a
        pre-processing script).
    :param inputs: function inputs already set before the script runs.
    :param datatables: {table: {column: input_type}} or {table: [columns]}; defaults to the
        datatables of customizations/definitions.py.
    :param row_table: the datatable ``row`` belongs to.
    :param workflow_properties: ``workflow.properties`` before the script runs.
    :param context: "workflow" (``rule``, ``workflow``, ``results``) or "playbook" (``playbook``).
    :param playbook_inputs: the activation form's values, ``playbook.inputs.<field>``.
    :param result_name: in a playbook, the name ``results`` is kept under:
        ``playbook.functions.results.<result_name>``.
    :param playbook_results: results of earlier functions of the playbook, {result_name: results}.
    :param playbook_properties: ``playbook.properties`` before the script runs.
    :raises ScriptError: the script is not valid Python 3, or did something SOAR refuses.
    """
    name, source = _read_source(path_or_source)
    try:
        code = compile(source, name, "exec", dont_inherit=True)
    except SyntaxError as err:
        raise ScriptError(f"{name} is not valid Python 3 (SOAR's python3 engine rejects it): {err}"
                          ) from err

    tables = datatables if datatables is not None else default_datatables()
    tables = {t: (dict(cols) if isinstance(cols, Mapping) else {c: "" for c in cols})
              for t, cols in tables.items()}

    if context not in ("workflow", "playbook"):
        raise ValueError(f"context must be 'workflow' or 'playbook', not {context!r}")
    run = ScriptRun(name=name, inputs=dict(inputs or {}))
    namespace: dict[str, Any] = {
        "__builtins__": _script_builtins(),
        "__name__": "__soar_script__",
        "incident": _Incident(run, DEFAULT_INCIDENT if incident is None else incident, tables),
        "inputs": _Inputs(run.inputs),
        "helper": _Helper(),
    }
    workflow = _Workflow(workflow_properties)
    playbook = None
    if context == "playbook":
        all_results = dict(playbook_results or {})
        if results is not None:
            if not result_name:
                raise ValueError("a playbook script's results need a result_name")
            all_results[result_name] = results
            results = None
        playbook = _Playbook(playbook_inputs, all_results, playbook_properties)
        namespace["playbook"] = playbook
    else:
        namespace.update(rule=_Rule(rule_properties), workflow=workflow)
    current_row = None
    if row is not None:
        if row_table not in tables:
            raise ScriptError(f"unknown datatable {row_table!r} for row")
        current_row = DatatableRow(row_table, tables[row_table], row)
        namespace["row"] = current_row
    if results is not None:
        namespace["results"] = _wrap(results)

    try:
        exec(code, namespace)  # noqa: S102 - the point of this module
    except ScriptError:
        raise
    except Exception as err:
        raise ScriptError(f"{name} failed: {type(err).__name__}: {err}") from err
    run.workflow_properties = workflow.properties.to_dict()
    if current_row is not None:
        run.row_updates = dict(current_row._changed)
    if playbook is not None:
        run.playbook_properties = playbook.properties.to_dict()
    return run
