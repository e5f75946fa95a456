"""The one termination check of the waiting functions (receive, page): has SOAR stopped the caller?

A function message from a workflow carries ``workflow_instance``: SOAR answers its status at
``/workflow_instances/{id}`` (resilient-lib's ``get_workflow_status``; ``terminated`` with a
``terminate_reason``). A message from a playbook carries ``playbook_instance`` and no workflow
instance: its status is read from ``/playbooks/instances/{id}`` (``status`` ``terminated``, with
``terminate_reason`` when SOAR gives one). resilient-lib has no helper for playbooks; the path and the
answer's shape are this app's reading of SOAR's REST API, and the sandbox SOAR answers the same way.

The check is asked once per poll interval by the core's wait loops; a SOAR that cannot be reached
for a moment (or does not know the instance) means "not terminated" and the next interval asks again.
"""
import logging

from resilient_lib import get_workflow_status

LOG = logging.getLogger(__name__)

NO_RETRY_STATUSES = [400, 401, 403, 404]
NO_REASON = "no reason given"


def _instance_id(message, kind):
    instance = message.get(f"{kind}_instance") or {}
    value = instance.get(f"{kind}_instance_id") if isinstance(instance, dict) else None
    try:
        return int(value) if value else None
    except (TypeError, ValueError):
        return None


def _workflow_reason(client, instance_id):
    status = get_workflow_status(client, instance_id)
    if getattr(status, "is_terminated", False):
        return getattr(status, "reason", None) or NO_REASON
    return None


def _playbook_reason(client, instance_id):
    answer = client.get(f"/playbooks/instances/{instance_id}", skip_retry=NO_RETRY_STATUSES) or {}
    if str(answer.get("status", "")).lower() == "terminated":
        return answer.get("terminate_reason") or NO_REASON
    return None


def termination_check(component):
    """A callable for the core's ``is_terminated``: the reason when SOAR says the calling workflow or
    playbook was terminated, else None."""
    message = component.get_fn_msg() or {}
    workflow = _instance_id(message, "workflow")
    playbook = _instance_id(message, "playbook")
    if workflow is not None:
        kind, instance_id, read = "workflow", workflow, _workflow_reason
    elif playbook is not None:
        kind, instance_id, read = "playbook", playbook, _playbook_reason
    else:
        return lambda: None

    def terminated():
        try:
            return read(component.rest_client(), instance_id)
        except Exception as err:  # SOAR unreachable for a moment: keep waiting, look again next time
            LOG.debug("Could not read the status of %s instance %s: %s", kind, instance_id, err)
            return None

    return terminated
