"""Labelled configurations: several Twilio accounts or senders in one app.config (contract §16).

app.config may hold ``[fn_twilio_send_sms:<label>]`` sections besides or instead of the 2.0.x
``[fn_twilio_send_sms]``; each is a whole configuration (account, credentials, sender, every setting),
checked on its own by :func:`fn_twilio.lib.settings.load_settings`. A function call picks one with its
``twilio_label`` input (:meth:`Configurations.select`):

* empty: the unlabelled section; or, without one, the only section there is; several labelled sections
  and no unlabelled one: :class:`LabelError` naming the labels;
* a label: the section of that label (labels are case-sensitive, like app.config's section names);
  an unknown label: :class:`LabelError` naming the label asked for and the labels there are;
* a label SOAR could send but app.config cannot hold as a section name (spaces, ``]``, ``:``, ...):
  :class:`LabelError` saying which characters.

One broken section never takes the others down: each :class:`Configuration` carries its own
Settings or its own error (naming the section and the key), and only calls that select it fail.

Calls on one Twilio account and sender share what the core keeps per account and sender (the reply
poller, the delivery tracker and the storm limiter, keyed by ``polling.poller_key``, which leaves the
label out). So sections of one account and sender must agree on the settings those shared parts run
with (:data:`SHARED_SETTINGS`); when two do not, both carry an error naming both sections and the key
(:func:`load_configurations`).

Plain Python: nothing here imports SOAR libraries. Secrets never reach a message: the errors come from
``load_settings`` (which scrubs them) or name keys only.
"""
from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from fn_twilio.lib.durations import format_duration
from fn_twilio.lib.settings import SECRET_KEYS, SECTION, Settings, SettingsError

__all__ = ["LABEL_INPUT", "LABEL_RULE", "SHARED_SETTINGS", "LabelError", "Configuration", "Configurations",
           "section_name", "label_problem", "find_sections", "load_configurations"]

LABEL_INPUT = "twilio_label"
LABEL_SEPARATOR = ":"
MAX_LABEL_LENGTH = 64
LABEL_RULE = (f"1 to {MAX_LABEL_LENGTH} letters, digits, '_', '-' or '.', starting with a letter or a digit "
              "(e.g. eu, us-east, customer_1)")
_LABEL = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
_LABEL_CHARACTER = re.compile(r"[A-Za-z0-9_.-]")
_SCRUB_MIN_LENGTH = 4      # as load_settings: shorter "secrets" would blank out ordinary words


def _seconds(value: Any) -> str:
    return format_duration(float(value))


def _words(value: Any) -> str:
    return ", ".join(value)


#: Settings that calls on one account and sender share (the reply poller and the delivery tracker run
#: with them, and the storm limit counts one number's texts from the sender whatever the label):
#: app.config key, Settings attribute, how a value is shown (None: not shown, e.g. a proxy URL may hold
#: a password). Sections of one account and sender must agree on each.
SHARED_SETTINGS: tuple[tuple[str, str, Callable[[Any], str] | None], ...] = (
    ("poll_interval", "poll_interval", _seconds),
    ("timeout", "timeout", _seconds),
    ("https_proxy/http_proxy", "proxies", None),
    ("verify", "verify", None),
    ("ack_keywords", "ack_keywords", _words),
    ("decline_keywords", "decline_keywords", _words),
    ("max_texts_per_person", "max_texts_per_person", str),
    ("person_window", "person_window", _seconds),
)


class LabelError(ValueError):
    """A ``twilio_label`` input that selects no configuration: a bad input, nothing is sent."""


def section_name(label: str | None) -> str:
    """The app.config section of ``label``: ``fn_twilio_send_sms:<label>``, or the unlabelled one."""
    return SECTION if label is None else f"{SECTION}{LABEL_SEPARATOR}{label}"


