# Pre-processing script of "Example: Twilio Send SMS" (function twilio_send_sms), python3.
# Runs in SOAR's script engine: incident, rule, inputs are provided by SOAR.

inputs.twilio_sms_destination = rule.properties.twilio_sms_destination

# An empty message makes the function send its default text, which names the incident
# (read through incident_id) and its severity.
message = rule.properties.twilio_sms_message
if message and message.strip():
    inputs.twilio_sms_message = message

inputs.incident_id = incident.id

# "Request acknowledgement": the text ends with "Reply ACK <incident id> to acknowledge."
if rule.properties.twilio_request_ack:
    inputs.twilio_request_ack = True

# Label: the Twilio account or sender to use, the label of a labelled app.config section
# (eu for [fn_twilio_send_sms:eu]); empty: the default section.
label = rule.properties.twilio_label
if label and label.strip():
    inputs.twilio_label = label.strip()
