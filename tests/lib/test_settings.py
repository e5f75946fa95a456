"""Tests for fn_twilio.lib.settings: every key valid and invalid; secrets never shown."""
import dataclasses

import pytest

from fn_twilio.lib.intents import Keywords
from fn_twilio.lib.settings import DEFAULTS, SECTION, Settings, SettingsError, load_settings

ACCOUNT = "AC" + "0123456789abcdef" * 2
API_KEY = "SK" + "fedcba9876543210" * 2
SERVICE = "MG" + "0123456789ABCDEF" * 2
TOKEN = "T0k3n-SECRET-1f2e3d4c5b6a"          # recognisable secrets
KEY_SECRET = "KeySecret-ZYXW-98765-qrstu"

BASE = {
    "twilio_account_sid": ACCOUNT,
    "twilio_auth_token": TOKEN,
    "twilio_src_address": "+1 415 555 2345",
}


def load(**changes):
    section = dict(BASE)
    for key, value in changes.items():
        if value is _DROP:
            section.pop(key, None)
        else:
            section[key] = value
    return load_settings(section)


_DROP = object()


def test_minimal_section_and_defaults():
    settings = load()
    assert settings == Settings(account_sid=ACCOUNT, auth_token=TOKEN, src_address="+14155552345")
    assert (settings.max_recipients, settings.max_concurrency) == (100, 5)
    assert (settings.poll_interval, settings.max_wait_timeout, settings.timeout) == (2.0, 86400.0, 30.0)
    assert settings.base_url == "https://api.twilio.com"
    assert settings.default_region is None and settings.proxies is None and settings.verify is True
    assert settings.sender == "+14155552345"
    assert settings.auth_token == TOKEN and settings.api_key_secret is None


def test_defaults_table():
    assert SECTION == "fn_twilio_send_sms"
    assert DEFAULTS == {
        "max_recipients": "100", "max_concurrency": "5", "poll_interval": "2s", "max_wait_timeout": "24h",
        "timeout": "30", "twilio_base_url": "https://api.twilio.com",
        "ack_keywords": "ACK, ACKNOWLEDGE, ACKNOWLEDGED, OK", "decline_keywords": "NO, DECLINE",
        "max_texts_per_person": "10", "person_window": "60s",
    }
    assert all(isinstance(value, str) for value in DEFAULTS.values())


