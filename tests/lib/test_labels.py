"""fn_twilio.lib.labels: finding the [fn_twilio_send_sms(:label)] sections, choosing one per call,
checking each on its own and the agreement of sections on one account and sender."""
from __future__ import annotations

import pytest

from fn_twilio.lib.delivery import DeliveryTracker, watch_deliveries
from fn_twilio.lib.labels import (LABEL_RULE, SHARED_SETTINGS, Configurations, LabelError, find_sections,
                                  label_problem, load_configurations, section_name)
from fn_twilio.lib.clock import FakeClock
from fn_twilio.lib.polling import active_pollers
from fn_twilio.lib.replies import ReplyPoller, watch_replies
from fn_twilio.lib.settings import SECTION, Settings, SettingsError, load_settings
from fn_twilio.lib.storm import limiter_for
from tests.lib.fakes import FakeTwilio
from tests.lib.test_delivery import FakeOutbound

ACCOUNT_A = "AC" + "a" * 32
ACCOUNT_B = "AC" + "b" * 32
TOKEN_A = "TokenA-secret-0123456789abcdef"
TOKEN_B = "TokenB-secret-fedcba9876543210"
KEY_SID = "SK" + "1" * 32
KEY_SECRET = "KeySecret-secret-77665544"
SENDER_A = "+15005550006"
SENDER_B = "+353861234000"


def section(account=ACCOUNT_A, token=TOKEN_A, sender=SENDER_A, **extra):
    values = {"twilio_account_sid": account, "twilio_auth_token": token, "twilio_src_address": sender}
    values.update(extra)
    return {k: v for k, v in values.items() if v is not None}


def loader(name, raw):
    """load_settings as the SOAR side calls it; the test keys ``proxy`` and ``verify`` stand for what
    RequestsCommon reads from a section."""
    values = dict(raw)
    proxy = values.pop("proxy", None)
    verify = values.pop("verify", True)
    return load_settings(values, name=name, proxies={"https": proxy} if proxy else None, verify=verify)


def configs(**sections_by_label) -> Configurations:
    """load_configurations of the given sections; the keyword ``default`` is the unlabelled section."""
    sections = {None if label == "default" else label.replace("__", "-"): value
                for label, value in sections_by_label.items()}
    return load_configurations(sections, loader)


# -- labels ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("label", ["eu", "EU", "us-east", "customer_1", "a.b", "9", "x" * 64,
                                   "SOAR_Plugin_Destination_Name1"])
def test_valid_labels(label):
    assert label_problem(label) is None


@pytest.mark.parametrize("label, problem", [
    ("", "it is empty"),
    ("eu west", "it holds a space"),
    (" eu", "it holds a space"),
    ("eu]", "it holds ']'"),
    ("eu:x", "it holds ':'"),
    ("eu[1]", "it holds '[', ']'"),
    ("eu\nus", "it holds '\\n'"),
    ("région", "it holds 'é'"),
    ("a/b", "it holds '/'"),
    ("_eu", "it does not start with a letter or a digit"),
    ("-eu", "it does not start with a letter or a digit"),
    (".eu", "it does not start with a letter or a digit"),
    ("x" * 65, "it has 65 characters, more than 64"),
])
def test_labels_that_soar_or_app_config_cannot_hold(label, problem):
    assert label_problem(label) == problem


def test_section_names():
    assert section_name(None) == SECTION == "fn_twilio_send_sms"
    assert section_name("eu") == "fn_twilio_send_sms:eu"


