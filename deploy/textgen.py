"""What the two generators (deploy/generate.py, grafana/generate.py) share: templates and ``--check``.

Templates are plain text with ``${name}`` placeholders, optionally piped through a filter
(``${guide.warning.meaning|lower_first}``). PromQL and Go templates never contain ``${``, so the
alert expressions and annotations need no escaping. An unknown name is an error, never an empty string.
"""

from __future__ import annotations

import difflib
import re
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import yaml

PLACEHOLDER = re.compile(r"\$\{([A-Za-z_][\w.]*)(?:\|(\w+))?\}")


def sentence(text: str) -> str:
    text = text.strip()
    return text if text.endswith(".") else text + "."


def lower_first(text: str) -> str:
    return text[:1].lower() + text[1:]


FILTERS: dict[str, Callable[[str], str]] = {"sentence": sentence, "lower_first": lower_first}


def fill(template: str, values: Mapping[str, Any]) -> str:
    """``template`` with every ``${name}`` / ``${name|filter}`` replaced from ``values``."""

    def replace(match: re.Match[str]) -> str:
        name, filter_name = match.group(1), match.group(2)
        if name not in values:
            raise KeyError(f"unknown template name ${{{name}}} in {template[:60]!r}")
        value = str(values[name])
        if filter_name:
            value = FILTERS[filter_name](value)
        return value

    return PLACEHOLDER.sub(replace, template)


def load_yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def write_or_check(files: Mapping[Path, str], *, check: bool, root: Path, command: str) -> int:
    """Write the files that changed, or with ``check`` write nothing and report them.

    ``--check`` prints a unified diff of each stale file on stdout and names them on stderr; exit 1 when
    regenerating would change something. A missing file is stale, never skipped.
    """
    stale: list[str] = []
    for path, text in files.items():
        current = path.read_text(encoding="utf-8") if path.exists() else ""
        if path.exists() and current == text:
            continue
        shown = str(path.relative_to(root)) if path.is_relative_to(root) else str(path)
        stale.append(shown)
        if check:
            sys.stdout.writelines(
                difflib.unified_diff(
                    current.splitlines(keepends=True), text.splitlines(keepends=True), shown, "generated"
                )
            )
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
            print(f"wrote {shown}")
    if check and stale:
        print(f"\nOut of date: {', '.join(stale)}. Run: {command}", file=sys.stderr)
        return 1
    return 0
