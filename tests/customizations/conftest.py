"""Fixtures for the customizations tests: the built export and realistic function results."""
import copy
import json
import os
import sys

import pytest

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
if REPO_ROOT not in sys.path:  # customizations/ and sandbox/ are not installed packages
    sys.path.insert(0, REPO_ROOT)

EXPORT_RES_PATH = os.path.join(REPO_ROOT, "fn_twilio", "util", "data", "export.res")

# ---------------------------------------------------------------------------------------------
# twilio_send_sms: custom results (top level), three unique recipients, one invalid
# ---------------------------------------------------------------------------------------------
SEND_RESULTS_ONE_INVALID = {
    "success": False,
    "reason": "1 of 3 recipients failed",
    "inputs": {
        "twilio_sms_destination": "+353 86 123 4567, (978) 835-4530, 12345",
        "twilio_sms_message": "Incident 2095 <needs> you & your team: reply ACK",
    },
    "twilio_status": [
        {
            "phone_number": "+353861234567", "success": True, "status": "queued",
            "sid": "SM0123456789abcdef0123456789abcdef",
            "messaging_service_sid": "SM0123456789abcdef0123456789abcdef",
            "date_created": "2025-11-26 10:00:01+00:00", "date_created_ts": 1764151201000,
            "direction": "outbound-api",
            "message_body": "Incident 2095 <needs> you & your team: reply ACK",
            "num_segments": 1, "error_code": None, "error_message": None,
        },
        {
            "phone_number": "+19788354530", "success": True, "status": "queued",
            "sid": "SMfedcba9876543210fedcba9876543210",
            "messaging_service_sid": "SMfedcba9876543210fedcba9876543210",
            "date_created": "2025-11-26 10:00:01+00:00", "date_created_ts": 1764151201000,
            "direction": "outbound-api",
            "message_body": "Incident 2095 <needs> you & your team: reply ACK",
            "num_segments": 1, "error_code": None, "error_message": None,
        },
        {
            "phone_number": "12345", "success": False, "status": "invalid",
            "sid": None, "messaging_service_sid": None,
            "date_created": None, "date_created_ts": None, "direction": None,
            "message_body": None, "num_segments": None, "error_code": None,
            "error_message": "12345 is not a valid phone number: it has no country code and "
                             "no default_region is set",
        },
    ],
}

SEND_RESULTS_TWILIO_ERROR = {
    "success": False,
    "reason": "1 of 1 recipients failed",
    "inputs": {"twilio_sms_destination": "+353861234567",
               "twilio_sms_message": "An incident Phishing (2095) with High priority may "
                                     "require your attention"},
    "twilio_status": [{
        "phone_number": "+353861234567", "success": False, "status": "failed",
        "sid": None, "messaging_service_sid": None, "date_created": None,
        "date_created_ts": None, "direction": "outbound-api", "message_body": None,
        "num_segments": None, "error_code": 21610,
        "error_message": "Attempt to send to unsubscribed recipient",
    }],
}

# ---------------------------------------------------------------------------------------------
# twilio_receive_messages: the standard ResultPayload (v2)
# ---------------------------------------------------------------------------------------------
_METRICS = {"version": "1.0", "package": "fn_twilio", "package_version": "2.3.0",
            "host": "soar-apps", "execution_time_ms": 2140, "timestamp": "2025-11-26 10:05:00"}

RECEIVE_RESULTS_REPLIES = {
    "version": 2.0, "success": True, "reason": None,
    "content": [
        {"phone_number": "+353861234567", "sid": "SMaaaa0000000000000000000000000001",
         "messaging_service_sid": "SMaaaa0000000000000000000000000001",
         "date_created": "2025-11-26 10:02:13+00:00", "date_created_ts": 1764151333000,
         "direction": "inbound", "message_body": "ACK", "status": "received",
         "error_message": None},
        {"phone_number": "+353861234567", "sid": "SMaaaa0000000000000000000000000002",
         "messaging_service_sid": "SMaaaa0000000000000000000000000002",
         "date_created": "2025-11-26 10:03:40+00:00", "date_created_ts": 1764151420000,
         "direction": "inbound", "message_body": "On my way <10 min>", "status": "received",
         "error_message": None},
    ],
    "raw": None,
    "inputs": {"twilio_phone_number": "+353861234567", "twilio_date_sent_ts": 1764151201000,
               "twilio_wait_timeout": "5m"},
    "metrics": _METRICS,
}

RECEIVE_RESULTS_TIMEOUT = {
    "version": 2.0, "success": False,
    "reason": "Timeout waiting for responses for phone number: +353861234567 since "
              "2025-11-26 10:00:01+00:00",
    "content": [], "raw": None,
    "inputs": {"twilio_phone_number": "+353861234567", "twilio_date_sent_ts": 1764151201000,
               "twilio_wait_timeout": "2m"},
    "metrics": _METRICS,
}


@pytest.fixture(scope="session")
def export_res():
    with open(EXPORT_RES_PATH, encoding="utf-8") as handle:
        return json.load(handle)


@pytest.fixture
def send_results_one_invalid():
    return copy.deepcopy(SEND_RESULTS_ONE_INVALID)


@pytest.fixture
def send_results_twilio_error():
    return copy.deepcopy(SEND_RESULTS_TWILIO_ERROR)


@pytest.fixture
def receive_results_replies():
    return copy.deepcopy(RECEIVE_RESULTS_REPLIES)


@pytest.fixture
def receive_results_timeout():
    return copy.deepcopy(RECEIVE_RESULTS_TIMEOUT)