# -- finding the sections ----------------------------------------------------------------------------
@pytest.mark.parametrize("opts, expected", [
    ({}, {None: {}}),                                                     # no section: the unlabelled, empty
    ({"resilient": {"host": "x"}, "integrations": {}}, {None: {}}),
    ({SECTION: {"a": "1"}}, {None: {"a": "1"}}),
    ({SECTION: {"a": "1"}, f"{SECTION}:eu": {"b": "2"}}, {None: {"a": "1"}, "eu": {"b": "2"}}),
    ({f"{SECTION}:eu": {"b": "2"}, f"{SECTION}:us": {"c": "3"}}, {"eu": {"b": "2"}, "us": {"c": "3"}}),
    ({f"{SECTION}:": {}}, {"": {}}),                            # an empty label is found (and refused)
    ({f"{SECTION}_old": {}, "fn_twilio": {}, f"x{SECTION}:eu": {}}, {None: {}}),   # not ours
    ({f"{SECTION}:eu west": {}}, {"eu west": {}}),
    ({"host": "soar", SECTION: {}}, {None: {}}),                           # [resilient] keys at the top level
])
def test_find_sections(opts, expected):
    assert find_sections(opts) == expected


# -- choosing the configuration of a call ------------------------------------------------------------
TWO_LABELS = {"eu": section(), "us": section(account=ACCOUNT_B, sender=SENDER_B)}
WITH_DEFAULT = {"default": section(), "eu": section(account=ACCOUNT_B, token=TOKEN_B, sender=SENDER_B)}

# (sections, twilio_label input, the label chosen) -- None chosen: the unlabelled section
CHOSEN = [
    ({"default": section()}, None, None),
    ({"default": section()}, "", None),
    ({"default": section()}, "   ", None),
    (WITH_DEFAULT, None, None),
    (WITH_DEFAULT, "", None),
    (WITH_DEFAULT, "eu", "eu"),
    (WITH_DEFAULT, "  eu\n", "eu"),
    ({"eu": section()}, None, "eu"),                                       # the only section
    ({"eu": section()}, "", "eu"),
    ({"eu": section()}, "eu", "eu"),
    (TWO_LABELS, "us", "us"),
    ({"7": section()}, 7, "7"),                                            # a number input reads as text
]


@pytest.mark.parametrize("sections, label, chosen", CHOSEN)
def test_a_call_gets_the_section_its_label_chooses(sections, label, chosen):
    found = configs(**sections)
    config = found.select(label)
    assert config.label == chosen and config.usable
    assert found.settings(label) is config.settings


# (sections, twilio_label input, text the LabelError must contain)
REFUSED = [
    (TWO_LABELS, None, "twilio_label is empty, but app.config has no unlabelled [fn_twilio_send_sms] section "
                       "and 2 labelled ones: give twilio_label one of eu, us"),
    (TWO_LABELS, " ", "give twilio_label one of eu, us"),
    (TWO_LABELS, "apac", "twilio_label 'apac' names no configuration: app.config has no "
                         "[fn_twilio_send_sms:apac] section; its labels are eu, us"),
    (WITH_DEFAULT, "us", "its labels are eu (and the unlabelled [fn_twilio_send_sms], used when twilio_label "
                         "is empty)"),
    ({"default": section()}, "eu", "twilio_label 'eu' names no configuration: app.config has no "
                                   "[fn_twilio_send_sms:eu] section; it has no labelled section (and the "
                                   "unlabelled"),
    (TWO_LABELS, "EU", "did you mean 'eu'? Labels are case-sensitive"),
    (TWO_LABELS, "eu west", f"twilio_label 'eu west' is not a valid label: it holds a space; a label is "
                            f"{LABEL_RULE}"),
    (TWO_LABELS, "eu]", "twilio_label 'eu]' is not a valid label: it holds ']'"),
    (TWO_LABELS, "fn_twilio_send_sms:eu", "it holds ':'"),
    (TWO_LABELS, "x" * 65, "it has 65 characters, more than 64"),
]


@pytest.mark.parametrize("sections, label, expected", REFUSED)
def test_a_label_that_chooses_no_section_is_refused_naming_the_labels(sections, label, expected):
    found = configs(**sections)
    with pytest.raises(LabelError) as raised:
        found.settings(label)
    assert expected in str(raised.value)


def test_the_labels_are_listed_sorted_after_the_unlabelled_section():
    found = configs(us=section(account=ACCOUNT_B), default=section(), eu=section(sender=SENDER_B))
    assert [c.label for c in found] == [None, "eu", "us"]
    assert found.labels == ["eu", "us"] and found.unlabelled.label is None and len(found) == 3


