"""Run every fn_twilio benchmark, one process each, and print a summary table (figure, target, met?).

Usage: .venv/bin/python benchmarks/run_all.py [--quick]
           [--only fanout reply poll footprint delivery paging voice storm] [--json FILE]

Each benchmark prints its own figures as it goes; the table at the end collects the figures that
have a target. Exit status is 0 whatever the figures are (a benchmark that crashes gives 1).
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

from _common import machine  # noqa: E402

BENCHMARKS = [
    ("fanout", "bench_fanout.py"),
    ("reply", "bench_reply_detection.py"),
    ("poll", "bench_poll_cost.py"),
    ("footprint", "bench_footprint.py"),
    ("delivery", "bench_delivery.py"),
    ("paging", "bench_paging.py"),
    ("storm", "bench_storm.py"),
    ("voice", "bench_voice.py"),
]


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="pass --quick to every benchmark")
    p.add_argument("--only", nargs="+", choices=[name for name, _ in BENCHMARKS], help="run only these")
    p.add_argument("--json", metavar="FILE", help="write every benchmark's figures to FILE")
    args = p.parse_args(argv)
    chosen = [(n, s) for n, s in BENCHMARKS if not args.only or n in args.only]

    started = time.monotonic()
    collected, failed = [], []
    with tempfile.TemporaryDirectory(prefix="fn_twilio-bench-") as tmp:
        for name, script in chosen:
            out = os.path.join(tmp, name + ".json")
            argv_ = [sys.executable, os.path.join(HERE, script), "--results",
                     out] + (["--quick"] if args.quick else [])
            print("\n$ {} {}{}".format(os.path.basename(sys.executable), os.path.join("benchmarks", script),
                                       " --quick" if args.quick else ""), flush=True)
            code = subprocess.call(argv_, cwd=os.path.dirname(HERE))
            if code != 0 or not os.path.exists(out):
                failed.append(name)
                continue
            with open(out, encoding="utf-8") as handle:
                collected.append(json.load(handle))
    elapsed = time.monotonic() - started

    rows = [t for result in collected for t in result["targets"]]
    print("\n== Summary ({}; {:.0f} s in all{})".format(machine(), elapsed,
                                                        ", --quick" if args.quick else ""))
    widths = [max([len("figure")] + [len(r["figure"]) for r in rows]),
              max([len("value")] + [len(r["value"]) for r in rows]),
              max([len("target")] + [len(r["target"]) for r in rows])]
    line = "| {{:<{}}} | {{:>{}}} | {{:<{}}} | {{:<4}} |".format(*widths)
    print(line.format("figure", "value", "target", "met?"))
    print("|-{}-|-{}:|-{}-|------|".format("-" * widths[0], "-" * widths[1], "-" * widths[2]))
    for r in rows:
        print(line.format(r["figure"], r["value"], r["target"],
                          {True: "yes", False: "NO", None: "n/a"}[r["met"]]))
    for result in collected:
        for note in result.get("notes", []):
            print("note ({}): {}".format(result["benchmark"], note))
    if failed:
        print("benchmarks that failed to run: " + ", ".join(failed))
    if args.json:
        with open(args.json, "w", encoding="utf-8") as handle:
            json.dump({"machine": machine(), "quick": args.quick, "results": collected}, handle, indent=2)
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
