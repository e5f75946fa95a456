"""Tests for fn_twilio.lib.phone: splitting, normalising, de-duplicating and masking numbers."""
import dataclasses

import pytest

from fn_twilio.lib.phone import (
    PhoneNumberError,
    Recipient,
    mask,
    normalise,
    parse_recipients,
    split_entries,
    validate_region,
)

# (entry, default_region, expected E.164)
VALID = [
    # twilio-api.md §9 table
    ("+353 86 123 4567", None, "+353861234567"),
    ("+353 86 123 4567", "US", "+353861234567"),
    ("(978) 835-4530", "US", "+19788354530"),
    ("(978) 835-4530", "us", "+19788354530"),
    ("00353861234567", None, "+353861234567"),
    ("00353861234567", "IE", "+353861234567"),
    ("00353861234567", "US", "+353861234567"),  # 00 is the international prefix whatever the region
    ("011 44 7911 123456", "US", "+447911123456"),
    ("011 44 7911 123456", "CA", "+447911123456"),
    ("+44 (0) 7911 123456", None, "+447911123456"),
    # punctuation
    ("+353.86.123.4567", None, "+353861234567"),
    ("+353-86-123-4567", None, "+353861234567"),
    ("  +353 86 123 4567  ", None, "+353861234567"),
    ("+1 (415) 555-2345", None, "+14155552345"),
    ("+1\u00a0415\u00a0555\u00a02345", None, "+14155552345"),  # no-break spaces
    ("+1 415\u2013555\u20132345", None, "+14155552345"),  # en dashes
    ("0044 20 7946 0958", "DE", "+442079460958"),
    ("0049 30 901820", None, "+4930901820"),
    # full-width digits and plus
    ("\uff0b\uff13\uff15\uff13 \uff18\uff16 \uff11\uff12\uff13 \uff14\uff15\uff16\uff17", None,
     "+353861234567"),
    ("\uff10\uff18\uff16 \uff11\uff12\uff13 \uff14\uff15\uff16\uff17", "IE", "+353861234567"),
    # tel: URIs
    ("tel:+1-978-835-4530", None, "+19788354530"),
    ("TEL:+1-978-835-4530", None, "+19788354530"),
    ("tel:978-835-4530;phone-context=+1", None, "+19788354530"),
    # WhatsApp channel
    ("whatsapp:+353861234567", None, "whatsapp:+353861234567"),
    ("WhatsApp:+1 415 555 2345", None, "whatsapp:+14155552345"),
    ("whatsapp: 00353 86 123 4567", None, "whatsapp:+353861234567"),
    ("whatsapp:(978) 835-4530", "US", "whatsapp:+19788354530"),
    # countries, with and without default_region
    ("07911 123456", "GB", "+447911123456"),
    ("020 7946 0958", "GB", "+442079460958"),
    ("+44 20 7946 0958", None, "+442079460958"),
    ("086 123 4567", "IE", "+353861234567"),
    ("030 901820", "DE", "+4930901820"),
    ("030/901820", "DE", "+4930901820"),
    ("+49 30 901820", None, "+4930901820"),
    ("098765 43210", "IN", "+919876543210"),
    ("+91 98765 43210", None, "+919876543210"),
    ("(11) 91234-5678", "BR", "+5511912345678"),
    ("+55 11 91234 5678", None, "+5511912345678"),
    # Twilio's valid magic/test numbers
    ("+15005550006", None, "+15005550006"),
    ("+15017122661", None, "+15017122661"),
    ("+14155552345", "IE", "+14155552345"),
    # non-geographic (universal freephone)
    ("+800 1234 5678", None, "+80012345678"),
]


@pytest.mark.parametrize("entry,region,expected", VALID)
def test_normalise_valid(entry, region, expected):
    assert normalise(entry, region) == expected


# (entry, default_region, words the reason must contain)
INVALID = [
    ("(978) 835-4530", None, "has no country code; write it as +<country code>… or set default_region"),
    ("9788354530", None, "has no country code"),
    ("011 44 7911 123456", None, "has no country code"),
    ("086 123 4567", None, "has no country code"),
    ("07911 123456", None, "has no country code"),
    ("+353 86 123 4567 ext. 12", None, "extension"),
    ("+1 978 835 4530 x12", None, "extension"),
    ("(978) 835-4530 ext 7", "US", "extension"),
    ("tel:+1-978-835-4530;ext=12", None, "extension"),
    ("whatsapp:+1 978 835 4530 ext. 1", None, "extension"),
    ("1-800-FLOWERS", "US", "letters"),
    ("+1 800 FLOWERS", None, "letters"),
    ("call me", None, "letters"),
    ("+1#4155552345", None, "'#'"),
    ("+1 415 555 2345 +1 415 555 2346", None, "'+' inside the number"),
    ("+", None, "no digits"),
    ("()", None, "no digits"),
    ("-", None, "no digits"),
    ("whatsapp:", None, "no number after 'whatsapp:'"),
    ("whatsapp:  ", None, "no number after 'whatsapp:'"),
    ("+999 1234", None, "unknown country code"),
    ("+0861234567", None, "unknown country code"),
    ("+()", None, "no digits"),
    ("+35386123", None, "not a possible phone number for IE"),
    ("+3538612345678901234", None, "not a possible phone number for IE (too long)"),
    ("12", "US", "not a possible phone number for US (too short)"),
    ("+15558675310", None, "not a valid number for US"),
    ("+447700900123", None, "not a valid number for GB"),
    ("0861234567", "GB", "not a valid number for GB"),
    ("+1 978 835 4530 / 4531", None, "not a possible phone number for US"),
    ("", None, "empty"),
    ("   ", None, "empty"),
]


