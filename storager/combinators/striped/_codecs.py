"""Codecs: how one stripe of an object becomes fragments, and back.

A codec turns a stripe (``data`` chunks' worth of the object) into ``total``
fragments, any ``data`` of which rebuild it:

- :class:`Replicas` (``n`` whole copies; any one rebuilds the stripe),
- :class:`Stripes` (RAID-0: the stripe cut in ``width`` pieces, all needed),
- :class:`ReedSolomon` (``data`` + ``parity`` fragments on ISA-L, called directly,
  or on pyeclib; any ``data`` of them rebuild the stripe).

Codecs never check integrity: pyeclib decodes a corrupted fragment to wrong bytes
without raising. The reader verifies every fragment against the digest recorded in
the manifest before it hands it to ``decode`` and treats a mismatch as an erasure.
``decode`` takes a fresh mapping each call and never keeps or reorders the caller's
fragments (zfec's decoder reorders its arguments in place; pyeclib's does not).
"""

from __future__ import annotations

import threading
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from typing import Any

from storager._errors import InvalidArgumentError, UnexpectedError
from storager.combinators.striped._isal import (
    IsaL,
    check_equal_lengths,
    decoding_rows,
    load_isal,
    rows_of,
)

__all__ = ["Codec", "ReedSolomon", "Replicas", "Stripes", "codec_from_spec"]

Buffer = bytes | bytearray | memoryview
#: ``check(index, fragment)``: whether a rebuilt fragment is the one the manifest recorded.
Check = Callable[[int, Buffer], bool]
#: ``alloc(size)``: a buffer of ``size`` bytes to code a fragment into (any content).
Alloc = Callable[[int], bytearray]


def _positive(name: str, value: object, minimum: int) -> int:
    if type(value) is not int or value < minimum:
        raise InvalidArgumentError(
            "new", "striped", "", f"{name} must be an int >= {minimum}, not {value!r}"
        )
    return value


class Codec(ABC):
    """Turns a stripe into ``total`` fragments, any ``data`` of which rebuild it.

    Attributes:
        data: How many fragments rebuild a stripe (a stripe holds ``data`` chunks).
        total: How many fragments a stripe is written as; each lands on its own
            backend, so a store needs at least ``total`` backends.
    """

    data: int
    total: int
    #: Whether coding (``encode``, ``rebuild_into``) runs with the GIL released, so
    #: two threads can code halves of a stripe at once (``_halves``).
    codes_off_the_gil = False

    @property
    def parity(self) -> int:
        """How many fragments of a stripe may be lost while it stays readable."""
        return self.total - self.data

    @abstractmethod
    def spec(self) -> dict[str, Any]:
        """Return the JSON description the manifest records (see :func:`codec_from_spec`)."""

    @abstractmethod
    def label(self) -> str:
        """Return a short name for ``describe`` and errors: ``rs(4,2)``, ``replicas(3)``."""

    @abstractmethod
    def encode(self, stripe: Buffer, alloc: Alloc | None = None) -> list[Buffer]:
        """Return the ``total`` fragments of ``stripe``, fragment ``i`` at index ``i``.

        ``alloc(size)``, where given, is where a codec takes the buffers it codes new
        fragments into (a writer's ``BufferPool``); otherwise it allocates them.
        """

    @abstractmethod
    def decode(self, fragments: Mapping[int, Buffer], length: int) -> bytes:
        """Rebuild a stripe of ``length`` bytes from at least ``data`` verified fragments.

        Raises:
            UnexpectedError: Too few fragments, or the library rebuilt another length.
        """

    def pieces(
        self, fragments: Mapping[int, Buffer], length: int, check: Check | None = None
    ) -> list[Buffer]:
        """Return the stripe of ``length`` bytes as consecutive pieces, joined by the caller.

        Where the code is systematic and the data fragments are all given, the pieces
        are views into them (no decode, no copy); where a codec can rebuild just the
        missing data fragments (``ReedSolomon``), it does, and ``check(index,
        fragment)`` (the recorded digest, where there is one) must accept each
        rebuilt fragment; otherwise one piece, ``decode``'s.

        Raises:
            UnexpectedError: As ``decode``.
        """
        return [self.decode(fragments, length)]

    def block(self, length: int) -> int | None:
        """Return how many bytes of a stripe of ``length`` each data fragment holds, or None.

        A number ``b`` means data fragment ``i`` is exactly the stripe's bytes
        ``[i * b, (i + 1) * b)`` (the last one may be shorter, or zero-padded to ``b``),
        with nothing before them: a reader may read such a fragment straight into the
        caller's buffer. None (the default) means fragments have their own layout
        (pyeclib's header).
        """
        return None

    def rebuild_into(
        self, fragments: Mapping[int, Buffer], outputs: Mapping[int, memoryview]
    ) -> bool:
        """Rebuild data fragments into ``outputs`` (index -> a buffer of its length).

        ``fragments`` are at least ``data`` others, checked, of the same length.
        Returns False where the codec cannot rebuild in place (the caller rebuilds
        the stripe another way); the default cannot.
        """
        return False

    def bind(self, backends: int) -> Codec:
        """Return the codec for a store of ``backends`` backends (Stripes() takes them all)."""
        return self

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.label()}>"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Codec) and self.spec() == other.spec()

    def __hash__(self) -> int:
        return hash(self.label())


