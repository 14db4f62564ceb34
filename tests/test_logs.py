"""Secrets are masked in every spelling a library error, JSON or repr() can give them."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest

from exporter.logs import REDACTED, redact, setup_logging

# Printable ASCII, with the characters that escaping changes: quote, apostrophe, backslash.
SECRET = "sk_\"quo\\te'd_0123456789abcdef"


@pytest.mark.parametrize(
    "spelling",
    [
        SECRET,
        json.dumps(SECRET),
        json.dumps(json.dumps(SECRET)),
        repr(SECRET),
        repr(SECRET.encode()),
        repr({"authorization": SECRET}),
        repr([(b"x-api-key", SECRET.encode())]),
        SECRET.encode("unicode_escape").decode(),
    ],
)
def test_redact_masks_every_spelling(spelling: str) -> None:
    text = f"Illegal header value {spelling} in request"
    masked = redact(text, [SECRET])
    assert REDACTED in masked
    for fragment in ("0123456789abcdef", "quo"):
        assert fragment not in masked, masked


def test_redact_leaves_other_text_alone() -> None:
    assert redact("nothing to see", [SECRET, ""]) == "nothing to see"


@pytest.fixture
def captured() -> Iterator[io.StringIO]:
    stream = io.StringIO()
    root = logging.getLogger()
    saved = list(root.handlers), root.level
    yield stream
    root.handlers[:] = saved[0]
    root.setLevel(saved[1])


@pytest.mark.parametrize("log_format", ["logfmt", "json"])
def test_log_lines_mask_escaped_secrets(captured: io.StringIO, log_format: str) -> None:
    setup_logging("info", log_format, [SECRET])
    handler = logging.getLogger().handlers[0]
    assert isinstance(handler, logging.StreamHandler)
    handler.setStream(captured)
    logging.getLogger("t").warning("poll failed", extra={"error": repr({"x-api-key": SECRET})})
    try:
        raise ValueError(f"bad header {SECRET!r}")
    except ValueError:
        logging.getLogger("t").exception("crashed")
    output = captured.getvalue()
    assert output.count(REDACTED) >= 2
    assert "0123456789abcdef" not in output
