# Test fixture, not shipped: what fn_twilio 2.0.1's "Twilio Get Responses" pre-processing script does
# on an SMS Activity Log row: that row's number and its Msg Created, for function twilio_get_responses.
inputs.twilio_phone_number = row.phone_number
inputs.twilio_date_sent_ts = row.date_created