def label_problem(label: str) -> str | None:
    """Why ``label`` cannot be a label (in SOAR's input and in an app.config section name), or None."""
    if not label:
        return "it is empty"
    if len(label) > MAX_LABEL_LENGTH:
        return f"it has {len(label)} characters, more than {MAX_LABEL_LENGTH}"
    if _LABEL.match(label):
        return None
    wrong = []
    for character in label:
        if not _LABEL_CHARACTER.match(character) and character not in wrong:
            wrong.append(character)
    if wrong:
        names = ", ".join("a space" if c == " " else repr(c) for c in wrong)
        return f"it holds {names}"
    return "it does not start with a letter or a digit"


@dataclass(frozen=True)
class Configuration:
    """One app.config section: its checked Settings, or the error that makes it unusable."""

    label: str | None
    settings: Settings | None = None
    error: str | None = None

    @property
    def section(self) -> str:
        """The section's name without brackets: ``fn_twilio_send_sms:eu``."""
        return section_name(self.label)

    @property
    def usable(self) -> bool:
        return self.settings is not None and self.error is None

    def describe(self) -> str:
        """How messages name it: ``[fn_twilio_send_sms:eu] (twilio_label 'eu')``."""
        if self.label is None:
            return f"[{self.section}] (twilio_label empty)"
        return f"[{self.section}] (twilio_label {self.label!r})"


class Configurations:
    """Every fn_twilio section of one app.config, the unlabelled one first, then by label."""

    def __init__(self, entries: list[Configuration]) -> None:
        self._entries = sorted(entries, key=lambda c: (c.label is not None, c.label or ""))
        self._by_label = {c.label: c for c in self._entries}

    def __iter__(self) -> Iterator[Configuration]:
        return iter(self._entries)

    def __len__(self) -> int:
        return len(self._entries)

    @property
    def labels(self) -> list[str]:
        """The labels of the labelled sections, sorted."""
        return [c.label for c in self._entries if c.label is not None]

    @property
    def unlabelled(self) -> Configuration | None:
        return self._by_label.get(None)

    def select(self, label: object) -> Configuration:
        """The configuration a call with ``twilio_label`` = ``label`` uses; LabelError when none."""
        text = "" if label is None else str(label).strip()
        if not text:
            return self._default()
        problem = label_problem(text)
        if problem is not None:
            raise LabelError(f"{LABEL_INPUT} {text!r} is not a valid label: {problem}; "
                             f"a label is {LABEL_RULE}")
        found = self._by_label.get(text)
        if found is None:
            raise LabelError(self._unknown(text))
        return found

    def settings(self, label: object) -> Settings:
        """The Settings a call with ``twilio_label`` = ``label`` runs with.

        LabelError when the label selects no section; SettingsError (naming the section and the key)
        when the section it selects cannot be used.
        """
        config = self.select(label)
        if config.error is not None or config.settings is None:
            raise SettingsError(config.error or f"[{config.section}] cannot be used")
        return config.settings

    def _default(self) -> Configuration:
        unlabelled = self._by_label.get(None)
        if unlabelled is not None:
            return unlabelled
        if len(self._entries) == 1:
            return self._entries[0]
        if not self._entries:
            raise SettingsError(f"the [{SECTION}] section is missing from app.config")
        raise LabelError(f"{LABEL_INPUT} is empty, but app.config has no unlabelled [{SECTION}] section and "
                         f"{len(self._entries)} labelled ones: give {LABEL_INPUT} one of "
                         f"{', '.join(self.labels)} (or add an unlabelled [{SECTION}] section for calls "
                         "without a label)")

    def _unknown(self, label: str) -> str:
        message = (f"{LABEL_INPUT} {label!r} names no configuration: app.config has no "
                   f"[{section_name(label)}] section")
        if self.labels:
            message += f"; its labels are {', '.join(self.labels)}"
        else:
            message += "; it has no labelled section"
        if self.unlabelled is not None:
            message += f" (and the unlabelled [{SECTION}], used when {LABEL_INPUT} is empty)"
        close = [other for other in self.labels if other.lower() == label.lower()]
        if close:
            message += f"; did you mean {close[0]!r}? Labels are case-sensitive"
        return message


