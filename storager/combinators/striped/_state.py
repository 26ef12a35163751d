"""What Striped and its mixins share: paths, pairs, loading and publishing manifests."""

from __future__ import annotations

import contextlib
import functools
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any, TypeVar, cast

from storager._errors import OutcomeUnknownError, PathInvalidError
from storager._headers import check_header, check_header_map
from storager._pairs import check_str, check_str_map, unsupported
from storager._paths import relative_to, resolve
from storager._protocols import Storager
from storager.combinators._base import Wrapper, call_child
from storager.combinators._path_locks import PathLocks
from storager.combinators._trace import span, tracing
from storager.combinators.striped._core import Core, Damage
from storager.combinators.striped._manifest import Manifest, Stripe
from storager.combinators.striped._records import Records, is_reserved, restate
from storager.combinators.striped._writer import discard

__all__ = ["StripedState", "traced"]

F = TypeVar("F", bound=Callable[..., Any])


def traced(op: str) -> Callable[[F], F]:
    """Record a call of a Striped method as a span of its node, when a trace is active.

    The method's first argument is the path (or a Multipart, whose path is used).
    """

    def decorate(method: F) -> F:
        @functools.wraps(method)
        def run(self: StripedState, target: object, *args: Any, **kwargs: Any) -> Any:
            if not tracing():
                return method(self, target, *args, **kwargs)
            path = getattr(target, "path", target)
            with span(self.describe_label(), op, path if isinstance(path, str) else repr(path)):
                return method(self, target, *args, **kwargs)

        return cast(F, run)

    return decorate


class StripedState(Wrapper):
    """The state of a Striped store and the helpers every part of it uses."""

    combinator = "striped"
    _wd: str
    _backends: dict[str, Storager]
    _manifests: Storager
    _records: Records
    _loose: bool
    _default_content_type: str | None
    _locks: PathLocks
    _damaged: set[str]
    _damaged_lock: threading.Lock
    _core: Core

    # -- paths and pairs ----------------------------------------------------------------

    def _pairs(self, op: str, path: object, pairs: Mapping[str, Any]) -> None:
        if pairs and not self._loose:
            shown = path if isinstance(path, str) else repr(path)
            unsupported(op, "striped", shown, pairs)

    def _key(self, op: str, path: str) -> str:
        """Return the manifest-store key of an object path (resolved, not reserved)."""
        absolute = resolve(op, "striped", self._wd, path)
        key = absolute[1:]
        if is_reserved(key):
            raise PathInvalidError(op, "striped", path, "'.striped/' is reserved for Striped")
        return key

    def _rel(self, key: str) -> str:
        return relative_to(self._wd, "/" + key)

    # -- manifests ----------------------------------------------------------------------

    def _load(self, op: str, path: str, key: str) -> Manifest:
        try:
            raw = call_child(self._manifests, "read", key, lambda m: m.read(key))
        except Exception as exc:
            raise restate(exc, op, path) from exc
        return Manifest.from_json(raw, op, path)

    def _publish(self, op: str, path: str, key: str, manifest: Manifest, *, owned: bool) -> None:
        """Write ``manifest`` at ``key``: the commit point. ``owned`` chunks go on failure."""
        try:
            with self._locks.hold([key]):
                body = manifest.to_json()
                call_child(self._manifests, "write", key, lambda m: m.write(key, body))
        except OutcomeUnknownError:
            raise  # the manifest may still land: its chunks must stay
        except Exception as exc:
            if owned:
                discard(self._core, manifest.stripes)
            raise restate(exc, op, path) from exc
        except BaseException:
            if owned:
                discard(self._core, manifest.stripes)
            raise
        if manifest.degraded:
            missing = sum(s.missing for s in manifest.stripes)
            self._note_damage(
                Damage("/" + key, manifest.generation, [f"{missing} fragments not written"])
            )

    def _note_damage(self, damage: Damage) -> None:
        """Record an object for heal, once per generation (best effort)."""
        with self._damaged_lock:
            if damage.generation in self._damaged:
                return
            self._damaged.add(damage.generation)
        with contextlib.suppress(Exception):
            key = self._key("heal", damage.path)
            self._records.mark_degraded(key, damage.generation, damage.problems)

    def _new_manifest(
        self,
        generation: str,
        stripes: tuple[Stripe, ...],
        size: int,
        checksum: str,
        etag: str,
        content_type: str | None,
        user_metadata: Mapping[str, str] | None,
    ) -> Manifest:
        return Manifest(
            generation=generation,
            size=size,
            codec=self._core.codec.spec(),
            chunk_size=self._core.chunk_size,
            stripes=stripes,
            checksum=checksum,
            etag=etag,
            created=time.time(),
            content_type=content_type,
            user_metadata=dict(user_metadata or {}),
        )

    def _check_object_pairs(
        self,
        op: str,
        path: str,
        content_type: str | None,
        user_metadata: Mapping[str, str] | None,
    ) -> str | None:
        if content_type is not None:
            check_str(op, "striped", path, "content_type", content_type)
            check_header(op, "striped", path, "content_type", content_type)
        if user_metadata is not None:
            check_str_map(op, "striped", path, "user_metadata", user_metadata)
            check_header_map(op, "striped", path, "user_metadata", user_metadata)
        return content_type if content_type is not None else self._default_content_type
