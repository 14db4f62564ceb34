"""Why a run needs action: its error, made safe to keep and show, and the bounded reason behind it.

Both come from the runs already listed (v3 ``error_message``, v4 ``last_error.{label,message}``). The
reasons, the v4 label table, the v3 patterns and each reason's action live in ``failures.yaml``; what
looks like a secret, in ``redaction.yaml``. An error is kept only for a run that needs action, and one
``RunError`` is shared by every run with the same error (a per-workspace cache), so a run with no error
costs nothing and a thousand runs with the same cookie error cost one object.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from importlib.resources import files
from typing import Any, Final

import yaml

from exporter.families import OTHER_REASON, RUN_FAILURE_REASONS
from exporter.logs import secret_forms
from exporter.parsing import RunError

logger = logging.getLogger(__name__)

#: Longest error kept (in characters); a longer one ends with an ellipsis.
ERROR_MAX_CHARS: Final = 200
#: Only the start of an error is read: cleaned, redacted, searched.
ERROR_WINDOW: Final = 2000
#: Longest v4 label read (a longer one is not a label: ``other``).
LABEL_MAX_CHARS: Final = 64
#: Distinct errors remembered per workspace (the texts' hashes and the shared RunError each); past it the
#: cache starts again. A new error is read once, then each poll finds it here.
CACHE_SIZE: Final = 65536
#: Distinct unknown v4 labels logged per workspace; past it, one line says more are not logged.
UNKNOWN_LABELS_LOGGED: Final = 50
OTHER: Final = OTHER_REASON
ELLIPSIS: Final = "\u2026"

# Control characters and lone surrogates: tab, newline and return become spaces, the others go, and so
# do the invisible and bidirectional formatting characters (which can make a text read other than it is).
_WHITESPACE_CONTROLS: Final = re.compile("[\t\n\r\x0b\x0c\x85\u2028\u2029]")
_OTHER_CONTROLS: Final = re.compile(
    "[\x00-\x1f\x7f-\x9f\ud800-\udfff\u200b-\u200f\u202a-\u202e\u2060-\u2069\ufeff]"
)
_SPACES: Final = re.compile(" {2,}")
_HAS_DIGIT: Final = re.compile("[0-9]")
_HAS_LETTER: Final = re.compile("[A-Za-z]")
_SLUG_PIECE: Final = 16


def _load(name: str) -> Any:
    return yaml.safe_load(files(__package__).joinpath(name).read_text(encoding="utf-8"))


@dataclass(frozen=True)
class Reason:
    """One value of the ``reason`` label: what it means and what to do about it."""

    name: str
    title: str
    meaning: str
    action: str


def _load_reasons() -> tuple[dict[str, Reason], dict[str, str], tuple[tuple[str, re.Pattern[str]], ...]]:
    data = _load("failures.yaml")
    reasons = {
        name: Reason(name=name, title=entry["title"], meaning=entry["meaning"], action=entry["action"])
        for name, entry in data["reasons"].items()
    }
    if tuple(reasons) != RUN_FAILURE_REASONS:
        raise RuntimeError("failures.yaml must list every reason of families.RUN_FAILURE_REASONS, in order")
    labels = {str(label).upper(): reason for label, reason in data["v4_labels"].items()}
    # written in lower case and matched against the lower-cased error, which is faster than re.IGNORECASE
    patterns = tuple((reason, re.compile(pattern)) for reason, pattern in data["v3_patterns"])
    if not set(labels.values()) | {reason for reason, _ in patterns} <= set(reasons):
        raise RuntimeError("failures.yaml maps a label or a pattern to a reason it does not list")
    return reasons, labels, patterns


_LOADED: Final = _load_reasons()
#: Every reason, in the order of the label's vocabulary.
REASONS: Final = _LOADED[0]
#: v4 ``last_error.label`` (upper-cased) -> reason.
V4_LABELS: Final = _LOADED[1]
#: (reason, pattern) for v3 ``error_message``, first match wins.
V3_PATTERNS: Final = _LOADED[2]


@dataclass(frozen=True)
class _Redaction:
    pattern: re.Pattern[str]
    replace: Any  # a template (\g<1>) or a function of the match
    hints: tuple[str, ...]  # lower-case; the pattern runs only on an error that contains one


@dataclass(frozen=True)
class _Pairs:
    pair: re.Pattern[str]
    secret_name: re.Pattern[str]
    value: re.Pattern[str]


def _load_redactions() -> tuple[str, _Pairs, tuple[_Redaction, ...]]:
    data = _load("redaction.yaml")
    replacement = str(data["replacement"])
    pairs = _Pairs(
        *(re.compile(data["pairs"][key], re.IGNORECASE) for key in ("pair", "secret_name", "value"))
    )
    redactions = tuple(
        _Redaction(
            re.compile(entry["pattern"], re.IGNORECASE),
            _digit_and_letter(replacement) if entry.get("needs_digit") else entry["replace"],
            tuple(str(hint).lower() for hint in entry.get("hints", ())),
        )
        for entry in data["patterns"]
    )
    return replacement, pairs, redactions


def _digit_and_letter(replacement: str) -> Any:
    """Redacts a match that has a digit and a letter, unless it is made of short hyphenated pieces (a uid,
    a slug such as ``jane-doe-12345``), which a random token is not."""

    def replace(match: re.Match[str]) -> str:
        text = match.group(0)
        if not (_HAS_DIGIT.search(text) and _HAS_LETTER.search(text)):
            return text
        if text.count("-") >= 2 and max(map(len, text.split("-"))) < _SLUG_PIECE:
            return text
        return replacement

    return replace


REDACTED, _PAIRS, _REDACTIONS = _load_redactions()


def _redact_pairs(text: str) -> str:
    """``text`` with the value of every pair whose name says secret redacted (a value is read once, so a
    pair inside a redacted value is not looked at again)."""
    parts: list[str] = []
    done = 0  # text[:done] is in parts
    for match in _PAIRS.pair.finditer(text):
        if match.start() < done or not _PAIRS.secret_name.search(match.group(1)):
            continue
        value = _PAIRS.value.match(text, match.end())
        if value is None:
            continue
        parts += (text[done : match.end()], REDACTED)
        done = value.end()
    if not parts:
        return text
    parts.append(text[done:])
    return "".join(parts)


def classify_message(message: str) -> str:
    """The reason of an error message (v3 ``error_message``): the first pattern that matches it."""
    window = message[:ERROR_WINDOW].lower()
    for reason, pattern in V3_PATTERNS:
        if pattern.search(window):
            return reason
    return OTHER


class ErrorReader:
    """Reads the errors of one workspace's runs: cleaned, redacted (patterns and ``secrets``, the
    workspace's API key), cut, classified and shared. Thread-safe (parsing runs in a worker thread)."""

    def __init__(self, secrets: Iterable[str] = (), workspace: str = "") -> None:
        self.workspace = workspace
        forms = sorted(
            {form for secret in secrets if secret for form in secret_forms(secret)}, key=len, reverse=True
        )
        # in any case: an error may upper-case what it quotes
        self._secrets = re.compile("|".join(map(re.escape, forms)), re.IGNORECASE) if forms else None
        self._cache: dict[tuple[int, int, int], RunError] = {}
        self._lock = threading.Lock()
        self._unknown_labels: set[str] = set()
        self._unknown_overflow = False

    def clean(self, text: str) -> str:
        """``text`` made safe to show: valid UTF-8 without control characters, every secret redacted,
        at most ERROR_MAX_CHARS characters (never raises)."""
        return self._redact(*_window(text))

    def _redact(self, window: str, cut: bool) -> str:
        if self._secrets is not None:
            window = self._secrets.sub(REDACTED, window)
        window = _redact_pairs(window)
        lower = window.lower()
        for redaction in _REDACTIONS:
            if not redaction.hints or any(hint in lower for hint in redaction.hints):
                window = redaction.pattern.sub(redaction.replace, window)
        window = _SPACES.sub(" ", window).strip()
        if cut or len(window) > ERROR_MAX_CHARS:
            window = window[: ERROR_MAX_CHARS - 1].rstrip() + ELLIPSIS
        return window

    def v3(self, message: object) -> RunError | None:
        """The error of a v3 run from its ``error_message`` (None when it has none)."""
        if not isinstance(message, str) or not message or message.isspace():
            return None
        return self._cached("", message)

    def v4(self, last_error: object) -> RunError | None:
        """The error of a v4 run from its ``last_error``: ``LABEL: message``, its reason from the label
        (from the message when there is no label). None when it has neither."""
        if not isinstance(last_error, dict):
            return None
        label = _text(last_error.get("label"))
        message = _text(last_error.get("message"))
        if not label.strip() and (not message or message.isspace()):
            return None
        return self._cached(label, message)

    def _cached(self, label: str, message: str) -> RunError:
        label, message = label[: LABEL_MAX_CHARS + 1], message[: ERROR_WINDOW + 1]
        # Keyed by the texts' hashes (SipHash, keyed per process: two texts that collide cannot be crafted),
        # so the cache keeps no raw error text, which may hold a secret, and stays small and fast.
        key = (hash(label), hash(message), len(message))
        found = self._cache.get(key)
        if found is not None:
            return found
        error = self._read(label, message)
        with self._lock:
            if len(self._cache) >= CACHE_SIZE:
                self._cache.clear()
            self._cache[key] = error
        return error

    def _read(self, label: str, message: str) -> RunError:
        wire_label = label.strip().upper()
        reason = OTHER
        if wire_label:
            reason = V4_LABELS.get(wire_label, OTHER)
            if wire_label not in V4_LABELS:
                self._note_unknown(wire_label)
        window, cut = _window(message)
        if not wire_label:
            reason = classify_message(window) if window else OTHER
        # Cleaned apart, so that "LABEL: message" does not read as a name: value pair to redact.
        shown = self.clean(wire_label[:LABEL_MAX_CHARS]) if wire_label else ""
        text = self._redact(window, cut) if window else ""
        if shown and text:
            text = f"{shown}: {text}"
            if len(text) > ERROR_MAX_CHARS:
                text = text[: ERROR_MAX_CHARS - 1].rstrip() + ELLIPSIS
        return RunError(text or shown, reason)

    def _note_unknown(self, label: str) -> None:
        with self._lock:
            if label in self._unknown_labels:
                return
            if len(self._unknown_labels) >= UNKNOWN_LABELS_LOGGED:
                if self._unknown_overflow:
                    return
                self._unknown_overflow = True
                logger.warning(
                    "more unknown v4 error labels: not logged",
                    extra={"workspace": self.workspace, "logged": UNKNOWN_LABELS_LOGGED},
                )
                return
            self._unknown_labels.add(label)
        logger.warning(
            "a v4 run's last_error has a label the exporter does not know; its reason is 'other'",
            extra={"workspace": self.workspace, "label": self.clean(label[:LABEL_MAX_CHARS])},
        )


def _window(text: str) -> tuple[str, bool]:
    """The start of ``text`` that is read, without control characters, and whether it was cut. When it
    was, its last word goes too: it may be the start of a secret the patterns no longer recognise."""
    cut = len(text) > ERROR_WINDOW
    window = text[:ERROR_WINDOW]
    if not (window.isascii() and window.isprintable()):
        window = _OTHER_CONTROLS.sub("", _WHITESPACE_CONTROLS.sub(" ", window))
    if cut:
        window = window[: max(0, window.rfind(" "))]
    return window, cut


def _text(value: object) -> str:
    """A message field as text: a string as it is, anything else (a number, a nested object) not at all."""
    return value if isinstance(value, str) else ""
