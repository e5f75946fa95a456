"""Benchmark 3, poll cost: 50 calls waiting at once, 10,000 older messages on the account.

App: 50 twilio_receive_messages calls (the receive component's own logic, see _receive_call.py), each
waiting on a different responder number, start together (released by a barrier, in random order)
and wait ``--duration`` s (20 s) with no reply; ``poll_interval`` 2 s. Before they start the account
holds 10,000 older messages of the sender: per responder, outbound SMS from the sender and inbound
replies to it, all older than the calls' ``since`` moments (which, as after one send to 50 people,
differ by a few tens of milliseconds each). The figure is the number of Twilio list requests the
emulator received while the calls waited, and whether any fetched a second page (``Page`` > 0 or
a ``PageToken`` in the query). Target: at most duration / poll_interval + 2 = 12, none of a second page.

Baseline (2.0.x): every call lists the sender's whole message history at every look (the SDK's
``messages.list()``, Twilio's default page size of 50), looking at once and then after each 30 s
sleep. A full listing is made for real here, by ``--baseline-calls`` calls (default 2; 1 with
--quick), and its request count is scaled to 50 calls: looks per call in the window =
1 + floor(duration / 30) (= 1 for 20 s). The same listing at the app's cadence (a look every
poll_interval) is printed too.

Part 2, bounded looks (contract §12): the sender holds ``--big-history`` (100,000) inbound messages
from ``--others`` (1,000) other numbers, and the call's own number has sent three. One call with no
``since`` moment looks once (wait 0); a second waits ``2 * poll_interval`` on the same sender while
a burst of new messages arrives. Targets: the first call costs at most 3 requests; no look of the
waiting call reads more than the page cap (``MAX_PAGES_PER_LOOK``). Baseline (2.0.x): a call with no
moment lists the sender's whole history (``messages.list()``, pages of 50), made for real here.

Usage: .venv/bin/python benchmarks/bench_poll_cost.py [--quick] [--calls 50] [--duration 20] [--history 10000]
       [--big-history 100000] [--others 1000]
"""
from __future__ import annotations

import math
import random
import threading
import time
from datetime import datetime, timedelta, timezone

from _common import Report, median, parser, record_get, settings_for, twilio_emulator
from _receive_call import ReceiveCall, receive_opts

from fn_twilio.lib.polling import MAX_PAGES_PER_LOOK
from fn_twilio.lib.replies import PAGE_SIZE, Ending, active_pollers
from fn_twilio.lib.twilio_client import build_client
from sandbox.twilio_emulator import SENDER

ORIGINAL_SLEEP = 30.0
BASELINE_PAGES = 20   # part 2: pages of the 2.0.x full listing read for real


def responder(i: int) -> str:
    return f"+35387200{i:04d}"


def is_list(record) -> bool:
    return record_get(record, "method") == "GET" and record_get(record, "path").endswith("/Messages.json")


def second_page(record) -> bool:
    query = record_get(record, "query") or {}
    pages = [int(v) for v in query.get("Page", []) if str(v).isdigit()]
    return bool(query.get("PageToken")) or any(p > 0 for p in pages)


