"""The app.config section that `resilient-circuits config -c/-u -l fn_twilio` writes."""


def config_section_data():
    """The [fn_twilio_send_sms] section: required keys first, each optional key commented with its default;
    then a commented example of a labelled section [fn_twilio_send_sms:<label>]."""
    return """[fn_twilio_send_sms]
# Twilio account SID (AC followed by 32 hexadecimal characters), from the Twilio console
twilio_account_sid=ACxxxxxxxx
# The account's auth token. Keep it out of this file: $TWILIO_AUTH_TOKEN (environment or App Host
# secret) or ^twilio_auth_token (keystore). Or use an API key instead (below).
twilio_auth_token=
# the number that originates the SMS, as in the Twilio console, e.g. +1234567890
twilio_src_address=
#
# --- optional settings: remove the leading '#' to change a default ---
# Twilio API key (SK...) and its secret, used instead of twilio_auth_token when both are set
#twilio_api_key_sid=
#twilio_api_key_secret=
# send through a Messaging Service (MG...) instead of twilio_src_address
#twilio_messaging_service_sid=
# ISO country (e.g. US, IE) for numbers written without a country code; without it such numbers are refused
#default_region=
# a call with more unique recipients than this is refused whole, nothing sent
#max_recipients=100
# Twilio requests in flight at once for one send call
#max_concurrency=5
# how often twilio_receive_messages looks for replies (s, m, h)
#poll_interval=2s
# the longest wait a twilio_receive_messages call may ask for (s, m, h, d, w)
#max_wait_timeout=24h
# HTTP timeout in seconds for one Twilio request
#timeout=30
# proxies for Twilio; by default those of [integrations]
#https_proxy=
#http_proxy=
# where the Twilio API lives (change only for a local Twilio emulator)
#twilio_base_url=https://api.twilio.com
# words that acknowledge a page when a reply starts with one, or has one followed by the page's code
# (separated by commas); the first one is the word a page asks for. Twilio's own keywords (STOP,
# START, YES, HELP, ...) are refused.
#ack_keywords=ACK, ACKNOWLEDGE, ACKNOWLEDGED, OK
# words that decline a page when a reply is only one of them, with or without the code (separated by commas)
#decline_keywords=NO, DECLINE
# the number a page's voice: entries are called from: a voice-capable number of the account
# (default: twilio_src_address; a Messaging Service or an alphanumeric sender ID cannot call)
#voice_sender=
# a Studio Flow (FW...) of the account to run page calls with, instead of the one the app creates
#studio_flow_sid=
# storms: at most this many texts from the sender to one number in any person_window; texts beyond
# it are held and sent together as one digest when the window allows (person_window: 5s to 1h)
#max_texts_per_person=10
#person_window=60s
#
# --- more Twilio accounts or senders (optional): labelled sections ---
# A section [fn_twilio_send_sms:<label>] is a whole configuration of its own (account, credentials,
# sender and any optional key above); a function uses it when its twilio_label input is <label>, and
# the section above when twilio_label is empty. A label is 1 to 64 letters, digits, '_', '-' or '.'.
# Sections with the same account and sender must give the same poll_interval, timeout, proxies,
# verify, ack_keywords, decline_keywords, max_texts_per_person and person_window. Remove the leading
# '#' to use this example:
#[fn_twilio_send_sms:eu]
#twilio_account_sid=ACxxxxxxxx
#twilio_auth_token=$TWILIO_AUTH_TOKEN_EU
#twilio_src_address=+353861234567
"""
