"""The built export keeps 2.0.1's identities (contract §8), object by object, against upgrade-2.0.1.md."""
import re

import pytest

from customizations import build_export
from customizations import definitions as d
from customizations.identities import IDENTITIES_2_0_1
from tests.fixtures_2_0_1 import facts_or_skip


@pytest.fixture(scope="module")
def facts():
    return facts_or_skip()


def _by(items, key):
    return {item[key]: item for item in items}


def _fields(export_res, kind):
    return {f["name"]: f for f in export_res["fields"] if f["export_key"].startswith(kind + "/")}


def test_message_destination(facts, export_res):
    [row] = facts.table("Message destination")
    [destination] = export_res["message_destinations"]
    assert (destination["programmatic_name"], destination["uuid"]) == (row["programmatic name"], row["uuid"])


def test_functions(facts, export_res):
    functions = _by(export_res["functions"], "name")
    inputs = {f["uuid"]: f["name"] for f in _fields(export_res, "__function").values()}
    rows = facts.table("Functions")
    assert {r["name"] for r in rows} == {"twilio_send_sms", "twilio_get_responses"}
    for row in rows:
        fn = functions[row["name"]]
        assert fn["uuid"] == row["uuid"], row["name"]
        shown = [inputs[v["content"]] for v in fn["view_items"]]
        expected = [i.strip() for i in row["inputs, in this order"].split(",")]
        assert shown[:len(expected)] == expected, row["name"]          # 2.2.0 adds incident_id at the end
    assert functions["twilio_send_sms"]["display_name"] == "Twilio: Send SMS"
    legacy = functions["twilio_get_responses"]
    assert legacy["display_name"] == "Twilio: Get Responses (2.0.x)"
    assert legacy["description"]["content"].startswith("Kept for workflows written for fn_twilio 2.0.x")
    new = functions["twilio_receive_messages"]
    assert new["uuid"] == build_export.stable_uuid("function", "twilio_receive_messages")
    assert new["uuid"] not in {r["uuid"] for r in rows}
    assert new["view_items"] == legacy["view_items"]
    assert len({fn["display_name"] for fn in functions.values()}) == len(functions)


@pytest.mark.parametrize("heading,kind", [("Function input fields", "__function"),
                                          ("Rule (action) fields", "actioninvocation")])
def test_fields(facts, export_res, heading, kind):
    fields = _fields(export_res, kind)
    for row in facts.table(heading):
        field = fields[row["name"]]
        assert field["uuid"] == row["uuid"], row["name"]
        assert field["input_type"] == row["input type"].split(",")[0].strip(), row["name"]
        if "label" in row:
            assert field["text"] == row["label"]
    new = fields.get("incident_id")
    if kind == "__function":
        assert new["uuid"] == build_export.stable_uuid("__function", "incident_id")


def test_rules(facts, export_res):
    rules = _by(export_res["actions"], "name")
    rule_fields = {f["uuid"]: f["name"] for f in _fields(export_res, "actioninvocation").values()}
    for row in facts.table("Rules"):
        rule = rules[row["name (= export_key)"]]
        assert rule["uuid"] == row["uuid"], rule["name"]
        assert rule["export_key"] == row["name (= export_key)"]
        assert rule["object_type"] == row["object type"].split(" ")[0]
        assert rule["workflows"] == [row["workflow"]]
        shown = [] if row["fields shown"] == "none" else [f.strip() for f in row["fields shown"].split(",")]
        fields = [rule_fields[v["content"]] for v in rule["view_items"]]
        assert fields[:len(shown)] == shown            # 2.2.0 adds "Request acknowledgement" at the end
        condition = re.search(r"condition `(\S+) (\S+) (\S+)`", row["object type"])
        if condition:
            conditions = [(c["field_name"], c["method"], c["value"]) for c in rule["conditions"]]
            assert conditions == [condition.groups()]


def test_workflows(facts, export_res):
    workflows = _by(export_res["workflows"], "programmatic_name")
    functions = _by(export_res["functions"], "uuid")
    for row in facts.table("Workflows"):
        wf = workflows[row["programmatic name"]]
        assert wf["uuid"] == row["uuid"], row["programmatic name"]
        assert wf["object_type"] == row["object type"]
        [called] = re.findall(r'<resilient:function uuid="([^"]+)"', wf["content"]["xml"])
        # the function reference points at a function of this export: the shipped workflows call
        # twilio_receive_messages where 2.0.1's called twilio_get_responses
        assert functions[called]["name"] == d.function_by_name(
            next(w.function for w in d.WORKFLOWS if w.programmatic_name == wf["programmatic_name"])).name
        assert functions[called]["name"] != d.LEGACY_FUNCTION


def test_datatable_and_columns(facts, export_res):
    [table] = export_res["types"]
    assert table["uuid"] == facts.datatable_uuid
    for row in facts.table("Datatable"):
        column = table["fields"][row["column"]]
        assert (column["uuid"], column["text"], column["input_type"], column["order"]) == \
            (row["uuid"], row["label"], row["input type"], int(row["order"])), row["column"]


def test_the_identities_table_holds_only_the_2_0_1_facts(facts):
    """identities.py is the builder's one table: each UUID in it is one the notes list."""
    noted = {row["uuid"] for rows in facts.tables.values() for row in rows if "uuid" in row}
    noted.add(facts.datatable_uuid)
    assert set(IDENTITIES_2_0_1.values()) == noted
    assert len(set(IDENTITIES_2_0_1.values())) == len(IDENTITIES_2_0_1)


def test_new_objects_keep_their_deterministic_uuids(export_res):
    kept = set(IDENTITIES_2_0_1.values())
    new = [f for f in export_res["fields"] if f["uuid"] not in kept and not f.get("internal")]
    assert sorted(f["export_key"] for f in new) == sorted([
        "__function/incident_id", "__function/twilio_escalate_after", "__function/twilio_label",
        "__function/twilio_message_sids", "__function/twilio_page_tiers", "__function/twilio_request_ack",
        "__function/twilio_wait_for", "actioninvocation/twilio_escalate_after",
        "actioninvocation/twilio_label", "actioninvocation/twilio_page_tiers",
        "actioninvocation/twilio_request_ack", "actioninvocation/twilio_status_wait_timeout"])
    for field in new:
        kind, name = field["export_key"].split("/")
        assert field["uuid"] == build_export.stable_uuid(kind, name)
