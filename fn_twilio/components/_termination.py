"""The one termination check of the waiting functions (receive, page): has SOAR stopped the caller?

A function message from a workflow carries ``workflow_instance``; SOAR answers its status at
``/workflow_instances/{id}`` (resilient-lib's ``get_workflow_status``). The check is asked once per
poll interval by the core's wait loops; a SOAR that cannot be reached for a moment means "not
terminated" (the next interval asks again).
"""
import logging

from resilient_lib import get_workflow_status

LOG = logging.getLogger(__name__)


def termination_check(component):
    """A callable for the core's ``is_terminated``: the reason when SOAR says the calling workflow was
    terminated, else None."""
    message = component.get_fn_msg() or {}
    instance = message.get("workflow_instance") or {}
    instance_id = instance.get("workflow_instance_id")

    def terminated():
        if not instance_id:
            return None
        try:
            status = get_workflow_status(component.rest_client(), int(instance_id))
        except Exception as err:  # SOAR unreachable for a moment: keep waiting, look again next time
            LOG.debug("Could not read the status of workflow instance %s: %s", instance_id, err)
            return None
        if getattr(status, "is_terminated", False):
            return getattr(status, "reason", None) or "no reason given"
        return None

    return terminated
