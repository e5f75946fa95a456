"""Bad-input matrix: the functions, through resilient-circuits, against the Twilio emulator.

Each row is one function call. A row either expects the clear error that names the input, or the
right normalised value: the E.164 numbers sent (and the entries reported invalid) with the segment
count Twilio gave; for twilio_receive_messages the number and the moment, read back from the
timeout reason, or the wait, read back from the first status message; for twilio_get_message_status
the SIDs read (each reported, in order) and the wait, from the first status message.

To keep the matrix fast, each class runs its rows as concurrent calls in two batches (the rows that
must fail, then the others) and the tests check the rows one by one. Nothing may be sent by a call
that is refused whole: the batch of refused rows must cause no Twilio request at all.
"""
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Optional

import pytest

from sandbox.twilio_emulator import SENDER
from tests.reliability import reliability_helpers as helpers
from tests.reliability.reliability_helpers import (ALICE, BOB, CAROL, LEDGER, NO_STORM_LIMIT, call, creates,
                                                  lists)

SEND = "twilio_send_sms"
RECEIVE = "twilio_receive_messages"
STATUS = "twilio_get_message_status"
DAVE = "+353871234567"      # has a reply waiting: the wait-timeout rows return at the first look
GERMAN = "+4915112345678"
FRENCH = "+33612345678"
FORTY = [f"+3538612340{n:02d}" for n in range(40)]
HUNDRED_AND_ONE = [f"+353861{n:06d}" for n in range(200000, 200101)]
NOON = "2026-03-01 12:00:00+00:00"


@dataclass
class Row:
    id: str
    inputs: dict
    error: Optional[str] = None          # text the error must contain (it names the input)
    sent: Optional[list] = None          # send: the normalised numbers sent, in order
    invalid: tuple = ()                  # send: entries reported invalid, as written
    segments: Optional[int] = None       # send: num_segments of every sent entry
    number: Optional[str] = None         # receive: the normalised number in the reason
    since: Optional[str] = None          # receive: the moment in the reason
    wait: Optional[str] = None           # receive: "waiting up to <wait>" in the status; "" = looks once
    extra: dict = field(default_factory=dict)

    def __str__(self):
        return self.id


def msg(text, dest=ALICE, **kw):
    """A send row about the message text."""
    return {"twilio_sms_destination": dest, "twilio_sms_message": text, **kw}


def dest(destination, text=None):
    """A send row about the destination; the text is unique to the row."""
    return {"twilio_sms_destination": destination,
            "twilio_sms_message": text or helpers.unique_body("Bad input")}


