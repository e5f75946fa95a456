"""The escalation engine's voice tier (contract §14) with a FakeClock, a fake Twilio (messages) and a fake
Studio account: each call's person is scripted (press 1, press 2, no answer, busy, a machine, no key, a
call that rings on, an execution that never ends), and the page's timeline, entries, escalation, the
ending of calls still going and the resume after a crash are checked in milliseconds."""
import json
import threading
from datetime import timedelta
from types import SimpleNamespace

import pytest
import requests
from twilio.base.exceptions import TwilioRestException
from urllib3.exceptions import ReadTimeoutError

from fn_twilio.lib import polling
from fn_twilio.lib.clock import FakeClock
from fn_twilio.lib.intents import ack_request
from fn_twilio.lib.paging import Event, Page, TierError, parse_tiers
from fn_twilio.lib.reconcile import Delivery
from fn_twilio.lib.storm import Limiter
from fn_twilio.lib.voice import (FLOW_NAME, CallWatcher, FlowRef, VoiceError, first_run_call_code,
                                 first_run_calls, forget_flows, load_definition, prepare)
from tests.lib.fake_studio import FakeStudio
from tests.lib.fakes import SENDER, T0, FakeTwilio, message, settings

ALICE, BOB, CAROL = "+353861234567", "+353869876543", "+14155552345"
CODE = "2095"
TEXT = "Incident 2095 needs you."
BODY = TEXT + ack_request(CODE)

#: what a called person does: (seconds after the call was placed, action, argument)
PRESS_1 = [(1, "answer", "human"), (3, "press", "1"), (5, "end", None)]
PRESS_2 = [(1, "answer", "human"), (3, "press", "2"), (5, "end", None)]
PRESS_5 = [(1, "answer", "human"), (3, "press", "5"), (5, "end", None)]
NO_KEY = [(1, "answer", "human"), (8, "end", None)]
NO_ANSWER = [(6, "unanswered", "no-answer")]
BUSY = [(1, "unanswered", "busy")]
FAILED = [(0.5, "unanswered", "failed")]
MACHINE = [(2, "answer", "machine_start"), (3, "end", None)]
RINGS_ON = []                                   # never answered, never ends
NO_WIDGETS = [(2, "end", None)]                 # an execution that ends without the call widget


