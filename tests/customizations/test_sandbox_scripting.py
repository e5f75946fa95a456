"""sandbox.scripting behaves like SOAR's python3 script engine, strictly."""
import pytest

from sandbox.scripting import ScriptError, ScriptRun, SoarDict, run_script


def test_source_text_and_globals():
    run = run_script(
        "inputs.a = incident.id\n"
        "inputs.b = incident.name + ' / ' + incident.severity_code\n"
        "inputs.c = rule.properties.missing_field\n"
        "inputs.d = incident.properties.custom_field\n",
        incident={"id": 7, "name": "X", "severity_code": "Low",
                  "properties": {"custom_field": "yes"}})
    assert isinstance(run, ScriptRun)
    assert run.inputs == {"a": 7, "b": "X / Low", "c": None, "d": "yes"}


def test_path_input(tmp_path):
    script = tmp_path / "s.py"
    script.write_text("incident.addNote('plain')\n")
    for path in (script, str(script)):
        assert run_script(path).notes == [{"text": "plain", "rich": False}]


def test_results_item_attribute_and_get_access_at_every_depth():
    results = {"success": True, "content": [{"a": {"b": 1}}], "inputs": {"x": "y"}}
    run = run_script(
        "inputs.one = results.content[0].a.b\n"
        "inputs.two = results['content'][0]['a']['b']\n"
        "inputs.three = results.get('content')[0].get('a').get('b')\n"
        "inputs.four = results.inputs.get('missing', 'default')\n"
        "inputs.five = results.success\n",
        results=results)
    assert run.inputs == {"one": 1, "two": 1, "three": 1, "four": "default", "five": True}


def test_results_missing_attribute_raises():
    with pytest.raises(ScriptError, match="no key 'contnet'"):
        run_script("x = results.contnet", results={"content": []})


def test_results_undefined_in_a_pre_processing_script():
    with pytest.raises(ScriptError, match="NameError"):
        run_script("x = results.success")


def test_notes_rich_and_plain():
    run = run_script("incident.addNote(helper.createRichText('<b>x</b>'))\n"
                     "incident.addNote('y')\n"
                     "incident.addNote(helper.createPlainText('z'))\n")
    assert run.notes == [{"text": "<b>x</b>", "rich": True}, {"text": "y", "rich": False},
                         {"text": "z", "rich": False}]
    with pytest.raises(ScriptError, match="addNote"):
        run_script("incident.addNote(42)")


def test_add_row_item_and_attribute_access():
    run = run_script(
        "r = incident.addRow('twilio_sms_log')\n"
        "r['status'] = 'queued'\n"
        "r.phone_number = '+353861234567'\n"
        "r.date_created = 1764151201000\n"
        "inputs.read_back = r.status + r['phone_number']\n"
        "inputs.unset = r.msg_body\n")
    assert run.rows == [("twilio_sms_log", {"status": "queued", "phone_number": "+353861234567",
                                            "date_created": 1764151201000})]
    assert run.inputs == {"read_back": "queued+353861234567", "unset": None}


@pytest.mark.parametrize("source, message", [
    ("incident.addRow('twilio_sms_log')['message_sid'] = 'SM1'", "no column 'message_sid'"),
    ("incident.addRow('twilio_sms_log').msg_id = 'SM1'", "no column 'msg_id'"),
    ("incident.addRow('twilio_sms_log')['date_created'] = '2025-11-26 10:00:00'",
     "takes epoch milliseconds"),
    ("incident.addRow('twilio_sms_log')['status'] = 3", "takes text"),
    ("incident.addRow('sms_log')", "no datatable 'sms_log'"),
])
def test_datatable_strictness(source, message):
    with pytest.raises(ScriptError, match=message):
        run_script(source)


def test_custom_datatables():
    run = run_script("incident.addRow('t')['c'] = 1", datatables={"t": ["c"]})
    assert run.rows == [("t", {"c": 1})]


def test_row_global_item_and_attribute_access():
    row = {"phone_number": "+353861234567", "date_created": 1764151201000}
    run = run_script("inputs.a = row['phone_number']\ninputs.b = row.date_created\n"
                     "inputs.c = row.msg_body\n", row=row)
    assert run.inputs == {"a": "+353861234567", "b": 1764151201000, "c": None}
    with pytest.raises(ScriptError, match="no column 'phone'"):
        run_script("x = row['phone']", row=row)
    with pytest.raises(ScriptError, match="NameError"):
        run_script("x = row['phone_number']")  # no row outside datatable workflows


def test_row_cells_written_update_that_row_in_place():
    row = {"status": "queued", "message_id": "SM" + "a" * 32}
    run = run_script("row['status'] = 'delivered'\nrow.msg_body = 'seen'\n", row=row)
    assert run.row_updates == {"status": "delivered", "msg_body": "seen"}
    assert run.rows == []
    assert run_script("x = row['status']", row=row).row_updates == {}     # reading changes nothing
    with pytest.raises(ScriptError, match="takes epoch milliseconds"):
        run_script("row['date_created'] = 'yesterday'", row=row)


@pytest.mark.parametrize("source", [
    "print 'hello'",
    "x = `incident.id`",
    "try:\n  pass\nexcept Exception, e:\n  pass",
    "x = 0777",
    "exec 'x = 1'",
])
def test_python2_syntax_is_rejected(source):
    with pytest.raises(ScriptError, match="not valid Python 3"):
        run_script(source)


@pytest.mark.parametrize("source", [
    "x = unicode('a')",
    "x = basestring",
    "x = {}.iteritems()",
    "x = long(1)",
])
def test_python2_only_names_fail(source):
    with pytest.raises(ScriptError):
        run_script(source)


@pytest.mark.parametrize("source", ["import os", "import subprocess", "from html import escape",
                                    "open('/etc/passwd')", "eval('1')"])
def test_unavailable_modules_and_builtins(source):
    with pytest.raises(ScriptError):
        run_script(source)


def test_allowed_imports():
    run = run_script("import re\nfrom datetime import datetime, timezone\n"
                     "inputs.ok = bool(re.match('a', 'a')) and datetime.now(timezone.utc).year > 2000")
    assert run.inputs == {"ok": True}


def test_functions_defined_in_a_script_see_its_globals():
    run = run_script("def f():\n    return incident.id\ninputs.x = f()\n", incident={"id": 3})
    assert run.inputs == {"x": 3}


def test_initial_inputs_and_workflow_properties():
    run = run_script("inputs.b = inputs.a + 1\nworkflow.addProperty('p', {'k': 1})\n",
                     inputs={"a": 1}, workflow_properties={"earlier": {"v": 2}})
    assert run.inputs == {"a": 1, "b": 2}
    assert run.workflow_properties == {"earlier": {"v": 2}, "p": {"k": 1}}


def test_inputs_get_plain_values():
    run = run_script("inputs.x = results.inputs", results={"inputs": {"a": [{"b": 1}]}})
    assert run.inputs == {"x": {"a": [{"b": 1}]}} and type(run.inputs["x"]) is dict


def test_soardict_equality_and_dict_view():
    value = SoarDict({"a": {"b": [1, {"c": 2}]}})
    assert value == {"a": {"b": [1, {"c": 2}]}}
    assert value.to_dict() == {"a": {"b": [1, {"c": 2}]}}
    assert value.a.b[1].c == 2 and "a" in value and list(value) == ["a"]
