"""The 2.0.x name of "Twilio: Get Responses", still served so that 2.0.x workflows keep working.

A component of its own: on a SOAR server where twilio_get_responses is not defined, only this
component stays unsubscribed and twilio_receive_messages is unaffected.
"""
from resilient_circuits import app_function

from fn_twilio.components._receive import ReceiveMessagesComponent

FN_NAME = "twilio_get_responses"


class FunctionComponent(ReceiveMessagesComponent):
    """Serves the legacy function name twilio_get_responses."""

    @app_function(FN_NAME)
    def _app_function(self, fn_inputs):
        yield from self.receive(fn_inputs)
