"""A fake Twilio Studio account for driving the voice core in milliseconds: Flows and Executions
without HTTP, the way the SDK's objects look (``client.studio.v2.flows...``).

The test moves each execution itself (``ring``, ``answer``, ``press``, ``end``, ``unanswered``...), so
every state is looked at when it is wanted. Every request is recorded in ``requests`` (``kind``:
``flows.page``, ``flows.create``, ``flow.fetch``, ``flow.update``, ``flow.delete``, ``executions.create``,
``executions.page``, ``execution.fetch``, ``execution.update``, ``context.fetch``); ``fail`` scripts
exceptions (or callables) for the next requests of a kind.
"""
from __future__ import annotations

import itertools
import threading
from datetime import datetime, timedelta, timezone
from types import SimpleNamespace
from typing import Any

from twilio.base.exceptions import TwilioRestException

T0 = datetime(2026, 1, 1, 12, 0, tzinfo=timezone.utc)
_SIDS = itertools.count(1)


def sid(prefix: str) -> str:
    return f"{prefix}{next(_SIDS):032x}"


def not_found(path: str) -> TwilioRestException:
    return TwilioRestException(404, path, "The requested resource was not found", code=20404)


class _Page:
    def __init__(self, fake: FakeStudio, kind: str, items: list[Any], offset: int, size: int,
                 lister: Any) -> None:
        self._fake, self._kind, self._items, self._offset, self._size = fake, kind, items, offset, size
        self._lister = lister
        self._page = [SimpleNamespace(**vars(i)) for i in items[offset:offset + size]]
        self.next_page_url = f"page={offset + size}" if offset + size < len(items) else None

    def __iter__(self):
        return iter(self._page)

    def next_page(self) -> _Page:
        return self._lister(self._offset + self._size)


class FakeStudio:
    """One account's Studio flows and executions, shared by every client (process) made from it."""

    def __init__(self, clock: Any = None) -> None:
        self.clock = clock
        self.flows: dict[str, SimpleNamespace] = {}
        self.executions: dict[str, SimpleNamespace] = {}
        self.requests: list[dict[str, Any]] = []
        self.failures: dict[str, list[Any]] = {}
        self.lock = threading.RLock()
        self.last_response: Any = None

    # -- test controls -----------------------------------------------------------------------------
    def now(self) -> datetime:
        return self.clock.wall() if self.clock is not None else T0

    def fail(self, kind: str, *answers: Any) -> None:
        """The next requests of ``kind`` raise these exceptions (or call these, with the request)."""
        with self.lock:
            self.failures.setdefault(kind, []).extend(answers)

    def of(self, kind: str) -> list[dict[str, Any]]:
        return [r for r in self.requests if r["kind"] == kind]

    def add_flow(self, name: str, definition: Any, *, status: str = "published",
                 created: datetime | None = None, description: str | None = None) -> SimpleNamespace:
        flow = SimpleNamespace(sid=sid("FW"), friendly_name=name, definition=definition, status=status,
                               revision=1, valid=True, errors=[], date_created=created or self.now(),
                               commit_message=description)
        self.flows[flow.sid] = flow
        return flow

    def _touch(self, execution: SimpleNamespace, **context: Any) -> None:
        execution.date_updated = self.now() + timedelta(microseconds=next(_SIDS))
        execution.context.update(context)

    def widgets(self, execution_sid: str) -> dict[str, Any]:
        return self.executions[execution_sid].context.setdefault("widgets", {})

    def answer(self, execution_sid: str, answered_by: str | None = "human") -> None:
        call = {"CallSid": sid("CA"), "CallStatus": "in-progress"}
        if answered_by is not None:
            call["AnsweredBy"] = answered_by
        self.widgets(execution_sid)["call"] = call
        self._touch(self.executions[execution_sid])

    def press(self, execution_sid: str, digits: str) -> None:
        self.widgets(execution_sid)["ask"] = {"Digits": digits, "CallStatus": "in-progress"}
        self._touch(self.executions[execution_sid])

    def unanswered(self, execution_sid: str, call_status: str) -> None:
        self.widgets(execution_sid)["call"] = {"CallSid": sid("CA"), "CallStatus": call_status}
        self.end(execution_sid)

    def end(self, execution_sid: str) -> None:
        execution = self.executions[execution_sid]
        execution.status = "ended"
        self._touch(execution)

    # -- what a client calls -------------------------------------------------------------------------
    def _record(self, kind: str, **request: Any) -> None:
        with self.lock:
            self.requests.append({"kind": kind, **request})
            answers = self.failures.get(kind)
            answer = answers.pop(0) if answers else None
        if isinstance(answer, BaseException):
            raise answer
        if callable(answer):
            answer(request)

    def client(self, _settings: Any = None) -> Any:
        http = SimpleNamespace(close=lambda: None)
        http.last_response = None
        studio = SimpleNamespace(v2=SimpleNamespace(flows=_Flows(self)))
        return SimpleNamespace(studio=studio, http_client=http)


