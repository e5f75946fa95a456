"""Benchmark 5, paging: how punctually a page escalates, how soon an acknowledgement ends it, and what
a long page costs in list requests.

Each run is one page of the escalation engine (``fn_twilio.lib.paging.Page``, the engine twilio_page
calls) against the Twilio emulator in a process of its own, ``poll_interval`` 2 s, real clock:

1. **Escalation.** Two tiers of one person, ``escalate_after`` E (default 7 s). The figure is how late
   tier 2 goes out after its due time (tier 1 paged + E), from the engine's own status messages.
   Target: within poll_interval + 0.5 s (median and max over the runs).
2. **Acknowledgement.** In the same run, once tier 2 is paged, its person answers "ack" at a moment
   drawn uniformly from the next 3 poll intervals; the figure is the time from the reply reaching
   Twilio to the page returning acknowledged. Targets: median <= 1.5 s, max <= 2.5 s.
3. **Cost.** A page of 3 tiers x 3 people waiting ``--cost-wait`` s (default 60) with no reply, and at
   the same time, on another sender, one waiting receive call (``replies.collect``) of the same length.
   Target: the page makes no more list requests than the receive call plus one per tier.

Runs go in ``--lanes`` parallel lanes (one sender and reply poller each) to keep the benchmark short.

Baseline (2.0.x, in the same run, simulated): 2.0.x cannot page; a workflow that escalates with its
Get Responses (looks 30 s apart, the wait ending at the first look after it times out) pages the next
tier up to 30 s late, and sees an acknowledgement 15 s late on average (30 s at worst); each of its
waiting calls lists the sender's whole history at every look.

Usage: .venv/bin/python benchmarks/bench_paging.py [--quick] [--runs 10] [--lanes 5] [--cost-wait 60]
"""
from __future__ import annotations

import math
import random
import threading
import time

from _common import Report, median, parser, record_get, settings_for, twilio_emulator

from fn_twilio.lib.intents import ack_request
from fn_twilio.lib.paging import Page, parse_tiers
from fn_twilio.lib.replies import collect

ORIGINAL_SLEEP = 30.0
CODE = "2095"
BODY = "Incident 2095 needs you." + ack_request(CODE)


def lane_sender(lane: int) -> str:
    return f"+1415555{2400 + lane:04d}"


def person(lane: int, run: int, tier: int, index: int = 0) -> str:
    return f"+35387{lane}{tier}{index}{0}{run:03d}"


class TimedPage:
    """A Page whose status messages are stamped with time.monotonic() as they come."""

    def __init__(self, settings, tiers_text: str, escalate_after: float, max_wait: float):
        self.stamps: list[tuple[float, str]] = []
        self.page = Page(settings, parse_tiers(tiers_text), BODY, CODE, escalate_after=escalate_after,
                         max_wait=max_wait,
                         progress=lambda text: self.stamps.append((time.monotonic(), text)))

    def at(self, prefix: str) -> float | None:
        return next((t for t, text in self.stamps if text.startswith(prefix)), None)

    def wait_for(self, prefix: str, timeout: float) -> float:
        deadline = time.monotonic() + timeout
        while (stamp := self.at(prefix)) is None:
            if time.monotonic() > deadline:
                raise TimeoutError(f"no status starting {prefix!r}; had {self.stamps}")
            time.sleep(0.01)
        return stamp


def escalation_lane(emu, base_url, lane: int, runs: int, escalate: float, interval: float,
                    rng: random.Random, out: list, errors: list) -> None:
    sender = lane_sender(lane)
    settings = settings_for(base_url, twilio_src_address=sender, poll_interval=f"{interval}s")
    try:
        for run in range(runs):
            first, second = person(lane, run, 1), person(lane, run, 2)
            timed = TimedPage(settings, f"{first}; {second}", escalate, escalate * 4)
            box = {}
            def run_page(box=box, timed=timed):
                box.setdefault("outcome", timed.page.run())

            thread = threading.Thread(target=run_page, daemon=True)
            thread.start()
            paged_1 = timed.wait_for("Tier 1: paged", 60)
            paged_2 = timed.wait_for("Tier 2: paged", escalate + 60)
            time.sleep(rng.uniform(0.0, 3 * interval))
            injected = time.monotonic()
            emu.inject_inbound(second, sender, "ack")
            thread.join(60)
            ended = timed.at("Acknowledged by")
            outcome = box.get("outcome")
            if outcome is None or ended is None:
                raise RuntimeError(f"run {lane}/{run} did not end acknowledged: {timed.stamps}")
            out.append({"late": paged_2 - paged_1 - escalate, "ack": ended - injected,
                        "success": outcome.success and outcome.acknowledged_by == second})
    except BaseException as exc:  # reported by main
        errors.append(exc)


def lists_for(emu, sender: str) -> int:
    return sum(1 for r in emu.requests if record_get(r, "method") == "GET"
               and record_get(r, "path").endswith("/Messages.json")
               and (record_get(r, "query") or {}).get("To") == [sender])


