"""Everything fn_twilio imports into SOAR, written down once, readably.

``customizations/build_export.py`` turns these definitions (plus the BPMN template in
``customizations/templates/`` and the scripts in ``customizations/scripts/``) into
``fn_twilio/util/data/export.res``. Edit here, then rebuild; never edit export.res by hand.

The names here are the contract (contract.md §1, §3, §4, §6):
message destination ``fn_twilio``; functions ``twilio_send_sms`` and ``twilio_receive_messages``,
``twilio_get_message_status`` (contract.md §10), and the legacy ``twilio_get_responses`` (2.0.x's
name of Get Responses, exported under its 2.0.1 UUID with a display name of its own so that an
upgraded SOAR has no two functions of one name; no shipped workflow calls it: contract.md §8); the
paging function ``twilio_page`` (§9.4); the datatable ``twilio_sms_log``; four rules and four
workflows, and a playbook for each.
Objects that 2.0.1 also had keep its UUIDs (customizations/identities.py).
"""
from dataclasses import dataclass
from typing import Optional

PACKAGE = "fn_twilio"

#: Where each workflow's pre/post-processing scripts live: scripts/<workflow>_pre.py, _post.py
SCRIPTS_DIR = "scripts"


@dataclass(frozen=True)
class Field:
    """A function input (type ``__function``) or a rule field (type ``actioninvocation``)."""
    name: str
    label: str
    input_type: str                 # text, textarea, number, datetimepicker, ...
    required: bool = False
    tooltip: str = ""
    placeholder: str = ""


@dataclass(frozen=True)
class Function:
    name: str
    display_name: str
    description: str
    inputs: tuple[str, ...]         # names of FUNCTION_INPUTS, in the order SOAR shows them
    destination: str = "fn_twilio"


@dataclass(frozen=True)
class Column:
    name: str
    label: str
    input_type: str
    tooltip: str = ""
    width: int = 120


@dataclass(frozen=True)
class Datatable:
    name: str
    display_name: str
    columns: tuple[Column, ...]

    def column_names(self) -> list[str]:
        return [c.name for c in self.columns]


@dataclass(frozen=True)
class Condition:
    """A rule condition: ``<object>.<field> <method> <value>``."""
    field_name: str
    method: str
    value: Optional[str] = None


@dataclass(frozen=True)
class Workflow:
    programmatic_name: str
    name: str
    object_type: str                # "incident" or a datatable name
    function: str                   # the function its single task calls
    description: str
    result_name: str = ""
    post_script_name: str = ""      # a post-processing script shared with other workflows, if any

    @property
    def pre_script(self) -> str:
        """Path of the pre-processing script, relative to customizations/."""
        return f"{SCRIPTS_DIR}/{self.programmatic_name}_pre.py"

    @property
    def post_script(self) -> str:
        """Path of the post-processing script, relative to customizations/."""
        return f"{SCRIPTS_DIR}/{self.post_script_name or self.programmatic_name}_post.py"


@dataclass(frozen=True)
class Rule:
    """A manual rule (menu item) that shows ``fields`` and runs one workflow."""
    name: str
    object_type: str
    workflow: str
    fields: tuple[str, ...] = ()    # names of RULE_FIELDS
    conditions: tuple[Condition, ...] = ()
    description: str = ""


# --------------------------------------------------------------------------------------------
# Message destination
# --------------------------------------------------------------------------------------------
MESSAGE_DESTINATION = "fn_twilio"

# --------------------------------------------------------------------------------------------
# Function inputs (fields of type __function)
# --------------------------------------------------------------------------------------------
_SEGMENTS = ("One SMS holds 160 GSM-7 characters, or 70 when the text needs UCS-2 (emoji, most "
             "non-Latin scripts); a longer text is split into parts of 153 (GSM-7) or 67 (UCS-2) "
             "characters, each billed as one message. At most 1600 characters.")

