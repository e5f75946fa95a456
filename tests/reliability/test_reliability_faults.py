"""Fault matrix: Twilio misbehaving, through the Twilio emulator and the real resilient-circuits machinery.

Send faults: each row's fault hits one recipient (``match_to``: a number of the row's own) of a
two-recipient call of twilio_send_sms. The rows run as concurrent calls (then every "next call" at
once), and each test checks one row: the call ended within a bounded time, every recipient is
reported in input order, the other recipient was still sent, each SMS was sent at most once
(create requests and accepted messages per recipient), the failure is reported with Twilio's code,
the readable explanation from fn_twilio.lib.errors and, when the SMS may have been sent, "may or may
not have been sent" and Twilio's request id; and the next call works.

Faults while polling for replies run one by one (calls share the poller); so do the faults while
reading delivery statuses, and a page whose first tier's text may have been sent. Faults that need a small
retry budget to stay fast (refused connections, an unreachable proxy, 429s outlasting the time
budget) run through the lib-level SendJob with a small RetryPolicy, against the same emulator and
the real twilio SDK.
"""
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Callable, Optional

import pytest

from fn_twilio.lib.errors import MAY_HAVE_SENT, TWILIO_CODES, explain_code
from fn_twilio.lib.phone import parse_recipients
from fn_twilio.lib.sender import RetryPolicy, SendJob
from fn_twilio.lib.settings import load_settings
from sandbox.twilio_emulator import ACCOUNT_SID, AUTH_TOKEN, SENDER
from tests.conftest import app_section
from tests.reliability import reliability_helpers as helpers
from tests.reliability.reliability_helpers import (ALICE, BOB, LEDGER, ForwardProxy, closed_port, creates,
                                                   lists, outbound, receive, send, settle, unique_body)

BOUND = 20.0          # seconds: a guard against a hanging job (the call itself ends by its reason)
APP_TIMEOUT = "1"     # the app's HTTP timeout in these classes, so that "slower than timeout" is quick
DUD = "+15005550001"  # a valid-looking number the emulator (like Twilio's test credentials) refuses: 21211


@dataclass
class SendFault:
    """One row of the send fault matrix."""

    id: str
    inject: Callable                    # inject(emu, victim)
    outcome: str                        # "sent", "rate_limited", "maybe_sent" or "refused"
    requests: int                       # create requests expected for the victim
    accepted: int                       # SMS the emulator accepted for the victim (0 or 1)
    code: Optional[int] = None          # error_code expected on the victim's entry
    words: tuple = ()                   # texts expected in the victim's error_message
    victim: Optional[str] = None        # the number the fault hits (one of its own unless given)
    lasting: bool = False               # the cause persists: the next call goes to another number
    reference: bool = False             # Twilio's request id must be quoted

    def __str__(self):
        return self.id


def status_fault(status, code=None, retry_after=None, times=1):
    def inject(emu, victim):
        emu.inject_fault("status", status=status, code=code, retry_after=retry_after, times=times,
                         match_to=victim)
    return inject


def fault(kind, **kwargs):
    def inject(emu, victim):
        emu.inject_fault(kind, match_to=victim, **kwargs)
    return inject


def explained(code):
    return f"Twilio error {code}: {explain_code(code)}"


