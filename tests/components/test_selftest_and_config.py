"""`resilient-circuits selftest` and `config` entry points of fn_twilio, against the Twilio emulator."""
import configparser
import logging

import pytest

from fn_twilio.lib.settings import DEFAULTS, SECTION, load_settings
from fn_twilio.util.config import config_section_data
from fn_twilio.util.selftest import selftest_function
from sandbox.twilio_emulator import (ACCOUNT_SID, API_KEY_SECRET, API_KEY_SID, AUTH_TOKEN,
                                     MESSAGING_SERVICE_SID, SENDER)

WRONG_TOKEN = "f00dfeedf00dfeedf00dfeedf00dfeed"


def opts_for(twilio, **section):
    values = {"twilio_account_sid": ACCOUNT_SID, "twilio_auth_token": AUTH_TOKEN,
              "twilio_src_address": SENDER, "twilio_base_url": twilio.base_url, "timeout": "5"}
    values.update(section)
    return {SECTION: {k: v for k, v in values.items() if v is not None}, "integrations": {}}


@pytest.mark.parametrize("section", [
    {},
    {"twilio_auth_token": None, "twilio_api_key_sid": API_KEY_SID, "twilio_api_key_secret": API_KEY_SECRET},
    {"twilio_src_address": None, "twilio_messaging_service_sid": MESSAGING_SERVICE_SID},
])
def test_selftest_success(twilio, section):
    result = selftest_function(opts_for(twilio, **section))
    assert result["state"] == "success"
    assert result["reason"].startswith("the credentials work and the sender belongs to the account; voice: ")


OTHER = "+15005550010"


@pytest.mark.parametrize("section,voice_less,words", [
    ({}, None, "voice: twilio_src_address +15005****06 can place calls"),
    ({}, SENDER, "voice: twilio_src_address +15005****06 cannot place calls (its voice capability is off); "
                 "set voice_sender"),
    ({"voice_sender": OTHER}, None, "voice: voice_sender +15005****10 can place calls"),
    ({"twilio_src_address": None, "twilio_messaging_service_sid": MESSAGING_SERVICE_SID}, None,
     "voice: the sender is a Messaging Service, so a page's voice: entries are refused until voice_sender "
     "is set"),
    ({"twilio_src_address": "MyCompany"}, None, "cannot place calls, so a page's voice: entries are refused"),
    ({"twilio_src_address": "MyCompany", "voice_sender": OTHER}, None,
     "voice_sender +15005****10 can place"),
])
def test_selftest_says_whether_the_sender_can_call(twilio, section, voice_less, words):
    twilio.add_number(OTHER)
    if voice_less:
        twilio.set_voice_capable(voice_less, False)
    result = selftest_function(opts_for(twilio, **section))
    assert result["state"] == "success" and words in result["reason"], result


@pytest.mark.parametrize("section,voice_less,words", [
    ({"voice_sender": "+15005550123"}, None, "voice_sender is not a phone number of this Twilio account"),
    ({"voice_sender": OTHER}, OTHER,
     "voice_sender +15005****10 cannot place calls: its voice capability is off"),
])
def test_selftest_fails_for_a_voice_sender_that_cannot_call(twilio, section, voice_less, words):
    twilio.add_number(OTHER)
    if voice_less:
        twilio.set_voice_capable(voice_less, False)
    result = selftest_function(opts_for(twilio, **section))
    assert result == {"state": "failure", "reason": result["reason"]} and words in result["reason"]
    assert OTHER not in result["reason"]


def test_selftest_alphanumeric_sender_checks_credentials_and_form(twilio):
    result = selftest_function(opts_for(twilio, twilio_src_address="MyCompany"))
    assert result["state"] == "success"
    assert "'MyCompany' is an alphanumeric sender ID" in result["reason"]
    assert "the credentials work" in result["reason"]
    lists = [r for r in twilio.requests if r.path.endswith("/IncomingPhoneNumbers.json")]
    assert lists and all("PhoneNumber" not in r.query for r in lists)


