"""Maintenance: ``gc`` (no leaked chunks), ``heal`` (rebuild what is lost), ``scrub``.

``gc(grace)`` lists the chunk area of every backend first, then every manifest and
upload record, and deletes each chunk that no record names and whose generation
(and, where the backend reports one, modification time) is at least ``grace``
seconds old. Listing chunks before manifests means a manifest published between
the two listings is seen; the grace period protects the chunks of writes still in
flight and of manifests replaced while readers still use them. After ``gc(0)`` with
no write in flight, the chunks on the backends are exactly those the records name.

``heal(path)`` reads every fragment of the object, rebuilds the missing and corrupt
ones from ``data`` good ones, checks that the good fragments re-encode to their
recorded digests, writes the rebuilt fragments under a new generation on backends
the stripe does not use yet, and publishes the new manifest only if the object was
not replaced meanwhile: checked and written under the path's lock, and, where the
manifest store honours ``if_match`` (memory, s3, redis), conditional on the etag of
the manifest it read, so another process's write is never overwritten either. ``heal()``
heals every object recorded as degraded; ``scrub()`` checks every object.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Iterator
from concurrent.futures import Future, wait
from dataclasses import dataclass, field
from functools import partial

from storager._errors import (
    InvalidArgumentError,
    NotFoundError,
    PreconditionFailedError,
    StorageError,
)
from storager.combinators.striped._digests import matches
from storager.combinators.striped._fragments import BadFragment, fetch_fragment
from storager.combinators.striped._manifest import (
    CHUNK_AREA,
    Fragment,
    Manifest,
    Stripe,
    chunk_key,
    codec_of,
    generation_age,
    generation_of_key,
    is_generation,
    new_generation,
    stripes_from_json,
)
from storager.combinators.striped._records import UPLOADS, is_reserved, restate
from storager.combinators.striped._state import StripedState
from storager.combinators.striped._writer import discard

__all__ = ["GcReport", "HealReport", "Maintenance"]


@dataclass(frozen=True, slots=True)
class GcReport:
    """What ``gc`` did.

    Attributes:
        deleted: Chunks deleted.
        deleted_bytes: Their bytes (as the backends listed them).
        kept_young: Unreferenced chunks kept because they are younger than the grace.
        referenced: Chunks the manifests and upload records name.
        skipped: Backends that could not be listed (down): nothing deleted there.
        aborted_uploads: Multipart uploads older than ``stale_uploads``, aborted.
    """

    deleted: int
    deleted_bytes: int
    kept_young: int
    referenced: int
    skipped: tuple[str, ...]
    aborted_uploads: int = 0


@dataclass(slots=True)
class HealReport:
    """What ``heal`` or ``scrub`` found for one object.

    Attributes:
        path: The object's path.
        damaged: One line per fragment found missing, corrupt or unreachable.
        rebuilt: Fragments rebuilt and written.
        lost: Stripes with fewer than ``data`` good fragments (unrecoverable now).
        note: Why nothing was published (``replaced meanwhile``...), or "".
    """

    path: str
    damaged: list[str] = field(default_factory=list)
    rebuilt: int = 0
    lost: int = 0
    note: str = ""

    @property
    def healthy(self) -> bool:
        """Whether the object is whole (nothing damaged, or everything rebuilt)."""
        return self.lost == 0 and not self.note and (not self.damaged or self.rebuilt > 0)


class Maintenance(StripedState):
    """gc, heal and scrub of Striped (see the module docstring)."""

    # -- gc -----------------------------------------------------------------------------

    def gc(self, grace: float = 86_400.0, *, stale_uploads: float | None = None) -> GcReport:
        """Delete every chunk no manifest or upload names, older than ``grace`` seconds.

        Args:
            grace: Chunks younger than this are kept (writes in flight, readers of a
                replaced manifest).
            stale_uploads: Abort first the multipart uploads started more than this many
                seconds ago (their parts' chunks go at once); None keeps every upload.

        Raises:
            InvalidArgumentError: A negative grace or stale_uploads.
            StorageError: A manifest could not be read (nothing is deleted then, as
                its chunks cannot be told apart from leaked ones).
        """
        for name, value in (("grace", grace), ("stale_uploads", stale_uploads)):
            if value is None and name == "stale_uploads":
                continue
            if isinstance(value, bool) or not isinstance(value, int | float) or not value >= 0:
                raise InvalidArgumentError("gc", "striped", "", f"{name} must be seconds >= 0")
        aborted = 0 if stale_uploads is None else self._abort_stale_uploads(stale_uploads)
        chunks: dict[str, list[tuple[str, int, float | None]]] = {}
        skipped: list[str] = []
        for name, backend in self._backends.items():
            try:
                chunks[name] = [
                    (
                        o.path,
                        o.content_length or 0,
                        o.last_modified.timestamp() if o.last_modified else None,
                    )
                    for o in backend.list(CHUNK_AREA, list_mode="prefix")
                    if not o.is_dir
                ]
            except Exception:
                skipped.append(name)
        referenced = self._referenced()
        now = time.time()
        doomed: list[tuple[str, str, int]] = []
        kept = 0
        for name, listed in chunks.items():
            for key, size, modified in listed:
                if (name, key) in referenced:
                    continue
                generation = generation_of_key(key)
                if generation is None:
                    continue  # not a chunk of ours
                age = generation_age(generation, now)
                if modified is not None:
                    age = min(age, now - modified)
                if age < grace:
                    kept += 1
                    continue
                doomed.append((name, key, size))
        deleted = self._core.delete_chunks((name, key) for name, key, _ in doomed)
        for name, _, size in doomed:
            self._core.placement.add(name, -size)
        self._drop_empty_dirs(doomed)
        return GcReport(
            deleted, sum(s for _, _, s in doomed), kept, len(referenced), tuple(skipped), aborted
        )

    def _abort_stale_uploads(self, older_than: float) -> int:
        """Abort the uploads started more than ``older_than`` seconds ago; return how many."""
        records = self._records
        try:
            upload_ids = records.upload_ids()
        except Exception as exc:
            raise restate(exc, "gc", "") from exc
        now = time.time()
        aborted = 0
        for upload_id in upload_ids:
            if not is_generation(upload_id) or generation_age(upload_id, now) < older_than:
                continue
            for key in records.part_keys(upload_id):
                with contextlib.suppress(Exception):
                    discard(self._core, stripes_from_json(records.read_json(key)["stripes"]))
                    records.store.delete(key)
            with contextlib.suppress(Exception):
                records.store.delete(records.upload_key(upload_id))
                aborted += 1
        return aborted

    def _referenced(self) -> set[tuple[str, str]]:
        """Return every (backend, key) a manifest or upload record names."""
        referenced: set[tuple[str, str]] = set()
        store = self._manifests
        try:
            keys = [o.path for o in store.list("", list_mode="prefix") if not o.is_dir]
        except Exception as exc:
            raise restate(exc, "gc", "") from exc
        for key in keys:
            if is_reserved(key) and not key.startswith(UPLOADS):
                continue
            try:
                raw = store.read(key)
            except NotFoundError:
                continue  # deleted meanwhile
            except Exception as exc:
                raise restate(exc, "gc", key) from exc
            for fragment in _fragments_named(raw, key):
                referenced.add((fragment.backend, fragment.key))
        return referenced

    def _drop_empty_dirs(self, doomed: list[tuple[str, str, int]]) -> None:
        """Remove the generation directories left empty (stores with real directories)."""
        dirs = {(name, key.rpartition("/")[0] + "/") for name, key, _ in doomed}
        for name, directory in dirs:
            backend = self._backends[name]
            with contextlib.suppress(Exception):
                if not any(True for _ in backend.list(directory)):
                    backend.delete(directory)

    # -- heal and scrub -----------------------------------------------------------------

    def heal(self, path: str | None = None) -> list[HealReport]:
        """Rebuild missing or corrupt fragments of ``path``, or of every degraded object.

        Returns:
            One report per object looked at.

        Raises:
            NotFoundError: ``path`` names no object.
        """
        if path is not None:
            return [self._check("heal", path, repair=True)]
        reports = []
        for generation, key in list(self._records.degraded()):
            try:
                report = self._check("heal", "/" + key, repair=True)
            except NotFoundError:
                self._records.clear_degraded(generation)
                continue
            reports.append(report)
            if report.healthy:
                self._records.clear_degraded(generation)
                with self._damaged_lock:
                    self._damaged.discard(generation)
        return reports

    def scrub(self, *, repair: bool = False) -> list[HealReport]:
        """Check every fragment of every object; with ``repair``, heal what is damaged.

        Returns:
            The reports of the objects found damaged.
        """
        reports = []
        for key in self._object_keys():
            try:
                report = self._check("scrub", "/" + key, repair=repair)
            except NotFoundError:
                continue
            if report.damaged or report.lost or report.note:
                reports.append(report)
        return reports

    def _object_keys(self) -> Iterator[str]:
        for obj in list(self._manifests.list("", list_mode="prefix")):
            if not obj.is_dir and not is_reserved(obj.path):
                yield obj.path

    def _check(self, op: str, path: str, *, repair: bool) -> HealReport:
        key = self._key(op, path)
        # Where the manifest store honours if_match, the heal publishes only over the
        # very manifest it read, whichever process changed it meanwhile.
        etag: str | None = None
        if repair and self._manifests.metadata().capability.accepts("write", "if_match"):
            try:
                etag = self._manifests.stat(key).etag
            except Exception as exc:
                raise restate(exc, op, path) from exc
        manifest = self._load(op, path, key)
        report = HealReport(self._rel(key))
        generation = new_generation()
        stripes: list[Stripe] = []
        rebuilt: list[Fragment] = []
        for index, stripe in enumerate(manifest.stripes):
            stripes.append(
                self._check_stripe(manifest, index, stripe, generation, report, repair, rebuilt)
            )
        if not rebuilt:
            return report
        written = (Stripe(0, 0, tuple(rebuilt)),)
        healed = manifest.with_stripes(stripes, generation)
        with self._locks.hold([key]):
            try:
                current = Manifest.from_json(self._manifests.read(key), op, path)
            except StorageError:
                current = None
            if current is None or current.generation != manifest.generation:
                return self._not_published(report, written)
            try:
                if etag is None:
                    self._manifests.write(key, healed.to_json())
                else:
                    self._manifests.write(key, healed.to_json(), if_match=etag)
            except PreconditionFailedError:
                return self._not_published(report, written)
            except Exception as exc:
                discard(self._core, written)
                raise restate(exc, op, path) from exc
        return report

    def _not_published(self, report: HealReport, written: tuple[Stripe, ...]) -> HealReport:
        discard(self._core, written)
        report.note = "replaced or deleted meanwhile: nothing published"
        report.rebuilt = 0
        return report

    def _check_stripe(
        self,
        manifest: Manifest,
        index: int,
        stripe: Stripe,
        generation: str,
        report: HealReport,
        repair: bool,
        rebuilt: list[Fragment],
    ) -> Stripe:
        """Verify every fragment of a stripe; rebuild the bad ones when ``repair``."""
        core = self._core
        codec = codec_of(manifest.codec)
        recorded = {i: f for i, f in enumerate(stripe.fragments) if f is not None}
        futures: dict[int, Future[bytes]] = {
            i: core.io(partial(fetch_fragment, core, f)) for i, f in recorded.items()
        }
        wait(list(futures.values()))
        good: dict[int, bytes] = {}
        bad: list[int] = [i for i, f in enumerate(stripe.fragments) if f is None]
        for i in bad:
            report.damaged.append(f"stripe {index} fragment {i}: never written")
        for i, future in futures.items():
            fragment = recorded[i]
            try:
                good[i] = future.result()
            except (BadFragment, NotFoundError) as exc:
                what = "chunk missing" if isinstance(exc, NotFoundError) else str(exc)
                report.damaged.append(f"stripe {index} fragment {i} on {fragment.backend}: {what}")
                bad.append(i)
            except Exception as exc:
                # Unreachable, not known to be lost: left alone.
                report.damaged.append(
                    f"stripe {index} fragment {i} on {fragment.backend}: unreachable ({exc})"
                )
        if not bad or not repair:
            return stripe
        if len(good) < codec.data:
            report.lost += 1
            return stripe
        data = codec.decode(dict(sorted(good.items())[: codec.data]), stripe.length)
        fragments = codec.encode(data)
        for i in good:
            if not matches(recorded[i].digest, fragments[i]):
                report.note = f"stripe {index}: fragment {i} does not re-encode to its digest"
                return stripe
        # Every fragment not known lost keeps its backend (an unreachable one may come back).
        used = {f.backend for i, f in recorded.items() if i not in bad}
        new = list(stripe.fragments)
        for i in sorted(bad):
            rebuilt_payload = fragments[i]
            targets = core.placement.choose(1, len(rebuilt_payload), exclude=used)
            if not targets:
                report.damaged.append(f"stripe {index} fragment {i}: no backend to rebuild on")
                continue
            name = targets[0]
            key = chunk_key(generation, index, i)
            try:
                core.put(name, key, rebuilt_payload)
            except Exception as exc:
                core.placement.add(name, -len(rebuilt_payload))
                report.damaged.append(
                    f"stripe {index} fragment {i}: rebuild on {name} failed ({exc})"
                )
                continue
            used.add(name)
            fragment = Fragment(name, key, len(rebuilt_payload), core.digest.of(rebuilt_payload))
            new[i] = fragment
            rebuilt.append(fragment)
            report.rebuilt += 1
        return Stripe(stripe.offset, stripe.length, tuple(new))


def _fragments_named(raw: bytes, key: str) -> list[Fragment]:
    """Return the fragments a manifest or part record names ([] if it is neither)."""
    try:
        doc = json.loads(raw)
    except ValueError:
        return []
    if not isinstance(doc, dict) or "stripes" not in doc:
        return []
    try:
        stripes = stripes_from_json(doc["stripes"])
    except (ValueError, TypeError, KeyError, IndexError):
        return []
    return [f for s in stripes for f in s.fragments if f is not None]
