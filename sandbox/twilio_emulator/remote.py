"""Drive a Twilio emulator running in another process through its ``/_emulator/…`` control API."""
from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import asdict
from datetime import datetime, timedelta

from .model import DeliveryOutcome, DeliverySchedule, PairRateLimit
from .voice import CallScript


class RemoteEmulator:
    """The control half of ``TwilioEmulator`` over HTTP (standard library only).

    ``requests`` returns plain dicts (``RequestRecord.to_dict()``: bodies as text)."""

    def __init__(self, base_url: str, timeout: float = 10.0):
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout

    def _call(self, method: str, route: str, payload: dict | None = None):
        data = None if payload is None else json.dumps(payload).encode("utf-8")
        req = urllib.request.Request(f"{self.base_url}/_emulator/{route}", data=data, method=method,
                                     headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as resp:
                return json.loads(resp.read() or b"null")
        except urllib.error.HTTPError as e:
            raise RuntimeError(f"emulator control {method} {route}: HTTP {e.code} {e.read()!r}") from None

    def health(self) -> dict:
        return self._call("GET", "health")

    @property
    def messages(self) -> list:
        return self._call("GET", "messages")["messages"]

    def find_messages(self, *, direction: str | None = None, to: str | None = None,
                      from_: str | None = None) -> list:
        wanted = (("direction", direction), ("to", to), ("from", from_))
        query = urllib.parse.urlencode({k: v for k, v in wanted if v is not None})
        return self._call("GET", "messages" + ("?" + query if query else ""))["messages"]

    def outbound_messages(self, to: str | None = None, from_: str | None = None) -> list:
        return self.find_messages(direction="outbound-api", to=to, from_=from_)

    def message(self, sid: str) -> dict:
        """One stored message; KeyError when unknown."""
        try:
            return self._call("GET", "messages/" + urllib.parse.quote(sid, safe=""))
        except RuntimeError as exc:
            if "HTTP 404" in str(exc):
                raise KeyError(sid) from None
            raise

    @property
    def delivery_schedule(self) -> DeliverySchedule | None:
        schedule = self._call("GET", "delivery/schedule")["schedule"]
        return None if schedule is None else DeliverySchedule(**schedule)

    @delivery_schedule.setter
    def delivery_schedule(self, schedule: DeliverySchedule | None) -> None:
        if schedule is None:
            self._call("DELETE", "delivery/schedule")
        else:
            self._call("POST", "delivery/schedule", asdict(schedule))

    def deliver_after(self, sent_after: float = 0.0, delivered_after: float = 0.0) -> None:
        self.delivery_schedule = DeliverySchedule(sent_after, delivered_after)

    @property
    def pair_limit(self) -> PairRateLimit | None:
        rule = self._call("GET", "pair_limit")["pair_limit"]
        return None if rule is None else PairRateLimit(**rule)

    @pair_limit.setter
    def pair_limit(self, limit: PairRateLimit | None) -> None:
        if limit is None:
            self._call("DELETE", "pair_limit")
        else:
            self._call("POST", "pair_limit", asdict(limit))

    def limit_pairs(self, limit: int = 30, window: float = 30.0, block: float = 30.0) -> None:
        self.pair_limit = PairRateLimit(limit, window, block)

    def set_delivery_outcome(self, recipient: str, status: str, error_code: int | None = None,
                             error_message: str | None = None) -> None:
        self._call("POST", "delivery/outcomes", {"recipient": recipient, **asdict(
            DeliveryOutcome(status, error_code, error_message))})

    @property
    def delivery_outcomes(self) -> dict:
        outcomes = self._call("GET", "delivery/outcomes")["outcomes"]
        return {n: DeliveryOutcome(**o) for n, o in outcomes.items()}

    @property
    def requests(self) -> list:
        return self._call("GET", "requests")["requests"]

    def clear_requests(self) -> None:
        self._call("DELETE", "requests")

    def inject_inbound(self, from_: str, to: str | None = None, body: str = "ACK",
                       date_sent: datetime | None = None) -> dict:
        p = {"from": from_, "body": body}
        if to is not None:
            p["to"] = to
        if date_sent is not None:
            p["date_sent"] = date_sent.isoformat()
        return self._call("POST", "inbound", p)

    def seed_history(self, count: int, *, from_: str | None = None, to: str | None = None,
                     direction: str = "outbound-api", start: datetime | None = None,
                     step: timedelta = timedelta(seconds=1), body: str | None = None) -> list:
        p = {"count": count, "direction": direction, "step": step.total_seconds()}
        for k, v in (("from", from_), ("to", to), ("body", body),
                     ("start", start.isoformat() if start else None)):
            if v is not None:
                p[k] = v
        return self._call("POST", "seed", p)["sids"]

    def set_status(self, sid: str, status: str, error_code: int | None = None,
                   error_message: str | None = None) -> dict:
        return self._call("POST", "status", {"sid": sid, "status": status, "error_code": error_code,
                                             "error_message": error_message})

    def advance_statuses(self, steps: int | None = None) -> int:
        return self._call("POST", "advance", {"steps": steps})["changed"]

    def inject_fault(self, kind: str, **kwargs) -> int:
        return self._call("POST", "faults", {"kind": kind, **kwargs})["id"]

    def clear_faults(self) -> None:
        self._call("DELETE", "faults")

    def reset(self) -> None:
        self._call("POST", "reset", {})

    @property
    def latency(self) -> float:
        return self._call("GET", "latency")["latency"]

    @latency.setter
    def latency(self, value: float) -> None:
        self._call("POST", "latency", {"latency": value})

    def add_number(self, e164: str) -> None:
        self._call("POST", "numbers", {"number": e164})

    def opt_out(self, sender: str, recipient: str) -> None:
        self._call("POST", "opt_out", {"sender": sender, "recipient": recipient})

    def opt_in(self, sender: str, recipient: str) -> None:
        self._call("POST", "opt_in", {"sender": sender, "recipient": recipient})

    def disable_geo(self, country_calling_code) -> None:
        self._call("POST", "geo", {"country_calling_code": str(country_calling_code)})

    def add_landline(self, e164: str) -> None:
        self._call("POST", "landlines", {"number": e164})

    # --- voice: calls and Studio -----------------------------------------------------------

    def script_calls(self, number: str, action: str = "answer", *, press: str | None = None,
                     ring: float = 0.2, press_after: float = 0.2, queue: float = 0.0) -> None:
        """What ``number`` does when called (see ``TwilioEmulator.script_calls``)."""
        self._call("POST", "calls/scripts", {"number": number, "action": action, "press": press, "ring": ring,
                                             "press_after": press_after, "queue": queue})

    def clear_call_scripts(self) -> None:
        self._call("DELETE", "calls/scripts")

    @property
    def call_scripts(self) -> dict:
        scripts = self._call("GET", "calls/scripts")["scripts"]
        return {n: CallScript(**s) for n, s in scripts.items()}

    @property
    def calls(self) -> list:
        return self._call("GET", "calls")["calls"]

    def find_calls(self, *, to: str | None = None, from_: str | None = None) -> list:
        query = urllib.parse.urlencode({k: v for k, v in (("to", to), ("from", from_)) if v is not None})
        return self._call("GET", "calls" + ("?" + query if query else ""))["calls"]

    def call(self, sid: str) -> dict:
        """One call; KeyError when unknown."""
        try:
            return self._call("GET", "calls/" + urllib.parse.quote(sid, safe=""))
        except RuntimeError as exc:
            if "HTTP 404" in str(exc):
                raise KeyError(sid) from None
            raise

    @property
    def flows(self) -> list:
        return self._call("GET", "flows")["flows"]

    @property
    def executions(self) -> list:
        return self._call("GET", "executions")["executions"]

    def set_voice_capable(self, number: str, voice: bool) -> None:
        self._call("POST", "numbers/voice", {"number": number, "voice": voice})
