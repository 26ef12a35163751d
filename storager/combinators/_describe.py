"""describe(store): the tree of a combinator as indented text or as a Mermaid diagram."""

from __future__ import annotations

from typing import cast

from storager._async_protocols import AsyncStorager
from storager._protocols import Storager
from storager.combinators._base import Wrapper, capabilities_of, is_node, label

__all__ = ["describe"]


def _caps(store: object) -> str:
    from storager.aio.combinators._base import async_capabilities_of  # the async side needs us

    names = [c.__name__ for c in capabilities_of(store) | async_capabilities_of(store)]
    order = ["Copier", "Mover", "Segmenter", "Appender", "Direr", "Linker", "Presigner"]
    return ",".join(sorted(names, key=order.index))


def describe(store: Storager | AsyncStorager, format: str = "text") -> str:
    """Return the tree of ``store`` (sync or async): ``format="text"`` or ``"mermaid"``.

    Each node shows its label and, in brackets, the capability protocols it has.

    Raises:
        ValueError: An unknown format.
    """
    if format == "text":
        lines = [f"{label(store)} [{_caps(store)}]"]

        def walk(node: object, indent: str) -> None:
            if not is_node(node):
                return
            kids = list(cast(Wrapper, node).children().items())
            for i, (name, child) in enumerate(kids):
                last = i == len(kids) - 1
                lines.append(
                    f"{indent}{'└── ' if last else '├── '}{name}: {label(child)} [{_caps(child)}]"
                )
                walk(child, indent + ("    " if last else "│   "))

        walk(store, "")
        return "\n".join(lines)
    if format == "mermaid":
        out = ["graph TD"]
        ids: dict[int, str] = {}

        def node_id(node: object) -> str:
            if id(node) not in ids:
                ids[id(node)] = f"n{len(ids)}"
                text = f"{label(node)}<br/>{_caps(node) or '-'}".replace('"', "'")
                out.append(f'    {ids[id(node)]}["{text}"]')
            return ids[id(node)]

        def walk_m(node: object) -> None:
            parent = node_id(node)
            if is_node(node):
                for name, child in cast(Wrapper, node).children().items():
                    child_id = node_id(child)
                    out.append(f"    {parent} -->|{name}| {child_id}")
                    walk_m(child)

        walk_m(store)
        return "\n".join(out)
    raise ValueError(f"format must be 'text' or 'mermaid', not {format!r}")
