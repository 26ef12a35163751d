"""Striped: one object spread over N backends by a codec, with an atomic manifest.

The write path: the writer stores the object as immutable chunks named by a new
generation (``_writer``), then the manifest is written to the manifest store in one
atomic ``write`` (the commit point). A reader loads the manifest once and reads the
chunks it names (``_reader``), so it sees one whole version whatever writers,
aborted writes and faults do meanwhile; the last manifest written wins. A replaced
or deleted object's chunks stay until ``gc`` (``_maintenance``), so readers still
using them finish.
"""

from __future__ import annotations

import io
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import replace
from types import MappingProxyType
from typing import Any, BinaryIO, cast

from storager._capability import Capability
from storager._errors import (
    InvalidArgumentError,
    NotFoundError,
    PathInvalidError,
)
from storager._headers import check_header
from storager._malloc import retain_freed_buffers
from storager._object import Object, ObjectMode, StorageMeta
from storager._pairs import (
    check_choice,
    check_int,
    check_io_callback,
    check_str,
)
from storager._paths import join_dir, normalize_work_dir, resolve
from storager._protocols import Copier, IoCallback, Mover, Segmenter, Storager, WriteData
from storager.combinators._base import prime
from storager.combinators._path_locks import PathLocks
from storager.combinators.striped._codecs import Codec
from storager.combinators.striped._core import Core
from storager.combinators.striped._digests import FragmentDigest
from storager.combinators.striped._health import BackendHealth, Health
from storager.combinators.striped._maintenance import Maintenance
from storager.combinators.striped._manifest import CHUNK_AREA, Manifest, new_generation
from storager.combinators.striped._multipart import StripedMultipart
from storager.combinators.striped._placement import POLICIES, Placement
from storager.combinators.striped._reader import open_stripes, read_range
from storager.combinators.striped._records import RESERVED, Records, is_reserved, restate
from storager.combinators.striped._state import traced
from storager.combinators.striped._writer import write_group

__all__ = ["Striped"]

_OPS: Mapping[str, frozenset[str]] = MappingProxyType(
    {
        "list": frozenset({"list_mode"}),
        "read": frozenset({"offset", "size", "io_callback"}),
        "open_reader": frozenset({"offset", "size"}),
        "write": frozenset({"content_type", "user_metadata", "size", "io_callback"}),
        "stat": frozenset(),
        "delete": frozenset(),
        "copy": frozenset(),
        "move": frozenset(),
        "create_multipart": frozenset({"content_type", "user_metadata"}),
        "write_multipart": frozenset({"size", "io_callback"}),
        "complete_multipart": frozenset(),
        "abort_multipart": frozenset(),
        "list_multipart": frozenset(),
    }
)


def _new_error(message: str) -> InvalidArgumentError:
    return InvalidArgumentError("new", "striped", "", message)