# (changes to BASE, attribute, expected value)
VALID = [
    ({"twilio_account_sid": "  " + ACCOUNT + "  "}, "account_sid", ACCOUNT),
    ({"twilio_account_sid": ACCOUNT.upper().replace("AC", "AC", 1)}, "account_sid", ACCOUNT.upper()),
    ({"twilio_auth_token": "  " + TOKEN + " "}, "auth_token", TOKEN),
    ({"twilio_auth_token": _DROP, "twilio_api_key_sid": API_KEY, "twilio_api_key_secret": KEY_SECRET},
     "api_key_sid", API_KEY),
    ({"twilio_auth_token": "", "twilio_api_key_sid": API_KEY, "twilio_api_key_secret": KEY_SECRET},
     "api_key_secret", KEY_SECRET),
    # both token and key: both kept, the key wins (clients check api_key_sid first)
    ({"twilio_api_key_sid": API_KEY, "twilio_api_key_secret": KEY_SECRET}, "auth_token", TOKEN),
    ({"twilio_api_key_sid": API_KEY, "twilio_api_key_secret": KEY_SECRET}, "api_key_secret", KEY_SECRET),
    ({"twilio_src_address": "00353 86 123 4567"}, "src_address", "+353861234567"),
    ({"twilio_src_address": "(415) 555-2345", "default_region": "us"}, "src_address", "+14155552345"),
    ({"twilio_src_address": "whatsapp:+14155552345"}, "src_address", "whatsapp:+14155552345"),
    ({"twilio_src_address": "+15005550006"}, "src_address", "+15005550006"),
    ({"twilio_src_address": "Acme"}, "src_address", "Acme"),
    ({"twilio_src_address": "ACME SOC 24"}, "src_address", "ACME SOC 24"),
    ({"twilio_src_address": "A"}, "src_address", "A"),
    ({"twilio_src_address": _DROP, "twilio_messaging_service_sid": SERVICE}, "messaging_service_sid",
     SERVICE),
    ({"twilio_src_address": "", "twilio_messaging_service_sid": SERVICE}, "sender", SERVICE),
    ({"twilio_messaging_service_sid": SERVICE}, "sender", "+14155552345"),
    ({"default_region": "ie"}, "default_region", "IE"),
    ({"default_region": " GB "}, "default_region", "GB"),
    ({"default_region": ""}, "default_region", None),
    ({"max_recipients": "1"}, "max_recipients", 1),
    ({"max_recipients": " 1000 "}, "max_recipients", 1000),
    ({"max_recipients": 250}, "max_recipients", 250),
    ({"max_recipients": ""}, "max_recipients", 100),
    ({"max_concurrency": "1"}, "max_concurrency", 1),
    ({"max_concurrency": "50"}, "max_concurrency", 50),
    ({"max_concurrency": 10.0}, "max_concurrency", 10),
    ({"poll_interval": "0.2s"}, "poll_interval", 0.2),
    ({"poll_interval": "5"}, "poll_interval", 5.0),
    ({"poll_interval": "10m"}, "poll_interval", 600.0),
    ({"poll_interval": " 1 M "}, "poll_interval", 60.0),
    ({"poll_interval": 3}, "poll_interval", 3.0),
    ({"max_wait_timeout": "1w"}, "max_wait_timeout", 604800.0),
    ({"max_wait_timeout": "90"}, "max_wait_timeout", 90.0),
    ({"max_wait_timeout": "1.5h"}, "max_wait_timeout", 5400.0),
    ({"timeout": "10"}, "timeout", 10.0),
    ({"timeout": "2.5"}, "timeout", 2.5),
    ({"timeout": "1m"}, "timeout", 60.0),
    ({"timeout": 45}, "timeout", 45.0),
    ({"twilio_base_url": "http://localhost:8080"}, "base_url", "http://localhost:8080"),
    ({"twilio_base_url": "http://127.0.0.1:4010/"}, "base_url", "http://127.0.0.1:4010"),
    ({"twilio_base_url": "HTTPS://api.twilio.com/"}, "base_url", "https://api.twilio.com"),
    ({"twilio_base_url": "http://[::1]:8080"}, "base_url", "http://[::1]:8080"),
    ({"unknown_key": "whatever", "twilio_sms_unused": "x"}, "account_sid", ACCOUNT),
    ({}, "max_texts_per_person", 10),
    ({}, "person_window", 60.0),
    ({"max_texts_per_person": " 3 "}, "max_texts_per_person", 3),
    ({"max_texts_per_person": 30, "person_window": "30s"}, "max_texts_per_person", 30),
    ({"max_texts_per_person": "30", "person_window": "1h"}, "max_texts_per_person", 30),
    ({"person_window": "5s", "max_texts_per_person": "5"}, "person_window", 5.0),
    ({"person_window": "10s", "max_texts_per_person": "10"}, "person_window", 10.0),
    ({"person_window": "1h"}, "person_window", 3600.0),
    ({"person_window": "90"}, "person_window", 90.0),
]


@pytest.mark.parametrize("changes,attribute,expected", VALID)
def test_valid(changes, attribute, expected):
    assert getattr(load(**changes), attribute) == expected


