"""The SOAR REST API as pytest-resilient-circuits' requests mock, with what fn_twilio reads.

On top of BasicResilientMock: incidents looked up by id (404 for an unknown one) and workflow
instances whose status a test can set (to terminate a waiting call). State lives on the class so
that tests can change it while resilient-circuits holds the mock instance.
"""
import requests_mock
from pytest_resilient_circuits import BasicResilientMock
from resilient.resilient_rest_mock import resilient_endpoint


class FnTwilioSoarMock(BasicResilientMock):
    incidents = {2095: {"id": 2095, "name": "Phishing campaign", "severity_code": "High"}}
    workflows = {}      # workflow_instance_id -> {"status": ..., "terminate_reason": ...}
    workflow_reads = []  # workflow_instance_ids read, in order

    @resilient_endpoint("GET", r"/incidents/[0-9]+(\?.*)*$")
    def incident_get(self, request):
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
        FnTwilioSoarMock.workflow_reads.append(instance_id)
        state = self.workflows.get(instance_id, {"status": "running"})
        return requests_mock.create_response(request, status_code=200, json={
            "workflow_instance_id": instance_id, "status": state["status"],
            "start_date": 1764000000000, "end_date": None,
            "terminate_reason": state.get("terminate_reason")})