def test_selftest_alphanumeric_sender_with_wrong_credentials_fails(twilio):
    result = selftest_function(opts_for(twilio, twilio_src_address="MyCompany",
                                        twilio_auth_token=WRONG_TOKEN))
    assert result["state"] == "failure" and "Twilio rejected the credentials" in result["reason"]


@pytest.mark.parametrize("section, expected", [
    ({"twilio_auth_token": WRONG_TOKEN}, "Twilio rejected the credentials"),
    ({"twilio_api_key_sid": API_KEY_SID, "twilio_api_key_secret": WRONG_TOKEN},
     "Twilio rejected the credentials"),
    ({"twilio_src_address": "+15005550123"},
     "twilio_src_address is not a phone number of this Twilio account"),
    ({"twilio_src_address": None, "twilio_messaging_service_sid": "MG" + "9" * 32},
     "twilio_messaging_service_sid is not a Messaging Service of this account"),
    ({"twilio_account_sid": None}, "twilio_account_sid"),
    ({"twilio_auth_token": None}, "twilio_auth_token"),
    ({"twilio_base_url": "http://127.0.0.1:9"}, "Twilio could not be reached"),
    ({"ack_keywords": "ACK, YES"}, "ack_keywords: 'YES' is one of Twilio's opt-in keywords"),
    ({"decline_keywords": "NO, STOP"}, "decline_keywords: 'STOP' is one of Twilio's opt-out keywords"),
])
def test_selftest_failure_says_why(twilio, caplog, section, expected):
    caplog.set_level(logging.DEBUG)
    result = selftest_function(opts_for(twilio, **section))
    assert result["state"] == "failure"
    assert expected in result["reason"]
    for secret in (WRONG_TOKEN, AUTH_TOKEN, API_KEY_SECRET):
        assert secret not in result["reason"]
        assert secret not in caplog.text


def _section():
    parser = configparser.ConfigParser()
    parser.read_string(config_section_data())
    return parser


def test_config_section_is_the_2_0_x_section():
    assert _section().sections() == [SECTION]


def test_config_section_lists_every_optional_key_commented_with_its_default():
    text = config_section_data()
    commented = {}
    for line in text.splitlines():
        if line.startswith("#") and "=" in line and " " not in line.split("=", 1)[0]:
            key, value = line[1:].split("=", 1)
            commented[key] = value
    for key, default in DEFAULTS.items():
        assert commented[key] == default
    for key in ("twilio_api_key_sid", "twilio_api_key_secret", "twilio_messaging_service_sid",
                "default_region", "https_proxy", "http_proxy"):
        assert key in commented and commented[key] == ""
    assert set(_section()[SECTION]) == {"twilio_account_sid", "twilio_auth_token", "twilio_src_address"}


def test_commented_defaults_read_back_as_the_documented_defaults():
    section = dict(_section()[SECTION])
    section.update({"twilio_account_sid": ACCOUNT_SID, "twilio_auth_token": AUTH_TOKEN,
                    "twilio_src_address": SENDER})
    settings = load_settings(section)
    assert (settings.max_recipients, settings.max_concurrency, settings.poll_interval,
            settings.max_wait_timeout, settings.timeout, settings.base_url) == \
        (100, 5, 2.0, 24 * 3600.0, 30.0, "https://api.twilio.com")
    assert (settings.ack_keywords, settings.decline_keywords) == \
        (("ACK", "ACKNOWLEDGE", "ACKNOWLEDGED", "OK"), ("NO", "DECLINE"))


def test_placeholder_section_is_reported_as_not_configured():
    from fn_twilio.lib.settings import SettingsError
    with pytest.raises(SettingsError, match="twilio_account_sid"):
        load_settings(dict(_section()[SECTION]))


