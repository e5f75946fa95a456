"""Fakes for driving the core's loops in milliseconds: a Twilio client without HTTP.

``FakeTwilio`` holds inbound messages and answers ``messages.page(...)`` the way Twilio lists them
(newest first, filtered by To / From / DateSent>=, pages of ``page_size`` with a next page link), and
``messages.create(...)`` from a script of answers. Every request is recorded.
"""
from __future__ import annotations

import itertools
import threading
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from types import SimpleNamespace
from typing import Any

from fn_twilio.lib.settings import load_settings

ACCOUNT = "AC" + "0" * 32
SENDER = "+15005550006"
T0 = datetime(2026, 1, 1, 12, 0, tzinfo=timezone.utc)
_SIDS = itertools.count(1)


def settings(**extra: str) -> Any:
    section = {"twilio_account_sid": ACCOUNT, "twilio_auth_token": "t" * 32, "twilio_src_address": SENDER,
               "poll_interval": "2s", "timeout": "5"}
    section.update(extra)
    return load_settings(section)


def message(from_: str, body: str = "hi", *, sent: datetime | None = T0, created: Any = "same",
            to: str = SENDER, direction: str = "inbound") -> SimpleNamespace:
    return SimpleNamespace(sid=f"SM{next(_SIDS):032x}", from_=from_, to=to, body=body, date_sent=sent,
                           date_created=sent if created == "same" else created, status="received",
                           direction=direction, messaging_service_sid=None, error_message=None,
                           num_segments="1")


class _Http:
    def __init__(self, twilio: FakeTwilio):
        self._twilio = twilio

    @property
    def last_response(self) -> Any:
        return self._twilio.last_response

    def close(self) -> None:
        pass


class FakePage:
    def __init__(self, twilio: FakeTwilio, items: list[Any], offset: int, params: dict[str, Any]):
        self._twilio, self._items, self._offset, self._params = twilio, items, offset, params
        size = params.get("page_size", 50)
        self._page = items[offset:offset + size]
        self.next_page_url = f"page={offset + size}" if offset + size < len(items) else None

    def __iter__(self):
        return iter(self._page)

    def next_page(self) -> FakePage:
        return self._twilio._list(self._params, self._offset + self._params.get("page_size", 50))


@dataclass
class FakeTwilio:
    """A client for one account: ``client()`` returns the object a client factory hands out."""

    messages_held: list[Any] = field(default_factory=list)
    requests: list[dict[str, Any]] = field(default_factory=list)
    fail_next_pages: list[BaseException] = field(default_factory=list)   # raised by the next page() calls
    # raised by the next page() calls listing To=<key> (e.g. only the attribution's outbound listings)
    fail_pages_to: dict[str, list[BaseException]] = field(default_factory=dict)
    create_answers: list[Any] = field(default_factory=list)   # exceptions to raise, or None to accept
    last_response: Any = None
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, *messages: Any) -> None:
        with self.lock:
            self.messages_held.extend(messages)

    def client(self, _settings: Any = None) -> Any:
        return SimpleNamespace(messages=SimpleNamespace(page=self.page, create=self.create),
                               http_client=_Http(self))

    @property
    def lists(self) -> list[dict[str, Any]]:
        return [r for r in self.requests if r["kind"] == "list"]

    def page(self, **params: Any) -> FakePage:
        return self._list(params, 0)

    def _list(self, params: dict[str, Any], offset: int) -> FakePage:
        with self.lock:
            self.requests.append({"kind": "list", "offset": offset, **params})
            if self.fail_next_pages:
                raise self.fail_next_pages.pop(0)
            aimed = self.fail_pages_to.get(params.get("to") or "")
            if aimed:
                raise aimed.pop(0)
            items = [m for m in self.messages_held
                     if (params.get("to") is None or m.to == params["to"])
                     and (params.get("from_") is None or m.from_ == params["from_"])
                     and (params.get("date_sent_after") is None or m.date_sent is None
                          or m.date_sent >= params["date_sent_after"])]
        items.sort(key=lambda m: (m.date_sent or T0 + timedelta(days=3650)), reverse=True)
        return FakePage(self, items, offset, params)

    def create(self, **params: Any) -> Any:
        with self.lock:
            self.requests.append({"kind": "create", **params})
            answer = self.create_answers.pop(0) if self.create_answers else None
        if isinstance(answer, BaseException):
            raise answer
        if callable(answer):
            return answer(params)
        return SimpleNamespace(sid=f"SM{next(_SIDS):032x}", status="queued", date_created=T0,
                               direction="outbound-api", body=params["body"], num_segments="1")
