"""The one termination check of the waiting functions (receive, legacy receive, page, delivery status):
has SOAR stopped the workflow or playbook that called? The rules (one read per poll interval, a
refused read said once and the call going on, a 401 ending the call) are
:class:`fn_twilio.lib.termination.TerminationCheck`; this module reads SOAR.

What is read:

* a call from a workflow carries ``workflow_instance``: ``GET /rest/orgs/{org}/workflow_instances/{id}``,
  as resilient-lib's ``get_workflow_status`` reads it; ``status`` ``terminated`` ends the call with
  ``terminate_reason``;
* a call from a playbook carries ``playbook_instance`` and no workflow instance: IBM's public sources
  show a playbook run read through ``POST /rest/orgs/{org}/playbooks/execution/query_paged`` (the
  fn_playbook_utils app filters it on ``incident_id``; each record has the run's ``id``, ``status``
  such as ``completed`` or ``error``, and ``detail_msg``) and IBM's documentation shows a run that
  an analyst cancels as ``Canceled``. The app asks for the record whose ``id`` is the playbook
  instance and ends the call on ``canceled``, ``terminated``, ``error`` or ``completed``, with
  ``detail_msg`` (its first line) as the reason. The README names the evidence.

How it is read: exactly one request, bounded by the app's ``timeout`` setting
(:func:`fn_twilio.components._soar.soar_answer`); resilient-lib's ``get_workflow_status`` is not used
because it goes through the client's ``get``, which retries and answers a 401 with ``sys.exit``.
"""
import logging
import threading

from fn_twilio.components._soar import one_line, soar_answer
from fn_twilio.lib.termination import NO_REASON, StatusUnreadable, TerminationCheck

LOG = logging.getLogger(__name__)

PLAYBOOK_QUERY = "/playbooks/execution/query_paged"
PLAYBOOK_ENDED = ("canceled", "terminated", "error", "completed")


def instance_id(message, kind):
    """The id of the message's ``workflow_instance`` / ``playbook_instance`` (``kind``), or None."""
    instance = message.get(f"{kind}_instance") or {}
    if not isinstance(instance, dict):
        return None
    value = instance.get(f"{kind}_instance_id", instance.get("id"))
    try:
        number = int(value)
    except (TypeError, ValueError):
        return None
    return number if number > 0 and not isinstance(value, bool) else None


def termination_check(component, settings, say=lambda text: None):
    """The :class:`TerminationCheck` of the call ``component`` is running: reads at most once per
    ``settings.poll_interval``, each bounded by ``settings.timeout``; ``say(text)`` gets the one status
    message of a refused read (pass the queue the component drains into status messages)."""
    message = component.get_fn_msg() or {}
    workflow = instance_id(message, "workflow")
    playbook = instance_id(message, "playbook")
    timeout = settings.timeout
    if workflow is not None:
        def read():
            return workflow_reason(soar_answer(_client(component), "GET", f"/workflow_instances/{workflow}",
                                               timeout))
        kind, instance = "workflow", workflow
    elif playbook is not None:
        def read():
            return playbook_reason(soar_answer(_client(component), "POST", PLAYBOOK_QUERY, timeout,
                                               playbook_query(playbook)), playbook)
        kind, instance = "playbook", playbook
    else:
        read, kind, instance = None, "workflow", None
    return TerminationCheck(read, interval=settings.poll_interval, kind=kind, instance=instance, say=say)


def _client(component):
    try:
        return component.rest_client()
    except Exception as err:  # no client (SOAR unreachable while reconnecting): this read cannot tell
        raise StatusUnreadable(f"no connection to SOAR ({type(err).__name__})") from None


def playbook_query(playbook):
    """The query_paged body that asks for one playbook run (instance) by its id."""
    return {"filters": [{"conditions": [{"field_name": "id", "method": "equals", "value": playbook}]}],
            "sorts": []}


def workflow_reason(answer):
    """The termination reason in a ``/workflow_instances/{id}`` answer, or None while it runs."""
    status = answer.get("status") if isinstance(answer, dict) else None
    if not isinstance(status, str) or not status.strip():
        raise StatusUnreadable("SOAR's answer has no status")
    if status.strip().lower() != "terminated":
        return None
    reason = answer.get("terminate_reason")
    return one_line(reason) if isinstance(reason, str) and reason.strip() else NO_REASON


def playbook_reason(answer, playbook):
    """The end of playbook run ``playbook`` in a query_paged answer (``playbook canceled: <detail>``),
    or None while it runs."""
    records = answer.get("data") if isinstance(answer, dict) else None
    if not isinstance(records, list):
        raise StatusUnreadable("SOAR's answer lists no playbook runs")
    record = next((r for r in records if isinstance(r, dict) and _same_id(r.get("id"), playbook)), None)
    if record is None:
        raise StatusUnreadable(f"SOAR's answer has no playbook run {playbook}")
    status = record.get("status")
    if not isinstance(status, str) or not status.strip():
        raise StatusUnreadable(f"SOAR's answer has no status for playbook run {playbook}")
    status = status.strip().lower()
    if status not in PLAYBOOK_ENDED:
        return None
    detail = record.get("detail_msg")
    detail = one_line(detail) if isinstance(detail, str) and detail.strip() else NO_REASON
    return f"playbook {status}: {detail}"


def _same_id(value, wanted):
    try:
        return int(value) == wanted and not isinstance(value, bool)
    except (TypeError, ValueError):
        return False


_DONE = object()


def run_waiting(component, work, statuses, *, on_close=None, close_wait=None):
    """Run ``work()`` (a blocking wait of the core) in a thread and pass on each text put on
    ``statuses`` meanwhile as a status message; a generator whose value is ``work()``'s (``outcome =
    yield from run_waiting(...)``); ``work()``'s exception is raised here.

    When the generator is closed early (resilient-circuits shutting down), ``on_close()`` is called (it
    asks the work to stop: a page pages no further tier) and the thread is given ``close_wait`` seconds
    to end."""
    box = {}

    def run():
        try:
            box["value"] = work()
        except BaseException as err:  # re-raised in the caller's thread below, never lost
            box["error"] = err
        finally:
            statuses.put(_DONE)

    thread = threading.Thread(target=run, name="fn_twilio-wait", daemon=True)
    thread.start()
    finished = False
    try:
        while (text := statuses.get()) is not _DONE:
            yield component.status_message(text)
        finished = True
    finally:
        if not finished and on_close is not None:
            on_close()
            thread.join(close_wait)
    thread.join()
    if "error" in box:
        raise box["error"]
    return box["value"]
