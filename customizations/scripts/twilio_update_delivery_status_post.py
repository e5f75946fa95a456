# Post-processing script of "Twilio: Update Delivery Status" (function twilio_get_message_status),
# python3. Function twilio_get_message_status returns the standard result payload:
#   results.success, results.reason, results.inputs, results.content = one entry per SID with sid,
#   phone_number, status, final, error_code, error_message, date_sent, date_sent_ts, date_updated,
#   date_updated_ts, num_segments, price, price_unit.
# The row's Status is updated in place, e.g. "delivered" or "undelivered (30003: the handset is
# unreachable ...)"; when nothing could be read the row is left as it is and a note says why.


def escape_html(value):
    """Text from users or Twilio, made safe to place in a rich-text note."""
    text = "" if value is None else str(value)
    return (text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
                .replace('"', "&quot;").replace("'", "&#39;"))


def status_text(entry):
    """The status, with the error's code and explanation when there is one."""
    status = entry.get("status") or "unknown"
    if entry.get("error_code"):
        return "{} ({}: {})".format(status, entry.get("error_code"),
                                    entry.get("error_message") or "no explanation given")
    return status


entries = results.get("content") or []
if entries:
    row["status"] = status_text(entries[0])
else:
    incident.addNote(helper.createRichText("<b>Twilio: delivery status not read</b> for {}: {}".format(
        escape_html(row["message_id"] or "the message"),
        escape_html(results.get("reason") or "no status was returned"))))