SEND_FAULTS = [
    SendFault("429 with Retry-After", status_fault(429, retry_after=1), "sent", 2, 1),
    SendFault("429 without Retry-After", status_fault(429), "sent", 2, 1),
    SendFault("20429 twice", status_fault(429, code=20429, retry_after=0, times=2), "sent", 3, 1),
    SendFault("429 longer than the retry budget", status_fault(429, retry_after=0, times=5), "rate_limited",
              5, 0, code=20429, words=("rate limiting", "not sent after 5 attempts")),
    SendFault("500 on create", status_fault(500), "maybe_sent", 1, 0, code=20500,
              words=("HTTP 500", MAY_HAVE_SENT), reference=True),
    SendFault("503 on create", status_fault(503), "maybe_sent", 1, 0, code=20503,
              words=("HTTP 503", MAY_HAVE_SENT), reference=True),
    SendFault("HTML error page", fault("html"), "maybe_sent", 1, 0,
              words=("HTTP 502 with an HTML page", MAY_HAVE_SENT), reference=True),
    SendFault("garbage JSON", fault("garbage"), "maybe_sent", 1, 0,
              words=("HTTP 201 with an answer that is not JSON", MAY_HAVE_SENT), reference=True),
    SendFault("empty body", fault("empty"), "maybe_sent", 1, 0,
              words=("HTTP 200 with an empty answer", MAY_HAVE_SENT), reference=True),
    SendFault("slower than timeout", fault("delay", delay=1.6), "maybe_sent", 1, 1,
              words=("did not answer within 1 s", MAY_HAVE_SENT)),
    SendFault("read timeout after commit (commit then drop)", fault("commit_then_drop"), "maybe_sent", 1, 1,
              words=("broke before it answered", MAY_HAVE_SENT)),
    SendFault("connection dropped unanswered", fault("drop"), "maybe_sent", 1, 0,
              words=("broke before it answered", MAY_HAVE_SENT)),
    SendFault("20003 wrong credentials", status_fault(401, code=20003), "refused", 1, 0, code=20003,
              words=(explained(20003),)),
    SendFault("21211 invalid number", lambda emu, victim: None, "refused", 1, 0, code=21211,
              words=(explained(21211),), victim=DUD, lasting=True),
    SendFault("21408 region not enabled", lambda emu, victim: emu.disable_geo(33), "refused", 1, 0,
              code=21408, words=(explained(21408),), victim="+33612345678", lasting=True),
    SendFault("21610 recipient replied STOP", lambda emu, victim: emu.opt_out(SENDER, victim), "refused",
              1, 0, code=21610, words=(explained(21610),), lasting=True),
    SendFault("21614 not a mobile number", lambda emu, victim: emu.add_landline(victim), "refused", 1, 0,
              code=21614, words=(explained(21614),), lasting=True),
    SendFault("21617 body too long", status_fault(400, code=21617), "refused", 1, 0, code=21617,
              words=(explained(21617),)),
]
for _index, _case in enumerate(SEND_FAULTS):
    _case.victim = _case.victim or f"+3538612350{_index:02d}"     # a number of its own: faults match on To
    _case.next_number = f"+4479111234{_index:02d}" if _case.lasting else _case.victim


class SendFaultBatch:
    """Every send fault at once, each on its own victim beside BOB; then every next call at once."""

    def __init__(self, circuits_app, emu, cases):
        settle(emu)
        emu.reset()
        for case in cases:
            case.inject(emu, case.victim)
        LEDGER["fault_scenarios"] += len(cases)
        with helpers.PrivacyWatch() as watch:
            self.first = self._all(circuits_app,
                                   {c.id: (f"{c.victim}, {BOB}", unique_body(c.id)) for c in cases})
            settle(emu)
            self.victim_creates = {c.id: creates(emu, c.victim) for c in cases}
            self.victim_accepted = {c.id: outbound(emu, c.victim) for c in cases}
            self.next = self._all(circuits_app,
                                  {c.id: (c.next_number, unique_body(f"after {c.id}")) for c in cases})
            settle(emu)
        watch.check()
        self.creates = creates(emu)
        self.accepted = outbound(emu)
        LEDGER["faulted_responses"] += sum(1 for r in emu.requests if r.fault)
        self.duplicates = helpers.duplicates(emu)
        LEDGER["duplicate_sms"] += self.duplicates

    @staticmethod
    def _all(circuits_app, calls):
        with ThreadPoolExecutor(max_workers=len(calls)) as pool:
            futures = {key: pool.submit(send, circuits_app, dest, message=text)
                       for key, (dest, text) in calls.items()}
        return {key: future.result() for key, future in futures.items()}


@pytest.fixture(scope="class")
def send_faults(circuits_app, twilio_emulator):
    return SendFaultBatch(circuits_app, twilio_emulator, SEND_FAULTS)