def _seconds(value: object, *, zero: bool) -> bool:
    """Return whether ``value`` is a finite number of seconds (> 0, or >= 0 with ``zero``)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return False
    return (value >= 0 if zero else value > 0) and value < float("inf")


class Striped(StripedMultipart, Maintenance, Copier, Mover, Segmenter):
    """One logical store whose objects are spread over named backends by a codec.

    Args:
        backends: The backends by name (any Storagers); chunks live under
            ``.striped/chunks/`` in each one's work_dir.
        codec: :class:`Replicas`, :class:`Stripes` or :class:`ReedSolomon`.
        chunk_size: Bytes of the object per data chunk; a stripe holds
            ``codec.data`` chunks.
        manifests: The store of manifests (any Storager with atomic writes): the
            objects' namespace. Share it between processes to serve one store.
        placement: ``"most_free"``, ``"least_used"``, ``"round_robin"`` or ``"random"``.
        quotas: Bytes allowed per backend name.
        fragment_digest: What each fragment's integrity is checked with: ``"xxh3"``
            (accidental damage; the default where xxhash is installed, as the
            ``striped`` extra does), ``"crc32"`` (accidental damage; the default
            without xxhash) or ``"sha256"`` (also forgery, for backends that are not
            trusted). Reads check each fragment with the algorithm it was written with.
        work_dir: Where relative paths start, inside the manifest store's namespace.
        write_quorum: Fragments of a stripe that must be stored for a write to succeed
            (default: ``data + 1``, at most ``total``); fewer than ``total`` makes the
            object degraded, recorded for ``heal``.
        stripes_in_flight: Stripes of one call encoded, stored or fetched at once.
        io_workers: Threads for fragment I/O (default ``2 * len(backends) + 2``).
        tune_malloc: Have glibc keep freed multi-MiB buffers for reuse, for the whole
            process (``retain_freed_buffers``): writes several times cheaper in CPU,
            at the price of up to 256 MiB of freed memory kept. Off by default.
        failures_to_down: Consecutive failures that mark a backend down.
        cooldown: Seconds a down backend waits before a probe.
        hedge_after: Seconds a fragment read may take before another fragment is
            asked for as well (None: only on errors).
        default_content_type: The content type of writes that give none.
        loose_pairs: Ignore unsupported pairs instead of raising.
        clock: Monotonic seconds for health (injectable for tests).

    Raises:
        InvalidArgumentError: No backends, a codec that needs more backends than
            given, an unknown placement, a bad quota or size.
    """

    def __init__(
        self,
        backends: Mapping[str, Storager],
        *,
        codec: Codec,
        manifests: Storager,
        chunk_size: int = 4 << 20,
        placement: str = "most_free",
        quotas: Mapping[str, int] | None = None,
        fragment_digest: str | None = None,
        work_dir: str = "/",
        write_quorum: int | None = None,
        stripes_in_flight: int = 2,
        io_workers: int | None = None,
        tune_malloc: bool = False,
        failures_to_down: int = 3,
        cooldown: float = 30.0,
        hedge_after: float | None = 2.0,
        default_content_type: str | None = None,
        loose_pairs: bool = False,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not isinstance(backends, Mapping) or not backends:
            raise _new_error("backends must be a non-empty mapping of name to Storager")
        for name, backend in backends.items():
            if not isinstance(name, str) or not name or not isinstance(backend, Storager):
                raise _new_error(f"backend {name!r} must be a Storager named by a non-empty str")
        if "manifests" in backends:
            raise _new_error("'manifests' names the manifest store; call the backend otherwise")
        if not isinstance(manifests, Storager):
            raise _new_error("manifests must be a Storager")
        if not isinstance(codec, Codec):
            raise _new_error("codec must be Replicas(n), Stripes() or ReedSolomon(data, parity)")
        codec = codec.bind(len(backends))
        if codec.total > len(backends):
            raise _new_error(
                f"{codec.label()} writes {codec.total} fragments per stripe on distinct "
                f"backends; only {len(backends)} given ({', '.join(backends)})"
            )
        digest = FragmentDigest(fragment_digest)
        if type(chunk_size) is not int or chunk_size < 1:
            raise _new_error(f"chunk_size must be a positive int, not {chunk_size!r}")
        if placement not in POLICIES:
            raise _new_error(f"placement must be one of {', '.join(POLICIES)}, not {placement!r}")
        quotas = dict(quotas or {})
        for name, quota in quotas.items():
            if name not in backends:
                raise _new_error(f"quota for unknown backend {name!r}")
            if type(quota) is not int or quota < 0:
                raise _new_error(f"quota of {name!r} must be a non-negative int")
        quorum = min(codec.total, codec.data + 1) if write_quorum is None else write_quorum
        if type(quorum) is not int or not codec.data <= quorum <= codec.total:
            raise _new_error(
                f"write_quorum must be between {codec.data} and {codec.total}, not {quorum!r}"
            )
        if type(stripes_in_flight) is not int or stripes_in_flight < 1:
            raise _new_error("stripes_in_flight must be a positive int")
        if io_workers is not None and (type(io_workers) is not int or io_workers < 1):
            raise _new_error("io_workers must be a positive int")
        if type(failures_to_down) is not int or failures_to_down < 1:
            raise _new_error("failures_to_down must be a positive int")
        if not _seconds(cooldown, zero=True) or (
            hedge_after is not None and not _seconds(hedge_after, zero=False)
        ):
            raise _new_error("cooldown must be seconds >= 0, hedge_after seconds > 0 or None")
        if type(loose_pairs) is not bool or type(tune_malloc) is not bool:
            raise _new_error("loose_pairs and tune_malloc must be bools")
        if default_content_type is not None:
            check_str("new", "striped", "", "default_content_type", default_content_type)
            check_header("new", "striped", "", "default_content_type", default_content_type)
        if tune_malloc:
            retain_freed_buffers()
        self._wd = normalize_work_dir(work_dir, "striped")
        self._backends = dict(backends)
        self._manifests = manifests
        self._records = Records(manifests)
        self._loose = loose_pairs
        self._default_content_type = default_content_type
        self._locks = PathLocks()
        self._damaged: set[str] = set()
        self._damaged_lock = threading.Lock()
        health = Health(
            backends,
            self._probe,
            failures_to_down=failures_to_down,
            cooldown=cooldown,
            clock=clock,
        )
        self._core = Core(
            backends,
            codec,
            chunk_size,
            health,
            Placement(backends, placement, quotas, health.is_up, self._count_usage),
            digest,
            io_workers=io_workers or 2 * len(backends) + 2,
            stripe_workers=max(4, 2 * stripes_in_flight),
            stripes_in_flight=stripes_in_flight,
            write_quorum=quorum,
            hedge_after=hedge_after,
            on_damage=self._note_damage,
        )

    # -- the tree -----------------------------------------------------------------------

    def children(self) -> Mapping[str, Storager]:
        return {"manifests": self._manifests, **self._backends}

    def describe_label(self) -> str:
        core = self._core
        quotas = f" quotas={len(core.placement.quotas)}" if core.placement.quotas else ""
        return (
            f"striped {core.codec.label()} chunk_size={core.chunk_size} "
            f"placement={core.placement.policy}{quotas}"
        )

    @property
    def codec(self) -> Codec:
        """The codec new writes use."""
        return self._core.codec

    def metadata(self) -> StorageMeta:
        """Return ``striped``, the work_dir, and what Striped itself can do."""
        listing = self._manifests.metadata().capability
        capability = Capability(
            operations=_OPS,
            write_empty=True,
            write_atomic=True,
            list_sorted=listing.list_sorted,
            copy_server_side=True,
        )
        return StorageMeta("striped", "", self._wd, capability)

    def _close(self) -> None:
        self._core.shutdown()

    def _probe(self, name: str) -> None:
        self._backends[name].stat(CHUNK_AREA + "probe")

    def _count_usage(self, name: str) -> int:
        listing = self._backends[name].list(CHUNK_AREA, list_mode="prefix")
        return sum(o.content_length or 0 for o in listing if not o.is_dir)

    # -- Storager -----------------------------------------------------------------------

    @traced("list")
    def list(
        self, path: str = "", *, list_mode: str | None = None, **pairs: Any
    ) -> Iterator[Object]:
        self._pairs("list", path, pairs)
        if list_mode is not None:
            check_choice("list", "striped", str(path), "list_mode", list_mode, ("dir", "prefix"))
        prefix = join_dir("list", "striped", self._wd, path)[1:]
        if prefix.startswith(RESERVED):
            return iter(())
        extra = {} if list_mode is None else {"list_mode": list_mode}
        try:
            listing = prime(self._manifests.list(prefix, **extra))
        except Exception as exc:
            raise restate(exc, "list", path) from exc
        return self._listed(listing)

    def _listed(self, listing: Iterator[Object]) -> Iterator[Object]:
        for obj in listing:
            key = obj.path
            if key.startswith("/") or is_reserved(key):
                continue
            if obj.is_dir:
                yield Object(self._rel(key), ObjectMode.DIR, last_modified=obj.last_modified)
            else:
                yield Object(self._rel(key), ObjectMode.READ, last_modified=obj.last_modified)

    @traced("read")
    def read(
        self,
        path: str,
        *,
        offset: int | None = None,
        size: int | None = None,
        io_callback: IoCallback | None = None,
        **pairs: Any,
    ) -> bytes:
        self._pairs("read", path, pairs)
        shown = path if isinstance(path, str) else ""
        if offset is not None:
            check_int("read", "striped", shown, "offset", offset)
        if size is not None:
            check_int("read", "striped", shown, "size", size)
        if io_callback is not None:
            check_io_callback("read", "striped", shown, "io_callback", io_callback)
        key = self._key("read", path)
        manifest = self._load("read", path, key)
        return read_range(self._core, "read", path, manifest, offset, size, io_callback)

    @traced("open_reader")
    def open_reader(
        self, path: str, *, offset: int | None = None, size: int | None = None, **pairs: Any
    ) -> BinaryIO:
        self._pairs("open_reader", path, pairs)
        shown = path if isinstance(path, str) else ""
        if offset is not None:
            check_int("open_reader", "striped", shown, "offset", offset)
        if size is not None:
            check_int("open_reader", "striped", shown, "size", size)
        key = self._key("open_reader", path)
        manifest = self._load("open_reader", path, key)
        raw = open_stripes(self._core, path, manifest, offset, size)
        buffer = max(io.DEFAULT_BUFFER_SIZE, min(1 << 20, self._core.chunk_size))
        return cast(BinaryIO, io.BufferedReader(raw, buffer_size=buffer))

    @traced("write")
    def write(
        self,
        path: str,
        data: WriteData,
        *,
        content_type: str | None = None,
        user_metadata: Mapping[str, str] | None = None,
        size: int | None = None,
        io_callback: IoCallback | None = None,
        **pairs: Any,
    ) -> Object:
        self._pairs("write", path, pairs)
        shown = path if isinstance(path, str) else ""
        content_type = self._check_object_pairs("write", shown, content_type, user_metadata)
        if size is not None:
            check_int("write", "striped", shown, "size", size)
        if io_callback is not None:
            check_io_callback("write", "striped", shown, "io_callback", io_callback)
        key = self._key("write", path)
        generation = new_generation()
        group = write_group(
            self._core, "write", path, generation, data, size=size, io_callback=io_callback
        )
        manifest = self._new_manifest(
            generation,
            group.stripes,
            group.size,
            f"composite:{group.checksum}",
            group.checksum,
            content_type,
            user_metadata,
        )
        self._publish("write", path, key, manifest, owned=True)
        return manifest.to_object(self._rel(key))

    @traced("stat")
    def stat(self, path: str, **pairs: Any) -> Object:
        self._pairs("stat", path, pairs)
        absolute = resolve("stat", "striped", self._wd, path)
        key = absolute[1:]
        if is_reserved(key):
            raise PathInvalidError("stat", "striped", path, "'.striped/' is reserved for Striped")
        if key.endswith("/"):
            try:
                obj = self._manifests.stat(key)
            except Exception as exc:
                raise restate(exc, "stat", path) from exc
            return Object(self._rel(key), ObjectMode.DIR, last_modified=obj.last_modified)
        return self._load("stat", path, key).to_object(self._rel(key))

    @traced("delete")
    def delete(self, path: str, **pairs: Any) -> None:
        self._pairs("delete", path, pairs)
        absolute = resolve("delete", "striped", self._wd, path)
        key = absolute[1:]
        if is_reserved(key):
            raise PathInvalidError("delete", "striped", path, "'.striped/' is reserved for Striped")
        try:
            with self._locks.hold([key]):
                self._manifests.delete(key)
        except NotFoundError:
            return
        except Exception as exc:
            raise restate(exc, "delete", path) from exc

    # -- Copier -------------------------------------------------------------------------

    @traced("copy")
    def copy(self, src: str, dst: str, **pairs: Any) -> None:
        """Copy by writing a new manifest that names the same immutable chunks."""
        self._pairs("copy", src, pairs)
        src_key = self._key("copy", src)
        dst_key = self._key("copy", dst)
        manifest = self._load("copy", src, src_key)
        copied = replace(manifest, generation=new_generation(), created=time.time())
        self._publish("copy", dst, dst_key, copied, owned=False)

    # -- Mover --------------------------------------------------------------------------

    @traced("move")
    def move(self, src: str, dst: str, **pairs: Any) -> None:
        """Move: publish the manifest at ``dst`` (the same chunks), then drop ``src``'s.

        ``src``'s manifest is deleted only if it is still the one moved (checked under
        its lock), so a write of ``src`` that lands meanwhile is kept.
        """
        self._pairs("move", src, pairs)
        src_key = self._key("move", src)
        dst_key = self._key("move", dst)
        manifest = self._load("move", src, src_key)
        if src_key == dst_key:
            return
        moved = replace(manifest, generation=new_generation())
        self._publish("move", dst, dst_key, moved, owned=False)
        with self._locks.hold([src_key]):
            try:
                current = Manifest.from_json(self._manifests.read(src_key), "move", src)
                if current.generation == manifest.generation:
                    self._manifests.delete(src_key)
            except NotFoundError:
                return
            except Exception as exc:
                raise restate(exc, "move", src) from exc

    # -- health -------------------------------------------------------------------------

    def health(self, *, recount: bool = False) -> dict[str, BackendHealth]:
        """Return each backend's state: up or down, last error, bytes used, quota.

        Bytes used are counted on first need (one listing of every backend's chunk
        area), then kept up to date by this store's writes and ``gc``; ``recount``
        lists the backends again (to see other processes' writes).
        """
        placement = self._core.placement
        usage = placement.usage()
        if usage is None or recount:
            usage = placement.recount()
        return {
            name: self._core.health.report(name, usage.get(name), placement.quotas.get(name))
            for name in self._backends
        }

    def mark_down(self, name: str, reason: str = "marked down") -> None:
        """Mark backend ``name`` down for a cooldown (maintenance, or a known outage).

        Raises:
            InvalidArgumentError: An unknown backend.
        """
        if name not in self._backends:
            raise InvalidArgumentError("mark_down", "striped", "", f"unknown backend {name!r}")
        self._core.health.mark_down(name, reason)
