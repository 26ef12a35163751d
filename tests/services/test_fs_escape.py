"""fs: no path leaves the root, even while directories are swapped for symbolic links.

Every path is resolved beneath a descriptor held on the root (services/fs/_beneath.py),
by one ``openat2`` where the kernel has it and the path is plain, by the walk otherwise:
each test runs with both.
These tests swap directories for outward links before and during operations and check
that nothing outside the root was created, read, listed or removed.
"""

from __future__ import annotations

import contextlib
import gc
import os
import shutil
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from storager import ObjectMode, PathInvalidError, StorageError
from storager.services.fs import FsStorage, _openat2
from tests.services._kernel import KERNEL_OPENAT2

CANARY = b"CANARY outside the root"


@pytest.fixture(autouse=True, params=["openat2", "walk"])
def resolver(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Each attack twice: opens by one ``openat2`` where the kernel has it, and by the walk."""
    if request.param == "walk":
        monkeypatch.setattr(_openat2, "_openat2", None)
    elif KERNEL_OPENAT2 is None:
        pytest.skip("this kernel (or its seccomp filter) has no openat2: the walk is tested")
    else:  # on, even if an earlier test switched the module's own off
        monkeypatch.setattr(_openat2, "_openat2", KERNEL_OPENAT2)
    return str(request.param)


@pytest.fixture
def layout(tmp_path: Path) -> tuple[Path, Path]:
    """A root with a directory d/, and an outside directory holding a canary file."""
    root = tmp_path / "root"
    outside = tmp_path / "outside"
    (root / "d").mkdir(parents=True)
    (root / "d" / "inside.txt").write_bytes(b"inside")
    (outside / "sub").mkdir(parents=True)
    (outside / "canary.txt").write_bytes(CANARY)
    (outside / "sub" / "deep.txt").write_bytes(CANARY)
    return root, outside


def outside_state(outside: Path) -> dict[str, tuple[bytes, int]]:
    return {
        p.relative_to(outside).as_posix(): (p.read_bytes(), p.stat().st_mtime_ns)
        for p in sorted(outside.rglob("*"))
        if p.is_file()
    } | {
        p.relative_to(outside).as_posix() + "/": (b"", 0) for p in outside.rglob("*") if p.is_dir()
    }


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def swap_for_outward_link(root: Path, outside: Path) -> None:
    os.rename(root / "d", root / "held")
    os.symlink(outside, root / "d")


# -- a directory swapped for a link after it was used ------------------------------------


OPS: list[tuple[str, Callable[[FsStorage], object]]] = [
    ("write", lambda s: s.write("d/planted.txt", b"x")),
    ("write over", lambda s: s.write("d/canary.txt", b"x")),
    ("read", lambda s: s.read("d/canary.txt")),
    ("open_reader", lambda s: s.open_reader("d/canary.txt").read()),
    ("stat", lambda s: s.stat("d/canary.txt")),
    ("stat dir", lambda s: s.stat("d/sub/")),
    ("list", lambda s: list(s.list("d/"))),
    ("list prefix", lambda s: list(s.list("d/", list_mode="prefix"))),
    ("list prefix from root", lambda s: [o for o in s.list("", list_mode="prefix")]),
    ("delete", lambda s: s.delete("d/canary.txt")),
    ("delete dir", lambda s: s.delete("d/sub/")),
    ("append", lambda s: s.append("d/canary.txt", b"more")),
    ("copy out", lambda s: s.copy("d/canary.txt", "stolen.txt")),
    ("copy in", lambda s: s.copy("held/inside.txt", "d/planted.txt")),
    ("move out", lambda s: s.move("d/canary.txt", "taken.txt")),
    ("move in", lambda s: s.move("held/inside.txt", "d/planted.txt")),
    ("create_dir", lambda s: s.create_dir("d/newdir")),
]


@pytest.mark.parametrize(("name", "op"), OPS, ids=[name for name, _ in OPS])
def test_a_directory_swapped_for_an_outward_link_after_first_use_is_not_followed(
    layout: tuple[Path, Path], name: str, op: Callable[[FsStorage], object]
) -> None:
    root, outside = layout
    store = FsStorage(root=str(root))
    # Use d/ first, so that a store remembering checked directories would trust it.
    store.write("d/warm.txt", b"warm")
    assert store.read("d/inside.txt") == b"inside"
    assert [o.path for o in store.list("d/")] == ["d/inside.txt", "d/warm.txt"]
    swap_for_outward_link(root, outside)
    before = outside_state(outside)
    try:
        result = op(store)
    except StorageError as exc:
        assert isinstance(exc, PathInvalidError), repr(exc)
        assert str(outside) not in str(exc)
    else:
        # Only a root-wide prefix listing may succeed: it shows d as a link, not its files.
        assert name == "list prefix from root", result
        paths = {o.path for o in result}  # type: ignore[attr-defined]
        assert paths == {"d", "held/inside.txt", "held/warm.txt"}
    assert outside_state(outside) == before
    assert sorted(p.name for p in root.iterdir()) == ["d", "held"]
    store.close()


# -- the final component is an outward link ---------------------------------------------


def test_a_final_outward_link_is_never_read_stat_or_appended_through(
    layout: tuple[Path, Path],
) -> None:
    root, outside = layout
    os.symlink(outside / "canary.txt", root / "d" / "link.txt")
    store = FsStorage(root=str(root))
    before = outside_state(outside)
    for op in (
        lambda: store.read("d/link.txt"),
        lambda: store.read("d/link.txt", offset=1, size=2),
        lambda: store.open_reader("d/link.txt"),
        lambda: store.stat("d/link.txt"),
        lambda: store.append("d/link.txt", b"more"),
        lambda: store.copy("d/link.txt", "d/copy.txt"),
    ):
        with pytest.raises(PathInvalidError, match="symbolic link leads outside"):
            op()
    assert outside_state(outside) == before
    # Writing or deleting the name acts on the link itself, never on what it points at.
    store.write("d/link.txt", b"replaced")
    assert not (root / "d" / "link.txt").is_symlink()
    os.unlink(root / "d" / "link.txt")
    os.symlink(outside / "canary.txt", root / "d" / "link.txt")
    store.delete("d/link.txt")
    assert not os.path.lexists(root / "d" / "link.txt")
    assert outside_state(outside) == before


# -- links that stay inside ----------------------------------------------------------------


def test_links_that_stay_inside_are_followed_component_by_component(tmp_path: Path) -> None:
    root = tmp_path / "root"
    (root / "real" / "deep").mkdir(parents=True)
    (root / "real" / "deep" / "a.txt").write_bytes(b"A")
    (root / "other").mkdir()
    os.symlink("../real", root / "other" / "up")  # relative, climbing with ..
    os.symlink(root / "real", root / "abs")  # absolute, under the root's real path
    os.symlink("other/up/deep", root / "chain")  # a link through a link
    os.symlink(".", root / "self")  # the root itself
    store = FsStorage(root=str(root))
    assert store.read("other/up/deep/a.txt") == b"A"
    assert store.read("abs/deep/a.txt") == b"A"
    assert store.read("chain/a.txt") == b"A"
    assert store.read("self/self/real/deep/a.txt") == b"A"
    assert store.stat("chain/").mode == ObjectMode.DIR
    assert [o.path for o in store.list("chain/")] == ["chain/a.txt"]
    store.write("chain/b.txt", b"B")
    assert (root / "real" / "deep" / "b.txt").read_bytes() == b"B"
    store.append("abs/deep/b.txt", b"+")
    assert (root / "real" / "deep" / "b.txt").read_bytes() == b"B+"
    store.create_dir("other/up/made/")
    assert (root / "real" / "made").is_dir()


def test_inward_links_that_climb_out_or_loop_are_refused(tmp_path: Path) -> None:
    root = tmp_path / "root"
    outside = tmp_path / "outside"
    (root / "a").mkdir(parents=True)
    outside.mkdir()
    (outside / "canary.txt").write_bytes(CANARY)
    os.symlink("../../outside", root / "a" / "climb")  # relative, out through ..
    os.symlink("../a/climb", root / "a" / "via")  # inside, to a link that leads out
    os.symlink("loop2", root / "loop1")
    os.symlink("loop1", root / "loop2")
    store = FsStorage(root=str(root))
    for path in ("a/climb/canary.txt", "a/via/canary.txt"):
        for op in (store.read, store.stat, lambda p: store.write(p, b"x")):
            with pytest.raises(PathInvalidError, match="symbolic link leads outside"):
                op(path)
    with pytest.raises(PathInvalidError):
        store.read("loop1/x.txt")
    with pytest.raises(PathInvalidError):
        store.stat("loop1")
    assert sorted(p.name for p in outside.iterdir()) == ["canary.txt"]
    assert (outside / "canary.txt").read_bytes() == CANARY


# -- descriptors ---------------------------------------------------------------------------


def test_no_descriptor_is_leaked_by_any_operation_or_by_the_store(
    layout: tuple[Path, Path],
) -> None:
    root, outside = layout
    os.symlink("d", root / "alias")
    before = open_fds()
    store = FsStorage(root=str(root))
    for i in range(50):
        store.write(f"d/e/f{i}.txt", b"x")
        store.read(f"alias/e/f{i}.txt")
        store.stat(f"alias/e/f{i}.txt")
        store.append(f"d/e/log{i}", b"x")
        store.copy(f"d/e/f{i}.txt", f"d/g/f{i}.txt")
        store.move(f"d/g/f{i}.txt", f"d/h/f{i}.txt")
        with store.open_reader(f"d/e/f{i}.txt", offset=0, size=1) as reader:
            reader.read()
        list(store.list("alias/e/"))
        next(iter(store.list("", list_mode="prefix")))  # abandoned part-way
        store.delete(f"d/e/log{i}")
        with pytest.raises(StorageError):
            store.read("missing/x")
    swap_for_outward_link(root, outside)
    with pytest.raises(PathInvalidError):
        store.write("d/x/y.txt", b"x")
    store.sweep_temp_files()
    gc.collect()
    assert open_fds() == before + 1  # the root's own descriptor
    store.close()
    assert open_fds() == before
    FsStorage(root=str(root))  # never closed: the descriptor goes with the store
    gc.collect()
    assert open_fds() == before


# -- the race ------------------------------------------------------------------------------


def test_swapping_a_directory_for_an_outward_link_during_operations_never_escapes(
    layout: tuple[Path, Path],
) -> None:
    root, outside = layout
    store = FsStorage(root=str(root))
    before = outside_state(outside)
    stop = threading.Event()
    escapes: list[str] = []
    unexpected: list[str] = []
    swaps = 0
    counts = dict.fromkeys(("write", "read", "list", "stat", "delete", "ok"), 0)

    def swapper() -> None:
        nonlocal swaps
        d, hold = root / "d", root / "held"
        while not stop.is_set():
            try:
                os.rename(d, hold)
                os.symlink(outside, d)
                time.sleep(0.0005)
                os.unlink(d)
                os.rename(hold, d)
                swaps += 1
            except OSError:
                # A writer made d again while it was away: put the real d back.
                while hold.exists():
                    if os.path.islink(d):
                        os.unlink(d)
                    shutil.rmtree(d, ignore_errors=True)
                    with contextlib.suppress(OSError):
                        os.rename(hold, d)

    def worker(n: int) -> None:
        i = 0
        while not stop.is_set():
            i += 1
            # (operation, call, whether the name exists only outside the root)
            calls: list[tuple[str, Callable[[], object], bool]] = [
                ("write", lambda i=i: store.write(f"d/w{n}-{i % 5}.txt", b"w"), False),
                ("write", lambda: store.append(f"d/log{n}", b"a"), False),
                ("read", lambda: store.read("d/canary.txt"), True),
                ("read", lambda: store.read("d/inside.txt"), False),
                ("stat", lambda: store.stat("d/canary.txt"), True),
                ("stat", lambda: store.stat("d/sub/deep.txt"), True),
                ("list", lambda: [o.path for o in store.list("d/")], False),
                ("list", lambda: [o.path for o in store.list("d/", list_mode="prefix")], False),
                ("delete", lambda: store.delete("d/sub/deep.txt"), False),
                ("delete", lambda i=i: store.delete(f"d/w{n}-{(i + 2) % 5}.txt"), False),
            ]
            for op, call, outside_only in calls:
                counts[op] += 1
                try:
                    result = call()
                except StorageError:
                    continue
                except Exception as exc:  # any other exception is a finding
                    unexpected.append(f"{op}: {exc!r}")
                    continue
                counts["ok"] += 1
                # d/ inside never holds canary.txt or sub/: reaching either is an escape.
                if outside_only:
                    escapes.append(f"{op} reached outside: {result!r}")
                if op == "list" and any("canary" in p or "sub/" in p for p in result):  # type: ignore[attr-defined]
                    escapes.append(f"listed {result}")

    threads = [threading.Thread(target=swapper)] + [
        threading.Thread(target=worker, args=(n,)) for n in range(3)
    ]
    for thread in threads:
        thread.start()
    # 2.5 s at least; on a busy machine on until enough swaps and operations (20 s at most).
    started = time.monotonic()
    while (elapsed := time.monotonic() - started) < 2.5 or (
        (swaps <= 50 or counts["ok"] <= 100) and elapsed < 20
    ):
        time.sleep(0.1)
    stop.set()
    for thread in threads:
        thread.join()
    store.close()
    assert swaps > 50
    assert counts["ok"] > 100
    assert unexpected == []
    assert escapes == []
    assert outside_state(outside) == before
