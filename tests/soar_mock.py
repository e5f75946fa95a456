"""The SOAR REST API as pytest-resilient-circuits' requests mock, with what fn_twilio reads.

On top of BasicResilientMock: incidents looked up by id (404 for an unknown one), workflow instances
and playbook runs whose status a test can set (to terminate a waiting call), and status reads a test
can make SOAR refuse (``refusals``: answers given to the next status reads, in order, before the real
one; ``refuse_always``: an answer for every status read). An answer is an HTTP status (403, 404, 500,
401), ``"garbage"`` (200 with a body that is not JSON), ``"no_status"`` (200 with JSON that holds no
status) or ``("slow", seconds)`` (the real answer, that late; a client timeout shorter than that is played
as the read timing out). ``status_reads`` records every status
read as ``(kind, instance id, time.monotonic())``. State lives on the class so that tests can change
it while resilient-circuits holds the mock instance; ``reset()`` clears it.
"""
import json
import time

import requests
import requests_mock
from pytest_resilient_circuits import BasicResilientMock
from resilient.resilient_rest_mock import resilient_endpoint


class FnTwilioSoarMock(BasicResilientMock):
    incidents = {2095: {"id": 2095, "name": "Phishing campaign", "severity_code": "High"}}
    workflows = {}      # workflow_instance_id -> {"status": ..., "terminate_reason": ...}
    playbooks = {}      # playbook instance id -> {"status": ..., "detail_msg": ...}
    status_reads = []   # (kind, instance id, monotonic time) of every status read, in order
    refusals = []       # answers for the next status reads, consumed in order
    refuse_always = None
    incident_refusals = []   # answers (HTTP statuses) for the next incident reads, consumed in order
    incident_reads = 0

    @classmethod
    def reset(cls):
        cls.workflows.clear()
        cls.playbooks.clear()
        cls.status_reads.clear()
        cls.refusals.clear()
        cls.refuse_always = None
        cls.incident_refusals.clear()
        cls.incident_reads = 0

    @classmethod
    def _refusal(cls, request, kind, instance_id):
        """The refused answer for this status read, or None for the real one (after any delay)."""
        cls.status_reads.append((kind, instance_id, time.monotonic()))
        answer = cls.refusals.pop(0) if cls.refusals else cls.refuse_always
        if answer is None:
            return None
        if isinstance(answer, tuple) and answer[0] == "slow":
            # requests_mock knows no time: a client timeout shorter than the delay is played here
            timeout = request.timeout[1] if isinstance(request.timeout, tuple) else request.timeout
            if timeout is not None and timeout < answer[1]:
                time.sleep(timeout)
                raise requests.exceptions.ReadTimeout(f"no answer within {timeout} s")
            time.sleep(answer[1])
            return None
        if answer == "garbage":
            return requests_mock.create_response(request, status_code=200, text="<html>proxy error</html>")
        if answer == "no_status":
            return requests_mock.create_response(request, status_code=200, json={"id": instance_id})
        return requests_mock.create_response(request, status_code=int(answer), reason=_REASONS.get(answer),
                                             json={"success": False, "title": None, "hints": [],
                                                   "message": f"refused by the test ({answer})",
                                                   "error_code": "generic"})

    @resilient_endpoint("GET", r"/incidents/[0-9]+(\?.*)*$")
    def incident_get(self, request):
        type(self).incident_reads += 1
        if self.incident_refusals:
            status = int(self.incident_refusals.pop(0))
            return requests_mock.create_response(request, status_code=status, reason=_REASONS.get(status),
                                                 json={"success": False, "message": f"refused ({status})"})
        incident_id = int(request.path.rstrip("/").split("/")[-1])
        incident = self.incidents.get(incident_id)
        if incident is None:
            return requests_mock.create_response(request, status_code=404, json={
                "success": False, "title": None, "message": f"Incident {incident_id} not found",
                "hints": [], "error_code": "generic"})
        return requests_mock.create_response(request, status_code=200, json=incident)

    @resilient_endpoint("GET", r"/workflow_instances/[0-9]+$")
    def workflow_instance_get(self, request):
        instance_id = int(request.path.rstrip("/").split("/")[-1])
        refused = self._refusal(request, "workflow", instance_id)
        if refused is not None:
            return refused
        state = self.workflows.get(instance_id, {"status": "running"})
        return requests_mock.create_response(request, status_code=200, json={
            "workflow_instance_id": instance_id, "status": state["status"],
            "start_date": 1764000000000, "end_date": None,
            "terminate_reason": state.get("terminate_reason")})

    @resilient_endpoint("POST", r"/playbooks/execution/query_paged$")
    def playbook_executions(self, request):
        """Playbook runs as SOAR lists them, filtered on ``id`` equals (what the app asks for)."""
        conditions = [c for f in json.loads(request.body or "{}").get("filters", [])
                      for c in f.get("conditions", [])]
        wanted = [c["value"] for c in conditions
                  if c.get("field_name") == "id" and c.get("method") == "equals"]
        instance_id = int(wanted[0]) if wanted else None
        refused = self._refusal(request, "playbook", instance_id)
        if refused is not None:
            return refused
        records = [{"id": pid, "status": state["status"], "detail_msg": state.get("detail_msg"),
                    "incident_id": 2095, "start_time": 1764000000000}
                   for pid, state in sorted(self.playbooks.items()) if instance_id in (None, pid)]
        return requests_mock.create_response(request, status_code=200, json={
            "recordsTotal": len(records), "recordsFiltered": len(records), "data": records})


_REASONS = {401: "Unauthorized", 403: "Forbidden", 404: "Not Found", 500: "Server Error",
            502: "Bad Gateway", 503: "Service Unavailable"}
