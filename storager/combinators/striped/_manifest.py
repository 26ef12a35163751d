"""The manifest: the one mutable record of an object, published after its chunks.

A manifest names everything a reader needs: the object's size, content type, user
metadata, etag and whole-object checksum, the codec and chunk size, and for every
stripe its offset, length and fragments (backend, key, length, digest: see
``_digests``).
Chunks are immutable and named by a *generation*: a time-ordered id unique to the
write that made them (``{time_ns:016x}{random:012x}``), so two writes never share a
chunk name and the age of a chunk can be read from its name.

Manifests are JSON (``format: storager.striped/1``). A fragment that could not be
written is ``null``: the object is *degraded* until ``heal`` rebuilds it.
"""

from __future__ import annotations

import functools
import hashlib
import json
import re
import secrets
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from types import MappingProxyType
from typing import Any

from storager._errors import UnexpectedError
from storager._object import Object, ObjectMode
from storager.combinators.striped._codecs import Codec, codec_from_spec

__all__ = [
    "CHUNK_AREA",
    "FORMAT",
    "Fragment",
    "Manifest",
    "Stripe",
    "chunk_key",
    "codec_of",
    "composite_checksum",
    "generation_age",
    "generation_of_key",
    "new_generation",
    "stripes_from_json",
    "stripes_to_json",
]

FORMAT = "storager.striped/1"
#: Where chunks live on each backend, under the backend's work_dir.
CHUNK_AREA = ".striped/chunks/"
_GENERATION = re.compile(r"[0-9a-f]{28}")


def new_generation() -> str:
    """Return a new generation id: time-ordered (ns since the epoch) and unique."""
    return f"{time.time_ns():016x}{secrets.randbits(48):012x}"


def is_generation(text: str) -> bool:
    """Return whether ``text`` is a generation id."""
    return _GENERATION.fullmatch(text) is not None


def generation_age(generation: str, now: float | None = None) -> float:
    """Return the seconds since ``generation`` was made."""
    made = int(generation[:16], 16) / 1e9
    return (time.time() if now is None else now) - made


def chunk_key(generation: str, stripe: int, fragment: int) -> str:
    """Return the backend key of one fragment of one stripe of a write."""
    return f"{CHUNK_AREA}{generation}/{stripe}.{fragment}"


def generation_of_key(key: str) -> str | None:
    """Return the generation a chunk key was written by, or None if it is not a chunk."""
    if not key.startswith(CHUNK_AREA):
        return None
    gen = key[len(CHUNK_AREA) :].partition("/")[0]
    return gen if is_generation(gen) else None


def composite_checksum(stripes: Sequence[tuple[int, Sequence[str]]]) -> str:
    """Return the hex sha256 of each stripe's length and its fragments' digests, in order.

    It stands for the whole object's content (a change to any byte changes the digest of
    every fragment that byte reaches) without a second pass over the data.
    """
    sha = hashlib.sha256()
    for length, digests in stripes:
        sha.update(f"{length}:{','.join(digests)};".encode())
    return sha.hexdigest()


@dataclass(frozen=True, slots=True)
class Fragment:
    """One stored fragment: where it is, its length and its digest (``_digests``)."""

    backend: str
    key: str
    length: int
    digest: str


@dataclass(frozen=True, slots=True)
class Stripe:
    """One stripe: ``length`` bytes of the object at ``offset``, as fragments.

    ``fragments[i]`` is fragment ``i`` of the codec, or None where it is missing.
    """

    offset: int
    length: int
    fragments: tuple[Fragment | None, ...]

    @property
    def missing(self) -> int:
        """How many fragments are missing."""
        return sum(f is None for f in self.fragments)


