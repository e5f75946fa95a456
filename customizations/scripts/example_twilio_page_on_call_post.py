# Post-processing script of "Example: Twilio Page On-Call" (function twilio_page), python3.
# Function twilio_page returns the standard result payload: results.success, results.reason and
# results.content, a dict with acknowledged, acknowledged_by, acknowledged_at, acknowledged_at_ts,
# tier, reply_code, pages (send entries with tier and paged_at_ts), replies (reply entries with
# intent and reply_code) and timeline.
# A row per page and per reply in the SMS Activity Log (replies that acknowledge, decline or opt out
# get the status Acknowledged, Declined, Opted out); a note with the outcome.
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
    add_row(page_status(entry), entry.get("date_created_ts") or entry.get("paged_at_ts"),
            entry.get("phone_number"), entry.get("direction") or "outbound-api",
            entry.get("message_body") if entry.get("success") else error_text(entry), entry.get("sid"))

for reply in page.get("replies") or []:
    add_row(REPLY_STATUS.get(reply.get("intent"), reply.get("status") or "received"),
            reply.get("date_created_ts"), reply.get("phone_number"), reply.get("direction") or "inbound",
            reply.get("message_body"), reply.get("sid"))

tiers = sorted({entry.get("tier") for entry in page.get("pages") or [] if entry.get("tier")})
if page.get("acknowledged"):
    note = ("<b>Twilio page acknowledged</b> by {} (tier {}) at {}<br/><b>Reply code:</b> {}"
            "<br/><b>Paged:</b> {} people in {} tiers").format(
        escape_html(page.get("acknowledged_by")), escape_html(page.get("tier")),
        escape_html(page.get("acknowledged_at")), escape_html(page.get("reply_code")),
        len(page.get("pages") or []), len(tiers))
else:
    note = "<b>Twilio page not acknowledged:</b> {}<br/><b>Reply code:</b> {}".format(
        escape_html(results.get("reason") or "nobody acknowledged"), escape_html(page.get("reply_code")))
incident.addNote(helper.createRichText(note))