class TestSendFaults:
    APP_SETTINGS = {"timeout": APP_TIMEOUT, **helpers.NO_STORM_LIMIT}     # 18 calls to BOB at once

    @pytest.mark.parametrize("case", SEND_FAULTS, ids=str)
    def test_fault(self, send_faults, case):
        call, _ = send_faults.first[case.id]
        assert call.error is None, call.error
        result = call.result
        body = result["inputs"]["twilio_sms_message"]
        # every recipient reported, in input order; the other one sent regardless, once
        assert [e["phone_number"] for e in result["twilio_status"]] == [case.victim, BOB]
        entry, other = result["twilio_status"]
        assert other["success"] is True and other["sid"].startswith("SM")
        assert [r.form["To"] for r in send_faults.creates if r.form.get("Body") == body].count(BOB) == 1
        assert [m["to"] for m in send_faults.accepted if m["body"] == body].count(BOB) == 1
        # at most once: requests made and SMS accepted for the victim
        assert len(send_faults.victim_creates[case.id]) == case.requests
        assert len(send_faults.victim_accepted[case.id]) == case.accepted
        if case.outcome == "sent":
            assert entry["success"] is True and entry["sid"] == send_faults.victim_accepted[case.id][0]["sid"]
            assert result["success"] is True and result["reason"] is None
        else:
            status = "opted_out" if case.code == 21610 else "failed"    # contract §9.3
            assert entry["success"] is False and entry["status"] == status and entry["sid"] is None
            assert result["success"] is False and result["reason"] == "1 of 2 recipients failed"
            assert entry["may_have_sent"] is (case.outcome == "maybe_sent")
            if case.code is not None:
                assert entry["error_code"] == case.code
            for word in case.words:
                assert word in entry["error_message"], entry["error_message"]
            if case.outcome != "maybe_sent":
                assert MAY_HAVE_SENT not in entry["error_message"]
            if case.reference:
                (faulted,) = [r for r in send_faults.victim_creates[case.id] if r.fault]
                assert faulted.response_headers["Twilio-Request-Id"] in entry["error_message"]
        expected_status = "Sent 2 of 2" if case.outcome == "sent" else "Sent 1 of 2, 1 failed"
        assert call.statuses[-1] == expected_status
        # the next call works
        follow_up, _ = send_faults.next[case.id]
        assert follow_up.result["success"] is True, follow_up.result
        assert send_faults.duplicates == 0

    def test_429_retry_after_is_honoured(self, send_faults):
        case = SEND_FAULTS[0]
        first, second = send_faults.victim_creates[case.id]
        assert first.response_headers.get("Retry-After") == "1"
        assert second.started - first.finished >= 0.9     # waited as told (no upper bound asserted)

    def test_delivery_failure_30007_after_sending(self, circuits_app, twilio):
        """A carrier's later verdict: send reports Twilio's initial status only; nothing in the app
        reads delivery statuses (the receive function lists inbound messages), so 30007 is visible in
        Twilio only. The error table still explains the code for whoever reads it there."""
        LEDGER["fault_scenarios"] += 1
        call, _ = send(circuits_app, ALICE)
        entry = call.result["twilio_status"][0]
        assert entry["success"] is True and entry["status"] == "queued"
        twilio.set_status(entry["sid"], "undelivered", 30007)
        assert twilio.message(entry["sid"])["status"] == "undelivered"
        assert twilio.message(entry["sid"])["error_code"] == 30007
        assert explain_code(30007) == TWILIO_CODES[30007].explanation and "spam" in explain_code(30007)
        replies, _ = receive(circuits_app, ALICE, wait="0s")
        assert replies.result["content"] == []        # the undelivered outbound SMS is not a reply
        assert "30007" not in repr(replies.result)
        assert len(outbound(twilio, ALICE)) == 1      # and nothing resent it


# -- polling for replies --------------------------------------------------------------------------

POLL = dict(method="GET", path_contains="/Messages.json")


