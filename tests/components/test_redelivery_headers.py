"""The send component's view of a redelivery: STOMP headers recorded by a handler on the function's
channel, taken back by the function through the message body that get_fn_msg() returns."""
from datetime import datetime, timezone
from types import SimpleNamespace

from fn_twilio.components._redelivery import delivery_handler, take_delivery
from fn_twilio.lib.reconcile import Delivery

note = delivery_handler("twilio_send_sms")


def fire(headers, message):
    note(None, SimpleNamespace(headers=headers, message=message))


def test_the_handler_listens_before_the_function_on_its_channel():
    assert note.handler and note.event and note.names == ("twilio_send_sms",)
    assert note.channel == "functions.twilio_send_sms" and note.priority > 0


def test_a_redelivery_is_taken_once_by_the_same_body():
    body = {"function": {"name": "twilio_send_sms"}, "inputs": {}}
    fire({"redelivered": "true", "timestamp": "1772366400000"}, body)
    assert take_delivery(dict(body)) == Delivery(), "an equal but different body is another message"
    assert take_delivery(body) == Delivery(True, datetime(2026, 3, 1, 12, tzinfo=timezone.utc))
    assert take_delivery(body) == Delivery(), "taken once"


def test_a_first_delivery_is_not_recorded():
    body = {"function": {"name": "twilio_send_sms"}}
    fire({"timestamp": "1772366400000"}, body)
    assert take_delivery(body) == Delivery()
