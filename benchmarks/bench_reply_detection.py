"""Benchmark 2, reply detection: how soon a waiting twilio_receive_messages call has a reply.

Each trial starts one call of the receive component's own logic
(``ReceiveMessagesComponent.receive``: input parsing, ``watch_replies``, the wait loop, the
FunctionResult) with ``poll_interval`` 2 s, on a stand-in for the resilient-circuits component
(real opts and status messages; the SOAR workflow-status check answers "not terminated", with no
REST call). A reply is injected into the Twilio emulator at a moment drawn uniformly from the first
``--window`` seconds of the wait (default 3 poll intervals: the poll schedule repeats every interval,
so this covers every phase evenly); the figure is the time from the injection to the call yielding
its FunctionResult with the reply.

Trials run in ``--lanes`` parallel lanes (default 4), each lane with its own sender number and so its
own reply poller, to keep the run short; trials within a lane run one after another.

Baseline (2.0.x): look at once, then ``sleep(30)`` between looks. A reply arriving at moment ``u`` of
the wait is seen at the first look at or after ``u``: delay = ``30 * ceil(u / 30) - u`` plus one
look's request time (measured here). Simulated with the same number of trials (moments uniform over
the 2.0.1 default wait of 120 s) and with 100,000 draws; analytically the median is 15 s and the
maximum 30 s.

Targets: median <= 1.5 s, maximum <= poll_interval + 0.5 s.

Usage: .venv/bin/python benchmarks/bench_reply_detection.py [--quick] [--trials 20] [--lanes 4]
"""
from __future__ import annotations

import math
import random
import threading
import time
from datetime import datetime, timezone

from _common import Report, median, parser, record_get, twilio_emulator
from _receive_call import ReceiveCall, receive_opts

from fn_twilio.lib.replies import Ending

ORIGINAL_SLEEP = 30.0         # the 2.0.x fixed sleep between looks
ORIGINAL_DEFAULT_WAIT = 120.0  # the 2.0.1 default twilio_wait_timeout


def lane_sender(lane: int) -> str:
    return f"+1415555{2300 + lane:04d}"


def responder(lane: int, trial: int) -> str:
    return f"+3538710{lane}{trial:04d}"


def run_lane(emu, base_url, lane: int, trials: int, window: float, interval: float, rng: random.Random,
             out: list, errors: list):
    sender = lane_sender(lane)
    opts = receive_opts(base_url, sender, poll_interval=f"{interval}s")
    try:
        for trial in range(trials):
            number = responder(lane, trial)
            delay = rng.uniform(0.0, window)
            since_ms = int(datetime.now(timezone.utc).timestamp() * 1000)
            inputs = {"twilio_phone_number": number, "twilio_date_sent": since_ms,
                      "twilio_date_sent_ts": None,
                      "twilio_wait_timeout": f"{int(window + 30)}s"}
            box = {}

            def call(box=box, inputs=inputs):
                try:
                    box["done"], box["result"] = ReceiveCall(opts).run(inputs)
                except BaseException as exc:  # reported by the lane
                    box["error"] = exc

            started = time.monotonic()
            thread = threading.Thread(target=call, name=f"receive-{lane}-{trial}", daemon=True)
            thread.start()
            time.sleep(max(0.0, started + delay - time.monotonic()))
            injected = time.monotonic()
            emu.inject_inbound(number, sender, f"ACK {trial}")
            thread.join(window + 60)
            if "error" in box or "done" not in box:
                raise RuntimeError("trial {}/{}: {}".format(lane, trial, box.get("error", "no result")))
            outcome = box["result"]         # replies.collect()'s outcome record
            replies = outcome.replies
            success = outcome.ending == Ending.REPLIED
            out.append({"lane": lane, "trial": trial, "at": injected - started,
                        "detect": box["done"] - injected,
                        "success": success, "replies": len(replies or [])})
    except BaseException as exc:
        errors.append(exc)


def original_delay(u: float, look: float) -> float:
    """2.0.x: looks at 0, 30, 60, ... (each after a look of ``look`` s); the reply at ``u`` is seen by
    the first look that starts at or after ``u``."""
    period = ORIGINAL_SLEEP + look
    return period * math.ceil(u / period) - u + look


