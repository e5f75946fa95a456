"""The parallel sender (fn_twilio.lib.sender) against the Twilio emulator over HTTP, without SOAR."""
import pytest

from fn_twilio.lib.phone import parse_recipients
from fn_twilio.lib.sender import SendJob
from fn_twilio.lib.settings import load_settings
from sandbox.twilio_emulator import ACCOUNT_SID, AUTH_TOKEN, SENDER


def settings_for(twilio, concurrency):
    return load_settings({"twilio_account_sid": ACCOUNT_SID, "twilio_auth_token": AUTH_TOKEN,
                          "twilio_src_address": SENDER, "twilio_base_url": twilio.base_url,
                          "max_concurrency": str(concurrency), "timeout": "5"})


def most_in_flight(records):
    events = sorted([(r.started, 1) for r in records] + [(r.finished, -1) for r in records])
    current = peak = 0
    for _, step in events:
        current += step
        peak = max(peak, current)
    return peak


@pytest.mark.parametrize("concurrency", [1, 3, 5])
def test_in_flight_never_exceeds_max_concurrency_and_order_is_kept(twilio, concurrency):
    twilio.latency = 0.05
    numbers = [f"+3538612345{n:02d}" for n in range(12)]
    recipients = parse_recipients(", ".join(numbers))
    outcomes = SendJob(settings_for(twilio, concurrency), recipients, "hello").run()
    assert [o.phone_number for o in outcomes] == numbers
    assert all(o.success for o in outcomes)
    creates = [r for r in twilio.requests if r.method == "POST"]
    assert sorted(r.form["To"] for r in creates) == sorted(numbers)
    assert most_in_flight(creates) == concurrency


def test_invalid_entries_keep_their_place_without_a_request(twilio):
    recipients = parse_recipients("+353861234567, 12345, +14155552345")
    job = SendJob(settings_for(twilio, 5), recipients, "hello")
    outcomes = job.run()
    assert [o.status for o in outcomes] == ["queued", "invalid", "queued"]
    assert job.total == 2 and job.sent == 2 and job.failed == 0
    assert len([r for r in twilio.requests if r.method == "POST"]) == 2