@pytest.mark.parametrize("entry,region,reason", INVALID)
def test_normalise_invalid(entry, region, reason):
    with pytest.raises(PhoneNumberError) as info:
        normalise(entry, region)
    message = str(info.value)
    assert reason in message
    if entry.strip():
        assert repr(entry.strip()) in message  # the reason names the entry


@pytest.mark.parametrize("value", [None, 353861234567, b"+353861234567"])
def test_normalise_rejects_non_text(value):
    with pytest.raises(PhoneNumberError, match="not text"):
        normalise(value)


def test_phone_number_error_is_value_error():
    assert issubclass(PhoneNumberError, ValueError)


@pytest.mark.parametrize("code,expected", [
    ("ie", "IE"), ("IE", "IE"), (" us ", "US"), ("Gb", "GB"), ("DE", "DE"), ("in", "IN"), ("BR", "BR"),
])
def test_validate_region_valid(code, expected):
    assert validate_region(code) == expected


@pytest.mark.parametrize("code", ["UK", "XX", "001", "USA", "", "  ", None, 1, "I E"])
def test_validate_region_invalid(code):
    with pytest.raises(ValueError, match="default_region"):
        validate_region(code)


def test_normalise_unknown_region_is_a_configuration_error():
    with pytest.raises(ValueError, match="default_region 'UK'") as info:
        normalise("020 7946 0958", "UK")
    assert not isinstance(info.value, PhoneNumberError)


@pytest.mark.parametrize("text,expected", [
    ("+353861234567", ["+353861234567"]),
    ("a,b;c\nd\r\ne", ["a", "b", "c", "d", "e"]),
    (" a , b ;  c ", ["a", "b", "c"]),
    ("a,", ["a"]),
    ("a;", ["a"]),
    ("a\n", ["a"]),
    ("a,,b;;\n\nc", ["a", "b", "c"]),
    (",;\n\r\n ", []),
    ("", []),
    (None, []),
    ("+1 (415) 555-2345", ["+1 (415) 555-2345"]),
    ("a\rb", ["a", "b"]),
])
def test_split_entries(text, expected):
    assert split_entries(text) == expected


def _summary(recipients):
    return [(r.raw, r.e164, r.valid) for r in recipients]


@pytest.mark.parametrize("text,region,expected", [
    ("+353 86 123 4567, +447911123456", None,
     [("+353 86 123 4567", "+353861234567", True), ("+447911123456", "+447911123456", True)]),
    # same number in two (three) notations: sent once, first spelling kept
    ("+353 86 123 4567; 00353861234567\n+353-86-123-4567", None,
     [("+353 86 123 4567", "+353861234567", True)]),
    ("(978) 835-4530, +1 978 835 4530, 19788354530", "US",
     [("(978) 835-4530", "+19788354530", True)]),
    # the WhatsApp channel is a different recipient from the SMS number
    ("+353861234567, whatsapp:+353861234567, WHATSAPP:00353861234567", None,
     [("+353861234567", "+353861234567", True), ("whatsapp:+353861234567", "whatsapp:+353861234567", True)]),
    # identical invalid text once, different invalid text each
    ("bad, bad, Bad", None, [("bad", None, False), ("Bad", None, False)]),
    # trailing separators are not recipients
    ("+447911123456,", None, [("+447911123456", "+447911123456", True)]),
    ("+447911123456;\n", None, [("+447911123456", "+447911123456", True)]),
    ("+447911123456\r\n\r\n", None, [("+447911123456", "+447911123456", True)]),
    # valid and invalid mixed keep input order
    ("(978) 835-4530, +447911123456", None,
     [("(978) 835-4530", None, False), ("+447911123456", "+447911123456", True)]),
    ("", None, []),
    (" , ; ", None, []),
])
def test_parse_recipients(text, region, expected):
    assert _summary(parse_recipients(text, region)) == expected


