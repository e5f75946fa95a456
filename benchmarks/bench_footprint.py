"""Benchmark 4, footprint: what fn_twilio adds to the resilient-circuits process.

The real ``resilient-circuits run`` is started against the local SOAR sandbox (sandbox/soar: REST
emulator, STOMP broker over TLS, the app's customizations preloaded, the Twilio emulator), with the
same app.config in both modes except:

* with fn_twilio:    the installed app's three components load (entry points);
* without fn_twilio: ``[resilient] noload`` lists the component entry-point names, so
  resilient-circuits loads none of them (and imports nothing of fn_twilio).

Start-up time: from launching the process to the timestamp of its log line "resilient-circuits has
started successfully". Memory: VmRSS (and VmHWM, the peak) from /proc/<pid>/status, ``--settle`` s
after that line. Modes alternate, ``--repeats`` times each (default 4; 2 with --quick); medians
and the differences are printed. Targets: < 20 MB and < 1 s added.

After the last "with" start, one twilio_send_sms call (one recipient) and one
twilio_receive_messages call (wait 0s) go through the broker, and the RSS after that first use is
printed too (phone-number metadata and the twilio SDK's resource classes load on first use).

No baseline: the 2.0.x app is not installed here.

Fallback (only if the sandbox cannot start): the import cost of fn_twilio's components in a bare
Python process (``import resilient_circuits`` with and without the components); the output then
says FALLBACK.

Usage: .venv/bin/python benchmarks/bench_footprint.py [--quick] [--repeats 4]
"""
from __future__ import annotations

import os
import re
import subprocess
import sys
import time
import traceback
from datetime import datetime

from _common import REPO_ROOT, Report, median, parser

STARTED = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}) .*resilient-circuits has started successfully",
                     re.MULTILINE)
COMPONENTS = ("FunctTwilioGetResponsesFunctionComponent", "FunctTwilioReceiveMessagesFunctionComponent",
              "FunctTwilioSendSmsFunctionComponent", "FunctTwilioGetMessageStatusFunctionComponent")


def component_entry_points() -> list[str]:
    """The names of fn_twilio's resilient.circuits.components entry points (what noload matches)."""
    from importlib.metadata import entry_points
    names = [ep.name for ep in entry_points(group="resilient.circuits.components")
             if ep.value.startswith("fn_twilio.")]
    return names or list(COMPONENTS)


def proc_status(pid: int) -> dict:
    values = {}
    with open(f"/proc/{pid}/status", encoding="utf-8") as handle:
        for line in handle:
            key, _, rest = line.partition(":")
            if key in ("VmRSS", "VmHWM", "Threads"):
                values[key] = int(rest.split()[0])
    return values


def start_once(sandbox, name: str, extra, settle: float, timeout: float = 60.0) -> dict:
    launcher = sandbox.launcher(name, extra_resilient=extra)
    launched = time.time()
    launcher.start(timeout=timeout)
    match = None
    for m in STARTED.finditer(launcher.log_text(since_start=True)):
        match = m
    logged = datetime.strptime(match.group(1), "%Y-%m-%d %H:%M:%S,%f").timestamp() if match else time.time()
    time.sleep(settle)
    status = proc_status(launcher.pid)
    loaded = launcher.log_text(since_start=True).count("fn_twilio.components.")
    return {"launcher": launcher, "startup": logged - launched, "rss_kb": status["VmRSS"],
            "hwm_kb": status["VmHWM"], "threads": status.get("Threads"), "fn_twilio_lines": loaded}


def first_use(sandbox, launcher) -> dict:
    from sandbox.twilio_emulator import SENDER
    driver = sandbox.driver()
    sent = driver.call_function("twilio_send_sms", {"twilio_sms_destination": "+353861234567",
                                                    "twilio_sms_message": "footprint"}, timeout=60)
    sandbox.twilio.inject_inbound("+353861234567", SENDER, "ACK")
    got = driver.call_function("twilio_receive_messages", {"twilio_phone_number": "+353861234567",
                                                           "twilio_wait_timeout": "0s"}, timeout=60)
    time.sleep(0.5)
    status = proc_status(launcher.pid)
    return {"send_ok": bool(sent.success), "receive_ok": bool(got.success), "rss_kb": status["VmRSS"],
            "hwm_kb": status["VmHWM"]}