SEND_OK = [
    Row("GSM-7 160 chars: 1 segment", msg("a" * 160), sent=[ALICE], segments=1),
    Row("GSM-7 161 chars: 2 segments", msg("b" * 161), sent=[ALICE], segments=2),
    Row("GSM-7 306 chars: 2 segments of 153", msg("c" * 306), sent=[ALICE], segments=2),
    Row("GSM-7 307 chars: 3 segments", msg("d" * 307), sent=[ALICE], segments=3),
    Row("GSM-7 extension 80 euro signs: 1 segment", msg("€" * 80), sent=[ALICE], segments=1),
    Row("GSM-7 extension 81 euro signs: 2 segments", msg("€" * 81), sent=[ALICE], segments=2),
    Row("UCS-2 70 chars: 1 segment", msg("ł" * 70), sent=[ALICE], segments=1),
    Row("UCS-2 71 chars: 2 segments", msg("ł" * 71), sent=[ALICE], segments=2),
    Row("emoji x35 (70 UTF-16 units): 1 segment", msg("🚨" * 35), sent=[ALICE], segments=1),
    Row("emoji x36: 2 segments", msg("🚨" * 36), sent=[ALICE], segments=2),
    Row("emoji in GSM text: UCS-2, 1 segment", msg("Incident 🚨 on db-01: join the bridge"), sent=[ALICE],
        segments=1),
    Row("CJK 80 chars: 2 segments", msg("事件警报" * 20), sent=[ALICE], segments=2),
    Row("1600 GSM-7 chars: 11 segments", msg("y" * 1600), sent=[ALICE], segments=11),
    Row("1600 UCS-2 chars: 24 segments", msg("ж" * 1600), sent=[ALICE], segments=24),
    Row("mixed separators , ; LF CRLF", dest(f"{ALICE};{BOB}\n{CAROL},{GERMAN}\r\n{FRENCH}"),
        sent=[ALICE, BOB, CAROL, GERMAN, FRENCH]),
    Row("long list: 40 numbers", dest(",".join(FORTY[:20]) + "\n" + ";".join(FORTY[20:])), sent=FORTY),
    Row("one number written four ways",
        dest(f"{ALICE}, 00353861234567, +353 (0)86 123 4567, +353-86-123-4567"),
        sent=[ALICE]),
    Row("whatsapp: kept", dest("whatsapp:+353861234567"), sent=["whatsapp:+353861234567"]),
    Row("WhatsApp: with spaces normalised", dest("WhatsApp: +353 86 123 4567"),
        sent=["whatsapp:+353861234567"]),
    Row("whatsapp and SMS to one number are two recipients", dest(f"whatsapp:{ALICE}; {ALICE}"),
        sent=["whatsapp:+353861234567", ALICE]),
    Row("national number without default_region is invalid, others sent", dest(f"086 123 4567, {CAROL}"),
        sent=[CAROL], invalid=("086 123 4567",)),
    Row("00 international prefix without region", dest("0044 7911 123456"), sent=[CAROL]),
    Row("tel: URI", dest("tel:+353-86-123-4567"), sent=[ALICE]),
    Row("full-width digits", dest("＋３５３８６１２３４５６７"), sent=[ALICE]),
    Row("blank entries around one number", dest("  ;+353861234567;;  ,\n"), sent=[ALICE]),
    Row("empty whatsapp: entry beside a number", dest(f"whatsapp:, {ALICE}"), sent=[ALICE],
        invalid=("whatsapp:",)),
]

SEND_REFUSED = [
    Row("blank destination", dest(""), error="twilio_sms_destination is empty"),
    Row("whitespace-only destination", dest("   "), error="twilio_sms_destination is empty"),
    Row("tabs and new lines only", dest("\t\n  "), error="twilio_sms_destination is empty"),
    Row("separators only", dest(",;\n,;"), error="twilio_sms_destination holds no phone number"),
    Row("only a national number, no default_region", dest("086 123 4567"),
        error="twilio_sms_destination has no valid phone number"),
    Row("only an empty whatsapp: entry", dest("whatsapp:"), error="has no number after 'whatsapp:'"),
    Row("letters", dest("1-800-FLOWERS"), error="contains letters"),
    Row("extension", dest("+353861234567 ext. 12"), error="has an extension"),
    Row("two numbers without a separator", dest("+353861234567+14155552345"),
        error="has a '+' inside the number"),
    Row("101 recipients, more than max_recipients", dest(",".join(HUNDRED_AND_ONE)),
        error="twilio_sms_destination has 101 different recipients, more than max_recipients (100)"),
    Row("1601 GSM-7 characters", msg("x" * 1601), error="twilio_sms_message has 1601 characters"),
    Row("1601 emoji", msg("🚨" * 1601), error="twilio_sms_message has 1601 characters"),
    Row("whitespace-only message, no incident_id", msg("   "),
        error="twilio_sms_message is empty and incident_id is not set"),
    Row("new lines only message, no incident_id", msg("\n\t\n"),
        error="twilio_sms_message is empty and incident_id is not set"),
    Row("blank incident_id with empty message", msg("", incident_id=" "),
        error="twilio_sms_message is empty and incident_id is not set"),
    Row("request_ack without room left in 1600 characters", msg("x" * 1580, twilio_request_ack=True,
                                                                 incident_id=2095),
        error="twilio_request_ack: the text with the acknowledgement request has 1611 characters"),
    Row("request_ack that is not a boolean", msg("Hi", twilio_request_ack="maybe"),
        error="twilio_request_ack must be true or false"),
]

SEND_IE_OK = [
    Row("IE: national with spaces", dest("086 123 4567"), sent=[ALICE]),
    Row("IE: national without spaces", dest("0861234567"), sent=[ALICE]),
    Row("IE: another country's +number", dest("+1 978 835 4530"), sent=["+19788354530"]),
    Row("IE: whatsapp national", dest("whatsapp:086 123 4567"), sent=["whatsapp:+353861234567"]),
    Row("IE: brackets and 00 prefix", dest("(086) 123-4567; 00447911123456"), sent=[ALICE, CAROL]),
]