class TestPollFaults:
    APP_SETTINGS = {"timeout": APP_TIMEOUT}

    @pytest.mark.parametrize("kind, kwargs, times", [
        ("status", {"status": 500}, 1),
        ("status", {"status": 503}, 2),
        ("status", {"status": 429, "retry_after": 0}, 2),
        ("html", {}, 1),
        ("garbage", {}, 1),
        ("empty", {}, 1),
        ("drop", {}, 1),
        ("delay", {"delay": 1.6}, 1),
    ], ids=["500", "503 twice", "429 twice", "html", "garbage", "empty", "drop", "slower than timeout"])
    def test_transient_failure_is_retried_at_the_next_interval(self, circuits_app, twilio, kind, kwargs,
                                                               times):
        LEDGER["fault_scenarios"] += 1
        reply = twilio.inject_inbound(from_=ALICE, to=SENDER, body=unique_body("on my way"))
        twilio.inject_fault(kind, times=times, **POLL, **kwargs)
        call, _ = receive(circuits_app, ALICE, wait="30s")
        assert call.result["success"] is True, call.result["reason"]
        assert [e["sid"] for e in call.result["content"]] == [reply["sid"]]
        looks = lists(twilio)
        assert sum(1 for r in looks if r.fault) == times and len(looks) >= times + 1
        follow_up, _ = receive(circuits_app, ALICE, wait="0s")
        assert follow_up.result["success"] is True

    @pytest.mark.parametrize("kind, kwargs, words", [
        ("status", {"status": 401, "code": 20003}, explained(20003)),
        ("status", {"status": 500}, "Twilio answered HTTP 500"),
        ("html", {"status": 503}, "HTTP 503"),
    ], ids=["20003", "repeated 500", "repeated html 503"])
    def test_lasting_failure_ends_the_call(self, circuits_app, twilio, kind, kwargs, words):
        LEDGER["fault_scenarios"] += 1
        twilio.inject_fault(kind, times=None, **POLL, **kwargs)
        call, _ = receive(circuits_app, ALICE, wait="60s")
        result = call.result
        assert result["success"] is False and result["content"] == []
        assert result["reason"].startswith("Could not read replies from Twilio: "), result["reason"]
        assert words in result["reason"]
        twilio.clear_faults()
        twilio.inject_inbound(from_=ALICE, to=SENDER, body=unique_body("late"))
        follow_up, _ = receive(circuits_app, ALICE, wait="0s")
        assert follow_up.result["success"] is True


class TestTwilioUnreachable:
    """A closed port as twilio_base_url: every look is refused; the poller retries each interval."""

    APP_SETTINGS = {"twilio_base_url": f"http://127.0.0.1:{closed_port()}"}

    def test_receive_reports_twilio_unreachable(self, circuits_app, twilio):
        LEDGER["fault_scenarios"] += 1
        call, _ = receive(circuits_app, ALICE, wait="60s")
        reason = call.result["reason"]
        assert reason.startswith("Could not read replies from Twilio: Twilio could not be reached"), reason


# -- a proxy from app.config ------------------------------------------------------------------------

@pytest.fixture(scope="class")
def proxy():
    forward = ForwardProxy().start()
    yield forward
    forward.stop()


@pytest.fixture(scope="class")
def proxied_app_config(request, twilio_emulator, proxy):
    """The class's app.config sends Twilio requests through the test's proxy (http_proxy)."""
    request.module.config_data = app_section(twilio_emulator.base_url, http_proxy=proxy.url,
                                             timeout=APP_TIMEOUT) + helpers.SOAR_SECTION
    request.module.resilient_mock = "tests.soar_mock.FnTwilioSoarMock"
    yield


@pytest.mark.usefixtures("proxied_app_config")
class TestProxyHonoured:
    def test_send_and_receive_go_through_the_proxy(self, circuits_app, twilio, proxy):
        call, _ = send(circuits_app, ALICE)
        assert call.result["success"] is True
        twilio.inject_inbound(from_=ALICE, to=SENDER, body=unique_body("via proxy"))
        replies, _ = receive(circuits_app, ALICE, wait="5s")
        assert replies.result["success"] is True
        through = proxy.seen
        base = twilio.base_url
        assert ("POST", f"{base}/2010-04-01/Accounts/{ACCOUNT_SID}/Messages.json") in through
        messages = f"{base}/2010-04-01/Accounts/{ACCOUNT_SID}/Messages.json"
        assert any(method == "GET" and url.startswith(messages + "?") for method, url in through)
        # everything the emulator saw came through the proxy
        assert len(through) == len(twilio.requests)


