"""Tests for fn_twilio.lib.intents: reply intents, reply codes, the acknowledgement request,
keyword checks and attribution of bare replies to the latest page."""
import random
import re
from datetime import datetime, timedelta, timezone

import pytest

from fn_twilio.lib import intents
from fn_twilio.lib.intents import (DEFAULT_ACK_KEYWORDS, DEFAULT_DECLINE_KEYWORDS, TWILIO_KEYWORDS, Intent,
                                   KeywordError, Keywords, Reading, SentText, ack_request, check_keywords,
                                   keywords, latest_page, page_code, random_code, read_reply, reply_code,
                                   requested_code)

ACK, DECLINE, OTHER = Intent.ACKNOWLEDGE, Intent.DECLINE, Intent.OTHER
OPT_OUT, OPT_IN, HELP = Intent.OPT_OUT, Intent.OPT_IN, Intent.HELP

# (reply body, intent, code it names)
READINGS = [
    ("ack", ACK, None),
    ("ACK 2095", ACK, "2095"),
    ("ack #2095", ACK, "2095"),
    ("2095 ack", ACK, "2095"),
    ("#2095 ACK", ACK, "2095"),
    ("Ack, on my way", ACK, None),
    ("ACK 2095, on my way", ACK, "2095"),
    ("ack 2095.", ACK, "2095"),
    ("  Acknowledged!  ", ACK, None),
    ("acknowledge 7", ACK, "7"),
    ("ok", ACK, None),
    ("OK.", ACK, None),
    ("Ok 02095", ACK, "2095"),              # leading zeros dropped: codes are plain numbers
    ("ACK👍", ACK, None),
    ("okay", OTHER, None),                  # only the keyword itself
    ("acked", OTHER, None),
    ("no", DECLINE, None),
    ("No.", DECLINE, None),
    ("NO 2095", DECLINE, "2095"),
    ("2095 decline", DECLINE, "2095"),
    ("decline #31", DECLINE, "31"),
    ("no way, I'm off today", OTHER, None),  # a decline is the keyword alone (contract §13.1)
    ("No problem, on it", OTHER, None),
    ("No worries, ACK 2101", ACK, "2101"),  # "<ack keyword> <code>" anywhere
    ("Sure thing. ok #2101 on my way", ACK, "2101"),
    ("no 2095 sorry", OTHER, None),
    ("2095 no", DECLINE, "2095"),
    ("no no", OTHER, None),
    ("ＡＣＫ ２１０１", ACK, "2101"),        # full-width: NFKC
    ("ack ２１０１", ACK, "2101"),
    ("ｎｏ", DECLINE, None),
    ("ＳＴＯＰ", OPT_OUT, None),
    ("ack ٢١٠١", ACK, "2101"),              # Arabic-Indic digits
    ("OK 2101 and 2102", ACK, "2101"),      # the first code named
    ("thanks, ok", OTHER, None),            # a bare keyword counts only as the first word
    ("not me", OTHER, None),
    ("STOP", OPT_OUT, None),
    ("stop", OPT_OUT, None),
    (" Stop. ", OPT_OUT, None),
    ("stop please", OTHER, None),           # Twilio needs the single word: not an opt-out
    ("STOP 2095", OTHER, None),
    ("STOPALL", OPT_OUT, None),
    ("unsubscribe", OPT_OUT, None),
    ("Cancel", OPT_OUT, None),
    ("end", OPT_OUT, None),
    ("QUIT!", OPT_OUT, None),
    ("revoke", OPT_OUT, None),
    ("optout", OPT_OUT, None),
    ("YES", OPT_IN, None),                  # opt-in, never an acknowledgement
    ("yes", OPT_IN, None),
    ("yes I'll take it", OTHER, None),
    ("START", OPT_IN, None),
    ("unstop", OPT_IN, None),
    ("help", HELP, None),
    ("INFO", HELP, None),
    ("help me", OTHER, None),
    ("👍", OTHER, None),                    # emoji
    ("👍 ack 2095", ACK, "2095"),           # an emoji is not a word
    ("STOP 👍", OTHER, None),               # not the single word
    ("", OTHER, None),                      # empty body
    ("   ", OTHER, None),
    (None, OTHER, None),
    ("ack abc", ACK, None),                 # a code that is not a number
    ("ack #abc", ACK, None),
    ("ack 20x5", ACK, None),
    ("ack 2095x", ACK, None),
    ("abc ack", OTHER, None),
    ("2095", OTHER, None),                  # a code alone names nothing
    ("2095 thanks", OTHER, None),
    ("call me on 2095", OTHER, None),
]


@pytest.mark.parametrize("body,intent,code", READINGS)
def test_read_reply(body, intent, code):
    assert read_reply(body) == Reading(intent, code)