class VoiceRun:
    """One page in a thread, the fake time moved in half-second steps. ``people`` maps a number to what
    they do when called; ``script`` maps a moment (s after the start) to an action."""

    def __init__(self, tiers, *, people=None, escalate_after=60.0, max_wait=3600.0, script=None,
                 resume=None, log=(), executions=(), call_time_limit=600.0, terminated_at=None,
                 flow=True, poll_interval="2s", storm_limit=None):
        self.clock = FakeClock(wall_start=None)
        self.twilio = FakeTwilio()
        self.twilio.add(*log)
        self.studio = FakeStudio(self.clock)
        self.flow_ref = None
        if flow:
            flow = self.studio.add_flow(FLOW_NAME, load_definition(), created=T0 - timedelta(days=1))
            self.flow_ref = FlowRef(flow.sid, FLOW_NAME, 1, "found")
        self.people = dict(people or {})
        self.done = set()                   # (execution sid, step index) already played
        self.texted_at, self.called_at, self.statuses = [], [], []
        self.start = self.clock.now()
        for execution in executions:       # the first run's calls: (to, seconds ago, parameters, steps)
            self.first_run_call(*execution)
        create = self.twilio.create

        def timed_create(**params):
            self.texted_at.append((self.clock.now() - self.start, params["to"]))
            return create(**params)

        self.twilio.create = timed_create

        def terminated():
            late = terminated_at is not None and self.clock.now() - self.start >= terminated_at
            return "closed by analyst" if late else None

        page_settings = settings(poll_interval=poll_interval) if storm_limit is None else \
            settings(poll_interval=poll_interval, max_texts_per_person=str(storm_limit[0]),
                     person_window=storm_limit[1])
        self.limiter = None if storm_limit is None else \
            Limiter(page_settings, clock=self.clock, client_factory=self.client)
        self.page = Page(page_settings, parse_tiers(tiers), BODY, CODE,
                         escalate_after=escalate_after, max_wait=max_wait, is_terminated=terminated,
                         progress=self.statuses.append, resume=resume, flow=self.flow_ref, call_text=TEXT,
                         call_time_limit=call_time_limit, clock=self.clock, client_factory=self.client,
                         limiter=self.limiter)
        self.script = sorted((script or {}).items(), key=lambda kv: kv[0])

    def client(self, _settings=None):
        studio = self.studio.client()
        return SimpleNamespace(messages=SimpleNamespace(page=self.twilio.page, create=self.twilio.create),
                               studio=studio.studio, http_client=studio.http_client)

    def first_run_call(self, to, seconds_ago, parameters, steps=()):
        execution = self.studio.client().studio.v2.flows(self.flow_ref.sid).executions.create(
            to=to, from_=SENDER, parameters=json.dumps(parameters))
        record = self.studio.executions[execution.sid]
        record.date_created = record.date_updated = T0 - timedelta(seconds=seconds_ago)
        for action, argument in steps:
            self.act(execution.sid, action, argument)
        self.studio.requests.clear()

    def act(self, sid, action, argument):
        if self.studio.executions[sid].status == "ended":
            return
        if action == "answer":
            self.studio.answer(sid, answered_by=argument)
        elif action == "press":
            self.studio.press(sid, argument)
        elif action == "unanswered":
            self.studio.unanswered(sid, argument)
        elif action == "end":
            self.studio.end(sid)

    def reply(self, number, body):
        return lambda: self.twilio.add(message(number, body, sent=self.clock.wall()))

    def _play(self):
        now = self.clock.wall()
        with self.studio.lock:
            executions = list(self.studio.executions.values())
        for execution in executions:
            for index, (after, action, argument) in enumerate(self.people.get(execution.to, ())):
                key = (execution.sid, index)
                if key not in self.done and now >= execution.date_created + timedelta(seconds=after):
                    self.done.add(key)
                    self.act(execution.sid, action, argument)

    @property
    def creates(self):
        return [r for r in self.studio.requests if r["kind"] == "executions.create"]

    def __call__(self):
        result = {}

        def run():
            try:
                result["outcome"] = self.page.run()
            except BaseException as exc:  # noqa: BLE001 - shown by the assertion below
                result["error"] = exc

        thread = threading.Thread(target=run)
        thread.start()
        seen_creates = 0
        while thread.is_alive():
            elapsed = self.clock.now() - self.start
            while self.script and self.script[0][0] <= elapsed:
                self.script.pop(0)[1]()
            creates = self.creates
            for request in creates[seen_creates:]:
                self.called_at.append((elapsed, request["to"]))
            seen_creates = len(creates)
            self._play()
            thread.join(0.003)
            if thread.is_alive():
                self.clock.advance(0.5)
        self.elapsed = self.clock.now() - self.start
        assert "error" not in result, result.get("error")
        return result["outcome"]


def events(outcome, channel=False):
    if channel:
        return [(e.event, e.tier, e.phone_number, e.channel) for e in outcome.timeline]
    return [(e.event, e.tier, e.phone_number) for e in outcome.timeline]


def entry_of(outcome, number, channel="voice"):
    return next(p.as_result() for p in outcome.pages
                if p.phone_number == number and p.as_result().get("channel", "sms") == channel)


@pytest.fixture(autouse=True)
def no_watcher_left():
    forget_flows()
    yield
    for _ in range(2000):
        if not polling.active_pollers():
            break
        threading.Event().wait(0.002)
    assert polling.active_pollers(CallWatcher.kind) == 0


# -- parsing the tiers ------------------------------------------------------------------------------------
@pytest.mark.parametrize("text, expected", [
    (f"voice:{ALICE}", [[("voice", ALICE)]]),
    (f"{ALICE}; voice:{ALICE}", [[("sms", ALICE)], [("voice", ALICE)]]),     # texted, then called
    (f"{ALICE}, voice:{ALICE}; {BOB}", [[("sms", ALICE), ("voice", ALICE)], [("sms", BOB)]]),
    (f"voice:{ALICE}; VOICE: {ALICE}, {BOB}", [[("voice", ALICE)], [("sms", BOB)]]),   # called once
    (f"voice:+353 86 123 4567; whatsapp:{BOB}", [[("voice", ALICE)], [("whatsapp", f"whatsapp:{BOB}")]]),
])
def test_parse_tiers_reads_voice_entries_and_dedupes_by_channel_and_number(text, expected):
    assert [[r.key for r in tier] for tier in parse_tiers(text)] == expected


def test_parse_tiers_reads_a_national_voice_number_with_the_default_region():
    (tier,) = parse_tiers("voice:(415) 555-2345", default_region="US")
    assert [(r.channel, r.e164) for r in tier] == [("voice", CAROL)]


