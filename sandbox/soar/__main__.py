"""``python -m sandbox.soar``: serve a local SOAR (and Twilio emulator) until interrupted;
``python -m sandbox.soar demo``: send an SMS from a rule, answer it, collect the reply, and page
on-call people until one acknowledges (tier 2 is called and presses 1)."""
import argparse
import html
import re
import signal
import sys
import threading
from datetime import datetime, timezone

from .sandbox import Sandbox


def _parser():
    parser = argparse.ArgumentParser(prog="python -m sandbox.soar", description=__doc__)
    parser.add_argument("mode", nargs="?", choices=("serve", "demo"), default="serve")
    parser.add_argument("--workdir",
                        help="folder for certificates, app.config and logs (kept); default: a temp folder")
    parser.add_argument("--preload", default="app",
                        help="'app' (the app's export.res, default), 'none' (run customize yourself) or a "
                             "path")
    parser.add_argument("--no-legacy", action="store_true",
                        help="do not define the legacy twilio_get_responses")
    parser.add_argument("--run-app", action="store_true",
                        help="also start `resilient-circuits run` (serve mode)")
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
            print(f"resilient-circuits is running (log: {sandbox.app.log_path})", flush=True)
        print(f"\napp.config ({sandbox.app.config_path}):\n{sandbox.app.config_text()}", flush=True)
        print(SERVE_HELP.format(config=sandbox.app.config_path), flush=True)
        stop = threading.Event()
        signal.signal(signal.SIGTERM, lambda *_: stop.set())
        try:
            if sys.stdin is not None and sys.stdin.isatty() and args.run_app:
                _console(sandbox, stop)
            else:
                stop.wait()
        except (KeyboardInterrupt, EOFError):
            pass
    return 0


SERVE_HELP = """Incident 2095 is seeded. With --run-app, type these commands here \
(Ctrl-C or 'quit' stops all):
  send <numbers>[ | <message>]   rule "Example: Send Twilio SMS" on incident 2095 (numbers: commas)
  reply <number> <text>          <number> sends an SMS to the app's number (Twilio emulator)
  responses <row>                rule "Twilio: Get Responses" on row <row> of the SMS Activity Log (1 = first)
  receive <number> [<wait>]      rule "Example: Twilio Receive Messages" (wait e.g. 0s, 30s; default 0s)
  log                            the SMS Activity Log and the notes of incident 2095
From another shell, with this sandbox's configuration:
  APP_CONFIG_FILE={config} resilient-circuits selftest -l fn_twilio
  APP_CONFIG_FILE={config} resilient-circuits customize -y -l fn_twilio"""


def _console(sandbox, stop):
    """A small prompt that fires the example rules with the user's own inputs."""
    soar = sandbox.driver()
    while not stop.is_set():
        line = input("sandbox> ").strip()
        command, _, rest = line.partition(" ")
        try:
            if command in ("quit", "exit"):
                return
            if command == "send":
                numbers, _, message = rest.partition("|")
                properties = {"twilio_sms_destination": numbers.strip()}
                if message.strip():
                    properties["twilio_sms_message"] = message.strip()
                _report(soar.fire_rule("Example: Send Twilio SMS", incident_id=2095, properties=properties))
            elif command == "reply":
                number, _, text = rest.partition(" ")
                sandbox.twilio.inject_inbound(from_=number, body=text or "ACK")
                print("   {} sent {!r}".format(number, text or "ACK"))
            elif command == "responses":
                rows = sandbox.rest.rows(2095, "twilio_sms_log")
                row = rows[int(rest) - 1]
                _report(soar.fire_rule("Twilio: Get Responses", incident_id=2095, row=row))
            elif command == "receive":
                number, _, wait = rest.partition(" ")
                _report(soar.fire_rule("Example: Twilio Receive Messages", incident_id=2095, properties={
                    "twilio_sms_destination": number, "twilio_wait_timeout": wait.strip() or "0s"}))
            elif command == "log":
                _print_log(sandbox)
            elif command:
                print("   unknown command; type one of: send, reply, responses, receive, log, quit")
        except Exception as err:  # a typo must not stop the sandbox
            print(f"   {type(err).__name__}: {err}")


def _report(run):
    for status in run.call.statuses:
        print(f"   action status: {status}")
    if run.error:
        print(f"   the function failed: {run.error}")
    else:
        print("   result: success={}, reason={}".format(run.results.get("success"),
                                                        run.results.get("reason")))
    print(f"   {len(run.rows)} row(s) and {len(run.notes)} note(s) added; 'log' shows them")


