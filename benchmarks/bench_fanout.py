"""Benchmark 1, fan-out: one text to 100 recipients with 100 ms of Twilio latency per request.

App:      ``SendJob(settings, recipients, body).start()`` then ``wait()``, at ``max_concurrency`` 5 (the
          default) and 10: one twilio Client per worker thread, as twilio_send_sms does.
Baseline: the original 2.0.x send loop: one Client, one ``messages.create`` after another.
Both run in the same run against the same emulator (a separate process by default).

Figures: wall time of each mode, the ratio sequential / parallel (target >= 4.5x at concurrency 5,
i.e. 90% of the ideal 5x), and the app's overhead per request beyond the emulator's latency
(target < 5 ms), computed two ways:

* ``wall x concurrency / n - latency``: everything a worker slot spends per request that is not the
  injected latency (client, HTTP, the emulator's own handling, thread hand-offs);
* from the emulator's request records: ``(wall x concurrency - sum of request durations) / n``, the
  time per request spent outside the emulator (the client side only).

Usage: .venv/bin/python benchmarks/bench_fanout.py [--quick] [--n 100] [--latency 0.1]
"""
from __future__ import annotations

import bisect
import threading
import time

from _common import Report, median, parser, record_get, settings_for, twilio_emulator

from fn_twilio.lib.phone import parse_recipients
from fn_twilio.lib.sender import SendJob
from fn_twilio.lib.twilio_client import build_client

BODY = "Incident 2095 (High) may require your attention"


def numbers(n: int) -> list[str]:
    return [f"+3538612{i:05d}" for i in range(n)]


def creates_between(emu, t0: float, t1: float):
    """The emulator's POST …/Messages.json records that started within [t0, t1] (monotonic clock)."""
    out = []
    for r in emu.requests:
        if record_get(r, "method") == "POST" and record_get(r, "path").endswith("/Messages.json"):
            started = record_get(r, "started")
            if t0 <= started <= t1:
                out.append(r)
    return out


def response_to_next_request(records) -> list[float]:
    """For each create after the first wave: seconds from the latest earlier response to its start
    (the client-side turnaround of a worker: parse the answer, record it, build the next request)."""
    starts = sorted(record_get(r, "started") for r in records)
    finishes = sorted(record_get(r, "finished") for r in records if record_get(r, "finished") is not None)
    gaps = []
    for start in starts:
        earlier = bisect.bisect_right(finishes, start)
        if earlier:
            gaps.append(start - finishes[earlier - 1])
    return gaps


def durations(records) -> list[float]:
    return [record_get(r, "finished") - record_get(r, "started") for r in records
            if record_get(r, "finished") is not None]


def run_sequential(settings, targets) -> tuple[float, int]:
    """The 2.0.x model: one client, one create after another. Returns (wall seconds, successes)."""
    client = build_client(settings)
    ok = 0
    try:
        t0 = time.monotonic()
        for to in targets:
            message = client.messages.create(to=to, from_=settings.src_address, body=BODY)
            ok += bool(message.sid)
        wall = time.monotonic() - t0
    finally:
        client.http_client.close()
    return wall, ok


def run_job(settings, targets) -> tuple[float, int]:
    recipients = parse_recipients(",".join(targets))   # parsing is not timed: the component does it first
    t0 = time.monotonic()
    job = SendJob(settings, recipients, BODY).start()
    job.wait(None)
    wall = time.monotonic() - t0
    return wall, sum(1 for o in job.outcomes() if o.success)


def breakdown(emu, settings, targets, latency: float) -> dict:
    """One more SendJob run with the HTTP client's ``request()`` timed (a diagnostic, not a figure with a
    target): per request, where the time beyond the latency goes."""
    from twilio.http.http_client import TwilioHttpClient

    calls = []
    original = TwilioHttpClient.request

    def timed(self, *args, **kwargs):
        entered = time.monotonic()
        try:
            return original(self, *args, **kwargs)
        finally:
            calls.append((threading.get_ident(), entered, time.monotonic()))

    TwilioHttpClient.request = timed
    try:
        t0 = time.monotonic()
        wall, _ = run_job(settings, targets)
        records = creates_between(emu, t0, time.monotonic())
    finally:
        TwilioHttpClient.request = original
    between = []
    by_thread: dict = {}
    for ident, entered, left in sorted(calls, key=lambda c: c[1]):
        by_thread.setdefault(ident, []).append((entered, left))
    for spans in by_thread.values():
        between += [nxt[0] - prev[1] for prev, nxt in zip(spans, spans[1:])]
    first = min(c[1] for c in calls) - t0
    return {
        "wall": wall,
        "first_request_ms": 1000 * first,
        "emulator_ms": 1000 * (median(durations(records)) - latency),
        "http_ms": 1000 * (median([c[2] - c[1] for c in calls]) - median(durations(records))),
        "app_ms": 1000 * median(between),
    }


