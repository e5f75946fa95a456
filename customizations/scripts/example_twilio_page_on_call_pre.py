# Pre-processing script of "Example: Twilio Page On-Call" (function twilio_page), python3.
# Runs in SOAR's script engine: incident, rule, inputs are provided by SOAR.

inputs.twilio_page_tiers = rule.properties.twilio_page_tiers

# Empty: the function's default window (5m) and its default text naming the incident.
escalate_after = rule.properties.twilio_escalate_after
if escalate_after and escalate_after.strip():
    inputs.twilio_escalate_after = escalate_after
message = rule.properties.twilio_sms_message
if message and message.strip():
    inputs.twilio_sms_message = message

# The incident's id is the code the texts ask for ("Reply ACK 2095 to acknowledge.").
inputs.incident_id = incident.id

# Label: the Twilio account or sender to use, the label of a labelled app.config section
# (eu for [fn_twilio_send_sms:eu]); empty: the default section.
label = rule.properties.twilio_label
if label and label.strip():
    inputs.twilio_label = label.strip()
