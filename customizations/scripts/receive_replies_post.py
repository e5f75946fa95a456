# Post-processing script of "Example: Twilio Receive Messages" and "Twilio: Get Responses", python3.
# Function twilio_receive_messages returns the standard result payload:
#   results.success, results.reason, results.inputs, results.content = the replies, each with
#   phone_number (the sender), sid, messaging_service_sid, date_created, date_created_ts (epoch ms),
#   direction ("inbound"), message_body, status ("received"), error_message.
# Each reply becomes a row in the SMS Activity Log; no reply gives a note with the reason.
# Rows are written for whatever replies came back, so a reply is never dropped even if a
# function version reported it with success false.
from datetime import datetime, timezone


def escape_html(value):
    """Text from users or Twilio, made safe to place in a rich-text note."""
    text = "" if value is None else str(value)
    return (text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
                .replace('"', "&quot;").replace("'", "&#39;"))


replies = results.get("content") or []
if replies:
    row_created = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")
    for reply in replies:
        log_row = incident.addRow("twilio_sms_log")
        log_row["row_created"] = row_created
        log_row["status"] = reply.get("status") or "received"
        log_row["date_created"] = reply.get("date_created_ts")
        log_row["phone_number"] = reply.get("phone_number")
        log_row["direction"] = reply.get("direction") or "inbound"
        log_row["msg_body"] = reply.get("message_body")
        log_row["message_id"] = reply.get("sid")
else:
    asked = results.get("inputs") or {}
    incident.addNote(helper.createRichText("<b>Twilio: no reply</b> from {}: {}".format(
        escape_html(asked.get("twilio_phone_number") or "the number"),
        escape_html(results.get("reason") or "no reply was received"))))
