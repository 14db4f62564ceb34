"""What an API error answer says, as one short safe line: the v4/v1 error body (``error_label``,
``error_scope``, ``message``) or v3's (``message``). Never more than a bounded, sanitised excerpt,
and never a secret the server might echo."""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Final

from exporter.logs import redact
from exporter.text import clean_text

#: Bytes of an error answer read at most (the rest is not read).
ERROR_BODY_MAX: Final = 4096
_FIELDS: Final = (("error_label", 64), ("error_scope", 32), ("message", 200))


def summarize_error_body(body: bytes, secrets: Iterable[str] = ()) -> str:
    """``"LABEL/scope: message"`` (the parts present), or ``""`` when the body is not a JSON object
    with any of them."""
    try:
        payload = json.loads(body[:ERROR_BODY_MAX].decode("utf-8", errors="replace"))
    except (ValueError, RecursionError):
        return ""
    if not isinstance(payload, dict):
        return ""
    secrets = [secret for secret in secrets if len(secret) >= 4]
    parts: dict[str, str] = {}
    for key, limit in _FIELDS:
        value = payload.get(key)
        if isinstance(value, str) and value.strip():
            # Redacted before the cut: a secret cut in two would no longer match.
            parts[key] = clean_text(redact(" ".join(value.split()), secrets), limit)
    head = "/".join(parts[key] for key in ("error_label", "error_scope") if key in parts)
    text = f"{head}: {parts['message']}" if head and "message" in parts else head or parts.get("message", "")
    return redact(text, secrets)
