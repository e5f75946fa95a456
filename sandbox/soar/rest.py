"""A small SOAR REST API over HTTPS: what resilient-circuits, the app and `customize` call.

Routes (all below ``/rest``; ``{org}`` is the organisation id, 201 by default):

===========================================================  ===========================================
GET  /session                                                 session of the API key (orgs, user, handle)
POST /session                                                 email/password log-in (csrf_token, cookie)
GET  /orgs/{org}                                              the organisation
GET  /const                                                   server version
GET  /orgs/{org}/types/{type}/fields                          incident, actioninvocation, __function, tables
GET  /orgs/{org}/types/{type}                                 a datatable type
GET  /orgs/{org}/actions                                      rules
GET  /orgs/{org}/connectors/queues                            no extra queues
GET  /orgs/{org}/functions[/{name}]                           defined functions (404 for unknown names)
GET  /orgs/{org}/incidents/{id}                               seeded incidents (handle_format=names)
GET/POST /orgs/{org}/incidents/{id}/comments                  notes
GET  /orgs/{org}/incidents/{id}/table_data/{table}            datatable rows
POST /orgs/{org}/incidents/{id}/table_data/{table}/row_data   add a row
PUT  /orgs/{org}/incidents/{id}/table_data/{table}/row_data/{row}  update a row's cells in place
GET  /orgs/{org}/workflow_instances/{id}                      running / terminated / completed
POST /orgs/{org}/playbooks/execution/query_paged              playbook runs: running / canceled / error /
                                                              completed (filters on id, incident_id)
POST /orgs/{org}/configurations/imports                       checked import, PENDING
GET/PUT /orgs/{org}/configurations/imports/{id}               ACCEPTED applies it
GET/POST /orgs/{org}/message_destinations, GET/PUT .../{id}    message destinations
===========================================================  ===========================================

Status reads (the two routes above) answer as SOAR does, and can be told to refuse: see
:meth:`SoarRestEmulator.refuse_status_reads`.
"""
import base64
import copy
import itertools
import json
import logging
import re
import secrets
import socket
import ssl
import threading
import time
import uuid as uuidlib
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from urllib.parse import parse_qs, unquote, urlsplit

from .._http import TrackingHTTPServer
from .export import ExportIndex, load_export

LOG = logging.getLogger(__name__)

SEVERITY_NAMES = {4: "Low", 5: "Medium", 6: "High"}
SEVERITY_CODES = {v: k for k, v in SEVERITY_NAMES.items()}


def now_ms():
    return int(time.time() * 1000)


@dataclass
class RequestRecord:
    """One request the emulator answered."""
    method: str
    path: str              # without the query string
    query: dict            # {name: value} (last value wins)
    status: int
    body: object = None    # parsed JSON body of the request, or None
    time: float = field(default_factory=time.time)

    def __str__(self):
        return f"{self.method} {self.path} -> {self.status}"


class RawAnswer:
    """A response body that is not JSON (what a proxy or a broken server may send)."""

    def __init__(self, text):
        self.text = text


#: what ``refuse_status_reads`` accepts besides an HTTP status
GARBAGE, NO_STATUS, SLOW = "garbage", "no_status", "slow"


class HttpError(Exception):
    def __init__(self, status, message):
        super().__init__(message)
        self.status = status
        self.message = message