# (changes to BASE, key the message must name, words it must contain)
INVALID = [
    ({"twilio_account_sid": _DROP}, "twilio_account_sid", "is not set"),
    ({"twilio_account_sid": "   "}, "twilio_account_sid", "is not set"),
    ({"twilio_account_sid": "ACxxxxxxxx"}, "twilio_account_sid", "placeholder"),
    ({"twilio_account_sid": "ACXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXX"}, "twilio_account_sid", "placeholder"),
    ({"twilio_account_sid": "<account sid>"}, "twilio_account_sid", "placeholder"),
    ({"twilio_account_sid": "AC123"}, "twilio_account_sid", "'AC123' is malformed: expected AC"),
    ({"twilio_account_sid": API_KEY}, "twilio_account_sid", "malformed"),
    ({"twilio_account_sid": ACCOUNT + "0"}, "twilio_account_sid", "malformed"),
    ({"twilio_account_sid": "ac" + ACCOUNT[2:]}, "twilio_account_sid", "malformed"),
    ({"twilio_account_sid": "$TWILIO_ACCOUNT_SID"}, "twilio_account_sid", "unresolved"),
    ({"twilio_auth_token": _DROP}, "twilio_auth_token", "is not set"),
    ({"twilio_auth_token": ""}, "twilio_auth_token", "is not set"),
    ({"twilio_auth_token": "<your token>"}, "twilio_auth_token", "placeholder"),
    ({"twilio_auth_token": "xxxxxxxxxxxxxxxx"}, "twilio_auth_token", "placeholder"),
    ({"twilio_auth_token": "your_auth_token"}, "twilio_auth_token", "placeholder"),
    ({"twilio_auth_token": "^twilio_auth_token"}, "twilio_auth_token", "unresolved"),
    ({"twilio_auth_token": "${TWILIO_AUTH_TOKEN}"}, "twilio_auth_token", "unresolved"),
    ({"twilio_api_key_sid": API_KEY}, "twilio_api_key_secret", "is not set"),
    ({"twilio_api_key_sid": API_KEY, "twilio_api_key_secret": "  "}, "twilio_api_key_secret", "is not set"),
    ({"twilio_api_key_secret": KEY_SECRET}, "twilio_api_key_sid", "is not set"),
    ({"twilio_api_key_sid": "SK123", "twilio_api_key_secret": KEY_SECRET}, "twilio_api_key_sid",
     "'SK123' is malformed: expected SK"),
    ({"twilio_api_key_sid": ACCOUNT, "twilio_api_key_secret": KEY_SECRET}, "twilio_api_key_sid", "malformed"),
    ({"twilio_api_key_sid": "SKxxxxxxxx", "twilio_api_key_secret": KEY_SECRET}, "twilio_api_key_sid",
     "placeholder"),
    ({"twilio_api_key_sid": API_KEY, "twilio_api_key_secret": "<secret>"}, "twilio_api_key_secret",
     "placeholder"),
    ({"twilio_src_address": _DROP}, "twilio_src_address", "twilio_messaging_service_sid"),
    ({"twilio_src_address": " "}, "twilio_src_address", "no sender"),
    ({"twilio_src_address": "(415) 555-2345"}, "twilio_src_address", "has no country code"),
    ({"twilio_src_address": "+1234567890"}, "twilio_src_address", "not a possible phone number"),
    ({"twilio_src_address": "+15558675310"}, "twilio_src_address", "not a valid number for US"),
    ({"twilio_src_address": "+1 415 555 2345 ext 9"}, "twilio_src_address", "extension"),
    ({"twilio_src_address": "Acme Security"}, "twilio_src_address", "letters"),  # 13 chars: too long an ID
    ({"twilio_src_address": "Acme-SOC"}, "twilio_src_address", "letters"),
    ({"twilio_src_address": "+1xxxxxxxxxx"}, "twilio_src_address", "letters"),
    ({"twilio_src_address": "<your number>"}, "twilio_src_address", "placeholder"),
    ({"twilio_src_address": _DROP, "twilio_messaging_service_sid": "MG123"}, "twilio_messaging_service_sid",
     "'MG123' is malformed: expected MG"),
    ({"twilio_src_address": _DROP, "twilio_messaging_service_sid": "MGxxxxxxxx"},
     "twilio_messaging_service_sid", "placeholder"),
    ({"default_region": "UK"}, "default_region", "'UK'"),
    ({"default_region": "USA"}, "default_region", "'USA'"),
    ({"default_region": "001"}, "default_region", "'001'"),
    ({"max_recipients": "0"}, "max_recipients", "at least 1"),
    ({"max_recipients": "-5"}, "max_recipients", "'-5' is not a whole number"),
    ({"max_recipients": "1001"}, "max_recipients", "at most 1000"),
    ({"max_recipients": "ten"}, "max_recipients", "'ten' is not a whole number"),
    ({"max_recipients": "1.5"}, "max_recipients", "not a whole number"),
    ({"max_recipients": True}, "max_recipients", "not a whole number"),
    ({"max_concurrency": "0"}, "max_concurrency", "at least 1"),
    ({"max_concurrency": "51"}, "max_concurrency", "at most 50"),
    ({"max_concurrency": "5 threads"}, "max_concurrency", "not a whole number"),
    ({"poll_interval": "0.1s"}, "poll_interval", "shorter than the minimum of 0.2s"),
    ({"poll_interval": "0"}, "poll_interval", "shorter than the minimum"),
    ({"poll_interval": "11m"}, "poll_interval", "longer than the maximum of 10m"),
    ({"poll_interval": "1h"}, "poll_interval", "maximum"),
    ({"poll_interval": "fast"}, "poll_interval", "'fast' is not a duration"),
    ({"poll_interval": "-2s"}, "poll_interval", "negative"),
    ({"max_wait_timeout": "0s"}, "max_wait_timeout", "longer than zero"),
    ({"max_wait_timeout": "5 months"}, "max_wait_timeout", "unknown unit"),
    ({"max_wait_timeout": "-1h"}, "max_wait_timeout", "negative"),
    ({"timeout": "0"}, "timeout", "longer than zero"),
    ({"timeout": "-3"}, "timeout", "negative"),
    ({"timeout": "slow"}, "timeout", "'slow'"),
    ({"twilio_base_url": "api.twilio.com"}, "twilio_base_url", "http:// or https://"),
    ({"twilio_base_url": "ftp://api.twilio.com"}, "twilio_base_url", "http:// or https://"),
    ({"twilio_base_url": "https://"}, "twilio_base_url", "http:// or https://"),
    ({"twilio_base_url": "https://api.twilio.com/2010-04-01"}, "twilio_base_url", "must not have a path"),
    ({"twilio_base_url": "https://api.twilio.com/?x=1"}, "twilio_base_url", "must not have a path"),
    ({"twilio_base_url": "https://api.twilio.com#frag"}, "twilio_base_url", "must not have a path"),
    ({"twilio_base_url": "http://localhost:99999"}, "twilio_base_url", "not a valid URL"),
    ({"twilio_base_url": "http://user:pw@localhost"}, "twilio_base_url", "user name or password"),
    ({"max_texts_per_person": "0"}, "max_texts_per_person", "at least 1"),
    ({"max_texts_per_person": "31", "person_window": "1h"}, "max_texts_per_person", "at most 30"),
    ({"max_texts_per_person": "ten"}, "max_texts_per_person", "not a whole number"),
    ({"max_texts_per_person": "2.5"}, "max_texts_per_person", "not a whole number"),
    ({"person_window": "4s"}, "person_window", "shorter than the minimum of 5s"),
    ({"person_window": "0s"}, "person_window", "longer than zero"),
    ({"person_window": "61m"}, "person_window", "longer than the maximum of 1h"),
    ({"person_window": "a minute"}, "person_window", "'a minute' is not a duration"),
    ({"person_window": "-60s"}, "person_window", "negative"),
    # more than 30 texts to one number within 30 s: Twilio would fail them (14107)
    ({"max_texts_per_person": "6", "person_window": "5s"}, "person_window", "error 14107"),
    ({"max_texts_per_person": "11", "person_window": "10s"}, "max_texts_per_person", "up to 33 texts"),
]


