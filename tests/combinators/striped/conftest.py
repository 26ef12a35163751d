"""Helpers for the Striped tests: stores over FaultyStorager(MemoryStorage) backends."""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from storager.combinators.striped import Codec, ReedSolomon, Striped
from storager.combinators.striped import _in_place as in_place
from storager.services.memory import MemoryStorage
from storager.testing import FaultyStorager

CHUNK_AREA = ".striped/chunks/"


class Rig:
    """A Striped store and the stores under it, for looking behind it."""

    def __init__(self, codec: Codec, n: int, **kwargs: Any) -> None:
        self.inner = {f"b{i}": MemoryStorage() for i in range(n)}
        self.backends = {name: FaultyStorager(store) for name, store in self.inner.items()}
        self.manifests = FaultyStorager(MemoryStorage())
        kwargs.setdefault("chunk_size", 1024)
        kwargs.setdefault("hedge_after", None)
        self.store = Striped(self.backends, codec=codec, manifests=self.manifests, **kwargs)

    def chunks(self) -> set[tuple[str, str]]:
        """Every chunk on every backend, as (backend, key)."""
        return {
            (name, obj.path)
            for name, store in self.inner.items()
            for obj in store.list(CHUNK_AREA, list_mode="prefix")
            if not obj.is_dir
        }

    def referenced(self) -> set[tuple[str, str]]:
        """Every chunk a manifest or an upload's part names."""
        inner = self.manifests.inner
        found = set()
        for obj in inner.list("", list_mode="prefix"):
            if obj.is_dir or obj.path.startswith(".striped/degraded/"):
                continue
            doc = json.loads(inner.read(obj.path))
            if "stripes" not in doc:
                continue
            for _, _, fragments in doc["stripes"]:
                for fragment in fragments:
                    if fragment is not None:
                        found.add((fragment[0], fragment[1]))
        return found

    def manifest(self, path: str) -> dict[str, Any]:
        """The manifest of ``path`` as JSON."""
        doc: dict[str, Any] = json.loads(self.manifests.inner.read(path))
        return doc

    def heal_backends(self) -> None:
        for backend in self.backends.values():
            backend.heal()
        self.manifests.heal()


@pytest.fixture
def rig_factory() -> Iterator[Callable[..., Rig]]:
    rigs: list[Rig] = []

    def make(codec: Codec | None = None, n: int = 6, **kwargs: Any) -> Rig:
        rig = Rig(codec or ReedSolomon(4, 2), n, **kwargs)
        rigs.append(rig)
        return rig

    yield make
    for rig in rigs:
        rig.store.close()


def fast_rig(
    rig_factory: Callable[..., Rig],
    monkeypatch: pytest.MonkeyPatch,
    lanes: int,
    rate: float = 1.0,
    **kwargs: Any,
) -> tuple[Rig, bytes, list[str]]:
    """One stripe written; every backend known fast (read once), ``lanes`` CPUs, a read
    fast from ``rate`` bytes/s (1: memory backends always are). Returns the rig, the
    object and the backend of each of its fragments."""
    monkeypatch.setattr(in_place, "FAST_RATE", rate)
    rig = rig_factory(ReedSolomon(4, 2, library="isa-l"), **kwargs)
    rig.store._core.lanes = lanes
    data = os.urandom(4 * rig.store._core.chunk_size)
    rig.store.write("obj", data)
    for name in rig.backends:  # as if every fragment had been read once, into place
        rig.store._core.fast.add(name)
        rig.store._core.quick.add(name)
    return rig, data, [f[0] for f in rig.manifest("obj")["stripes"][0][2]]
