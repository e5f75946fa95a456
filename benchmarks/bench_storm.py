"""Benchmark 7, storms: N incidents in D seconds, each texting or paging the same 3 on-call people,
against the Twilio emulator (in a process of its own) failing every text beyond 30 between two numbers in
30 s with error 14107, as Twilio does.

Two kinds of call, each in two scenarios in the same run (one after the other, each on a sender of its
own), started at its incident's moment of the storm in a pool of worker threads (resilient-circuits'
``num_workers``: a call held for a digest keeps its worker):

* **send**: one Send SMS call per incident as ``twilio_send_sms`` makes it (its default text naming the
  incident, with the acknowledgement request; a ``SendJob`` to the 3 people), ``--workers`` workers;
* **page**: one "Page Until Acknowledged" per incident as ``twilio_page`` runs it (the ``Page`` engine,
  one tier of the 3 people, the delivery check; nobody answers, so each page ends ``--escalate`` seconds
  after its tier's text or digest went out), ``--page-workers`` workers (default: one per incident, so
  that no page waits for a worker);

and, for each kind:

* **2.3.0**: the calls send through the process's storm limiter (``max_texts_per_person`` 10 per
  ``person_window`` 60 s, the defaults; ``--limit``/``--window`` change them);
* **2.2.0** (baseline): the same calls without a limiter, as release 2.2.0 sends and pages.

Figures per scenario: texts per person in the busiest window (any ``person_window`` of the request
log), the incidents that reached each person (codes in texts that did not fail; the fewest over the 3
people), texts failed with 14107, Twilio requests (creates, list requests of the sender's messages, out
and in, list requests per poll interval), and how long an incident's call took until its text went out
(sends: the call's end; pages: the tier's text or digest; median / max, from its moment in the storm).
Targets (2.3.0): within the limit, every incident reaches each person, 0 failed with 14107.

``--quick``: 60 incidents in 20 s, 3 texts per 20 s (so that the limit is reached within the storm),
pages ending 5 s after their text.

Usage: .venv/bin/python benchmarks/bench_storm.py [--quick] [--incidents 200] [--duration 60]
           [--workers 50] [--page-workers N] [--limit 10] [--window 60] [--escalate 10]
           [--kind send page]
"""
from __future__ import annotations

import json
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from _common import Report, median, parser, record_get, settings_for, twilio_emulator

from fn_twilio.lib.intents import ack_request
from fn_twilio.lib.paging import DeliveryCheck, Page
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
    reached: float | None = None    # time.monotonic() when its texts went out (a page's tier began)


@dataclass
class Scenario:
    """One way of handling the storm: ``call(settings, incident, limited=, args=)`` runs one incident's
    call, with ``workers`` calls at once."""

    name: str
    kind: str
    sender: str
    call: Callable[..., None]
    limited: bool
    workers: int
    incidents: list[Incident] = field(default_factory=list)


def _text(incident: Incident) -> str:
    """The default text with the acknowledgement request, as the app writes it for an incident."""
    return (f"An incident {incident.name} ({incident.code}) with {incident.severity} priority may require "
            f"your attention" + ack_request(incident.code))


def send_call(settings, incident: Incident, *, limited: bool, args) -> None:
    """What twilio_send_sms does for one incident: the default text with the acknowledgement request,
    to the 3 people, through the process's limiter (2.3.0) or without one (2.2.0)."""
    line = DigestLine(incident.name, incident.code, True, incident.severity)
    limiter = limiter_for(settings) if limited else None
    SendJob(settings, parse_recipients(", ".join(PEOPLE)), _text(incident), limiter=limiter, line=line).run()
    incident.reached = time.monotonic()