def cost(emu, base_url, wait: float, interval: float) -> tuple[int, int, int]:
    """(list requests of the 3x3 page, of one waiting receive call, tiers paged) over ``wait`` s."""
    page_sender, receive_sender = lane_sender(90), lane_sender(91)
    page_settings = settings_for(base_url, twilio_src_address=page_sender, poll_interval=f"{interval}s")
    receive_settings = settings_for(base_url, twilio_src_address=receive_sender,
                                    poll_interval=f"{interval}s")
    tiers = "; ".join(", ".join(person(9, 0, t, i) for i in range(3)) for t in range(1, 4))
    page = Page(page_settings, parse_tiers(tiers), BODY, CODE, escalate_after=wait / 3, max_wait=wait)
    box = {}
    receiving = threading.Thread(target=lambda: box.setdefault("receive", collect(
        receive_settings, [person(9, 1, 1)], None, time.monotonic() + wait)), daemon=True)
    receiving.start()
    outcome = page.run()
    receiving.join(wait + 30)
    return lists_for(emu, page_sender), lists_for(emu, receive_sender), len({p.tier for p in outcome.pages})


def baseline_late(escalate: float, rng: random.Random, n: int) -> list[float]:
    """2.0.x: looks at 0, 30, 60, ...; a wait of ``escalate`` s ends at the first look at or after it,
    started at a random phase of the looks."""
    out = []
    for _ in range(n):
        phase = rng.uniform(0, ORIGINAL_SLEEP)
        end = ORIGINAL_SLEEP * math.ceil((escalate + phase) / ORIGINAL_SLEEP) - phase
        out.append(end - escalate)
    return out


def main(argv=None) -> int:
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--runs", type=int, default=None, help="escalation runs (default 10; 4 with --quick)")
    p.add_argument("--lanes", type=int, default=5, help="parallel lanes (default 5)")
    p.add_argument("--poll-interval", type=float, default=2.0, help="poll_interval in seconds (default 2)")
    p.add_argument("--escalate-after", type=float, default=7.0, help="escalate_after in seconds (default 7)")
    p.add_argument("--cost-wait", type=float, default=None,
                   help="how long the cost page waits (default 60 s; 20 s with --quick)")
    args = p.parse_args(argv)
    runs = args.runs or (4 if args.quick else 10)
    lanes = max(1, min(args.lanes, runs))
    interval, escalate = args.poll_interval, args.escalate_after
    wait = args.cost_wait or (20.0 if args.quick else 60.0)
    rng = random.Random(args.seed)
    report = Report("bench_paging", args)
    report.line(f"{runs} runs in {lanes} lanes, poll_interval {interval:g} s, escalate_after {escalate:g} s; "
                f"cost: 3 tiers x 3 people waiting {wait:g} s")

    per_lane = [runs // lanes + (1 if i < runs % lanes else 0) for i in range(lanes)]
    senders = [lane_sender(i) for i in range(lanes)] + [lane_sender(90), lane_sender(91)]
    with twilio_emulator(numbers=senders) as (emu, base_url):
        out, errors, threads = [], [], []
        for lane, count in enumerate(per_lane):
            thread = threading.Thread(target=escalation_lane,
                                      args=(emu, base_url, lane, count, escalate, interval,
                                            random.Random(rng.random()), out, errors),
                                      daemon=True)
            thread.start()
            threads.append(thread)
            time.sleep(interval / lanes)
        for thread in threads:
            thread.join()
        if errors:
            raise errors[0]
        page_lists, receive_lists, tiers_paged = cost(emu, base_url, wait, interval)

    late = sorted(r["late"] for r in out)
    ack = sorted(r["ack"] for r in out)
    ok = sum(1 for r in out if r["success"])
    report.line("escalation lateness: " + ", ".join(f"{v:.2f}" for v in late) + " s")
    report.line("acknowledgement to page end: " + ", ".join(f"{v:.2f}" for v in ack) + " s")
    report.line(f"{ok}/{len(out)} runs ended acknowledged by the tier-2 person")
    base = baseline_late(escalate, random.Random(rng.random()), 100000)
    report.line("baseline (2.0.x looks 30 s apart, simulated, 100,000 draws): escalation late median "
                f"{median(base):.2f} s, max {max(base):.2f} s; acknowledgement seen 15 s late on median, 30 "
                "s at worst")
    report.line(f"cost over {wait:g} s: the 3x3 page made {page_lists} list requests ({tiers_paged} tiers "
                f"paged), one waiting receive call {receive_lists}; 2.0.x: 9 calls listing the whole history "
                "every 30 s")
    for key, value in (("runs", len(out)), ("late_median_s", round(median(late), 3)),
                       ("late_max_s", round(max(late), 3)), ("ack_median_s", round(median(ack), 3)),
                       ("ack_max_s", round(max(ack), 3)), ("page_lists", page_lists),
                       ("receive_lists", receive_lists), ("baseline_late_median_s", round(median(base), 2))):
        report.figure(key, value)
    limit = interval + 0.5
    report.target("next tier paged: lateness median", f"{median(late):.2f} s", f"<= {limit:g} s",
                  median(late) <= limit)
    report.target("next tier paged: lateness max", f"{max(late):.2f} s", f"<= {limit:g} s",
                  max(late) <= limit)
    report.target("ack ends the page: median", f"{median(ack):.2f} s", "<= 1.5 s", median(ack) <= 1.5)
    report.target("ack ends the page: max", f"{max(ack):.2f} s", "<= 2.5 s", max(ack) <= 2.5)
    report.target("3x3 page list requests vs a receive call", str(page_lists),
                  f"<= {receive_lists} + {tiers_paged}", page_lists <= receive_lists + tiers_paged)
    if ok != len(out):
        report.note(f"{len(out) - ok} of {len(out)} runs did not end acknowledged by the tier-2 person")
    return report.finish()


if __name__ == "__main__":
    raise SystemExit(main())
