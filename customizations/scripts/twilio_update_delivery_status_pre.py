# Pre-processing script of "Twilio: Update Delivery Status" (function twilio_get_message_status),
# python3. Runs on an SMS Activity Log row of a message sent (direction outbound-api): read the
# status of that row's message (Msg Id), waiting as long as the rule asks (empty: look once).

inputs.twilio_message_sids = row["message_id"]
wait = rule.properties.twilio_status_wait_timeout
if wait and wait.strip():
    inputs.twilio_wait_timeout = wait

# Label: the Twilio account or sender to use, the label of a labelled app.config section
# (eu for [fn_twilio_send_sms:eu]); empty: the default section.
label = rule.properties.twilio_label
if label and label.strip():
    inputs.twilio_label = label.strip()