@pytest.mark.parametrize("changes,key,words", INVALID)
def test_invalid(changes, key, words):
    with pytest.raises(SettingsError) as info:
        load(**changes)
    message = str(info.value)
    assert key in message
    assert words in message


def test_section_missing_or_wrong_type():
    with pytest.raises(SettingsError, match=r"\[fn_twilio_send_sms\] section is missing"):
        load_settings(None)
    with pytest.raises(SettingsError, match=r"\[fn_twilio_send_sms\] section must be a mapping"):
        load_settings("twilio_account_sid=AC...")


def test_settings_error_is_value_error():
    assert issubclass(SettingsError, ValueError)


@pytest.mark.parametrize("argument,key,expected", [
    (None, "12", 12.0),
    (60, "12", 60.0),
    ("7.5", "12", 7.5),
    ("", "12", 12.0),
    (None, None, 30.0),
])
def test_timeout_argument_overrides_key(argument, key, expected):
    section = dict(BASE)
    if key is not None:
        section["timeout"] = key
    assert load_settings(section, timeout=argument).timeout == expected


@pytest.mark.parametrize("argument", [0, -1, "never"])
def test_timeout_argument_invalid(argument):
    with pytest.raises(SettingsError, match="^timeout "):
        load_settings(BASE, timeout=argument)


def test_proxies_and_verify_passed_through():
    proxies = {"http": "http://proxy:3128", "https": "http://proxy:3128"}
    settings = load_settings(BASE, proxies=proxies, verify="/etc/ssl/ca.pem")
    assert settings.proxies == proxies and settings.verify == "/etc/ssl/ca.pem"
    assert load_settings(BASE, verify=False).verify is False


# --- secrets never shown ------------------------------------------------------------------------

