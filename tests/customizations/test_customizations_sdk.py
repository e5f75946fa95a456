"""Smoke tests: the IBM tools read the export (resilient-sdk codegen/docgen, resilient-circuits
customize). Skipped only when resilient-sdk is not installed."""
import json
import os
import shutil
import subprocess
import sys

import pytest

from customizations import build_export

EXPORT_RES = build_export.EXPORT_RES


def _sdk():
    candidate = os.path.join(os.path.dirname(sys.executable), "resilient-sdk")
    if os.path.exists(candidate):
        return candidate
    found = shutil.which("resilient-sdk")
    if not found:
        pytest.skip("resilient-sdk is not installed")
    return found


def _run(args, cwd):
    done = subprocess.run(args, cwd=cwd, capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "ERROR" not in done.stderr, done.stderr
    return done


def test_codegen_reads_the_export(tmp_path):
    sdk = _sdk()
    _run([sdk, "codegen", "-e", EXPORT_RES, "-p", "fn_twilio", "-m", "fn_twilio",
          "-w", "example_twilio_send_sms", "example_twilio_receive_messages",
          "twilio_get_responses", "twilio_update_delivery_status", "example_twilio_page_on_call",
          "-r", "Example: Send Twilio SMS", "Example: Twilio Receive Messages",
          "Twilio: Get Responses", "Twilio: Update Delivery Status", "Example: Twilio Page On-Call",
          "-d", "twilio_sms_log", "-o", str(tmp_path)], cwd=str(tmp_path))
    package = tmp_path / "fn_twilio" / "fn_twilio"
    components = sorted(p.name for p in (package / "components").glob("funct_*.py"))
    assert components == ["funct_twilio_get_message_status.py", "funct_twilio_get_responses.py",
                          "funct_twilio_page.py", "funct_twilio_receive_messages.py",
                          "funct_twilio_send_sms.py"]

    # the export codegen re-emits holds every object we asked for
    regenerated = json.loads((package / "util" / "data" / "export.res").read_text())
    assert sorted(f["name"] for f in regenerated["functions"]) == \
        ["twilio_get_message_status", "twilio_get_responses", "twilio_page", "twilio_receive_messages",
         "twilio_send_sms"]
    assert sorted(w["programmatic_name"] for w in regenerated["workflows"]) == \
        ["example_twilio_page_on_call", "example_twilio_receive_messages", "example_twilio_send_sms",
         "twilio_get_responses", "twilio_update_delivery_status"]
    assert [t["type_name"] for t in regenerated["types"]] == ["twilio_sms_log"]
    assert len(regenerated["actions"]) == 5


def test_codegen_reload_keeps_every_playbook(tmp_path):
    """`codegen --reload` exports again only what util/customize.py's reload data names: the playbooks
    must be there, or a reload drops them from the app."""
    sdk = _sdk()
    package = tmp_path / "package"
    package.mkdir()
    for name in ("setup.py", "README.md", "MANIFEST.in", "apikey_permissions.txt", "Dockerfile",
                 "entrypoint.sh"):
        shutil.copy(os.path.join(build_export.REPO_ROOT, name), package / name)
    shutil.copytree(os.path.join(build_export.REPO_ROOT, "fn_twilio"), package / "fn_twilio",
                    ignore=shutil.ignore_patterns("__pycache__"))
    export = tmp_path / "export.res"          # outside the package: reload moves the package aside
    shutil.copy(EXPORT_RES, export)
    _run([sdk, "codegen", "-p", str(package), "--reload", "-e", str(export)], cwd=str(tmp_path))
    reloaded = json.loads((package / "fn_twilio" / "util" / "data" / "export.res").read_text())
    original = json.loads(export.read_text())
    assert sorted(p["export_key"] for p in reloaded["playbooks"]) == \
        sorted(p["export_key"] for p in original["playbooks"])
    assert len(reloaded["playbooks"]) == 5
    assert reloaded["server_version"] == original["server_version"]
    customize = (package / "fn_twilio" / "util" / "customize.py").read_text()
    for playbook in original["playbooks"]:
        assert playbook["export_key"] in customize


def test_docgen_documents_the_export(tmp_path):
    sdk = _sdk()
    out = tmp_path / "README.md"
    _run([sdk, "docgen", "-e", EXPORT_RES, "-o", str(out)], cwd=str(tmp_path))
    text = out.read_text()
    for expected in ("Twilio: Send SMS", "Twilio: Get Responses", "Twilio: Get Responses (2.0.x)",
                     "twilio_sms_destination",
                     "SMS Activity Log", "Msg Created", "Example: Send Twilio SMS",
                     "twilio_sms_log.status not_equals Failed",
                     "## Playbooks", "Example: Twilio Send SMS (Playbook)",
                     "Example: Twilio Receive Messages (Playbook)", "Twilio: Get Responses (Playbook)",
                     "Twilio: Get Delivery Status", "Twilio: Update Delivery Status (Playbook)",
                     # docgen shows a function's scripts from the playbooks when there are any
                     "inputs.twilio_sms_destination = playbook.inputs.twilio_sms_destination",
                     "results = playbook.functions.results.twilio_send_sms_result"):
        assert expected in text, expected
    playbooks = text[text.index("## Playbooks"):].split("\n---\n", 1)[0]
    assert "| Twilio: Get Responses (Playbook) |" in playbooks
    row = "| Manual | twilio_sms_log | `enabled` | `twilio_sms_log.status not_equals Failed` |"
    assert row in playbooks, playbooks


class _FakeSoar:
    """Just enough of resilient.co3.SimpleClient for `resilient-circuits customize`."""

    user_id = None
    api_key_handle = 7

    def __init__(self):
        self.posted = []
        self.put_calls = []
        self.destination = {"id": 12, "programmatic_name": "fn_twilio", "api_keys": [],
                            "users": []}

    def post(self, uri, payload):
        self.posted.append((uri, payload))
        return {"id": 5, "status": "PENDING", "messages": []}

    def put(self, uri, payload):
        self.put_calls.append((uri, payload))
        return payload

    def get(self, uri):
        assert uri == "/message_destinations"
        return {"entities": [self.destination]}

    def get_put(self, uri, apply):
        assert uri == "/message_destinations/12"
        self.destination = apply(dict(self.destination, api_keys=[]))
        return self.destination


def test_resilient_circuits_customize_imports_it():
    pytest.importorskip("resilient_circuits")
    from resilient_circuits.helpers import get_entry_points
    from resilient_circuits.util.resilient_customize import do_customize_resilient

    client = _FakeSoar()
    do_customize_resilient(client, get_entry_points(group="resilient.circuits.customize"),
                           True, ["fn_twilio"])
    assert len(client.posted) == 1
    uri, payload = client.posted[0]
    assert uri == "/configurations/imports"
    with open(EXPORT_RES, "rb") as handle:
        exported = json.loads(handle.read())
    assert payload["functions"] == exported["functions"]
    assert payload["workflows"] == exported["workflows"]
    assert payload["playbooks"] == exported["playbooks"] and len(payload["playbooks"]) == 5
    assert [c[0] for c in client.put_calls] == ["/configurations/imports/5"]
    assert client.put_calls[0][1]["status"] == "ACCEPTED"
    assert client.destination["api_keys"] == [7]
