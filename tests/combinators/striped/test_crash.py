"""A writer that dies mid-write: its chunks stay until gc, which leaves none unreferenced."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from storager import NotFoundError, ServiceInternalError
from storager.combinators.striped import ReedSolomon, Striped
from storager.services.fs import FsStorage

from .conftest import CHUNK_AREA, Rig

_WRITER = """
import os, sys, time
from storager.combinators.striped import ReedSolomon, Striped
from storager.services.fs import FsStorage
root = sys.argv[1]
store = Striped({n: FsStorage(root=os.path.join(root, n)) for n in "abcdef"},
                codec=ReedSolomon(4, 2), chunk_size=4096,
                manifests=FsStorage(root=os.path.join(root, "manifests")))
store.write("kept", b"k" * 50_000)
def slow():
    for i in range(10_000):
        if i == 20:
            print("writing", flush=True)
        time.sleep(0.001)
        yield bytes([i % 251]) * 4096
store.write("killed", slow())
"""


def _fs_store(root: Path) -> Striped:
    return Striped(
        {n: FsStorage(root=str(root / n)) for n in "abcdef"},
        codec=ReedSolomon(4, 2),
        chunk_size=4096,
        manifests=FsStorage(root=str(root / "manifests")),
    )


def _chunk_files(root: Path) -> int:
    """Count the chunks the fs backends hold (their own temp files of a killed write aside:
    the fs service sweeps those, see sweep_temp_files)."""
    return sum(
        1
        for n in "abcdef"
        for obj in FsStorage(root=str(root / n)).list(CHUNK_AREA, list_mode="prefix")
        if not obj.is_dir
    )


def test_sigkilled_writer_leaves_chunks_that_gc_removes(tmp_path: Path) -> None:
    child = subprocess.Popen(
        [sys.executable, "-c", _WRITER, str(tmp_path)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert child.stdout is not None
        assert child.stdout.readline().strip() == "writing"
        time.sleep(0.2)
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait()
    with _fs_store(tmp_path) as store:
        kept = _chunk_files(tmp_path)
        with pytest.raises(NotFoundError):
            store.stat("killed")  # never published
        assert store.read("kept") == b"k" * 50_000
        assert store.gc(grace=3600).deleted == 0  # a writer this young may be alive
        report = store.gc(grace=0)
        assert report.deleted > 0
        assert _chunk_files(tmp_path) == kept - report.deleted
        assert store.scrub() == []
        assert store.read("kept") == b"k" * 50_000
        stripes = store.stat("kept").system_metadata["stripes"]
        assert stripes == 4 and _chunk_files(tmp_path) == stripes * 6  # only kept's chunks


def test_failed_cleanup_leaks_only_until_gc(rig_factory: Callable[..., Rig]) -> None:
    rig = rig_factory()
    rig.store.write("old", os.urandom(3000))
    for backend in rig.backends.values():
        backend.fail = {"delete": ServiceInternalError}
    rig.manifests.fail = {"write": 1}  # the publish fails; the cleanup's deletes fail too
    with pytest.raises(ServiceInternalError):
        rig.store.write("new", os.urandom(20_000))
    rig.heal_backends()
    assert rig.chunks() > rig.referenced()
    rig.store.gc(grace=0)
    assert rig.chunks() == rig.referenced()
    assert all(key.startswith(CHUNK_AREA) for _, key in rig.chunks())