class _Server(TrackingHTTPServer):
    def __init__(self, addr, handler, emulator, ssl_context):
        self.emulator = emulator
        self.ssl_context = ssl_context
        super().__init__(addr, handler)

    def finish_request(self, request, client_address):
        # The TLS handshake runs in the request thread, so a slow client cannot block accept().
        try:
            tls = self.ssl_context.wrap_socket(request, server_side=True)
        except (ssl.SSLError, OSError) as exc:
            LOG.debug("TLS handshake with %s failed: %s", client_address, exc)
            return
        try:
            with self.tracked(tls):
                self.RequestHandlerClass(tls, client_address, self)
        finally:
            try:
                tls.close()
            except OSError:
                pass

    def shutdown_request(self, request):
        try:
            request.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        request.close()


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "SoarEmulator/1.0"

    def log_message(self, fmt, *args):  # quiet; the emulator keeps its own request log
        LOG.debug("%s " + fmt, self.client_address[0], *args)

    def _dispatch(self):
        emulator = self.server.emulator
        parts = urlsplit(self.path)
        path = unquote(parts.path)
        query = {k: v[-1] for k, v in parse_qs(parts.query, keep_blank_values=True).items()}
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        body = None
        status, payload, extra_headers = 500, {"message": "internal error"}, {}
        try:
            if raw:
                try:
                    body = json.loads(raw.decode("utf-8"))
                except ValueError:
                    raise HttpError(400, "request body is not JSON") from None
            status, payload, extra_headers = emulator._handle(self.command, path, query, body, self.headers)
        except HttpError as exc:
            status, payload = exc.status, {"success": False, "title": "Error", "message": exc.message,
                                           "error_code": "generic", "hints": []}
        except Exception as exc:  # pragma: no cover - a bug in the emulator
            LOG.exception("emulator failure on %s %s", self.command, path)
            status, payload = 500, {"message": f"emulator failure: {exc}"}
        emulator._record(RequestRecord(self.command, path, query, status, body))
        raw_answer = isinstance(payload, RawAnswer)
        data = payload.text.encode("utf-8") if raw_answer else json.dumps(payload).encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", "text/html" if raw_answer else "application/json")
        self.send_header("Content-Length", str(len(data)))
        for key, value in extra_headers.items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = _dispatch


