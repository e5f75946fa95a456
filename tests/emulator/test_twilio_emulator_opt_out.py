"""Opt-out in the emulator as Twilio does it: a single-word STOP-family reply blocks the sender (and its
Messaging Service) for that number with 21610 until START, YES or UNSTOP."""
import pytest
import requests
from twilio.base.exceptions import TwilioRestException

from sandbox.twilio_emulator import ACCOUNT_SID, AUTH_TOKEN, MESSAGING_SERVICE_SID, SENDER, TwilioEmulator

USER, OTHER_USER = "+353861234567", "+353861234568"
POOL_NUMBER = "+15005550010"          # a second number of the Messaging Service
LONE_NUMBER = "+15005550011"          # a number of the account outside the service


def create(emu, to=USER, **fields):
    """POST Messages.json as the SDK would; returns the requests Response (to see Twilio's error JSON)."""
    fields = fields or {"From": SENDER}
    return requests.post(f"{emu.base_url}/2010-04-01/Accounts/{ACCOUNT_SID}/Messages.json",
                         data={"To": to, "Body": "Incident 2095 needs you", **fields},
                         auth=(ACCOUNT_SID, AUTH_TOKEN), timeout=5)


def assert_opted_out(resp):
    assert resp.status_code == 400
    assert resp.json() == {"code": 21610, "message": "Attempt to send to unsubscribed recipient",
                           "more_info": "https://www.twilio.com/docs/errors/21610", "status": 400}


# (inbound body, opts the user out)
STOP_WORDS = ("STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT", "REVOKE", "OPTOUT")
STOP_REPLIES = [(w, True) for w in STOP_WORDS]
STOP_REPLIES += [
    ("stop", True), (" Stop. ", True), ("STOP!", True), ("unsubscribe\n", True),
    ("stop please", False),             # Twilio needs the single word
    ("STOP 2095", False),
    ("please stop", False),
    ("stopped", False),
    ("ack", False),
    ("", False),
]


@pytest.mark.parametrize("body,opted_out", STOP_REPLIES)
def test_stop_family_single_word_opts_out(emu, body, opted_out):
    emu.inject_inbound(from_=USER, to=SENDER, body=body)
    resp = create(emu)
    if opted_out:
        assert_opted_out(resp)
        assert len(emu.outbound_messages()) == 0          # nothing was created
    else:
        assert resp.status_code == 201 and resp.json()["status"] == "queued"


@pytest.mark.parametrize("body", ["START", "yes", "Unstop.", " YES! "])
def test_start_family_opts_back_in(emu, body):
    emu.inject_inbound(from_=USER, to=SENDER, body="STOP")
    assert_opted_out(create(emu))
    emu.inject_inbound(from_=USER, to=SENDER, body=body)
    assert create(emu).status_code == 201


@pytest.mark.parametrize("body", ["yes please", "start again", "ok"])
def test_other_replies_do_not_opt_back_in(emu, body):
    emu.inject_inbound(from_=USER, to=SENDER, body="STOP")
    emu.inject_inbound(from_=USER, to=SENDER, body=body)
    assert_opted_out(create(emu))


def test_opt_out_is_per_recipient_and_the_keywords_stay_in_the_log(emu, client):
    stop = emu.inject_inbound(from_=USER, to=SENDER, body="STOP")
    assert create(emu, to=OTHER_USER).status_code == 201
    with pytest.raises(TwilioRestException) as exc:     # the SDK sees Twilio's code
        client.messages.create(to=USER, from_=SENDER, body="x")
    assert exc.value.status == 400 and exc.value.code == 21610
    assert stop["sid"] in [m.sid for m in client.messages.list(from_=USER, to=SENDER)]


def test_opt_out_covers_the_whole_messaging_service():
    services = {MESSAGING_SERVICE_SID: (SENDER, POOL_NUMBER)}
    with TwilioEmulator(numbers=(SENDER, POOL_NUMBER, LONE_NUMBER), messaging_services=services) as emu:
        emu.inject_inbound(from_=USER, to=SENDER, body="STOP")
        assert_opted_out(create(emu, From=SENDER))
        assert_opted_out(create(emu, From=POOL_NUMBER))                      # same service
        assert_opted_out(create(emu, MessagingServiceSid=MESSAGING_SERVICE_SID))
        assert create(emu, From=LONE_NUMBER).status_code == 201              # not in the service
        assert create(emu, to=OTHER_USER, From=POOL_NUMBER).status_code == 201
        emu.inject_inbound(from_=USER, to=POOL_NUMBER, body="UNSTOP")     # opting in to one opts in to all
        for fields in ({"From": SENDER}, {"From": POOL_NUMBER},
                       {"MessagingServiceSid": MESSAGING_SERVICE_SID}):
            assert create(emu, **fields).status_code == 201


def test_opt_out_from_a_lone_number_stays_with_that_number():
    services = {MESSAGING_SERVICE_SID: (SENDER, POOL_NUMBER)}
    with TwilioEmulator(numbers=(SENDER, POOL_NUMBER, LONE_NUMBER), messaging_services=services) as emu:
        emu.inject_inbound(from_=USER, to=LONE_NUMBER, body="quit")
        assert_opted_out(create(emu, From=LONE_NUMBER))
        assert create(emu, From=SENDER).status_code == 201
        assert create(emu, MessagingServiceSid=MESSAGING_SERVICE_SID).status_code == 201


def test_reset_forgets_opt_outs(emu):
    emu.inject_inbound(from_=USER, to=SENDER, body="STOP")
    emu.reset()
    assert create(emu).status_code == 201
