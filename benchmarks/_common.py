"""Shared helpers for the fn_twilio benchmarks (not a benchmark itself).

* ``REPO_ROOT`` is put on ``sys.path`` so that ``import sandbox`` and ``import fn_twilio`` work
  whatever the current directory.
* ``twilio_emulator(...)``: the Twilio emulator, by default in a process of its own
  (``python -m sandbox.twilio_emulator``, driven through ``RemoteEmulator``) so that its request
  handling does not compete with the app for this process's GIL; ``inproc=True`` runs it in-process.
  Request records then come as dicts (``started``/``finished`` are ``time.monotonic()`` values of the
  emulator's process: on Linux the same clock as ours).
* ``settings_for(base_url, **overrides)``: fn_twilio Settings for the emulator, through the app's own
  ``load_settings``.
* ``Report``: prints figures and, with ``--results FILE``, writes them as JSON for ``run_all.py``.

Benchmarks never assert timings: they print figures and exit 0.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import subprocess
import sys
import time

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if REPO_ROOT not in sys.path:
    sys.path.insert(0, REPO_ROOT)

from sandbox.twilio_emulator import ACCOUNT_SID, AUTH_TOKEN, SENDER, RemoteEmulator, TwilioEmulator  # noqa: E402


def parser(description: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--quick", action="store_true", help="a shorter run with fewer samples")
    p.add_argument("--results", metavar="FILE",
                   help="also write the figures as JSON to FILE (for run_all.py)")
    p.add_argument("--seed", type=int, default=None, help="random seed (default: a new one each run)")
    return p


def record_get(record, name):
    """A field of a request record, whether a RequestRecord (in-process) or a dict (remote)."""
    return record.get(name) if isinstance(record, dict) else getattr(record, name)


@contextlib.contextmanager
def twilio_emulator(*, latency: float = 0.0, numbers=(SENDER,), inproc: bool = False):
    """Yield (emulator, base_url): a TwilioEmulator (inproc) or a RemoteEmulator in a child process."""
    if inproc:
        emu = TwilioEmulator(numbers=tuple(numbers), latency=latency).start()
        try:
            yield emu, emu.base_url
        finally:
            emu.stop()
        return
    argv = [sys.executable, "-m", "sandbox.twilio_emulator", "--latency", str(latency)]
    for number in numbers:
        argv += ["--number", number]
    env = dict(os.environ)
    env["PYTHONPATH"] = REPO_ROOT + os.pathsep + env.get("PYTHONPATH", "")
    proc = subprocess.Popen(argv, cwd=REPO_ROOT, env=env, stdout=subprocess.PIPE, stdin=subprocess.DEVNULL,
                            text=True)
    try:
        base_url = proc.stdout.readline().strip()
        if not base_url.startswith("http"):
            raise RuntimeError(f"the Twilio emulator did not start (it printed {base_url!r})")
        emu = RemoteEmulator(base_url, timeout=120.0)
        deadline = time.monotonic() + 10
        while True:
            try:
                emu.health()
                break
            except Exception:  # not serving yet
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        yield emu, base_url
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


def settings_for(base_url: str, **overrides):
    """fn_twilio Settings for the emulator at ``base_url`` (keys of [fn_twilio_send_sms] as overrides)."""
    from fn_twilio.lib.settings import load_settings

    section = {
        "twilio_account_sid": ACCOUNT_SID,
        "twilio_auth_token": AUTH_TOKEN,
        "twilio_src_address": SENDER,
        "twilio_base_url": base_url,
        "timeout": "30",
    }
    section.update({k: str(v) for k, v in overrides.items()})
    return load_settings(section)


def median(values):
    return statistics.median(values) if values else float("nan")


def machine() -> str:
    """A one-line description of this machine (CPU count and model, Python)."""
    model = ""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            for line in handle:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return "{} CPU(s){}, Python {}".format(os.cpu_count(), " " + model if model else "",
                                           sys.version.split()[0])


class Report:
    """Figures of one benchmark: printed as they come, and written as JSON with ``--results``.

    ``target(name, value, target_text, met)`` records a figure that has a target (for run_all's table).
    """

    def __init__(self, name: str, args):
        self.name = name
        self.args = args
        self.figures: dict = {}
        self.targets: list = []
        self.notes: list = []
        self.started = time.monotonic()
        print("== {} ({}){}".format(name, machine(), " [--quick]" if getattr(args, "quick", False) else ""))

    def line(self, text: str = ""):
        print(text, flush=True)

    def figure(self, key: str, value, text: str | None = None):
        self.figures[key] = value
        if text is not None:
            self.line(text)

    def target(self, figure: str, value: str, target: str, met: bool | None):
        self.targets.append({"benchmark": self.name, "figure": figure, "value": value, "target": target,
                             "met": met})

    def note(self, text: str):
        self.notes.append(text)
        self.line("note: " + text)

    def finish(self) -> int:
        elapsed = time.monotonic() - self.started
        self.figures["elapsed_s"] = round(elapsed, 2)
        if self.targets:
            self.line("-- targets")
            for t in self.targets:
                met = {True: "met", False: "NOT met", None: "n/a"}[t["met"]]
                self.line("   {:<44} {:>14}   target {:<16} {}".format(t["figure"], t["value"], t["target"],
                                                                       met))
        self.line(f"({self.name} finished in {elapsed:.1f} s)")
        if getattr(self.args, "results", None):
            with open(self.args.results, "w", encoding="utf-8") as handle:
                json.dump({"benchmark": self.name, "figures": self.figures, "targets": self.targets,
                           "notes": self.notes, "quick": bool(getattr(self.args, "quick", False))},
                          handle, indent=2, default=str)
        return 0
