"""Reed-Solomon on ISA-L called directly: fragments straight from and into our buffers.

pyeclib's interface takes a stripe as ``bytes``, copies it into aligned buffers it
zeroes, encodes, and copies each fragment out again behind an 80-byte header, all
while holding the GIL (``benchmarks/README.md``: 21% ``memmove`` and 5% ``memset`` of
a write). Here ISA-L's ``ec_encode_data`` reads the data fragments where they are
(views of the stripe) and writes the parity into buffers we allocate, with the GIL
released (ctypes drops it around every foreign call). The library is the
``libisal`` pyeclib's wheel bundles, or a system one.

The code is systematic with a Cauchy matrix (ISA-L's ``gf_gen_cauchy1_matrix``: every
square submatrix is invertible, for any ``data`` and ``parity``): data fragment ``i`` is
the stripe's ``i``-th block of ``ceil(length / data)`` bytes, the last one zero-padded,
with no header. A missing data fragment is rebuilt from any ``data`` others by
inverting the rows of the matrix they were made with.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import importlib.util
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

__all__ = ["IsaL", "check_equal_lengths", "decoding_rows", "load_isal", "rows_of"]

Buffer = bytes | bytearray | memoryview

#: ISA-L takes lengths as C ``int``; longer fragments are coded in pieces this long.
_SEGMENT = 1 << 30


class _PyBuffer(ctypes.Structure):
    """CPython's ``Py_buffer``, to find where any bytes-like object keeps its bytes."""

    _fields_ = [
        ("buf", ctypes.c_void_p),
        ("obj", ctypes.c_void_p),
        ("len", ctypes.c_ssize_t),
        ("itemsize", ctypes.c_ssize_t),
        ("readonly", ctypes.c_int),
        ("ndim", ctypes.c_int),
        ("format", ctypes.c_char_p),
        ("shape", ctypes.c_void_p),
        ("strides", ctypes.c_void_p),
        ("suboffsets", ctypes.c_void_p),
        ("internal", ctypes.c_void_p),
    ]


_get_buffer = ctypes.pythonapi.PyObject_GetBuffer
_get_buffer.argtypes = [ctypes.py_object, ctypes.POINTER(_PyBuffer), ctypes.c_int]
_get_buffer.restype = ctypes.c_int
_release_buffer = ctypes.pythonapi.PyBuffer_Release
_release_buffer.argtypes = [ctypes.POINTER(_PyBuffer)]
_release_buffer.restype = None
_PyBUF_SIMPLE = 0


_PyBUF_WRITABLE = 0x0001


class _Pinned:
    """The addresses of some buffers, held (not movable, not resizable) until ``release``.

    ``writable``: refuse (BufferError) a buffer that may not be written, such as
    ``bytes``, before any address of it is handed to C code that writes.
    """

    def __init__(self, buffers: Sequence[Buffer], *, writable: bool = False) -> None:
        self._views: list[_PyBuffer] = []
        self.addresses: list[int] = []
        try:
            for buffer in buffers:
                view = _PyBuffer()
                # A C-contiguous buffer of bytes, or an error (a strided view).
                flags = _PyBUF_WRITABLE if writable else _PyBUF_SIMPLE
                _get_buffer(buffer, ctypes.byref(view), flags)
                self._views.append(view)
                self.addresses.append(view.buf or 0)
        except BaseException:
            self.release()
            raise

    def release(self) -> None:
        for view in self._views:
            _release_buffer(ctypes.byref(view))
        self._views.clear()


def _pointers(addresses: Sequence[int], offset: int) -> Any:
    array = (ctypes.c_void_p * len(addresses))()
    for i, address in enumerate(addresses):
        array[i] = address + offset
    return array


def _library_paths() -> list[str]:
    """Where to look for libisal: pyeclib's bundled copy first, then the system's."""
    paths: list[str] = []
    spec = importlib.util.find_spec("pyeclib")
    if spec is not None and spec.submodule_search_locations:
        site = Path(next(iter(spec.submodule_search_locations))).parent
        for libs in (site / "pyeclib.libs", site / "pyeclib" / ".dylibs"):
            if libs.is_dir():
                paths += sorted(str(p) for p in libs.glob("libisal*"))
    system = ctypes.util.find_library("isal")
    if system:
        paths.append(system)
    return paths