# -- each section on its own -------------------------------------------------------------------------
# (changes to a labelled section, text its error must contain, besides the section's name)
BROKEN = [
    ({"twilio_auth_token": None}, "twilio_auth_token is not set in [fn_twilio_send_sms:eu]; set it"),
    ({"twilio_account_sid": None}, "twilio_account_sid is not set in [fn_twilio_send_sms:eu]"),
    ({"twilio_src_address": None}, "in [fn_twilio_send_sms:eu]"),
    ({"twilio_account_sid": "ACxxxxxxxx"}, "put the real value in [fn_twilio_send_sms:eu]"),
    ({"twilio_auth_token": "$TWILIO_AUTH_TOKEN_EU"},
     "[fn_twilio_send_sms:eu] twilio_auth_token is not set: it holds an unresolved $ENV or ^keystore "),
    ({"max_recipients": "many"}, "[fn_twilio_send_sms:eu] max_recipients 'many' is not a whole number"),
    ({"poll_interval": "0.1s"}, "[fn_twilio_send_sms:eu] poll_interval '0.1s' is shorter than the minimum"),
    ({"twilio_api_key_sid": KEY_SID}, "[fn_twilio_send_sms:eu] twilio_api_key_secret is not set"),
    ({"ack_keywords": "ACK, STOP"}, "[fn_twilio_send_sms:eu] ack_keywords: 'STOP'"),
    ({"twilio_base_url": "ftp://x"}, "[fn_twilio_send_sms:eu] twilio_base_url 'ftp://x' must be an http"),
]


@pytest.mark.parametrize("changes, expected", BROKEN)
def test_a_broken_labelled_section_names_itself_and_the_key_and_leaves_the_others_working(changes, expected):
    broken = {**section(token=TOKEN_B), **changes}
    found = configs(default=section(), eu={k: v for k, v in broken.items() if v is not None},
                    us=section(account=ACCOUNT_B, sender=SENDER_B))
    with pytest.raises(SettingsError) as raised:
        found.settings("eu")
    message = str(raised.value)
    assert expected in message and message.count("[fn_twilio_send_sms:eu]") == 1
    assert TOKEN_B not in message and TOKEN_A not in message
    eu = found.select("eu")
    assert not eu.usable and eu.error == message
    assert found.settings(None).account_sid == ACCOUNT_A
    assert found.settings("us").account_sid == ACCOUNT_B


def test_the_unlabelled_section_keeps_its_2_0_x_messages():
    for bad in ({}, section(token=None), section(max_recipients="0")):
        with pytest.raises(SettingsError) as direct:
            load_settings(bad)
        with pytest.raises(SettingsError) as through_labels:
            configs(default=bad).settings(None)
        assert str(through_labels.value) == str(direct.value)


def test_a_secret_pasted_into_the_wrong_key_of_a_labelled_section_is_not_shown():
    found = configs(eu=section(token=TOKEN_B, sender=TOKEN_B))
    error = found.select("eu").error
    assert "twilio_src_address" in error and TOKEN_B not in error and "[fn_twilio_send_sms:eu]" in error


def test_a_secret_of_another_section_pasted_into_a_section_is_not_shown():
    found = configs(default=section(token=TOKEN_A), eu=section(token=None, twilio_api_key_sid=KEY_SID,
                                                              twilio_api_key_secret=KEY_SECRET),
                    us=section(token=TOKEN_B, sender=KEY_SECRET), apac=section(token=TOKEN_B, sender=TOKEN_A))
    for label in ("us", "apac"):
        error = found.select(label).error
        assert f"[fn_twilio_send_sms:{label}] twilio_src_address" in error and "'***'" in error
        assert all(secret not in error for secret in (TOKEN_A, TOKEN_B, KEY_SECRET))


