"""The committed export.res is exactly what customizations/build_export.py makes."""
import base64
import io
import json
import os
import subprocess
import sys

from customizations import build_export

REPO_ROOT = build_export.REPO_ROOT
EXPORT_RES_PATH = build_export.EXPORT_RES


def test_committed_export_is_up_to_date():
    with open(EXPORT_RES_PATH, encoding="utf-8") as handle:
        committed = handle.read()
    assert committed == build_export.render(), (
        "fn_twilio/util/data/export.res is stale: customizations/ changed but the export was not "
        "rebuilt. Run: python customizations/build_export.py  (then commit export.res)")


def test_build_is_deterministic():
    assert build_export.render() == build_export.render()
    export = build_export.build_export()
    assert export["export_date"] == build_export.EXPORT_DATE
    assert export["server_version"] == {"build_number": 9339, "f": 0, "m": 0, "major": 0, "minor": 0, "r": 0,
                                        "v": 51, "version": "51.0.0.0.9339"}


def test_uuids_are_stable_and_unique(export_res):
    assert build_export.stable_uuid("function", "twilio_send_sms") == \
        build_export.stable_uuid("function", "twilio_send_sms")
    uuids = [f["uuid"] for f in export_res["fields"]]
    uuids += [o["uuid"] for key in ("functions", "workflows", "actions", "types",
                                    "message_destinations") for o in export_res[key]]
    uuids += [c["uuid"] for t in export_res["types"] for c in t["fields"].values()]
    assert len(uuids) == len(set(uuids))


def test_check_reports_a_stale_file(tmp_path):
    stale = tmp_path / "export.res"
    stale.write_text(build_export.render().replace("Twilio: Send SMS", "Twilio: Send Text"),
                     encoding="utf-8")
    out = io.StringIO()
    assert build_export.check(str(stale), out=out) == 1
    report = out.getvalue()
    assert "stale" in report and "python customizations/build_export.py" in report
    assert "Twilio: Send Text" in report and "Twilio: Send SMS" in report

    missing = io.StringIO()
    assert build_export.check(str(tmp_path / "nope.res"), out=missing) == 1
    assert "missing" in missing.getvalue()


def test_check_passes_on_a_fresh_file(tmp_path):
    fresh = tmp_path / "export.res"
    assert build_export.main(["--output", str(fresh)]) == 0
    assert build_export.check(str(fresh), out=io.StringIO()) == 0


def test_command_line_check_both_ways_of_running(tmp_path):
    """`python customizations/build_export.py --check` and `python -m ...` both work."""
    stale = tmp_path / "export.res"
    stale.write_text("{}\n", encoding="utf-8")
    env = dict(os.environ, PYTHONPATH="")
    as_file = subprocess.run(
        [sys.executable, os.path.join("customizations", "build_export.py"), "--check"],
        cwd=REPO_ROOT, capture_output=True, text=True, env=env)
    assert as_file.returncode == 0, as_file.stdout + as_file.stderr
    as_module = subprocess.run(
        [sys.executable, "-m", "customizations.build_export", "--check", "--output", str(stale)],
        cwd=REPO_ROOT, capture_output=True, text=True, env=env)
    assert as_module.returncode == 1
    assert "stale" in as_module.stdout


def test_customize_py_yields_the_export():
    from resilient import ImportDefinition
    from fn_twilio.util import customize

    definitions = list(customize.customization_data(client=None))
    assert len(definitions) == 1 and isinstance(definitions[0], ImportDefinition)
    with open(EXPORT_RES_PATH, "rb") as handle:
        assert base64.b64decode(definitions[0].value) == handle.read()


def test_codegen_reload_data_matches_the_export(export_res):
    from fn_twilio.util.customize import codegen_reload_data

    data = codegen_reload_data()
    assert data["package"] == "fn_twilio"
    assert data["message_destinations"] == ["fn_twilio"]
    assert sorted(data["functions"]) == sorted(f["name"] for f in export_res["functions"])
    assert sorted(data["workflows"]) == sorted(w["programmatic_name"]
                                               for w in export_res["workflows"])
    assert sorted(data["actions"]) == sorted(a["name"] for a in export_res["actions"])
    assert data["datatables"] == ["twilio_sms_log"]
    # codegen --reload exports again only what these lists name: every playbook of the export, by the
    # key resilient-sdk looks playbooks up by (export_key, the playbook's API name)
    assert data["playbooks"] == sorted(p["export_key"] for p in export_res["playbooks"])
    assert len(data["playbooks"]) == len(export_res["playbooks"]) == 5
    for empty in ("incident_fields", "incident_artifact_types", "automatic_tasks", "scripts"):
        assert data[empty] == []


def test_export_is_plain_json_without_machine_paths():
    with open(EXPORT_RES_PATH, encoding="utf-8") as handle:
        text = handle.read()
    json.loads(text)
    assert REPO_ROOT not in text and "/home/" not in text and "/tmp/" not in text
