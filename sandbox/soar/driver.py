"""Playing SOAR: send function messages through the broker and run rules' workflows.

``SoarDriver`` connects to the sandbox broker as the SOAR server does (its own STOMP login),
listens on ``acks.<org>.<destination>`` and matches replies to calls by ``correlation-id``.
``fire_rule`` runs what SOAR runs for a menu-item rule: the workflow's pre-processing script, the
function call, the post-processing script, then keeps the notes and datatable rows on the
emulator's incident. ``run_playbook`` does the same for a manual playbook: activation with the form's
values, each function node (its input script, then the function), each local script on the results.
"""
import itertools
import json
import logging
import threading
import time
import uuid as uuidlib
from dataclasses import dataclass, field
from typing import Any, Optional

import stomp

LOG = logging.getLogger(__name__)


class RuleNotAvailable(Exception):
    """The rule would not be offered for this object (unknown rule, or its conditions are false)."""


class FunctionCall:
    """One function invocation and the replies the app sent for it."""

    def __init__(self, name, inputs, correlation_id, workflow_instance_id, message):
        self.name = name
        self.inputs = inputs
        self.correlation_id = correlation_id
        self.workflow_instance_id = workflow_instance_id
        self.message = message          # the body SOAR sent (dict)
        self.statuses: list[str] = []   # status texts, in arrival order
        self.results: Optional[dict] = None
        self.error: Optional[str] = None
        self.completed = False
        self.replies: list[dict] = []   # every reply body, raw
        self.started = time.monotonic()
        self.finished: Optional[float] = None
        self._done = threading.Event()

    def _on_reply(self, body):
        self.replies.append(body)
        message_type = body.get("message_type")
        if message_type == 1:
            self.error = body.get("message")
            self._finish()
        elif body.get("complete"):
            self.results = body.get("results")
            self._finish()
        else:
            self.statuses.append(body.get("message"))

    def _finish(self):
        self.completed = True
        self.finished = time.monotonic()
        self._done.set()

    def wait(self, timeout=30.0):
        """Wait for the final reply; raises TimeoutError when none came in time."""
        if not self._done.wait(timeout):
            raise TimeoutError(f"function {self.name} ({self.correlation_id}) did not complete within "
                               f"{timeout}s; statuses so far: {self.statuses}")
        return self

    @property
    def elapsed(self):
        end = self.finished if self.finished is not None else time.monotonic()
        return end - self.started

    @property
    def success(self):
        """results["success"] (None when there is no result)."""
        return None if self.results is None else self.results.get("success")

    def __repr__(self):
        state = "error" if self.error is not None else ("done" if self.completed else "running")
        return f"<FunctionCall {self.name} {self.correlation_id} {state}>"


@dataclass
class RuleRun:
    """What firing a rule did: inputs, the function call, the scripts' notes and the rows kept."""
    rule: str
    incident_id: int
    workflow: str = None
    function_name: str = None
    inputs: dict[str, Any] = field(default_factory=dict)
    call: Optional[FunctionCall] = None
    pre: Any = None                  # sandbox.scripting.ScriptRun of the pre-processing script
    post: Any = None                 # ScriptRun of the post-processing script (None when the call failed)
    notes: list[str] = field(default_factory=list)                 # note texts added to the incident
    rows: list[tuple[str, dict]] = field(default_factory=list)     # (table, row with "id") kept
    calls: list[FunctionCall] = field(default_factory=list)        # every function task, in order
    workflow_instance_id: int = None
    row_table: Optional[str] = None     # the datatable of the row it ran on (None: on the incident)
    row_id: Optional[int] = None        # that row's id, when the caller's row had one
    updated_rows: list[tuple[str, dict]] = field(default_factory=list)   # the row after each in-place update

    @property
    def results(self):
        return self.call.results if self.call else None

    @property
    def error(self):
        return self.call.error if self.call else None

    def rows_of(self, table):
        return [row for name, row in self.rows if name == table]


