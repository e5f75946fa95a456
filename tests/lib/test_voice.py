"""The voice core (fn_twilio.lib.voice), fake clock and fake Studio account: logic in milliseconds.

The flow (found / created / updated / found again by a second process / studio_flow_sid checked), starting
calls with the errors table's rules, reading an execution's context, and the shared call watcher: its
cost, every outcome, and the faults that must never wedge it."""
from __future__ import annotations

import json
import threading
from datetime import timedelta

import pytest
import requests
from twilio.base.exceptions import TwilioException, TwilioRestException
from urllib3.exceptions import NewConnectionError, ReadTimeoutError

from fn_twilio.lib import polling, voice
from fn_twilio.lib.clock import FakeClock
from fn_twilio.lib.errors import FailureKind, MAY_HAVE_CALLED
from fn_twilio.lib.sender import RetryPolicy
from fn_twilio.lib.settings import SettingsError
from fn_twilio.lib.voice import (ACTIVE_REFRESH, CALL_WIDGET, FLOW_NAME, GATHER_WIDGET, MAX_READ_FAILURES,
                                 CallOutcome, CallReport, CallWatch, CallWatcher, FlowRef, PlacedCall,
                                 VoiceError, ensure_flow, flow_name, forget_flows, load_definition,
                                 read_context, readable_problems, start_call, start_calls, wait_for_calls,
                                 watch_calls)
from tests.lib.fake_studio import T0, FakeStudio
from tests.lib.fakes import settings

ALICE, BOB, CAROL = "+353861234567", "+353861234568", "+353861234569"
CALLER = "+15005550006"
NO_JITTER = RetryPolicy(jitter=False)


@pytest.fixture(autouse=True)
def fresh_flows():
    forget_flows()
    yield
    forget_flows()


def server_error(status: int = 500) -> TwilioRestException:
    return TwilioRestException(status, "/v2/Flows", "Internal Server Error", code=20500)


def rate_limited() -> TwilioRestException:
    return TwilioRestException(429, "/v2/Flows", "Too Many Requests", code=20429)


def refused() -> requests.ConnectionError:
    return requests.ConnectionError(NewConnectionError(None, "Connection refused"))


def read_timeout() -> requests.ConnectionError:
    return requests.ConnectionError(ReadTimeoutError(None, "/v2", "Read timed out."))


# -- the shipped definition ------------------------------------------------------------------------------
def test_the_shipped_flow_has_what_the_app_reads():
    definition = load_definition()
    assert readable_problems(definition) == []
    states = {s["name"]: s for s in definition["states"]}
    trigger = states[definition["initial_state"]]
    assert trigger["type"] == "trigger"
    assert {"event": "incomingRequest", "next": CALL_WIDGET} in trigger["transitions"]
    call = states[CALL_WIDGET]["properties"]
    assert call["detect_answering_machine"] is True and call["machine_detection"] == "Enable"
    assert (call["to"], call["from"]) == ("{{contact.channel.address}}", "{{flow.channel.address}}")
    ask = states[GATHER_WIDGET]["properties"]
    assert ask["number_of_digits"] == 1
    assert ask["say"].count("{{flow.data.text}}") == 2
    assert ask["say"].endswith("Press 1 to acknowledge, 2 to decline.")
    assert ask["say"].index("Press 1") > ask["say"].rindex("{{flow.data.text}}")
    # the parameters the app passes are every flow.data variable the flow reads
    text = json.dumps(definition)
    import re
    assert set(re.findall(r"flow\.data\.(\w+)", text)) <= set(voice.PARAMETERS)
    assert set(json.loads(voice.call_parameters("Incident 2101", "2101"))) == set(voice.PARAMETERS)
    # every transition out of the gather and of the screen ends the call or goes to the gather
    assert all("next" not in t for t in states[GATHER_WIDGET]["transitions"])


@pytest.mark.parametrize("definition,problems", [
    (None, ["its definition has no states"]),
    ({"states": []}, ["no make-outgoing-call-v2 widget named 'call'",
                      "no gather-input-on-call widget named 'ask'"]),
    ({"states": [{"name": "call", "type": "make-outgoing-call-v1"},
                 {"name": "ask", "type": "gather-input-on-call"}]},
     ["no make-outgoing-call-v2 widget named 'call' (it is a make-outgoing-call-v1)"]),
])
def test_readable_problems_say_what_is_missing(definition, problems):
    found = readable_problems(definition)
    assert len(found) == len(problems)
    for words, problem in zip(problems, found):
        assert words in problem