FUNCTION_INPUTS = {
    "twilio_sms_destination": Field(
        name="twilio_sms_destination", label="twilio_sms_destination", input_type="text",
        required=True,
        tooltip=("Recipients' phone numbers, separated by commas, semicolons or new lines, best "
                 "in international format (+353861234567). Digits without + are read as an "
                 "international number and, when default_region is set in app.config, as a "
                 "national number of that region; digits valid both ways as two different numbers "
                 "are refused (write the + form). Prefix whatsapp: for the WhatsApp channel. "
                 "The same number twice is sent once."),
        placeholder="+353861234567, +19788354530"),
    "twilio_sms_message": Field(
        name="twilio_sms_message", label="twilio_sms_message", input_type="text",
        tooltip=("The text to send. Empty: a default text naming the incident (incident_id) and its "
                 "severity. " + _SEGMENTS),
        placeholder="Incident 2095 needs your attention. Reply ACK to acknowledge."),
    "incident_id": Field(
        name="incident_id", label="incident_id", input_type="number",
        tooltip=("The incident: the default text is about it (when twilio_sms_message is empty), its id "
                 "is the code an acknowledgement request asks for, and Get Responses leaves out replies "
                 "that name another incident's code. Workflows pass incident.id."),
        placeholder="2095"),
    "twilio_phone_number": Field(
        name="twilio_phone_number", label="twilio_phone_number", input_type="text",
        required=True,
        tooltip=("The phone number whose replies are wanted (the number the SMS was sent to), in "
                 "international format; several numbers separated as for twilio_sms_destination "
                 "(replies from any of them); digits without + are read as for twilio_sms_destination."),
        placeholder="+353861234567"),
    "twilio_date_sent": Field(
        name="twilio_date_sent", label="twilio_date_sent", input_type="text",
        tooltip=("Return replies sent at or after this moment: a date or date-time (no zone means "
                 "UTC) or epoch milliseconds. Empty: all replies (or twilio_date_sent_ts)."),
        placeholder="2020-01-25 14:59:51+00:00"),
    "twilio_date_sent_ts": Field(
        name="twilio_date_sent_ts", label="twilio_date_sent_ts", input_type="datetimepicker",
        tooltip=("The same moment as a date-time (epoch milliseconds), e.g. the Msg Created column "
                 "of the SMS Activity Log; used when twilio_date_sent is empty."),
        placeholder=""),
    "twilio_wait_timeout": Field(
        name="twilio_wait_timeout", label="twilio_wait_timeout", input_type="text",
        tooltip=("How long to wait: a number followed by s, m, h, d or w (30s, 10m, 1h, 1d, 1w); 0s "
                 "looks once without waiting. Get Responses waits while no reply has arrived "
                 "(default 120s); Get Delivery Status until every message has a final status "
                 "(default 0s)."),
        placeholder="120s"),
    "twilio_message_sids": Field(
        name="twilio_message_sids", label="twilio_message_sids", input_type="text",
        required=True,
        tooltip=("The SIDs of the messages whose delivery status is wanted (SM... or MM..., as Send "
                 "SMS reports them in sid), separated by commas. The same SID twice is read once."),
        placeholder="SM1234567890abcdef1234567890abcdef"),
    "twilio_request_ack": Field(
        name="twilio_request_ack", label="twilio_request_ack", input_type="boolean",
        tooltip=("True: the text ends with \" Reply ACK <code> to acknowledge.\" (the first of the "
                 "app's ack_keywords); the code is incident_id when given, else a random 4-digit code, "
                 "and the result's reply_code. The request counts toward the 1600 characters."),
        placeholder=""),
    "twilio_wait_for": Field(
        name="twilio_wait_for", label="twilio_wait_for", input_type="text",
        tooltip=("reply (default): the first reply ends the wait. acknowledgement: the wait ends at the "
                 "first acknowledgement, or once every number has declined or opted out; other "
                 "replies are returned with it."),
        placeholder="reply"),
    "twilio_page_tiers": Field(
        name="twilio_page_tiers", label="twilio_page_tiers", input_type="text", required=True,
        tooltip=("The people to page, tier by tier: tiers separated by ; or new lines, the numbers of "
                 "a tier by commas (+353861234567, +14155552345; +19788354530). A number written "
                 "voice:<number> is called instead of texted (press 1 to acknowledge, 2 to decline): "
                 "+353861234567; voice:+353861234567 texts, then calls."),
        placeholder="+353861234567, +14155552345; voice:+19788354530"),
    "twilio_escalate_after": Field(
        name="twilio_escalate_after", label="twilio_escalate_after", input_type="text",
        tooltip=("How long each tier has to acknowledge before the next tier is paged: 30s, 10m, 1h, "
                 "1d or 1w. Default 5m; at most max_wait_timeout."),
        placeholder="5m"),
    "twilio_label": Field(
        name="twilio_label", label="twilio_label", input_type="text",
        tooltip=("Which Twilio account or sender to use: the label of a labelled app.config section, "
                 "e.g. eu for [fn_twilio_send_sms:eu] (letters, digits, _ - . ; case-sensitive). Empty: the "
                 "unlabelled [fn_twilio_send_sms] section, or the only section there is. An unknown label "
                 "fails the call, naming the labels there are; nothing is sent."),
        placeholder="eu"),
}

