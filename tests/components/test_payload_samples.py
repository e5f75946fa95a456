"""payload_samples/<function>/output_json_example.json and output_json_schema.json come from real output.

resilient-sdk embeds these files in the App Host package and docgen shows them in the README. The
tests run each function for real and check that its output matches the committed schema and has
the committed example's shape. ``UPDATE_PAYLOAD_SAMPLES=1 make test`` rewrites both files from the
output of this run.
"""
import json
import os
from pathlib import Path

import jsonschema
import pytest

from sandbox.twilio_emulator import SENDER
from tests.conftest import call_function

SAMPLES = Path(__file__).resolve().parents[2] / "payload_samples"
UPDATE = os.environ.get("UPDATE_PAYLOAD_SAMPLES") == "1"


def schema_of(value):
    """A JSON schema describing ``value``'s shape (the form resilient-sdk's --gather-results writes).

    The entries of a list are merged, so a key that is null in one entry and text in another
    allows both.
    """
    if isinstance(value, dict):
        return {"type": "object", "properties": {k: schema_of(v) for k, v in value.items()},
                "required": sorted(value)}
    if isinstance(value, list):
        items = [schema_of(v) for v in value]
        merged = items[0] if items else {}
        for item in items[1:]:
            merged = merge(merged, item)
        return {"type": "array", "items": merged}
    kinds = {bool: "boolean", int: "integer", float: "number", str: "string", type(None): "null"}
    return {"type": kinds[type(value)]}


def merge(a, b):
    """One schema accepting what either accepts (objects merged key by key)."""
    if a.get("type") == b.get("type") == "object":
        keys = set(a["properties"]) | set(b["properties"])
        return {"type": "object",
                "properties": {k: merge(a["properties"].get(k, {}), b["properties"].get(k, {}))
                               for k in sorted(keys)},
                "required": sorted(set(a["required"]) & set(b["required"]))}
    if not a or not b:
        return {}
    types = sorted({*_types(a), *_types(b)})
    return {"type": types[0] if len(types) == 1 else types}


def open_nulls(schema):
    """A key seen only as null may hold anything in other results (a reason, an error code)."""
    if schema.get("type") == "null":
        return {}
    if schema.get("type") == "object":
        return {**schema, "properties": {k: open_nulls(v) for k, v in schema["properties"].items()}}
    if schema.get("type") == "array":
        return {**schema, "items": open_nulls(schema["items"])}
    return schema


def _types(schema):
    kind = schema["type"]
    return kind if isinstance(kind, list) else [kind]


def shape(value):
    if isinstance(value, dict):
        return {k: shape(v) for k, v in value.items()}
    if isinstance(value, list):
        return [shape(value[0])] if value else []
    return type(value).__name__ if value is not None else None


def check_or_update(function, result):
    folder = SAMPLES / function
    example_path, schema_path = folder / "output_json_example.json", folder / "output_json_schema.json"
    if UPDATE:
        folder.mkdir(parents=True, exist_ok=True)
        example_path.write_text(json.dumps(result, indent=2, sort_keys=True) + "\n")
        schema = {"$schema": "http://json-schema.org/draft-04/schema#", **open_nulls(schema_of(result))}
        schema_path.write_text(json.dumps(schema, indent=2, sort_keys=True) + "\n")
    example = json.loads(example_path.read_text())
    schema = json.loads(schema_path.read_text())
    jsonschema.validate(result, schema)
    jsonschema.validate(example, schema)
    assert shape(example).keys() == shape(result).keys()


class TestPayloadSamples:
    APP_SETTINGS = {}

    def test_send(self, circuits_app, twilio):
        call = call_function(circuits_app, "twilio_send_sms", {
            "twilio_sms_destination": "+353861234567, 12345",
            "twilio_sms_message": "Bridge call now: dial in",
            "incident_id": 2095})
        check_or_update("twilio_send_sms", call.result)

    # the legacy twilio_get_responses (2.0.x's name) answers exactly as twilio_receive_messages
    @pytest.mark.parametrize("function", ["twilio_receive_messages", "twilio_get_responses"])
    def test_receive(self, circuits_app, twilio, function):
        twilio.inject_inbound(from_="+353861234567", to=SENDER, body="Acknowledged")
        call = call_function(circuits_app, function, {
            "twilio_phone_number": "+353861234567", "twilio_date_sent": "2026-01-25 14:59:51+00:00",
            "twilio_wait_timeout": "60s"})
        assert call.result["success"] is True
        check_or_update(function, call.result)

    def test_get_message_status(self, circuits_app, twilio):
        twilio.set_delivery_outcome("+14155552345", "undelivered", error_code=30003)
        sent = call_function(circuits_app, "twilio_send_sms", {
            "twilio_sms_destination": "+353861234567, +14155552345", "twilio_sms_message": "Bridge call now"})
        twilio.advance_statuses()
        sids = [entry["sid"] for entry in sent.result["twilio_status"]]
        call = call_function(circuits_app, "twilio_get_message_status", {
            "twilio_message_sids": ", ".join(sids), "twilio_wait_timeout": "30s"})
        assert call.result["success"] is True
        assert [e["status"] for e in call.result["content"]] == ["delivered", "undelivered"]
        check_or_update("twilio_get_message_status", call.result)

    @pytest.mark.parametrize("function", ["twilio_send_sms", "twilio_receive_messages",
                                          "twilio_get_responses", "twilio_get_message_status"])
    def test_samples_are_not_empty(self, function):
        for name in ("output_json_example.json", "output_json_schema.json"):
            assert json.loads((SAMPLES / function / name).read_text())


class TestPagePayloadSample:
    APP_SETTINGS = {}

    def test_page(self, circuits_app, twilio):
        from fn_twilio.lib.voice import forget_flows
        from tests.components.test_page import answer_when_paged
        forget_flows()   # the emulator was emptied: the flow found by an earlier test is gone
        answer_when_paged(twilio, "+353861234567", "no")
        twilio.script_calls("+14155552345", "answer", press="1")   # tier 2 is called and presses 1
        call = call_function(circuits_app, "twilio_page", {
            "twilio_page_tiers": "+353861234567; voice:+14155552345",
            "twilio_sms_message": "Incident 2095 needs you.",
            "incident_id": 2095, "twilio_escalate_after": "5m"}, timeout=60)
        assert call.result["success"] is True
        assert [p.get("channel") for p in call.result["content"]["pages"]] == [None, "voice"]
        check_or_update("twilio_page", call.result)

    def test_page_sample_is_not_empty(self):
        for name in ("output_json_example.json", "output_json_schema.json"):
            assert json.loads((SAMPLES / "twilio_page" / name).read_text())
