"""Reading replies (fn_twilio.lib.attribution) with a fake Twilio: intents, the code a bare reply
answers read from the sender's outbound texts when the reply is read (contract §13.1: texts sent later
in the call count), with a Messaging Service and WhatsApp too, and a listing that fails or is cut short
leaving the code unknown (pending, read again later) rather than guessed."""
from datetime import timedelta

from twilio.base.exceptions import TwilioRestException

import pytest

from fn_twilio.lib.attribution import Attribution, ReplyReader, pending, refused_by
from fn_twilio.lib.intents import ack_request
from fn_twilio.lib.records import Reply
from tests.lib.fakes import SENDER, T0, FakeTwilio, message, settings

ALICE, BOB = "+353861234567", "+14155552345"
MG = "MG" + "1" * 32


def page(to, code, minutes, *, from_=SENDER, service=None):
    sent = message(from_, f"Incident {code}." + ack_request(str(code)), sent=T0 + timedelta(minutes=minutes),
                   to=to, direction="outbound-api")
    sent.messaging_service_sid = service
    return sent


def reply(number, body, minutes):
    return Reply.from_message(message(number, body, sent=T0 + timedelta(minutes=minutes)), T0)


def test_a_bare_reply_answers_the_latest_page_before_it_one_listing_per_number_and_read():
    twilio = FakeTwilio()
    twilio.add(page(ALICE, 2095, 0), page(ALICE, 2096, 5), page(BOB, 2097, 1))
    attribution = Attribution(settings(), client_factory=twilio.client)
    later, earlier, named = reply(ALICE, "ack", 10), reply(ALICE, "ok", 3), reply(ALICE, "ACK 2095", 11)
    bob = reply(BOB, "no", 2)
    read = attribution.read_all([later, earlier, named, bob])
    assert [(r.reply_code, r.intent) for r in read] == [("2096", "acknowledge"), ("2095", "acknowledge"),
                                                       ("2095", "acknowledge"), ("2097", "decline")]
    assert not any(r.code_pending for r in read)
    lists = twilio.lists
    assert [(r["to"], r["from_"]) for r in lists] == [(ALICE, SENDER), (BOB, SENDER)]   # once per number
    assert all("date_sent_after" not in r for r in lists)       # a queued page has no date_sent
    assert attribution.read_all([later, earlier]) == read[:2] and len(twilio.lists) == 2   # read once


def test_texts_sent_later_in_the_call_count_for_later_replies():
    """Two incidents page one person: a bare ack after the second page answers the second page, even
    when an earlier bare reply made the call read the log before that page went out."""
    twilio = FakeTwilio()
    twilio.add(page(ALICE, 2095, 0))
    attribution = Attribution(settings(), client_factory=twilio.client)
    assert attribution.read(reply(ALICE, "on it", 1)).reply_code == "2095"
    twilio.add(page(ALICE, 2096, 2))                      # another incident pages Alice
    assert attribution.read(reply(ALICE, "ack", 3)).reply_code == "2096"
    assert len(twilio.lists) == 2


def test_of_texts_of_the_same_second_the_first_twilio_lists_wins_over_the_calls_own():
    """Twilio's dates have whole seconds: a page and another incident's text in the same second as the
    reply. Twilio lists the later one first; the call's own copy of its page must not jump the queue."""
    from fn_twilio.lib.intents import SentText
    twilio = FakeTwilio()
    mine, theirs = page(ALICE, 2095, 0), page(ALICE, 2096, 0)
    twilio.add(theirs, mine)                       # as Twilio lists them: the later first
    attribution = Attribution(settings(), client_factory=twilio.client)
    attribution.add([SentText(ALICE, mine.body, T0, sid=mine.sid)])
    assert attribution.read(reply(ALICE, "ack", 0)).reply_code == "2096"


def test_a_plain_text_in_between_makes_a_bare_ok_answer_nothing():
    twilio = FakeTwilio()
    twilio.add(page(ALICE, 2095, 0))
    attribution = Attribution(settings(), client_factory=twilio.client)
    twilio.add(message(SENDER, "FYI: bridge moved", sent=T0 + timedelta(minutes=2), to=ALICE,
                       direction="outbound-api"))
    read = attribution.read(reply(ALICE, "ok", 3))
    assert (read.intent, read.reply_code, read.code_pending) == ("acknowledge", None, False)


