"""The administrator's packaging commands: resilient-sdk validate and package, and pip's sdist."""
import re
import subprocess
import sys
import tarfile
import zipfile
import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SDK = str(Path(sys.executable).with_name("resilient-sdk"))


def run(*args, cwd):
    return subprocess.run(args, cwd=cwd, capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def copy_of_project(tmp_path_factory):
    """A copy of the tracked project, so that the commands' build output stays out of the tree."""
    target = tmp_path_factory.mktemp("project") / "fn_twilio"
    files = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True).stdout
    for name in filter(None, files.decode().split("\0")):
        source, dest = ROOT / name, target / name
        dest.parent.mkdir(parents=True, exist_ok=True)
        if source.is_symlink():
            dest.symlink_to(source.readlink())
        elif source.exists():
            dest.write_bytes(source.read_bytes())
    return target


def test_validate_finds_no_critical_issue_and_no_warning(copy_of_project):
    result = run(SDK, "validate", "-p", ".", "--validate", cwd=copy_of_project)
    output = re.sub(r"\x1b\[[0-9;]*m", "", result.stdout + result.stderr)
    assert re.search(r"Critical Issues:\s+0\b", output), output[-3000:]
    assert re.search(r"Warnings:\s+0\b", output), output[-3000:]


def test_package_builds_the_app_host_zip(copy_of_project):
    result = run(SDK, "package", "-p", ".", cwd=copy_of_project)
    assert result.returncode == 0, result.stderr[-3000:]
    app_zip = copy_of_project / "dist" / "app-fn_twilio-2.3.0.zip"
    with zipfile.ZipFile(app_zip) as archive:
        names = set(archive.namelist())
        assert {"export.res", "app.json", "fn_twilio-2.3.0.tar.gz"} <= names
        app = json.loads(archive.read("app.json"))
    executable = app["current_installation"]["executables"][0]
    assert executable["image"].endswith("fn_twilio:2.3.0")
    assert "[fn_twilio_send_sms]" in executable["config_string"]
    # the API key App Host makes for the app: every permission the app uses (apikey_permissions.txt)
    assert sorted(executable["permission_handles"]) == ["read_all_incidents", "read_data", "read_function",
                                                        "read_playbook"]
    with tarfile.open(copy_of_project / "dist" / "fn_twilio-2.3.0.tar.gz") as sdist:
        members = set(sdist.getnames())
        entry_points_txt = sdist.extractfile("fn_twilio-2.3.0/fn_twilio.egg-info/entry_points.txt")
        entry_points = entry_points_txt.read().decode()
    assert "fn_twilio-2.3.0/fn_twilio/util/data/export.res" in members
    assert not any("/sandbox/" in m for m in members)
    for component in ("funct_twilio_send_sms", "funct_twilio_receive_messages", "funct_twilio_get_responses",
                      "funct_twilio_get_message_status"):
        assert f"fn_twilio.components.{component}:FunctionComponent" in entry_points
    # the legacy function is packaged with its payload samples, like the others
    export = json.loads(archive_member(app_zip, "export.res"))
    assert {f["name"] for f in export["functions"]} >= {"twilio_get_responses"}


def archive_member(path, name):
    with zipfile.ZipFile(path) as archive:
        return archive.read(name)


def build_output_warnings(output):
    """Warning lines of a build's output, leaving out pip's notes about this machine's index settings."""
    return [line for line in output.splitlines()
            if "warn" in line.lower() and not line.startswith("WARNING: Location ")]


#: what the sdist holds besides fn_twilio/: the files pip, App Host and resilient-sdk package use
SDIST_TOP_LEVEL = {"Dockerfile", "LICENSE", "MANIFEST.in", "PKG-INFO", "README.md", "apikey_permissions.txt",
                   "entrypoint.sh", "setup.cfg", "setup.py", "tox.ini"}


def test_sdist_builds_without_warnings_and_holds_the_app_without_the_test_suite(copy_of_project, tmp_path):
    result = run(sys.executable, "-m", "build", "--sdist", "--outdir", str(tmp_path), ".",
                 cwd=copy_of_project)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-3000:]
    assert build_output_warnings(output) == [], output[-3000:]
    [sdist] = tmp_path.glob("fn_twilio-*.tar.gz")
    with tarfile.open(sdist) as archive:
        names = {m.name.split("/", 1)[1] for m in archive.getmembers() if m.isfile()}
    tracked = set(subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True,
                                 check=True).stdout.split())
    package = {n for n in tracked if n.startswith("fn_twilio/")}
    samples = {n for n in tracked if n.startswith(("payload_samples/", "icons/"))}
    egg_info = {n for n in names if n.startswith("fn_twilio.egg-info/")}
    assert names == package | samples | egg_info | SDIST_TOP_LEVEL
    assert "fn_twilio/util/data/export.res" in names
    assert "fn_twilio/lib/data/page_call_flow.json" in names      # the page call's Studio flow
    assert not any(n.startswith(("tests/", "sandbox/", "customizations/")) for n in names)


def test_the_wheel_installs_the_page_call_flow_beside_the_voice_core(copy_of_project, tmp_path):
    result = run(sys.executable, "-m", "build", "--wheel", "--outdir", str(tmp_path), ".",
                 cwd=copy_of_project)
    assert result.returncode == 0, (result.stdout + result.stderr)[-3000:]
    [wheel] = tmp_path.glob("fn_twilio-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        shipped = json.loads(archive.read("fn_twilio/lib/data/page_call_flow.json"))
    assert "fn_twilio/lib/voice.py" in names
    assert shipped == json.loads((ROOT / "fn_twilio" / "lib" / "data" / "page_call_flow.json").read_text())


def test_setup_keeps_display_name_where_resilient_sdk_reads_it():
    """resilient-sdk evaluates setup.py's call as text; setuptools never sees display_name."""
    from resilient_sdk.util.package_file_helpers import parse_setup_py

    attributes = parse_setup_py(str(ROOT / "setup.py"), ["name", "display_name", "version"])
    assert attributes == {"name": "fn_twilio", "display_name": "Twilio SMS", "version": "2.3.0"}