# the 2.0.1 inputs first (the legacy function shows the same), then 2.2.0's
_RECEIVE_INPUTS = ("twilio_phone_number", "twilio_date_sent", "twilio_date_sent_ts", "twilio_wait_timeout",
                   "incident_id", "twilio_wait_for", "twilio_label")

#: 2.0.x's name of Get Responses: served by its own component for workflows written for 2.0.x
LEGACY_FUNCTION = "twilio_get_responses"

FUNCTIONS = (
    Function(
        name="twilio_send_sms", display_name="Twilio: Send SMS",
        description=("Send an SMS through Twilio to one or more phone numbers. Each recipient is "
                     "sent separately and reported separately (message SID, status, segments or "
                     "the error), so an invalid or failing number never stops the others."),
        inputs=("twilio_sms_destination", "twilio_sms_message", "incident_id", "twilio_request_ack",
                "twilio_label")),
    Function(
        name="twilio_receive_messages", display_name="Twilio: Get Responses",
        description=("Return the SMS replies received from one or more phone numbers since a given "
                     "moment, oldest first, each with what it means (intent) and the code it answers "
                     "(reply_code). When there is none yet (or, waiting for an acknowledgement, none "
                     "acknowledges), keep looking until one arrives, the wait timeout passes or the "
                     "workflow is terminated."),
        inputs=_RECEIVE_INPUTS),
    Function(
        name="twilio_page", display_name="Twilio: Page Until Acknowledged",
        description=("Page people tier by tier until one acknowledges: each text asks for an "
                     "acknowledgement with the incident's code; the next tier is paged when a tier's "
                     "window passes, or at once when everyone in it declined or cannot be reached. "
                     "Returns who acknowledged, every page and reply, and a timeline."),
        inputs=("twilio_page_tiers", "twilio_sms_message", "incident_id", "twilio_escalate_after",
                "twilio_label")),
    Function(
        name=LEGACY_FUNCTION, display_name="Twilio: Get Responses (2.0.x)",
        description=("Kept for workflows written for fn_twilio 2.0.x, which call this function by "
                     "its 2.0.x name: it does exactly what Twilio: Get Responses "
                     "(twilio_receive_messages) does, with the same inputs and results. New "
                     "workflows and playbooks should call Twilio: Get Responses."),
        inputs=_RECEIVE_INPUTS),
    Function(
        name="twilio_get_message_status", display_name="Twilio: Get Delivery Status",
        description=("Return the delivery status of each message SID (queued, sent, delivered, "
                     "undelivered, failed, ...), with the carrier's error explained when there is "
                     "one. With a wait timeout, keep looking until every message has a final status "
                     "or the wait ends."),
        inputs=("twilio_message_sids", "twilio_wait_timeout", "twilio_label")),
)