def test_a_whatsapp_reply_is_matched_with_the_texts_sent_on_whatsapp():
    wa = "whatsapp:" + ALICE
    twilio = FakeTwilio()
    # a WhatsApp page, then an SMS page to the same phone
    twilio.add(page(wa, 2101, 0, from_="whatsapp:" + SENDER), page(ALICE, 2102, 1))
    attribution = Attribution(settings(), client_factory=twilio.client)
    assert attribution.read(reply(wa, "ack", 2)).reply_code == "2101"
    (listed,) = twilio.lists
    assert (listed["to"], listed["from_"]) == (wa, "whatsapp:" + SENDER)


def test_a_reply_naming_its_code_needs_no_listing():
    twilio = FakeTwilio()
    attribution = Attribution(settings(), client_factory=twilio.client)
    read = attribution.read(reply(ALICE, "2095 ack", 1))
    assert (read.intent, read.reply_code) == ("acknowledge", "2095")
    assert twilio.lists == []


def test_texts_the_call_sent_itself_count_before_twilio_lists_them():
    from fn_twilio.lib.intents import SentText
    twilio = FakeTwilio()
    attribution = Attribution(settings(), client_factory=twilio.client)
    attribution.add([SentText(ALICE, "Hi." + ack_request("4321"), T0)])
    assert attribution.read(reply(ALICE, "on my way", 1)).reply_code == "4321"


def test_with_a_messaging_service_only_its_texts_count():
    twilio = FakeTwilio()
    twilio.add(page(ALICE, 2095, 0, from_="+15005550007", service=MG),
               page(ALICE, 9999, 5, from_="+15005550008", service="MG" + "2" * 32))
    section = settings(twilio_src_address="", twilio_messaging_service_sid=MG)
    attribution = Attribution(section, client_factory=twilio.client)
    assert attribution.read(reply(ALICE, "ack", 10)).reply_code == "2095"
    (listed,) = twilio.lists
    assert listed["to"] == ALICE and "from_" not in listed


@pytest.mark.parametrize("fault", [TwilioRestException(500, "uri", "boom"), ConnectionError("reset"),
                                   ValueError("garbage")])
def test_a_listing_that_fails_leaves_the_code_unknown_and_it_is_read_again(fault):
    twilio = FakeTwilio()
    twilio.add(page(ALICE, 2095, 0))
    twilio.fail_next_pages.append(fault)
    attribution = Attribution(settings(), client_factory=twilio.client)
    bare = reply(ALICE, "ack", 1)
    read = attribution.read(bare)
    assert (read.intent, read.reply_code, read.code_pending) == ("acknowledge", None, True)
    assert pending([read]) == [read]
    again = attribution.read(bare)                       # the next look reads the log again
    assert (again.reply_code, again.code_pending) == ("2095", False)


def test_a_reply_naming_its_code_is_known_even_when_the_log_cannot_be_read():
    twilio = FakeTwilio()
    twilio.fail_next_pages.append(TwilioRestException(500, "uri", "boom"))
    read = Attribution(settings(), client_factory=twilio.client).read(reply(ALICE, "ack 2095", 1))
    assert (read.reply_code, read.code_pending) == ("2095", False) and twilio.lists == []


def test_the_listing_reads_at_most_the_page_cap_and_then_the_code_is_unknown():
    twilio = FakeTwilio()
    twilio.add(page(ALICE, 2095, 0))
    twilio.add(*(message(SENDER, f"note {n}", sent=T0 + timedelta(minutes=10, seconds=n), to=ALICE,
                         direction="outbound-api") for n in range(200)))
    capped = Attribution(settings(), client_factory=twilio.client, page_cap=2)
    read = capped.read(reply(ALICE, "ack", 5))
    assert (read.reply_code, read.code_pending) == (None, True)   # the page is beyond the cap: never guess
    assert len(twilio.lists) == 2
    uncapped = Attribution(settings(), client_factory=twilio.client, page_cap=11)
    assert uncapped.read(reply(ALICE, "ack", 5)).reply_code == "2095"


