"""Benchmark 5, delivery status: the cost of tracking 100 messages, and how soon a final status arrives.

Part 1, cost: the sender sends ``--messages`` (100) SMS; the emulator's delivery schedule moves each
through queued -> sent -> delivered (``sent`` after ``--sent-after`` s, the receipt ``--delivered-after``
s later; a tenth of the numbers end ``undelivered`` 30003). Three calls of the app's wait loop
(``fn_twilio.lib.delivery.wait_for_statuses``, what twilio_get_message_status runs), one third of the
SIDs each, start together and wait until every message is final. The figures are the Twilio requests
(lists and fetches) the emulator received while they waited, per poll interval: the mean and the
largest count in any one interval. Target: at most 2 per interval.

Baseline, in the same run, on a fresh set of as many messages under the same schedule: each SID is
fetched every interval until it is final (``GET Messages/{Sid}.json``, as Splunk's Twilio connector
does, one fetch per message per interval).

Part 2, latency: a call waits on one message that is ``sent``; at a random moment the emulator makes it
``delivered`` (``set_status``); the figure is the time from that moment until the call returned with
the final status, over ``--trials`` trials (median and max). Target: at most poll_interval + 0.5 s.

The emulator runs in a process of its own. Usage: .venv/bin/python benchmarks/bench_delivery.py
[--quick] [--messages 100] [--interval 2] [--trials 10]
"""
from __future__ import annotations

import random
import threading
import time
from collections import Counter

from _common import Report, median, parser, record_get, settings_for, twilio_emulator

from fn_twilio.lib.delivery import wait_for_statuses
from fn_twilio.lib.polling import active_pollers
from fn_twilio.lib.records import FINAL_STATUSES
from fn_twilio.lib.twilio_client import build_client
from sandbox.twilio_emulator import SENDER

CALLS = 3


def recipient(batch: int, i: int) -> str:
    return f"+3538{7 + batch}{200000 + i:06d}"


def is_read(record) -> bool:
    path = record_get(record, "path")
    return record_get(record, "method") == "GET" and "/Messages" in path


def send_all(client, batch: int, count: int, emu) -> list[str]:
    for i in range(0, count, 10):
        emu.set_delivery_outcome(recipient(batch, i), "undelivered", error_code=30003)
    return [client.messages.create(to=recipient(batch, i), from_=SENDER, body="benchmark").sid
            for i in range(count)]