# --------------------------------------------------------------------------------------------
# Rule fields (fields of type actioninvocation, shown when a rule is run)
# --------------------------------------------------------------------------------------------
RULE_FIELDS = {
    "twilio_sms_destination": Field(
        name="twilio_sms_destination", label="Destination Number", input_type="text",
        required=True,
        tooltip=("Phone numbers in international format, separated by commas, e.g. "
                 "+353861234567, +19788354530"),
        placeholder="+353861234567"),
    "twilio_sms_message": Field(
        name="twilio_sms_message", label="Message", input_type="text",
        tooltip=("Leave empty to send a default text naming this incident and its severity. "
                 + _SEGMENTS),
        placeholder="Incident needs your attention. Reply ACK to acknowledge."),
    "twilio_request_ack": Field(
        name="twilio_request_ack", label="Request acknowledgement", input_type="boolean",
        tooltip=("Yes: the text asks for an acknowledgement with this incident's id as the code "
                 "(\"Reply ACK 2095 to acknowledge.\")."),
        placeholder=""),
    "twilio_page_tiers": Field(
        name="twilio_page_tiers", label="Tiers", input_type="text", required=True,
        tooltip=("Who to page, tier by tier: tiers separated by ; or new lines, the numbers of a tier "
                 "by commas, e.g. +353861234567, +14155552345; +19788354530. Write voice:<number> to "
                 "call that person instead (press 1 to acknowledge, 2 to decline), e.g. "
                 "+353861234567; voice:+353861234567 texts, then calls."),
        placeholder="+353861234567, +14155552345; voice:+19788354530"),
    "twilio_escalate_after": Field(
        name="twilio_escalate_after", label="Escalate After", input_type="text",
        tooltip=("How long each tier has to acknowledge before the next is paged: 30s, 10m, 1h. "
                 "Empty: 5m."),
        placeholder="5m"),
    "twilio_after_date_ts": Field(
        name="twilio_after_date_ts", label="Date Sent", input_type="datetimepicker",
        tooltip="Return replies sent at or after this date and time. Empty: all replies.",
        placeholder=""),
    "twilio_wait_timeout": Field(
        name="twilio_wait_timeout", label="Wait Timeout", input_type="text",
        tooltip=("How long to wait for a reply: 30s, 10m, 1h, 1d or 1w. Empty: 120s; 0s looks "
                 "once without waiting."),
        placeholder="120s"),
    "twilio_status_wait_timeout": Field(
        name="twilio_status_wait_timeout", label="Wait for Final Status", input_type="text",
        tooltip=("How long to wait for the message to reach a final status (delivered, "
                 "undelivered, failed, ...): 30s, 10m, 1h. Empty: look once."),
        placeholder="60s"),
    "twilio_label": Field(
        name="twilio_label", label="Label", input_type="text",
        tooltip=("The Twilio account or sender to use: the label of a labelled app.config section, e.g. "
                 "eu for [fn_twilio_send_sms:eu]. Empty: the default one. From an SMS Activity Log row, give "
                 "the label its message was sent with."),
        placeholder="eu"),
}

# --------------------------------------------------------------------------------------------
# Datatable
# --------------------------------------------------------------------------------------------
SMS_LOG = Datatable(
    name="twilio_sms_log", display_name="SMS Activity Log",
    columns=(
        Column("row_created", "Row Created", "text",
               "When this row was added (UTC)", 130),
        Column("status", "Status", "text",
               "Twilio's message status (queued, sent, delivered, received, ...) or Failed; "
               "Update Delivery Status adds the error, e.g. undelivered (30003: ...)", 90),
        Column("date_created", "Msg Created", "datetimepicker",
               "When Twilio created the message", 150),
        Column("phone_number", "Phone Number", "text",
               "The recipient of an outbound message, the sender of a reply", 130),
        Column("direction", "Direction", "text",
               "outbound-api for messages sent, inbound for replies", 100),
        Column("msg_body", "Msg Body", "text",
               "The text of the message, or the reason it could not be sent", 300),
        Column("message_id", "Msg Id", "text",
               "Twilio's message SID (SM...)", 280),
    ),
)

DATATABLES = (SMS_LOG,)

