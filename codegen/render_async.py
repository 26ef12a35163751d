"""Render the async side from the same operations.toml as the sync side.

Two modules come out:

- ``storager/_async_protocols.py``: ``AsyncStorager`` and one async capability protocol
  per sync one (``AsyncCopier``...), with the same operations, parameters, docstrings
  and contracts; a coroutine per operation, except the listings, which return an
  async iterator at once (``async for o in store.list(...)``).
- ``storager/aio/_generated.py``: the async view of a sync store, one mixin per
  capability, each operation handed to the view's bounded thread pool.
"""

from __future__ import annotations

from codegen.model import CAPABILITIES, Model, Operation
from codegen.render import HEADER, PARAM_ANNOTATION, _doc, _wrap

#: The parameter annotations that differ on the async side.
ASYNC_PARAM = {**PARAM_ANNOTATION, "data": "AsyncWriteData"}


def async_name(protocol: str) -> str:
    """Return the async twin's name of a sync protocol (``Copier`` -> ``AsyncCopier``)."""
    return f"Async{protocol}"


def _returns(op: Operation) -> str:
    if op.returns.startswith("Iterator["):
        return "Async" + op.returns
    if op.returns == "BinaryIO":
        return "AsyncReader"
    return op.returns


def _is_listing(op: Operation) -> bool:
    return op.returns.startswith("Iterator[")


def _params(op: Operation) -> str:
    out = []
    for param in op.params:
        default = ' = ""' if param.kind == "dir" else ""
        out.append(f"{param.name}: {ASYNC_PARAM[param.kind]}{default}")
    return ", ".join(["self", *out, "**pairs: Any"])


def _signature(op: Operation) -> str:
    keyword = "def" if _is_listing(op) else "async def"
    return f"    {keyword} {op.name}({_params(op)}) -> {_returns(op)}:\n"


def _protocol_doc(op: Operation) -> str:
    lines = _wrap(op.description, 76)
    if _is_listing(op):
        lines += ["", "Returns an async iterator at once; errors surface on the first item."]
    if op.contract:
        lines += ["", "Contract:"]
        for line in op.contract:
            lines.extend(_wrap(line, 76, "    "))
    return _doc("\n".join(lines), "        ")


def _protocols_in_order(model: Model) -> list[str]:
    seen = ["Storager"]
    for op in model.operations.values():
        if op.protocol not in seen:
            seen.append(op.protocol)
    return seen


# -- storager/_async_protocols.py --------------------------------------------------------


def render_async_protocols(model: Model) -> str:
    protocols = _protocols_in_order(model)
    names = sorted(async_name(p) for p in protocols)
    out = [HEADER.format(sources="definitions/operations.toml")]
    out.append(
        '"""The async twins of the store protocols: ``AsyncStorager`` and ``AsyncCopier``...\n\n'
        "Same operations, parameters, pairs, errors and contracts as the sync protocols in\n"
        "``storager/_protocols.py``, generated from the same operations.toml. ``isinstance``\n"
        "is the same nominal (MRO) check as on the sync side: an async store is an\n"
        "``AsyncCopier`` when its class inherits ``AsyncCopier``.\n"
        '"""\n\n'
    )
    out.append("from __future__ import annotations\n\n")
    out.append("from collections.abc import AsyncIterator, Mapping, Sequence\n")
    out.append("from types import TracebackType\n")
    out.append("from typing import Any, Protocol, Self, runtime_checkable\n\n")
    out.append("from storager._async_types import AsyncReader, AsyncWriteData\n")
    out.append("from storager._object import Multipart, Object, Part, StorageMeta\n")
    sync_names = ", ".join(sorted(["_CapabilityMeta", *protocols]))
    out.append(f"from storager._protocols import {sync_names}\n\n")
    exported = ["ASYNC_CAPABILITIES", "ASYNC_TWIN", *names]
    inner = "".join(f'    "{n}",\n' for n in exported)
    out.append(f"__all__ = [\n{inner}]\n\n")
    for protocol in protocols:
        out.append(_render_protocol(model, protocol))
    out.append(
        "\n#: Every async capability protocol by the name service.toml uses for its sync twin.\n"
    )
    out.append("ASYNC_CAPABILITIES: Mapping[str, type] = {\n")
    for protocol in protocols[1:]:
        out.append(f'    "{protocol}": {async_name(protocol)},\n')
    out.append("}\n\n")
    out.append("#: The async twin of every sync protocol.\n")
    out.append("ASYNC_TWIN: Mapping[type, type] = {\n")
    for protocol in protocols:
        out.append(f"    {protocol}: {async_name(protocol)},\n")
    out.append("}\n")
    return "".join(out)