class SoarRestEmulator:
    """The SOAR REST API of one organisation, over HTTPS on 127.0.0.1.

    ``preload``: an export (path, dict or text) whose functions, fields, rules, workflows and datatables
    exist from the start, as if ``customize`` had run. ``extra_functions``: more function names (or
    function dicts) the server defines, e.g. the legacy ``twilio_get_responses`` of a 2.0.x install.
    """

    def __init__(self, cert, *, host="127.0.0.1", port=0, org_id=201, org_name="Test Organization",
                 api_key_id="emu-key-id", api_key_secret="emu-key-secret", api_key_handle=7,
                 user_id=3, email="admin@example.com", password="admin-password",
                 preload=None, extra_functions=(), check_preload=True):
        self.cert = cert
        self.host = host
        self._requested_port = port
        self.org_id = org_id
        self.org_name = org_name
        self.api_key_id = api_key_id
        self.api_key_secret = api_key_secret
        self.api_key_handle = api_key_handle
        self.user_id = user_id
        self.email = email
        self.password = password
        # as SOAR 51 writes it (v.r.m.f.build_number; major/minor 0, kept for older readers)
        self.server_version = {"major": 0, "minor": 0, "build_number": 9339, "version": "51.0.0.0.9339",
                               "v": 51, "r": 0, "m": 0, "f": 0}

        self._lock = threading.RLock()
        self._ids = itertools.count(1000)
        self.requests = []                 # RequestRecord log
        self.functions = {}                # name -> function dict
        self.fields = {}                   # export_key -> field dict
        self.rules = {}                    # name -> rule dict
        self.workflows = {}                # programmatic_name -> workflow dict
        self.playbooks = {}                # name (API name) -> playbook dict
        self.datatables = {}               # type_name -> type dict
        self.message_destinations = {}     # programmatic_name -> destination dict
        self.imports = {}                  # id -> {"status", "export", "problems"}
        self.exports = []                  # accepted exports, in order
        self.incidents = {}                # id -> incident dict (with "_notes", "_tables")
        self.workflow_instances = {}       # id -> instance dict
        self.playbook_instances = {}       # id -> playbook run record (as query_paged lists it)
        self._refusals = {}                # instance id or None (all) -> [answers to status reads]
        self._sessions = {}                # csrf token -> JSESSIONID
        self.fail_routes = {}              # (METHOD, regex) -> (status, message): injected failures

        if preload is not None:
            self.apply_export(preload, check=check_preload)
        for fn in extra_functions or ():
            self.define_function(fn) if isinstance(fn, str) else self.define_function(**fn)

        self._server = None
        self._thread = None
        self.port = None

    # ------------------------------------------------------------------ lifecycle
    def start(self):
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(self.cert.cert, self.cert.key)
        port = self.port if self.port else self._requested_port
        self._server = _Server((self.host, port), _Handler, self, ctx)
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.1},
                                        name=f"soar-rest-{self.port}", daemon=True)
        self._thread.start()
        return self

    def stop(self):
        if self._server is not None:
            self._server.shutdown()
            self._server.close_open_sockets()
            self._server.server_close()
            self._thread.join(5)
            self._server = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    @property
    def url(self):
        return f"https://localhost:{self.port}"

    # ------------------------------------------------------------------ controls
    def _record(self, record):
        with self._lock:
            self.requests.append(record)

    def clear_log(self):
        with self._lock:
            self.requests.clear()

    def request_log(self, method=None, path_contains=None):
        """The recorded requests, optionally filtered by method and a substring of the path."""
        with self._lock:
            return [r for r in self.requests
                    if (method is None or r.method == method)
                    and (path_contains is None or path_contains in r.path)]

    def fail(self, method, path_regex, status=500, message="injected failure"):
        """Answer requests matching method and path regex (org-relative or full) with an error."""
        with self._lock:
            self.fail_routes[(method.upper(), path_regex)] = (status, message)

    def clear_failures(self):
        with self._lock:
            self.fail_routes.clear()

    def define_function(self, name, display_name=None, destination_handle="fn_twilio", uuid=None,
                        inputs=()):
        """Make a function exist on the server (fetchable by resilient-circuits)."""
        with self._lock:
            fn = {"id": next(self._ids), "name": name, "display_name": display_name or name,
                  "uuid": uuid or str(uuidlib.uuid4()), "destination_handle": destination_handle,
                  "version": 0, "tags": [], "view_items": [], "workflows": [],
                  "export_key": name}
            for input_name in inputs:
                key = f"__function/{input_name}"
                fld = self.fields.get(key) or self._add_field({"export_key": key, "name": input_name,
                                                               "input_type": "text", "type_id": 11})
                fn["view_items"].append({"element": "field_uuid", "field_type": "__function",
                                         "content": fld["uuid"]})
            self.functions[name] = fn
            self._ensure_destination(destination_handle)
            return fn

    def remove_function(self, name):
        with self._lock:
            self.functions.pop(name, None)

    def add_incident(self, id, name, severity="Low", **fields):
        """Seed an incident. ``severity`` is a name (Low/Medium/High) or a code (4/5/6)."""
        if isinstance(severity, str):
            if severity not in SEVERITY_CODES:
                raise ValueError(f"severity must be one of {sorted(SEVERITY_CODES)}")
            code = SEVERITY_CODES[severity]
        else:
            code = int(severity)
        incident = {"id": int(id), "name": name, "severity_code": code, "description": None,
                    "plan_status": "A", "discovered_date": now_ms(), "create_date": now_ms(),
                    "properties": {}, "vers": 1}
        incident.update(fields)
        with self._lock:
            incident["_notes"] = []
            incident["_tables"] = {}
            self.incidents[int(id)] = incident
        return self.incident(id)

    def incident(self, id, handle_names=False):
        """A copy of an incident as the REST API shows it (without notes and rows)."""
        with self._lock:
            inc = self.incidents.get(int(id))
            if inc is None:
                return None
            shown = {k: copy.deepcopy(v) for k, v in inc.items() if not k.startswith("_")}
        if handle_names:
            shown["severity_code"] = SEVERITY_NAMES.get(shown["severity_code"], shown["severity_code"])
        return shown

    def add_note(self, incident_id, text):
        with self._lock:
            inc = self._incident_or_404(incident_id)
            note = {"id": next(self._ids), "text": text, "create_date": now_ms()}
            inc["_notes"].append(note)
            return dict(note)

    def notes(self, incident_id):
        """Texts of the incident's notes, oldest first."""
        with self._lock:
            return [n["text"] for n in self._incident_or_404(incident_id)["_notes"]]

    def add_row(self, incident_id, table, cells):
        """Add a datatable row; returns it as a dict of cell values plus ``id``."""
        with self._lock:
            inc = self._incident_or_404(incident_id)
            row = {"id": next(self._ids)}
            row.update(cells)
            inc["_tables"].setdefault(table, []).append(row)
            return dict(row)

    def update_row(self, incident_id, table, row_id, cells):
        """Change some cells of one datatable row in place; returns the row (cell values plus ``id``)."""
        with self._lock:
            rows = self._incident_or_404(incident_id)["_tables"].get(table, [])
            for row in rows:
                if row["id"] == int(row_id):
                    row.update(cells)
                    return dict(row)
            raise HttpError(404, f"no row {row_id} in datatable {table} of incident {incident_id}")

    def rows(self, incident_id, table):
        """Rows of one datatable of an incident (dicts of cell values plus ``id``)."""
        with self._lock:
            return [dict(r) for r in self._incident_or_404(incident_id)["_tables"].get(table, [])]

    def add_workflow_instance(self, instance_id=None, status="running"):
        with self._lock:
            instance_id = int(instance_id) if instance_id is not None else next(self._ids)
            self.workflow_instances[instance_id] = {
                "workflow_instance_id": instance_id, "status": status, "start_date": now_ms(),
                "end_date": None, "terminate_reason": None}
            return instance_id

    def terminate_workflow_instance(self, instance_id, reason="Terminated by the test"):
        with self._lock:
            inst = self.workflow_instances.get(int(instance_id))
            if inst is None:
                inst = self.workflow_instances[self.add_workflow_instance(instance_id)]
            inst.update(status="terminated", end_date=now_ms(), terminate_reason=reason)

    def add_playbook_instance(self, instance_id=None, status="running", *, incident_id=None,
                              playbook_name="Sandbox playbook"):
        """A running playbook run (what a call from a playbook names in ``playbook_instance``), shaped
        like the records SOAR's ``playbooks/execution/query_paged`` lists (IBM's fn_playbook_utils shows
        them: ``id``, ``playbook``, ``status``, ``incident_id``, ``object``, ``detail_msg``...)."""
        with self._lock:
            instance_id = int(instance_id) if instance_id is not None else next(self._ids)
            started = now_ms()
            self.playbook_instances[instance_id] = {
                "id": instance_id,
                "playbook": {"id": 186, "display_name": playbook_name, "activation_type": "manual",
                             "description": None, "is_deleted": False, "type": "default", "version": 1},
                "start_time": started, "last_activity_time": started, "elapsed_time": 0, "status": status,
                "object": {"parent": None, "object_id": incident_id, "object_name": None, "type_id": 0,
                           "type_name": "incident"},
                "object_is_deleted": False, "incident_id": incident_id, "detail_msg": None}
            return instance_id

    def end_playbook_instance(self, instance_id, status="canceled", detail=None):
        """End a playbook run: ``canceled`` (an analyst cancelled it, ``detail`` the reason given),
        ``error`` (a function failed) or ``completed``."""
        with self._lock:
            run = self.playbook_instances.get(int(instance_id))
            if run is None:
                run = self.playbook_instances[self.add_playbook_instance(instance_id)]
            ended = now_ms()
            run.update(status=status, detail_msg=detail, last_activity_time=ended,
                       elapsed_time=ended - run["start_time"])

    def cancel_playbook_instance(self, instance_id, reason="Canceled by the test"):
        """An analyst cancels the playbook run, giving ``reason``."""
        self.end_playbook_instance(instance_id, "canceled", reason)

    def refuse_status_reads(self, *answers, instance=None):
        """Make the next status reads of ``instance`` (a workflow instance or playbook run id; None: any)
        get ``answers`` in turn, the last one for every read after them. An answer is an HTTP status
        (401, 403, 404, 500...: SOAR's error JSON), ``"garbage"`` (200 with a body that is not JSON),
        ``"no_status"`` (200 with JSON that holds no status), ``("slow", seconds)`` (the true answer,
        that late) or None (the true answer). No answers: status reads are answered truly again."""
        with self._lock:
            if answers:
                self._refusals[instance] = list(answers)
            else:
                self._refusals.pop(instance, None)

    def status_reads(self, kind=None):
        """The status reads answered so far, oldest first: ``(kind, instance id, status, time)`` with
        ``kind`` ``workflow`` or ``playbook``."""
        found = []
        for r in self.request_log():
            m = re.search(r"/workflow_instances/(\d+)$", r.path)
            if m and r.method == "GET":
                found.append(("workflow", int(m.group(1)), r.status, r.time))
            elif r.method == "POST" and r.path.endswith("/playbooks/execution/query_paged"):
                found.append(("playbook", _queried_id(r.body), r.status, r.time))
        return [f for f in found if kind is None or f[0] == kind]

    def _refusal(self, instance_id):
        """The answer a status read of ``instance_id`` gets now, or None for the true one."""
        with self._lock:
            key = instance_id if instance_id in self._refusals else None
            answers = self._refusals.get(key)
            if not answers:
                return None
            return answers.pop(0) if len(answers) > 1 else answers[0]

    def _status_read(self, instance_id, answer_truly):
        """Answer one status read, or refuse it as told."""
        refusal = self._refusal(instance_id)
        if isinstance(refusal, tuple) and refusal[0] == SLOW:
            time.sleep(refusal[1])
            refusal = None
        if refusal is None:
            with self._lock:
                return answer_truly()
        if refusal == GARBAGE:
            return 200, RawAnswer("<html><body>502 Bad Gateway</body></html>"), {}
        if refusal == NO_STATUS:
            return 200, {"id": instance_id}, {}
        raise HttpError(int(refusal), f"status read refused by the sandbox ({refusal})")

    def complete_workflow_instance(self, instance_id):
        with self._lock:
            inst = self.workflow_instances.get(int(instance_id))
            if inst is not None and inst["status"] == "running":
                inst.update(status="completed", end_date=now_ms())

    def export_index(self):
        """An ExportIndex over everything imported or preloaded so far (functions, fields, rules...)."""
        with self._lock:
            export = {
                "functions": [{k: v for k, v in fn.items() if not k.startswith("_")}
                              for fn in self.functions.values()],
                "fields": list(self.fields.values()),
                "actions": list(self.rules.values()),
                "workflows": list(self.workflows.values()),
                "playbooks": list(self.playbooks.values()),
                "types": list(self.datatables.values()),
                "message_destinations": list(self.message_destinations.values()),
            }
            return ExportIndex(copy.deepcopy(export))

    def check_export(self, export):
        """Problems that make an export unimportable here (empty list when fine): the export's own
        consistency, and what importing it over the objects this server already has would leave."""
        export = load_export(export)
        return ExportIndex(export).problems() + self._merge(export)[1]

    def apply_export(self, export, check=True):
        """Record an export's objects, as an accepted import does. Raises ExportError when check fails."""
        from .export import ExportError
        export = load_export(export)
        with self._lock:
            state, problems = self._merge(export)
            if check:
                problems = ExportIndex(export).problems() + problems
                if problems:
                    raise ExportError(problems)
            for attr, objects in state.items():
                setattr(self, attr, objects)
            self.exports.append(export)

    # ------------------------------------------------------------------ import matching
    #: (section of an export, attribute of this server, the key naming an object)
    _IMPORTED = (("fields", "fields", "export_key"), ("types", "datatables", "type_name"),
                 ("message_destinations", "message_destinations", "programmatic_name"),
                 ("functions", "functions", "name"), ("actions", "rules", "name"),
                 ("workflows", "workflows", "programmatic_name"), ("playbooks", "playbooks", "name"))
    #: what an import never overwrites on an existing object (the server's own bookkeeping)
    _KEPT_ON_UPDATE = {"message_destinations": ("id", "api_keys", "users"), "functions": ("id",),
                       "fields": ("id",), "actions": ("id",)}

    def _merge(self, export):
        """The server's objects after importing ``export`` and the reasons to refuse it.

        Like a strict SOAR server: an imported object updates the existing one with the same uuid or,
        failing that, the same name (a uuid match under another name renames it); an object whose uuid
        belongs to one existing object and whose name to another is refused. The result must not hold two
        functions with one display name, nor a workflow calling a function uuid the server lacks.
        """
        state, problems = {}, []
        for section, attr, key in self._IMPORTED:
            objects = copy.deepcopy(getattr(self, attr))
            for incoming in export.get(section) or []:
                name, uuid = incoming.get(key), incoming.get("uuid")
                by_uuid = next((n for n, o in objects.items() if uuid and o.get("uuid") == uuid), None)
                if by_uuid is not None and by_uuid != name and name in objects:
                    problems.append("{} '{}' has the uuid {} of the existing {} '{}', and '{}' already "
                                    "exists with uuid {}".format(section, name, uuid, section, by_uuid, name,
                                                                 objects[name].get("uuid")))
                    continue
                existing = objects.pop(by_uuid if by_uuid is not None else name, None)
                objects[name] = self._imported_object(section, incoming, existing)
            state[attr] = objects
        problems += self._display_name_clashes(state["functions"])
        problems += self._unresolved_function_references(state)
        return state, problems

    def _imported_object(self, section, incoming, existing):
        obj = copy.deepcopy(incoming)
        if existing is not None:
            for kept in self._KEPT_ON_UPDATE.get(section, ()):
                if kept in existing:
                    obj[kept] = copy.deepcopy(existing[kept])
        elif section in ("message_destinations", "functions"):
            obj["id"] = next(self._ids)
        if section == "message_destinations":
            obj.setdefault("api_keys", [])
            obj.setdefault("users", [])
        if section in ("fields", "actions"):
            obj.setdefault("id", next(self._ids))
        obj.setdefault("uuid", str(uuidlib.uuid4()))
        return obj

    @staticmethod
    def _display_name_clashes(functions):
        named = {}
        for fn in functions.values():
            named.setdefault(fn.get("display_name"), []).append(fn.get("name"))
        return ["functions {} would share the display name '{}'".format(
                    " and ".join(f"'{n}'" for n in sorted(names)), display)
                for display, names in sorted(named.items(), key=lambda item: str(item[0])) if len(names) > 1]

    @staticmethod
    def _unresolved_function_references(state):
        from .export import parse_workflow_tasks
        by_uuid = {fn.get("uuid"): fn for fn in state["functions"].values()}
        problems = []
        for wf_name, wf in sorted(state["workflows"].items()):
            try:
                tasks = parse_workflow_tasks(wf, by_uuid)
            except Exception:  # noqa: BLE001 - reported by the export's own check
                continue
            for task in tasks:
                if task.function_name is None:
                    problems.append(f"workflow '{wf_name}' task '{task.task_name}' would call function uuid "
                                    f"{task.function_uuid}, which is not a function of this server")
        return problems

    # ------------------------------------------------------------------ internals
    def _add_field(self, fld):
        fld.setdefault("uuid", str(uuidlib.uuid4()))
        fld.setdefault("id", next(self._ids))
        self.fields[fld["export_key"]] = fld
        return fld

    def _ensure_destination(self, name, template=None):
        dest = self.message_destinations.get(name)
        if dest is None:
            dest = {"id": next(self._ids), "programmatic_name": name, "name": name,
                    "destination_type": 0, "expect_ack": True, "api_keys": [], "users": [],
                    "uuid": str(uuidlib.uuid4())}
            if template:
                for key in ("name", "destination_type", "expect_ack", "uuid"):
                    if key in template:
                        dest[key] = template[key]
            self.message_destinations[name] = dest
        return dest

    def _incident_or_404(self, incident_id):
        try:
            inc = self.incidents.get(int(incident_id))
        except (TypeError, ValueError):
            inc = None
        if inc is None:
            raise HttpError(404, f"Incident {incident_id} not found")
        return inc

    def _check_auth(self, headers):
        auth = headers.get("Authorization") or ""
        if auth.startswith("Basic "):
            try:
                user, _, secret = base64.b64decode(auth[6:]).decode("utf-8").partition(":")
            except ValueError:
                return False
            return user == self.api_key_id and secret == self.api_key_secret
        sess = headers.get("X-sess-id")
        cookie = headers.get("Cookie") or ""
        with self._lock:
            jsession = self._sessions.get(sess)
        return bool(sess) and jsession is not None and f"JSESSIONID={jsession}" in cookie

    def _session_body(self):
        return {"orgs": [{"id": self.org_id, "name": self.org_name, "enabled": True,
                          "cloud_account": None, "uuid": "00000000-0000-0000-0000-0000000000c9"}],
                "user_id": self.user_id, "api_key_handle": self.api_key_handle,
                "user_email": self.email, "is_saml": False}

    def _handle(self, method, path, query, body, headers):
        """Route one request; returns (status, payload, extra headers)."""
        with self._lock:
            failures = list(self.fail_routes.items())
        for (fail_method, regex), (status, message) in failures:
            if fail_method == method and re.search(regex, path):
                raise HttpError(status, message)

        if path == "/rest/session" and method == "POST":
            if (body or {}).get("email") != self.email or (body or {}).get("password") != self.password:
                raise HttpError(401, "Unauthorized")
            token, jsession = secrets.token_hex(16), secrets.token_hex(16)
            with self._lock:
                self._sessions[token] = jsession
            payload = self._session_body()
            payload["csrf_token"] = token
            return 200, payload, {"Set-Cookie": f"JSESSIONID={jsession}; Path=/; Secure; HttpOnly"}

        if not self._check_auth(headers):
            raise HttpError(401, "Unauthorized")

        if path == "/rest/session" and method == "GET":
            return 200, self._session_body(), {}
        if path == "/rest/const" and method == "GET":
            return 200, {"server_version": self.server_version}, {}

        match = re.match(r"^/rest/orgs/(\d+)(/.*)?$", path)
        if not match:
            raise HttpError(404, f"No route for {method} {path}")
        if int(match.group(1)) != self.org_id:
            raise HttpError(403, f"Not a member of organisation {match.group(1)}")
        rel = match.group(2) or ""
        m = re.match(r"^/workflow_instances/(\d+)$", rel)
        if m and method == "GET":
            return self._status_read(int(m.group(1)), lambda: self._workflow_instance(int(m.group(1))))
        if rel == "/playbooks/execution/query_paged" and method == "POST":
            wanted = _queried_id(body)
            return self._status_read(wanted, lambda: self._playbook_runs(body))
        with self._lock:
            return self._route_org(method, rel, query, body)

    def _workflow_instance(self, instance_id):
        inst = self.workflow_instances.get(instance_id)
        if inst is None:
            raise HttpError(404, f"Workflow instance {instance_id} not found")
        return 200, dict(inst), {}

    def _playbook_runs(self, body):
        """query_paged over the playbook runs: conditions on ``id`` / ``incident_id`` with ``equals``,
        ``gte``, ``lte`` (what IBM's apps send), ``start`` / ``length`` paging."""
        conditions = [c for f in (body or {}).get("filters") or [] for c in (f or {}).get("conditions") or []]
        runs = sorted(self.playbook_instances.values(), key=lambda r: r["id"])
        for cond in conditions:
            test = _CONDITIONS.get(cond.get("method"))
            field_name = cond.get("field_name")
            if test is None or field_name not in ("id", "incident_id"):
                raise HttpError(400, f"unsupported condition {cond!r}")
            runs = [r for r in runs
                    if r.get(field_name) is not None and test(r[field_name], cond.get("value"))]
        start = int((body or {}).get("start") or 0)
        length = (body or {}).get("length")
        shown = runs[start:start + int(length)] if length is not None else runs[start:]
        return 200, {"recordsTotal": len(self.playbook_instances), "recordsFiltered": len(runs),
                     "data": copy.deepcopy(shown)}, {}

    def _route_org(self, method, rel, query, body):
        names = query.get("handle_format") == "names"
        if rel == "" and method == "GET":
            return 200, {"id": self.org_id, "name": self.org_name, "actions_framework_enabled": True,
                         "enabled": True}, {}

        m = re.match(r"^/types/([^/]+)/fields$", rel)
        if m and method == "GET":
            type_name = m.group(1)
            if type_name in self.datatables:
                return 200, list(self.datatables[type_name].get("fields", {}).values()), {}
            found = [f for key, f in self.fields.items() if key.split("/", 1)[0] == type_name]
            if not found and type_name not in ("incident", "actioninvocation", "__function", "task",
                                               "artifact", "note", "attachment", "milestone"):
                raise HttpError(404, f"Type {type_name} not found")
            return 200, found, {}
        m = re.match(r"^/types/([^/]+)$", rel)
        if m and method == "GET":
            table = self.datatables.get(m.group(1))
            if table is None:
                raise HttpError(404, f"Type {m.group(1)} not found")
            return 200, table, {}

        if rel == "/actions" and method == "GET":
            return 200, {"entities": list(self.rules.values())}, {}
        if rel == "/connectors/queues" and method == "GET":
            return 200, {"queues": []}, {}

        if rel == "/functions" and method == "GET":
            return 200, {"entities": [self._function_view(fn) for fn in self.functions.values()]}, {}
        m = re.match(r"^/functions/([^/]+)$", rel)
        if m and method == "GET":
            fn = self.functions.get(m.group(1))
            if fn is None:
                raise HttpError(404, f"Function {m.group(1)} not found")
            return 200, self._function_view(fn), {}

        m = re.match(r"^/incidents/(\d+)$", rel)
        if m and method == "GET":
            self._incident_or_404(m.group(1))
            return 200, self.incident(m.group(1), handle_names=names), {}
        m = re.match(r"^/incidents/(\d+)/comments$", rel)
        if m:
            if method == "GET":
                return 200, list(self._incident_or_404(m.group(1))["_notes"]), {}
            if method == "POST":
                text = (body or {}).get("text")
                if isinstance(text, dict):
                    text = text.get("content")
                return 200, self.add_note(m.group(1), text), {}
        m = re.match(r"^/incidents/(\d+)/table_data/([^/]+)$", rel)
        if m and method == "GET":
            rows = self._incident_or_404(m.group(1))["_tables"].get(m.group(2), [])
            return 200, {"id": m.group(2), "rows": [
                {"id": r["id"], "cells": {k: {"value": v} for k, v in r.items() if k != "id"}}
                for r in rows]}, {}
        m = re.match(r"^/incidents/(\d+)/table_data/([^/]+)/row_data$", rel)
        if m and method == "POST":
            cells = {k: (v.get("value") if isinstance(v, dict) else v)
                     for k, v in ((body or {}).get("cells") or {}).items()}
            row = self.add_row(m.group(1), m.group(2), cells)
            return 200, {"id": row["id"], "cells": {k: {"value": v} for k, v in cells.items()}}, {}
        m = re.match(r"^/incidents/(\d+)/table_data/([^/]+)/row_data/(\d+)$", rel)
        if m and method == "PUT":
            cells = {k: (v.get("value") if isinstance(v, dict) else v)
                     for k, v in ((body or {}).get("cells") or {}).items()}
            row = self.update_row(m.group(1), m.group(2), m.group(3), cells)
            return 200, {"id": row["id"], "cells": {k: {"value": v} for k, v in row.items() if k != "id"}}, {}

        if rel == "/configurations/imports" and method == "POST":
            return 200, self._create_import(body), {}
        m = re.match(r"^/configurations/imports/(\d+)$", rel)
        if m:
            imp = self.imports.get(int(m.group(1)))
            if imp is None:
                raise HttpError(404, f"Import {m.group(1)} not found")
            if method == "GET":
                return 200, self._import_view(int(m.group(1))), {}
            if method == "PUT":
                return 200, self._update_import(int(m.group(1)), body or {}), {}

        if rel == "/message_destinations":
            if method == "GET":
                return 200, {"entities": [dict(d) for d in self.message_destinations.values()]}, {}
            if method == "POST":
                dest = self._ensure_destination((body or {})["programmatic_name"], body)
                return 200, dict(dest), {}
        m = re.match(r"^/message_destinations/(\d+)$", rel)
        if m:
            dest = next((d for d in self.message_destinations.values() if d["id"] == int(m.group(1))), None)
            if dest is None:
                raise HttpError(404, f"Message destination {m.group(1)} not found")
            if method == "GET":
                return 200, dict(dest), {}
            if method == "PUT":
                for key in ("api_keys", "users", "name", "expect_ack"):
                    if key in (body or {}):
                        dest[key] = body[key]
                return 200, dict(dest), {}

        raise HttpError(404, f"No route for {method} {rel}")

    def _function_view(self, fn):
        view = {k: copy.deepcopy(v) for k, v in fn.items() if not k.startswith("_")}
        return view

    def _create_import(self, body):
        if not isinstance(body, dict):
            raise HttpError(400, "Import rejected: the body is not an export object")
        problems = self.check_export(body)
        if problems:
            raise HttpError(400, "Import rejected: " + "; ".join(problems))
        import_id = next(self._ids)
        self.imports[import_id] = {"status": "PENDING", "export": body}
        return self._import_view(import_id)

    def _import_view(self, import_id):
        imp = self.imports[import_id]
        return {"id": import_id, "status": imp["status"], "messages": [], "result": None}

    def _update_import(self, import_id, body):
        imp = self.imports[import_id]
        status = body.get("status")
        if imp["status"] != "PENDING":
            raise HttpError(409, "Import {} is already {}".format(import_id, imp["status"]))
        if status not in ("ACCEPTED", "REJECTED"):
            raise HttpError(400, f"status must be ACCEPTED or REJECTED, not {status!r}")
        imp["status"] = status
        if status == "ACCEPTED":
            self.apply_export(imp["export"], check=False)
        return self._import_view(import_id)


_CONDITIONS = {"equals": lambda have, want: have == want or [have] == want,
               "gte": lambda have, want: have >= want, "lte": lambda have, want: have <= want}


def _queried_id(body):
    """The run id a playbook query_paged body asks for (``id`` equals), or None."""
    for f in (body or {}).get("filters") or [] if isinstance(body, dict) else []:
        for cond in (f or {}).get("conditions") or []:
            if cond.get("field_name") == "id" and cond.get("method") == "equals":
                try:
                    return int(cond.get("value"))
                except (TypeError, ValueError):
                    return None
    return None