# --------------------------------------------------------------------------------------------
# Workflows: start -> one function task (python3 pre/post-processing scripts) -> end
# --------------------------------------------------------------------------------------------
WORKFLOWS = (
    Workflow(
        programmatic_name="example_twilio_send_sms", name="Example: Twilio Send SMS",
        object_type="incident", function="twilio_send_sms",
        description=("Send an SMS to the numbers given in the rule; add a note per recipient and a "
                     "row per recipient to the SMS Activity Log."),
        result_name="twilio_send_sms_result"),
    Workflow(
        programmatic_name="example_twilio_receive_messages",
        name="Example: Twilio Receive Messages",
        object_type="incident", function="twilio_receive_messages",
        description=("Collect the replies from the number given in the rule into the SMS Activity "
                     "Log; add a note when none came."),
        result_name="twilio_receive_messages_result", post_script_name="receive_replies"),
    Workflow(
        programmatic_name="twilio_get_responses", name="Twilio: Get Responses",
        object_type=SMS_LOG.name, function="twilio_receive_messages",
        description=("From an SMS Activity Log row: collect the replies from that row's number "
                     "since that message was created."),
        result_name="twilio_get_responses_result", post_script_name="receive_replies"),
    Workflow(
        programmatic_name="twilio_update_delivery_status", name="Twilio: Update Delivery Status",
        object_type=SMS_LOG.name, function="twilio_get_message_status",
        description=("From an SMS Activity Log row of a message sent: read that message's delivery "
                     "status and write it in the row's Status, with the error explained when there "
                     "is one."),
        result_name="twilio_update_delivery_status_result"),
    Workflow(
        programmatic_name="example_twilio_page_on_call", name="Example: Twilio Page On-Call",
        object_type="incident", function="twilio_page",
        description=("Page the tiers given in the rule until someone acknowledges; add a row per page "
                     "and per reply to the SMS Activity Log and a note with the outcome."),
        result_name="twilio_page_result"),
)

# --------------------------------------------------------------------------------------------
# Rules (manual menu items)
# --------------------------------------------------------------------------------------------
RULES = (
    Rule(name="Example: Send Twilio SMS", object_type="incident",
         workflow="example_twilio_send_sms",
         fields=("twilio_sms_destination", "twilio_sms_message", "twilio_request_ack", "twilio_label")),
    Rule(name="Example: Twilio Receive Messages", object_type="incident",
         workflow="example_twilio_receive_messages",
         fields=("twilio_sms_destination", "twilio_after_date_ts", "twilio_wait_timeout", "twilio_label")),
    Rule(name="Twilio: Get Responses", object_type=SMS_LOG.name,
         workflow="twilio_get_responses", fields=("twilio_label",),
         conditions=(Condition(f"{SMS_LOG.name}.status", "not_equals", "Failed"),)),
    Rule(name="Twilio: Update Delivery Status", object_type=SMS_LOG.name,
         workflow="twilio_update_delivery_status", fields=("twilio_status_wait_timeout", "twilio_label"),
         conditions=(Condition(f"{SMS_LOG.name}.direction", "equals", "outbound-api"),)),
    Rule(name="Example: Twilio Page On-Call", object_type="incident",
         workflow="example_twilio_page_on_call",
         fields=("twilio_page_tiers", "twilio_escalate_after", "twilio_sms_message", "twilio_label")),
)


# --------------------------------------------------------------------------------------------
# Playbooks (contract.md §11): one entry per example, naming its rule. Everything else (name,
# object type, activation form, conditions, function, scripts) is derived from the rule and its
# workflow by customizations/playbooks.py; display name = the workflow's + " (Playbook)".
# --------------------------------------------------------------------------------------------
PLAYBOOK_EXAMPLES = (
    "Example: Send Twilio SMS",
    "Example: Twilio Receive Messages",
    "Twilio: Get Responses",
    "Twilio: Update Delivery Status",
    "Example: Twilio Page On-Call",
)

def function_by_name(name: str) -> Function:
    for fn in FUNCTIONS:
        if fn.name == name:
            return fn
    raise KeyError(name)


def datatable_by_name(name: str) -> Datatable:
    for dt in DATATABLES:
        if dt.name == name:
            return dt
    raise KeyError(name)