@pytest.mark.parametrize("text, words", [
    (f"{ALICE}; voice:12345", "tier 2 has a voice: entry that cannot be called ('voice:12345'"),
    (f"voice:{ALICE}, voice:", "tier 1 has a voice: entry that cannot be called ('voice:' has no number"),
    (f"{ALICE}, voice:whatsapp:{BOB}", "a call goes to a phone number, not to a WhatsApp address"),
])
def test_a_voice_entry_that_cannot_be_called_refuses_the_whole_page(text, words):
    with pytest.raises(TierError) as info:
        parse_tiers(text)
    assert words in str(info.value) and "nothing was called or texted" in str(info.value)


def test_a_page_with_voice_entries_needs_the_flow_and_a_text_to_say():
    with pytest.raises(ValueError, match="needs the page call's Studio flow"):
        VoiceRun(f"voice:{ALICE}", flow=False)
    with pytest.raises(ValueError, match="1601 characters"):
        Page(settings(), parse_tiers(f"voice:{ALICE}"), BODY, CODE, escalate_after=60, max_wait=60,
             flow=FlowRef("FW" + "0" * 32, FLOW_NAME, 1, "found"), call_text="x" * 1601)


# -- outcomes ---------------------------------------------------------------------------------------------
def test_pressing_1_on_a_tier_2_call_acknowledges_the_page():
    run = VoiceRun(f"{ALICE}; voice:{BOB}", people={BOB: PRESS_1}, escalate_after=30)
    outcome = run()
    assert outcome.success and outcome.acknowledged_by == BOB and outcome.tier == 2
    assert [n for _, n in run.texted_at] == [ALICE] and [n for _, n in run.called_at] == [BOB]
    assert 30 <= run.called_at[0][0] <= 32.5                     # tier 2 called at its due time
    (create,) = run.creates
    assert (create["to"], create["from_"]) == (BOB, SENDER)
    assert json.loads(create["parameters"]) == {"text": TEXT, "code": CODE}   # says the text, not the SMS
    assert run.elapsed <= 30 + 3 + 2 * 2 + 1                     # read within the watcher's intervals
    assert events(outcome, channel=True) == [
        ("paged", 1, ALICE, None), ("escalated", 2, None, None), ("paged", 2, BOB, "voice"),
        ("acknowledged", 2, BOB, "voice")]
    acknowledged = outcome.timeline[-1].as_result()
    assert acknowledged["channel"] == "voice" and acknowledged["detail"] == "pressed 1: acknowledged"
    assert set(outcome.timeline[0].as_result()) == {"at", "at_ts", "event", "tier", "phone_number", "detail"}
    entry = entry_of(outcome, BOB)
    assert entry["sid"].startswith("FN") and entry["success"] is True and entry["tier"] == 2
    assert (entry["outcome"], entry["digits"], entry["answered_by"]) == ("acknowledged", "1", "human")
    assert entry["message_body"] == TEXT and entry["may_have_sent"] is False and entry["paged_at_ts"]
    assert run.statuses[2] == "Tier 2: paged 1 person (1 by a call), waiting up to 30s for an acknowledgement"
    assert run.statuses[-1].startswith("Acknowledged by +35386*****43 (pressed 1 on the call) after ")
    assert outcome.as_result()["acknowledged_by"] == BOB


def test_pressing_2_declines_and_the_next_tier_is_paged_at_once():
    run = VoiceRun(f"voice:{ALICE}; {BOB}", people={ALICE: PRESS_2}, escalate_after=120)
    run.script = [(10, run.reply(BOB, "ACK 2095"))]
    outcome = run()
    assert run.texted_at and run.texted_at[0][1] == BOB and run.texted_at[0][0] <= 3 + 2 * 2 + 1
    assert ("declined", 1, ALICE, "voice") in events(outcome, channel=True)
    declined = next(e for e in outcome.timeline if e.event == "declined")
    assert declined.detail == "pressed 2: declined"
    assert entry_of(outcome, ALICE)["outcome"] == "declined"
    assert outcome.success and outcome.acknowledged_by == BOB and outcome.tier == 2