SECRET_CASES = [
    # secret placed in a non-secret key by mistake: scrubbed from the message
    {"twilio_src_address": TOKEN},
    {"twilio_account_sid": TOKEN},
    {"default_region": TOKEN},
    {"max_recipients": TOKEN},
    {"poll_interval": TOKEN},
    {"twilio_base_url": "https://" + TOKEN + "/x"},
    {"twilio_api_key_sid": KEY_SECRET, "twilio_api_key_secret": KEY_SECRET},
    {"twilio_api_key_sid": TOKEN, "twilio_api_key_secret": KEY_SECRET},
    {"twilio_messaging_service_sid": KEY_SECRET, "twilio_api_key_sid": API_KEY,
     "twilio_api_key_secret": KEY_SECRET, "twilio_src_address": _DROP},
    # malformed secrets themselves
    {"twilio_auth_token": "<" + TOKEN + ">"},
    {"twilio_auth_token": "$" + TOKEN.replace("-", "_")},
    {"twilio_api_key_secret": "^" + KEY_SECRET.replace("-", "_")},
    {"twilio_api_key_secret": KEY_SECRET},
    {"twilio_base_url": "https://ACxx:" + TOKEN + "@api.twilio.com"},
]


@pytest.mark.parametrize("changes", SECRET_CASES)
def test_secrets_never_in_messages(changes):
    with pytest.raises(SettingsError) as info:
        load(**changes)
    message = str(info.value)
    for secret in (TOKEN, KEY_SECRET, TOKEN.replace("-", "_"), KEY_SECRET.replace("-", "_")):
        assert secret not in message
        assert secret not in repr(info.value)


def test_secrets_not_in_repr_or_str():
    settings = load(twilio_api_key_sid=API_KEY, twilio_api_key_secret=KEY_SECRET)
    for text in (repr(settings), str(settings), f"{settings}"):
        assert TOKEN not in text and KEY_SECRET not in text
        assert "auth_token" not in text and "api_key_secret" not in text
        assert ACCOUNT in text and API_KEY in text
    assert (settings.auth_token, settings.api_key_secret) == (TOKEN, KEY_SECRET)


def test_api_key_without_auth_token():
    settings = load(twilio_auth_token=_DROP, twilio_api_key_sid=API_KEY, twilio_api_key_secret=KEY_SECRET)
    assert settings.auth_token is None and settings.api_key_secret == KEY_SECRET


def test_settings_is_frozen():
    settings = load()
    with pytest.raises(dataclasses.FrozenInstanceError):
        settings.timeout = 1


# --- ack_keywords and decline_keywords ----------------------------------------------------------

def test_keyword_defaults():
    settings = load()
    assert settings.ack_keywords == ("ACK", "ACKNOWLEDGE", "ACKNOWLEDGED", "OK")
    assert settings.decline_keywords == ("NO", "DECLINE")
    assert settings.keywords == Keywords(settings.ack_keywords, settings.decline_keywords) == Keywords()


# (changes to BASE, ack_keywords, decline_keywords)
VALID_KEYWORDS = [
    ({"ack_keywords": "ROGER"}, ("ROGER",), ("NO", "DECLINE")),
    ({"ack_keywords": " roger , Got,ON "}, ("ROGER", "GOT", "ON"), ("NO", "DECLINE")),
    ({"ack_keywords": "ack, ack, OK,"}, ("ACK", "OK"), ("NO", "DECLINE")),     # duplicates, trailing comma
    ({"ack_keywords": "", "decline_keywords": "   "}, ("ACK", "ACKNOWLEDGE", "ACKNOWLEDGED", "OK"),
     ("NO", "DECLINE")),                                                       # blank: the defaults
    ({"decline_keywords": "pass, busy"}, ("ACK", "ACKNOWLEDGE", "ACKNOWLEDGED", "OK"), ("PASS", "BUSY")),
    ({"ack_keywords": "A1"}, ("A1",), ("NO", "DECLINE")),
]


@pytest.mark.parametrize("changes,ack,decline", VALID_KEYWORDS)
def test_valid_keywords(changes, ack, decline):
    settings = load(**changes)
    assert (settings.ack_keywords, settings.decline_keywords) == (ack, decline)


# (changes to BASE, key the message must name, words it must contain)
INVALID_KEYWORDS = [
    ({"ack_keywords": "ACK, YES"}, "ack_keywords", "'YES' is one of Twilio's opt-in keywords"),
    ({"ack_keywords": "stop"}, "ack_keywords", "'stop' is one of Twilio's opt-out keywords"),
    ({"ack_keywords": "OK, Help"}, "ack_keywords", "'Help' is one of Twilio's help keywords"),
    ({"decline_keywords": "NO, CANCEL"}, "decline_keywords", "'CANCEL' is one of Twilio's opt-out keywords"),
    ({"decline_keywords": "start"}, "decline_keywords", "'start'"),
    ({"ack_keywords": "ACK OK"}, "ack_keywords", "separate keywords with commas"),
    ({"ack_keywords": "on-it"}, "ack_keywords", "'on-it' is not a keyword"),
    ({"ack_keywords": "2095"}, "ack_keywords", "'2095' is a number"),
    ({"ack_keywords": ", ,"}, "ack_keywords", "lists no keyword"),
    ({"decline_keywords": "NO, OK"}, "decline_keywords", "'OK' is also in ack_keywords"),
    ({"ack_keywords": "<your keywords>"}, "ack_keywords", "placeholder"),
    ({"decline_keywords": "$DECLINE_WORDS"}, "decline_keywords", "unresolved"),
]


