"""Benchmark 7, voice: the Twilio requests it costs to follow K calls in progress, per poll interval.

The app: K calls (``--calls``, 20; 10 with ``--quick``) are started as executions of the app's Studio
flow (``fn_twilio.lib.voice.start_calls``); each called number rings ``--ring`` s, answers, and presses
1 at a random moment of the next few intervals, so the calls end one by one. The shared call watcher
follows them (``fn_twilio.lib.voice.wait_for_calls``: one list of the flow's executions per interval,
then a context fetch for each execution that ended or changed). The figures are the Studio read
requests the emulator received while the calls were followed, per poll interval: the mean and the
largest count in any one interval. Target: at most 1 + K.

The page: K people in one tier of a page, all written ``voice:<number>`` (``fn_twilio.lib.paging.Page``,
as ``twilio_page`` runs it): all but one press 2 at a random moment of the next few intervals and the last
presses 1 after them, so K calls are in progress for several intervals while the page also waits for
replies. The figures are the Studio read requests per interval while the page ran (and, apart, the
Messages list requests of its replies).

Baseline, in the same run, on as many calls under the same scripts: each call is followed on its own,
fetching its execution and its context every interval until it ends (2 requests per call per
interval: what a page that follows each call by itself would cost).

The emulator runs in a process of its own. Usage: .venv/bin/python benchmarks/bench_voice.py
[--quick] [--calls 20] [--interval 2] [--ring 2]
"""
from __future__ import annotations

import random
import time
from collections import Counter

from _common import Report, parser, record_get, settings_for, twilio_emulator

from fn_twilio.lib.intents import ack_request
from fn_twilio.lib.paging import Page, parse_tiers
from fn_twilio.lib.twilio_client import build_client
from fn_twilio.lib.voice import ensure_flow, read_context, start_calls, wait_for_calls

TEXT = "Incident 2101 Phishing wave (High) needs you"


def number(batch: int, i: int) -> str:
    return f"+3538{6 + batch}{300000 + i:06d}"


def is_studio_read(record) -> bool:
    return record_get(record, "method") == "GET" and record_get(record, "path").startswith("/v2/Flows/")


def is_message_list(record) -> bool:
    return record_get(record, "method") == "GET" and record_get(record, "path").endswith("/Messages.json")


