"""python -m sandbox.twilio_emulator [--port N] [--account-sid AC…] [--auth-token T] [--number +E164 …]
                                    [--sent-after S] [--delivered-after S]
                                    [--pair-limit N] [--pair-window S] [--pair-block S] [--no-pair-limit]

Prints the base URL on one line to stdout, then serves until SIGTERM or SIGINT.
"""
from __future__ import annotations

import argparse
import signal
import sys
import threading

from .model import (ACCOUNT_SID, API_KEY_SECRET, API_KEY_SID, AUTH_TOKEN, MESSAGING_SERVICE_SID, SENDER,
                    DeliverySchedule, PairRateLimit)
from .server import TwilioEmulator


def _parse_args(argv):
    p = argparse.ArgumentParser(prog="python -m sandbox.twilio_emulator",
                                description="Twilio REST API emulator")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=0, help="0 picks a free port (default)")
    p.add_argument("--account-sid", default=ACCOUNT_SID)
    p.add_argument("--auth-token", default=AUTH_TOKEN)
    p.add_argument("--api-key", action="append", metavar="SK…:SECRET",
                   help=f"an API key (repeatable; default {API_KEY_SID}:{API_KEY_SECRET})")
    p.add_argument("--number", action="append", metavar="+E164",
                   help=f"a number of the account (repeatable; default {SENDER})")
    p.add_argument("--messaging-service", action="append", metavar="MG…=+E164[,+E164…]",
                   help="a Messaging Service and its sender pool "
                        f"(repeatable; default {MESSAGING_SERVICE_SID}=<first number>)")
    p.add_argument("--latency", type=float, default=0.0, help="seconds added to every API request")
    p.add_argument("--sent-after", type=float, metavar="S",
                   help="turn the delivery schedule on: outbound messages are sent S seconds after creation "
                        "(default: off, they stay queued)")
    p.add_argument("--delivered-after", type=float, metavar="S",
                   help="with the schedule on, the delivery receipt comes S seconds after sending "
                        "(default 0)")
    p.add_argument("--pair-limit", type=int, default=30, metavar="N",
                   help="Twilio's loop guard (error 14107): a text beyond N between two numbers within the "
                        "window fails (default 30)")
    p.add_argument("--pair-window", type=float, default=30.0, metavar="S", help="its window (default 30 s)")
    p.add_argument("--pair-block", type=float, default=30.0, metavar="S",
                   help="how long every further text between the pair fails (default 30 s)")
    p.add_argument("--no-pair-limit", action="store_true", help="no 14107 guard at all")
    return p.parse_args(argv)


def main(argv=None) -> int:
    args = _parse_args(argv)
    numbers = tuple(args.number or (SENDER,))
    api_keys = dict(k.split(":", 1) for k in args.api_key) if args.api_key else None
    services = None
    if args.messaging_service:
        services = {}
        for spec in args.messaging_service:
            sid, _, pool = spec.partition("=")
            services[sid] = tuple(n for n in pool.split(",") if n) or numbers[:1]
    elif args.number:
        services = {MESSAGING_SERVICE_SID: numbers[:1]}
    schedule = None
    if args.sent_after is not None or args.delivered_after is not None:
        schedule = DeliverySchedule(args.sent_after or 0.0, args.delivered_after or 0.0)
    pair_limit = None if args.no_pair_limit else PairRateLimit(args.pair_limit, args.pair_window,
                                                               args.pair_block)
    emu = TwilioEmulator(account_sid=args.account_sid, auth_token=args.auth_token, api_keys=api_keys,
                         numbers=numbers, messaging_services=services, latency=args.latency,
                         host=args.host, port=args.port, delivery_schedule=schedule, pair_limit=pair_limit)
    done = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: done.set())
    emu.start()
    print(emu.base_url, flush=True)
    try:
        while not done.wait(0.5):
            pass
    finally:
        emu.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