SEND_IE_REFUSED = [
    Row("IE: a US national number is not guessed", dest("(978) 835-4530"),
        error="twilio_sms_destination has no valid phone number"),
]


def since(value, name="twilio_date_sent", number=ALICE):
    return {"twilio_phone_number": number, "twilio_wait_timeout": "0s", name: value}


def waiting(value, number=DAVE):
    return {"twilio_phone_number": number, "twilio_wait_timeout": value}


def phone(value):
    return {"twilio_phone_number": value, "twilio_wait_timeout": "0s"}


RECEIVE_OK = [
    Row("date only: midnight UTC", since("2026-03-01"), since="2026-03-01 00:00:00+00:00"),
    Row("ISO with Z", since("2026-03-01T12:00:00Z"), since=NOON),
    Row("ISO with +01:30", since("2026-03-01T13:30:00+01:30"), since=NOON),
    Row("ISO with -05:00", since("2026-03-01T07:00:00-05:00"), since=NOON),
    Row("no zone means UTC", since("2026-03-01 12:00:00"), since=NOON),
    Row("RFC 2822 +0000", since("Sun, 01 Mar 2026 12:00:00 +0000"), since=NOON),
    Row("RFC 2822 +0200", since("Sun, 01 Mar 2026 14:00:00 +0200"), since=NOON),
    Row("day month year UTC", since("1 Mar 2026 12:00 UTC"), since=NOON),
    Row("month name, 12 h clock, GMT", since("March 1, 2026 12:00 PM GMT"), since=NOON),
    Row("unambiguous day-first dotted", since("25.01.2026"), since="2026-01-25 00:00:00+00:00"),
    Row("epoch seconds as text", since("1772366400"), since=NOON),
    Row("epoch milliseconds as text", since("1772366400000"), since=NOON),
    Row("epoch milliseconds as a number", since(1772366400000), since=NOON),
    Row("epoch seconds as a number", since(1772366400), since=NOON),
    Row("epoch seconds with a fraction", since("1772366400.9"), since=NOON),
    Row("datetimepicker twilio_date_sent_ts", since(1772366400000, "twilio_date_sent_ts"), since=NOON),
    Row("blank twilio_date_sent falls back to _ts",
        {**since("   "), "twilio_date_sent_ts": 1772366400000}, since=NOON),
    Row("whitespace-only date: since the beginning", since("   "), since="the beginning"),
    Row("whatsapp: number", phone("whatsapp:+353861234567"), number="whatsapp:+353861234567",
        since="the beginning"),
    Row("00 prefix with spaces", phone("00353 86 123 4567"), number=ALICE, since="the beginning"),
    Row("surrounding spaces", phone("  +353 86 123 4567 "), number=ALICE, since="the beginning"),
    Row("bare number is seconds", waiting("90"), wait="1m30s"),
    Row("seconds", waiting("45s"), wait="45s"),
    Row("minutes", waiting("5m"), wait="5m"),
    Row("upper-case M is minutes", waiting("5M"), wait="5m"),
    Row("decimal hours", waiting("1.5h"), wait="1h30m"),
    Row("days", waiting("2d"), wait="2d"),
    Row("weeks", waiting("1w"), wait="1w"),
    Row("combined units", waiting("1h30m"), wait="1h30m"),
    Row("spaces around and inside", waiting(" 2 h "), wait="2h"),
    Row("leading decimal point", waiting(".5m"), wait="30s"),
    Row("blank wait: the default 120s", waiting(""), wait="2m"),
    Row("whitespace-only wait: the default", waiting("   "), wait="2m"),
    Row("0s looks once", waiting("0s"), wait=""),
    Row("bare 0 looks once", waiting("0"), wait=""),
]