def test_a_section_whose_label_cannot_be_used_is_an_error_of_its_own():
    found = configs(default=section(), **{"eu west": section(account=ACCOUNT_B)})
    bad = next(c for c in found if c.label == "eu west")
    assert bad.error == (f"[fn_twilio_send_sms:eu west]: the label 'eu west' cannot be used: it holds a "
                         f"space; a label is {LABEL_RULE}")
    assert found.settings("").account_sid == ACCOUNT_A
    with pytest.raises(LabelError, match="not a valid label"):
        found.settings("eu west")


def test_the_only_section_is_used_even_with_an_unusable_label_and_says_why():
    found = configs(**{"": section()})
    with pytest.raises(SettingsError, match=r"\[fn_twilio_send_sms:\]: the label '' cannot be used"):
        found.settings(None)


def test_a_section_that_cannot_be_read_fails_alone():
    def unreadable(name, raw):
        if name.endswith(":eu"):
            raise SettingsError(f"the [{name}] section cannot be read")
        return loader(name, raw)

    found = load_configurations({None: section(), "eu": section()}, unreadable)
    assert found.select("eu").error == "the [fn_twilio_send_sms:eu] section cannot be read"
    assert found.settings(None).account_sid == ACCOUNT_A


def test_no_section_at_all():
    with pytest.raises(SettingsError, match="missing from app.config"):
        load_configurations({}, loader).settings(None)


# -- sections on one account and sender must agree on what their calls share --------------------------
# (changes to the second section, the key named in the conflict or None, text of the values shown)
AGREEMENT = [
    ({"poll_interval": "5s"}, "poll_interval", " (2s and 5s)"),
    ({"timeout": "10"}, "timeout", " (30s and 10s)"),
    ({"ack_keywords": "ROGER"}, "ack_keywords", " (ACK, ACKNOWLEDGE, ACKNOWLEDGED, OK and ROGER)"),
    ({"decline_keywords": "NOPE"}, "decline_keywords", " (NO, DECLINE and NOPE)"),
    ({"proxy": "http://user:pw@proxy:3128"}, "https_proxy/http_proxy", ""),     # a proxy URL is never shown
    ({"verify": False}, "verify", ""),
    ({"max_texts_per_person": "5"}, "max_texts_per_person", " (10 and 5)"),      # one limiter counts both
    ({"person_window": "2m"}, "person_window", " (1m and 2m)"),
    ({"max_texts_per_person": "10", "person_window": "60"}, None, None),   # the defaults written out
    ({"poll_interval": "2"}, None, None),                 # the same interval written another way
    ({"max_recipients": "5", "max_concurrency": "2", "max_wait_timeout": "1h", "default_region": "IE"},
     None, None),                                         # per call: free to differ
    ({"twilio_auth_token": None, "twilio_api_key_sid": KEY_SID, "twilio_api_key_secret": KEY_SECRET,
      "poll_interval": "5s"}, "poll_interval", " (2s and 5s)"),  # other credentials, same account and sender
    ({"twilio_src_address": SENDER_B, "poll_interval": "5s"}, None, None),       # another sender
    ({"twilio_account_sid": ACCOUNT_B, "poll_interval": "5s"}, None, None),      # another account
    ({"twilio_base_url": "http://127.0.0.1:8080", "poll_interval": "5s"}, None, None),   # another Twilio
]


@pytest.mark.parametrize("changes, key, shown", AGREEMENT)
def test_sections_of_one_account_and_sender_must_agree(changes, key, shown):
    second = {k: v for k, v in {**section(), **changes}.items() if v is not None}
    found = configs(eu=section(), eu__backup=second, us=section(account=ACCOUNT_B, sender=SENDER_B,
                                                               poll_interval="7s"))
    assert found.select("us").usable                     # an unrelated section is never affected
    if key is None:
        assert found.select("eu").usable and found.select("eu-backup").usable
        return
    expected = (f"[fn_twilio_send_sms:eu] and [fn_twilio_send_sms:eu-backup] use the same Twilio account "
                f"and sender but a different {key}{shown}: calls on one account and sender share its reply "
                f"poller, delivery tracker and storm limit, so these sections must give the same {key} (or "
                "use different senders)")
    for label in ("eu", "eu-backup"):
        with pytest.raises(SettingsError) as raised:
            found.settings(label)
        assert str(raised.value) == expected
    assert "pw@" not in expected and KEY_SECRET not in expected


