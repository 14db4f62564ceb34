"""A YAML loader for untrusted files: bounded nesting, bounded alias expansion, bounded scalars.

PyYAML's safe loader shares aliased nodes, so a 500-byte file can stand for billions of values
("billion laughs"); anything that walks or prints them then runs for ever. Here the expanded size
of the document is counted on the node graph before anything is built from it.
"""

from __future__ import annotations

from typing import Any

import yaml
from yaml.constructor import ConstructorError
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

MAX_DEPTH = 50
MAX_EXPANDED_NODES = 100_000
MAX_NUMBER_DIGITS = 100


class YamlRefused(ValueError):
    """The text is not YAML we accept; the message is one line, safe to show."""


class _BoundedLoader(yaml.SafeLoader):
    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._depth = 0

    def compose_node(self, parent: Node | None, index: int) -> Node | None:
        self._depth += 1
        try:
            if self._depth > MAX_DEPTH:
                event = self.peek_event()  # type: ignore[no-untyped-call]
                raise YamlRefused(
                    f"nested deeper than {MAX_DEPTH} levels{_at(getattr(event, 'start_mark', None))}"
                )
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1


def _bounded_number(kind: str) -> Any:
    base = yaml.SafeLoader.yaml_constructors[f"tag:yaml.org,2002:{kind}"]

    def construct(loader: yaml.SafeLoader, node: Node) -> Any:
        if isinstance(node, ScalarNode) and len(str(node.value)) > MAX_NUMBER_DIGITS:
            raise ConstructorError(
                None, None, f"a number longer than {MAX_NUMBER_DIGITS} characters", node.start_mark
            )
        return base(loader, node)

    return construct


for _kind in ("int", "float"):
    _BoundedLoader.add_constructor(f"tag:yaml.org,2002:{_kind}", _bounded_number(_kind))


def _at(mark: Any) -> str:
    """`` at line L, column C`` of a YAML mark, or "" without one."""
    return f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""


def _expanded_size(root: Node) -> int:
    """How many nodes the document stands for once every alias is expanded (capped)."""
    sizes: dict[int, int] = {}
    in_progress: set[int] = set()

    def size(node: Node) -> int:
        key = id(node)
        if key in sizes:
            return sizes[key]
        if key in in_progress:
            raise YamlRefused("a YAML alias refers to a node that contains it")
        in_progress.add(key)
        total = 1
        if isinstance(node, SequenceNode):
            total += sum(size(child) for child in node.value)
        elif isinstance(node, MappingNode):
            total += sum(size(k) + size(v) for k, v in node.value)
        in_progress.discard(key)
        sizes[key] = min(total, MAX_EXPANDED_NODES + 1)
        return sizes[key]

    return size(root)


def safe_load_bounded(text: str) -> object:
    """Like ``yaml.safe_load`` but refusing documents that are too deep, too big once aliases are
    expanded, or that hold over-long numbers. Raises :class:`YamlRefused` with a one-line reason."""
    loader: _BoundedLoader | None = None
    try:
        loader = _BoundedLoader(text)  # the reader refuses non-printable characters right here
        node = loader.get_single_node()
        if node is None:
            return None
        if _expanded_size(node) > MAX_EXPANDED_NODES:
            raise YamlRefused(f"expands to more than {MAX_EXPANDED_NODES} values (YAML aliases are limited)")
        return loader.construct_document(node)
    except yaml.YAMLError as error:
        where = _at(getattr(error, "problem_mark", None))
        problem = getattr(error, "problem", None) or getattr(error, "reason", None) or "invalid YAML"
        raise YamlRefused(one_line(f"{problem}{where}")) from None
    except (ValueError, TypeError, OverflowError, RecursionError) as error:
        if isinstance(error, YamlRefused):
            raise
        # e.g. a date such as 2024-13-45, which the resolver takes for a timestamp
        raise YamlRefused(f"a value cannot be read ({type(error).__name__})") from None
    finally:
        if loader is not None:
            loader.dispose()


def one_line(text: str) -> str:
    """``text`` with every non-printable character escaped: an error is always one line."""
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else c.encode("unicode_escape").decode("ascii") for c in text)
