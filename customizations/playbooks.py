"""Playbooks derived from the example rules and workflows (contract.md §11).

Every playbook is the playbook form of one example: a rule (menu item) and the workflow it runs.
Everything a playbook needs is read from those two definitions, so a playbook is never written
down a second time:

- display name: the workflow's name + " (Playbook)"; description: the workflow's;
- manual activation on the rule's object type, the rule's fields as the activation form, the
  rule's conditions as activation conditions;
- one function node calling the workflow's function with the workflow's ``result_name``;
- the function's input script and the local script after it: the workflow's pre- and
  post-processing script files, adapted to the playbook context by ``input_script`` and
  ``local_script`` below (a short table of rewrites and one prologue line; never a second copy).

This module is plain Python with no knowledge of export.res ids and UUIDs: ``build_export.py``
(``build_playbooks()``) turns these objects into the export's ``playbooks`` entries.
"""
import os
import re
from dataclasses import dataclass

HERE = os.path.dirname(os.path.abspath(__file__))

#: appended to the workflow's name to make the playbook's display name
DISPLAY_SUFFIX = " (Playbook)"
#: appended to the workflow's programmatic name to make the playbook's API name
NAME_SUFFIX = "_pb"

#: How a workflow script's names read in a playbook script, applied in order to code lines
#: (comments are kept as written). Each entry: (pattern, replacement, what it means).
PLAYBOOK_REWRITES: tuple[tuple[str, str, str], ...] = (
    (r"\brule\.properties\.", "playbook.inputs.",
     "a rule field becomes the playbook activation form field of the same name"),
    (r"\bworkflow\.addProperty\(", "playbook.addProperty(",
     "a workflow property becomes a playbook property"),
    (r"\bworkflow\.properties\b", "playbook.properties",
     "workflow properties are playbook properties"),
)

#: Names a workflow script may use that have no playbook meaning once rewritten.
_LEFT_OVER = re.compile(r"\b(rule|workflow)\.")


class PlaybookSourceError(ValueError):
    """A workflow script uses something the playbook form cannot express."""


def _read(relative_path: str) -> str:
    with open(os.path.join(HERE, relative_path), encoding="utf-8") as handle:
        return handle.read()


def _is_code(line: str) -> bool:
    return not line.lstrip().startswith("#")


def to_playbook_code(source: str, origin: str = "<script>") -> str:
    """A workflow script's text with PLAYBOOK_REWRITES applied to its code lines.

    :raises PlaybookSourceError: a code line still reads ``rule.`` or ``workflow.`` afterwards.
    """
    out = []
    for number, line in enumerate(source.splitlines(keepends=True), start=1):
        if _is_code(line):
            for pattern, replacement, _meaning in PLAYBOOK_REWRITES:
                line = re.sub(pattern, replacement, line)
            left = _LEFT_OVER.search(line)
            if left:
                raise PlaybookSourceError(
                    "{} line {}: {!r} has no playbook form (rewrites: {})".format(
                        origin, number, line.strip(),
                        ", ".join(p for p, _r, _m in PLAYBOOK_REWRITES)))
        out.append(line)
    return "".join(out)


def results_prologue(result_name: str) -> str:
    """The local script's first code line: the workflow script's ``results`` in a playbook."""
    return f"results = playbook.functions.results.{result_name}\n"


@dataclass(frozen=True)
class FormField:
    """One field of the activation form (a rule field of the same name)."""
    name: str
    label: str
    input_type: str
    required: bool
    tooltip: str
    placeholder: str


@dataclass(frozen=True)
class Playbook:
    """The playbook form of one example rule and its workflow."""
    name: str                    # API name (export_key): <workflow>_pb
    display_name: str
    description: str
    object_type: str
    function: str
    function_display_name: str
    result_name: str
    form: tuple[FormField, ...]
    conditions: tuple            # definitions.Condition, as the rule has them
    rule: str
    workflow: str
    pre_script: str              # script files (relative to customizations/) the scripts come from
    post_script: str

    @property
    def local_script_name(self) -> str:
        return f"{self.display_name}: write the results"

    def input_script(self) -> str:
        """The function node's input script (python3), from the workflow's pre-processing script."""
        header = (f"# Function input script of \"{self.display_name}\",\n"
                  f"# built from customizations/{self.pre_script}\n"
                  "# (rule.properties.<field> reads playbook.inputs.<field>).\n")
        return header + to_playbook_code(_read(self.pre_script), self.pre_script)

    def local_script(self) -> str:
        """The local script after the function (python3), from the workflow's post-processing script."""
        header = (f"# Local script of \"{self.display_name}\",\n"
                  f"# built from customizations/{self.post_script}:\n"
                  f"# the function's results are playbook.functions.results.{self.result_name}.\n")
        return header + results_prologue(self.result_name) + to_playbook_code(
            _read(self.post_script), self.post_script)


def playbook_for(rule_name: str, definitions) -> Playbook:
    """The playbook of the rule named ``rule_name`` and the workflow it runs."""
    rules = {r.name: r for r in definitions.RULES}
    if rule_name not in rules:
        raise KeyError("no rule {!r} in definitions.RULES (rules: {})".format(
            rule_name, ", ".join(rules)))
    rule = rules[rule_name]
    workflow = {w.programmatic_name: w for w in definitions.WORKFLOWS}[rule.workflow]
    if not workflow.result_name:
        raise PlaybookSourceError(f"workflow {workflow.programmatic_name!r} has no result_name; its "
                                  "playbook's local script could not read the results")
    if workflow.object_type != rule.object_type:
        raise PlaybookSourceError(f"rule {rule.name!r} is on {rule.object_type} but its workflow is on "
                                  f"{workflow.object_type}")
    fn = definitions.function_by_name(workflow.function)
    form = tuple(FormField(name=f.name, label=f.label, input_type=f.input_type, required=f.required,
                           tooltip=f.tooltip, placeholder=f.placeholder)
                 for f in (definitions.RULE_FIELDS[n] for n in rule.fields))
    return Playbook(
        name=workflow.programmatic_name + NAME_SUFFIX,
        display_name=workflow.name + DISPLAY_SUFFIX, description=workflow.description,
        object_type=rule.object_type, function=fn.name, function_display_name=fn.display_name,
        result_name=workflow.result_name, form=form, conditions=tuple(rule.conditions),
        rule=rule.name, workflow=workflow.programmatic_name,
        pre_script=workflow.pre_script, post_script=workflow.post_script)


def all_playbooks(definitions) -> tuple[Playbook, ...]:
    """The playbooks of every rule named in ``definitions.PLAYBOOK_EXAMPLES``, in that order."""
    return tuple(playbook_for(name, definitions) for name in definitions.PLAYBOOK_EXAMPLES)


def form_handle(playbook_uuid: str) -> str:
    """SOAR's name for a playbook's activation form type: playbook_<uuid with underscores>."""
    return "playbook_" + playbook_uuid.replace("-", "_")

