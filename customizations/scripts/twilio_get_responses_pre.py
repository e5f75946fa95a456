# Pre-processing script of "Twilio: Get Responses" (function twilio_receive_messages), python3.
# Runs on an SMS Activity Log row (an outbound message): collect the replies from that row's
# number sent since that message was created (Msg Created, epoch ms), not only on that exact date.

inputs.twilio_phone_number = row["phone_number"]
inputs.twilio_date_sent_ts = row["date_created"]

# Label: the Twilio account or sender to use, the label of a labelled app.config section
# (eu for [fn_twilio_send_sms:eu]); empty: the default section.
label = rule.properties.twilio_label
if label and label.strip():
    inputs.twilio_label = label.strip()