RECEIVE_REFUSED = [
    Row("blank number", phone(""), error="twilio_phone_number is empty"),
    Row("whitespace-only number", phone("   "), error="twilio_phone_number is empty"),
    Row("letters as number", phone("abc"), error="twilio_phone_number is not a valid phone number"),
    Row("national number without default_region", phone("086 123 4567"), error="no country code"),
    Row("one of two numbers invalid", phone(f"{ALICE}, abc"),
        error="twilio_phone_number is not a valid phone number"),
    Row("wait for: neither value", {**phone(ALICE), "twilio_wait_for": "ack"},
        error="twilio_wait_for must be 'reply' or 'acknowledgement', not 'ack'"),
    Row("incident_id: not a number", {**phone(ALICE), "incident_id": "INC-7"},
        error="incident_id must be a positive whole number"),
    Row("empty whatsapp:", phone("whatsapp:"), error="twilio_phone_number is not a valid phone number"),
    Row("ambiguous day/month", since("01/02/2026"), error="twilio_date_sent '01/02/2026' is ambiguous"),
    Row("zone name other than UTC", since("2026-03-01 12:00 EST"), error="twilio_date_sent"),
    Row("month only", since("2026-03"), error="is not a complete date"),
    Row("negative epoch", since("-5"), error="twilio_date_sent '-5' is a negative epoch number"),
    Row("epoch seconds before 2000", since("946684799"), error="before 2000"),
    Row("epoch ms a century ahead", since("4102444800000"), error="more than a year in the future"),
    Row("words", since("not a date"), error="twilio_date_sent 'not a date' is not a date"),
    Row("_ts not a number", since("yesterday", "twilio_date_sent_ts"), error="twilio_date_sent_ts"),
    Row("_ts negative", since(-1, "twilio_date_sent_ts"), error="twilio_date_sent_ts"),
    Row("wait: words", waiting("abc"), error="twilio_wait_timeout 'abc'"),
    Row("wait: years are no unit", waiting("5y"), error="twilio_wait_timeout '5y' has an unknown unit"),
    Row("wait: negative", waiting("-5s"), error="twilio_wait_timeout '-5s' is negative"),
    Row("wait: unit alone", waiting("s"), error="twilio_wait_timeout 's'"),
    Row("wait: unit spelt out", waiting("5 minutes"),
        error="twilio_wait_timeout '5 minutes' has an unknown unit"),
    Row("wait: repeated unit", waiting("1h1h"), error="twilio_wait_timeout '1h1h' repeats the unit"),
    Row("wait: beyond max_wait_timeout", waiting("3w"),
        error="twilio_wait_timeout '3w' is longer than the maximum"),
    Row("wait: two decimal points", waiting("1.5.2s"), error="twilio_wait_timeout '1.5.2s'"),
    Row("wait: exponent", waiting("1e3s"), error="twilio_wait_timeout '1e3s'"),
]

RECEIVE_US_OK = [
    Row("US: national with brackets", phone("(978) 835-4530"), number="+19788354530", since="the beginning"),
    Row("US: 011 international prefix", phone("011 353 86 123 4567"), number=ALICE, since="the beginning"),
]

RECEIVE_US_REFUSED = [
    Row("US: an Irish national number is not guessed", phone("086 123 4567"),
        error="twilio_phone_number is not a valid phone number"),
]

SID_1, SID_2 = "SM" + "1" * 32, "MM" + "2" * 32     # well formed, not on the account: not_found


def sids(value, wait=None):
    return {"twilio_message_sids": value, **({} if wait is None else {"twilio_wait_timeout": wait})}


STATUS_OK = [
    Row("sids: one", sids(SID_1), extra={"sids": [SID_1]}, wait=""),
    Row("sids: SM and MM, spaces and semicolons", sids(f"  {SID_1} ;{SID_2}\n"),
        extra={"sids": [SID_1, SID_2]}, wait=""),
    Row("sids: the same twice is read once", sids(f"{SID_1}, {SID_1}"), extra={"sids": [SID_1]}, wait=""),
    Row("sids: 100, as many as max_recipients", sids(",".join(f"SM{n:032x}" for n in range(100))),
        extra={"sids": [f"SM{n:032x}" for n in range(100)]}, wait=""),
    Row("sids: blank wait looks once", sids(SID_1, "  "), extra={"sids": [SID_1]}, wait=""),
    Row("sids: wait 1m30s", sids(SID_1, "1m30s"), extra={"sids": [SID_1]}, wait="1m30s"),
]

