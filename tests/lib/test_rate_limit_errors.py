"""Rate limits in the one error table (14107, 30022, 63038), read the same wherever a status is read:
a send result, a delivery status, a page's timeline."""
from types import SimpleNamespace

import pytest
from twilio.base.exceptions import TwilioRestException

from fn_twilio.lib.errors import TWILIO_CODES, classify, explain_code
from fn_twilio.lib.paging import DeliveryCheck
from fn_twilio.lib.records import DeliveryStatus, SendOutcome
from tests.lib.fakes import T0

# (code, Twilio's own title, words our explanation must hold)
RATE_LIMITS = [
    (14107, "SMS send rate limit exceeded", ["more than 30 texts", "within 30 s", "for 30 s"]),
    (30022, "US A2P 10DLC - Rate Limits Exceeded", ["10DLC campaign rate limit", "throughput"]),
    (63038, "Account exceeded the daily messages limit", ["daily message limit", "rolling 24 hours"]),
]


def failed_message(code: int, title: str) -> SimpleNamespace:
    return SimpleNamespace(sid="SM" + "1" * 32, status="failed", to="+353861234567", from_="+15005550006",
                           error_code=code, error_message=title, date_created=T0, date_sent=None,
                           date_updated=T0, num_segments="1", price=None, price_unit="USD")


@pytest.mark.parametrize("code, title, words", RATE_LIMITS)
def test_the_table_explains_each_rate_limit_in_words(code, title, words):
    explanation = explain_code(code)
    assert explanation == TWILIO_CODES[code].explanation and explanation != title
    assert all(w in explanation for w in words), explanation


@pytest.mark.parametrize("code, title, words", RATE_LIMITS)
def test_a_delivery_status_carries_the_tables_words(code, title, words):
    result = DeliveryStatus.from_message(failed_message(code, title)).as_result()
    assert result["status"] == "failed" and result["error_code"] == code and result["final"] is True
    assert result["error_message"] == TWILIO_CODES[code].explanation


@pytest.mark.parametrize("code, title, words", RATE_LIMITS)
def test_a_pages_timeline_says_it_in_the_same_words(code, title, words):
    status = DeliveryStatus.from_message(failed_message(code, title))
    detail = DeliveryCheck.why(status.status, status.error_code, status.error_message)
    assert detail == f"the text was not delivered: failed ({code}: {TWILIO_CODES[code].explanation})"


@pytest.mark.parametrize("code, title, words", RATE_LIMITS)
def test_a_send_refused_with_the_code_reports_it_in_the_same_words(code, title, words):
    refused = TwilioRestException(400, "/Messages.json", f"Unable to create record: {title}", code=code,
                                  method="POST")
    entry = SendOutcome.failed("+353861234567", classify(refused)).as_result()
    assert entry["success"] is False and entry["status"] == "failed" and entry["error_code"] == code
    assert entry["error_message"].startswith(f"Twilio error {code}: {TWILIO_CODES[code].explanation}")
    assert entry["may_have_sent"] is False