@pytest.mark.parametrize("person, outcome_name, reason", [
    (NO_ANSWER, "not_answered", "the call was not answered"),
    (BUSY, "busy", "the line was busy"),
    (FAILED, "failed", "the call could not be placed"),
    (MACHINE, "machine", "an answering machine (machine_start) answered"),
    (NO_WIDGETS, "unreadable", "ended with no 'call' widget in its context"),
])
def test_a_call_that_reaches_nobody_takes_the_person_out_and_the_next_tier_goes_at_once(
        person, outcome_name, reason):
    run = VoiceRun(f"voice:{ALICE}; {BOB}", people={ALICE: person}, escalate_after=300, max_wait=40)
    outcome = run()
    assert [n for _, n in run.texted_at] == [BOB] and run.texted_at[0][0] < 15   # not at the 300 s window
    failed = [e for e in outcome.timeline if e.event == Event.CALL_FAILED]
    assert [(e.tier, e.phone_number, e.channel) for e in failed] == [(1, ALICE, "voice")]
    assert reason in failed[0].detail
    entry = entry_of(outcome, ALICE)
    assert entry["outcome"] == outcome_name and reason in entry["reason"] and reason in entry["error_message"]
    assert len(run.creates) == 1                                        # never a second call


@pytest.mark.parametrize("person, detail", [
    (NO_KEY, "answered but pressed no key"),
    (PRESS_5, "pressed 5, which is neither 1 (acknowledge) nor 2 (decline)"),
])
def test_a_call_that_ends_without_1_or_2_acknowledges_nothing_and_holds_the_tier_to_its_window(
        person, detail):
    run = VoiceRun(f"voice:{ALICE}; {BOB}", people={ALICE: person}, escalate_after=40, max_wait=50)
    outcome = run()
    assert outcome.success is False
    assert 40 <= run.texted_at[0][0] <= 42.5                   # escalated on the window, not at once
    assert ("call_ended", 1, ALICE, "voice") in events(outcome, channel=True)
    assert next(e.detail for e in outcome.timeline if e.event == "call_ended") == detail
    assert "call_failed" not in [e.event for e in outcome.timeline]


def test_a_call_still_ringing_when_the_window_ends_does_not_hold_escalation_and_is_ended_with_the_page():
    run = VoiceRun(f"voice:{ALICE}; {BOB}", people={ALICE: RINGS_ON}, escalate_after=20)
    run.script = [(25, run.reply(BOB, "ack"))]
    outcome = run()
    assert 20 <= run.texted_at[0][0] <= 22.5
    assert outcome.success and outcome.acknowledged_by == BOB
    ended = [r for r in run.studio.requests if r["kind"] == "execution.update"]
    assert [r["status"] for r in ended] == ["ended"]
    entry = entry_of(outcome, ALICE)
    assert entry["status"] == "ringing" and entry["outcome"] is None
    assert entry["reason"] == "the page ended while the call was still going; the app ended the call"


def test_an_sms_ack_from_a_called_person_acknowledges_the_page():
    run = VoiceRun(f"voice:{ALICE}; {BOB}", people={ALICE: NO_KEY}, escalate_after=60)
    run.script = [(12, run.reply(ALICE, "ACK 2095 calling in"))]
    outcome = run()
    assert outcome.success and outcome.acknowledged_by == ALICE and outcome.tier == 1
    assert run.texted_at == []                                   # tier 2 never paged, Alice never texted
    assert events(outcome, channel=True)[-1] == ("acknowledged", 1, ALICE, None)
    assert [r.body for r in outcome.replies] == ["ACK 2095 calling in"]


def test_a_person_texted_in_tier_1_and_called_in_tier_2_acknowledges_by_either():
    run = VoiceRun(f"{ALICE}; voice:{ALICE}", people={ALICE: PRESS_1}, escalate_after=20)
    outcome = run()
    assert [n for _, n in run.texted_at] == [ALICE] and [n for _, n in run.called_at] == [ALICE]
    assert outcome.acknowledged_by == ALICE and outcome.tier == 2
    assert [(p.tier, p.as_result().get("channel")) for p in outcome.pages] == [(1, None), (2, "voice")]


def test_an_undelivered_text_and_an_unanswered_call_of_one_person_are_two_entries():
    """Alice's text (tier 1) fails; in tier 2 her call is a new entry, not already out."""
    opted_out = TwilioRestException(400, "uri", "Attempt to send to unsubscribed recipient", code=21610)
    run = VoiceRun(f"{ALICE}; voice:{ALICE}; {BOB}", people={ALICE: NO_KEY}, escalate_after=30, max_wait=50)
    run.twilio.create_answers.append(opted_out)
    outcome = run()
    assert run.called_at[0][0] < 2.5                           # text failed: tier 2 at once
    assert 30 <= run.texted_at[1][0] <= 32.5                  # her call is not "out": tier 3 on the window
    assert outcome.reason == "Nobody acknowledged: paged 2 people in 3 tiers"


