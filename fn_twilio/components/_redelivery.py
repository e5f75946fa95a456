"""How a function learns that resilient-circuits is running it for a redelivered message.

An ``@app_function`` handler receives only ``fn_inputs``; ``get_fn_msg()`` gives the message body.
The STOMP frame's headers (``redelivered``, ``timestamp``) live on the ``FunctionMessage`` event
(``event.headers``), which resilient-circuits 51 builds in ``Actions.on_stomp_message`` and fires on
the channel ``functions.<name>``. ``app_function`` hands that event to a ``functionworker`` thread and
calls ``set_fn_msg(event.message)`` there, so ``get_fn_msg()`` in the function returns the very dict
object the event carries.

So, without patching resilient-circuits: a second circuits handler on the same channel and event
name, with a higher priority, runs first on the dispatcher thread and records the delivery facts
against that body dict; the function takes them back with ``take_delivery(self.get_fn_msg())``.
Only redelivered messages are recorded (a first delivery needs nothing), and an entry holds the body
dict until it is taken, so its ``id`` cannot be reused meanwhile.
"""
import threading
from typing import Any

from circuits import handler

from fn_twilio.lib.reconcile import Delivery

_lock = threading.Lock()
_redelivered: dict[int, tuple[dict[str, Any], Delivery]] = {}   # id(message body) -> (message body, Delivery)
_KEEP = 1000        # entries kept at most (a message whose function never ran leaves one)


def delivery_handler(function_name):
    """A component method to assign in the class body: records redeliveries of ``function_name``."""
    @handler(function_name, channel=f"functions.{function_name}", priority=10)
    def _note_delivery(self, event, *args, **kwargs):
        delivery = Delivery.from_headers(getattr(event, "headers", None) or {})
        message = getattr(event, "message", None)
        if delivery.redelivered and isinstance(message, dict):
            with _lock:
                if len(_redelivered) >= _KEEP:
                    _redelivered.pop(next(iter(_redelivered)))
                _redelivered[id(message)] = (message, delivery)
    return _note_delivery


def take_delivery(message):
    """The Delivery recorded for this message body (a first delivery when none was)."""
    with _lock:
        entry = _redelivered.pop(id(message), None)
    if entry is not None and entry[0] is message:
        return entry[1]
    return Delivery()