def page_call(settings, incident: Incident, *, limited: bool, args) -> None:
    """What twilio_page does for one incident: one tier of the 3 people, the default text, the delivery
    check; nobody answers, so the page ends ``args.escalate`` s after its tier's text (or digest) went
    out. Through the process's limiter (2.3.0) or without one (2.2.0)."""
    line = DigestLine(incident.name, incident.code, True, incident.severity)
    limiter = limiter_for(settings) if limited else None
    paged = []

    def progress(text: str) -> None:
        if text.startswith("Tier 1: paged") and not paged:
            paged.append(time.monotonic())

    with DeliveryCheck(settings) as delivery:
        Page(settings, [parse_recipients(", ".join(PEOPLE))], _text(incident), incident.code,
             escalate_after=args.escalate, max_wait=3 * args.window + args.escalate + 60, progress=progress,
             delivery=delivery, limiter=limiter, line=line).run()
    incident.reached = paged[0] if paged else None


KINDS = {"send": send_call, "page": page_call}
SCENARIOS = [   # kind, name, sender, limited
    ("send", "2.3.0 send (storm limit)", "+14155550101", True),
    ("send", "2.2.0 send (no limit)", "+14155550102", False),
    ("page", "2.3.0 page (storm limit)", "+14155550103", True),
    ("page", "2.2.0 page (no limit)", "+14155550104", False),
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
            scenario.call(settings, incident, limited=scenario.limited, args=args)
        finally:
            incident.ended = time.monotonic()

    with ThreadPoolExecutor(max_workers=scenario.workers) as pool:
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
             and [scenario.sender] in ((record_get(r, "query") or {}).get("From"),
                                      (record_get(r, "query") or {}).get("To"))]
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
    took = [i.reached - (start + i.at) for i in scenario.incidents if i.reached is not None]
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
        "reached_median_s": round(median(took), 2),
        "reached_max_s": round(max(took), 2) if took else None,
        "calls_ended_s": round(max(i.ended - start for i in scenario.incidents if i.ended), 1),
        "duration_s": round(duration, 1),
    }


def main(argv=None) -> int:
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--incidents", type=int, default=None,
                   help="incidents in the storm (200; 60 with --quick)")
    p.add_argument("--duration", type=float, default=None,
                   help="seconds the storm lasts (60; 20 with --quick)")
    p.add_argument("--workers", type=int, default=50,
                   help="send calls running at once (num_workers; default 50)")
    p.add_argument("--page-workers", type=int, default=None,
                   help="pages running at once (num_workers; default one per incident)")
    p.add_argument("--limit", type=int, default=None, help="max_texts_per_person (10; 3 with --quick)")
    p.add_argument("--window", type=float, default=None,
                   help="person_window in seconds (60; 20 with --quick)")
    p.add_argument("--escalate", type=float, default=None,
                   help="a page's twilio_escalate_after in seconds (10; 5 with --quick)")
    p.add_argument("--kind", nargs="+", choices=sorted(KINDS), default=["send", "page"],
                   help="which calls make the storm (default: send, then page)")
    args = p.parse_args(argv)
    args.incidents = args.incidents or (60 if args.quick else 200)
    args.duration = args.duration or (20.0 if args.quick else 60.0)
    args.window = args.window or (20.0 if args.quick else 60.0)
    args.limit = args.limit or (3 if args.quick else 10)
    args.escalate = args.escalate or (5.0 if args.quick else 10.0)
    args.page_workers = args.page_workers or args.incidents
    report = Report("bench_storm", args)
    report.line(f"{args.incidents} incidents in {args.duration:g} s, each texting (Send SMS, "
                f"{args.workers} workers) or paging (one tier, {args.page_workers} workers, ending "
                f"{args.escalate:g} s after the text) the same {len(PEOPLE)} people; limit {args.limit} "
                f"texts per {args.window:g} s, poll_interval {INTERVAL:g} s; the emulator fails texts beyond "
                "30 per pair in 30 s (14107)")
    scenarios = [Scenario(name, kind, sender, KINDS[kind], limited,
                          args.workers if kind == "send" else args.page_workers)
                 for kind, name, sender, limited in SCENARIOS if kind in args.kind]
    results: dict[tuple[str, bool], dict] = {}
    with twilio_emulator(numbers=[s.sender for s in scenarios]) as (emu, base_url):
        for scenario in scenarios:
            report.line(f"-- {scenario.name}")
            start = run_storm(scenario, base_url, args)
            end = time.monotonic()
            figures = measure(emu, scenario, start, end, args.window)
            results[scenario.kind, scenario.limited] = figures
            report.line("   " + json.dumps(figures))
    for kind in args.kind:
        summarise(report, kind, results[kind, True], results[kind, False], args)
    return report.finish()


