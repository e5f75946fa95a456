"""``python -m sandbox.soar``: serve a local SOAR (and Twilio emulator) until interrupted;
``python -m sandbox.soar demo``: send an SMS from a rule, answer it, and collect the reply."""
import argparse
import json
import signal
import sys
import threading

from .sandbox import Sandbox


def _parser():
    parser = argparse.ArgumentParser(prog="python -m sandbox.soar", description=__doc__)
    parser.add_argument("mode", nargs="?", choices=("serve", "demo"), default="serve")
    parser.add_argument("--workdir", help="folder for certificates, app.config and logs (kept); default: a temp folder")
    parser.add_argument("--preload", default="app",
                        help="'app' (the app's export.res, default), 'none' (run customize yourself) or a path")
    parser.add_argument("--no-legacy", action="store_true", help="do not define the legacy twilio_get_responses")
    parser.add_argument("--run-app", action="store_true", help="also start `resilient-circuits run` (serve mode)")
    parser.add_argument("--rest-port", type=int, default=0)
    parser.add_argument("--stomp-port", type=int, default=0)
    parser.add_argument("--broker", choices=("builtin", "activemq"), default="builtin",
                        help="the Python broker (default) or Debian's ActiveMQ")
    parser.add_argument("--loglevel", default="INFO")
    parser.add_argument("--number", default="+353861234567", help="recipient of the demo SMS")
    return parser


def main(argv=None):
    args = _parser().parse_args(argv)
    preload = None if args.preload == "none" else args.preload
    sandbox = Sandbox(args.workdir, preload=preload,
                      extra_functions=() if args.no_legacy else ["twilio_get_responses"],
                      loglevel=args.loglevel, rest_port=args.rest_port, stomp_port=args.stomp_port,
                      app_settings={"poll_interval": "1s"}, broker=args.broker)
    with sandbox:
        sandbox.rest.add_incident(2095, "Suspicious login from 203.0.113.7", "High")
        print(sandbox.describe(), flush=True)
        if args.mode == "demo":
            return _demo(sandbox, args.number)
        if args.run_app:
            sandbox.run_app()
            print("resilient-circuits is running (log: {})".format(sandbox.app.log_path), flush=True)
        print("Incident 2095 is seeded. Ctrl-C to stop.", flush=True)
        stop = threading.Event()
        signal.signal(signal.SIGTERM, lambda *_: stop.set())
        try:
            stop.wait()
        except KeyboardInterrupt:
            pass
    return 0


def _demo(sandbox, number):
    print("\n1. resilient-circuits run ...", flush=True)
    sandbox.run_app()
    soar = sandbox.driver()
    print("2. rule 'Example: Send Twilio SMS' on incident 2095 to {}".format(number), flush=True)
    sent = soar.fire_rule("Example: Send Twilio SMS", incident_id=2095,
                          properties={"twilio_sms_destination": number})
    if sent.error:
        print("   the function failed: {}".format(sent.error))
        return 1
    for status in sent.call.statuses:
        print("   status: {}".format(status))
    row = sent.rows_of("twilio_sms_log")[0]
    print("3. the recipient answers 'ACK, on it'", flush=True)
    sandbox.twilio.inject_inbound(from_=number, body="ACK, on it")
    print("4. rule 'Twilio: Get Responses' on the SMS Activity Log row", flush=True)
    got = soar.fire_rule("Twilio: Get Responses", incident_id=2095, row=row)
    if got.error:
        print("   the function failed: {}".format(got.error))
        return 1
    print("\nSMS Activity Log of incident 2095:")
    for row in sandbox.rest.rows(2095, "twilio_sms_log"):
        print("  " + json.dumps({k: v for k, v in row.items() if k != "id"}))
    print("Notes:")
    for note in sandbox.rest.notes(2095):
        print("  " + note)
    return 0


if __name__ == "__main__":
    sys.exit(main())
