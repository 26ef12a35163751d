"""FaultyStorager: a store that fails, slows down and cuts streams on purpose, for tests.

Wrap any store to see how code above it copes with a misbehaving service::

    flaky = FaultyStorager(MemoryStorage(), fail={"write": 2}, latency=0.01)
    flaky.write("a", b"x")   # ServiceInternalError (retryable), twice; then it works

It keeps the inner store's capabilities, and counts every call in ``calls``.
"""

from __future__ import annotations

import copy
import io
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, BinaryIO, TypeVar, cast

from storager._errors import InvalidArgumentError, ServiceInternalError, StorageError
from storager._object import Object
from storager._protocols import Storager, WriteData
from storager._streams import iter_chunks
from storager.combinators._delegate import Delegate

__all__ = ["Fault", "FaultSpec", "FaultyStorager"]

T = TypeVar("T")


@dataclass(slots=True)
class Fault:
    """When and how one operation fails.

    Attributes:
        error: The exception to raise: a class (built as ``error(op, "faulty", path)``
            when it is a StorageError, else ``error()``) or an instance (copied).
        times: Fail this many calls, then succeed; ``None`` fails every call.
        skip: Let this many calls succeed before the failures start.
        when: Fail only calls whose path makes this return True.
    """

    error: type[BaseException] | BaseException = ServiceInternalError
    times: int | None = None
    skip: int = 0
    when: Callable[[str], bool] | None = None


#: What ``fail`` maps an operation to: an exception (class or instance) raised every
#: time; an int N, to fail the first N calls with ServiceInternalError; a predicate
#: on the path; or a :class:`Fault`.
FaultSpec = type[BaseException] | BaseException | int | Callable[[str], bool] | Fault


def _as_fault(op: str, spec: FaultSpec) -> Fault:
    if isinstance(spec, Fault):
        return spec
    if isinstance(spec, bool):
        raise InvalidArgumentError("new", "faulty", "", f"fault for {op!r} cannot be a bool")
    if isinstance(spec, int):
        return Fault(times=spec)
    if isinstance(spec, BaseException) or (
        isinstance(spec, type) and issubclass(spec, BaseException)
    ):
        return Fault(error=spec)
    if callable(spec):
        return Fault(when=cast(Callable[[str], bool], spec))
    raise InvalidArgumentError(
        "new", "faulty", "", f"fault for {op!r} must be an exception, an int, a predicate or Fault"
    )


def _build(error: type[BaseException] | BaseException, op: str, path: str) -> BaseException:
    if isinstance(error, BaseException):
        return copy.copy(error)
    if issubclass(error, StorageError):
        return error(op, "faulty", path, "injected fault")
    return error()


