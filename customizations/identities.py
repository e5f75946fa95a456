"""The UUIDs that fn_twilio 2.0.x gave its SOAR objects, kept so that an import updates them in place.

An object of this export whose kind and programmatic name are in ``IDENTITIES_2_0_1`` keeps the
UUID 2.0.1 gave it; every other object gets its deterministic uuid5 (see build_export.stable_uuid).
Keys are ``(kind, name)`` exactly as build_export asks for them:

* ``message_destination``, ``function``, ``workflow`` with the programmatic name;
* ``__function`` (function inputs) and ``actioninvocation`` (rule fields) with the field name;
* ``action`` with the rule's name (its export_key);
* ``datatable`` with the table name, and ``twilio_sms_log`` with a column name.

The values are identifiers read from the 2.0.1 release's export, nothing else of it.
"""

IDENTITIES_2_0_1 = {
    ("message_destination", "fn_twilio"): "5b94b018-9d68-4aa9-83b8-f6d266309c1a",

    ("function", "twilio_send_sms"): "90c35df3-0ec9-49ad-9715-4f4175596a48",
    ("function", "twilio_get_responses"): "0e4931d4-6af6-44f7-8b44-9c5b2f7e700b",

    ("__function", "twilio_sms_destination"): "b72b7f9a-b363-48ca-8c7e-479fc3100097",
    ("__function", "twilio_sms_message"): "d409fcc3-622e-4a50-b5c7-c0e072873349",
    ("__function", "twilio_phone_number"): "c3962232-4c0e-4a6a-bdf9-5e993f48f1c5",
    ("__function", "twilio_date_sent"): "077aa55d-36f1-44cf-8aa2-0f6f4646ddc4",
    ("__function", "twilio_date_sent_ts"): "4ce575d4-a13b-47f4-abfe-f4f977ff4c69",
    ("__function", "twilio_wait_timeout"): "97ed32b1-1bd2-4c1e-9b4d-0dfb3e47681e",

    ("actioninvocation", "twilio_sms_destination"): "6c3924ec-e9ef-4972-ad08-daac5ac5d972",
    ("actioninvocation", "twilio_sms_message"): "7c680cc9-91c9-4b64-ace7-3f93f204ab9c",
    ("actioninvocation", "twilio_after_date_ts"): "3638067b-a08b-47cb-81c0-3f07c9fb6d5d",
    ("actioninvocation", "twilio_wait_timeout"): "ebf596a7-c7fc-40af-8a00-3f5c9fa5518e",

    ("action", "Example: Send Twilio SMS"): "f93b82a7-2f3d-4a9e-a96e-3312a27e4b16",
    ("action", "Example: Twilio Receive Messages"): "e5f76cce-0eaf-47e9-a174-0a5b8559ca70",
    ("action", "Twilio: Get Responses"): "67f0466d-6e0a-4b72-adfb-8c85d86258bb",

    ("workflow", "example_twilio_send_sms"): "748bfe3b-ae5f-4948-beee-0d8924befcfd",
    ("workflow", "example_twilio_receive_messages"): "4577f695-3d78-4f36-a8ce-1f617ef128f7",
    ("workflow", "twilio_get_responses"): "b7119465-b066-4a34-94fc-8b52bc6357d2",

    ("datatable", "twilio_sms_log"): "7864ad19-d007-48e9-8926-4003647d3a0b",
    ("twilio_sms_log", "row_created"): "5843db0a-6e15-4640-9f2d-131761654720",
    ("twilio_sms_log", "status"): "7a1677eb-cdce-4caf-84f7-f492fb2669bd",
    ("twilio_sms_log", "date_created"): "f0c46768-746b-405a-9a61-a5e76593812e",
    ("twilio_sms_log", "phone_number"): "7a7badc3-f94f-4cc2-83d1-bc977954adb5",
    ("twilio_sms_log", "direction"): "c6ddc412-222d-4d78-979b-6cd98a8246a0",
    ("twilio_sms_log", "msg_body"): "06744b8f-c682-4ec3-9805-a6835c148614",
    ("twilio_sms_log", "message_id"): "338a4972-589a-48ef-9106-760b292bcce1",
}