class _Flows:
    def __init__(self, fake: FakeStudio) -> None:
        self._fake = fake

    def page(self, page_size: int = 50) -> _Page:
        fake = self._fake

        def lister(offset: int) -> _Page:
            fake._record("flows.page", offset=offset)
            items = [SimpleNamespace(**dict(vars(f), definition=None)) for f in fake.flows.values()]
            return _Page(fake, "flows.page", items, offset, page_size, lister)
        return lister(0)

    def create(self, friendly_name: str, status: str, definition: Any, commit_message: Any = None) -> Any:
        fake = self._fake
        fake._record("flows.create", friendly_name=friendly_name, definition=definition,
                     commit_message=commit_message)
        flow = fake.add_flow(friendly_name, definition, status=status, description=commit_message)
        return SimpleNamespace(**vars(flow))

    def __call__(self, flow_sid: str) -> Any:
        return _Flow(self._fake, flow_sid)


class _Flow:
    def __init__(self, fake: FakeStudio, flow_sid: str) -> None:
        self._fake, self._sid = fake, flow_sid
        self.executions = _Executions(fake, flow_sid)

    def _get(self) -> SimpleNamespace:
        flow = self._fake.flows.get(self._sid)
        if flow is None:
            raise not_found(f"/v2/Flows/{self._sid}")
        return flow

    def fetch(self) -> Any:
        self._fake._record("flow.fetch", sid=self._sid)
        return SimpleNamespace(**vars(self._get()))

    def update(self, status: str, definition: Any = None, commit_message: Any = None) -> Any:
        self._fake._record("flow.update", sid=self._sid, definition=definition, commit_message=commit_message)
        flow = self._get()
        flow.status, flow.revision = status, flow.revision + 1
        if definition is not None:
            flow.definition = definition
        flow.commit_message = commit_message
        return SimpleNamespace(**vars(flow))

    def delete(self) -> bool:
        self._fake._record("flow.delete", sid=self._sid)
        self._get()
        del self._fake.flows[self._sid]
        return True


class _Executions:
    def __init__(self, fake: FakeStudio, flow_sid: str) -> None:
        self._fake, self._flow = fake, flow_sid

    def create(self, to: str, from_: str, parameters: Any = None) -> Any:
        fake = self._fake
        fake._record("executions.create", flow=self._flow, to=to, from_=from_, parameters=parameters)
        if self._flow not in fake.flows:
            raise not_found(f"/v2/Flows/{self._flow}/Executions")
        import json
        data = json.loads(parameters) if isinstance(parameters, str) else (parameters or {})
        now = fake.now()
        execution = SimpleNamespace(sid=sid("FN"), flow_sid=self._flow, status="active", date_created=now,
                                    date_updated=now, to=to,
                                    context={"flow": {"data": data, "channel": {"address": from_}},
                                             "contact": {"channel": {"address": to}}, "widgets": {}})
        fake.executions[execution.sid] = execution
        return SimpleNamespace(sid=execution.sid, date_created=now, status="active")

    def page(self, date_created_from: datetime | None = None, page_size: int = 50) -> _Page:
        fake = self._fake

        def lister(offset: int) -> _Page:
            fake._record("executions.page", flow=self._flow, offset=offset,
                         date_created_from=date_created_from)
            items = sorted((e for e in fake.executions.values() if e.flow_sid == self._flow
                            and (date_created_from is None or e.date_created >= date_created_from)),
                           key=lambda e: e.date_created, reverse=True)
            listed = [SimpleNamespace(sid=e.sid, status=e.status, date_updated=e.date_updated,
                                      date_created=e.date_created, contact_channel_address=e.to)
                      for e in items]
            return _Page(fake, "executions.page", listed, offset, page_size, lister)
        return lister(0)

    def __call__(self, execution_sid: str) -> Any:
        return _Execution(self._fake, self._flow, execution_sid)


class _Execution:
    def __init__(self, fake: FakeStudio, flow_sid: str, execution_sid: str) -> None:
        self._fake, self._flow, self._sid = fake, flow_sid, execution_sid

    def _get(self) -> SimpleNamespace:
        execution = self._fake.executions.get(self._sid)
        if execution is None or execution.flow_sid != self._flow:
            raise not_found(f"/v2/Flows/{self._flow}/Executions/{self._sid}")
        return execution

    def fetch(self) -> Any:
        self._fake._record("execution.fetch", sid=self._sid)
        execution = self._get()
        return SimpleNamespace(sid=execution.sid, status=execution.status,
                               date_updated=execution.date_updated)

    def update(self, status: str) -> Any:
        self._fake._record("execution.update", sid=self._sid, status=status)
        self._fake.end(self._get().sid)
        return SimpleNamespace(sid=self._sid, status="ended")

    def execution_context(self) -> Any:
        def fetch() -> Any:
            self._fake._record("context.fetch", sid=self._sid)
            import copy
            return SimpleNamespace(context=copy.deepcopy(self._get().context))
        return SimpleNamespace(fetch=fetch)