@dataclass
class PlaybookRun(RuleRun):
    """What running a playbook did; ``rule`` is the playbook's API name, ``pre`` the last function's
    input script run, ``post`` the last local script run (None when a function failed)."""
    display_name: str = None
    form: dict[str, Any] = field(default_factory=dict)             # the activation form's values
    results_by_name: dict[str, Any] = field(default_factory=dict)  # result_name -> a function's results
    properties: dict[str, Any] = field(default_factory=dict)       # playbook.properties at the end
    playbook_instance_id: int = None

    @property
    def error(self):
        """The message of the function that failed and stopped the playbook (None when none failed)."""
        return next((c.error for c in self.calls if c.error is not None), None)


class _Listener(stomp.ConnectionListener):
    """Forwards one connection's events; events of a replaced connection are ignored."""

    def __init__(self, driver, generation):
        self.driver = driver
        self.generation = generation

    def on_message(self, frame):
        self.driver._on_message(frame)

    def on_receipt(self, frame):
        self.driver._on_receipt(frame.headers.get("receipt-id"))

    def on_error(self, frame):
        LOG.warning("SOAR driver got STOMP ERROR: %s", frame.headers.get("message"))

    def on_disconnected(self):
        self.driver._on_disconnected(self.generation)


def _contains(actual, value):
    return value is not None and actual is not None and str(value) in str(actual)


# How a rule condition compares the field's value (actual) with the condition's value, by method.
_CONDITION_CHECKS = {
    "equals": lambda actual, value: actual == value,
    "not_equals": lambda actual, value: actual != value,
    "contains": _contains,
    "not_contains": lambda actual, value: not _contains(actual, value),
    "has_a_value": lambda actual, value: actual not in (None, ""),
    "not_has_a_value": lambda actual, value: actual in (None, ""),
    "in": lambda actual, value: actual in (value or []),
    "not_in": lambda actual, value: actual not in (value or []),
}