class TestProxyUnreachable:
    APP_SETTINGS = {"http_proxy": f"http://127.0.0.1:{closed_port()}", "timeout": APP_TIMEOUT}

    def test_receive_reports_the_proxy(self, circuits_app, twilio):
        LEDGER["fault_scenarios"] += 1
        call, _ = receive(circuits_app, ALICE, wait="60s")
        reason = call.result["reason"]
        assert reason.startswith("Could not read replies from Twilio: "
                                 "the proxy configured for Twilio"), reason
        assert not twilio.requests


# -- lib level: a small retry budget ------------------------------------------------------------------

FAST = RetryPolicy(max_attempts=3, base_delay=0.05, max_delay=0.1, budget=2.0)


def lib_settings(base_url, **extra):
    section = {"twilio_account_sid": ACCOUNT_SID, "twilio_auth_token": AUTH_TOKEN,
               "twilio_src_address": SENDER, "twilio_base_url": base_url, "timeout": APP_TIMEOUT}
    proxies = extra.pop("proxies", None)
    section.update(extra)
    return load_settings(section, proxies=proxies)


def run_job(settings, destination, policy=FAST):
    job = SendJob(settings, parse_recipients(destination), unique_body("lib"), policy=policy).start()
    assert job.wait(BOUND), "the send job did not end within the bound"
    return job.outcomes()


class TestLibLevelRetries:
    APP_SETTINGS = {"timeout": APP_TIMEOUT}

    def test_connection_refused_is_retried_then_reported_unreachable(self, circuits_app, twilio):
        LEDGER["fault_scenarios"] += 1
        settings = lib_settings(f"http://127.0.0.1:{closed_port()}")
        outcomes = run_job(settings, f"{ALICE}, {BOB}")
        assert [o.phone_number for o in outcomes] == [ALICE, BOB]
        for outcome in outcomes:
            assert outcome.success is False and outcome.may_have_sent is False
            assert "could not be reached" in outcome.error_message
            assert "not sent after 3 attempts" in outcome.error_message
        follow_up, _ = send(circuits_app, ALICE)
        assert follow_up.result["success"] is True

    def test_unreachable_proxy_is_retried_then_reported(self, circuits_app, twilio):
        LEDGER["fault_scenarios"] += 1
        dead = f"http://127.0.0.1:{closed_port()}"
        settings = lib_settings(twilio.base_url, proxies={"http": dead, "https": dead})
        (outcome,) = run_job(settings, ALICE)
        assert outcome.success is False and outcome.may_have_sent is False
        assert "proxy" in outcome.error_message and "not sent after 3 attempts" in outcome.error_message
        assert not twilio.requests
        follow_up, _ = send(circuits_app, ALICE)
        assert follow_up.result["success"] is True

    def test_429s_outlasting_the_time_budget_are_reported_rate_limited(self, circuits_app, twilio):
        LEDGER["fault_scenarios"] += 1
        twilio.inject_fault("status", status=429, times=None, match_to=ALICE)
        policy = RetryPolicy(max_attempts=100, base_delay=0.05, max_delay=0.1, budget=0.5)
        outcomes = run_job(lib_settings(twilio.base_url), f"{ALICE}, {BOB}", policy)
        alice, bob = outcomes
        assert bob.success is True
        assert alice.success is False and alice.may_have_sent is False and alice.error_code == 20429
        assert "rate limiting" in alice.error_message and "not sent after" in alice.error_message
        assert 3 <= len(creates(twilio, ALICE)) < 100
        assert not outbound(twilio, ALICE)
        twilio.clear_faults()
        follow_up, _ = send(circuits_app, ALICE)
        assert follow_up.result["success"] is True

    def test_a_long_retry_after_is_capped_by_the_policy(self, circuits_app, twilio):
        LEDGER["fault_scenarios"] += 1
        twilio.inject_fault("status", status=429, retry_after=3600, match_to=ALICE)
        (outcome,) = run_job(lib_settings(twilio.base_url), ALICE, RetryPolicy(max_attempts=3, max_delay=0.2))
        assert outcome.success is True
        assert len(creates(twilio, ALICE)) == 2 and len(outbound(twilio, ALICE)) == 1