STATUS_REFUSED = [
    Row("sids: blank", sids(""), error="twilio_message_sids is empty"),
    Row("sids: whitespace only", sids(" \t\n "), error="twilio_message_sids is empty"),
    Row("sids: separators only", sids(" , ;"), error="twilio_message_sids is empty"),
    Row("sids: too short", sids("SM123"),
        error="twilio_message_sids holds 1 value that is not a message SID"),
    Row("sids: an account SID", sids("AC" + "a" * 32), error="is not a message SID"),
    Row("sids: lower-case prefix", sids("sm" + "a" * 32), error="is not a message SID"),
    Row("sids: not hexadecimal", sids("SM" + "z" * 32), error="is not a message SID"),
    Row("sids: one bad among good", sids(f"{SID_1}, SM{'1' * 31}"),
        error="twilio_message_sids holds 1 value"),
    Row("sids: a phone number", sids(ALICE), error="is not a message SID"),
    Row("sids: 101, more than max_recipients", sids(",".join(f"SM{n:032x}" for n in range(101))),
        error="twilio_message_sids has 101 different message SIDs, more than max_recipients (100)"),
    Row("sids: wait in words", sids(SID_1, "soon"), error="twilio_wait_timeout 'soon'"),
    Row("sids: wait negative", sids(SID_1, "-1m"), error="twilio_wait_timeout '-1m' is negative"),
    Row("sids: wait unknown unit", sids(SID_1, "5y"), error="twilio_wait_timeout '5y' has an unknown unit"),
    Row("sids: wait beyond max_wait_timeout", sids(SID_1, "25h"),
        error="twilio_wait_timeout '25h' is longer than the maximum"),
]

PAGE = "twilio_page"


def tiers(text, **kw):
    """A page row; the other inputs valid unless the row says otherwise."""
    return {"twilio_page_tiers": text, "twilio_sms_message": "Bad page input", "twilio_escalate_after": "1m",
            **kw}


PAGE_REFUSED = [
    Row("page: empty tiers", tiers(""), error="twilio_page_tiers is empty"),
    Row("page: only separators", tiers(" ;\n; , "), error="twilio_page_tiers is empty"),
    Row("page: a tier with no valid number", tiers(f"{ALICE}; 12345, abc"),
        error="twilio_page_tiers: tier 2 has no valid phone number"),
    Row("page: escalate_after malformed", tiers(ALICE, twilio_escalate_after="soon"),
        error="twilio_escalate_after 'soon'"),
    Row("page: escalate_after zero", tiers(ALICE, twilio_escalate_after="0s"), error="twilio_escalate_after"),
    Row("page: escalate_after negative", tiers(ALICE, twilio_escalate_after="-1m"),
        error="twilio_escalate_after '-1m' is negative"),
    Row("page: escalate_after longer than max_wait_timeout", tiers(ALICE, twilio_escalate_after="25h"),
        error="twilio_escalate_after '25h' is longer than the maximum"),
    Row("page: no room for the acknowledgement request", tiers(ALICE, twilio_sms_message="x" * 1590),
        error="twilio_sms_message: the text with the acknowledgement request"),
    Row("page: message over 1600", tiers(ALICE, twilio_sms_message="x" * 1601),
        error="twilio_sms_message has 1601 characters"),
    Row("page: no message and no incident", tiers(ALICE, twilio_sms_message=""),
        error="twilio_sms_message is empty and incident_id is not set"),
    Row("page: incident_id not a number", tiers(ALICE, incident_id="abc"),
        error="incident_id must be a positive whole number"),
    Row("page: voice: with an invalid number", tiers(f"{ALICE}; voice:12345"),
        error="twilio_page_tiers: tier 2 has a voice: entry that cannot be called ('voice:12345'"),
    Row("page: voice: with no number", tiers(f"voice:, {ALICE}"),
        error="twilio_page_tiers: tier 1 has a voice: entry that cannot be called ('voice:' has no number"),
    Row("page: voice: to a WhatsApp address", tiers(f"voice:whatsapp:{ALICE}"),
        error="a call goes to a phone number, not to a WhatsApp address"),
]