def test_close_closes_the_client_it_built():
    closed = []
    twilio = FakeTwilio()

    def factory(_settings=None):
        client = twilio.client()
        client.http_client.close = lambda: closed.append(True)
        return client

    with Attribution(settings(), client_factory=factory) as attribution:
        attribution.read(reply(ALICE, "ack", 1))
    assert closed == [True]


def test_the_latest_text_before_the_reply_counts_even_without_a_request():
    twilio = FakeTwilio()
    twilio.add(page(ALICE, 2095, 0), message(SENDER, "FYI: bridge moved", sent=T0 + timedelta(minutes=2),
                                             to=ALICE, direction="outbound-api"))
    attribution = Attribution(settings(), client_factory=twilio.client)
    assert attribution.read(reply(ALICE, "ok", 3)).reply_code is None
    assert len(twilio.lists) == 1


def test_a_call_for_an_incident_keeps_its_own_replies_and_bare_ones_read_once():
    twilio = FakeTwilio()
    twilio.add(page(ALICE, 2095, 0), page(ALICE, 2096, 5))
    attribution = Attribution(settings(), client_factory=twilio.client)
    reader = ReplyReader(attribution, "2095")
    own, other, bare = reply(ALICE, "ACK 2095", 6), reply(ALICE, "ack 2096", 7), reply(ALICE, "hello", 8)
    kept = reader.kept([own, other, bare])
    assert [(r.sid, r.reply_code) for r in kept] == [(own.sid, "2095")]   # bare "hello" answers 2096
    assert reader.kept([own, other, bare]) == kept and len(twilio.lists) == 1   # each reply read once
    assert [r.sid for r in ReplyReader(attribution, None).kept([own, other])] == [own.sid, other.sid]


@pytest.mark.parametrize("code, body, log_readable, answers", [
    ("2095", "ACK 2095", True, True),
    ("2095", "ack 2096", True, False),
    ("2095", "ok", True, False),           # the latest text asked nothing (a plain Send SMS)
    ("2095", "ack", False, False),         # code unknown: never guess
    (None, "ok", True, True),              # without incident_id, any reply (2.2.0)
    (None, "ack", False, True),
])
def test_a_reply_answers_the_call_only_with_its_code(code, body, log_readable, answers):
    twilio = FakeTwilio()
    twilio.add(page(ALICE, 2095, 0), message(SENDER, "FYI", sent=T0 + timedelta(minutes=1), to=ALICE,
                                             direction="outbound-api"))
    if not log_readable:
        twilio.fail_next_pages.append(TwilioRestException(500, "uri", "boom"))
    reader = ReplyReader(Attribution(settings(), client_factory=twilio.client), code)
    (read,) = reader.attribution.read_all([reply(ALICE, body, 2)])
    assert reader.answers(read) is answers


@pytest.mark.parametrize("bodies, refused", [
    ({ALICE: "no", BOB: "STOP"}, [ALICE, BOB]),        # a decline and an opt-out: everyone is out
    ({ALICE: "no"}, []),                                # Bob has not answered
    ({ALICE: "no", BOB: "maybe"}, []),                  # "maybe" is no refusal
    ({ALICE: "decline", BOB: "no"}, [ALICE, BOB]),
])
def test_refused_by_needs_every_number_out(bodies, refused):
    attribution = Attribution(settings(), client_factory=FakeTwilio().client)
    replies = [attribution.read(reply(n, body, i)) for i, (n, body) in enumerate(bodies.items())]
    assert refused_by(replies, [ALICE, BOB]) == refused


def test_refused_by_reads_each_numbers_latest_reply():
    attribution = Attribution(settings(), client_factory=FakeTwilio().client)
    replies = [attribution.read(reply(ALICE, "no", 1)), attribution.read(reply(ALICE, "ack", 2))]
    assert refused_by(replies, [ALICE]) == []