def sandbox_run(report: Report, repeats: int, settle: float) -> bool:
    from sandbox.soar import Sandbox

    noload = ",".join(component_entry_points())
    modes = [("with", None), ("without", {"noload": noload})]
    samples = {"with": [], "without": []}
    used = None
    with Sandbox(preload="app", extra_functions=["twilio_get_responses"]) as sandbox:
        report.line(f"sandbox SOAR up; 'without' uses [resilient] noload = {noload}")
        for i in range(repeats):
            for mode, extra in (modes if i % 2 == 0 else modes[::-1]):
                sample = start_once(sandbox, f"{mode}-{i}", extra, settle)
                launcher = sample.pop("launcher")
                if mode == "with" and i == repeats - 1:
                    used = first_use(sandbox, launcher)
                launcher.stop()
                samples[mode].append(sample)
                report.line("  {:<7} #{}: started in {:.3f} s, VmRSS {:.1f} MB, VmHWM {:.1f} MB, {} threads, "
                            "{} component lines in the log".format(mode, i + 1, sample["startup"],
                                                                   sample["rss_kb"] / 1024,
                                                                   sample["hwm_kb"] / 1024,
                                                                   sample["threads"],
                                                                   sample["fn_twilio_lines"]))
    if any(s["fn_twilio_lines"] for s in samples["without"]):
        report.note("the 'without' runs still logged fn_twilio components: noload did not apply")
    med = {m: {k: median([s[k] for s in samples[m]]) for k in ("startup", "rss_kb", "hwm_kb")}
           for m in samples}
    d_start = med["with"]["startup"] - med["without"]["startup"]
    d_rss = (med["with"]["rss_kb"] - med["without"]["rss_kb"]) / 1024
    d_hwm = (med["with"]["hwm_kb"] - med["without"]["hwm_kb"]) / 1024
    report.line(f"medians over {repeats} start(s) each:")
    for m in ("without", "with"):
        report.line("  {:<7} fn_twilio: start-up {:.3f} s, VmRSS {:.1f} MB, VmHWM {:.1f} MB".format(
            m, med[m]["startup"], med[m]["rss_kb"] / 1024, med[m]["hwm_kb"] / 1024))
    report.line(f"added by fn_twilio: {d_start:+.3f} s start-up, {d_rss:+.1f} MB RSS ({d_hwm:+.1f} MB peak)")
    if used:
        d_used = (used["rss_kb"] - med["without"]["rss_kb"]) / 1024
        report.line("after one send and one receive call: VmRSS {:.1f} MB ({:+.1f} MB over 'without' at "
                    "rest), calls succeeded: send {}, receive {}".format(used["rss_kb"] / 1024, d_used,
                                                                         used["send_ok"], used["receive_ok"]))
        report.figure("rss_after_use_added_mb", round(d_used, 1))
    report.figure("mode", "sandbox")
    report.figure("startup_with_s", round(med["with"]["startup"], 3))
    report.figure("startup_without_s", round(med["without"]["startup"], 3))
    report.figure("startup_added_s", round(d_start, 3))
    report.figure("rss_with_mb", round(med["with"]["rss_kb"] / 1024, 1))
    report.figure("rss_without_mb", round(med["without"]["rss_kb"] / 1024, 1))
    report.figure("rss_added_mb", round(d_rss, 1))
    report.target("footprint: RSS added at start", f"{d_rss:+.1f} MB", "< 20 MB", d_rss < 20)
    if used:
        report.target("footprint: RSS added after first use", f"{d_used:+.1f} MB", "< 20 MB", d_used < 20)
    report.target("footprint: start-up time added", f"{d_start:+.3f} s", "< 1 s", d_start < 1)
    return True


FALLBACK_CODE = r"""
import resource, sys, time
t = time.perf_counter()
import resilient_circuits, resilient_lib
if sys.argv[1] == "with":
    import fn_twilio.components.funct_twilio_send_sms, fn_twilio.components.funct_twilio_receive_messages
    import fn_twilio.components.funct_twilio_get_responses
elapsed = time.perf_counter() - t
rss = [l for l in open("/proc/self/status") if l.startswith("VmRSS")][0].split()[1]
print(elapsed, rss)
"""


def fallback_run(report: Report, repeats: int):
    report.line("FALLBACK: the SOAR sandbox could not be used; "
                "measuring import cost in a bare Python process")
    env = dict(os.environ, PYTHONPATH=REPO_ROOT)
    samples = {"with": [], "without": []}
    for _ in range(repeats):
        for mode in ("without", "with"):
            out = subprocess.run([sys.executable, "-c", FALLBACK_CODE, mode], capture_output=True, text=True,
                                 env=env, cwd=REPO_ROOT, check=True).stdout.split()
            samples[mode].append((float(out[0]), int(out[1])))
    t = {m: median([s[0] for s in samples[m]]) for m in samples}
    r = {m: median([s[1] for s in samples[m]]) / 1024 for m in samples}
    report.line("FALLBACK import cost: {:+.3f} s, {:+.1f} MB RSS (with {:.1f} MB, without {:.1f} MB)".format(
        t["with"] - t["without"], r["with"] - r["without"], r["with"], r["without"]))
    report.figure("mode", "fallback-import")
    report.target("footprint (FALLBACK import): RSS added", "{:+.1f} MB".format(r["with"] - r["without"]),
                  "< 20 MB",
                  r["with"] - r["without"] < 20)
    report.target("footprint (FALLBACK import): time added", "{:+.3f} s".format(t["with"] - t["without"]),
                  "< 1 s",
                  t["with"] - t["without"] < 1)


def main(argv=None) -> int:
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--repeats", type=int, default=None, help="starts per mode (default 4; 2 with --quick)")
    p.add_argument("--settle", type=float, default=1.0,
                   help="seconds after start-up before reading RSS (default 1)")
    p.add_argument("--fallback", action="store_true", help="measure import cost only (no sandbox)")
    args = p.parse_args(argv)
    repeats = args.repeats or (2 if args.quick else 4)
    report = Report("bench_footprint", args)
    done = False
    if not args.fallback:
        try:
            done = sandbox_run(report, repeats, args.settle)
        except Exception:   # the sandbox is missing or broken: say so and measure what can be measured
            report.line(traceback.format_exc(limit=3))
    if not done:
        fallback_run(report, repeats)
    return report.finish()


if __name__ == "__main__":
    raise SystemExit(main())