# -- ensure_flow --------------------------------------------------------------------------------------------
def test_the_flow_is_created_once_when_absent_and_cached_for_the_process():
    studio, s = FakeStudio(), settings()
    ref = ensure_flow(studio.client(), s)
    assert ref.how == "created" and ref.friendly_name == FLOW_NAME
    (create,) = studio.of("flows.create")
    stamp = f"fn_twilio definition {voice.definition_digest(load_definition())}"
    assert create["friendly_name"] == FLOW_NAME and stamp in create["definition"]["description"]
    assert stamp in create["commit_message"]
    assert studio.flows[ref.sid].status == "published"
    before = len(studio.requests)
    assert ensure_flow(studio.client(), s) == ref          # looked up once per process
    assert len(studio.requests) == before


def test_a_current_flow_is_found_and_neither_created_nor_updated():
    studio, s = FakeStudio(), settings()
    first = ensure_flow(studio.client(), s)
    forget_flows()                                          # a second process
    studio.requests.clear()
    again = ensure_flow(studio.client(), s)
    assert (again.sid, again.how) == (first.sid, "found")
    assert [r["kind"] for r in studio.requests] == ["flows.page", "flow.fetch"]
    assert len(studio.flows) == 1


@pytest.mark.parametrize("description,status", [
    ("an older definition [fn_twilio definition 0123]", "published"), (None, "published"),
    ("current", "draft")])
def test_a_flow_with_another_definition_or_a_draft_is_updated_in_place(description, status):
    studio, s = FakeStudio(), settings()
    definition = load_definition()
    if description == "current":
        definition, _ = voice.stamped_definition()
    else:
        definition["description"] = description
    old = studio.add_flow(FLOW_NAME, definition, status=status)
    ref = ensure_flow(studio.client(), s)
    assert (ref.sid, ref.how, ref.revision) == (old.sid, "updated", 2)
    assert studio.of("flows.create") == [] and len(studio.flows) == 1
    assert studio.flows[old.sid].status == "published"
    assert voice._holds(studio.flows[old.sid].definition, voice.definition_digest(load_definition()))


def test_each_label_has_its_own_flow_and_other_flows_are_left_alone():
    studio, s = FakeStudio(), settings()
    studio.add_flow("Someone else's IVR", {"states": []})
    plain = ensure_flow(studio.client(), s)
    eu = ensure_flow(studio.client(), s, label="eu")
    assert flow_name("eu") == "fn_twilio page call (eu)" and eu.friendly_name == "fn_twilio page call (eu)"
    assert plain.sid != eu.sid and len(studio.flows) == 3


def test_of_two_copies_left_by_an_earlier_race_the_oldest_is_used():
    studio, s = FakeStudio(), settings()
    definition, _ = voice.stamped_definition()
    newer = studio.add_flow(FLOW_NAME, definition, created=T0 + timedelta(seconds=5))
    older = studio.add_flow(FLOW_NAME, definition, created=T0)
    assert ensure_flow(studio.client(), s).sid == older.sid != newer.sid


def test_a_flow_another_process_creates_meanwhile_wins_and_ours_is_deleted():
    studio, s = FakeStudio(), settings()
    definition, _ = voice.stamped_definition()
    rival: dict = {}
    studio.fail("flows.create", lambda request: rival.setdefault(
        "flow", studio.add_flow(FLOW_NAME, definition, created=T0 - timedelta(seconds=1))))
    ref = ensure_flow(studio.client(), s)
    assert ref.sid == rival["flow"].sid and ref.how == "found"
    assert list(studio.flows) == [rival["flow"].sid] and len(studio.of("flow.delete")) == 1