# -- delivery status and paging under faults ----------------------------------------------------

def sent_sid(circuits_app, twilio, number):
    """Send to ``number`` and mark the text delivered in the emulator; its SID."""
    call, _ = send(circuits_app, number)
    sid = call.result["twilio_status"][0]["sid"]
    twilio.set_status(sid, "delivered")
    return sid


class TestStatusFaults:
    APP_SETTINGS = {"timeout": APP_TIMEOUT}
    STATUS_READS = dict(method="GET", path_contains="/Messages")   # the list and a fetch by SID alike

    @pytest.mark.parametrize("kind, kwargs, times", [
        ("status", {"status": 500}, 1),
        ("status", {"status": 429, "retry_after": 0}, 2),
        ("garbage", {}, 1),
        ("drop", {}, 1),
    ], ids=["500", "429 twice", "garbage", "drop"])
    def test_transient_failure_is_retried_within_the_wait(self, circuits_app, twilio, kind, kwargs, times):
        LEDGER["fault_scenarios"] += 1
        sid = sent_sid(circuits_app, twilio, ALICE)
        twilio.clear_requests()
        twilio.inject_fault(kind, times=times, **self.STATUS_READS, **kwargs)
        call, _ = helpers.call(circuits_app, "twilio_get_message_status",
                               {"twilio_message_sids": sid, "twilio_wait_timeout": "30s"})
        assert call.result["success"] is True, call.result["reason"]
        entries = [(e["sid"], e["status"], e["final"]) for e in call.result["content"]]
        assert entries == [(sid, "delivered", True)]
        assert sum(1 for r in twilio.requests if r.fault) == times

    def test_lasting_failure_ends_the_call_with_the_reason(self, circuits_app, twilio):
        LEDGER["fault_scenarios"] += 1
        sid = sent_sid(circuits_app, twilio, ALICE)
        twilio.inject_fault("status", times=None, status=401, code=20003, **self.STATUS_READS)
        call, _ = helpers.call(circuits_app, "twilio_get_message_status",
                               {"twilio_message_sids": sid, "twilio_wait_timeout": "60s"})
        result = call.result
        assert result["success"] is False
        assert result["reason"].startswith("Could not read delivery statuses from Twilio"), result["reason"]
        assert explained(20003) in result["reason"]


class TestPageFaults:
    APP_SETTINGS = {"timeout": APP_TIMEOUT, "max_wait_timeout": "1h"}

    def test_a_page_that_may_have_been_sent_is_not_resent_and_the_next_tier_is_paged(self, circuits_app,
                                                                                      twilio):
        LEDGER["fault_scenarios"] += 1
        twilio.inject_fault("status", status=500, match_to=ALICE)
        answer = threading.Thread(target=self._ack_when_paged, args=(twilio, BOB), daemon=True)
        answer.start()
        call, _ = helpers.call(circuits_app, "twilio_page",
                               {"twilio_page_tiers": f"{ALICE}; {BOB}", "twilio_escalate_after": "10m",
                                "twilio_sms_message": unique_body("Page"), "incident_id": 2095}, timeout=60)
        content = call.result["content"]
        assert content["acknowledged_by"] == BOB and content["tier"] == 2
        alice = content["pages"][0]
        assert alice["phone_number"] == ALICE and alice["success"] is False and alice["may_have_sent"] is True
        assert MAY_HAVE_SENT in alice["error_message"]
        assert len(creates(twilio, ALICE)) == 1                      # never sent again
        assert [e["event"] for e in content["timeline"]][:3] == ["send_failed", "escalated", "paged"]

    @staticmethod
    def _ack_when_paged(twilio, number, timeout=30.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and not twilio.outbound_messages(to=number):
            time.sleep(0.02)
        twilio.inject_inbound(from_=number, to=SENDER, body="ack")
