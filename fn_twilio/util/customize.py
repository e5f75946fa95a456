"""The SOAR customizations of fn_twilio, for `resilient-circuits customize -l fn_twilio`.

util/data/export.res is built from the repository's customizations/ directory
(`python customizations/build_export.py`); do not edit it by hand.

Contents:
    - Message destination: fn_twilio
    - Functions: twilio_receive_messages ("Twilio: Get Responses"), twilio_send_sms ("Twilio: Send SMS"),
      twilio_page ("Twilio: Page Until Acknowledged"),
      twilio_get_responses ("Twilio: Get Responses (2.0.x)", kept for workflows written for 2.0.x),
      twilio_get_message_status ("Twilio: Get Delivery Status")
    - Workflows: example_twilio_receive_messages, example_twilio_send_sms, twilio_get_responses,
      example_twilio_page_on_call, twilio_update_delivery_status
    - Rules: Example: Send Twilio SMS, Example: Twilio Receive Messages, Twilio: Get Responses,
      Example: Twilio Page On-Call, Twilio: Update Delivery Status
    - Playbooks: example_twilio_page_on_call_pb, example_twilio_receive_messages_pb,
      example_twilio_send_sms_pb, twilio_get_responses_pb, twilio_update_delivery_status_pb
    - Datatable: twilio_sms_log ("SMS Activity Log")
    - IBM SOAR platform version: 51.0.0.0.9339
"""
import base64
from importlib import resources

from resilient import ImportDefinition

PACKAGE_NAME = "fn_twilio"
EXPORT_RES = "data/export.res"


def codegen_reload_data():
    """What `resilient-sdk codegen --reload` exports again for this package."""
    return {
        "package": PACKAGE_NAME,
        "message_destinations": ["fn_twilio"],
        "functions": ["twilio_get_message_status", "twilio_get_responses", "twilio_page",
                      "twilio_receive_messages", "twilio_send_sms"],
        "workflows": ["example_twilio_page_on_call", "example_twilio_receive_messages",
                      "example_twilio_send_sms", "twilio_get_responses", "twilio_update_delivery_status"],
        "actions": ["Example: Send Twilio SMS", "Example: Twilio Page On-Call",
                    "Example: Twilio Receive Messages", "Twilio: Get Responses",
                    "Twilio: Update Delivery Status"],
        "incident_fields": [],
        "incident_artifact_types": [],
        "incident_types": [],
        "datatables": ["twilio_sms_log"],
        "automatic_tasks": [],
        "scripts": [],
        "playbooks": ["example_twilio_page_on_call_pb", "example_twilio_receive_messages_pb",
                      "example_twilio_send_sms_pb", "twilio_get_responses_pb",
                      "twilio_update_delivery_status_pb"],
    }


def read_export_res():
    """The bytes of util/data/export.res, from the installed package."""
    return resources.files(__package__).joinpath(EXPORT_RES).read_bytes()


def customization_data(client=None):
    """Yield the one ImportDefinition (base64 of util/data/export.res) for `customize`."""
    yield ImportDefinition(base64.b64encode(read_export_res()))