def per_interval(emu, started: float, interval: float) -> tuple[int, list[int]]:
    """(read requests in all, read requests in each interval since ``started``)."""
    reads = [r for r in emu.requests if is_read(r)]
    bins = Counter(int((record_get(r, "started") - started) // interval) for r in reads)
    last = max(bins) if bins else 0
    return len(reads), [bins.get(k, 0) for k in range(last + 1)]


def app_tracking(emu, settings, sids: list[str], timeout: float) -> dict:
    parts = [sids[i::CALLS] for i in range(CALLS)]
    outcomes: list = [None] * CALLS
    barrier = threading.Barrier(CALLS)

    def call(k: int) -> None:
        barrier.wait()
        outcomes[k] = wait_for_statuses(settings, parts[k], time.monotonic() + timeout)

    emu.clear_requests()
    started = time.monotonic()
    threads = [threading.Thread(target=call, args=(k,)) for k in range(CALLS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.monotonic() - started
    total, bins = per_interval(emu, started, settings.poll_interval)
    statuses = [s for o in outcomes for s in o.statuses]
    return {"elapsed": elapsed, "requests": total, "bins": bins, "final": sum(s.final for s in statuses),
            "count": len(statuses), "undelivered": sum(s.status == "undelivered" for s in statuses)}


def baseline_tracking(emu, client, sids: list[str], interval: float, timeout: float) -> dict:
    """Fetch each SID every interval until it is final (one request per message per interval)."""
    emu.clear_requests()
    started = time.monotonic()
    pending = list(sids)
    while pending and time.monotonic() - started < timeout:
        look = time.monotonic()
        pending = [sid for sid in pending if client.messages(sid).fetch().status not in FINAL_STATUSES]
        if pending:
            time.sleep(max(0.0, interval - (time.monotonic() - look)))
    elapsed = time.monotonic() - started
    total, bins = per_interval(emu, started, interval)
    return {"elapsed": elapsed, "requests": total, "bins": bins, "left": len(pending)}


def one_trial(emu, settings, client, n: int, pause: float) -> float | None:
    """Seconds from the message turning ``delivered`` to the waiting call returning with it."""
    sid = client.messages.create(to=recipient(3, n), from_=SENDER, body="latency").sid
    emu.set_status(sid, "sent")
    result: dict = {}

    def call() -> None:
        outcome = wait_for_statuses(settings, [sid], time.monotonic() + 60)
        result["returned"] = time.monotonic()
        result["status"] = outcome.statuses[0].status

    thread = threading.Thread(target=call)
    thread.start()
    time.sleep(pause)
    turned = time.monotonic()
    emu.set_status(sid, "delivered")
    thread.join(60)
    while active_pollers():
        time.sleep(0.02)
    return result["returned"] - turned if result.get("status") == "delivered" else None


def latency_trials(emu, settings, client, trials: int, rng: random.Random) -> list[float]:
    emu.delivery_schedule = None
    # the status turns final at a random moment of the call's second interval
    delays = [one_trial(emu, settings, client, n, settings.poll_interval * (1 + rng.random()))
              for n in range(trials)]
    return [d for d in delays if d is not None]


def main(argv=None) -> int:
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--messages", type=int, default=100)
    p.add_argument("--interval", type=float, default=None,
                   help="poll_interval in seconds (2; 1 with --quick)")
    p.add_argument("--sent-after", type=float, default=None)
    p.add_argument("--delivered-after", type=float, default=None)
    p.add_argument("--trials", type=int, default=None)
    args = p.parse_args(argv)
    interval = args.interval or (1.0 if args.quick else 2.0)
    sent_after = args.sent_after if args.sent_after is not None else (1.0 if args.quick else 3.0)
    delivered_after = args.delivered_after if args.delivered_after is not None \
        else (2.0 if args.quick else 6.0)
    trials = args.trials or (5 if args.quick else 10)
    rng = random.Random(args.seed)
    report = Report("delivery", args)
    with twilio_emulator() as (emu, base_url):
        settings = settings_for(base_url, poll_interval=f"{interval}s", max_wait_timeout="1h")
        client = build_client(settings)
        timeout = (sent_after + delivered_after) * 3 + 30

        emu.deliver_after(sent_after=sent_after, delivered_after=delivered_after)
        app = app_tracking(emu, settings, send_all(client, 0, args.messages, emu), timeout)
        intervals = max(1.0, app["elapsed"] / interval)
        mean, most = app["requests"] / intervals, max(app["bins"] or [0])
        report.figure("app", app, "app: {} calls tracked {} messages ({} final, {} undelivered) in {:.1f} s "
                      "with {} requests: {:.2f} per interval, at most {} in one interval".format(
                          CALLS, app["count"], app["final"], app["undelivered"], app["elapsed"],
                          app["requests"], mean, most))

        emu.deliver_after(sent_after=sent_after, delivered_after=delivered_after)
        base = baseline_tracking(emu, client, send_all(client, 1, args.messages, emu), interval, timeout)
        base_intervals = max(1.0, base["elapsed"] / interval)
        base_mean, base_most = base["requests"] / base_intervals, max(base["bins"] or [0])
        report.figure("baseline", base, "baseline (a fetch per message per interval): {} requests in "
                      "{:.1f} s: "
                      "{:.1f} per interval, at most {} in one interval".format(
                          base["requests"], base["elapsed"], base_mean, base_most))
        ratio = base["requests"] / app["requests"] if app["requests"] else float("inf")
        report.line(f"ratio: the baseline made {ratio:.1f}x the app's requests")
        report.target("delivery: requests per interval, 100 messages, 3 calls",
                      f"{most} max ({mean:.2f} mean)", "at most 2", most <= 2)
        report.target("delivery: baseline requests per interval", f"{base_most} max", "(100)", None)

        delays = latency_trials(emu, settings, client, trials, rng)
        if delays:
            report.figure("latency", delays, f"final status reaching the waiting call, {len(delays)} trials: "
                          f"median {median(delays):.2f} s, max {max(delays):.2f} s "
                          f"(poll_interval {interval:g} s)")
            limit = interval + 0.5
            report.target("delivery: final status to the waiting call",
                          f"{median(delays):.2f} / {max(delays):.2f} s", f"max {limit:g} s",
                          max(delays) <= limit)
        else:
            report.note("no latency trial ended delivered")
    return report.finish()


if __name__ == "__main__":
    raise SystemExit(main())