def test_intent_values_are_the_contract_names():
    assert [i.value for i in Intent] == ["opt_out", "opt_in", "help", "acknowledge", "decline", "other"]
    assert Intent.ACKNOWLEDGE == "acknowledge"


CUSTOM = keywords(["ROGER", "Got", "on"], ["pass", "busy"])


@pytest.mark.parametrize("body,intent,code", [
    ("roger 2095", ACK, "2095"),
    ("got it", ACK, None),
    ("ON IT", ACK, None),
    ("busy", DECLINE, None),
    ("2095 pass", DECLINE, "2095"),
    ("ack", OTHER, None),                   # the defaults no longer apply
    ("no", OTHER, None),
    ("STOP", OPT_OUT, None),                # Twilio's keywords whatever the settings
    ("yes", OPT_IN, None),
])
def test_read_reply_with_configured_keywords(body, intent, code):
    assert read_reply(body, CUSTOM) == Reading(intent, code)


def test_default_keywords():
    assert keywords() == Keywords() == Keywords(DEFAULT_ACK_KEYWORDS, DEFAULT_DECLINE_KEYWORDS)
    assert Keywords().acknowledge == ("ACK", "ACKNOWLEDGE", "ACKNOWLEDGED", "OK")
    assert Keywords().decline == ("NO", "DECLINE")
    assert set(TWILIO_KEYWORDS) == {"STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT", "REVOKE",
                                    "OPTOUT", "START", "YES", "UNSTOP", "HELP", "INFO"}


def test_keywords_are_upper_cased_and_deduplicated_in_order():
    assert keywords([" ok ", "Ack", "OK"], ["no"]) == Keywords(("OK", "ACK"), ("NO",))


# (acknowledge, decline, setting named, words the message must contain)
BAD_KEYWORDS = [(ack, dec, name, words) for ack, dec, name, words in [
    (["ACK", "YES"], ["NO"], "ack_keywords", ["'YES'", "opt-in"]),
    (["ACK"], ["NO", "stop"], "decline_keywords", ["'stop'", "opt-out"]),
    (["Help"], ["NO"], "ack_keywords", ["'Help'", "help"]),
    (["info"], ["NO"], "ack_keywords", ["'info'"]),
    (["ACK"], ["QUIT"], "decline_keywords", ["'QUIT'"]),
    (["START"], ["NO"], "ack_keywords", ["'START'"]),
    (["on it"], ["NO"], "ack_keywords", ["'on it'", "one word"]),
    (["A-OK"], ["NO"], "ack_keywords", ["'A-OK'"]),
    (["👍"], ["NO"], "ack_keywords", ["one word"]),
    (["2095"], ["NO"], "ack_keywords", ["'2095'", "number"]),
    ([], ["NO"], "ack_keywords", ["no keyword"]),
    (["ACK"], [""], "decline_keywords", ["''"]),
    (["ACK", "OK"], ["ok"], "decline_keywords", ["'OK'", "ack_keywords"]),
]]


@pytest.mark.parametrize("ack,dec,name,words", BAD_KEYWORDS)
def test_bad_keywords_are_refused_naming_setting_and_word(ack, dec, name, words):
    with pytest.raises(KeywordError) as exc:
        keywords(ack, dec)
    message = str(exc.value)
    assert message.startswith(name)
    for word in words:
        assert word in message


@pytest.mark.parametrize("word", TWILIO_KEYWORDS)
def test_every_twilio_keyword_is_refused(word):
    with pytest.raises(KeywordError, match=f"ack_keywords: '{word.lower()}' is one of Twilio's"):
        check_keywords([word.lower()], name="ack_keywords")


# --- the acknowledgement request and codes ---------------------------------------------------------

def test_ack_request_uses_the_first_ack_keyword():
    assert ack_request("2095") == " Reply ACK 2095 to acknowledge."
    assert ack_request("4711", CUSTOM) == " Reply ROGER 4711 to acknowledge."


@pytest.mark.parametrize("body,code", [
    ("Incident 2095 needs you." + ack_request("2095"), "2095"),
    ("x" + ack_request("4711", CUSTOM), "4711"),       # read back whatever the keyword
    ("Incident 2095 needs you." + ack_request("2095") + " \n", "2095"),
    ("Incident 2095 needs you.", None),                 # asked for nothing
    ("Reply ACK 2095 to acknowledge. More text", None),  # only as the ending
    ("", None),
    (None, None),
])
def test_requested_code(body, code):
    assert requested_code(body) == code


def test_a_reply_to_the_request_reads_back_as_an_acknowledgement_with_its_code():
    word, code = ack_request("2095").split()[1:3]
    assert read_reply(f"{word} {code}") == Reading(ACK, "2095")