def test_resilient_circuits_config_update_appends_the_section_once(tmp_path):
    import os
    import subprocess
    import sys
    from pathlib import Path

    command = str(Path(sys.executable).with_name("resilient-circuits"))
    app_config = tmp_path / "app.config"
    app_config.write_text("[resilient]\nhost = soar.example.com\norg = Test Organization\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("APP_")}
    env["HOME"] = str(tmp_path)

    def update():
        return subprocess.run([command, "config", "-u", str(app_config), "-l", "fn_twilio"], env=env,
                              capture_output=True, text=True, timeout=120)

    first = update()
    assert first.returncode == 0, first.stderr
    text = app_config.read_text()
    assert text.count(f"[{SECTION}]") == 1, first.stdout + first.stderr
    assert config_section_data().strip() in text
    second = update()
    assert second.returncode == 0
    assert app_config.read_text().count(f"[{SECTION}]") == 1


# -- labelled configurations (contract §16) -----------------------------------------------------------
def labelled_opts(twilio, second, **sections):
    """opts with the unlabelled section (``default``) and labelled ones; a section given as
    ``("second", {...})`` is for the second account's emulator."""
    from tests.conftest import SECOND_ACCOUNT_SID, SECOND_AUTH_TOKEN, SECOND_SENDER
    opts = {"integrations": {}}
    for label, changes in sections.items():
        if isinstance(changes, tuple):
            values = {"twilio_account_sid": SECOND_ACCOUNT_SID, "twilio_auth_token": SECOND_AUTH_TOKEN,
                      "twilio_src_address": SECOND_SENDER, "twilio_base_url": second.base_url, "timeout": "5"}
            changes = changes[1]
        else:
            values = opts_for(twilio)[SECTION]
        values = {**values, **changes}
        name = SECTION if label == "default" else f"{SECTION}:{label.replace('__', '-')}"
        opts[name] = {k: v for k, v in values.items() if v is not None}
    return opts


@pytest.fixture
def second(twilio_emulator_second):
    twilio_emulator_second.reset()
    return twilio_emulator_second


def test_selftest_checks_every_section_and_says_so_per_label(twilio, second):
    from fn_twilio.lib.phone import mask
    from tests.conftest import SECOND_SENDER
    result = selftest_function(labelled_opts(twilio, second, default={}, eu=("second", {})))
    works = "success: the credentials work and the sender belongs to the account; voice: twilio_src_address "
    assert result == {"state": "success", "reason": (
        f"all 2 configurations work. [fn_twilio_send_sms] (twilio_label empty): {works}{mask(SENDER)} "
        f"can place calls; [fn_twilio_send_sms:eu] (twilio_label 'eu'): {works}{mask(SECOND_SENDER)} can "
        "place calls")}
    assert [r.path for r in second.requests] == \
        [f"/2010-04-01/Accounts/{second.account_sid}/IncomingPhoneNumbers.json"]


@pytest.mark.parametrize("sections, failed, expected", [
    ({"default": {}, "eu": ("second", {"twilio_auth_token": WRONG_TOKEN})}, "'eu'",
     "[fn_twilio_send_sms:eu] (twilio_label 'eu'): failure: cannot use the Twilio account: Twilio error "
     "20003: Twilio rejected the credentials"),
    ({"default": {}, "eu": ("second", {"twilio_auth_token": None})}, "'eu'",
     "[fn_twilio_send_sms:eu] (twilio_label 'eu'): failure: twilio_auth_token is not set in "
     "[fn_twilio_send_sms:eu]"),
    ({"default": {}, "eu": ("second", {"twilio_src_address": SENDER})}, "'eu'",
     "[fn_twilio_send_sms:eu] (twilio_label 'eu'): failure: twilio_src_address is not a phone number of "
     "this Twilio account"),
    ({"default": {"twilio_auth_token": WRONG_TOKEN}, "eu": ("second", {})}, "unlabelled",
     "[fn_twilio_send_sms] (twilio_label empty): failure: cannot use the Twilio account"),
    ({"us": {}, "us__backup": {"poll_interval": "9s"}, "eu": ("second", {})}, "'us', 'us-backup'",
     "[fn_twilio_send_sms:us] and [fn_twilio_send_sms:us-backup] use the same Twilio account and sender but "
     "a different poll_interval (2s and 9s)"),
    ({"default": {}, "eu west": ("second", {})}, "'eu west'",
     "the label 'eu west' cannot be used: it holds a space"),
])
def test_selftest_fails_when_one_section_fails_and_names_its_label(twilio, second, caplog, sections, failed,
                                                                    expected):
    caplog.set_level(logging.DEBUG)
    result = selftest_function(labelled_opts(twilio, second, **sections))
    assert result["state"] == "failure"
    assert result["reason"].startswith(f"{len(failed.split(', '))} of {len(sections)} configurations failed "
                                       f"({failed}). ")
    assert expected in result["reason"]
    working = [label for label in sections if label.replace("__", "-") not in failed
               and not (label == "default" and failed == "unlabelled")]
    for label in working:
        described = "[fn_twilio_send_sms] (twilio_label empty)" if label == "default" else \
            f"[fn_twilio_send_sms:{label.replace('__', '-')}] (twilio_label '{label.replace('__', '-')}')"
        assert f"{described}: success" in result["reason"]
    for secret in (WRONG_TOKEN, AUTH_TOKEN, "second-account-token-55aa66bb77cc"):
        assert secret not in result["reason"] and secret not in caplog.text


def test_selftest_with_only_labelled_sections(twilio, second):
    result = selftest_function(labelled_opts(twilio, second, eu=("second", {})))
    from fn_twilio.lib.phone import mask
    from tests.conftest import SECOND_SENDER
    reason = ("all 1 configurations work. [fn_twilio_send_sms:eu] (twilio_label 'eu'): success: the "
              "credentials work and the sender belongs to the account; voice: twilio_src_address "
              f"{mask(SECOND_SENDER)} can place calls")
    assert result == {"state": "success", "reason": reason}


def test_config_section_ends_with_a_commented_labelled_example_that_reads_back():
    text = config_section_data()
    example = text[text.index("#[fn_twilio_send_sms:eu]"):]
    assert _section().sections() == [SECTION]             # the example is commented out
    uncommented = "\n".join(line[1:] for line in example.splitlines())
    parser = configparser.ConfigParser()
    parser.read_string(uncommented)
    assert parser.sections() == [f"{SECTION}:eu"]
    section = dict(parser[f"{SECTION}:eu"])
    assert set(section) == {"twilio_account_sid", "twilio_auth_token", "twilio_src_address"}
    from fn_twilio.lib.labels import load_configurations
    section.update(twilio_account_sid=ACCOUNT_SID, twilio_auth_token=AUTH_TOKEN)
    configs = load_configurations({"eu": section}, lambda name, values: load_settings(values, name=name))
    assert configs.settings("eu").src_address == "+353861234567"
    assert configs.settings(None) is configs.settings("eu")          # the only section


def test_a_broken_section_is_logged_once_at_load_naming_section_and_key(caplog):
    from fn_twilio.util.app_settings import report_configurations
    opts = {SECTION: {"twilio_account_sid": ACCOUNT_SID, "twilio_auth_token": AUTH_TOKEN,
                      "twilio_src_address": SENDER},
            f"{SECTION}:load-check": {"twilio_account_sid": ACCOUNT_SID, "twilio_src_address": "+15005550999",
                                      "max_recipients": "lots", "twilio_auth_token": "Secret-0f-load-check"},
            "integrations": {}}
    caplog.set_level(logging.DEBUG)
    configs = report_configurations(opts)
    report_configurations(opts)             # a second component: nothing logged again
    errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert errors == [
        "fn_twilio: [fn_twilio_send_sms:load-check] (twilio_label 'load-check') cannot be used: "
        "[fn_twilio_send_sms:load-check] max_recipients 'lots' is not a whole number. Calls that select it "
        "fail with this message; the other sections are not affected"]
    infos = [r.getMessage() for r in caplog.records
             if r.levelno == logging.INFO and "usable" in r.getMessage()]
    assert infos == [
        "fn_twilio: 1 of 2 app.config sections usable: [fn_twilio_send_sms] (twilio_label empty)"]
    assert configs.settings(None).sender == SENDER
    assert "Secret-0f-load-check" not in caplog.text
