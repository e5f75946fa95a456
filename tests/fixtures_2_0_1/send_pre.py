# Test fixture, not shipped: what fn_twilio 2.0.1's "Example: Twilio Send SMS" pre-processing script
# does (described in words in the 2.0.1 upgrade notes): the rule's destination, and the rule's message
# or a default text built from the incident, since the 2.0.x function required a message.
inputs.twilio_sms_destination = rule.properties.twilio_sms_destination
if rule.properties.twilio_sms_message:
    inputs.twilio_sms_message = rule.properties.twilio_sms_message
else:
    inputs.twilio_sms_message = (f"An incident {incident.name} ({incident.id}) with {incident.severity_code} "
                                 "priority may require your attention")
