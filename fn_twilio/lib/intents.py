"""What an SMS reply means (contract §9.1) and which page it answers (§9.2).

Reading a reply (``read_reply``), contract §9.1 and §13.1:

* The text is compared after Unicode NFKC normalisation (full-width ``２１０１`` reads ``2101``), case
  ignored; digits of any script read as codes.
* Twilio's own keywords win, and only as the whole reply: whitespace and ASCII punctuation around the
  word are ignored (``"Stop."`` is an opt-out, ``"stop please"`` is not). Opt-out: STOP, STOPALL,
  UNSUBSCRIBE, CANCEL, END, QUIT, REVOKE, OPTOUT; opt-in: START, YES, UNSTOP; help: HELP, INFO.
* A **decline** is a reply that is only a decline keyword, with or without a code: ``no``,
  ``NO 2095``, ``decline #2095``, ``2095 no``. ``"No problem, on it"`` is not a decline.
* An **acknowledgement keyword followed by a code anywhere** in the reply acknowledges that code
  (``"No worries, ACK 2101"``); so does ``<code> <keyword>`` at the start (``"2095 ack"``).
* Otherwise a reply whose first word is an acknowledgement keyword acknowledges (``"Ack, on my way"``,
  ``"ACK👍"``) without naming a code; anything else is ``other``.
* ``ACK ALL`` (an acknowledgement keyword, then ``ALL``; a digest asks for ``<first keyword> ALL``)
  acknowledges without naming a code, like a bare ``ack``, and says so (``Reading.every``): it answers
  every code the text it answers asked for (a digest asks for several, contract §15).
* Words are runs of letters, digits and underscores (``#`` may lead a code); a code is a whole number
  (``"ack 20x5"`` names none), read without leading zeros.

Which page a reply answers (``reply_code``, contract §9.2): the code it names, always; for a reply
that names none, the code of the latest page sent to that number at or before the reply (None when
that page asked for no acknowledgement, or nothing was sent). A digest asks for several codes: the
attribution (:mod:`fn_twilio.lib.attribution`) reads them all with
:func:`fn_twilio.lib.storm.requested_codes`. A page asks for an acknowledgement when its text ends
with the request that ``ack_request`` writes (`` Reply ACK 2095 to acknowledge.``).

Keywords come from the settings ``ack_keywords`` and ``decline_keywords``; ``keywords`` checks
them (one word of letters and digits each, not a number, not one of Twilio's keywords, not in both
lists) and raises :class:`KeywordError` naming the setting and the word.

Plain Python: nothing here imports SOAR libraries.
"""
from __future__ import annotations

import random
import re
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import Enum

__all__ = [
    "REFUSALS",
    "Intent", "Keywords", "KeywordError", "Reading", "SentText",
    "OPT_OUT_KEYWORDS", "OPT_IN_KEYWORDS", "HELP_KEYWORDS", "TWILIO_KEYWORDS",
    "DEFAULT_ACK_KEYWORDS", "DEFAULT_DECLINE_KEYWORDS", "ACK_SETTING", "DECLINE_SETTING",
    "keywords", "check_keywords", "normalise_text", "read_reply", "ack_request", "requested_code",
    "random_code", "page_code",
    "latest_page", "reply_code",
]

OPT_OUT_KEYWORDS = ("STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT", "REVOKE", "OPTOUT")
OPT_IN_KEYWORDS = ("START", "YES", "UNSTOP")
HELP_KEYWORDS = ("HELP", "INFO")
TWILIO_KEYWORDS = OPT_OUT_KEYWORDS + OPT_IN_KEYWORDS + HELP_KEYWORDS

DEFAULT_ACK_KEYWORDS = ("ACK", "ACKNOWLEDGE", "ACKNOWLEDGED", "OK")
DEFAULT_DECLINE_KEYWORDS = ("NO", "DECLINE")

ACK_SETTING = "ack_keywords"
DECLINE_SETTING = "decline_keywords"

