"""fs: temporary files of writers that died are cleaned; those of live writers are kept."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from storager import ObjectModeInvalidError, PairInvalidError
from storager.services.fs import TEMP_PREFIX, FsStorage

WRITER = """
import sys
from storager.services.fs import FsStorage

def chunks():
    block = b"x" * (1 << 20)
    yield block
    print("writing", flush=True)
    while True:  # a large streaming write that never ends on its own
        yield block

FsStorage(root=sys.argv[1]).write("d/big.bin", chunks())
"""


def temp_files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.name.startswith(TEMP_PREFIX))


def kill_a_writer_mid_write(root: Path) -> Path:
    """Run a streaming write in a subprocess, SIGKILL it mid-write; return its temp file."""
    proc = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(root)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "writing"
        time.sleep(0.05)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
        if proc.stdout is not None:
            proc.stdout.close()
    assert proc.returncode == -signal.SIGKILL
    (leftover,) = temp_files(root)
    assert leftover.stat().st_size >= 1 << 20
    return leftover


def age(path: Path, seconds: float) -> None:
    then = time.time() - seconds
    os.utime(path, (then, then))


def test_deleting_a_directory_a_killed_writer_left_a_stale_temp_file_in_succeeds(
    tmp_path: Path,
) -> None:
    leftover = kill_a_writer_mid_write(tmp_path)
    store = FsStorage(root=str(tmp_path), temp_max_age=30.0)
    assert list(store.list("d/")) == []
    assert not (tmp_path / "d" / "big.bin").exists()
    # Young: it may be a live writer's, so it is kept and the delete says why.
    with pytest.raises(ObjectModeInvalidError, match="in flight"):
        store.delete("d/")
    assert leftover.exists()
    age(leftover, 31.0)
    store.delete("d/")
    assert not (tmp_path / "d").exists()


def test_sweep_removes_a_killed_writers_temp_file_once_it_is_old_enough(tmp_path: Path) -> None:
    leftover = kill_a_writer_mid_write(tmp_path)
    store = FsStorage(root=str(tmp_path))
    assert store.sweep_temp_files() == 0  # default age: one hour
    assert store.sweep_temp_files(older_than=60.0) == 0
    assert leftover.exists()
    time.sleep(0.3)
    assert store.sweep_temp_files(older_than=0.2) == 1
    assert temp_files(tmp_path) == []
    assert (tmp_path / "d").is_dir()  # the directory itself stays
    store.delete("d/")
    assert not (tmp_path / "d").exists()


def test_a_directory_with_objects_and_a_stale_temp_file_is_not_emptied(tmp_path: Path) -> None:
    store = FsStorage(root=str(tmp_path), temp_max_age=0.0)
    store.write("d/keep.txt", b"keep")
    stale = tmp_path / "d" / f"{TEMP_PREFIX}dead-1"
    stale.write_bytes(b"partial")
    age(stale, 10.0)
    with pytest.raises(ObjectModeInvalidError, match="not empty"):
        store.delete("d/")
    assert stale.exists()
    assert store.read("d/keep.txt") == b"keep"


def test_a_live_writers_temp_file_survives_sweep_and_delete_and_the_write_lands(
    tmp_path: Path,
) -> None:
    store = FsStorage(root=str(tmp_path), temp_max_age=5.0)
    seen: list[object] = []

    def chunks() -> Iterator[bytes]:
        yield b"first "
        seen.append(store.sweep_temp_files())
        try:
            store.delete("d/")
        except ObjectModeInvalidError as exc:
            seen.append(exc.reason)
        yield b"second"

    store.write("d/live.txt", chunks())
    assert seen == [0, "a write into this directory is in flight"]
    assert store.read("d/live.txt") == b"first second"
    assert temp_files(tmp_path) == []


def test_temp_max_age_and_older_than_must_be_finite_and_not_negative(tmp_path: Path) -> None:
    for bad in (-1.0, float("nan"), float("inf"), "1"):
        with pytest.raises(PairInvalidError):
            FsStorage(root=str(tmp_path), temp_max_age=bad)
    store = FsStorage(root=str(tmp_path))
    for bad in (-1.0, float("nan"), float("inf")):
        with pytest.raises(PairInvalidError):
            store.sweep_temp_files(older_than=bad)
