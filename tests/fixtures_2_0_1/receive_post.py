# Test fixture, not shipped: what fn_twilio 2.0.1's receive post-processing scripts do: a row per entry
# of results.content when results.success, else a note "Twilio Received Messages failed: <reason>".
import time

if results.success:
    for entry in results.content:
        row = incident.addRow("twilio_sms_log")
        row.row_created = time.strftime("%Y-%m-%d %H:%M:%S")
        row.status = entry["status"]
        row.date_created = entry["date_created_ts"]
        row.phone_number = entry["phone_number"]
        row.direction = entry["direction"]
        row.msg_body = entry["message_body"]
        row.message_id = entry["messaging_service_sid"]
else:
    incident.addNote(f"Twilio Received Messages failed: {results.reason}")