def test_parse_recipients_reasons():
    recipients = parse_recipients("+15558675310, (978) 835-4530")
    assert [r.reason for r in recipients] == [
        "'+15558675310' is not a valid number for US",
        "'(978) 835-4530' has no country code; write it as +<country code>… or set default_region",
    ]
    assert [r.address for r in recipients] == ["+15558675310", "(978) 835-4530"]


def test_parse_recipients_bad_region():
    with pytest.raises(ValueError, match="default_region 'ZZ'"):
        parse_recipients("+447911123456", "ZZ")


def test_recipient_properties():
    good = Recipient(raw="00353861234567", e164="+353861234567", reason=None)
    bad = Recipient(raw="oops", e164=None, reason="'oops' contains letters")
    assert good.valid and good.address == "+353861234567"
    assert not bad.valid and bad.address == "oops"
    with pytest.raises(dataclasses.FrozenInstanceError):
        good.raw = "x"


@pytest.mark.parametrize("number,expected", [
    ("+353861234567", "+35386*****67"),
    ("+19788354530", "+19788****30"),
    ("+447911123456", "+44791*****56"),
    ("whatsapp:+353861234567", "whatsapp:+35386*****67"),
    ("WhatsApp:+353861234567", "WhatsApp:+35386*****67"),
    ("+123456789", "+12345**89"),
    ("+12345678", "+12345*78"),
    ("+1234567", "+1******"),
    ("+1234", "+1***"),
    ("+1", "**"),
    ("", ""),
    (None, ""),
    ("whatsapp:", "whatsapp:"),
    ("(978) 835-4530", "(978) ******30"),
])
def test_mask(number, expected):
    assert mask(number) == expected


@pytest.mark.parametrize("number", ["+353861234567", "+19788354530", "whatsapp:+447911123456"])
def test_mask_hides_the_middle(number):
    masked = mask(number)
    assert len(masked) == len(number)
    assert number[-8:-2] not in masked


# ---------------------------------------------------------------------------------------------
# Numbers written without "+" (contract §8): read as international and, with default_region,
# as national; one valid reading is used, two different ones or none are invalid with the reason.
# ---------------------------------------------------------------------------------------------
# (destination, default_region, [(entry, E.164 or None, words the reason must contain)])
DIGITS_ONLY = [
    # the 2.0.1 documentation's own example: 353834463164 is sent as +353834463164
    ("1234,353834463164", None,
     [("1234", None, ["'1234' has no country code (no + or 00): read as the international number +1234 it "
                      "is not a possible phone number for US (too short); write it as +<country code>… or "
                      "set default_region"]),
      ("353834463164", "+353834463164", [])]),
    ("1234,353834463164", "US",
     [("1234", None, ["is not a phone number read either way", "as the international number +1234",
                      "as a US number it is not a possible phone number for US (too short)"]),
      ("353834463164", "+353834463164", [])]),
    ("353 83 446 3164", "IE", [("353 83 446 3164", "+353834463164", [])]),   # both readings agree
    # a US national number with and without default_region
    ("(978) 835-4530", "US", [("(978) 835-4530", "+19788354530", [])]),
    ("978.835.4530", "US", [("978.835.4530", "+19788354530", [])]),
    ("(978) 835-4530", None,
     [("(978) 835-4530", None, ["has no country code; write it as +<country code>… or set default_region"])]),
    ("19788354530", None, [("19788354530", "+19788354530", [])]),            # 1 is the US country code
    # valid both ways with different results: invalid, both readings named, the + form asked for
    ("201 517 8128", "US",
     [("201 517 8128", None, ["can be read two ways", "+2015178128 (EG)", "the US number +12015178128",
                              "in its + form"])]),
    # the same digits without default_region have one reading only: the international one
    ("201 517 8128", None, [("201 517 8128", "+2015178128", [])]),
    # valid neither way
    ("12", "US", [("12", None, ["read either way", "+12", "as a US number it is not a possible phone "
                                                          "number for US (too short)"])]),
    ("999 1234 5678", "GB", [("999 1234 5678", None, ["+99912345678 it has an unknown country code",
                                                      "as a GB number it"])]),
    ("353834", None, [("353834", None, ["read as the international number +353834 it",
                                        "not a possible phone number for IE (too short)"])]),
    ("0861234567", None, [("0861234567", None, ["has no country code"])]),
    # + and 00 entries are international as before, whatever default_region says
    ("+2015178128, 002015178128", "US", [("+2015178128", "+2015178128", [])]),
    ("00 1 978 835 4530", "IE", [("00 1 978 835 4530", "+19788354530", [])]),
]