DEMO_INVALID = "12345"
DEMO_OTHER = "+14155552345"
DEMO_ESCALATE = "3s"
LOG_COLUMNS = (("row_created", "Row Created"), ("status", "Status"), ("date_created", "Msg Created"),
               ("phone_number", "Phone Number"), ("direction", "Direction"), ("msg_body", "Msg Body"),
               ("message_id", "Msg Id"))


def _demo(sandbox, number):
    """The README's main job: send to three numbers (one invalid), a reply, Get Responses, the log."""
    destination = ", ".join((number, DEMO_OTHER, DEMO_INVALID))
    _step(1, "start `resilient-circuits run` with fn_twilio against the sandbox SOAR")
    sandbox.run_app()
    soar = sandbox.driver()
    _step(2, f"rule 'Example: Send Twilio SMS' on incident 2095, destination: {destination}")
    sent = soar.fire_rule("Example: Send Twilio SMS", incident_id=2095,
                          properties={"twilio_sms_destination": destination})
    if sent.error:
        return _failed(sent.error)
    for status in sent.call.statuses:
        print(f"   action status: {status}", flush=True)
    row = next(r for r in sent.rows_of("twilio_sms_log") if r["phone_number"] == number)
    _step(3, f"{number} replies 'ACK, on it' (the Twilio emulator receives the SMS)")
    sandbox.twilio.inject_inbound(from_=number, body="ACK, on it")
    _step(4, f"rule 'Twilio: Get Responses' on {number}'s row of the SMS Activity Log")
    got = soar.fire_rule("Twilio: Get Responses", incident_id=2095, row=row)
    if got.error:
        return _failed(got.error)
    print("   result: success={}, {} repl{}".format(
        got.results.get("success"), len(got.results.get("content") or []),
        "y" if len(got.results.get("content") or []) == 1 else "ies"), flush=True)
    _step(5, f"rule 'Example: Twilio Page On-Call': tier 1 {number} (a text), tier 2 voice:{DEMO_OTHER} "
             f"(a call), escalate after {DEMO_ESCALATE}; {DEMO_OTHER} answers the call and presses 1")
    sandbox.twilio.script_calls(DEMO_OTHER, "answer", press="1")
    paged = soar.fire_rule("Example: Twilio Page On-Call", incident_id=2095, properties={
        "twilio_page_tiers": f"{number}; voice:{DEMO_OTHER}", "twilio_escalate_after": DEMO_ESCALATE})
    if paged.error:
        return _failed(paged.error)
    for status in paged.call.statuses:
        print(f"   action status: {status}", flush=True)
    content = paged.results.get("content") or {}
    by_voice = any(e.get("event") == "acknowledged" and e.get("channel") == "voice"
                   for e in content.get("timeline") or [])
    print("   result: success={}, acknowledged by {} in tier {}{}".format(
        paged.results.get("success"), content.get("acknowledged_by"), content.get("tier"),
        " by pressing 1 on the call" if by_voice else ""), flush=True)
    _step(6, "what SOAR now shows on incident 2095")
    _print_log(sandbox)
    return 0


def _print_log(sandbox):
    print("\nSMS Activity Log")
    print(_table([{k: _cell(k, r.get(k)) for k, _ in LOG_COLUMNS}
                  for r in sandbox.rest.rows(2095, "twilio_sms_log")]))
    print("\nNotes")
    for index, note in enumerate(sandbox.rest.notes(2095), 1):
        print(f"  {index}. {_plain(note)}")


def _step(number, text):
    print(f"\n[{number}] {text}", flush=True)


def _failed(error):
    print(f"   the function failed: {error}", flush=True)
    return 1


def _cell(column, value):
    if value is None:
        return ""
    if column == "date_created":   # datetimepicker: epoch milliseconds
        return datetime.fromtimestamp(value / 1000, timezone.utc).strftime("%Y-%m-%d %H:%M:%S")
    text = str(value)
    return text if len(text) <= 48 else text[:45] + "..."


def _table(rows):
    widths = [max([len(title)] + [len(r[key]) for r in rows]) for key, title in LOG_COLUMNS]
    line = "  ".join(f"{{:<{w}}}" for w in widths)
    out = [line.format(*(title for _, title in LOG_COLUMNS)), line.format(*("-" * w for w in widths))]
    out += [line.format(*(r[key] for key, _ in LOG_COLUMNS)) for r in rows]
    return "\n".join(out)


def _plain(note):
    text = re.sub(r"<br\s*/?>", " | ", str(note))
    return html.unescape(re.sub(r"<[^>]+>", "", text))


if __name__ == "__main__":
    sys.exit(main())
