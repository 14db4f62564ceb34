"""Text from the API made safe to export: valid UTF-8, no control characters, bounded length."""

from __future__ import annotations

import re
from typing import Final

#: Longest name kept (in characters); longer names end with an ellipsis.
NAME_MAX_CHARS: Final = 256
#: Longest identifier accepted; a longer uid is not an identifier.
UID_MAX_CHARS: Final = 200
REPLACEMENT: Final = "\ufffd"
ELLIPSIS: Final = "\u2026"

# Lone surrogates (valid JSON escapes, not encodable as UTF-8) and C0/DEL/C1 control characters.
_UNSAFE: Final = re.compile("[\x00-\x1f\x7f-\x9f\ud800-\udfff]")
#: Characters that draw nothing or reorder what follows: every format character (Unicode category Cf:
#: bidi overrides and isolates, zero-width spaces and joiners, the BOM, tag characters), the line and
#: paragraph separators, the combining grapheme joiner and the Hangul fillers. Labels keep them (they are
#: the API's bytes); a page shows each as an escape, so ``evil\u202egnp.exe`` cannot pass for another name.
INVISIBLE: Final = re.compile(
    "[\u00ad\u034f\u0600-\u0605\u061c\u06dd\u070f\u0890\u0891\u08e2\u115f\u1160\u180e"
    "\u200b-\u200f\u2028-\u202e\u2060-\u2064\u2066-\u206f\u3164\ufeff\uffa0\ufff9-\ufffb"
    "\U000110bd\U000110cd\U00013430-\U0001343f\U0001bca0-\U0001bca3\U0001d173-\U0001d17a"
    "\U000e0001\U000e0020-\U000e007f]"
)


def clean_text(value: str, limit: int = NAME_MAX_CHARS) -> str:
    """``value`` with every unencodable or control character replaced by U+FFFD, cut to ``limit``
    characters (the last one an ellipsis when it was cut)."""
    if len(value) > limit:
        value = value[: limit - 1] + ELLIPSIS
    if value.isascii() and value.isprintable():  # the common case: nothing to replace
        return value
    return _UNSAFE.sub(REPLACEMENT, value)


#: A uid the exporter puts in a request path: letters, digits, ``_``, ``-``, ``.`` and ``~`` (URL
#: unreserved characters), not starting with a dot (no ``.`` or ``..`` segment).
_PLAIN: Final = re.compile(r"[A-Za-z0-9_~-][A-Za-z0-9._~-]*")


def plain_identifier(uid: str) -> bool:
    """Whether ``uid`` may name a path segment: nothing a server could read as path syntax."""
    return _PLAIN.fullmatch(uid) is not None


def clean_identifier(value: object) -> str | None:
    """``value`` as an identifier (a uid), or ``None`` when it is not one: a non-empty, non-blank
    string of at most ``UID_MAX_CHARS`` characters with no control or unencodable character, or an
    integer (JSON numbers without a fraction) whose digits fit that length."""
    if isinstance(value, int) and not isinstance(value, bool):
        # Only short integers: converting a huge one to text is slow (and may raise past 4300 digits).
        if -(10**UID_MAX_CHARS) < value < 10**UID_MAX_CHARS:
            text = str(value)
            return text if len(text) <= UID_MAX_CHARS else None
        return None
    if not isinstance(value, str) or not value or len(value) > UID_MAX_CHARS:
        return None
    if value.isascii() and value.isprintable():
        return value if not value.isspace() else None
    if value.isspace() or _UNSAFE.search(value):
        return None
    return value


def invisible_escape(char: str) -> str:
    """How a page shows an invisible character: ``\\u202e`` (``\\U000e0041`` past the BMP)."""
    code = ord(char)
    return f"\\u{code:04x}" if code <= 0xFFFF else f"\\U{code:08x}"