def _too_few(codec: Codec, got: int) -> UnexpectedError:
    return UnexpectedError(
        "decode", "striped", "", f"{codec.label()} needs {codec.data} fragments, got {got}"
    )


class Replicas(Codec):
    """``n`` whole copies of every chunk, on ``n`` distinct backends.

    Args:
        n: How many copies; any one of them serves a read, so ``n - 1`` backends
            may be lost.
    """

    def __init__(self, n: int) -> None:
        self.total = _positive("Replicas n", n, 1)
        self.data = 1

    def spec(self) -> dict[str, Any]:
        return {"kind": "replicas", "n": self.total}

    def label(self) -> str:
        return f"replicas({self.total})"

    def encode(self, stripe: Buffer, alloc: Alloc | None = None) -> list[Buffer]:
        # The same object n times: no copy; each backend writes it.
        return [stripe] * self.total

    def block(self, length: int) -> int | None:
        return length

    def rebuild_into(
        self, fragments: Mapping[int, Buffer], outputs: Mapping[int, memoryview]
    ) -> bool:
        for fragment in fragments.values():
            source = memoryview(fragment).cast("B")
            if any(out.readonly or len(out) != len(source) for out in outputs.values()):
                return False
            for out in outputs.values():
                out[:] = source
            return True
        return False

    def decode(self, fragments: Mapping[int, Buffer], length: int) -> bytes:
        return bytes(self.pieces(fragments, length)[0])

    def pieces(
        self, fragments: Mapping[int, Buffer], length: int, check: Check | None = None
    ) -> list[Buffer]:
        for fragment in fragments.values():
            if len(fragment) != length:
                raise UnexpectedError(
                    "decode", "striped", "", f"replica of {len(fragment)} bytes, not {length}"
                )
            return [fragment]
        raise _too_few(self, 0)