@pytest.mark.parametrize("destination,region,expected", DIGITS_ONLY)
def test_numbers_written_without_plus(destination, region, expected):
    recipients = parse_recipients(destination, region)
    assert [(r.raw, r.e164) for r in recipients] == [(entry, e164) for entry, e164, _ in expected]
    for recipient, (_, _, words) in zip(recipients, expected):
        for word in words:
            assert word in recipient.reason, recipient.reason
        if recipient.reason:
            assert repr(recipient.raw) in recipient.reason           # names the entry as written


@pytest.mark.parametrize("entry,national_number", [
    ("(978) 835-4530", "+19788354530"), ("978 835 4530 ext 7", "+19788354530"),
    ("07911 123456", "+447911123456"),
    ("086 123 4567", "+353861234567"), ("(11) 91234-5678", "+5511912345678"),
])
def test_without_default_region_no_country_is_guessed(entry, national_number):
    """A national number without default_region is never read as a number of some assumed country."""
    with pytest.raises(PhoneNumberError) as info:
        normalise(entry)
    assert national_number not in str(info.value)


# ---------------------------------------------------------------------------------------------
# voice:<number> (contract §14): a person to call. Every format and default_region rule applies;
# only lists read with voice=True accept it.
# ---------------------------------------------------------------------------------------------
from fn_twilio.lib.phone import SMS, VOICE, WHATSAPP, read_recipient, read_voice  # noqa: E402

VOICE_VALID = [
    ("voice:+353861234567", None, "+353861234567"),
    ("VOICE:+353 86 123 4567", None, "+353861234567"),
    ("Voice: 00353861234567", "US", "+353861234567"),
    ("voice:(978) 835-4530", "US", "+19788354530"),
    ("voice:07911 123456", "GB", "+447911123456"),
    ("voice:tel:+1-978-835-4530", None, "+19788354530"),
    ("voice:\uff0b\uff13\uff15\uff13 \uff18\uff16 \uff11\uff12\uff13 \uff14\uff15\uff16\uff17", None,
     "+353861234567"),
    ("voice:353834463164", None, "+353834463164"),    # digits only, read as international (contract §8)
]


@pytest.mark.parametrize("entry,region,expected", VOICE_VALID)
def test_a_voice_entry_is_read_like_any_number(entry, region, expected):
    (recipient,) = parse_recipients(entry, region, voice=True)
    assert (recipient.e164, recipient.channel, recipient.reason) == (expected, VOICE, None)
    assert recipient.is_voice and recipient.valid and recipient.raw == entry.strip()
    assert read_voice(entry, region) == expected


VOICE_INVALID = [
    ("voice:", None, "no number after 'voice:'"),
    ("voice:   ", None, "no number after 'voice:'"),
    ("voice:12345", None, "'voice:12345' has no country code"),
    ("voice:(978) 835-4530", None, "has no country code; write it as +<country code>… or set default_region"),
    ("voice:+1 978 835 4530 ext. 1", None, "extension"),
    ("voice:call me", None, "contains letters"),
    ("voice:whatsapp:+353861234567", None, "not to a WhatsApp address"),
    ("voice:201 517 8128", "US", "can be read two ways"),
]


@pytest.mark.parametrize("entry,region,words", VOICE_INVALID)
def test_a_bad_voice_entry_is_invalid_with_a_reason_naming_it(entry, region, words):
    (recipient,) = parse_recipients(entry, region, voice=True)
    assert recipient.e164 is None and recipient.channel == VOICE and not recipient.valid
    assert words in recipient.reason and repr(entry.strip()) in recipient.reason
    with pytest.raises(PhoneNumberError):
        read_voice(entry, region)


def test_a_voice_entry_is_refused_where_only_texts_go():
    recipients = parse_recipients("+353861234568, voice:+353861234567")
    assert [r.valid for r in recipients] == [True, False]
    assert "only a page's tiers (twilio_page_tiers) can call" in recipients[1].reason
    assert "'voice:+353861234567'" in recipients[1].reason


def test_the_same_number_by_sms_whatsapp_and_voice_is_three_recipients_each_once():
    recipients = parse_recipients("+353861234567; voice:+353861234567, whatsapp:+353861234567, "
                                  "VOICE:00353861234567, 00353861234567", voice=True)
    assert [(r.channel, r.e164) for r in recipients] == [
        (SMS, "+353861234567"), (VOICE, "+353861234567"), (WHATSAPP, "whatsapp:+353861234567")]
    assert len({r.key for r in recipients}) == 3


def test_a_recipient_built_without_a_channel_is_sms():
    assert Recipient("+353861234567", "+353861234567", None).channel == SMS
    assert read_recipient("whatsapp:+353861234567").channel == WHATSAPP


@pytest.mark.parametrize("number,expected", [("voice:+353861234567", "voice:+35386*****67"),
                                             ("VOICE:+19788354530", "VOICE:+19788****30")])
def test_mask_keeps_the_voice_prefix_readable(number, expected):
    assert mask(number) == expected
