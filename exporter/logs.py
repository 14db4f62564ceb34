"""Structured logs (logfmt or JSON) with every configured secret masked, whatever logs it."""

from __future__ import annotations

import json
import logging
import sys
import time
from collections.abc import Iterable
from urllib.parse import quote

REDACTED = "<redacted>"
# Attributes every LogRecord has; anything else was passed with extra= and is logged as a field.
_STANDARD_ATTRIBUTES = frozenset(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {"message", "asctime"}


def secret_forms(secret: str) -> set[str]:
    """Every spelling of ``secret`` that error text, JSON or repr() may carry: raw, JSON-escaped
    (ASCII or not, and escaped twice), backslash-escaped, Python repr of str and bytes, URL-quoted."""
    forms = {secret}
    for escaped in (
        json.dumps(secret)[1:-1],
        json.dumps(secret, ensure_ascii=False)[1:-1],
        repr(secret)[1:-1],
        repr(secret.encode())[2:-1],
        secret.encode("unicode_escape").decode("ascii"),
        quote(secret, safe=""),
    ):
        forms.add(escaped)
        forms.add(json.dumps(escaped)[1:-1])
    return {form for form in forms if form}


def _all_forms(secrets: Iterable[str]) -> list[str]:
    forms: set[str] = set()
    for secret in secrets:
        if secret:
            forms |= secret_forms(secret)
    return sorted(forms, key=len, reverse=True)


def _replace_forms(text: str, forms: Iterable[str]) -> str:
    for form in forms:
        text = text.replace(form, REDACTED)
    return text


def redact(text: str, secrets: Iterable[str]) -> str:
    """``text`` with every form of every secret (see :func:`secret_forms`) replaced by <redacted>."""
    return _replace_forms(text, _all_forms(secrets))


class _Formatter(logging.Formatter):
    def __init__(self, secrets: Iterable[str], as_json: bool) -> None:
        super().__init__()
        self.forms = _all_forms(secrets)
        self.as_json = as_json

    def _mask(self, text: str) -> str:
        return _replace_forms(text, self.forms)

    def format(self, record: logging.LogRecord) -> str:
        fields: dict[str, object] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in _STANDARD_ATTRIBUTES and not key.startswith("_"):
                fields[key] = value
        if record.exc_info:
            fields["error"] = self.formatException(record.exc_info)
        if self.as_json:
            return self._mask(json.dumps(fields, default=str))
        return self._mask(" ".join(f"{key}={_logfmt_value(value)}" for key, value in fields.items()))


def _logfmt_value(value: object) -> str:
    text = str(value)
    if text and not any(c in text for c in ' ="\\\n') and text.isprintable():
        return text
    return json.dumps(text)


def setup_logging(level: str, log_format: str, secrets: Iterable[str] = ()) -> None:
    """Send every logger's records to stderr in ``log_format`` at ``level``, masking ``secrets``."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_Formatter(secrets, as_json=log_format == "json"))
    root = logging.getLogger()
    for existing in list(root.handlers):
        root.removeHandler(existing)
    root.addHandler(handler)
    root.setLevel(level.upper())
    # Per-request lines (scrapes served, API requests made) are only for debugging: the metrics count them.
    chatty = logging.DEBUG if level == "debug" else logging.WARNING
    for name in ("aiohttp.access", "httpx", "httpcore"):
        logging.getLogger(name).setLevel(chatty)