@dataclass(frozen=True, slots=True)
class Manifest:
    """Everything a reader needs to rebuild one object; see the module docstring."""

    generation: str
    size: int
    codec: Mapping[str, Any]
    chunk_size: int
    stripes: tuple[Stripe, ...]
    checksum: str
    etag: str
    created: float
    content_type: str | None = None
    user_metadata: Mapping[str, str] = field(default_factory=dict)

    @property
    def degraded(self) -> bool:
        """Whether some fragment is missing."""
        return any(s.missing for s in self.stripes)

    def fragments(self) -> list[Fragment]:
        """Return every stored fragment."""
        return [f for s in self.stripes for f in s.fragments if f is not None]

    def with_stripes(self, stripes: Sequence[Stripe], generation: str) -> Manifest:
        """Return a copy with other stripes (after a heal) under a new generation."""
        return replace(self, stripes=tuple(stripes), generation=generation)

    def to_object(self, path: str) -> Object:
        """Return the Object ``stat`` reports for this manifest at ``path``."""
        codec = self.codec
        return Object(
            path,
            ObjectMode.READ,
            content_length=self.size,
            content_type=self.content_type,
            etag=self.etag,
            last_modified=datetime.fromtimestamp(self.created, UTC),
            user_metadata=MappingProxyType(dict(self.user_metadata)),
            system_metadata=MappingProxyType(
                {
                    "generation": self.generation,
                    "codec": codec_of(codec).label(),
                    "checksum": self.checksum,
                    "stripes": len(self.stripes),
                    "degraded": self.degraded,
                }
            ),
        )

    def to_json(self) -> bytes:
        """Return the manifest as compact JSON bytes."""
        doc = {
            "format": FORMAT,
            "generation": self.generation,
            "size": self.size,
            "content_type": self.content_type,
            "user_metadata": dict(self.user_metadata),
            "checksum": self.checksum,
            "etag": self.etag,
            "created": self.created,
            "codec": dict(self.codec),
            "chunk_size": self.chunk_size,
            "stripes": stripes_to_json(self.stripes),
        }
        return json.dumps(doc, separators=(",", ":"), ensure_ascii=False).encode()

    @classmethod
    def from_json(cls, raw: bytes, op: str, path: str) -> Manifest:
        """Parse what :meth:`to_json` wrote.

        Raises:
            UnexpectedError: ``raw`` is not a manifest of this format.
        """
        try:
            doc = json.loads(raw)
            if doc.get("format") != FORMAT:
                raise ValueError(f"format {doc.get('format')!r}")
            stripes = stripes_from_json(doc["stripes"])
            return cls(
                generation=str(doc["generation"]),
                size=int(doc["size"]),
                codec=dict(doc["codec"]),
                chunk_size=int(doc["chunk_size"]),
                stripes=stripes,
                checksum=str(doc["checksum"]),
                etag=str(doc["etag"]),
                created=float(doc["created"]),
                content_type=doc.get("content_type"),
                user_metadata=dict(doc.get("user_metadata") or {}),
            )
        except (ValueError, KeyError, TypeError, IndexError, AttributeError) as exc:
            raise UnexpectedError(op, "striped", path, f"unreadable manifest: {exc}") from exc


def stripes_to_json(stripes: Sequence[Stripe]) -> list[Any]:
    """Return stripes as JSON: ``[offset, length, [[backend, key, length, digest] | null]]``."""
    return [
        [
            s.offset,
            s.length,
            [None if f is None else [f.backend, f.key, f.length, f.digest] for f in s.fragments],
        ]
        for s in stripes
    ]


def stripes_from_json(value: Any, shift: int = 0) -> tuple[Stripe, ...]:
    """Parse what :func:`stripes_to_json` returned, moving every offset by ``shift``."""
    return tuple(
        Stripe(
            int(offset) + shift,
            int(length),
            tuple(
                None if f is None else Fragment(str(f[0]), str(f[1]), int(f[2]), str(f[3]))
                for f in frags
            ),
        )
        for offset, length, frags in value
    )


@functools.lru_cache(maxsize=64)
def _codec_cached(frozen: tuple[tuple[str, Any], ...]) -> Codec:
    return codec_from_spec(dict(frozen))


def codec_of(spec: Mapping[str, Any]) -> Codec:
    """Return the codec a manifest records (built once per distinct spec)."""
    return _codec_cached(tuple(sorted(spec.items())))