def find_sections(opts: Mapping[str, Any]) -> dict[str | None, Any]:
    """fn_twilio's sections of resilient-circuits' options, by label (None: the unlabelled one).

    With no fn_twilio section at all, the unlabelled one counts as present and empty, so its error
    ("twilio_account_sid is not set in [fn_twilio_send_sms] ...") stays what it was before labels.
    """
    prefix = SECTION + LABEL_SEPARATOR
    found: dict[str | None, Any] = {}
    for key in list(opts.keys()):
        if key == SECTION:
            found[None] = opts.get(key)
        elif isinstance(key, str) and key.startswith(prefix):
            found[key[len(prefix):]] = opts.get(key)
    if not found:
        found[None] = {}
    return found


def _named(name: str, message: str) -> str:
    """A section's error that names the section (load_settings names it only where it says where to
    put a value)."""
    return message if f"[{name}]" in message else f"[{name}] {message}"


SettingsLoader = Callable[[str, Any], Settings]


def load_configurations(sections: Mapping[str | None, Any], load: SettingsLoader) -> Configurations:
    """Check every section and the agreement of sections sharing an account and sender.

    ``load(name, section)`` turns one section into Settings or raises SettingsError (the SOAR side
    passes ``load_settings`` with that section's proxies and TLS verification).
    """
    secrets = _secrets(sections)
    entries: dict[str | None, Configuration] = {}
    for label, section in sections.items():
        name = section_name(label)
        problem = None if label is None else label_problem(label)
        if problem is not None:
            entries[label] = Configuration(label, error=f"[{name}]: the label {label!r} cannot be used: "
                                                        f"{problem}; a label is {LABEL_RULE}")
            continue
        try:
            entries[label] = Configuration(label, settings=load(name, section))
        except SettingsError as err:
            # load_settings hides the section's own secrets; another section's secret pasted here
            # (a token of [fn_twilio_send_sms:eu] as the sender of [fn_twilio_send_sms:us]) is hidden too
            message = _scrub(str(err) if label is None else _named(name, str(err)), secrets)
            entries[label] = Configuration(label, error=message)
    for label, message in _conflicts(list(entries.values())).items():
        entries[label] = Configuration(label, error=message)
    return Configurations(list(entries.values()))


def _secrets(sections: Mapping[str | None, Any]) -> list[str]:
    """The secret values of every section, longest first (so one containing another is hidden whole)."""
    found = set()
    for section in sections.values():
        for key in SECRET_KEYS:
            try:
                value = section.get(key) if isinstance(section, Mapping) else None
            except Exception:  # a reference that cannot be resolved: that section says so itself
                value = None
            if isinstance(value, str) and len(value.strip()) >= _SCRUB_MIN_LENGTH:
                found.add(value.strip())
    return sorted(found, key=len, reverse=True)


def _scrub(message: str, secrets: list[str]) -> str:
    for secret in secrets:
        message = message.replace(secret, "***")
    return message


def _shared_key(settings: Settings) -> tuple[str, str, str]:
    """What makes calls share the core's pollers and trackers, the credentials aside (calls with other
    credentials get pollers of their own: see ``polling.poller_key``)."""
    return (settings.base_url, settings.account_sid, settings.sender)


def _conflicts(entries: list[Configuration]) -> dict[str | None, str]:
    """For each section that disagrees with another of its account and sender: the first such error."""
    usable = sorted((c for c in entries if c.settings is not None),
                    key=lambda c: (c.label is not None, c.label or ""))
    found: dict[str | None, str] = {}
    for i, first in enumerate(usable):
        for second in usable[i + 1:]:
            assert first.settings is not None and second.settings is not None
            if _shared_key(first.settings) != _shared_key(second.settings):
                continue
            for key, attribute, show in SHARED_SETTINGS:
                one, other = getattr(first.settings, attribute), getattr(second.settings, attribute)
                if one == other:
                    continue
                values = f" ({show(one)} and {show(other)})" if show is not None else ""
                message = (f"[{first.section}] and [{second.section}] use the same Twilio account and sender "
                           f"but a different {key}{values}: calls on one account and sender share its "
                           f"reply poller, delivery tracker and storm limit, so these sections must give "
                           f"the same {key} (or use different senders)")
                found.setdefault(first.label, message)
                found.setdefault(second.label, message)
                break
    return found