def test_two_first_uses_at_once_in_one_process_make_one_flow():
    studio, s = FakeStudio(), settings()
    studio.fail("flows.page", lambda request: threading.Event().wait(0.05))
    refs: list[FlowRef] = []
    threads = [threading.Thread(target=lambda: refs.append(ensure_flow(studio.client(), s)))
               for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(5)
    assert len({r.sid for r in refs}) == 1 and len(refs) == 4
    assert len(studio.of("flows.create")) == 1 and len(studio.flows) == 1


@pytest.mark.parametrize("kind,exc,words", [
    ("flows.page", server_error(), "could not be looked up: Twilio error 20500: Twilio answered HTTP 500"),
    ("flows.page", rate_limited(), "could not be looked up: Twilio error 20429"),
    ("flows.page", refused(), "could not be looked up: Twilio could not be reached"),
    ("flows.create", server_error(503), "could not be created: Twilio error 20500: Twilio answered HTTP 503"),
])
def test_a_flow_that_cannot_be_read_or_made_is_a_clear_error_and_the_next_use_tries_again(kind, exc, words):
    studio, s = FakeStudio(), settings()
    studio.fail(kind, exc)
    with pytest.raises(VoiceError) as caught:
        ensure_flow(studio.client(), s)
    assert words in str(caught.value) and caught.value.failure is not None
    assert ensure_flow(studio.client(), s).how == "created"
    assert len(studio.flows) == 1


def test_a_create_that_failed_after_making_the_flow_is_found_by_name_next_time():
    studio, s = FakeStudio(), settings()
    definition, _ = voice.stamped_definition()

    def made_then_lost(request):
        studio.add_flow(FLOW_NAME, definition)
        raise read_timeout()
    studio.fail("flows.create", made_then_lost)
    with pytest.raises(VoiceError):
        ensure_flow(studio.client(), s)
    assert ensure_flow(studio.client(), s).how == "found"
    assert len(studio.flows) == 1 and len(studio.of("flows.create")) == 1


def test_a_definition_twilio_refuses_is_a_clear_error():
    studio, s = FakeStudio(), settings()
    made = studio.add_flow

    def made_invalid(*args, **kwargs):
        flow = made(*args, **kwargs)
        flow.valid, flow.errors = False, [{"message": "widget call: to is required"}]
        return flow
    studio.add_flow = made_invalid
    with pytest.raises(VoiceError) as caught:
        ensure_flow(studio.client(), s)
    assert "Twilio refused the page call's Studio flow definition (create)" in str(caught.value)
    assert "widget call: to is required" in str(caught.value)


FW = "FW" + "a" * 32


def test_studio_flow_sid_uses_that_flow_after_checking_it():
    studio = FakeStudio()
    mine = studio.add_flow("Our own page flow", load_definition())
    s = settings(studio_flow_sid=mine.sid)
    ref = ensure_flow(studio.client(), s)
    assert (ref.sid, ref.how, ref.friendly_name) == (mine.sid, "configured", "Our own page flow")
    assert [r["kind"] for r in studio.requests] == ["flow.fetch"]       # no list, no create, no update


@pytest.mark.parametrize("definition,status,words", [
    (None, "published", ["is not a Studio Flow of this Twilio account"]),
    ({"states": [{"name": "Trigger", "type": "trigger"}]}, "published",
     ["is not a flow the app can read", "no make-outgoing-call-v2 widget named 'call'",
      "no gather-input-on-call widget named 'ask'", "widgets.ask.Digits"]),
    ("shipped", "draft", ["is not a flow the app can read", "it is not published (status 'draft')"]),
])
def test_a_studio_flow_sid_the_app_cannot_use_is_an_error_naming_the_setting(definition, status, words):
    studio = FakeStudio()
    if definition is None:
        s = settings(studio_flow_sid=FW)
    else:
        flow = studio.add_flow("IVR", load_definition() if definition == "shipped" else definition,
                               status=status)
        s = settings(studio_flow_sid=flow.sid)
    with pytest.raises(VoiceError) as caught:
        ensure_flow(studio.client(), s)
    message = str(caught.value)
    assert message.startswith(f"studio_flow_sid {s.studio_flow_sid}")
    for word in words:
        assert word in message
    assert studio.of("flows.create") == [] and studio.of("flow.update") == []


# -- starting calls -----------------------------------------------------------------------------------
def a_flow(studio: FakeStudio) -> FlowRef:
    return ensure_flow(studio.client(), settings())


def test_a_call_is_one_execution_to_the_person_from_the_caller_with_the_text_and_code():
    studio, clock = FakeStudio(), FakeClock(auto_advance=True)
    flow = a_flow(studio)
    start = start_call(studio.client(), settings(voice_sender="+14155559999"), flow, ALICE,
                       "Incident 2101 Phishing wave (High) needs you", "2101", clock=clock)
    assert start.started and start.failure is None and start.attempts == 1
    placed = start.placed
    assert (placed.flow_sid, placed.to, placed.code, placed.started_at) == (flow.sid, ALICE, "2101", T0)
    (create,) = studio.of("executions.create")
    assert (create["to"], create["from_"]) == (ALICE, "+14155559999")
    assert json.loads(create["parameters"]) == {"text": "Incident 2101 Phishing wave (High) needs you",
                                                "code": "2101"}


@pytest.mark.parametrize("section,text,error", [
    ({"twilio_src_address": "MyCompany"}, "x", SettingsError),
    ({"twilio_src_address": "", "twilio_messaging_service_sid": "MG" + "1" * 32}, "x", SettingsError),
    ({}, "   ", ValueError),
    ({}, "x" * 1601, ValueError),
])
def test_a_call_that_cannot_be_made_is_refused_before_any_request(section, text, error):
    studio = FakeStudio()
    flow = a_flow(studio)
    studio.requests.clear()
    with pytest.raises(error) as caught:
        start_call(studio.client(), settings(**section), flow, ALICE, text, "2101")
    if error is SettingsError:
        assert "voice_sender" in str(caught.value)
    with pytest.raises(error):
        start_calls(settings(**section), flow, [ALICE, BOB], text, "2101", client_factory=studio.client)
    assert studio.requests == []


@pytest.mark.parametrize("faults,attempts,waits", [
    ([rate_limited(), rate_limited()], 3, [1.0, 2.0]),
    ([refused()], 2, [1.0]),
])
def test_a_start_twilio_did_not_process_is_retried_with_back_off(faults, attempts, waits):
    studio, clock = FakeStudio(), FakeClock(auto_advance=True)
    flow = a_flow(studio)
    studio.fail("executions.create", *faults)
    start = start_call(studio.client(), settings(), flow, ALICE, "Incident 2101", "2101", policy=NO_JITTER,
                       clock=clock)
    assert start.started and start.attempts == attempts
    assert clock.waits == waits and len(studio.executions) == 1


@pytest.mark.parametrize("fault,kind", [
    (server_error(), FailureKind.SERVER), (read_timeout(), FailureKind.TIMEOUT),
    (ValueError("Expecting value: line 1 column 1"), FailureKind.BAD_RESPONSE),
])
def test_a_start_that_may_have_called_is_never_repeated(fault, kind):
    studio, clock = FakeStudio(), FakeClock(auto_advance=True)
    flow = a_flow(studio)
    studio.fail("executions.create", fault)
    start = start_call(studio.client(), settings(), flow, ALICE, "Incident 2101", "2101", clock=clock)
    assert not start.started and start.may_have_called and start.attempts == 1
    assert start.failure.kind is kind and MAY_HAVE_CALLED in start.failure.message
    assert "SMS" not in start.failure.message
    assert len(studio.of("executions.create")) == 1 and clock.waits == []


def test_a_lasting_rate_limit_gives_up_with_the_attempts_counted():
    studio, clock = FakeStudio(), FakeClock(auto_advance=True)
    flow = a_flow(studio)
    studio.fail("executions.create", *[rate_limited()] * 5)
    start = start_call(studio.client(), settings(), flow, ALICE, "Incident 2101", "2101", policy=NO_JITTER,
                       clock=clock)
    assert not start.started and not start.may_have_called
    assert start.failure.message.endswith("not called after 5 attempts") and start.attempts == 5


def test_a_flow_deleted_meanwhile_fails_the_call_and_is_looked_up_again_next_time():
    studio = FakeStudio()
    flow = a_flow(studio)
    del studio.flows[flow.sid]
    start = start_call(studio.client(), settings(), flow, ALICE, "Incident 2101", "2101")
    assert not start.started and start.failure.http_status == 404 and not start.may_have_called
    again = ensure_flow(studio.client(), settings())
    assert again.sid != flow.sid and again.how == "created"


def test_start_calls_keeps_the_order_and_one_failure_does_not_stop_the_others():
    studio = FakeStudio()
    flow = a_flow(studio)
    studio.fail("executions.create", lambda request: None, TwilioRestException(
        400, "/x", "The 'To' number is not a valid phone number.", code=21211))
    starts = start_calls(settings(), flow, [ALICE, BOB, CAROL], "Incident 2101", "2101",
                         client_factory=studio.client)
    assert [s.to for s in starts] == [ALICE, BOB, CAROL]
    assert sum(s.started for s in starts) == 2 and len(studio.executions) == 2
    (failed,) = [s for s in starts if not s.started]
    assert failed.failure.code == 21211 and not failed.may_have_called


def test_start_calls_started_after_the_page_closed_calls_nobody():
    studio = FakeStudio()
    flow = a_flow(studio)
    closed = threading.Event()
    closed.set()
    starts = start_calls(settings(), flow, [ALICE, BOB], "Incident 2101", "2101",
                         client_factory=studio.client, cancelled=closed)
    assert [s.failure for s in starts] == [voice.CANCELLED, voice.CANCELLED] and studio.executions == {}


# -- reading a context ------------------------------------------------------------------------------
CALL = PlacedCall("FW" + "1" * 32, "FN" + "1" * 32, ALICE, T0, "2101")


def ctx(call=None, ask=None, **extra):
    widgets = {}
    if call is not None:
        widgets[CALL_WIDGET] = call
    if ask is not None:
        widgets[GATHER_WIDGET] = ask
    return {"flow": {"data": {"text": "x", "code": "2101"}}, "widgets": widgets, **extra}


HUMAN = {"CallSid": "CA" + "2" * 32, "CallStatus": "in-progress", "AnsweredBy": "human"}
CONTEXTS = [
    # context, execution ended, status, ended, outcome, digits, words of the reason
    (ctx(), False, "ringing", False, None, None, None),
    (ctx(HUMAN), False, "in-progress", False, None, None, None),
    (ctx(HUMAN, {"Digits": "1"}), False, "in-progress", True, CallOutcome.ACKNOWLEDGED, "1", "pressed 1"),
    (ctx(HUMAN, {"Digits": "1"}), True, "completed", True, CallOutcome.ACKNOWLEDGED, "1", "acknowledged"),
    (ctx(HUMAN, {"Digits": "2"}), True, "completed", True, CallOutcome.DECLINED, "2", "declined"),
    (ctx(HUMAN, {"Digits": "7"}), True, "completed", True, CallOutcome.OTHER_KEY, "7", "neither 1"),
    (ctx(HUMAN), True, "completed", True, CallOutcome.NO_KEY, None, "pressed no key"),
    (ctx(HUMAN, {"CallStatus": "completed"}), True, "completed", True, CallOutcome.NO_KEY, None, "no key"),
    (ctx(dict(HUMAN, AnsweredBy="machine_start")), True, "completed", True, CallOutcome.MACHINE, None,
     "an answering machine (machine_start) answered"),
    (ctx(dict(HUMAN, AnsweredBy="machine_end_beep")), False, "in-progress", True, CallOutcome.MACHINE, None,
     "answering machine"),
    (ctx(dict(HUMAN, AnsweredBy="fax")), True, "completed", True, CallOutcome.MACHINE, None, "a fax machine"),
    (ctx(dict(HUMAN, AnsweredBy="unknown"), {"Digits": "1"}), True, "completed", True,
     CallOutcome.ACKNOWLEDGED, "1", None),
    (ctx({"CallStatus": "in-progress"}, {"Digits": "1"}), True, "completed", True, CallOutcome.ACKNOWLEDGED,
     "1", None),                                                 # no machine detection: AnsweredBy absent
    (ctx({"CallStatus": "no-answer"}), True, "no-answer", True, CallOutcome.NOT_ANSWERED, None,
     "not answered"),
    (ctx({"CallStatus": "busy"}), True, "busy", True, CallOutcome.BUSY, None, "busy"),
    (ctx({"CallStatus": "failed"}), True, "failed", True, CallOutcome.FAILED, None, "could not be placed"),
    (ctx({"CallStatus": "busy"}), False, "busy", True, CallOutcome.BUSY, None, "busy"),
    (ctx({"CallStatus": "canceled"}), True, "canceled", True, CallOutcome.CANCELED, None, "canceled"),
    (ctx(), True, "unknown", True, CallOutcome.UNREADABLE, None, "no 'call' widget"),
    ({"flow": {}}, True, "unknown", True, CallOutcome.UNREADABLE, None, "no widgets"),
    ("garbage", True, "unknown", True, CallOutcome.UNREADABLE, None, "no widgets"),
    (None, False, "ringing", False, None, None, None),
    (ctx({"CallStatus": "exploded"}), True, "unknown", True, CallOutcome.UNREADABLE, None, "'exploded'"),
    (ctx({"CallStatus": "exploded"}), False, "ringing", False, None, None, None),
    (ctx({"CallStatus": 7}), True, "unknown", True, CallOutcome.UNREADABLE, None, "unexpected CallStatus"),
    (ctx(HUMAN, "not a dict"), True, "completed", True, CallOutcome.NO_KEY, None, None),
]


@pytest.mark.parametrize("context,ended,status,decided,outcome,digits,words", CONTEXTS)
def test_a_context_reads_as_a_report(context, ended, status, decided, outcome, digits, words):
    report = read_context(CALL, context, execution_ended=ended)
    assert (report.status, report.ended, report.outcome, report.digits) == (status, decided, outcome, digits)
    assert report.execution_status == ("ended" if ended else "active")
    if words:
        assert words in report.reason
    assert report.out == (outcome is not None and outcome not in (
        CallOutcome.ACKNOWLEDGED, CallOutcome.DECLINED, CallOutcome.OTHER_KEY, CallOutcome.NO_KEY))
    result = report.as_result()
    assert set(result) == {"execution_sid", "phone_number", "status", "ended", "outcome", "answered_by",
                           "digits", "call_sid", "reason"}
    assert result["outcome"] == (outcome.value if outcome else None) and result["phone_number"] == ALICE


def test_the_report_carries_the_code_and_who_answered():
    report = read_context(CALL, ctx(HUMAN, {"Digits": "1"}), execution_ended=True)
    assert (report.code, report.answered_by, report.call_sid) == ("2101", "human", HUMAN["CallSid"])
    assert report.acknowledged and not report.declined and not report.out


# -- the shared call watcher ------------------------------------------------------------------------
def watcher(clock: FakeClock, **section: str) -> CallWatcher:
    s = settings(**section)
    return CallWatcher(s, polling.poller_key(s, CallWatcher.kind), clock=clock, autostart=False)


def follow(w: CallWatcher, calls, time_limit: float = voice.CALL_TIME_LIMIT) -> CallWatch:
    watch = CallWatch(calls, w.clock, time_limit)
    w.add(watch)
    return watch


def next_look(w: CallWatcher, studio: FakeStudio) -> bool:
    w.clock.advance(w.interval)
    return w.look_once(studio.client())


def place(studio: FakeStudio, flow: FlowRef, *numbers: str, clock=None) -> list[PlacedCall]:
    clock = clock or FakeClock()
    return [start_call(studio.client(), settings(), flow, n, "Incident 2101", "2101", clock=clock).placed
            for n in numbers]


def watched(*numbers: str, time_limit: float = voice.CALL_TIME_LIMIT):
    """Calls placed to ``numbers`` on a fake Studio, and a watch following them all in a watcher on a
    fake clock: (studio, watcher, watch, calls)."""
    clock = FakeClock()
    studio = FakeStudio(clock)
    calls = place(studio, a_flow(studio), *numbers)
    w = watcher(clock)
    return studio, w, follow(w, calls, time_limit), calls


def per_look(studio: FakeStudio, since: int) -> tuple[int, int]:
    """(list requests, other requests) made since request number ``since``."""
    made = studio.requests[since:]
    lists = sum(1 for r in made if r["kind"] == "executions.page")
    return lists, len(made) - lists


def test_k_calls_cost_at_most_one_list_and_k_reads_per_look_and_one_list_when_nothing_changed():
    studio, w, watch, calls = watched(*[f"+3538612345{i:02d}" for i in range(8)])
    mark = len(studio.requests)
    next_look(w, studio)
    assert per_look(studio, mark) == (1, 8)           # the first look reads every context once
    for call in calls[:3]:
        studio.answer(call.execution_sid)
    mark = len(studio.requests)
    next_look(w, studio)
    assert per_look(studio, mark) == (1, 3)           # only the executions that changed
    mark = len(studio.requests)
    next_look(w, studio)
    assert per_look(studio, mark) == (1, 0)           # nothing changed: one list
    assert {r.status for r in watch.reports().values()} == {"ringing", "in-progress"}
    reads = []
    for _ in range(ACTIVE_REFRESH + 1):
        mark = len(studio.requests)
        next_look(w, studio)
        lists, others = per_look(studio, mark)
        assert lists == 1 and others <= 8
        reads.append(others)
    assert sum(reads) == 8   # each active call is read again once within ACTIVE_REFRESH looks, unchanged
    assert w.requests == len(studio.of("executions.page"))


@pytest.mark.parametrize("moves,outcome,status", [
    (lambda f, sid: (f.answer(sid), f.press(sid, "1"), f.end(sid)), CallOutcome.ACKNOWLEDGED, "completed"),
    (lambda f, sid: (f.answer(sid), f.press(sid, "2"), f.end(sid)), CallOutcome.DECLINED, "completed"),
    (lambda f, sid: (f.answer(sid), f.end(sid)), CallOutcome.NO_KEY, "completed"),
    (lambda f, sid: (f.answer(sid, "machine_start"), f.end(sid)), CallOutcome.MACHINE, "completed"),
    (lambda f, sid: f.unanswered(sid, "no-answer"), CallOutcome.NOT_ANSWERED, "no-answer"),
    (lambda f, sid: f.unanswered(sid, "busy"), CallOutcome.BUSY, "busy"),
    (lambda f, sid: f.unanswered(sid, "failed"), CallOutcome.FAILED, "failed"),
])
def test_every_outcome_reaches_the_watch_once_as_news(moves, outcome, status):
    studio, w, watch, (call,) = watched(ALICE)
    next_look(w, studio)
    assert watch.news() == [] and watch.pending() == [call.execution_sid]
    moves(studio, call.execution_sid)
    next_look(w, studio)
    (report,) = watch.news()
    assert (report.outcome, report.status, report.ended) == (outcome, status, True)
    assert watch.pending() == [] and watch.news() == []
    mark = len(studio.requests)
    next_look(w, studio)
    assert studio.requests[mark:] == []               # nothing left to follow: no request


def test_an_acknowledgement_is_known_before_the_execution_ends():
    studio, w, watch, (call,) = watched(ALICE)
    studio.answer(call.execution_sid)
    studio.press(call.execution_sid, "1")
    next_look(w, studio)
    report = watch.reports()[call.execution_sid]
    assert report.acknowledged and report.ended and report.execution_status == "active"


def test_an_execution_that_never_ends_is_given_up_with_a_reason():
    studio, w, watch, (stuck, fine) = watched(ALICE, BOB, time_limit=60)
    next_look(w, studio)
    studio.answer(stuck.execution_sid)
    studio.answer(fine.execution_sid)
    studio.press(fine.execution_sid, "1")
    for _ in range(40):
        next_look(w, studio)
        if not watch.pending() or watch.reports()[stuck.execution_sid].ended:
            break
    report = watch.reports()[stuck.execution_sid]
    assert report.outcome is CallOutcome.STUCK and report.out and "had not ended after 60 s" in report.reason
    assert watch.reports()[fine.execution_sid].acknowledged


def test_a_context_without_the_apps_widgets_ends_that_call_with_a_reason():
    studio, w, watch, (call,) = watched(ALICE)
    studio.widgets(call.execution_sid)["say_hello"] = {"msg": "hi"}
    studio.end(call.execution_sid)
    next_look(w, studio)
    report = watch.reports()[call.execution_sid]
    assert report.outcome is CallOutcome.UNREADABLE and "no 'call' widget" in report.reason and report.out


@pytest.mark.parametrize("fault,lasting", [
    (rate_limited(), True), (server_error(), True), (TwilioException("Unable to fetch page"), True),
    (refused(), True),
])
def test_a_listing_studio_refuses_is_retried_then_reaches_the_watch_and_nothing_wedges(fault, lasting):
    studio, w, watch, (call,) = watched(ALICE)
    studio.fail("executions.page", *[fault] * polling.MAX_CONSECUTIVE_FAILURES)
    for attempt in range(1, polling.MAX_CONSECUTIVE_FAILURES):
        next_look(w, studio)
        assert watch.error is None and w.failures == attempt
    next_look(w, studio)
    assert watch.error is not None and watch.wait(0)   # the waiting page is told
    studio.answer(call.execution_sid)
    studio.press(call.execution_sid, "1")
    next_look(w, studio)                               # Studio answers again: the call is read
    assert watch.reports()[call.execution_sid].acknowledged and w.failures == 0


@pytest.mark.parametrize("fault,looks", [
    (ValueError("Expecting value"), MAX_READ_FAILURES),      # garbage
    (server_error(), MAX_READ_FAILURES),
    (rate_limited(), MAX_READ_FAILURES),
    (TwilioRestException(403, "/x", "Forbidden", code=20403), 1),   # permanent: at once
])
def test_a_context_that_cannot_be_read_ends_that_call_only(fault, looks):
    studio, w, watch, (bad, good) = watched(ALICE, BOB)

    def fail_bad(request):
        if request["sid"] == bad.execution_sid:
            raise fault
    studio.fail("context.fetch", *[fail_bad] * 50)
    for _ in range(looks):
        studio.answer(bad.execution_sid)          # changes every look: a read is due each time
        next_look(w, studio)
    report = watch.reports()[bad.execution_sid]
    assert report.outcome is CallOutcome.UNREADABLE and "could not be read" in report.reason
    assert watch.error is None
    studio.failures.clear()
    studio.answer(good.execution_sid)
    studio.press(good.execution_sid, "2")
    next_look(w, studio)
    assert watch.reports()[good.execution_sid].declined


def test_an_execution_missing_from_the_listing_is_fetched_and_a_deleted_one_is_said_so():
    studio, w, watch, (late, gone) = watched(ALICE, BOB)
    studio.executions[late.execution_sid].date_created = T0 - timedelta(hours=1)   # below the listing's floor
    del studio.executions[gone.execution_sid]
    mark = len(studio.requests)
    next_look(w, studio)
    kinds = [r["kind"] for r in studio.requests[mark:]]
    assert kinds.count("executions.page") == 1 and kinds.count("execution.fetch") == 2
    assert "deleted" in watch.reports()[gone.execution_sid].reason
    studio.answer(late.execution_sid)
    studio.press(late.execution_sid, "1")
    studio.end(late.execution_sid)
    mark = len(studio.requests)
    next_look(w, studio)            # fetched the look before: this look reads its context
    assert [r["kind"] for r in studio.requests[mark:]] == ["executions.page", "context.fetch"]
    assert watch.reports()[late.execution_sid].acknowledged


def test_calls_tracked_later_and_calls_of_two_pages_share_one_listing():
    clock = FakeClock()
    studio = FakeStudio(clock)
    flow = a_flow(studio)
    first, second, third = place(studio, flow, ALICE, BOB, CAROL)
    w = watcher(clock)
    page_one = follow(w, [first])
    page_two = follow(w, [second])
    page_one.track([third])
    mark = len(studio.requests)
    next_look(w, studio)
    assert per_look(studio, mark) == (1, 3)
    studio.answer(third.execution_sid)
    studio.press(third.execution_sid, "1")
    next_look(w, studio)
    assert page_one.reports()[third.execution_sid].acknowledged
    assert third.execution_sid not in page_two.reports()
    assert [r.execution_sid for r in page_one.news()] == [third.execution_sid]
    assert page_two.news() == []


def test_a_call_report_starts_as_ringing_with_its_code():
    report = CallReport.placed(CALL)
    assert (report.status, report.ended, report.outcome, report.code) == ("ringing", False, None, "2101")


# -- with the watcher's thread on a fake clock --------------------------------------------------------
def drive(clock: FakeClock, until: threading.Event, step: float = 0.5) -> None:
    while not until.wait(0.002):
        clock.advance(step)


@pytest.fixture
def no_watcher_left():
    yield
    for _ in range(2000):
        if not polling.active_pollers(CallWatcher.kind):
            break
        threading.Event().wait(0.002)
    assert polling.active_pollers(CallWatcher.kind) == 0


def test_a_wait_for_calls_ends_when_every_call_ended_and_the_watcher_stops(no_watcher_left):
    clock = FakeClock()
    studio = FakeStudio(clock)
    flow = a_flow(studio)
    calls = place(studio, flow, ALICE, BOB)
    done, out = threading.Event(), {}

    def wait():
        out["result"] = wait_for_calls(settings(), calls, clock.now() + 600, clock=clock,
                                       client_factory=studio.client)
        done.set()

    thread = threading.Thread(target=wait)
    thread.start()
    studio.answer(calls[0].execution_sid)
    studio.press(calls[0].execution_sid, "1")
    studio.end(calls[0].execution_sid)
    studio.unanswered(calls[1].execution_sid, "busy")
    drive(clock, done)
    thread.join(5)
    reports, failure = out["result"]
    assert [r.outcome for r in reports] == [CallOutcome.ACKNOWLEDGED, CallOutcome.BUSY] and failure is None


def test_two_watches_on_one_account_share_one_watcher_thread(no_watcher_left):
    clock = FakeClock()
    studio = FakeStudio(clock)
    flow = a_flow(studio)
    first, second = place(studio, flow, ALICE, BOB)
    s = settings()
    one = watch_calls(s, [first], client_factory=studio.client, clock=clock)
    two = watch_calls(s, [second], client_factory=studio.client, clock=clock)
    try:
        assert one._poller is two._poller and polling.active_pollers(CallWatcher.kind) == 1
    finally:
        one.close()
        two.close()


def test_a_terminated_wait_returns_the_reports_so_far(no_watcher_left):
    clock = FakeClock()
    studio = FakeStudio(clock)
    flow = a_flow(studio)
    (call,) = place(studio, flow, ALICE)
    done, out = threading.Event(), {}

    def wait():
        out["result"] = wait_for_calls(settings(), [call], clock.now() + 600, clock=clock,
                                       client_factory=studio.client,
                                       is_terminated=lambda: "stopped by an analyst")
        done.set()

    thread = threading.Thread(target=wait)
    thread.start()
    drive(clock, done)
    thread.join(5)
    (report,), failure = out["result"]
    assert report.status == "ringing" and not report.ended and failure is None


# -- privacy: numbers masked in logs above DEBUG, no secret anywhere ------------------------------------
def test_voice_logs_mask_numbers_and_never_show_the_token(caplog):
    import logging
    caplog.set_level(logging.DEBUG, logger="fn_twilio")
    clock = FakeClock()
    studio = FakeStudio(clock)
    s = settings()
    flow = a_flow(studio)
    studio.fail("executions.create", TwilioRestException(
        500, "/x", f"Unable to create record: Call to {ALICE} failed", code=20500))
    failed = start_call(studio.client(), s, flow, ALICE, "Incident 2101", "2101", clock=clock)
    assert failed.may_have_called and ALICE in failed.failure.message     # the result names the number
    (call,) = place(studio, flow, BOB)
    w = watcher(clock)
    watch = follow(w, [call])
    studio.fail("context.fetch", ValueError(f"garbage about {BOB}"))
    next_look(w, studio)
    studio.unanswered(call.execution_sid, "busy")
    next_look(w, studio)
    assert watch.reports()[call.execution_sid].outcome is CallOutcome.BUSY
    above_debug = [r.getMessage() for r in caplog.records if r.levelno > logging.DEBUG]
    assert any("+35386*****67" in m for m in above_debug) and any("+35386*****68" in m for m in above_debug)
    for message in above_debug:
        assert ALICE not in message and BOB not in message, message
    for record in caplog.records:
        assert s.auth_token not in record.getMessage()


def test_a_wait_does_not_spin_once_one_call_has_news(no_watcher_left):
    """Reading a call's news resets it: the wait blocks again until the next change."""
    clock = FakeClock()
    studio = FakeStudio(clock)
    flow = a_flow(studio)
    early, late = place(studio, flow, ALICE, BOB)
    done, out = threading.Event(), {}

    def wait():
        out["result"] = wait_for_calls(settings(), [early, late], clock.now() + 600, clock=clock,
                                       client_factory=studio.client)
        done.set()

    thread = threading.Thread(target=wait)
    thread.start()
    studio.unanswered(early.execution_sid, "busy")
    for _ in range(40):                     # 20 s of fake time with one call ended and one ringing
        clock.advance(0.5)
        threading.Event().wait(0.005)
    waits_while_ringing = len(clock.waits)
    studio.unanswered(late.execution_sid, "no-answer")
    drive(clock, done)
    thread.join(5)
    reports, _ = out["result"]
    assert [r.outcome for r in reports] == [CallOutcome.BUSY, CallOutcome.NOT_ANSWERED]
    assert waits_while_ringing < 200, waits_while_ringing