def _render_protocol(model: Model, protocol: str) -> str:
    name = async_name(protocol)
    out = ["\n\n@runtime_checkable\n"]
    out.append(f"class {name}(Protocol, metaclass=_CapabilityMeta):\n")
    if protocol == "Storager":
        out.append(
            '    """The operations every async store has: the twin of :class:`Storager`.\n\n'
            "    Every operation that may wait is a coroutine; ``list`` returns an async\n"
            "    iterator. Pairs, paths and errors are those of the sync protocol.\n"
            '    """\n\n'
        )
        out.append(
            "    def metadata(self) -> StorageMeta:\n"
            '        """Return the store\'s service, name, work_dir and capability (no I/O)."""\n'
            "        ...\n\n"
        )
    else:
        out.append(f'    """The async twin of :class:`{protocol}`."""\n\n')
    for op in model.operations.values():
        if op.protocol != protocol:
            continue
        out.append(_signature(op) + _protocol_doc(op) + "        ...\n\n")
    if protocol == "Storager":
        out.append(
            "    async def close(self) -> None:\n"
            '        """Release connections, threads and other resources; closing twice is fine.\n'
            '        """\n'
            "        ...\n\n"
            "    async def __aenter__(self) -> Self:\n"
            '        """Return the store; ``async with storager.open_async(url) as s:`` '
            'closes it."""\n'
            "        return self\n\n"
            "    async def __aexit__(\n"
            "        self,\n"
            "        exc_type: type[BaseException] | None,\n"
            "        exc: BaseException | None,\n"
            "        tb: TracebackType | None,\n"
            "    ) -> None:\n"
            '        """Close the store."""\n'
            "        await self.close()\n"
        )
    return "".join(out).rstrip("\n") + "\n"


# -- storager/aio/_generated.py ----------------------------------------------------------


def render_async_view(model: Model) -> str:
    protocols = _protocols_in_order(model)
    out = [HEADER.format(sources="definitions/operations.toml")]
    out.append(
        '"""The async view of a sync store: every operation runs on the view\'s thread pool.\n\n'
        "One mixin per capability protocol; ``storager.aio._view`` picks the mixins the sync\n"
        "store's capabilities allow, so the view is an ``AsyncCopier`` exactly when the\n"
        "store is a ``Copier``.\n"
        '"""\n\n'
    )
    out.append("from __future__ import annotations\n\n")
    out.append("from collections.abc import AsyncIterator, Mapping, Sequence\n")
    out.append("from typing import Any, cast\n\n")
    async_names = ", ".join(sorted(async_name(p) for p in protocols))
    out.append(f"from storager._async_protocols import {async_names}\n")
    out.append("from storager._async_types import AsyncReader, AsyncWriteData\n")
    out.append("from storager._object import Multipart, Object, Part\n")
    sync_names = ", ".join(sorted(p for p in protocols if p != "Storager"))
    out.append(f"from storager._protocols import {sync_names}\n")
    out.append("from storager.aio._bridge import ViewBase\n\n")
    mixins = [f"AsyncView{p}" for p in protocols[1:]]
    inner = "".join(f'    "{n}",\n' for n in ["VIEW_MIXINS", *sorted(["AsyncViewCore", *mixins])])
    out.append(f"__all__ = [\n{inner}]\n\n")
    for protocol in protocols:
        out.append(_render_view_class(model, protocol))
    out.append("\n#: The async view's mixin for each sync capability protocol.\n")
    out.append("VIEW_MIXINS: Mapping[type, type] = {\n")
    for protocol in protocols[1:]:
        out.append(f"    {protocol}: AsyncView{protocol},\n")
    out.append("}\n")
    return "".join(out)


def _render_view_class(model: Model, protocol: str) -> str:
    if protocol == "Storager":
        head = "\n\nclass AsyncViewCore(ViewBase, AsyncStorager):\n"
        head += '    """The core operations of the async view."""\n'
        store = "self._sync"
    else:
        if protocol not in CAPABILITIES:  # pragma: no cover - the model refuses it first
            raise ValueError(f"unknown protocol {protocol}")
        head = f"\n\nclass AsyncView{protocol}(AsyncViewCore, {async_name(protocol)}):\n"
        head += f'    """The async view of a :class:`{protocol}`."""\n'
        store = f"cast({protocol}, self._sync)"
    out = [head]
    for op in model.operations.values():
        if op.protocol != protocol:
            continue
        out.append("\n" + _signature(op))
        out.append(f'        """Run ``{op.name}`` on the thread pool; see the protocol."""\n')
        args = [p.name for p in op.params]
        fn = f"{store}.{op.name}"
        if _is_listing(op):
            call = f"self._iterate({fn}, {', '.join(args)}, **pairs)"
            out.append(f"        return {call}\n")
            continue
        if op.returns == "BinaryIO":
            call = f"self._open_reader({fn}, {', '.join(args)}, **pairs)"
        elif op.params[-1].kind == "data":
            if any(p.kind == "data" for p in op.params[:-1]):  # pragma: no cover
                raise ValueError(f"{op.name}: data must be the last parameter")
            lead = "".join(f", {a}" for a in args[:-1])
            call = f"self._run_writing({fn}, data{lead}, **pairs)"
        else:
            call = f"self._run({fn}, {', '.join(args)}, **pairs)"
        out.append(f"        return await {call}\n")
    return "".join(out)