def per_interval(emu, started: float, interval: float, which=is_studio_read) -> tuple[int, list[int]]:
    """(Studio read requests in all, in each interval since ``started``)."""
    reads = [r for r in emu.requests if which(r)]
    bins = Counter(int((record_get(r, "started") - started) // interval) for r in reads)
    last = max(bins) if bins else 0
    return len(reads), [bins.get(k, 0) for k in range(last + 1)]


def script(emu, batch: int, calls: int, ring: float, interval: float, rng: random.Random) -> list[str]:
    numbers = [number(batch, i) for i in range(calls)]
    for n in numbers:
        emu.script_calls(n, "answer", press="1", ring=ring, press_after=interval * (1 + 4 * rng.random()))
    return numbers


def app_following(emu, settings, flow, numbers: list[str], timeout: float) -> dict:
    starts = start_calls(settings, flow, numbers, TEXT, "2101")
    placed = [s.placed for s in starts if s.started]
    emu.clear_requests()
    started = time.monotonic()
    reports, failure = wait_for_calls(settings, placed, time.monotonic() + timeout)
    elapsed = time.monotonic() - started
    total, bins = per_interval(emu, started, settings.poll_interval)
    return {"elapsed": elapsed, "requests": total, "bins": bins, "calls": len(placed),
            "acknowledged": sum(r.acknowledged for r in reports),
            "failure": failure.message if failure else None}


def page_script(emu, batch: int, calls: int, ring: float, interval: float, rng: random.Random) -> list[str]:
    """All but the last press 2 at a random moment of the next few intervals; the last presses 1 after."""
    numbers = [f"+35383{1000000 * batch + i:07d}" for i in range(calls)]   # valid numbers: a page reads them
    for n in numbers[:-1]:
        emu.script_calls(n, "answer", press="2", ring=ring, press_after=interval * (1 + 4 * rng.random()))
    emu.script_calls(numbers[-1], "answer", press="1", ring=ring, press_after=interval * 6)
    return numbers


def page_following(emu, settings, flow, numbers: list[str], timeout: float) -> dict:
    """One page whose tier calls every number: what following its calls costs, per interval."""
    tiers = parse_tiers(", ".join(f"voice:{n}" for n in numbers))
    page = Page(settings, tiers, TEXT + ack_request("2101"), "2101", escalate_after=timeout, max_wait=timeout,
                flow=flow, call_text=TEXT)
    emu.clear_requests()
    started = time.monotonic()
    outcome = page.run()
    elapsed = time.monotonic() - started
    total, bins = per_interval(emu, started, settings.poll_interval)
    lists, list_bins = per_interval(emu, started, settings.poll_interval, is_message_list)
    return {"elapsed": elapsed, "requests": total, "bins": bins, "calls": len(page.outcome.pages),
            "acknowledged_by": outcome.acknowledged_by, "expected": numbers[-1],
            "declined": sum(1 for e in outcome.timeline if e.event == "declined"),
            "message_lists": lists, "message_list_bins": list_bins}


def baseline_following(emu, settings, flow, numbers: list[str], timeout: float) -> dict:
    """Each call fetches its own execution and context every interval until it has ended."""
    client = build_client(settings)
    placed = [s.placed for s in start_calls(settings, flow, numbers, TEXT, "2101") if s.started]
    emu.clear_requests()
    started = time.monotonic()
    pending, acknowledged = list(placed), 0
    while pending and time.monotonic() - started < timeout:
        look = time.monotonic()
        still = []
        for call in pending:
            execution = client.studio.v2.flows(call.flow_sid).executions(call.execution_sid)
            status = execution.fetch().status
            report = read_context(call, execution.execution_context().fetch().context,
                                  execution_ended=status == "ended")
            if report.ended:
                acknowledged += report.acknowledged
            else:
                still.append(call)
        pending = still
        if pending:
            time.sleep(max(0.0, settings.poll_interval - (time.monotonic() - look)))
    elapsed = time.monotonic() - started
    total, bins = per_interval(emu, started, settings.poll_interval)
    return {"elapsed": elapsed, "requests": total, "bins": bins, "calls": len(placed),
            "acknowledged": acknowledged, "left": len(pending)}


def main(argv=None) -> int:
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--calls", type=int, default=None,
                   help="calls in progress at once (20; 10 with --quick)")
    p.add_argument("--interval", type=float, default=None,
                   help="poll_interval in seconds (2; 1 with --quick)")
    p.add_argument("--ring", type=float, default=None, help="seconds each call rings (2; 1 with --quick)")
    args = p.parse_args(argv)
    calls = args.calls or (10 if args.quick else 20)
    interval = args.interval or (1.0 if args.quick else 2.0)
    ring = args.ring if args.ring is not None else (1.0 if args.quick else 2.0)
    rng = random.Random(args.seed)
    report = Report("voice", args)
    with twilio_emulator() as (emu, base_url):
        settings = settings_for(base_url, poll_interval=f"{interval}s", max_concurrency=10)
        flow = ensure_flow(build_client(settings), settings)
        timeout = ring + interval * 10 + 30

        app = app_following(emu, settings, flow, script(emu, 0, calls, ring, interval, rng), timeout)
        intervals = max(1.0, app["elapsed"] / interval)
        mean, most = app["requests"] / intervals, max(app["bins"] or [0])
        report.figure("app", app, "app: the shared call watcher followed {} calls ({} acknowledged) for "
                      "{:.1f} s with {} Studio requests: {:.2f} per interval, at most {} in one "
                      "interval{}".format(
                          app["calls"], app["acknowledged"], app["elapsed"], app["requests"], mean, most,
                          f" (failure: {app['failure']})" if app["failure"] else ""))

        page = page_following(emu, settings, flow, page_script(emu, 1, calls, ring, interval, rng), timeout)
        page_intervals = max(1.0, page["elapsed"] / interval)
        page_mean, page_most = page["requests"] / page_intervals, max(page["bins"] or [0])
        report.figure("page", page, "page: one tier calling {} people ({} declined, acknowledged by the "
                      "last: {}) ran {:.1f} s with {} Studio requests: {:.2f} per interval, at most {} in "
                      "one interval; its replies cost {} Messages list requests (at most {} in one "
                      "interval)".format(
                          page["calls"], page["declined"], page["acknowledged_by"] == page["expected"],
                          page["elapsed"], page["requests"], page_mean, page_most, page["message_lists"],
                          max(page["message_list_bins"] or [0])))

        base = baseline_following(emu, settings, flow, script(emu, 1, calls, ring, interval, rng), timeout)
        base_intervals = max(1.0, base["elapsed"] / interval)
        base_mean, base_most = base["requests"] / base_intervals, max(base["bins"] or [0])
        report.figure("baseline", base, "baseline (each call fetches its execution and context every "
                      "interval): {} calls ({} acknowledged) for {:.1f} s with {} requests: {:.2f} per "
                      "interval, at most {} in one interval".format(
                          base["calls"], base["acknowledged"], base["elapsed"], base["requests"], base_mean,
                          base_most))
        ratio = base["requests"] / app["requests"] if app["requests"] else float("inf")
        report.line(f"ratio: the baseline made {ratio:.1f}x the app's requests "
                    f"({base_most} vs {most} at most in one interval)")
        page_ratio = base_mean / page_mean if page_mean else float("inf")
        report.line(f"ratio: per interval, the baseline made {page_ratio:.1f}x the page's Studio requests "
                    f"({base_mean:.2f} vs {page_mean:.2f} mean; {base_most} vs {page_most} at most)")
        report.target(f"voice: requests per interval, {calls} calls", f"{most} max ({mean:.2f} mean)",
                      f"at most {1 + calls}", most <= 1 + calls)
        report.target(f"voice: a page calling {calls} people, Studio requests per interval",
                      f"{page_most} max ({page_mean:.2f} mean)", f"at most {1 + calls}",
                      page_most <= 1 + calls and page["acknowledged_by"] == page["expected"])
        report.target("voice: baseline requests per interval", f"{base_most} max", f"({2 * calls})", None)
    return report.finish()


if __name__ == "__main__":
    raise SystemExit(main())
