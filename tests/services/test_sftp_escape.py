"""sftp: no path leaves the root, even while directories are swapped for symbolic links.

SFTP has no ``openat``: the store resolves each path on the server (``realpath``) right
before each operation and then works on the resolved path (services/sftp/_root.py).
sshd runs on this machine, so the tests swap directories under the server's root with
the os module and look at an outside directory the store must never touch.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import random
import secrets
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from storager import NotFoundError, ObjectMode, PathInvalidError, StorageError
from storager.services.sftp import SftpStorage
from tests.servers.sshd import SSHDServer

pytestmark = pytest.mark.sftp

CANARY = b"CANARY outside the root"


@dataclass
class Layout:
    root: Path
    outside: Path
    store: SftpStorage


@pytest.fixture
def layout(sshd_server: SSHDServer, tmp_path: Path) -> Iterator[Layout]:
    """A store rooted at a fresh directory with d/, and an outside directory with canaries."""
    root = sshd_server.root_dir / f"esc-{secrets.token_hex(4)}"
    (root / "d").mkdir(parents=True)
    (root / "d" / "inside.txt").write_bytes(b"inside")
    outside = tmp_path / "outside"
    (outside / "sub").mkdir(parents=True)
    (outside / "canary.txt").write_bytes(CANARY)
    (outside / "sub" / "deep.txt").write_bytes(CANARY)
    store = SftpStorage(
        host=sshd_server.host,
        port=sshd_server.port,
        user=sshd_server.username,
        root=str(root),
        private_key=str(sshd_server.client_key_path),
        known_hosts=str(sshd_server.known_hosts_path),
    )
    yield Layout(root, outside, store)
    store.close()


def outside_state(outside: Path) -> dict[str, tuple[bytes, int]]:
    """Every file (bytes, mtime) and directory under ``outside``."""
    files = {
        p.relative_to(outside).as_posix(): (p.read_bytes(), p.stat().st_mtime_ns)
        for p in sorted(outside.rglob("*"))
        if p.is_file()
    }
    dirs = {
        p.relative_to(outside).as_posix() + "/": (b"", 0) for p in outside.rglob("*") if p.is_dir()
    }
    return files | dirs


def swap_for_outward_link(root: Path, outside: Path) -> None:
    os.rename(root / "d", root / "held")
    os.symlink(outside, root / "d")


def swap_back(root: Path) -> None:
    os.unlink(root / "d")
    os.rename(root / "held", root / "d")


# -- a directory swapped for a link after the store used it ---------------------------------

OPS: list[tuple[str, Callable[[SftpStorage], object]]] = [
    ("write", lambda s: s.write("d/planted.txt", b"x")),
    ("write deeper", lambda s: s.write("d/sub/planted.txt", b"x")),
    ("write over", lambda s: s.write("d/canary.txt", b"x")),
    ("read", lambda s: s.read("d/canary.txt")),
    ("read range", lambda s: s.read("d/canary.txt", offset=1, size=3)),
    ("open_reader", lambda s: s.open_reader("d/canary.txt").read()),
    ("stat", lambda s: s.stat("d/canary.txt")),
    ("stat dir", lambda s: s.stat("d/sub/")),
    ("list", lambda s: list(s.list("d/"))),
    ("list sub", lambda s: list(s.list("d/sub/"))),
    ("list prefix", lambda s: list(s.list("d/", list_mode="prefix"))),
    ("delete", lambda s: s.delete("d/canary.txt")),
    ("delete deeper", lambda s: s.delete("d/sub/deep.txt")),
    ("delete dir", lambda s: s.delete("d/sub/")),
    ("append", lambda s: s.append("d/canary.txt", b"more")),
    ("append new", lambda s: s.append("d/appended.txt", b"more")),
    ("copy out", lambda s: s.copy("d/canary.txt", "stolen.txt")),
    ("copy in", lambda s: s.copy("held/inside.txt", "d/planted.txt")),
    ("move out", lambda s: s.move("d/canary.txt", "taken.txt")),
    ("move in", lambda s: s.move("held/inside.txt", "d/planted.txt")),
    ("create_dir", lambda s: s.create_dir("d/newdir/")),
    ("create_dir deeper", lambda s: s.create_dir("d/sub/newdir/")),
]


@pytest.mark.parametrize(("name", "op"), OPS, ids=[name for name, _ in OPS])
def test_a_directory_swapped_for_an_outward_link_after_first_use_is_not_followed(
    layout: Layout, name: str, op: Callable[[SftpStorage], object]
) -> None:
    store = layout.store
    # Use d/ first, so that a store remembering checked directories would trust it.
    store.write("d/warm.txt", b"warm")
    store.create_dir("d/sub/")
    store.delete("d/sub/")
    assert store.read("d/inside.txt") == b"inside"
    assert [o.path for o in store.list("d/")] == ["d/inside.txt", "d/warm.txt"]
    swap_for_outward_link(layout.root, layout.outside)
    before = outside_state(layout.outside)
    with pytest.raises(PathInvalidError, match="outside the store's root") as info:
        op(store)
    assert str(layout.outside) not in str(info.value)
    assert outside_state(layout.outside) == before
    assert sorted(p.name for p in layout.root.iterdir()) == ["d", "held"]
    assert sorted(p.name for p in (layout.root / "held").iterdir()) == ["inside.txt", "warm.txt"]


def test_the_root_listing_shows_a_swapped_directory_as_a_link(layout: Layout) -> None:
    store = layout.store
    assert [o.path for o in store.list("", list_mode="prefix")] == ["d/inside.txt"]
    swap_for_outward_link(layout.root, layout.outside)
    listed = {o.path: o.mode for o in store.list("", list_mode="prefix")}
    assert listed == {"d": ObjectMode.LINK, "held/inside.txt": ObjectMode.READ}


# -- the final component ----------------------------------------------------------------------


def test_a_final_outward_link_is_never_followed_and_is_replaced_or_removed_itself(
    layout: Layout,
) -> None:
    root, outside, store = layout.root, layout.outside, layout.store
    os.symlink(outside / "canary.txt", root / "d" / "link.txt")
    before = outside_state(outside)
    for op in (
        lambda: store.read("d/link.txt"),
        lambda: store.open_reader("d/link.txt"),
        lambda: store.stat("d/link.txt"),
        lambda: store.append("d/link.txt", b"more"),
        lambda: store.copy("d/link.txt", "d/copy.txt"),
    ):
        with pytest.raises(PathInvalidError, match="outside the store's root"):
            op()
    assert outside_state(outside) == before
    # Writing or deleting the name acts on the link itself, never on its target.
    store.write("d/link.txt", b"replaced")
    assert not (root / "d" / "link.txt").is_symlink()
    assert (root / "d" / "link.txt").read_bytes() == b"replaced"
    os.unlink(root / "d" / "link.txt")
    os.symlink(outside / "canary.txt", root / "d" / "link.txt")
    store.delete("d/link.txt")
    assert not os.path.lexists(root / "d" / "link.txt")
    assert outside_state(outside) == before


def test_links_that_stay_inside_are_followed(layout: Layout) -> None:
    root, store = layout.root, layout.store
    (root / "real" / "deep").mkdir(parents=True)
    (root / "real" / "deep" / "a.txt").write_bytes(b"A")
    os.symlink("../real", root / "d" / "up")  # relative, climbing with ..
    os.symlink(root / "real", root / "abs")  # absolute
    os.symlink("d/up/deep", root / "chain")  # a link through a link
    os.symlink("real/deep/a.txt", root / "file-link")
    assert store.read("d/up/deep/a.txt") == b"A"
    assert store.read("abs/deep/a.txt") == b"A"
    assert store.read("chain/a.txt") == b"A"
    assert store.read("file-link") == b"A"
    assert store.stat("file-link").content_length == 1
    assert store.stat("chain/").mode == ObjectMode.DIR
    assert [o.path for o in store.list("chain/")] == ["chain/a.txt"]
    store.write("chain/b.txt", b"B")
    assert (root / "real" / "deep" / "b.txt").read_bytes() == b"B"
    store.append("abs/deep/b.txt", b"+")
    assert (root / "real" / "deep" / "b.txt").read_bytes() == b"B+"
    store.append("file-link", b"+")
    assert (root / "real" / "deep" / "a.txt").read_bytes() == b"A+"
    store.create_dir("d/up/made/")
    assert (root / "real" / "made").is_dir()
    store.move("chain/b.txt", "abs/moved.txt")
    assert (root / "real" / "moved.txt").read_bytes() == b"B+"


def test_inward_links_that_climb_out_are_refused(layout: Layout) -> None:
    root, outside, store = layout.root, layout.outside, layout.store
    os.symlink(os.path.relpath(outside, root / "d"), root / "d" / "climb")
    os.symlink("../d/climb", root / "d" / "via")  # inside, to a link that leads out
    before = outside_state(outside)
    for path in ("d/climb/canary.txt", "d/via/canary.txt", "d/climb/new.txt"):
        for op in (store.read, store.stat, lambda p: store.write(p, b"x"), store.delete):
            with pytest.raises(PathInvalidError, match="outside the store's root"):
                op(path)
    assert outside_state(outside) == before


# -- swapping while operations run -----------------------------------------------------------


class Gate:
    """Operations pass one by one or together; a swap waits until none is in flight.

    With the gate, every swap lands between two operations of each thread (never in
    the middle of one), at a random point of a random thread's sequence: what a
    store that trusts anything it checked before would follow out of the root.
    """

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._running = 0
        self._swapping = False

    @contextlib.contextmanager
    def operation(self) -> Iterator[None]:
        with self._cond:
            self._cond.wait_for(lambda: not self._swapping)
            self._running += 1
        try:
            yield
        finally:
            with self._cond:
                self._running -= 1
                self._cond.notify_all()

    @contextlib.contextmanager
    def swap(self) -> Iterator[None]:
        with self._cond:
            self._swapping = True
            self._cond.wait_for(lambda: self._running == 0)
        try:
            yield
        finally:
            with self._cond:
                self._swapping = False
                self._cond.notify_all()


class Open:
    """No gate: swaps land whenever they land, in the middle of operations too."""

    @contextlib.contextmanager
    def operation(self) -> Iterator[None]:
        yield

    swap = operation


@dataclass
class Escapes:
    """What the workers saw that only the outside directory holds."""

    seen: list[str] = field(default_factory=list)
    ops: int = 0
    refused: int = 0
    unexpected: list[BaseException] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)


def _one(store: SftpStorage, worker: int, pick: int, n: int, out: Escapes) -> None:
    if pick == 0:
        store.write(f"d/w{worker}-{n % 5}.txt", b"written by the store")
    elif pick == 1:
        if store.read("d/canary.txt") == CANARY:
            out.seen.append("read d/canary.txt")
    elif pick == 2:
        store.stat("d/canary.txt")
        out.seen.append("stat d/canary.txt")
    elif pick == 3:
        names = {o.path for o in store.list("d/")}
        if names & {"d/canary.txt", "d/sub/"}:
            out.seen.append(f"list d/: {sorted(names)}")
    elif pick == 4:
        names = {o.path for o in store.list("d/", list_mode="prefix")}
        if "d/canary.txt" in names or "d/sub/deep.txt" in names:
            out.seen.append(f"list prefix d/: {sorted(names)}")
    elif pick == 5:
        store.delete("d/canary.txt")
        store.delete("d/sub/deep.txt")
    elif pick == 6:
        store.delete(f"d/w{worker}-{n % 5}.txt")
    else:
        store.append(f"d/a{worker}.txt", b"+")


def _work(
    store: SftpStorage, worker: int, stop: threading.Event, gate: Gate | Open, out: Escapes
) -> None:
    rng = random.Random(worker)
    count = 0
    while not stop.is_set():
        count += 1
        try:
            with gate.operation():
                _one(store, worker, rng.randrange(8), count, out)
        except (NotFoundError, PathInvalidError):
            with out.lock:
                out.refused += 1
        except StorageError:
            # ObjectModeInvalidError, "Failure" while d is being exchanged...: fine.
            pass
        except BaseException as exc:  # a vendor error leaking is a failure too
            out.unexpected.append(exc)
    with out.lock:
        out.ops += count


_libc = ctypes.CDLL(None, use_errno=True)
_AT_FDCWD = -100
_RENAME_EXCHANGE = 2


def _exchange(a: Path, b: Path) -> None:
    """Swap two names atomically (renameat2 RENAME_EXCHANGE): neither is ever missing."""
    if _libc.renameat2(_AT_FDCWD, bytes(a), _AT_FDCWD, bytes(b), _RENAME_EXCHANGE) != 0:
        errno = ctypes.get_errno()
        raise OSError(errno, os.strerror(errno), str(a))


def _swap(root: Path, stop: threading.Event, gate: Gate | Open, pause: float) -> int:
    """Exchange d/ with a link to the outside directory, back and forth."""
    rng = random.Random(0)
    swaps = 0
    while not stop.is_set():
        with gate.swap():
            _exchange(root / "d", root / "lnk")  # d is the link now, or the directory again
        swaps += 1
        if pause:
            time.sleep(rng.uniform(0, pause))
    return swaps


SWAP_SECONDS = 2.5


def _run(layout: Layout, gate: Gate | Open, pause: float) -> tuple[Escapes, int]:
    root, outside, store = layout.root, layout.outside, layout.store
    os.symlink(outside, root / "lnk")
    stop = threading.Event()
    out = Escapes()
    swaps: list[int] = []
    workers = [
        threading.Thread(target=_work, args=(store, n, stop, gate, out), daemon=True)
        for n in range(4)
    ]
    swapper = threading.Thread(
        target=lambda: swaps.append(_swap(root, stop, gate, pause)), daemon=True
    )
    for thread in [*workers, swapper]:
        thread.start()
    time.sleep(SWAP_SECONDS)
    stop.set()
    for thread in [*workers, swapper]:
        thread.join(30)
    if (root / "d").is_symlink():
        _exchange(root / "d", root / "lnk")
    assert not out.unexpected, out.unexpected[:3]
    return out, swaps[0] if swaps else 0


def test_no_operation_escapes_while_a_directory_is_swapped_between_operations(
    layout: Layout,
) -> None:
    before = outside_state(layout.outside)
    out, swaps = _run(layout, Gate(), pause=0.002)
    assert swaps > 100, swaps
    assert out.ops > 200 and out.refused > 0, (out.ops, out.refused)
    assert out.seen == [], out.seen[:5]
    assert outside_state(layout.outside) == before
    assert (layout.outside / "canary.txt").read_bytes() == CANARY


@pytest.mark.xfail(
    reason="the documented race: SFTP has no openat, so a directory swapped between the "
    "store's realpath and its operation (one round trip) is followed; a server-side "
    "chroot is the boundary (service notes)",
    strict=False,
)
def test_no_operation_escapes_while_a_directory_is_swapped_during_operations(
    layout: Layout,
) -> None:
    before = outside_state(layout.outside)
    out, swaps = _run(layout, Open(), pause=0.0)
    assert swaps > 100, swaps
    assert out.seen == [], out.seen[:5]
    assert outside_state(layout.outside) == before