class Stripes(Codec):
    """Plain striping (RAID-0): each stripe cut in ``width`` pieces, every one needed.

    Args:
        width: How many backends a stripe spreads over; ``None`` (the default) takes
            every backend of the store. Losing any one backend loses the object.
    """

    def __init__(self, width: int | None = None) -> None:
        self.width = None if width is None else _positive("Stripes width", width, 1)
        self.data = self.total = self.width or 1

    def bind(self, backends: int) -> Codec:
        return self if self.width is not None else Stripes(backends)

    def spec(self) -> dict[str, Any]:
        return {"kind": "stripes", "width": self.width}

    def label(self) -> str:
        return f"stripes({self.width or 'all'})"

    def _piece(self, length: int) -> int:
        return -(-length // self.data) if length else 0

    def block(self, length: int) -> int | None:
        return self._piece(length)

    def encode(self, stripe: Buffer, alloc: Alloc | None = None) -> list[Buffer]:
        view = memoryview(stripe).cast("B")
        piece = self._piece(len(view))
        return [view[i * piece : (i + 1) * piece] for i in range(self.data)]

    def decode(self, fragments: Mapping[int, Buffer], length: int) -> bytes:
        return b"".join(self.pieces(fragments, length))

    def pieces(
        self, fragments: Mapping[int, Buffer], length: int, check: Check | None = None
    ) -> list[Buffer]:
        if len(fragments) < self.data or any(i not in fragments for i in range(self.data)):
            raise _too_few(self, len(fragments))
        pieces = [fragments[i] for i in range(self.data)]
        joined = sum(len(p) for p in pieces)
        if joined != length:
            raise UnexpectedError(
                "decode", "striped", "", f"pieces join to {joined} bytes, not {length}"
            )
        return pieces


class ReedSolomon(Codec):
    """Reed-Solomon erasure coding: ``data`` + ``parity`` fragments, any ``data`` rebuild.

    Two libraries, both from ``pip install 'storager[striped]'`` (pyeclib's wheel
    bundles liberasurecode and ISA-L):

    - ``"isa-l"`` (the default): ISA-L called directly (``_isal.py``), a Cauchy
      matrix, fragments without a header; data fragments are views of the stripe and
      the parity is coded with the GIL released. ``data + parity`` at most 256 (the
      field has 256 elements). Reading an object whose data fragments are all there
      needs no library at all.
    - ``"pyeclib"``: pyeclib's ``ECDriver`` with ``ec_type``; each fragment carries
      pyeclib's 80-byte header. Objects written this way stay readable whatever the
      store's codec: the manifest names the library.

    Args:
        data: Data fragments per stripe (a stripe holds ``data`` chunks).
        parity: Parity fragments per stripe: how many backends may be lost.
        library: ``"isa-l"`` or ``"pyeclib"``; None: ISA-L, or pyeclib where
            ``ec_type`` is given.
        ec_type: pyeclib's liberasurecode backend (pyeclib only; default
            ``isa_l_rs_vand``).

    Raises:
        InvalidArgumentError: A count out of range, an unknown library, or the
            library missing or refusing the parameters.
    """

    def __init__(
        self,
        data: int,
        parity: int,
        *,
        library: str | None = None,
        ec_type: str | None = None,
        _lazy: bool = False,
    ) -> None:
        self.data = _positive("ReedSolomon data", data, 1)
        self.total = self.data + _positive("ReedSolomon parity", parity, 1)
        if library is None:
            library = PYECLIB if ec_type is not None else ISA_L
        if library not in (ISA_L, PYECLIB):
            raise InvalidArgumentError(
                "new",
                "striped",
                "",
                f"ReedSolomon library must be 'isa-l' or 'pyeclib', not {library!r}",
            )
        if library == ISA_L and self.total > _ISA_L_MAX:
            raise InvalidArgumentError(
                "new",
                "striped",
                "",
                f"ReedSolomon on ISA-L takes data + parity <= {_ISA_L_MAX}, not {self.total}",
            )
        self.library = library
        self.codes_off_the_gil = library == ISA_L  # ctypes lets go of it; pyeclib not
        self.ec_type = ec_type or "isa_l_rs_vand"
        # _lazy (for reading a manifest): load ISA-L when a fragment must be coded.
        self._engine: _IsaLEngine | _PyECLibEngine = (
            _IsaLEngine(self, eager=not _lazy) if library == ISA_L else _PyECLibEngine(self)
        )

    def spec(self) -> dict[str, Any]:
        if self.library == ISA_L:
            return {
                "kind": "reed_solomon",
                "data": self.data,
                "parity": self.parity,
                "library": ISA_L,
                "matrix": "cauchy",
            }
        return {
            "kind": "reed_solomon",
            "data": self.data,
            "parity": self.parity,
            "library": PYECLIB,
            "ec_type": self.ec_type,
        }

    def label(self) -> str:
        return f"rs({self.data},{self.parity})"

    def encode(self, stripe: Buffer, alloc: Alloc | None = None) -> list[Buffer]:
        return self._engine.encode(stripe, alloc)

    def block(self, length: int) -> int | None:
        return -(-length // self.data) if self.library == ISA_L else None

    def rebuild_into(
        self, fragments: Mapping[int, Buffer], outputs: Mapping[int, memoryview]
    ) -> bool:
        if isinstance(self._engine, _IsaLEngine):
            return self._engine.rebuild_into(fragments, outputs)
        return False

    def pieces(
        self, fragments: Mapping[int, Buffer], length: int, check: Check | None = None
    ) -> list[Buffer]:
        return self._engine.pieces(fragments, length, check)

    def decode(self, fragments: Mapping[int, Buffer], length: int) -> bytes:
        return self._engine.decode(fragments, length)


ISA_L = "isa-l"
PYECLIB = "pyeclib"
#: Fragments a Cauchy matrix over GF(2^8) can number.
_ISA_L_MAX = 256


class _IsaLEngine:
    """ReedSolomon on ISA-L directly (``_isal.py``): no headers, no copies of data fragments."""

    def __init__(self, codec: ReedSolomon, *, eager: bool) -> None:
        self._codec = codec
        self._loaded: tuple[IsaL, bytes, bytes] | None = None
        self._lock = threading.Lock()
        if eager:
            self._lib()

    def _lib(self) -> tuple[IsaL, bytes, bytes]:
        """Return ISA-L, the encoding matrix and the parity tables (made once).

        Raises:
            InvalidArgumentError: No usable libisal in this process.
        """
        with self._lock:
            if self._loaded is None:
                isal = load_isal()
                if isal is None:
                    raise InvalidArgumentError(
                        "new",
                        "striped",
                        "",
                        "ReedSolomon(library='isa-l') needs libisal to code fragments: pip "
                        "install 'storager[striped]' (pyeclib's wheel bundles it), or "
                        "library='pyeclib'",
                    )
                k, total = self._codec.data, self._codec.total
                matrix = isal.cauchy(k, total)
                self._loaded = (isal, matrix, isal.tables(k, rows_of(matrix, k, range(k, total))))
            return self._loaded

    def encode(self, stripe: Buffer, alloc: Alloc | None) -> list[Buffer]:
        k = self._codec.data
        view = memoryview(stripe).cast("B")
        size = -(-len(view) // k)
        blocks: list[Buffer] = []
        for i in range(k):
            block = view[i * size : (i + 1) * size]
            if len(block) < size:  # the last block(s), zero-padded to the common size
                padded = bytearray(size)
                padded[: len(block)] = block
                block = memoryview(padded)
            blocks.append(block)
        outputs = [alloc(size) if alloc else bytearray(size) for _ in range(self._codec.parity)]
        isal, _, tables = self._lib()
        isal.apply(tables, k, blocks, outputs)
        return blocks + list(outputs)

    def pieces(
        self, fragments: Mapping[int, Buffer], length: int, check: Check | None
    ) -> list[Buffer]:
        codec = self._codec
        k = codec.data
        if len(fragments) < k:
            raise _too_few(codec, len(fragments))
        size = check_equal_lengths(fragments)
        want = -(-length // k)
        if size != want:
            got = sorted({len(memoryview(f).cast("B")) for f in fragments.values()})
            raise UnexpectedError(
                "decode",
                "striped",
                "",
                f"{codec.label()}: a stripe of {length} bytes needs fragments of {want} "
                f"bytes each, got {', '.join(map(str, got))}",
            )
        data = {i: fragments[i] for i in range(k) if i in fragments}
        missing = [i for i in range(k) if i not in data]
        if missing:
            chosen = sorted(fragments)[:k]
            isal, matrix, _ = self._lib()
            rows = decoding_rows(matrix, k, chosen, missing)
            if rows is None:
                raise UnexpectedError("decode", "striped", "", f"{codec.label()}: singular rows")
            rebuilt = [bytearray(size) for _ in missing]
            isal.apply(isal.tables(k, rows), k, [fragments[i] for i in chosen], rebuilt)
            for i, fragment in zip(missing, rebuilt, strict=True):
                if check is not None and not check(i, fragment):
                    raise UnexpectedError(
                        "decode",
                        "striped",
                        "",
                        f"{codec.label()}: rebuilt fragment {i} is not the one recorded",
                    )
                data[i] = fragment
        pieces: list[Buffer] = []
        left = length
        for i in range(k):
            take = min(size, left)
            if take <= 0:
                break
            pieces.append(memoryview(data[i]).cast("B")[:take])
            left -= take
        return pieces

    def decode(self, fragments: Mapping[int, Buffer], length: int) -> bytes:
        return b"".join(self.pieces(fragments, length, None))

    def rebuild_into(
        self, fragments: Mapping[int, Buffer], outputs: Mapping[int, memoryview]
    ) -> bool:
        k = self._codec.data
        chosen = sorted(i for i in fragments if i not in outputs)[:k]
        if len(chosen) < k or any(i >= k for i in outputs):
            return False
        isal, matrix, _ = self._lib()
        rows = decoding_rows(matrix, k, chosen, list(outputs))
        if rows is None:
            return False
        try:
            isal.apply(
                isal.tables(k, rows),
                k,
                [fragments[i] for i in chosen],
                list(outputs.values()),
            )
        except (ValueError, BufferError):
            return False  # lengths that differ, or an output that may not be written
        return True


class _PyECLibEngine:
    """ReedSolomon on pyeclib's ``ECDriver`` (fragments with pyeclib's header)."""

    def __init__(self, codec: ReedSolomon) -> None:
        self._codec = codec
        self._driver: Any = None
        self._lock = threading.Lock()
        self._load()

    def _load(self) -> Any:
        if self._driver is not None:
            return self._driver
        codec = self._codec
        with self._lock:
            if self._driver is None:
                try:
                    from pyeclib.ec_iface import ECDriver
                except ImportError as exc:
                    raise InvalidArgumentError(
                        "new",
                        "striped",
                        "",
                        "ReedSolomon needs pyeclib: pip install 'storager[striped]'",
                    ) from exc
                try:
                    self._driver = ECDriver(k=codec.data, m=codec.parity, ec_type=codec.ec_type)
                except Exception as exc:
                    raise InvalidArgumentError(
                        "new", "striped", "", f"pyeclib refuses {codec.label()}: {exc}"
                    ) from exc
        return self._driver

    def encode(self, stripe: Buffer, alloc: Alloc | None) -> list[Buffer]:
        # pyeclib allocates its own fragments: alloc is not used.
        fragments: list[Buffer] = self._load().encode(bytes(stripe))
        return fragments

    def pieces(
        self, fragments: Mapping[int, Buffer], length: int, check: Check | None
    ) -> list[Buffer]:
        k = self._codec.data
        data = {i: fragments[i] for i in range(k) if i in fragments}
        if len(data) < k and len(fragments) >= k:
            data.update(self._reconstruct(fragments, check))
        if len(data) == k:
            payloads = self._payloads([data[i] for i in range(k)], length)
            if payloads is not None:
                return payloads
        return [self.decode(fragments, length)]

    def _reconstruct(
        self, fragments: Mapping[int, Buffer], check: Check | None
    ) -> dict[int, Buffer]:
        """Return the missing data fragments rebuilt, or nothing (the caller decodes).

        pyeclib's ``reconstruct`` rebuilds only the fragments asked for, whole (header
        and payload, byte for byte what the writer stored), several times faster than
        ``decode`` rebuilds the stripe (``benchmarks/README.md``). A rebuilt fragment
        that ``check`` refuses, or any error, returns nothing.
        """
        k = self._codec.data
        missing = [i for i in range(k) if i not in fragments]
        chosen = [bytes(fragments[i]) for i in sorted(fragments)[:k]]
        try:
            rebuilt: list[bytes] = self._load().reconstruct(chosen, missing)
        except Exception:
            return {}
        if len(rebuilt) != len(missing):
            return {}
        out: dict[int, Buffer] = dict(zip(missing, rebuilt, strict=True))
        if check is not None and not all(check(i, f) for i, f in out.items()):
            return {}
        return out

    def _payloads(self, data: list[Buffer], length: int) -> list[Buffer] | None:
        """Return the stripe as views of the data fragments' payloads, or None.

        The code is systematic: data fragment ``i`` is pyeclib's header followed by
        the stripe's ``i``-th block (the last one zero-padded), which is what
        liberasurecode's decode copies out when every data fragment is there. The
        headers are the ones pyeclib wrote (the fragments were checked against their
        digests); anything unexpected in them returns None, and the caller decodes.
        """
        driver = self._load()
        pieces: list[Buffer] = []
        left = length
        try:
            for i, fragment in enumerate(data):
                # The header is all get_metadata reads: give it the head, not a copy of all.
                meta = driver.get_metadata(bytes(memoryview(fragment)[:4096]), formatted=True)
                header = len(fragment) - int(meta["size"])
                if meta["index"] != i or meta["orig_data_size"] != length or header <= 0:
                    return None
                take = min(int(meta["size"]), left)
                pieces.append(memoryview(fragment)[header : header + take])
                left -= take
        except Exception:
            return None
        return pieces if left == 0 else None

    def decode(self, fragments: Mapping[int, Buffer], length: int) -> bytes:
        codec = self._codec
        if len(fragments) < codec.data:
            raise _too_few(codec, len(fragments))
        # Exactly `data` fragments, data ones first: liberasurecode then copies them.
        chosen = [bytes(fragments[i]) for i in sorted(fragments)[: codec.data]]
        try:
            out: bytes = self._load().decode(chosen)
        except Exception as exc:
            raise UnexpectedError("decode", "striped", "", f"pyeclib: {exc}") from exc
        if len(out) != length:
            raise UnexpectedError(
                "decode", "striped", "", f"pyeclib rebuilt {len(out)} bytes, not {length}"
            )
        return out


def codec_from_spec(spec: Mapping[str, Any]) -> Codec:
    """Return the codec a manifest's ``codec`` entry describes.

    Raises:
        InvalidArgumentError: An unknown kind or a bad parameter.
    """
    kind = spec.get("kind")
    if kind == "replicas":
        return Replicas(spec["n"])
    if kind == "stripes":
        return Stripes(spec["width"])
    if kind == "reed_solomon":
        library = spec.get("library", PYECLIB)
        if library == ISA_L and spec.get("matrix", "cauchy") == "cauchy":
            return ReedSolomon(spec["data"], spec["parity"], library=ISA_L, _lazy=True)
        if library == PYECLIB:
            return ReedSolomon(
                spec["data"],
                spec["parity"],
                library=PYECLIB,
                ec_type=spec.get("ec_type", "isa_l_rs_vand"),
            )
        raise InvalidArgumentError("decode", "striped", "", f"unknown erasure library {library!r}")
    raise InvalidArgumentError("decode", "striped", "", f"unknown codec {kind!r}")