# -- faults -----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("fault, may_have_called", [
    (TwilioRestException(500, "/v2/Flows", "Internal Server Error", code=20500), True),
    (requests.ConnectionError(ReadTimeoutError(None, "/v2", "Read timed out.")), True),
    (ValueError("Expecting value: line 1 column 1 (char 0)"), True),        # garbage the SDK cannot parse
    (TwilioRestException(400, "/v2/Flows", "Invalid 'To' Phone Number", code=21211), False),
])
def test_a_call_that_could_not_be_started_is_never_started_again_and_the_page_goes_on(fault, may_have_called):
    run = VoiceRun(f"voice:{ALICE}; {BOB}", escalate_after=300, max_wait=30)
    run.studio.fail("executions.create", fault)
    run.script = [(8, run.reply(ALICE, "ACK 2095"))]
    outcome = run()
    assert len(run.creates) == 1                               # never a second call
    assert run.texted_at[0][1] == BOB and run.texted_at[0][0] < 2.5   # Alice is out: tier 2 at once
    entry = entry_of(outcome, ALICE)
    assert entry["success"] is False and entry["sid"] is None and entry["may_have_sent"] is may_have_called
    failed = next(e for e in outcome.timeline if e.event == "call_failed")
    assert failed.channel == "voice" and failed.detail == entry["error_message"]
    if may_have_called:   # the call may have reached her: her SMS acknowledgement still counts
        assert "the call may or may not have been placed" in failed.detail
        assert outcome.success and outcome.acknowledged_by == ALICE
    else:
        assert outcome.success is False


def test_a_rate_limited_start_is_retried_and_calls_once():
    run = VoiceRun(f"voice:{ALICE}", people={ALICE: PRESS_1}, escalate_after=60)
    limited = TwilioRestException(429, "/v2/Flows", "Too Many Requests", code=20429)
    run.studio.fail("executions.create", limited)
    outcome = run()
    assert len(run.creates) == 2 and len(run.studio.executions) == 1
    assert outcome.success and outcome.acknowledged_by == ALICE


def test_an_execution_that_never_ends_is_given_up_and_the_next_tier_goes():
    run = VoiceRun(f"voice:{ALICE}; {BOB}", people={ALICE: [(1, "answer", "human")]}, escalate_after=300,
                   call_time_limit=20, max_wait=40)
    outcome = run()
    assert 20 <= run.texted_at[0][0] <= 25
    failed = next(e for e in outcome.timeline if e.event == "call_failed")
    assert "had not ended after 20 s" in failed.detail
    assert entry_of(outcome, ALICE)["outcome"] == "stuck"


def test_a_call_watcher_refused_for_good_escalates_and_a_key_pressed_later_still_counts():
    forbidden = TwilioRestException(403, "/v2/Flows", "Forbidden", code=20403)
    run = VoiceRun(f"voice:{ALICE}; {BOB}", people={ALICE: [(1, "answer", "human"), (14, "press", "1")]},
                   escalate_after=300)
    run.studio.fail("executions.page", forbidden)
    outcome = run()
    assert run.texted_at and run.texted_at[0][0] < 5            # not held to the 300 s window
    failed = next(e for e in outcome.timeline if e.event == "call_failed")
    assert failed.phone_number == ALICE and failed.detail.startswith("the call could not be followed: ")
    assert any(s.startswith("Calls: the call could not be followed") for s in run.statuses)
    assert outcome.success and outcome.acknowledged_by == ALICE        # read again once Studio answers
    assert events(outcome, channel=True)[-1] == ("acknowledged", 1, ALICE, "voice")


def test_a_listing_refused_for_a_while_delays_nothing_and_calls_once():
    errors = [TwilioRestException(500, "/v2/Flows", "boom", code=20500)] * 3
    run = VoiceRun(f"voice:{ALICE}; {BOB}", people={ALICE: PRESS_1}, escalate_after=60)
    run.studio.fail("executions.page", *errors)
    outcome = run()
    assert outcome.success and outcome.acknowledged_by == ALICE and run.texted_at == []
    assert len(run.creates) == 1


