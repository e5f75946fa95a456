# Pre-processing script of "Example: Twilio Receive Messages" (function twilio_receive_messages),
# python3. The rule asks for the number, the moment since when replies count, and how long to wait.

inputs.twilio_phone_number = rule.properties.twilio_sms_destination
inputs.twilio_date_sent_ts = rule.properties.twilio_after_date_ts
inputs.twilio_wait_timeout = rule.properties.twilio_wait_timeout

# Label: the Twilio account or sender to use, the label of a labelled app.config section
# (eu for [fn_twilio_send_sms:eu]); empty: the default section.
label = rule.properties.twilio_label
if label and label.strip():
    inputs.twilio_label = label.strip()