def test_the_unlabelled_section_and_a_label_must_agree_too():
    found = configs(default=section(), eu=section(poll_interval="10s"))
    for label in (None, "eu"):
        with pytest.raises(SettingsError, match=r"\[fn_twilio_send_sms\] and \[fn_twilio_send_sms:eu\] use "
                                                r"the same Twilio account and sender but a different "
                                                r"poll_interval"):
            found.settings(label)


def test_a_section_in_conflict_with_several_reports_one_conflict():
    found = configs(a=section(), b=section(poll_interval="3s"), c=section(timeout="9"))
    errors = {c.label: c.error for c in found}
    assert "[fn_twilio_send_sms:a] and [fn_twilio_send_sms:b]" in errors["a"]
    assert "[fn_twilio_send_sms:a] and [fn_twilio_send_sms:b]" in errors["b"]
    assert "[fn_twilio_send_sms:a] and [fn_twilio_send_sms:c]" in errors["c"]


def test_every_shared_setting_is_a_settings_attribute():
    fields = set(Settings.__dataclass_fields__)
    assert {attribute for _, attribute, _ in SHARED_SETTINGS} <= fields


# -- two labels on one account and sender share the core's pollers ------------------------------------
SHARING = configs(eu=section(max_recipients="5"), eu__backup=section(default_region="IE"),
                  us=section(account=ACCOUNT_B, token=TOKEN_B, sender=SENDER_B),
                  apac=section(token=None, twilio_api_key_sid=KEY_SID, twilio_api_key_secret=KEY_SECRET))


def test_two_labels_on_one_account_and_sender_share_the_reply_poller(no_poller_left):
    eu, backup, us, apac = (SHARING.settings(label) for label in ("eu", "eu-backup", "us", "apac"))
    twilio, clock = FakeTwilio(), FakeClock()
    with watch_replies(eu, "+353861234567", None, client_factory=twilio.client, clock=clock) as a, \
            watch_replies(backup, "+14155552345", None, client_factory=twilio.client, clock=clock) as b, \
            watch_replies(us, "+14155552345", None, client_factory=twilio.client, clock=clock) as c, \
            watch_replies(apac, "+14155552345", None, client_factory=twilio.client, clock=clock) as d:
        assert a._poller is b._poller
        # another account; the same account and sender with other credentials (a token change after a
        # reload must not keep polling with the old one): pollers of their own
        assert len({id(a._poller), id(c._poller), id(d._poller)}) == 3
        assert active_pollers(ReplyPoller.kind) == 3


def test_two_labels_on_one_account_and_sender_share_the_delivery_tracker(no_poller_left):
    eu, backup, us = (SHARING.settings(label) for label in ("eu", "eu-backup", "us"))
    twilio, clock = FakeOutbound(), FakeClock()
    sid = twilio.send()
    with watch_deliveries(eu, [sid], client_factory=twilio.client, clock=clock) as a, \
            watch_deliveries(backup, [sid], client_factory=twilio.client, clock=clock) as b, \
            watch_deliveries(us, [sid], client_factory=twilio.client, clock=clock) as c:
        assert a._poller is b._poller and c._poller is not a._poller
        assert active_pollers(DeliveryTracker.kind) == 2


def test_two_labels_on_one_account_and_sender_share_the_storm_limit():
    """One limiter counts what the sender sent to a number whatever the label (the sections agree on
    max_texts_per_person and person_window: see AGREEMENT); another account or sender has its own."""
    eu, backup, us = (SHARING.settings(label) for label in ("eu", "eu-backup", "us"))
    assert limiter_for(eu) is limiter_for(backup)
    assert limiter_for(us) is not limiter_for(eu)
    assert limiter_for(backup).settings is backup       # the latest caller's settings (proxy, timeout)