def test_k_calls_in_a_page_cost_at_most_1_plus_k_studio_requests_per_interval():
    people = {n: RINGS_ON for n in (ALICE, BOB, CAROL)}
    run = VoiceRun(f"voice:{ALICE}, voice:{BOB}, voice:{CAROL}", people=people, escalate_after=30)
    run()
    reads = [r for r in run.studio.requests if r["kind"] in ("executions.page", "context.fetch",
                                                             "execution.fetch")]
    assert reads and len(reads) <= (30 / 2 + 1) * (1 + 3)
    listings = [r for r in reads if r["kind"] == "executions.page"]
    assert len(listings) <= 30 / 2 + 2                           # one listing per interval


# -- the page's end ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("how", ["acknowledged", "terminated", "closed"])
def test_calls_still_going_are_ended_when_the_page_ends(how):
    people = {ALICE: [(1, "answer", "human")], BOB: RINGS_ON}
    kwargs = {"terminated_at": 10} if how == "terminated" else {}
    run = VoiceRun(f"voice:{ALICE}, voice:{BOB}, {CAROL}", people=people, escalate_after=60, **kwargs)
    if how == "acknowledged":
        run.script = [(10, run.reply(CAROL, "ack"))]
    elif how == "closed":
        run.script = [(10, run.page.cancel)]
    outcome = run()
    assert 10 <= run.elapsed <= 13
    ended = sorted(r["sid"] for r in run.studio.requests if r["kind"] == "execution.update")
    assert ended == sorted(run.studio.executions)
    assert all(e.status == "ended" for e in run.studio.executions.values())
    statuses = {entry_of(outcome, n)["status"] for n in (ALICE, BOB)}
    assert statuses == {"in-progress", "ringing"}
    assert {entry_of(outcome, n)["reason"] for n in (ALICE, BOB)} == \
        {"the page ended while the call was still going; the app ended the call"}


def test_a_call_that_ended_is_not_ended_again():
    run = VoiceRun(f"voice:{ALICE}; {BOB}", people={ALICE: NO_ANSWER}, escalate_after=60)
    run.script = [(12, run.reply(BOB, "ack"))]
    outcome = run()
    assert outcome.success and not [r for r in run.studio.requests if r["kind"] == "execution.update"]


# -- resuming after a crash -------------------------------------------------------------------------------
def crashed(seconds_ago=30):
    return Delivery(redelivered=True, original=T0 - timedelta(seconds=seconds_ago))


FIRST_RUN = {"text": TEXT, "code": CODE}


def test_a_redelivered_page_follows_the_first_runs_call_and_never_calls_again():
    run = VoiceRun(f"voice:{ALICE}; {BOB}", escalate_after=60, resume=crashed(30),
                   executions=[(ALICE, 29, FIRST_RUN, [("answer", "human")])],
                   people={ALICE: [(0, "press", "1")]})
    outcome = run()
    assert run.creates == [] and run.texted_at == []
    assert outcome.success and outcome.acknowledged_by == ALICE and outcome.tier == 1
    entry = entry_of(outcome, ALICE)
    assert entry["already_sent"] is True and entry["paged_at_ts"] == int((T0 - timedelta(seconds=29))
                                                                         .timestamp() * 1000)
    assert run.statuses[0] == ("Redelivered page: resuming; 1 person was already paged by the interrupted "
                               "run and is not texted or called again")
    paged = next(e for e in outcome.timeline if e.event == "paged")
    assert paged.detail.endswith("(called by the interrupted run)") and paged.channel == "voice"


def test_a_call_the_first_run_ended_keeps_its_outcome_and_the_windows_are_kept():
    run = VoiceRun(f"voice:{ALICE}; {BOB}", escalate_after=60, resume=crashed(50),
                   executions=[(ALICE, 49, FIRST_RUN, [("answer", "human"), ("end", None)])])
    run.script = [(15, run.reply(BOB, "ack"))]
    outcome = run()
    assert run.creates == []
    assert 10 <= run.texted_at[0][0] <= 13.5                  # tier 2 due 60 s after the first run's call
    assert ("call_ended", 1, ALICE) in events(outcome) and outcome.acknowledged_by == BOB


def test_another_pages_call_to_the_same_person_is_not_this_pages():
    other = {"text": "Incident 2096 needs you.", "code": "2096"}
    run = VoiceRun(f"voice:{ALICE}", escalate_after=10, resume=crashed(30),
                   executions=[(ALICE, 20, other, [("answer", "human")])], people={ALICE: PRESS_1})
    outcome = run()
    assert [c["to"] for c in run.creates] == [ALICE]          # this page never called her: called now
    assert outcome.success and outcome.acknowledged_by == ALICE


