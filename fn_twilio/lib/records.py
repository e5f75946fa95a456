"""Typed records for what the app sends to and reads from Twilio, and their dict shapes for SOAR.

A recipient's outcome and a reply each have exactly one record type here; the dict a workflow
script reads is produced by the record's ``as_result()`` and nowhere else.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from fn_twilio.lib.dates import format_date, to_epoch_ms
from fn_twilio.lib.errors import Failure, explain_code, explain_lookup

STATUS_INVALID = "invalid"
STATUS_FAILED = "failed"
STATUS_NOT_FOUND = "not_found"
#: A message in one of these statuses changes no more (contract §10)
FINAL_STATUSES = frozenset({"delivered", "undelivered", "failed", "canceled", "read"})
NOT_SENT = frozenset({"failed", "canceled"})   # a message in the log with these never went out


def _as_int(value: Any) -> int | None:
    try:
        return int(value) if value not in (None, "") else None
    except (TypeError, ValueError):
        return None


def _utc(dt: datetime) -> datetime:
    return dt.replace(tzinfo=timezone.utc) if dt.tzinfo is None else dt.astimezone(timezone.utc)


def _aware(dt: datetime | None) -> datetime | None:
    return None if dt is None else _utc(dt)


def utc_date(value: Any) -> datetime | None:
    """``value`` as an aware UTC datetime (a naive one is taken as UTC); None when it is no datetime
    (a listing's missing date)."""
    return _utc(value) if isinstance(value, datetime) else None


def listed_at(message: Any) -> datetime | None:
    """The date Twilio's Messages list sorts a message by: ``date_sent``, else ``date_created`` (a
    message still queued has no ``date_sent``); None when it has neither."""
    for name in ("date_sent", "date_created"):
        value = getattr(message, name, None)
        if isinstance(value, datetime):
            return _utc(value)
    return None


@dataclass(frozen=True)
class SendOutcome:
    """What happened to one recipient of twilio_send_sms (one ``twilio_status`` entry)."""

    phone_number: str
    success: bool
    status: str
    sid: str | None = None
    date_created: datetime | None = None
    direction: str | None = None
    message_body: str | None = None
    num_segments: int | None = None
    error_code: int | None = None
    error_message: str | None = None
    may_have_sent: bool = False
    already_sent: bool = False       # sent by an earlier run of a redelivered call (found in Twilio's log)
    bundled: bool = False            # held over the storm limit and sent in a digest: the digest's message

    @classmethod
    def sent(cls, phone_number: str, message: Any) -> SendOutcome:
        """From a twilio MessageInstance that Twilio accepted."""
        return cls(phone_number=phone_number, success=True, status=message.status or "queued",
                   sid=message.sid, date_created=_aware(message.date_created),
                   direction=message.direction, message_body=message.body,
                   num_segments=_as_int(message.num_segments))

    @classmethod
    def invalid(cls, raw: str, reason: str) -> SendOutcome:
        return cls(phone_number=raw, success=False, status=STATUS_INVALID, error_message=reason)

    @classmethod
    def failed(cls, phone_number: str, failure: Failure) -> SendOutcome:
        """From an :class:`fn_twilio.lib.errors.Failure`."""
        return cls(phone_number=phone_number, success=False, status=failure.status or STATUS_FAILED,
                   error_code=failure.code, error_message=failure.message,
                   may_have_sent=failure.may_have_sent)

    def as_result(self) -> dict[str, Any]:
        return {
            "phone_number": self.phone_number,
            "success": self.success,
            "status": self.status,
            "sid": self.sid,
            # 2.0.1's scripts read the Msg Id column from this key: it carries the message SID.
            "messaging_service_sid": self.sid,
            "date_created": format_date(self.date_created) if self.date_created else None,
            "date_created_ts": to_epoch_ms(self.date_created) if self.date_created else None,
            "direction": self.direction,
            "message_body": self.message_body,
            "num_segments": self.num_segments,
            "error_code": self.error_code,
            "error_message": self.error_message,
            "may_have_sent": self.may_have_sent,
            "already_sent": self.already_sent,
            "bundled": self.bundled,
        }


@dataclass(frozen=True)
class Reply:
    """One inbound message from a recipient to the app's sender."""

    sid: str
    from_: str
    to: str | None
    body: str
    date_sent: datetime
    date_created: datetime
    status: str = "received"
    direction: str = "inbound"
    messaging_service_sid: str | None = None
    error_message: str | None = None
    intent: str | None = None        # what it means (intents.Intent's value), set by attribution.read
    reply_code: str | None = None    # the code it answers (contract §9.2), set by attribution.read
    code_pending: bool = False       # the code could not be read yet (Twilio's outbound log unreadable)
    # every code it answers: the one it names, else each code the text it answers asked for (a digest
    # asks for several, contract §15); reply_code is the first of them unless a call chose its own
    reply_codes: tuple[str, ...] = ()

    def answers(self, code: str) -> bool:
        """True when the reply answers ``code`` (the code it names, or one the text it answers asked
        for); never while its code is not known yet."""
        return not self.code_pending and (code == self.reply_code or code in self.reply_codes)

    @classmethod
    def from_message(cls, message: Any, seen_at: datetime) -> Reply:
        """From a twilio MessageInstance (dates already parsed by the SDK) listed at ``seen_at``.

        Without ``date_sent`` a message counts as sent at its ``date_created``; without either, at
        ``seen_at`` (the moment of the look that listed it).
        """
        created = _aware(message.date_created) or _aware(message.date_sent) or _utc(seen_at)
        sent = _aware(message.date_sent) or created
        return cls(sid=message.sid, from_=message.from_, to=message.to, body=message.body or "",
                   date_sent=sent, date_created=created, status=message.status or "received",
                   direction=message.direction or "inbound",
                   messaging_service_sid=message.messaging_service_sid,
                   error_message=message.error_message)

    def as_result(self) -> dict[str, Any]:
        return {
            "phone_number": self.from_,
            "sid": self.sid,
            "messaging_service_sid": self.sid,
            "date_created": format_date(self.date_created),
            "date_created_ts": to_epoch_ms(self.date_created),
            "direction": self.direction,
            "message_body": self.body,
            "status": self.status,
            "error_message": self.error_message,
            "intent": self.intent,
            "reply_code": self.reply_code,
            "reply_codes": list(self.reply_codes),
        }


@dataclass(frozen=True)
class SendSummary:
    """The whole twilio_send_sms result, in the 2.0.1 shape."""

    destination: str
    message: str
    outcomes: tuple[SendOutcome, ...]
    reply_code: str | None = None    # the code the text's acknowledgement request asks for

    @property
    def failed(self) -> int:
        return sum(1 for o in self.outcomes if not o.success)

    @property
    def success(self) -> bool:
        return bool(self.outcomes) and self.failed == 0

    @property
    def reason(self) -> str | None:
        if self.success:
            return None
        return f"{self.failed} of {len(self.outcomes)} recipients failed"

    def as_result(self) -> dict[str, Any]:
        return {
            "success": self.success,
            "reason": self.reason,
            "inputs": {"twilio_sms_destination": self.destination, "twilio_sms_message": self.message},
            "twilio_status": [o.as_result() for o in self.outcomes],
            "reply_code": self.reply_code,
        }



def _stamp(dt: datetime | None) -> tuple[str | None, int | None]:
    return (format_date(dt), to_epoch_ms(dt)) if dt is not None else (None, None)


@dataclass(frozen=True)
class DeliveryStatus:
    """Where one outbound message stands (one entry of twilio_get_message_status).

    ``error_message`` is the table's explanation of ``error_code`` (lib/errors.py), else Twilio's own
    text. A SID the account does not have is ``not_found`` with error 20404; it is not ``final`` (no
    final status was read) but nothing more will be learnt about it, so it is ``settled``.
    """

    sid: str
    status: str
    phone_number: str | None = None
    error_code: int | None = None
    error_message: str | None = None
    date_created: datetime | None = None
    date_sent: datetime | None = None
    date_updated: datetime | None = None
    num_segments: int | None = None
    price: str | None = None
    price_unit: str | None = None
    sender: str | None = None

    @property
    def final(self) -> bool:
        return self.status in FINAL_STATUSES

    @property
    def settled(self) -> bool:
        """Nothing more to wait for: a final status, or a SID Twilio does not have."""
        return self.final or self.status == STATUS_NOT_FOUND

    @property
    def listed_at(self) -> datetime | None:
        """The date Twilio's list sorts this message by (see :func:`listed_at`)."""
        return listed_at(self)

    @classmethod
    def from_message(cls, message: Any) -> DeliveryStatus:
        """From a twilio MessageInstance (listed or fetched)."""
        code = _as_int(message.error_code)
        explained = (explain_code(code) or message.error_message or f"Twilio error {code}") \
            if code is not None else None
        price = message.price
        return cls(sid=message.sid, status=message.status or "unknown", phone_number=message.to,
                   error_code=code, error_message=explained, date_created=_aware(message.date_created),
                   date_sent=_aware(message.date_sent), date_updated=_aware(message.date_updated),
                   num_segments=_as_int(message.num_segments),
                   price=None if price in (None, "") else str(price), price_unit=message.price_unit,
                   sender=message.from_)

    @classmethod
    def not_found(cls, sid: str, code: int = 20404) -> DeliveryStatus:
        return cls(sid=sid, status=STATUS_NOT_FOUND, error_code=code, error_message=explain_lookup(code))

    def as_result(self) -> dict[str, Any]:
        date_sent, date_sent_ts = _stamp(self.date_sent)
        date_updated, date_updated_ts = _stamp(self.date_updated)
        return {
            "sid": self.sid,
            "phone_number": self.phone_number,
            "status": self.status,
            "final": self.final,
            "error_code": self.error_code,
            "error_message": self.error_message,
            "date_sent": date_sent,
            "date_sent_ts": date_sent_ts,
            "date_updated": date_updated,
            "date_updated_ts": date_updated_ts,
            "num_segments": self.num_segments,
            "price": self.price,
            "price_unit": self.price_unit,
        }
