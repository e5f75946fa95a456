"""Benchmark 7, storms: N incidents in D seconds, each texting the same 3 on-call people, against the
Twilio emulator (in a process of its own) failing every text beyond 30 between two numbers in 30 s with
error 14107, as Twilio does.

Each incident is one Send SMS call as ``twilio_send_sms`` makes it (its default text naming the
incident, with the acknowledgement request; a ``SendJob`` to the 3 people), started at its moment of
the storm in a pool of ``--workers`` threads (resilient-circuits' ``num_workers``: a call held for a
digest keeps its worker). Two scenarios in the same run, one after the other, each on a sender of its
own:

* **2.3.0**: the calls send through the process's storm limiter (``max_texts_per_person`` 10 per
  ``person_window`` 60 s, the defaults; ``--limit``/``--window`` change them);
* **2.2.0** (baseline): the same calls without a limiter, as release 2.2.0 sends.

Figures per scenario: texts per person in the busiest window (any ``person_window`` of the request
log), the incidents that reached each person (codes in texts that did not fail; the fewest over the 3
people), texts failed with 14107, Twilio requests (creates, list requests, list requests per poll
interval), and how long an incident's call took (median / max, from its moment in the storm).
Targets (2.3.0): within the limit, every incident reaches each person, 0 failed with 14107.

Pages come later (phase 2): a scenario is a name and a function that runs one incident's call
(``SCENARIOS``), so a page storm is one more entry.

``--quick``: 60 incidents in 20 s, 3 texts per 20 s (so that the limit is reached within the storm).

Usage: .venv/bin/python benchmarks/bench_storm.py [--quick] [--incidents 200] [--duration 60]
           [--workers 50] [--limit 10] [--window 60]
"""
from __future__ import annotations

import json
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from _common import Report, median, parser, record_get, settings_for, twilio_emulator

from fn_twilio.lib.intents import ack_request
from fn_twilio.lib.phone import parse_recipients
from fn_twilio.lib.sender import SendJob
from fn_twilio.lib.storm import DigestLine, limiter_for, requested_codes

PEOPLE = ["+353861234567", "+14155552345", "+14155552346"]
SEVERITIES = ("Low", "Medium", "High")
FIRST_INCIDENT = 5000
INTERVAL = 2.0          # poll_interval: the app's default


@dataclass
class Incident:
    code: str
    name: str
    severity: str
    at: float                       # its moment in the storm (seconds from the start)
    started: float | None = None    # time.monotonic() when its call began (a worker was free)
    ended: float | None = None


@dataclass
class Scenario:
    """One way of handling the storm: ``call(settings, incident)`` runs one incident's call."""

    name: str
    sender: str
    call: Callable[..., None]
    limited: bool
    incidents: list[Incident] = field(default_factory=list)


def send_call(settings, incident: Incident, *, limited: bool) -> None:
    """What twilio_send_sms does for one incident: the default text with the acknowledgement request,
    to the 3 people, through the process's limiter (2.3.0) or without one (2.2.0)."""
    text = (f"An incident {incident.name} ({incident.code}) with {incident.severity} priority may require "
            f"your attention" + ack_request(incident.code))
    line = DigestLine(incident.name, incident.code, True, incident.severity)
    limiter = limiter_for(settings) if limited else None
    SendJob(settings, parse_recipients(", ".join(PEOPLE)), text, limiter=limiter, line=line).run()


SCENARIOS = [
    ("2.3.0 (storm limit)", "+14155550101", True),
    ("2.2.0 (no limit)", "+14155550102", False),
]


def run_storm(scenario: Scenario, base_url: str, args) -> float:
    """Start each incident's call at its moment; return the time.monotonic() the storm started."""
    settings = settings_for(base_url, twilio_src_address=scenario.sender, poll_interval=f"{INTERVAL:g}s",
                            max_texts_per_person=args.limit, person_window=f"{args.window:g}s")
    step = args.duration / args.incidents
    scenario.incidents = [Incident(str(FIRST_INCIDENT + i), f"Phishing wave report {i}",
                                   SEVERITIES[i % 3], i * step) for i in range(args.incidents)]
    start = time.monotonic()

    def one(incident: Incident) -> None:
        incident.started = time.monotonic()
        try:
            scenario.call(settings, incident, limited=scenario.limited)
        finally:
            incident.ended = time.monotonic()

    with ThreadPoolExecutor(max_workers=args.workers) as pool:
        for incident in scenario.incidents:
            delay = start + incident.at - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            pool.submit(one, incident)
    return start


def busiest_window(times: list[float], window: float) -> int:
    times = sorted(times)
    return max((sum(1 for t in times if s <= t < s + window) for s in times), default=0)