_WORD = re.compile(r"#?\w+")
_KEYWORD = re.compile(r"^[A-Za-z0-9]+$")
_CODE = re.compile(r"^#?(\d+)$")
_EDGES = " \t\r\n\f\v!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~"
_REQUEST = re.compile(r" Reply \w+ #?([0-9]+) to acknowledge\.\s*$")
_CODE_DIGITS = 4
ALL = "ALL"     # ACK ALL: every code the text answered asked for


class Intent(str, Enum):
    """What a reply means; the value is the text results carry."""

    OPT_OUT = "opt_out"
    OPT_IN = "opt_in"
    HELP = "help"
    ACKNOWLEDGE = "acknowledge"
    DECLINE = "decline"
    OTHER = "other"


#: The intents that take a person out of a wait for an acknowledgement (receive and page alike).
REFUSALS = frozenset({Intent.DECLINE.value, Intent.OPT_OUT.value})

_TWILIO_INTENTS = {
    **{w: Intent.OPT_OUT for w in OPT_OUT_KEYWORDS},
    **{w: Intent.OPT_IN for w in OPT_IN_KEYWORDS},
    **{w: Intent.HELP for w in HELP_KEYWORDS},
}
_TWILIO_KINDS = {Intent.OPT_OUT: "opt-out", Intent.OPT_IN: "opt-in", Intent.HELP: "help"}


class KeywordError(ValueError):
    """A keyword setting that cannot be used; the message names the setting and the word."""


@dataclass(frozen=True)
class Keywords:
    """Checked acknowledgement and decline keywords, upper case, in the order configured.

    Build it with ``keywords(...)``, which checks them; the defaults are the contract's."""

    acknowledge: tuple[str, ...] = DEFAULT_ACK_KEYWORDS
    decline: tuple[str, ...] = DEFAULT_DECLINE_KEYWORDS


@dataclass(frozen=True)
class Reading:
    """What one reply says: its intent, and the code it names (None when it names none); ``every`` for
    ``ACK ALL`` (an acknowledgement of every code the text it answers asked for)."""

    intent: Intent
    code: str | None = None
    every: bool = False


@dataclass(frozen=True)
class SentText:
    """An outbound SMS as the attribution needs it: recipient, text, and when it was sent
    (Twilio's ``date_sent``, or ``date_created`` while still queued; an aware datetime)."""

    to: str
    body: str
    date: datetime
    sid: str | None = None


def check_keywords(words: Iterable[str], *, name: str) -> tuple[str, ...]:
    """One keyword list, upper-cased, duplicates dropped; KeywordError names ``name`` and the word."""
    checked: list[str] = []
    for raw in words:
        word = raw.strip()
        if not _KEYWORD.match(word):
            raise KeywordError(f"{name}: {word!r} is not a keyword; a keyword is one word of letters "
                               "and digits (separate keywords with commas)")
        if word.isdigit():
            raise KeywordError(f"{name}: {word!r} is a number, which a reply uses as a reply code; "
                               "a keyword needs at least one letter")
        upper = word.upper()
        twilio = _TWILIO_INTENTS.get(upper)
        if twilio is not None:
            raise KeywordError(f"{name}: {word!r} is one of Twilio's {_TWILIO_KINDS[twilio]} keywords; "
                               "Twilio acts on it itself, so it cannot be used here")
        if upper not in checked:
            checked.append(upper)
    if not checked:
        raise KeywordError(f"{name} lists no keyword; give at least one, separated by commas")
    return tuple(checked)


def keywords(acknowledge: Iterable[str] = DEFAULT_ACK_KEYWORDS,
             decline: Iterable[str] = DEFAULT_DECLINE_KEYWORDS) -> Keywords:
    """Checked Keywords; KeywordError when a list is empty, a word is malformed or Twilio's,
    or a word is in both lists."""
    ack = check_keywords(acknowledge, name=ACK_SETTING)
    dec = check_keywords(decline, name=DECLINE_SETTING)
    both = [w for w in dec if w in ack]
    if both:
        raise KeywordError(f"{DECLINE_SETTING}: {both[0]!r} is also in {ACK_SETTING}; a reply cannot both "
                           "acknowledge and decline")
    return Keywords(acknowledge=ack, decline=dec)