# -- twilio_label (contract §16): the app.config of these rows has the unlabelled section and
# [fn_twilio_send_sms:eu] (the same account and sender, with default_region IE) --------------------------
LEGACY = "twilio_get_responses"
LABEL_FUNCTIONS = [(SEND, msg("Labelled bad input")), (RECEIVE, phone(ALICE)), (LEGACY, phone(ALICE)),
                   (STATUS, sids(SID_1)), (PAGE, tiers(ALICE))]


def labelled(inputs, label):
    """A row's inputs with ``twilio_label`` (the row's ``extra["fn"]`` names its function)."""
    return {**inputs, "twilio_label": label}


LABEL_REFUSED = [
    Row(f"label: unknown, {fn}", labelled(inputs, "apac"), extra={"fn": fn},
        error="twilio_label 'apac' names no configuration: app.config has no [fn_twilio_send_sms:apac] "
              "section; its labels are eu (and the unlabelled [fn_twilio_send_sms]")
    for fn, inputs in LABEL_FUNCTIONS
] + [
    Row(f"label: with a space, {fn}", labelled(inputs, "eu west"), extra={"fn": fn},
        error="twilio_label 'eu west' is not a valid label: it holds a space")
    for fn, inputs in LABEL_FUNCTIONS
] + [
    Row("label: other case", labelled(msg("x"), "EU"), extra={"fn": SEND},
        error="did you mean 'eu'? Labels are case-sensitive"),
    Row("label: a closing bracket", labelled(msg("x"), "eu]"), extra={"fn": SEND}, error="it holds ']'"),
    Row("label: the whole section name", labelled(msg("x"), "fn_twilio_send_sms:eu"), extra={"fn": SEND},
        error="it holds ':'"),
    Row("label: a leading dash", labelled(msg("x"), "-eu"), extra={"fn": SEND},
        error="it does not start with a letter or a digit"),
    Row("label: a new line inside", labelled(msg("x"), "eu\nus"), extra={"fn": SEND},
        error="it holds '\\n'"),
    Row("label: 65 characters", labelled(msg("x"), "e" * 65), extra={"fn": SEND},
        error="it has 65 characters, more than 64"),
    Row("label: eu's settings refuse what the unlabelled section takes",
        labelled(dest(", ".join(FORTY[:3])), "eu"), extra={"fn": SEND},
        error="twilio_sms_destination has 3 different recipients, more than max_recipients (2)"),
]

LABEL_OK = [
    Row("label: eu reads national numbers with its default_region", labelled(dest("086 123 4567"), "eu"),
        extra={"fn": SEND}, sent=[ALICE]),
    Row("label: spaces around it", labelled(dest(BOB), "  eu \n"), extra={"fn": SEND}, sent=[BOB]),
    Row("label: empty is the unlabelled section", labelled(dest(CAROL), ""), extra={"fn": SEND},
        sent=[CAROL]),
    Row("label: only spaces is the unlabelled section", labelled(dest("+33612345678"), "   "),
        extra={"fn": SEND}, sent=["+33612345678"]),
    Row("label: eu's default_region does not read another country's national number",
        labelled(dest("(978) 835-4530, +14155552346"), "eu"), extra={"fn": SEND}, sent=["+14155552346"],
        invalid=("(978) 835-4530",)),
]

# app.config with [fn_twilio_send_sms:eu] and [fn_twilio_send_sms:us] and no unlabelled section
LABEL_NONE_REFUSED = [
    Row(f"no label, labelled sections only, {fn}", {**inputs}, extra={"fn": fn},
        error="twilio_label is empty, but app.config has no unlabelled [fn_twilio_send_sms] section and 2 "
              "labelled ones: give twilio_label one of eu, us")
    for fn, inputs in LABEL_FUNCTIONS
] + [
    Row(f"blank label, labelled sections only, {fn}", labelled(inputs, " "), extra={"fn": fn},
        error="give twilio_label one of eu, us")
    for fn, inputs in LABEL_FUNCTIONS
]
LABEL_NONE_OK = [
    Row("labelled sections only: us", labelled(dest(ALICE), "us"), extra={"fn": SEND}, sent=[ALICE]),
]

ALL_ROWS = SEND_OK + SEND_REFUSED + SEND_IE_OK + SEND_IE_REFUSED + RECEIVE_OK + RECEIVE_REFUSED + \
    RECEIVE_US_OK + RECEIVE_US_REFUSED + STATUS_OK + STATUS_REFUSED + PAGE_REFUSED + LABEL_REFUSED + \
    LABEL_OK + LABEL_NONE_REFUSED + LABEL_NONE_OK