def test_a_redelivered_page_whose_calls_cannot_be_read_calls_and_texts_nobody():
    run = VoiceRun(f"{BOB}; voice:{ALICE}", escalate_after=60, resume=crashed(30))
    run.studio.fail("executions.page", *[TwilioRestException(503, "/v2/Flows", "down", code=20503)] * 3)
    outcome = run()
    assert run.creates == [] and run.texted_at == [] and outcome.success is False
    assert outcome.reason.startswith("Could not resume the page after a redelivery, so nobody was texted or "
                                     "called again (no one may get the page twice): the page call flow's "
                                     "executions could not be read")


def test_first_run_calls_finds_by_number_text_and_code_and_says_what_it_cannot_read():
    run = VoiceRun(f"voice:{ALICE}, voice:{BOB}, voice:{CAROL}", resume=crashed(60),
                   executions=[(ALICE, 50, FIRST_RUN), (ALICE, 40, {"text": TEXT, "code": "7777"}),
                               (BOB, 30, FIRST_RUN), (CAROL, 200, FIRST_RUN)])   # Carol's: long before
    client, flow = run.client(), run.flow_ref
    found = first_run_calls(client, flow, [ALICE, BOB, CAROL], TEXT, crashed(60), code=CODE)
    assert sorted(found.found) == [ALICE, BOB] and found.unverified == {}
    assert found.found[ALICE].code == CODE
    assert first_run_calls(client, flow, [ALICE], TEXT, Delivery()) == first_run_calls(client, flow, [], TEXT,
                                                                                       crashed())
    run.studio.fail("context.fetch", TwilioRestException(500, "/v2/Flows", "boom", code=20500))
    partly = first_run_calls(client, flow, [ALICE, BOB], TEXT, crashed(60), code=CODE)
    assert list(partly.unverified) == [ALICE] and list(partly.found) == [BOB]
    assert "could not be read" in partly.unverified[ALICE]
    no_stamp = first_run_calls(client, flow, [ALICE], TEXT, Delivery(redelivered=True))
    assert no_stamp.unverified == {ALICE: "the redelivered message carries no original timestamp"}


def test_a_random_code_is_read_back_from_the_first_runs_calls():
    run = VoiceRun(f"voice:{ALICE}, voice:{BOB}", resume=crashed(60),
                   executions=[(BOB, 40, {"text": TEXT, "code": "4312"}), (ALICE, 45, {"text": TEXT,
                                                                                      "code": "4312"})])
    code = first_run_call_code(settings(), run.flow_ref, [ALICE, BOB], TEXT, crashed(60),
                               client_factory=run.client)
    assert code == "4312"
    assert first_run_call_code(settings(), run.flow_ref, [CAROL], TEXT, crashed(60),
                               client_factory=run.client) is None
    run.studio.fail("executions.page", TwilioRestException(500, "/v2/Flows", "boom", code=20500))
    with pytest.raises(VoiceError, match="executions could not be read"):
        first_run_call_code(settings(), run.flow_ref, [ALICE], TEXT, crashed(60), client_factory=run.client)


# -- before anything is sent --------------------------------------------------------------------------------
def test_prepare_checks_the_caller_and_the_flow_before_anything_is_sent():
    studio = FakeStudio()
    flow = prepare(settings(), client_factory=studio.client)
    made = [r["kind"] for r in studio.requests]
    assert flow.how == "created" and made == ["flows.page", "flows.create", "flows.page"]
    assert prepare(settings(), client_factory=studio.client) == flow          # once per process
    assert len(studio.requests) == len(made)
    with pytest.raises(VoiceError, match="voice_sender is not set"):
        prepare(settings(twilio_src_address="", twilio_messaging_service_sid="MG" + "1" * 32),
                client_factory=studio.client)
    missing = "FW" + "f" * 32
    with pytest.raises(VoiceError, match=f"studio_flow_sid {missing} is not a Studio Flow of this Twilio "
                                         "account"):
        prepare(settings(studio_flow_sid=missing), client_factory=studio.client)
    assert not [r for r in studio.requests if r["kind"] == "executions.create"]


