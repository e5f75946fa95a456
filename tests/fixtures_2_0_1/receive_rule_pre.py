# Test fixture, not shipped: what fn_twilio 2.0.1's "Example: Twilio Receive Messages" pre-processing
# script does: the number and the moment from the rule's fields, for function twilio_get_responses.
inputs.twilio_phone_number = rule.properties.twilio_sms_destination
inputs.twilio_date_sent_ts = rule.properties.twilio_after_date_ts
inputs.twilio_wait_timeout = rule.properties.twilio_wait_timeout
