"""SOAR function twilio_receive_messages ("Twilio: Get Responses"): collect a number's replies."""
from resilient_circuits import app_function

from fn_twilio.components._receive import ReceiveMessagesComponent

FN_NAME = "twilio_receive_messages"


class FunctionComponent(ReceiveMessagesComponent):
    """Serves twilio_receive_messages."""

    @app_function(FN_NAME)
    def _app_function(self, fn_inputs):
        yield from self.receive(fn_inputs)