def main(argv=None) -> int:
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--n", type=int, default=None, help="recipients (default 100)")
    p.add_argument("--latency", type=float, default=0.1, help="emulator latency per request, s (default 0.1)")
    p.add_argument("--repeats", type=int, default=None,
                   help="runs per concurrency (default 3; 1 with --quick)")
    p.add_argument("--concurrency", type=int, nargs="+", default=None,
                   help="max_concurrency values (default 5 10; 5 with --quick)")
    p.add_argument("--inproc", action="store_true", help="run the emulator in this process")
    args = p.parse_args(argv)
    n = args.n or 100
    repeats = args.repeats or (1 if args.quick else 3)
    levels = args.concurrency or ([5] if args.quick else [5, 10])
    latency = args.latency
    report = Report("bench_fanout", args)
    report.line("{} recipients, emulator latency {:.0f} ms per request, emulator {}".format(
        n, latency * 1000, "in-process" if args.inproc else "in its own process"))
    targets = numbers(n)

    with twilio_emulator(latency=latency, inproc=args.inproc) as (emu, base_url):
        warm = settings_for(base_url)
        run_sequential(warm, targets[:2])           # imports and first connection out of the figures

        t0 = time.monotonic()
        seq_wall, seq_ok = run_sequential(warm, targets)
        seq_records = creates_between(emu, t0, time.monotonic())
        seq_dur = durations(seq_records)
        seq_overhead = seq_wall / n - latency
        report.line(f"baseline (2.0.x, sequential, one client): {seq_wall:.2f} s, {seq_ok}/{n} accepted, "
                    f"{seq_overhead * 1000:.2f} ms/request beyond latency")
        report.figure("sequential_wall_s", round(seq_wall, 3))
        report.figure("sequential_overhead_ms", round(seq_overhead * 1000, 2))

        for c in levels:
            settings = settings_for(base_url, max_concurrency=c)
            walls, overheads, outside, turnaround = [], [], [], []
            for _ in range(repeats):
                t0 = time.monotonic()
                wall, ok = run_job(settings, targets)
                records = creates_between(emu, t0, time.monotonic())
                dur = durations(records)
                walls.append(wall)
                overheads.append(wall * c / n - latency)
                outside.append((wall * c - sum(dur)) / n)
                turnaround.extend(response_to_next_request(records))
                report.line(f"  SendJob max_concurrency={c:<2}: {wall:.3f} s, {ok}/{n} accepted, "
                            f"{len(records)} creates seen, emulator time/request {1000 * median(dur):.1f} ms")
            wall = median(walls)
            ratio = seq_wall / wall
            ideal = min(c, n)
            overhead_ms = 1000 * median(overheads)
            outside_ms = 1000 * median(outside)
            report.line(f"max_concurrency {c}: median {wall:.3f} s over {repeats} run(s); "
                        f"sequential/parallel = {ratio:.2f}x (ideal {ideal}x, {100 * ratio / ideal:.0f}% of "
                        "ideal)")
            report.line(f"  app overhead per request beyond latency: {overhead_ms:.2f} ms (wall x c / n - "
                        f"latency); outside the emulator: {outside_ms:.2f} ms (from its request records)")
            report.line("  median worker turnaround (a response to that slot's next request): "
                        f"{1000 * median(turnaround):.2f} ms")
            report.figure(f"c{c}_wall_s", round(wall, 3))
            report.figure(f"c{c}_turnaround_ms", round(1000 * median(turnaround), 2))
            report.figure(f"c{c}_ratio", round(ratio, 2))
            report.figure(f"c{c}_overhead_ms", round(overhead_ms, 2))
            report.figure(f"c{c}_outside_emulator_ms", round(outside_ms, 2))
            if c == 5:
                report.target("fan-out speed-up at max_concurrency 5", f"{ratio:.2f}x", ">= 4.5x",
                              ratio >= 4.5)
                report.target("fan-out overhead per request (c=5)", f"{overhead_ms:.2f} ms", "< 5 ms",
                              overhead_ms < 5)
        report.figure("sequential_emulator_ms", round(1000 * median(seq_dur), 2))
        b = breakdown(emu, settings_for(base_url, max_concurrency=5), targets, latency)
        report.line("breakdown at max_concurrency 5 (one extra run, {:.3f} s, the SDK's HTTP call timed), "
                    "median per request beyond the latency:".format(b["wall"]))
        report.line("  {:.2f} ms in the emulator's handler (its JSON, store; Twilio's side)".format(
            b["emulator_ms"]))
        report.line("  {:.2f} ms in the twilio SDK's HTTP call outside the emulator's handler "
                    "(requests/urllib3, HTTP parsing on both sides, waiting for the GIL)".format(
                        b["http_ms"]))
        report.line("  {:.2f} ms between one request's return and the worker's next request (SendJob, "
                    "send_one, SDK resource objects)".format(b["app_ms"]))
        report.line("  {:.1f} ms from SendJob.start() to the first request "
                    "(pool, one client per thread)".format(b["first_request_ms"]))
        for key in ("emulator_ms", "http_ms", "app_ms", "first_request_ms"):
            report.figure("breakdown_" + key, round(b[key], 2))
    return report.finish()


if __name__ == "__main__":
    raise SystemExit(main())