def seed(emu, calls: int, history: int, newest: datetime) -> int:
    """About ``history`` messages, ending at ``newest``, one a second: for each responder in turn an
    outbound SMS from the sender and an inbound reply to it (``history // (2 * calls)`` of each)."""
    per = max(1, history // (2 * calls))
    step = timedelta(seconds=1)
    cycle = step * 2 * calls                      # every responder's pair once
    first = newest - cycle * per
    made = 0
    for i in range(calls):
        out_start = first + step * (2 * i)
        made += len(emu.seed_history(per, from_=SENDER, to=responder(i), direction="outbound-api",
                                     start=out_start, step=cycle))
        made += len(emu.seed_history(per, from_=responder(i), to=SENDER, direction="inbound",
                                     start=out_start + step, step=cycle))
    return made


def bounded_looks(emu, base_url: str, report: Report, history: int, others: int, interval: float) -> list:
    """Part 2: a call with no ``since`` on a sender with a long inbound history; returns its targets."""
    from fn_twilio.lib.replies import watch_replies

    emu.reset()
    per = max(1, history // others)
    start = datetime.now(timezone.utc) - timedelta(days=30)
    t = time.monotonic()
    for i in range(others):
        emu.seed_history(per, from_=f"+35387300{i:04d}", to=SENDER, direction="inbound",
                         start=start + timedelta(seconds=i), step=timedelta(seconds=others))
    mine = "+353871112222"
    emu.seed_history(3, from_=mine, to=SENDER, direction="inbound", start=start, step=timedelta(days=1))
    report.line(f"part 2: {per * others:,} inbound messages from {others:,} other numbers seeded in "
                f"{time.monotonic() - t:.1f} s; the call's number sent 3")

    opts = receive_opts(base_url, poll_interval=f"{interval}s")
    emu.clear_requests()
    _, outcome = ReceiveCall(opts).run({"twilio_phone_number": mine, "twilio_wait_timeout": "0s"})
    first = [r for r in emu.requests if is_list(r)]
    report.line(f"  app: a call with no since, wait 0: {len(first)} request(s), {len(outcome.replies)} "
                "repl(ies) found (its number's 3)")

    emu.clear_requests()
    settings = ReceiveCall(opts).settings
    with watch_replies(settings, mine, None) as watch:
        watch.wait_for_look(settings.timeout)
        for i in range(PAGE_SIZE * MAX_PAGES_PER_LOOK * 2):   # a burst larger than two looks can read
            emu.inject_inbound(from_=f"+35387300{i % others:04d}", to=SENDER, body="burst")
        t_end = time.monotonic() + 3 * interval
        while time.monotonic() < t_end:
            time.sleep(0.05)
        largest, made = watch._poller.largest_look, watch._poller.requests
    report.line(f"  app: a waiting call during a burst of {PAGE_SIZE * MAX_PAGES_PER_LOOK * 2:,} messages: "
                f"{made} requests over {3 * interval:g} s, the largest look {largest} request(s) (cap "
                f"{MAX_PAGES_PER_LOOK})")

    # the 2.0.x listing (messages.list(), pages of 50) made for real for its first pages; the whole
    # listing is one request per 50 messages of the sender's history
    emu.clear_requests()
    client = build_client(settings_for(base_url))
    t = time.monotonic()
    page, read = client.messages.page(page_size=50), 1
    while page.next_page_url and read < BASELINE_PAGES:
        page, read = page.next_page(), read + 1
    wall = time.monotonic() - t
    client.http_client.close()
    total = per * others + 3
    baseline = math.ceil(total / 50)
    report.line(f"  baseline (2.0.x, whole history per call): {baseline:,} requests for {total:,} messages "
                f"({read} read for real in {wall:.1f} s, about {wall * baseline / read:.0f} s for all); "
                f"ratio {baseline / max(1, len(first)):,.0f}x")
    report.figure("no_since_requests", len(first))
    report.figure("no_since_baseline_requests", baseline)
    report.figure("largest_look", largest)
    return [(f"bounded looks: requests of a call with no since ({per * others:,} messages, {others:,} "
             "numbers)", str(len(first)), "<= 3", len(first) <= 3),
            ("bounded looks: requests in the largest look", str(largest), f"<= {MAX_PAGES_PER_LOOK}",
             largest <= MAX_PAGES_PER_LOOK)]


def main(argv=None) -> int:
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--calls", type=int, default=50, help="calls waiting at once (default 50)")
    p.add_argument("--duration", type=float, default=None,
                   help="seconds the calls wait (default 20; 10 with --quick)")
    p.add_argument("--history", type=int, default=10000,
                   help="older messages on the account (default 10,000)")
    p.add_argument("--poll-interval", type=float, default=2.0, help="poll_interval in seconds (default 2)")
    p.add_argument("--baseline-calls", type=int, default=None,
                   help="full-history listings actually made for the baseline (default 2; 1 with --quick)")
    p.add_argument("--inproc", action="store_true", help="run the emulator in this process")
    p.add_argument("--big-history", type=int, default=None,
                   help="part 2: inbound messages on the sender (default 100,000; 10,000 with --quick)")
    p.add_argument("--others", type=int, default=1000, help="part 2: numbers they come from (default 1,000)")
    args = p.parse_args(argv)
    duration = args.duration or (10.0 if args.quick else 20.0)
    interval = args.poll_interval
    calls = args.calls
    baseline_calls = args.baseline_calls or (1 if args.quick else 2)
    rng = random.Random(args.seed)
    report = Report("bench_poll_cost", args)

    with twilio_emulator(inproc=args.inproc) as (emu, base_url):
        now = datetime.now(timezone.utc)
        send_time = now - timedelta(seconds=10)          # the 50 SMS went out 10 s ago
        t = time.monotonic()
        made = seed(emu, calls, args.history, newest=send_time - timedelta(minutes=1))
        report.line(f"{made} older messages seeded in {time.monotonic() - t:.1f} s ({calls} responders, "
                    "outbound and inbound, all older than the calls' moments)")
        report.line(f"{calls} calls waiting {duration:g} s at once, poll_interval {interval:g} s")

        opts = receive_opts(base_url, poll_interval=f"{interval}s")
        order = list(range(calls))
        rng.shuffle(order)
        barrier = threading.Barrier(calls + 1)
        results, errors = {}, []

        def call(i):
            since = send_time + timedelta(milliseconds=20 * i)    # each SMS's own creation moment
            inputs = {"twilio_phone_number": responder(i),
                      "twilio_date_sent": int(since.timestamp() * 1000), "twilio_date_sent_ts": None,
                      "twilio_wait_timeout": f"{duration:g}s"}
            try:
                barrier.wait()
                results[i] = ReceiveCall(opts).run(inputs)
            except BaseException as exc:
                errors.append(exc)

        threads = [threading.Thread(target=call, args=(i,), daemon=True) for i in order]
        for thread in threads:
            thread.start()
        emu.clear_requests()
        t0 = time.monotonic()
        barrier.wait()
        for thread in threads:
            thread.join(duration + 60)
        t1 = time.monotonic()
        deadline = time.monotonic() + 2 * interval
        while active_pollers() and time.monotonic() < deadline:   # let the poller stop
            time.sleep(0.05)
        if errors:
            raise errors[0]
        lists = [r for r in emu.requests if is_list(r)]
        deep = [r for r in lists if second_page(r)]
        timeouts = sum(1 for _, r in results.values() if r.ending == Ending.TIMED_OUT)
        target = int(duration / interval) + 2
        report.line(f"app: {len(results)} calls ended after {t1 - t0:.1f} s ({timeouts} with the timeout "
                    f"reason), {active_pollers()} poller(s) left running")
        report.line("  Twilio list requests: {} in all (target <= {:g} / {:g} + 2 = {}), {} fetched a second "
                    "page; median request {:.1f} ms".format(len(lists), duration, interval, target, len(deep),
                                                       1000 * median([record_get(r, "finished")
                                                                      - record_get(r, "started")
                                                                      for r in lists])))
        report.line("  request start times (s after the calls started): " + ", ".join(
            "{:.2f}".format(record_get(r, "started") - t0) for r in lists))
        queries = sorted({record_get(r, "query_string") for r in lists})
        shown = "; ".join(q.replace("%3E", ">").replace("%2B", "+").replace("%3A", ":") for q in queries[:3])
        report.line("  distinct queries: " + shown + (" ..." if len(queries) > 3 else ""))
        report.figure("app_requests", len(lists))
        report.figure("app_second_pages", len(deep))
        report.figure("calls", len(results))

        # Baseline: full-history listings, made for real by a few calls, scaled to all of them.
        settings = settings_for(base_url)
        emu.clear_requests()
        walls, per_listing = [], []
        for _ in range(baseline_calls):
            client = build_client(settings)
            before = len([r for r in emu.requests if is_list(r)])
            t = time.monotonic()
            listed = len(client.messages.list())
            walls.append(time.monotonic() - t)
            per_listing.append(len([r for r in emu.requests if is_list(r)]) - before)
            client.http_client.close()
        pages = median(per_listing)
        looks_original = 1 + math.floor(duration / ORIGINAL_SLEEP)
        looks_fast = math.ceil(duration / interval)
        base_total = calls * looks_original * pages
        fast_total = calls * looks_fast * pages
        report.line(f"baseline (2.0.x, full-history listing per call per look): one listing = {pages:g} "
                    f"requests ({listed} messages, {median(walls):.2f} s), measured on {baseline_calls} "
                    "call(s)")
        report.line(f"  30 s sleeps: {looks_original} look(s) per call in {duration:g} s -> {calls} calls x "
                    f"{looks_original} x {pages:g} = {base_total:,.0f} requests (scaled from the measured "
                    "listing)")
        report.line(f"  same listing at the app's cadence ({looks_fast} looks per call): {fast_total:,.0f} "
                    "requests")
        ratio = base_total / max(1, len(lists))
        report.line(f"ratio baseline/app: {ratio:,.0f}x fewer requests (vs the 30 s baseline); "
                    f"{fast_total / max(1, len(lists)):,.0f}x at the same cadence")
        report.figure("baseline_requests_per_listing", pages)
        report.figure("baseline_requests", base_total)
        report.figure("baseline_requests_same_cadence", fast_total)
        report.figure("ratio", round(ratio))
        bounded = bounded_looks(emu, base_url, report, args.big_history or (10000 if args.quick else 100000),
                                args.others, interval)
    report.target(f"poll cost: list requests, {calls} calls x {duration:g} s", str(len(lists)),
                  f"<= {target}", len(lists) <= target)
    report.target("poll cost: requests of a second page", str(len(deep)), "0", not deep)
    for target_args in bounded:
        report.target(*target_args)
    return report.finish()


if __name__ == "__main__":
    raise SystemExit(main())