def main(argv=None) -> int:
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--trials", type=int, default=None, help="trials (default 20; 8 with --quick)")
    p.add_argument("--lanes", type=int, default=4,
                   help="parallel lanes, one sender and poller each (default 4)")
    p.add_argument("--poll-interval", type=float, default=2.0, help="poll_interval in seconds (default 2)")
    p.add_argument("--window", type=float, default=None,
                   help="replies are injected uniformly within this many seconds of the wait "
                        "(default 3 x poll interval)")
    p.add_argument("--inproc", action="store_true", help="run the emulator in this process")
    args = p.parse_args(argv)
    trials = args.trials or (8 if args.quick else 20)
    lanes = max(1, min(args.lanes, trials))
    interval = args.poll_interval
    window = args.window or 3 * interval
    rng = random.Random(args.seed)
    report = Report("bench_reply_detection", args)
    report.line(f"{trials} trials in {lanes} lanes, poll_interval {interval:g} s, reply injected uniformly "
                f"within the first {window:g} s of the wait")

    per_lane = [trials // lanes + (1 if i < trials % lanes else 0) for i in range(lanes)]
    senders = [lane_sender(i) for i in range(lanes)]
    with twilio_emulator(numbers=senders, inproc=args.inproc) as (emu, base_url):
        out, errors, threads = [], [], []
        for lane, count in enumerate(per_lane):
            lane_rng = random.Random(rng.random())
            thread = threading.Thread(target=run_lane, args=(emu, base_url, lane, count, window, interval,
                                                             lane_rng, out, errors), daemon=True)
            thread.start()
            threads.append(thread)
            time.sleep(interval / lanes)    # spread the lanes' poll schedules
        for thread in threads:
            thread.join()
        if errors:
            raise errors[0]
        lists = [r for r in emu.requests if record_get(r, "method") == "GET"
                 and record_get(r, "path").endswith("/Messages.json")]
        look_times = [record_get(r, "finished") - record_get(r, "started") for r in lists
                      if record_get(r, "finished") is not None]

    detect = sorted(r["detect"] for r in out)
    ok = sum(1 for r in out if r["success"] and r["replies"] == 1)
    med, worst = median(detect), max(detect)
    look = median(look_times)
    report.line("trials: " + ", ".join(f"{d:.2f}" for d in detect) + " s")
    report.line(f"app (poll_interval {interval:g} s): median {med:.3f} s, max {worst:.3f} s, mean "
                f"{sum(detect) / len(detect):.3f} s; {ok}/{len(out)} calls returned success with exactly the "
                "one reply")
    report.line(f"  list requests made: {len(lists)}, median duration {1000 * look:.1f} ms")
    report.figure("trials", len(out))
    report.figure("median_s", round(med, 3))
    report.figure("max_s", round(worst, 3))
    report.figure("successes", ok)

    # The 2.0.x model, simulated: same number of trials, and a large sample.
    base_rng = random.Random(rng.random())
    same = sorted(original_delay(base_rng.uniform(0, ORIGINAL_DEFAULT_WAIT), look) for _ in range(len(out)))
    big = sorted(original_delay(base_rng.uniform(0, ORIGINAL_DEFAULT_WAIT), look) for _ in range(100000))
    report.line(f"baseline (2.0.x, 30 s fixed sleep, simulated): {len(same)} trials median "
                f"{median(same):.2f} s, max {max(same):.2f} s; 100,000 draws median {median(big):.2f} s, max "
                f"{max(big):.2f} s (analytic: 15 s, 30 s)")
    ratio_med = median(big) / med
    ratio_max = max(big) / worst
    report.line(f"ratio baseline/app: median {ratio_med:.1f}x, max {ratio_max:.1f}x")
    report.figure("baseline_median_s", round(median(big), 2))
    report.figure("baseline_max_s", round(max(big), 2))
    report.figure("ratio_median", round(ratio_med, 1))
    report.target("reply detection median", f"{med:.2f} s", "<= 1.5 s", med <= 1.5)
    report.target("reply detection max", f"{worst:.2f} s", f"<= {interval + 0.5:g} s",
                  worst <= interval + 0.5)
    if ok != len(out):
        report.note(f"{len(out) - ok} of {len(out)} calls did not return exactly one reply with success")
    return report.finish()


if __name__ == "__main__":
    raise SystemExit(main())