def summarise(report: Report, kind: str, ours: dict, base: dict, args) -> None:
    """The figures and targets of one kind of call (2.3.0 against 2.2.0 in the same run)."""
    prefix = "" if kind == "send" else "page_"
    for figures, key in ((ours, "limited"), (base, "baseline")):
        for name, value in figures.items():
            if name != "scenario":
                report.figure(f"{prefix}{key}_{name}", value)
    what = "Send SMS" if kind == "send" else "pages"
    report.line(f"{what}: texts per person in the busiest {args.window:g} s: "
                f"{ours['texts_per_person_busiest_window']} "
                f"(2.2.0: {base['texts_per_person_busiest_window']}); incidents reaching each person: "
                f"{ours['incidents_reached_fewest']}/{args.incidents} "
                f"(2.2.0: {base['incidents_reached_fewest']}/{args.incidents}); failed with 14107: "
                f"{ours['failed_14107']} (2.2.0: {base['failed_14107']})")
    report.line(f"{what}: requests: {ours['creates']} creates and {ours['lists']} list requests "
                f"({ours['lists_per_interval']} per poll interval); 2.2.0: {base['creates']} creates, "
                f"{base['lists']} lists ({base['lists_per_interval']} per poll interval); an incident's "
                f"texts went out after median {ours['reached_median_s']} s, max {ours['reached_max_s']} s "
                f"(2.2.0: {base['reached_median_s']} s, {base['reached_max_s']} s); the last call ended "
                f"{ours['calls_ended_s']} s after the storm began (2.2.0: {base['calls_ended_s']} s)")
    label = "storm" if kind == "send" else "page storm"
    ratio = base["texts_per_person_busiest_window"] / max(1, ours["texts_per_person_busiest_window"])
    report.target(f"{label}: texts per person in the busiest window",
                  f"{ours['texts_per_person_busiest_window']} ({ratio:.1f}x fewer)", f"<= {args.limit}",
                  ours["texts_per_person_busiest_window"] <= args.limit)
    report.target(f"{label}: incidents reaching each person", f"{ours['incidents_reached_fewest']}",
                  f"= {args.incidents} (2.2.0: {base['incidents_reached_fewest']})",
                  ours["incidents_reached_fewest"] == args.incidents)
    report.target(f"{label}: texts failed with 14107", str(ours["failed_14107"]),
                  f"0 (2.2.0: {base['failed_14107']})", ours["failed_14107"] == 0)
    if kind == "send":   # the tracker's listing of the sender, which is also the limiter's view
        report.target(f"{label}: list requests per poll interval", f"{ours['lists_per_interval']:g}",
                      "<= 1.5", ours["lists_per_interval"] <= 1.5)
    else:   # the replies' and the tracker's listings, as 2.2.0's pages: the limit adds none of its own
        report.target(f"{label}: list requests per poll interval", f"{ours['lists_per_interval']:g}",
                      f"<= 2.2.0's ({base['lists_per_interval']:g})",
                      ours["lists_per_interval"] <= base["lists_per_interval"])
    if kind == "send" and (ours["reached_max_s"] or 0) > args.window + 4 * INTERVAL + 5:
        report.note("a call waited longer than a window: the workers were all held (raise --workers)")


if __name__ == "__main__":
    raise SystemExit(main())