def test_random_code_is_four_digits_and_injectable():
    assert random_code(random.Random(7)) == random_code(random.Random(7))
    codes = {random_code(random.Random(seed)) for seed in range(200)}
    assert len(codes) > 150
    assert all(len(c) == 4 and c.isdigit() and c[0] != "0" for c in codes)
    assert len(random_code()) == 4


def test_page_code_is_the_incident_id_else_random():
    assert page_code(2095) == "2095"
    assert page_code(None, random.Random(1)) == random_code(random.Random(1))
    for bad in (0, -3, True, "2095"):
        with pytest.raises(ValueError, match="incident_id"):
            page_code(bad)


# --- attribution ---------------------------------------------------------------------------------

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=timezone.utc)
ALICE, BOB = "+353861234567", "+353869876543"


def page(to, incident, minutes, ask=True):
    body = f"Incident {incident} needs you." + (ack_request(str(incident)) if ask else "")
    return SentText(to=to, body=body, date=T0 + timedelta(minutes=minutes))


# Alice paged for 2095, then for 2096; Bob paged for 2096 only; all listed newest first as Twilio does.
SENT = [page(BOB, 2096, 6), page(ALICE, 2096, 5), page(ALICE, 2095, 0)]

# (reply body, from, minutes after T0, reply code)
ATTRIBUTION = [
    ("ACK 2095", ALICE, 10, "2095"),        # names its page
    ("2096 ack", ALICE, 10, "2096"),
    ("ack", ALICE, 10, "2096"),             # a bare ack answers the later page only
    ("ack", ALICE, 3, "2095"),              # ... the latest page sent before the reply
    ("ack", ALICE, 5, "2096"),              # same second as the page: it counts
    ("on my way", ALICE, 10, "2096"),       # any reply gets the latest page's code
    ("STOP", ALICE, 10, "2096"),
    ("ok 5 min", ALICE, 10, "5"),           # "ok 5" names code 5: the code it names, always
    ("ok, on my way", ALICE, 10, "2096"),
    ("ACK 2095", BOB, 10, "2095"),          # the code named, even one never asked of Bob
    ("ack", BOB, 10, "2096"),
    ("ack", BOB, 5, None),                  # nothing sent to Bob before the reply
    ("ack", "+14155552345", 10, None),      # never paged
    ("ACK 2095", ALICE, -1, "2095"),        # a named code needs no page
    ("ack", ALICE, -1, None),               # before any page
]


@pytest.mark.parametrize("body,number,minutes,code", ATTRIBUTION)
def test_reply_code(body, number, minutes, code):
    assert reply_code(read_reply(body), number, T0 + timedelta(minutes=minutes), SENT) == code


def test_reply_code_is_null_when_the_latest_page_asked_for_none():
    sent = [page(ALICE, 2096, 5, ask=False), page(ALICE, 2095, 0)]
    at = T0 + timedelta(minutes=10)
    assert reply_code(read_reply("ack"), ALICE, at, sent) is None
    assert reply_code(read_reply("ack 2095"), ALICE, at, sent) == "2095"


def test_reply_code_does_not_depend_on_the_order_given():
    at = T0 + timedelta(minutes=10)
    assert reply_code(read_reply("ack"), ALICE, at, list(reversed(SENT))) == "2096"


def test_latest_page_ties_go_to_the_first_listed():
    first, second = page(ALICE, 2097, 5), page(ALICE, 2096, 5)
    assert latest_page(ALICE, T0 + timedelta(minutes=5), [first, second]) is first
    assert latest_page(ALICE, T0 + timedelta(minutes=5), [second, first]) is second
    assert latest_page(ALICE, T0, [first]) is None


def test_module_is_plain_python():
    source = open(intents.__file__, encoding="utf-8").read()
    assert not re.search(r"^\s*(import|from)\s+resilient", source, re.MULTILINE)


@pytest.mark.parametrize("body, every", [
    ("ACK ALL", True),
    ("ack all", True),
    ("Ack all, on it", True),
    ("ＡＣＫ ＡＬＬ", True),               # full-width
    ("OK ALL", True),                        # any acknowledgement keyword, then ALL
    ("ack", False),
    ("ack, on it all night", False),        # "all" is not the second word
    ("ack alley", False),
])
def test_ack_all_acknowledges_every_code_of_the_text_it_answers(body, every):
    assert read_reply(body) == Reading(ACK, None, every)


def test_ack_all_with_a_code_is_an_acknowledgement_of_that_code():
    assert read_reply("ACK 2101 ALL") == Reading(ACK, "2101")
    assert read_reply("roger all", CUSTOM) == Reading(ACK, None, True)
    assert read_reply("no all") == Reading(OTHER)
    assert read_reply("ALL ACK") == Reading(OTHER)
