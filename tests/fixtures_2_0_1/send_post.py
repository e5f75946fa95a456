# Test fixture, not shipped: what fn_twilio 2.0.1's "Example: Twilio Send SMS" post-processing script
# does: a note and a row per entry of results["twilio_status"]; the row's status is entry["status"]
# or Failed, Msg Id is entry["messaging_service_sid"], Msg Created is entry["date_created_ts"].
import time

for entry in results["twilio_status"]:
    if entry["success"]:
        incident.addNote("Twilio SMS sent to {}: {}".format(entry["phone_number"], entry["status"]))
    else:
        incident.addNote("Twilio SMS to {} failed: {}".format(entry["phone_number"], entry["error_message"]))
    row = incident.addRow("twilio_sms_log")
    row.row_created = time.strftime("%Y-%m-%d %H:%M:%S")
    row.status = entry["status"] or "Failed"
    row.date_created = entry["date_created_ts"]
    row.phone_number = entry["phone_number"]
    row.direction = entry["direction"]
    row.msg_body = entry["message_body"]
    row.message_id = entry["messaging_service_sid"]