assert len({r.id for r in ALL_ROWS}) == len(ALL_ROWS), "row ids must be unique"


# -- running a class's rows ---------------------------------------------------------------------------

class Batch:
    """The calls of one class's rows: refused rows first, then the others, each batch concurrently."""

    def __init__(self, circuits_app, emu, fn, refused, accepted):
        helpers.settle(emu)
        emu.reset()
        emu.inject_inbound(from_=DAVE, to=SENDER, body="ready")
        self.calls = {}
        with helpers.PrivacyWatch() as watch:
            self._run(circuits_app, fn, refused)
            helpers.settle(emu)
            self.requests_while_refusing = len(emu.requests)
            self._run(circuits_app, fn, accepted)
            helpers.settle(emu)
        watch.check()
        self.creates = creates(emu)
        self.lists = lists(emu)
        self.duplicates = helpers.duplicates(emu)
        LEDGER["bad_inputs"] += len(refused) + len(accepted)
        LEDGER["duplicate_sms"] += self.duplicates

    def _run(self, circuits_app, fn, rows):
        with ThreadPoolExecutor(max_workers=8) as pool:
            futures = {row.id: pool.submit(call, circuits_app, row.extra.get("fn", fn), row.inputs)
                       for row in rows}
        for row_id, future in futures.items():
            self.calls[row_id] = future.result()[0]


def check_refused(batch, row):
    result = batch.calls[row.id]
    assert result.result is None, result.result
    assert result.error is not None and row.error in result.error, result.error
    assert batch.requests_while_refusing == 0, "a refused call made a Twilio request"


def check_sent(batch, row):
    call_ = batch.calls[row.id]
    assert call_.error is None, call_.error
    entries = call_.result["twilio_status"]
    assert [e["phone_number"] for e in entries if e["status"] != "invalid"] == row.sent
    assert tuple(e["phone_number"] for e in entries if e["status"] == "invalid") == row.invalid
    body = call_.result["inputs"]["twilio_sms_message"]
    mine = [r for r in batch.creates if r.form.get("Body") == body]
    assert sorted(r.form["To"] for r in mine) == sorted(row.sent)       # each once, nobody else
    for entry in entries:
        if entry["status"] == "invalid":
            assert entry["success"] is False and entry["error_message"]
        else:
            assert entry["success"] is True and entry["message_body"] == body
            if row.segments is not None:
                assert entry["num_segments"] == row.segments
    assert batch.duplicates == 0


def check_received(batch, row):
    call_ = batch.calls[row.id]
    assert call_.error is None, call_.error
    result = call_.result
    if row.wait is not None:
        first = call_.statuses[0]
        if row.wait:
            assert first.endswith(f", waiting up to {row.wait}"), first
        else:
            assert "waiting" not in first, first
        assert result["success"] is True and [e["message_body"] for e in result["content"]] == ["ready"]
    else:
        number = row.number or ALICE
        assert result["success"] is False
        assert result["reason"] == (f"Timeout waiting for responses for phone number: {number} "
                                    f"since {row.since}")


def check_statuses(batch, row):
    call_ = batch.calls[row.id]
    assert call_.error is None, call_.error
    result = call_.result
    assert [e["sid"] for e in result["content"]] == row.extra["sids"]
    assert all(e["status"] == "not_found" and e["error_code"] == 20404 for e in result["content"])
    assert result["success"] is False
    first = call_.statuses[0]
    if row.wait:
        assert first.endswith(f", waiting up to {row.wait} for final statuses"), first
    else:
        assert "waiting" not in first, first


@pytest.fixture(scope="class")
def batch(request, circuits_app, twilio_emulator):
    """The class's rows (FN, REFUSED, ACCEPTED), run once for all its tests."""
    cls = request.cls
    return Batch(circuits_app, twilio_emulator, cls.FN, cls.REFUSED, cls.ACCEPTED)


def rows(table):
    return pytest.mark.parametrize("row", table, ids=str)