def measure(emu, scenario: Scenario, start: float, end: float, window: float) -> dict:
    requests = [r for r in emu.requests if start <= record_get(r, "started") <= end]
    creates = [r for r in requests if record_get(r, "method") == "POST"
               and record_get(r, "path").endswith("/Messages.json")
               and (record_get(r, "form") or {}).get("From") == scenario.sender]
    lists = [r for r in requests if record_get(r, "method") == "GET"
             and record_get(r, "path").endswith("/Messages.json")
             and (record_get(r, "query") or {}).get("From") == [scenario.sender]]
    messages = emu.outbound_messages(from_=scenario.sender)
    failed_14107 = sum(1 for m in messages if m["error_code"] == 14107)
    codes = {i.code for i in scenario.incidents}
    per_person = {}
    for person in PEOPLE:
        sent = [record_get(r, "started") for r in creates
                if (record_get(r, "form") or {}).get("To") == person and record_get(r, "status") == 201]
        delivered = [m for m in messages if m["to"] == person and m["status"] != "failed"]
        reached = {c for m in delivered for c in requested_codes(m["body"])} & codes
        per_person[person] = {"texts": len(sent), "busiest_window": busiest_window(sent, window),
                              "reached": len(reached)}
    took = [i.ended - (start + i.at) for i in scenario.incidents if i.ended is not None]
    duration = end - start
    return {
        "scenario": scenario.name,
        "incidents": len(scenario.incidents),
        "texts_per_person_busiest_window": max(p["busiest_window"] for p in per_person.values()),
        "texts_per_person": max(p["texts"] for p in per_person.values()),
        "incidents_reached_fewest": min(p["reached"] for p in per_person.values()),
        "failed_14107": failed_14107,
        "creates": len(creates),
        "lists": len(lists),
        "lists_per_interval": round(len(lists) / max(1.0, duration / INTERVAL), 2),
        "call_median_s": round(median(took), 2),
        "call_max_s": round(max(took), 2) if took else None,
        "duration_s": round(duration, 1),
    }


def main(argv=None) -> int:
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--incidents", type=int, default=None,
                   help="incidents in the storm (200; 60 with --quick)")
    p.add_argument("--duration", type=float, default=None,
                   help="seconds the storm lasts (60; 20 with --quick)")
    p.add_argument("--workers", type=int, default=50, help="calls running at once (num_workers; default 50)")
    p.add_argument("--limit", type=int, default=None, help="max_texts_per_person (10; 3 with --quick)")
    p.add_argument("--window", type=float, default=None,
                   help="person_window in seconds (60; 20 with --quick)")
    args = p.parse_args(argv)
    args.incidents = args.incidents or (60 if args.quick else 200)
    args.duration = args.duration or (20.0 if args.quick else 60.0)
    args.window = args.window or (20.0 if args.quick else 60.0)
    args.limit = args.limit or (3 if args.quick else 10)
    report = Report("bench_storm", args)
    report.line(f"{args.incidents} incidents in {args.duration:g} s, each texting the same {len(PEOPLE)} "
                f"people; limit {args.limit} texts per {args.window:g} s, poll_interval {INTERVAL:g} s, "
                f"{args.workers} workers; the emulator fails texts beyond 30 per pair in 30 s (14107)")
    scenarios = [Scenario(name, sender, send_call, limited) for name, sender, limited in SCENARIOS]
    results = []
    with twilio_emulator(numbers=[s.sender for s in scenarios]) as (emu, base_url):
        for scenario in scenarios:
            report.line(f"-- {scenario.name}")
            start = run_storm(scenario, base_url, args)
            end = time.monotonic()
            figures = measure(emu, scenario, start, end, args.window)
            results.append(figures)
            report.line("   " + json.dumps(figures))
    ours, base = results
    for figures in results:
        key = "limited" if figures is ours else "baseline"
        for name, value in figures.items():
            if name != "scenario":
                report.figure(f"{key}_{name}", value)
    report.line(f"texts per person in the busiest {args.window:g} s: "
                f"{ours['texts_per_person_busiest_window']} "
                f"(2.2.0: {base['texts_per_person_busiest_window']}); incidents reaching each person: "
                f"{ours['incidents_reached_fewest']}/{args.incidents} "
                f"(2.2.0: {base['incidents_reached_fewest']}/{args.incidents}); failed with 14107: "
                f"{ours['failed_14107']} (2.2.0: {base['failed_14107']})")
    report.line(f"requests: {ours['creates']} creates and {ours['lists']} list requests "
                f"({ours['lists_per_interval']} per poll interval); 2.2.0: {base['creates']} creates, "
                f"{base['lists']} lists; a call took median {ours['call_median_s']} s, "
                f"max {ours['call_max_s']} s "
                f"(2.2.0: {base['call_median_s']} s, {base['call_max_s']} s)")
    ratio = base["texts_per_person_busiest_window"] / max(1, ours["texts_per_person_busiest_window"])
    report.target("storm: texts per person in the busiest window",
                  f"{ours['texts_per_person_busiest_window']} ({ratio:.1f}x fewer)", f"<= {args.limit}",
                  ours["texts_per_person_busiest_window"] <= args.limit)
    report.target("storm: incidents reaching each person", f"{ours['incidents_reached_fewest']}",
                  f"= {args.incidents} (2.2.0: {base['incidents_reached_fewest']})",
                  ours["incidents_reached_fewest"] == args.incidents)
    report.target("storm: texts failed with 14107", str(ours["failed_14107"]),
                  f"0 (2.2.0: {base['failed_14107']})", ours["failed_14107"] == 0)
    report.target("storm: list requests per poll interval", f"{ours['lists_per_interval']:g}", "<= 1.5",
                  ours["lists_per_interval"] <= 1.5)
    if (ours["call_max_s"] or 0) > args.window + 4 * INTERVAL + 5:
        report.note("a call waited longer than a window: the workers were all held (raise --workers)")
    return report.finish()


if __name__ == "__main__":
    raise SystemExit(main())