class FaultyStorager(Delegate):
    """Inject errors, latency and cut-short streams into another store.

    Args:
        inner: The store to wrap; its capabilities are kept.
        fail: Operation name (or ``"*"`` for every operation) to a :data:`FaultSpec`.
        latency: Seconds to sleep before each call: one number for every operation,
            or a mapping from operation name (or ``"*"``) to seconds.
        fail_after_bytes: Cut data streams short: ``read`` and readers from
            ``open_reader`` raise ServiceInternalError after this many bytes, and
            ``write`` consumes this many bytes of its source, then raises.
        commit_latency: Seconds a ``write`` waits after it has read all of its data
            and before the inner store may commit it: a slow commit (a rename on a
            busy disk, a PUT whose answer is late), past the point where the caller
            could still stop it.

    The attributes ``fail``, ``latency``, ``fail_after_bytes`` and ``commit_latency`` may be changed
    while the store is in use (to heal it, for example); ``calls`` counts the calls
    per operation, failed or not.
    """

    combinator = "faulty"

    def __init__(
        self,
        inner: Storager,
        *,
        fail: Mapping[str, FaultSpec] | None = None,
        latency: float | Mapping[str, float] | None = None,
        fail_after_bytes: int | None = None,
        commit_latency: float | None = None,
    ) -> None:
        super().__init__(inner)
        self._lock = threading.Lock()
        self.calls: Counter[str] = Counter()
        self._faults: dict[str, Fault] = {}
        self._seen: Counter[str] = Counter()
        self.fail = fail or {}
        self.latency = latency
        if fail_after_bytes is not None and (
            isinstance(fail_after_bytes, bool)
            or not isinstance(fail_after_bytes, int)
            or fail_after_bytes < 0
        ):
            raise InvalidArgumentError(
                "new", "faulty", "", "fail_after_bytes must be a non-negative int"
            )
        self.fail_after_bytes = fail_after_bytes
        if commit_latency is not None and (
            isinstance(commit_latency, bool)
            or not isinstance(commit_latency, int | float)
            or not 0 <= commit_latency < float("inf")
        ):
            raise InvalidArgumentError(
                "new", "faulty", "", "commit_latency must be a finite number of seconds >= 0"
            )
        self.commit_latency = commit_latency

    @property
    def fail(self) -> Mapping[str, Fault]:
        """The faults per operation; assigning replaces them and resets their counts."""
        return self._faults

    @fail.setter
    def fail(self, spec: Mapping[str, FaultSpec]) -> None:
        faults = {op: _as_fault(op, s) for op, s in spec.items()}
        with self._lock:
            self._faults = faults
            self._seen = Counter()

    def heal(self) -> None:
        """Stop injecting anything: no faults, no latency, no cut streams."""
        self.fail = {}
        self.latency = None
        self.fail_after_bytes = None
        self.commit_latency = None

    def describe_label(self) -> str:
        return "faulty"

    def _delay(self, op: str) -> float:
        latency = self.latency
        if latency is None:
            return 0.0
        if isinstance(latency, int | float):
            return float(latency)
        return float(latency.get(op, latency.get("*", 0.0)))

    def _check(self, op: str, path: str) -> None:
        with self._lock:
            self.calls[op] += 1
            fault = self._faults.get(op) or self._faults.get("*")
            if fault is None:
                return
            if fault.when is not None and not fault.when(path):
                return
            key = op if op in self._faults else "*"
            self._seen[key] += 1
            n = self._seen[key]
        if n <= fault.skip:
            return
        if fault.times is not None and n > fault.skip + fault.times:
            return
        raise _build(fault.error, op, path)

    def _around(self, op: str, path: str, fn: Callable[[Storager], T]) -> T:
        delay = self._delay(op)
        if delay:
            time.sleep(delay)
        self._check(op, path)
        result = super()._around(op, path, fn)
        cut = self.fail_after_bytes
        if cut is not None:
            if op == "read" and isinstance(result, bytes) and len(result) > cut:
                raise ServiceInternalError(op, "faulty", path, f"connection cut after {cut} bytes")
            if op == "open_reader":
                return cast(T, _CutReader(cast(BinaryIO, result), cut, path))
        return result

    def write(self, path: str, data: WriteData, **pairs: Any) -> Object:
        cut = self.fail_after_bytes
        if cut is not None:
            data = _cut_source(path, data, cut)
        slow = self.commit_latency
        if slow:
            data = _slow_end(path, data, slow)
        return super().write(path, data, **pairs)


def _slow_end(path: str, data: WriteData, seconds: float) -> Iterator[bytes]:
    """Yield ``data``, then wait ``seconds`` before telling the consumer it ended."""
    for chunk in iter_chunks("write", "faulty", path, data):
        yield bytes(chunk)
    time.sleep(seconds)


def _cut_source(path: str, data: WriteData, cut: int) -> Iterator[bytes]:
    """Yield ``data`` up to ``cut`` bytes, then raise as a dropped connection would."""
    sent = 0
    for chunk in iter_chunks("write", "faulty", path, data):
        room = cut - sent
        if len(chunk) > room:
            if room:
                yield bytes(chunk[:room])
            raise ServiceInternalError("write", "faulty", path, f"connection cut after {cut} bytes")
        sent += len(chunk)
        yield bytes(chunk)


class _CutReader(io.RawIOBase):
    """A reader that raises ServiceInternalError once ``cut`` bytes were delivered."""

    def __init__(self, inner: BinaryIO, cut: int, path: str) -> None:
        super().__init__()
        self._inner = inner
        self._left = cut
        self._path = path

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return bool(self._inner.seekable())

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        return self._inner.seek(offset, whence)

    def tell(self) -> int:
        return self._inner.tell()

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        if self._left <= 0:
            if self._inner.read(1):
                raise ServiceInternalError("open_reader", "faulty", self._path, "connection cut")
            return 0
        data = self._inner.read(min(len(view), self._left))
        n = len(data)
        view[:n] = data
        self._left -= n
        return n

    def close(self) -> None:
        if not self.closed:
            self._inner.close()
        super().close()