class TestSendInputs:
    APP_SETTINGS = NO_STORM_LIMIT
    FN, REFUSED, ACCEPTED = SEND, SEND_REFUSED, SEND_OK

    @rows(SEND_REFUSED)
    def test_refused_and_nothing_sent(self, batch, row):
        check_refused(batch, row)

    @rows(SEND_OK)
    def test_normalised(self, batch, row):
        check_sent(batch, row)


class TestSendInputsWithDefaultRegion:
    APP_SETTINGS = {"default_region": "IE"}
    FN, REFUSED, ACCEPTED = SEND, SEND_IE_REFUSED, SEND_IE_OK

    @rows(SEND_IE_REFUSED)
    def test_refused_and_nothing_sent(self, batch, row):
        check_refused(batch, row)

    @rows(SEND_IE_OK)
    def test_normalised(self, batch, row):
        check_sent(batch, row)


class TestReceiveInputs:
    APP_SETTINGS = {"max_wait_timeout": "2w"}
    FN, REFUSED, ACCEPTED = RECEIVE, RECEIVE_REFUSED, RECEIVE_OK

    @rows(RECEIVE_REFUSED)
    def test_refused_and_nothing_asked(self, batch, row):
        check_refused(batch, row)

    @rows(RECEIVE_OK)
    def test_normalised(self, batch, row):
        check_received(batch, row)


class TestReceiveInputsWithDefaultRegion:
    APP_SETTINGS = {"default_region": "US"}
    FN, REFUSED, ACCEPTED = RECEIVE, RECEIVE_US_REFUSED, RECEIVE_US_OK

    @rows(RECEIVE_US_REFUSED)
    def test_refused_and_nothing_asked(self, batch, row):
        check_refused(batch, row)

    @rows(RECEIVE_US_OK)
    def test_normalised(self, batch, row):
        check_received(batch, row)


class TestDeliveryStatusInputs:
    APP_SETTINGS = {}
    FN, REFUSED, ACCEPTED = STATUS, STATUS_REFUSED, STATUS_OK

    @rows(STATUS_REFUSED)
    def test_refused_and_nothing_read(self, batch, row):
        check_refused(batch, row)

    @rows(STATUS_OK)
    def test_read(self, batch, row):
        check_statuses(batch, row)


class TestPageInputs:
    APP_SETTINGS = {}
    FN, REFUSED, ACCEPTED = PAGE, PAGE_REFUSED, []

    @rows(PAGE_REFUSED)
    def test_refused_and_nothing_sent(self, batch, row):
        check_refused(batch, row)


class TestLabelInputs:
    APP_SETTINGS = {}
    LABELLED_SECTIONS = {"eu": {"default_region": "IE", "max_recipients": "2"}}
    FN, REFUSED, ACCEPTED = SEND, LABEL_REFUSED, LABEL_OK

    @rows(LABEL_REFUSED)
    def test_refused_and_nothing_asked(self, batch, row):
        check_refused(batch, row)

    @rows(LABEL_OK)
    def test_sent_through_the_chosen_section(self, batch, row):
        check_sent(batch, row)


class TestLabelInputsWithOnlyLabelledSections:
    APP_SETTINGS = None
    LABELLED_SECTIONS = {"eu": {}, "us": {"max_recipients": "50"}}
    FN, REFUSED, ACCEPTED = SEND, LABEL_NONE_REFUSED, LABEL_NONE_OK

    @rows(LABEL_NONE_REFUSED)
    def test_refused_and_nothing_asked(self, batch, row):
        check_refused(batch, row)

    @rows(LABEL_NONE_OK)
    def test_sent_through_the_chosen_section(self, batch, row):
        check_sent(batch, row)


def _function_of(row):
    if "fn" in row.extra:
        return row.extra["fn"]
    if "twilio_sms_destination" in row.inputs:
        return SEND
    if "twilio_page_tiers" in row.inputs:
        return PAGE
    return STATUS if "twilio_message_sids" in row.inputs else RECEIVE


def test_the_matrix_is_large_enough():
    assert len(ALL_ROWS) >= 40
    assert {SEND, RECEIVE, STATUS, PAGE} <= {_function_of(r) for r in ALL_ROWS}
    assert len(PAGE_REFUSED) >= 8
    assert {SEND, RECEIVE, LEGACY, STATUS, PAGE} <= {_function_of(r) for r in LABEL_REFUSED}