@pytest.mark.parametrize("changes,key,words", INVALID_KEYWORDS)
def test_invalid_keywords(changes, key, words):
    with pytest.raises(SettingsError) as info:
        load(**changes)
    message = str(info.value)
    assert message.startswith(key) or key + " " in message
    assert words in message


def test_keyword_errors_never_show_a_secret():
    with pytest.raises(SettingsError) as info:
        load(ack_keywords="ACK, " + TOKEN)
    assert TOKEN not in str(info.value) and "ack_keywords" in str(info.value)


# -- voice (contract §14): voice_sender, studio_flow_sid, and who can call ------------------------------
from fn_twilio.lib.settings import voice_caller  # noqa: E402

FLOW = "FW" + "0123456789abcdef" * 2

VOICE_VALID = [
    # (changes to BASE, voice_sender, studio_flow_sid, the caller)
    ({}, None, None, "+14155552345"),
    ({"voice_sender": "+1 415 555 9999"}, "+14155559999", None, "+14155559999"),
    ({"voice_sender": "(415) 555-9999", "default_region": "US"}, "+14155559999", None, "+14155559999"),
    ({"voice_sender": "  "}, None, None, "+14155552345"),
    ({"studio_flow_sid": FLOW}, None, FLOW, "+14155552345"),
    ({"studio_flow_sid": " " + FLOW.upper() + " "}, None, FLOW.upper(), "+14155552345"),
    ({"twilio_src_address": "MyCompany", "voice_sender": "+14155559999"}, "+14155559999", None,
     "+14155559999"),
    ({"twilio_src_address": _DROP, "twilio_messaging_service_sid": SERVICE, "voice_sender": "+14155559999"},
     "+14155559999", None, "+14155559999"),
]


@pytest.mark.parametrize("changes,sender,flow,caller", VOICE_VALID)
def test_voice_settings(changes, sender, flow, caller):
    settings = load(**changes)
    assert (settings.voice_sender, settings.studio_flow_sid, settings.caller) == (sender, flow, caller)
    assert voice_caller(settings) == caller


VOICE_INVALID = [
    ({"voice_sender": "MyCompany"},
     ["voice_sender 'MyCompany' is an alphanumeric sender ID, which cannot place calls"]),
    ({"voice_sender": "whatsapp:+14155559999"},
     ["voice_sender 'whatsapp:+14155559999' is a WhatsApp address"]),
    ({"voice_sender": "(415) 555-9999"}, ["voice_sender: '(415) 555-9999' has no country code"]),
    ({"voice_sender": "$VOICE_SENDER"}, ["voice_sender is not set: it holds an unresolved"]),
    ({"studio_flow_sid": "FW123"}, ["studio_flow_sid 'FW123' is malformed: expected FW followed by 32 hex"]),
    ({"studio_flow_sid": "MG" + "0" * 32}, ["studio_flow_sid", "malformed"]),
]


@pytest.mark.parametrize("changes,words", VOICE_INVALID)
def test_invalid_voice_settings_name_the_key(changes, words):
    with pytest.raises(SettingsError) as caught:
        load(**changes)
    for word in words:
        assert word in str(caught.value)


@pytest.mark.parametrize("changes,words", [
    ({"twilio_src_address": "MyCompany"}, "twilio_src_address 'MyCompany' is an alphanumeric sender ID"),
    ({"twilio_src_address": _DROP, "twilio_messaging_service_sid": SERVICE}, "a Messaging Service"),
    ({"twilio_src_address": "whatsapp:+14155552345"}, "is a WhatsApp address"),
])
def test_a_sender_that_cannot_call_is_a_clear_error_naming_voice_sender(changes, words):
    settings = load(**changes)
    assert settings.caller is None
    with pytest.raises(SettingsError) as caught:
        voice_caller(settings)
    message = str(caught.value)
    assert message.startswith("voice_sender is not set and ") and words in message
    assert "set voice_sender to a number of the account that can place calls" in message
