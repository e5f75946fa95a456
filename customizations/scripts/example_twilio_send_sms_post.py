# Post-processing script of "Example: Twilio Send SMS" (function twilio_send_sms), python3.
# results (at the top level, not under "content"):
#   success, reason, inputs {twilio_sms_destination, twilio_sms_message},
#   twilio_status: one entry per recipient with phone_number, success, status, sid,
#   messaging_service_sid, date_created, date_created_ts (epoch ms), direction, message_body,
#   num_segments, error_code, error_message; reply_code (the code an acknowledgement request asked for).
# For each recipient: a note (sent / unable to send) and a row in the SMS Activity Log; a recipient
# who replied STOP (status opted_out, Twilio error 21610) gets the row status "Opted out".
from datetime import datetime, timezone


def escape_html(value):
    """Text from users or Twilio, made safe to place in a rich-text note."""
    text = "" if value is None else str(value)
    return (text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
                .replace('"', "&quot;").replace("'", "&#39;"))


def row_status(entry):
    """The Status column: Twilio's status when sent, "Opted out" after a STOP, else "Failed"."""
    if entry.get("success"):
        return entry.get("status")
    return "Opted out" if entry.get("status") == "opted_out" else "Failed"


def error_text(entry):
    """The entry's error, with Twilio's code when there is one."""
    message = entry.get("error_message") or "unknown error"
    code = entry.get("error_code")
    if code:
        return f"Error {code}: {message}"
    return message


sent_inputs = results.get("inputs") or {}
message_sent = sent_inputs.get("twilio_sms_message") or ""
entries = results.get("twilio_status") or []
row_created = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")

if not entries:
    incident.addNote(helper.createRichText(
        "<b>Twilio SMS:</b> nothing was sent: {}".format(
            escape_html(results.get("reason") or "no recipient"))))

for entry in entries:
    phone_number = entry.get("phone_number")
    if entry.get("success"):
        segments = entry.get("num_segments")
        note = ("<b>Twilio SMS sent</b> to {}<br/><b>Status:</b> {}<br/><b>Message SID:</b> {}"
                "{}<br/><b>Message:</b> {}").format(
            escape_html(phone_number), escape_html(entry.get("status")),
            escape_html(entry.get("sid")),
            f"<br/><b>Segments:</b> {escape_html(segments)}" if segments else "",
            escape_html(entry.get("message_body") or message_sent))
    else:
        note = (f"<b>Unable to send Twilio SMS</b> to {escape_html(phone_number)}"
                f"<br/><b>Error:</b> {escape_html(error_text(entry))}"
                f"<br/><b>Message:</b> {escape_html(message_sent)}")
    incident.addNote(helper.createRichText(note))

    log_row = incident.addRow("twilio_sms_log")
    log_row["row_created"] = row_created
    log_row["status"] = row_status(entry)
    log_row["date_created"] = entry.get("date_created_ts")
    log_row["phone_number"] = phone_number
    log_row["direction"] = entry.get("direction") or "outbound-api"
    log_row["msg_body"] = entry.get("message_body") if entry.get("success") else error_text(entry)
    log_row["message_id"] = entry.get("sid")