# -- labels: voice_sender and studio_flow_sid are not shared settings ---------------------------------------
def test_two_labels_of_one_account_and_sender_may_call_from_other_numbers_through_other_flows():
    """The call watcher is keyed by account and sender (not voice_sender or studio_flow_sid) and follows
    each call in the flow it was started in; the flow is found per label. So the two keys may differ
    between labels of one account and sender, and such labels still share one watcher."""
    from fn_twilio.lib.labels import SHARED_SETTINGS, load_configurations
    from fn_twilio.lib.settings import load_settings
    from fn_twilio.lib.voice import PlacedCall, watch_calls

    base = {"twilio_account_sid": "AC" + "0" * 32, "twilio_auth_token": "t" * 32,
            "twilio_src_address": SENDER}
    found = load_configurations(
        {"eu": base, "us": {**base, "voice_sender": "+15005550007", "studio_flow_sid": "FW" + "1" * 32}},
        lambda name, raw: load_settings(dict(raw), name=name))
    eu, us = found.settings("eu"), found.settings("us")          # both usable: no conflict
    assert not {"voice_sender", "studio_flow_sid"} & {attribute for _, attribute, _ in SHARED_SETTINGS}
    assert (eu.caller, us.caller) == (SENDER, "+15005550007")
    clock = FakeClock()
    studio = FakeStudio(clock)
    flows = [studio.add_flow(name, load_definition()) for name in (FLOW_NAME, f"{FLOW_NAME} (us)")]
    calls = []
    for flow, number in zip(flows, (ALICE, BOB)):
        created = studio.client().studio.v2.flows(flow.sid).executions.create(to=number, from_=SENDER,
                                                                               parameters="{}")
        calls.append(PlacedCall(flow.sid, created.sid, number, clock.wall(), CODE))
    with watch_calls(eu, [calls[0]], client_factory=studio.client, clock=clock) as a, \
            watch_calls(us, [calls[1]], client_factory=studio.client, clock=clock) as b:
        assert a._poller is b._poller
        studio.unanswered(calls[0].execution_sid, "busy")
        studio.unanswered(calls[1].execution_sid, "no-answer")
        for _ in range(400):
            if a.reports()[calls[0].execution_sid].ended and b.reports()[calls[1].execution_sid].ended:
                break
            clock.advance(0.5)
            threading.Event().wait(0.003)
        assert a.reports()[calls[0].execution_sid].outcome.value == "busy"
        assert b.reports()[calls[1].execution_sid].outcome.value == "not_answered"
    listed = {r["flow"] for r in studio.requests if r["kind"] == "executions.page"}
    assert listed == {flows[0].sid, flows[1].sid}


def test_an_invalid_voice_entry_given_to_the_engine_directly_is_reported_not_called():
    from fn_twilio.lib.phone import parse_recipients
    tier = parse_recipients(f"voice:12345, voice:{ALICE}", voice=True)
    run = VoiceRun(ALICE, people={ALICE: PRESS_1})
    run.page.tiers = [tier]
    outcome = run()
    assert [c["to"] for c in run.creates] == [ALICE] and run.texted_at == []
    assert outcome.pages[0].as_result()["status"] == "invalid" and outcome.acknowledged_by == ALICE


# -- the storm limit (contract §15) holds texts, never calls ----------------------------------------------
def test_a_call_is_not_held_by_the_storm_limit_while_the_same_persons_text_is():
    full = [message(SENDER, f"Incident {c} needs you." + ack_request(str(c)), sent=T0 - timedelta(seconds=1),
                    to=ALICE, direction="outbound-api") for c in (3001, 3002)]
    run = VoiceRun(f"{ALICE}, voice:{ALICE}; {BOB}", people={ALICE: PRESS_1}, log=full,
                   storm_limit=(2, "30s"), poll_interval="1s")
    outcome = run()
    assert [to for at, to in run.called_at if at < 1.5] == [ALICE]      # called at once
    assert run.texted_at == []                                           # her text held, then dropped
    assert outcome.success and outcome.acknowledged_by == ALICE
    assert events(outcome, channel=True)[-1] == ("acknowledged", 1, ALICE, "voice")
    text = next(p for p in outcome.pages if p.as_result().get("channel", "sms") == "sms")
    assert text.outcome.error_message == "not sent: the page ended while this SMS was held for a digest"
    assert ("held", 1, ALICE) in events(outcome)
    assert run.limiter.held == 1
    for _ in range(400):     # the limiter's view of the log lingers two intervals, then the tracker stops
        if not polling.active_pollers():
            break
        run.clock.advance(0.5)
        threading.Event().wait(0.005)
    assert not polling.active_pollers()