class IsaL:
    """The few ISA-L functions a systematic Reed-Solomon code needs."""

    def __init__(self, lib: ctypes.CDLL) -> None:
        self._encode = lib.ec_encode_data
        self._encode.argtypes = [
            ctypes.c_int,
            ctypes.c_int,
            ctypes.c_int,
            ctypes.c_void_p,
            ctypes.c_void_p,
            ctypes.c_void_p,
        ]
        self._encode.restype = None
        self._init_tables = lib.ec_init_tables
        self._init_tables.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p]
        self._init_tables.restype = None
        self._cauchy = lib.gf_gen_cauchy1_matrix
        self._cauchy.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_int]
        self._cauchy.restype = None
        self._invert = lib.gf_invert_matrix
        self._invert.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int]
        self._invert.restype = ctypes.c_int

    def cauchy(self, data: int, total: int) -> bytes:
        """Return the ``total`` x ``data`` encoding matrix (identity on top)."""
        matrix = ctypes.create_string_buffer(total * data)
        self._cauchy(matrix, total, data)
        return matrix.raw

    def tables(self, data: int, rows: bytes) -> bytes:
        """Return the expanded tables that code ``len(rows) // data`` outputs."""
        count = len(rows) // data
        tables = ctypes.create_string_buffer(32 * data * count)
        self._init_tables(data, count, ctypes.c_char_p(rows), tables)
        return tables.raw

    def invert(self, matrix: bytes, n: int) -> bytes | None:
        """Return the inverse of the ``n`` x ``n`` matrix, or None if it is singular."""
        work = ctypes.create_string_buffer(matrix, n * n)  # inverted in place: a copy
        out = ctypes.create_string_buffer(n * n)
        if self._invert(work, out, n) != 0:
            return None
        return out.raw

    def apply(
        self,
        tables: bytes,
        data: int,
        sources: Sequence[Buffer],
        outputs: Sequence[bytearray | memoryview],
    ) -> None:
        """Code ``outputs`` (each as long as a source) from ``data`` equal-length ``sources``."""
        length = len(memoryview(sources[0]).cast("B")) if sources else 0
        if length == 0 or not outputs:
            return
        if any(len(memoryview(b).cast("B")) != length for b in [*sources, *outputs]):
            raise ValueError("every source and output must be as long as the first source")
        pinned_in = _Pinned(sources)
        try:
            pinned_out = _Pinned(outputs, writable=True)
        except BaseException:
            pinned_in.release()
            raise
        try:
            for start in range(0, length, _SEGMENT):
                n = min(_SEGMENT, length - start)
                self._encode(
                    n,
                    data,
                    len(outputs),
                    ctypes.c_char_p(tables),
                    _pointers(pinned_in.addresses, start),
                    _pointers(pinned_out.addresses, start),
                )
        finally:
            pinned_out.release()
            pinned_in.release()


_loaded: list[IsaL | None] = []
_load_lock = threading.Lock()


def load_isal() -> IsaL | None:
    """Return ISA-L, loaded once, or None where no usable libisal is installed."""
    with _load_lock:
        if not _loaded:
            found: IsaL | None = None
            for path in _library_paths():
                try:
                    found = IsaL(ctypes.CDLL(path))
                    break
                except (OSError, AttributeError):
                    continue
            _loaded.append(found)
        return _loaded[0]


def rows_of(matrix: bytes, data: int, indexes: Sequence[int]) -> bytes:
    """Return the rows ``indexes`` of a ``? x data`` matrix, concatenated."""
    return b"".join(matrix[i * data : (i + 1) * data] for i in indexes)


def decoding_rows(
    matrix: bytes, data: int, chosen: Sequence[int], missing: Sequence[int]
) -> bytes | None:
    """Rows that rebuild data fragments ``missing`` from the fragments ``chosen``.

    ``chosen`` are ``data`` fragment indexes; each missing data fragment ``j`` is row
    ``j`` of the inverse of their rows, applied to them.
    """
    isal = load_isal()
    assert isal is not None
    inverse = isal.invert(rows_of(matrix, data, chosen), data)
    if inverse is None:
        return None
    return rows_of(inverse, data, missing)


def check_equal_lengths(fragments: Mapping[int, Buffer]) -> int | None:
    """Return the common length of ``fragments``, or None if they differ."""
    lengths = {len(memoryview(f).cast("B")) for f in fragments.values()}
    return lengths.pop() if len(lengths) == 1 else None
