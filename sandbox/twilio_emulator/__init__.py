"""A stateful Twilio REST API emulator for fn_twilio's tests, benchmarks and sandbox.

It serves the real paths (``/2010-04-01/Accounts/{AccountSid}/...``) on 127.0.0.1, so the real twilio
SDK talks to it once an ``http_client`` rewrites the scheme and host of every URL to ``emu.base_url``
(or the app's ``twilio_base_url`` setting points at it)::

    from sandbox.twilio_emulator import TwilioEmulator, ACCOUNT_SID, AUTH_TOKEN, SENDER

    with TwilioEmulator() as emu:                      # port 0: a free port; emu.base_url
        ...  # Client(ACCOUNT_SID, AUTH_TOKEN, http_client=<rewriting client>).messages.create(...)
        emu.inject_inbound(from_="+353861234567", to=SENDER, body="ACK")
        emu.inject_fault("status", status=429, retry_after=1)   # next POST …/Messages.json gets a 429
        assert emu.requests[-1].status == 429

What it implements (twilio-api.md §8):

* HTTP Basic auth with the account's AuthToken or an API key (SK…); otherwise 401 / 20003.
* ``POST …/Messages.json``: Twilio's validation codes (21604, 21603, 21602/21619, 21617, 21211,
  21212, 21606, 21701 unknown Messaging Service, 21612, 21408, 21610, 21614, 21611) and the
  ``+1500555000x`` magic test numbers; 201 with a full Message resource (RFC 2822 ``+0000`` dates,
  GSM-7/UCS-2 ``num_segments`` as a string, ``queued``, or ``accepted`` with ``from`` null and
  ``num_segments`` "0" with a Messaging Service).
* ``GET …/Messages.json`` with ``To``, ``From``, ``DateSent``, ``DateSent<`` (on or before),
  ``DateSent>`` (on or after), newest first, ``PageSize`` 1–1000, ``Page`` and a stable
  ``PageToken`` cursor; ``GET/POST/DELETE …/Messages/{Sid}.json``;
  ``GET …/IncomingPhoneNumbers.json``; ``GET /2010-04-01/Accounts/{Sid}.json``.
* Headers ``Content-Type: application/json; charset=utf-8``, ``Twilio-Request-Id: RQ…``.
* ``emu.latency`` seconds added to every API request (slept outside any lock).
* Fault injection (``inject_fault``), a request log (``emu.requests``: ``RequestRecord``), status
  changes (``set_status``, ``advance_statuses``), opt-outs (an inbound STOP / START, ``opt_out``),
  geo permissions (``disable_geo``), landlines (``add_landline``), ``seed_history``, ``reset``.
* Opt-out as Twilio does it: an inbound message that is just one of STOP, STOPALL, UNSUBSCRIBE,
  CANCEL, END, QUIT, REVOKE, OPTOUT (case, whitespace and punctuation around it ignored; "stop
  please" is not one) blocks that number's sender, and every number of the sender's Messaging
  Service, for that recipient: creates fail with 400 / 21610 until it sends START, YES or UNSTOP.
* Delivery lifecycle: ``emu.delivery_schedule = DeliverySchedule(sent_after, delivered_after)``
  (or ``emu.deliver_after(...)``, ``TwilioEmulator(delivery_schedule=...)``, ``--sent-after`` /
  ``--delivered-after``) moves outbound messages ``queued → sent → delivered`` on their own, each
  step dated when due; off by default (messages stay ``queued`` until ``set_status`` or
  ``advance_statuses``). ``set_delivery_outcome(number, "undelivered", 30003)`` (or ``"failed"``
  with a code, or ``"sent"``: no receipt) says how messages to a number end, for the schedule and
  ``advance_statuses`` alike. ``clock=`` replaces the emulator's clock (aware UTC datetimes).
* Twilio's loop guard (error 14107): a text beyond 30 between the same two numbers within 30 s is
  accepted (201, ``queued``) and then ``failed`` with error 14107, and so is every further text
  between them for 30 s; ``emu.limit_pairs(limit, window, block)`` (``pair_limit=PairRateLimit(...)``,
  ``--pair-limit/--pair-window/--pair-block``) shrinks the numbers, ``emu.pair_limit = None``
  (``--no-pair-limit``) turns it off.
* Inspection: ``emu.outbound_messages(to=, from_=)``, ``emu.find_messages(direction=, to=, from_=)``,
  ``emu.message(sid)``.
* A JSON control API under ``/_emulator/…`` (no auth) for an emulator in another process — see
  ``RemoteEmulator`` — and a CLI: ``python -m sandbox.twilio_emulator --port 8899`` prints the base
  URL on one line and serves until SIGTERM/SIGINT.

Voice (``voice.py``): ``POST/GET …/Calls.json`` (``Twiml`` or ``Url``, ``MachineDetection``; ``To``,
``From``, ``Status`` filters, paging as for messages), ``GET/POST/DELETE …/Calls/{Sid}.json``; Studio v2 on
the same port: ``/v2/Flows`` (create, list, fetch, update with a new revision, delete),
``/v2/Flows/{FW}/Executions`` (create with ``To``, ``From``, ``Parameters``; list with ``status``,
``DateCreatedFrom``, ``DateCreatedTo``; fetch; ``Status=ended``; delete), ``…/Executions/{FN}/Context``
and ``…/Steps``. The emulator runs a flow's widgets: an execution places a call, follows the called
number's script and ends with a context like Twilio's. ``emu.script_calls(number, "answer", press="1")``
(or ``"machine"``, ``"fax"``, ``"no-answer"``, ``"busy"``, ``"fail"``; ``ring=``, ``press_after=``
seconds) tells a number what to do when called; ``emu.calls``, ``emu.flows``, ``emu.executions`` (with
``context`` and ``said``) show what happened; ``emu.set_voice_capable(number, False)`` takes a number's
voice capability away.

``emu.messages`` is a property: a list of copies of every message dict, oldest created first.
Dates: a message's ``date_sent`` stays null until it reaches ``sent`` (a ``failed`` message never
gets one); the list sorts on ``date_sent``, falling back to ``date_created`` for messages not yet
sent, and a ``DateSent`` filter leaves out messages whose ``date_sent`` is null, as Twilio's does.
"""
from .model import (ACCOUNT_SID, API_KEY_SECRET, API_KEY_SID, AUTH_TOKEN, MESSAGING_SERVICE_SID, SENDER,
                    DeliveryOutcome, DeliverySchedule, PairRateLimit, TwilioError, segment_count)
from .remote import RemoteEmulator
from .server import FAULT_KINDS, Fault, RequestRecord, TwilioEmulator
from .voice import CALL_ACTIONS, CallScript

__all__ = [
    "ACCOUNT_SID", "AUTH_TOKEN", "API_KEY_SID", "API_KEY_SECRET", "SENDER", "MESSAGING_SERVICE_SID",
    "TwilioEmulator", "RemoteEmulator", "RequestRecord", "Fault", "FAULT_KINDS", "TwilioError",
    "segment_count", "DeliverySchedule", "DeliveryOutcome", "CallScript", "CALL_ACTIONS", "PairRateLimit",
]