# -- a digest (contract §15): one text asking for several codes -----------------------------------------
def digest(to, codes, minutes):
    from fn_twilio.lib.storm import DigestLine, build_digests
    [text] = build_digests([DigestLine(f"Incident {c}", str(c), True, "High") for c in codes])
    return message(SENDER, text.body, sent=T0 + timedelta(minutes=minutes), to=to, direction="outbound-api")


@pytest.mark.parametrize("body, intent, code, codes", [
    ("ack", "acknowledge", "2101", ("2101", "2102", "2103")),        # a bare ack: every code it asked for
    ("ACK ALL", "acknowledge", "2101", ("2101", "2102", "2103")),
    ("Ok all, on it", "acknowledge", "2101", ("2101", "2102", "2103")),
    ("ACK 2102", "acknowledge", "2102", ("2102",)),                  # a code: that incident only
    ("ack 2099", "acknowledge", "2099", ("2099",)),                  # another code, whatever was sent
    ("no", "decline", "2101", ("2101", "2102", "2103")),
    ("NO 2103", "decline", "2103", ("2103",)),
    ("thanks", "other", "2101", ("2101", "2102", "2103")),
])
def test_a_reply_to_a_digest_answers_every_code_it_asked_for_or_the_one_it_names(body, intent, code, codes):
    twilio = FakeTwilio()
    twilio.add(page(ALICE, 2095, 0), digest(ALICE, [2101, 2102, 2103], 1))
    read = Attribution(settings(), client_factory=twilio.client).read(reply(ALICE, body, 2))
    assert (read.intent, read.reply_code, read.reply_codes) == (intent, code, codes)
    assert read.as_result()["reply_codes"] == list(codes)
    assert not read.answers("2095")                   # the page before the digest is answered no more


def test_a_reply_to_the_text_after_a_digest_answers_that_text_alone():
    twilio = FakeTwilio()
    twilio.add(digest(ALICE, [2101, 2102], 1), page(ALICE, 2095, 2))
    read = Attribution(settings(), client_factory=twilio.client).read(reply(ALICE, "ACK ALL", 3))
    assert (read.reply_code, read.reply_codes) == ("2095", ("2095",))


def test_a_digest_asking_nothing_makes_a_bare_ack_answer_nothing():
    from fn_twilio.lib.storm import DigestLine, build_digests
    [text] = build_digests([DigestLine("Server restarted", "2104"), DigestLine("Disk full", "2105")])
    twilio = FakeTwilio()
    twilio.add(page(ALICE, 2095, 0), message(SENDER, text.body, sent=T0 + timedelta(minutes=1), to=ALICE,
                                             direction="outbound-api"))
    read = Attribution(settings(), client_factory=twilio.client).read(reply(ALICE, "ack", 2))
    assert (read.reply_code, read.reply_codes) == (None, ())


@pytest.mark.parametrize("code, body, kept_code, answers", [
    ("2102", "ack", "2102", True),         # shown with the call's own code
    ("2102", "ACK ALL", "2102", True),
    ("2102", "ACK 2102", "2102", True),
    ("2102", "ACK 2101", None, False),     # another incident of the digest: left out
    ("2099", "ack", None, False),          # a call whose code the digest did not ask for
    (None, "ack", "2101", True),           # without incident_id: any reply, its first code
])
def test_a_call_with_a_code_reads_a_digest_answer_as_its_own(code, body, kept_code, answers):
    twilio = FakeTwilio()
    twilio.add(digest(ALICE, [2101, 2102, 2103], 1))
    reader = ReplyReader(Attribution(settings(), client_factory=twilio.client), code)
    answer = reply(ALICE, body, 2)
    kept = reader.kept([answer])
    assert [r.reply_code for r in kept] == ([kept_code] if answers else [])
    assert reader.answers(reader.attribution.read(answer)) is answers


def test_a_reply_whose_code_is_not_known_answers_no_code():
    pending_reply = Reply("SM1", ALICE, SENDER, "ack", T0, T0, code_pending=True, reply_codes=("2101",))
    assert not pending_reply.answers("2101")
