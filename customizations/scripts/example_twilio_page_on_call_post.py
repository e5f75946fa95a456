# Post-processing script of "Example: Twilio Page On-Call" (function twilio_page), python3.
# Function twilio_page returns the standard result payload: results.success, results.reason and
# results.content, a dict with acknowledged, acknowledged_by, acknowledged_at, acknowledged_at_ts,
# tier, reply_code, pages (send entries with tier and paged_at_ts; a call's entry has channel "voice",
# the Studio execution's SID, outcome and reason; a text held by the storm limit and sent in a digest
# has bundled true, the digest's SID and text), replies (reply entries with intent, reply_code and
# reply_codes) and timeline (an acknowledgement by a key pressed on a call has channel "voice").
# A row per page, per call and per reply in the SMS Activity Log (replies that acknowledge, decline or
# opt out get the status Acknowledged, Declined, Opted out; calls Call acknowledged, Call declined,
# Call not answered, ...; their Direction is outbound-call; a page sent in a digest has the digest's SID
# as Msg Id, so Update Delivery Status follows the digest); a note with the outcome.
from datetime import datetime, timezone


def escape_html(value):
    """Text from users or Twilio, made safe to place in a rich-text note."""
    text = "" if value is None else str(value)
    return (text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
                .replace('"', "&quot;").replace("'", "&#39;"))


REPLY_STATUS = {"acknowledge": "Acknowledged", "decline": "Declined", "opt_out": "Opted out"}


def page_status(entry):
    """The Status column of a page: Twilio's status when sent, "Opted out" after a STOP, else "Failed"."""
    if entry.get("success"):
        return entry.get("status")
    return "Opted out" if entry.get("status") == "opted_out" else "Failed"


CALL_STATUS = {"acknowledged": "Call acknowledged", "declined": "Call declined",
               "not_answered": "Call not answered", "busy": "Call busy", "failed": "Call failed",
               "canceled": "Call canceled", "machine": "Call answered by a machine",
               "no_key": "Call answered, no key pressed", "other_key": "Call answered, another key pressed",
               "unreadable": "Call unreadable", "stuck": "Call not followed to its end"}


def call_status(entry):
    """The Status column of a call: what it came to ("Call acknowledged", "Call not answered", ...)."""
    if not entry.get("success"):
        return "Call failed"
    if entry.get("outcome") in CALL_STATUS:
        return CALL_STATUS[entry["outcome"]]
    if entry.get("ended_by_page"):
        return "Call ended by the page"
    return "Call {}".format(entry.get("status") or "placed")


def error_text(entry):
    message = entry.get("error_message") or "unknown error"
    return "Error {}: {}".format(entry["error_code"], message) if entry.get("error_code") else message


def add_row(status, date_ts, phone_number, direction, body, sid):
    log_row = incident.addRow("twilio_sms_log")
    log_row["row_created"] = row_created
    log_row["status"] = status
    log_row["date_created"] = date_ts
    log_row["phone_number"] = phone_number
    log_row["direction"] = direction
    log_row["msg_body"] = body
    log_row["message_id"] = sid


page = results.get("content") or {}
row_created = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")

for entry in page.get("pages") or []:
    if entry.get("channel") == "voice":
        add_row(call_status(entry), entry.get("date_created_ts") or entry.get("paged_at_ts"),
                entry.get("phone_number"), "outbound-call",
                (entry.get("reason") or entry.get("message_body")) if entry.get("success")
                else error_text(entry), entry.get("sid"))
        continue
    add_row(page_status(entry), entry.get("date_created_ts") or entry.get("paged_at_ts"),
            entry.get("phone_number"), entry.get("direction") or "outbound-api",
            entry.get("message_body") if entry.get("success") else error_text(entry), entry.get("sid"))

for reply in page.get("replies") or []:
    add_row(REPLY_STATUS.get(reply.get("intent"), reply.get("status") or "received"),
            reply.get("date_created_ts"), reply.get("phone_number"), reply.get("direction") or "inbound",
            reply.get("message_body"), reply.get("sid"))

tiers = sorted({entry.get("tier") for entry in page.get("pages") or [] if entry.get("tier")})
by_voice = any(e.get("event") == "acknowledged" and e.get("channel") == "voice"
               for e in page.get("timeline") or [])
calls = len([entry for entry in page.get("pages") or [] if entry.get("channel") == "voice"])
if page.get("acknowledged"):
    note = ("<b>Twilio page acknowledged</b> by {}{} (tier {}) at {}<br/><b>Reply code:</b> {}"
            "<br/><b>Paged:</b> {} people in {} tiers{}").format(
        escape_html(page.get("acknowledged_by")), " by voice (pressed 1 on the call)" if by_voice else "",
        escape_html(page.get("tier")), escape_html(page.get("acknowledged_at")),
        escape_html(page.get("reply_code")),
        len({entry.get("phone_number") for entry in page.get("pages") or []}), len(tiers),
        " (" + str(calls) + " by a call)" if calls else "")
else:
    note = "<b>Twilio page not acknowledged:</b> {}<br/><b>Reply code:</b> {}".format(
        escape_html(results.get("reason") or "nobody acknowledged"), escape_html(page.get("reply_code")))
incident.addNote(helper.createRichText(note))