class SoarDriver:
    """SOAR's side of the message bus, plus rule execution against the REST emulator.

    Sends are confirmed by a broker RECEIPT; a send that gets none (the connection dropped) is sent
    again on the next connection. Use one driver per broker: every driver consumes replies from the same
    ``acks.<org>.<destination>`` queue.
    """

    def __init__(self, broker_port, rest=None, *, org_id=201, destination="fn_twilio", login="soar",
                 passcode="soar-secret", host="127.0.0.1", reconnect=True):
        self.broker_port = broker_port
        self.rest = rest
        self.org_id = org_id
        self.destination = destination
        self.login = login
        self.passcode = passcode
        self.host = host
        self.reconnect = reconnect
        self.reply_queue = f"/queue/acks.{org_id}.{destination}"
        self.calls: dict[str, FunctionCall] = {}
        self.unmatched: list[tuple[dict, dict]] = []    # replies with an unknown correlation-id
        self._ids = itertools.count(2001)
        self._receipt_ids = itertools.count(1)
        self._receipts = {}                             # receipt id -> threading.Event
        self._lock = threading.Lock()
        self._connected = threading.Event()
        self._closing = False
        self._conn = None
        self._generation = 0
        self._reconnect_thread = None

    # ------------------------------------------------------------------ connection
    def connect(self, timeout=10.0):
        deadline = time.monotonic() + timeout
        last = None
        while time.monotonic() < deadline:
            try:
                self._open()
                return self
            except Exception as exc:  # broker not up yet, or restarting
                last = exc
                time.sleep(0.2)
        raise ConnectionError(f"SOAR driver could not connect to the broker on port {self.broker_port}: "
                              f"{last}")

    def _open(self):
        with self._lock:
            self._generation += 1
            generation = self._generation
        conn = stomp.Connection12([(self.host, self.broker_port)], heartbeats=(0, 0),
                                  reconnect_attempts_max=1, timeout=5)
        conn.set_ssl(for_hosts=[(self.host, self.broker_port)])   # unverified, as the app does
        conn.set_listener("soar", _Listener(self, generation))
        subscribed = threading.Event()
        receipt = f"soar-subscribe-{next(self._receipt_ids)}"
        with self._lock:
            self._receipts[receipt] = subscribed
        try:
            conn.connect(self.login, self.passcode, wait=True)
            # stomp.py keeps its connect timeout on the socket for reads too: without heart-beats, 5 s
            # with no frame from the broker would end the connection, and a send then waiting for its
            # receipt would be sent a second time. Reads wait as long as SOAR's do; the subscription's
            # receipt ends the read that began under the old timeout.
            conn.transport.socket.settimeout(None)
            conn.subscribe(self.reply_queue, id="soar-acks", ack="auto", headers={"receipt": receipt})
            if not subscribed.wait(5):
                raise ConnectionError(f"no receipt for the subscription to {self.reply_queue}")
        except Exception:
            self._quietly_close(conn)
            raise
        finally:
            with self._lock:
                self._receipts.pop(receipt, None)
        with self._lock:
            old, self._conn = self._conn, conn
        if old is not None and old is not conn:
            self._quietly_close(old)
        self._connected.set()

    @staticmethod
    def _quietly_close(conn):
        try:
            if conn.is_connected():
                conn.disconnect()
            else:
                conn.transport.stop()
        except Exception:  # noqa: BLE001 - already gone
            pass

    def close(self):
        self._closing = True
        with self._lock:
            conn, self._conn = self._conn, None
        self._connected.clear()
        if conn is not None:
            self._quietly_close(conn)

    def __enter__(self):
        return self.connect()

    def __exit__(self, *exc):
        self.close()

    def _on_disconnected(self, generation=None):
        with self._lock:
            if generation is not None and generation != self._generation:
                return                               # a connection already replaced
            self._connected.clear()
            if self._closing or not self.reconnect:
                return
            if self._reconnect_thread is not None and self._reconnect_thread.is_alive():
                return
            self._reconnect_thread = threading.Thread(target=self._reconnect_loop,
                                                      name="soar-driver-reconnect",
                                                      daemon=True)
            self._reconnect_thread.start()

    def _reconnect_loop(self):
        delay = 0.1
        while not self._closing and not self._connected.is_set():
            try:
                self._open()
                LOG.info("SOAR driver reconnected")
                return
            except Exception:  # noqa: BLE001 - retry until closed
                time.sleep(delay)
                delay = min(delay * 2, 1.0)

    def _on_receipt(self, receipt_id):
        with self._lock:
            event = self._receipts.pop(receipt_id, None)
        if event is not None:
            event.set()

    def _send_confirmed(self, destination, body, headers, timeout=30.0, receipt_wait=3.0):
        """SEND with a receipt; on a dropped connection, reconnect and send again."""
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0 or not self._connected.wait(left):
                raise ConnectionError(f"SOAR driver could not deliver a message to {destination} within "
                                      f"{timeout}s")
            receipt = f"soar-send-{next(self._receipt_ids)}"
            event = threading.Event()
            with self._lock:
                self._receipts[receipt] = event
                conn, generation = self._conn, self._generation
            try:
                conn.send(destination, body, headers=dict(headers, receipt=receipt))
                until = time.monotonic() + receipt_wait
                while time.monotonic() < until:
                    if event.wait(0.05):
                        return
                    if not self._connected.is_set() or self._generation != generation:
                        break                          # dropped: no receipt will come on this connection
            except Exception:  # noqa: BLE001 - the connection is gone; reconnect and retry
                pass
            finally:
                with self._lock:
                    self._receipts.pop(receipt, None)
            LOG.info("SOAR driver: no receipt for a send to %s; reconnecting and sending again", destination)
            self._on_disconnected(generation)

    def _on_message(self, frame):
        try:
            body = json.loads(frame.body)
        except ValueError:
            body = {"message_type": -1, "message": frame.body}
        corr = frame.headers.get("correlation-id")
        with self._lock:
            call = self.calls.get(corr)
            if call is None:
                LOG.warning("SOAR driver got a reply for an unknown call %s", corr)
                self.unmatched.append((dict(frame.headers), body))
                return
        call._on_reply(body)

    # ------------------------------------------------------------------ functions
    def function_definition(self, name):
        """The function as the server defines it (REST emulator), or a minimal stand-in."""
        fn = self.rest.functions.get(name) if self.rest is not None else None
        if fn is None:
            return {"id": 0, "name": name, "display_name": name, "uuid": str(uuidlib.uuid4()),
                    "destination_handle": self.destination}
        return fn

    def _shape_inputs(self, name, inputs):
        """Shape input values as SOAR sends them (select/multiselect/textarea objects)."""
        if self.rest is None:
            return dict(inputs)
        index = self.rest.export_index()
        types = {}
        for key, fld in index.fields.items():
            if (key or "").startswith("__function/"):
                types[fld.get("name")] = fld.get("input_type")
        shaped = {}
        for key, value in inputs.items():
            kind = types.get(key)
            if kind == "textarea" and isinstance(value, str):
                value = {"format": "text", "content": value}
            elif kind == "select" and isinstance(value, str):
                value = {"id": 0, "name": value}
            elif kind == "multiselect" and isinstance(value, (list, tuple)):
                value = [{"id": 0, "name": v} if isinstance(v, str) else v for v in value]
            shaped[key] = value
        return shaped

    def start_function(self, name, inputs, workflow_instance_id=None, workflow=None,
                       playbook_instance_id=None):
        """Send a function message and return once the broker has it; ``FunctionCall.wait()`` for the outcome.
        With ``playbook_instance_id`` the call comes from a playbook (no workflow, no workflow instance)."""
        fn = self.function_definition(name)
        if playbook_instance_id is not None:
            workflow_instance_id = None
        elif workflow_instance_id is None and self.rest is not None:
            workflow_instance_id = self.rest.add_workflow_instance()
        elif workflow_instance_id is None:
            workflow_instance_id = next(self._ids)
        invid = next(self._ids)
        corr = f"invid:{invid}"
        workflow = workflow or {"workflow_id": 352, "programmatic_name": "sandbox_workflow",
                                "name": "Sandbox workflow", "object_type": {"id": 0, "name": "incident"},
                                "uuid": str(uuidlib.uuid4()), "tags": [], "actions": []}
        message = {
            "function": {"id": fn.get("id"), "name": fn["name"], "display_name": fn.get("display_name"),
                         "uuid": fn.get("uuid"), "version": fn.get("version", 0), "tags": [],
                         "view_items": fn.get("view_items", [])},
            "groups": [],
            "inputs": self._shape_inputs(name, inputs or {}),
            "playbook_instance": None,
            "principal": {"id": 3, "type": "user", "name": "admin@example.com", "display_name": "Admin"},
            "workflow": workflow,
            "workflow_instance": {"workflow_instance_id": workflow_instance_id},
        }
        if playbook_instance_id is not None:
            message.update(workflow=None, workflow_instance=None,
                           playbook_instance={"playbook_instance_id": playbook_instance_id})
        call = FunctionCall(name, dict(inputs or {}), corr, workflow_instance_id, message)
        with self._lock:
            self.calls[corr] = call
        queue = "/queue/actions.{}.{}".format(self.org_id, fn.get("destination_handle") or self.destination)
        self._send_confirmed(queue, json.dumps(message), headers={
            "reply-to": self.reply_queue, "correlation-id": corr,
            "Co3MessagePayload": "FunctionDataDTO", "Co3ContentType": "application/json",
            "Co3ContextToken": f"sandbox-context-token-{invid}"})
        return call

    def call_function(self, name, inputs, workflow_instance_id=None, timeout=30.0):
        """Send a function message and wait for its final reply (TimeoutError otherwise)."""
        return self.start_function(name, inputs, workflow_instance_id).wait(timeout)

    # ------------------------------------------------------------------ rules
    def fire_rule(self, rule_name, *, incident_id, properties=None, row=None, timeout=60.0):
        """Run a menu-item rule the way SOAR does, against the emulator's imported customizations."""
        from sandbox.scripting import run_script   # a sibling module; imported when rules are used

        if self.rest is None:
            raise RuntimeError("fire_rule needs the REST emulator")
        index = self.rest.export_index()
        rule = index.rules.get(rule_name)
        if rule is None:
            raise RuleNotAvailable("no rule {!r} on the server (rules: {})".format(
                rule_name, ", ".join(sorted(index.rules)) or "none; import the customizations first"))
        incident = self.rest.incident(incident_id, handle_names=True)
        if incident is None:
            raise RuleNotAvailable(f"no incident {incident_id}")
        object_type = rule.get("object_type")
        row_cells = self._row_cells(index, object_type, row, f"rule {rule_name!r}")
        self._check_conditions(rule, incident, object_type, row_cells)

        datatables = self._datatable_types(index)
        run = RuleRun(rule=rule_name, incident_id=int(incident_id), **self._row_identity(object_type, row))
        deadline = time.monotonic() + timeout
        for wf_name in rule.get("workflows") or []:
            wf = index.workflows[wf_name]
            run.workflow = wf_name
            instance = self.rest.add_workflow_instance()
            run.workflow_instance_id = instance
            wf_props = {}
            workflow_info = {"workflow_id": wf.get("workflow_id"), "programmatic_name": wf_name,
                             "name": wf.get("name"), "object_type": {"id": 0, "name": object_type},
                             "uuid": wf.get("uuid"), "tags": [], "actions": []}
            for task in index.workflow_tasks(wf_name):
                script_kw = dict(incident=incident, rule_properties=properties or {}, datatables=datatables,
                                 workflow_properties=wf_props)
                if row_cells is not None:
                    script_kw.update(row=row_cells, row_table=object_type)
                pre = run_script(task.pre_processing_script, inputs=dict(task.static_inputs), **script_kw)
                run.pre, run.function_name, run.inputs = pre, task.function_name, dict(pre.inputs)
                self._keep(run, pre)
                call = self.start_function(task.function_name, pre.inputs, instance, workflow_info)
                run.call = call
                run.calls.append(call)
                call.wait(max(deadline - time.monotonic(), 0.1))
                if call.error is not None:
                    self.rest.terminate_workflow_instance(instance,
                                                          f"function {task.function_name} failed: "
                                                          f"{call.error}")
                    return run
                if task.result_name:
                    wf_props[task.result_name] = call.results
                post = run_script(task.post_processing_script, results=call.results, **script_kw)
                run.post = post
                wf_props = post.workflow_properties
                self._keep(run, post)
            self.rest.complete_workflow_instance(instance)
        return run

    # ------------------------------------------------------------------ playbooks
    def run_playbook(self, name, *, incident_id, inputs=None, row=None, timeout=60.0):
        """Run a manual playbook the way SOAR does, against the emulator's imported customizations.

        ``name`` is the playbook's API name or display name; ``inputs`` the activation form's values
        (a field left out reads None: the sandbox, like SOAR's REST API, does not fill in or refuse empty
        required fields, so the function's own checks answer). A failing function stops the playbook:
        ``PlaybookRun.error`` holds its message and no local script runs after it.
        """
        from sandbox.scripting import run_script   # a sibling module; imported when playbooks are used

        if self.rest is None:
            raise RuntimeError("run_playbook needs the REST emulator")
        index = self.rest.export_index()
        by_display = {p.get("display_name"): key for key, p in index.playbooks.items()}
        playbook = index.playbooks.get(by_display.get(name, name))
        if playbook is None:
            known = ", ".join(sorted(index.playbooks)) or "none; import the customizations first"
            raise RuleNotAvailable(f"no playbook {name!r} on the server (playbooks: {known})")
        if playbook.get("activation_type") != "manual" or playbook.get("status") != "enabled":
            raise RuleNotAvailable(f"playbook {name!r} is not an enabled manual playbook")
        incident = self.rest.incident(incident_id, handle_names=True)
        if incident is None:
            raise RuleNotAvailable(f"no incident {incident_id}")
        object_type = playbook.get("object_type")
        row_cells = self._row_cells(index, object_type, row, f"playbook {name!r}")
        activation = (playbook.get("manual_settings") or {}).get("activation_conditions") or {}
        self._check_conditions(dict(activation, name=playbook.get("display_name")), incident, object_type,
                               row_cells, kind="playbook")

        run = PlaybookRun(rule=playbook["name"], incident_id=int(incident_id),
                          display_name=playbook.get("display_name"), form=dict(inputs or {}),
                          playbook_instance_id=self.rest.add_playbook_instance(
                              incident_id=int(incident_id), playbook_name=playbook.get("display_name")),
                          **self._row_identity(object_type, row))
        script_kw = dict(incident=incident, datatables=self._datatable_types(index), context="playbook",
                         playbook_inputs=run.form)
        if row_cells is not None:
            script_kw.update(row=row_cells, row_table=object_type)
        deadline = time.monotonic() + timeout
        for step in index.playbook_steps(playbook["name"]):
            if step.kind == "function":
                task = step.task
                pre = run_script(task.pre_processing_script, inputs=dict(task.static_inputs),
                                 playbook_results=run.results_by_name, playbook_properties=run.properties,
                                 **script_kw)
                run.pre, run.function_name, run.inputs = pre, task.function_name, dict(pre.inputs)
                run.properties = pre.playbook_properties
                self._keep(run, pre)
                call = self.start_function(task.function_name, pre.inputs,
                                           playbook_instance_id=run.playbook_instance_id)
                run.call = call
                run.calls.append(call)
                call.wait(max(deadline - time.monotonic(), 0.1))
                if call.error is not None:
                    self.rest.end_playbook_instance(
                        run.playbook_instance_id, "error",
                        "The playbook was terminated by the system due to a function error. This error "
                        f"occurs in playbook '{run.display_name}'.\nERROR:\n\n{call.error}")
                    return run
                run.results_by_name[task.result_name] = call.results
            else:
                post = run_script(step.script.get("script_text") or "", playbook_results=run.results_by_name,
                                  playbook_properties=run.properties, **script_kw)
                run.post = post
                run.properties = post.playbook_properties
                self._keep(run, post)
        self.rest.end_playbook_instance(run.playbook_instance_id, "completed")
        return run

    @staticmethod
    def _row_cells(index, object_type, row, what):
        """The row's cells for a rule or playbook on a datatable (None on other objects)."""
        if object_type not in index.datatables:
            return None
        if row is None:
            raise RuleNotAvailable(f"{what} runs on a {object_type} row; pass row=")
        return {k: v for k, v in dict(row).items() if k != "id"}

    @staticmethod
    def _row_identity(object_type, row):
        """Where in-place updates of the row go: its table and id (the id of a row the REST emulator kept)."""
        row_id = dict(row).get("id") if row is not None else None
        return {"row_table": object_type if row is not None else None, "row_id": row_id}

    @staticmethod
    def _datatable_types(index):
        """{table: {column: input_type}}, as the script engine checks rows."""
        return {name: {col: fld.get("input_type", "text") for col, fld in (t.get("fields") or {}).items()}
                for name, t in index.datatables.items()}

    def _keep(self, run, script_run):
        for note in script_run.notes:
            text = note["text"] if isinstance(note, dict) else str(note)
            self.rest.add_note(run.incident_id, text)
            run.notes.append(text)
        for table, cells in script_run.rows:
            kept = self.rest.add_row(run.incident_id, table, cells)
            run.rows.append((table, kept))
        if script_run.row_updates and run.row_id is not None:   # the row the workflow runs on, in place
            updated = self.rest.update_row(run.incident_id, run.row_table, run.row_id, script_run.row_updates)
            run.updated_rows.append((run.row_table, updated))

    @staticmethod
    def _check_conditions(rule, incident, object_type, row_cells, kind="rule"):
        results = []
        for cond in rule.get("conditions") or []:
            field_name = cond.get("field_name") or ""
            type_name, _, name = field_name.partition(".")
            if type_name == object_type and row_cells is not None:
                actual = row_cells.get(name)
            elif type_name == "incident":
                actual = incident.get(name, (incident.get("properties") or {}).get(name))
            else:
                continue
            method, value = cond.get("method"), cond.get("value")
            check = _CONDITION_CHECKS.get(method)
            if check is not None:
                results.append((field_name, method, value, check(actual, value)))
        logic = rule.get("logic_type", "all")
        outcomes = [r[3] for r in results]
        if outcomes and not (all(outcomes) if logic == "all" else any(outcomes)):
            failed = [f"{f} {m} {v!r}" for f, m, v, ok in results if not ok]
            raise RuleNotAvailable("{} {!r} is not offered here: condition {} is false".format(
                kind, rule.get("name"), ", ".join(failed)))