def _code(word: str) -> str | None:
    match = _CODE.match(word)
    return str(int(match.group(1))) if match else None


def normalise_text(body: str | None) -> str:
    """A reply's text as it is compared: Unicode NFKC (full-width letters and digits become ASCII)."""
    return unicodedata.normalize("NFKC", body or "")


def read_reply(body: str | None, kw: Keywords = Keywords()) -> Reading:
    """The intent of a reply's text and the code it names (see the module docstring)."""
    text = normalise_text(body)
    whole = text.strip(_EDGES).upper()
    if whole in _TWILIO_INTENTS:
        return Reading(_TWILIO_INTENTS[whole])
    words = [w.upper() for w in _WORD.findall(text)]
    if not words:
        return Reading(Intent.OTHER)
    # a decline is the whole reply: the keyword alone, or with its code on either side
    if len(words) <= 2 and any(w in kw.decline for w in words):
        codes = [_code(w) for w in words if w not in kw.decline]
        if len(words) == 1 or (len(codes) == 1 and codes[0] is not None):
            return Reading(Intent.DECLINE, codes[0] if codes else None)
    # "<code> <ack keyword>" at the start, then "<ack keyword> <code>" anywhere
    if len(words) > 1 and words[1] in kw.acknowledge and _code(words[0]) is not None:
        return Reading(Intent.ACKNOWLEDGE, _code(words[0]))
    for word, following in zip(words, words[1:]):
        code = _code(following)
        if word in kw.acknowledge and code is not None:
            return Reading(Intent.ACKNOWLEDGE, code)
    if words[0] in kw.acknowledge:
        return Reading(Intent.ACKNOWLEDGE, every=len(words) > 1 and words[1] == ALL)
    return Reading(Intent.OTHER)


def ack_request(code: str, kw: Keywords = Keywords()) -> str:
    """The text a page ends with to ask for an acknowledgement: `` Reply ACK 2095 to acknowledge.``"""
    return f" Reply {kw.acknowledge[0]} {code} to acknowledge."


def requested_code(body: str | None) -> str | None:
    """The code a sent text asks for (read back from its ``ack_request`` ending), or None.

    Any keyword is accepted in the request, so texts sent before a change of ``ack_keywords`` still read."""
    match = _REQUEST.search(body or "")
    return str(int(match.group(1))) if match else None


def random_code(rng: random.Random | None = None) -> str:
    """A random 4-digit code (1000-9999); ``rng`` for tests, else the system's random source."""
    source = rng if rng is not None else random.SystemRandom()
    return str(source.randint(10 ** (_CODE_DIGITS - 1), 10 ** _CODE_DIGITS - 1))


def page_code(incident_id: int | None, rng: random.Random | None = None) -> str:
    """The code a page asks for: the incident id when there is one, else a random 4-digit code."""
    if incident_id is not None:
        if isinstance(incident_id, bool) or not isinstance(incident_id, int) or incident_id < 1:
            raise ValueError(f"incident_id {incident_id!r} is not a positive whole number")
        return str(incident_id)
    return random_code(rng)


def latest_page(number: str, at: datetime, sent: Iterable[SentText]) -> SentText | None:
    """The latest text sent to ``number`` at or before ``at``, or None.

    Pass the texts as Twilio lists them (newest first): of texts with the same date, the first
    one given counts as the later (Twilio's dates have whole seconds)."""
    best: SentText | None = None
    for text in sent:
        if text.to != number or text.date > at:
            continue
        if best is None or text.date > best.date:
            best = text
    return best


def reply_code(reading: Reading, number: str, at: datetime, sent: Sequence[SentText]) -> str | None:
    """The code a reply from ``number`` received ``at`` answers.

    The code it names, whatever was sent; for a reply that names none, the code the latest text sent
    to that number at or before the reply asked for (None when it asked for none, or when nothing was
    sent). So ``"ok, on my way"`` after a page for 2095 answers 2095; ``"ACK 2096"`` answers 2096."""
    if reading.code is not None:
        return reading.code
    latest = latest_page(number, at, sent)
    return requested_code(latest.body) if latest is not None else None
