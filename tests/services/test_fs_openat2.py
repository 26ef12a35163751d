"""fs: the one-call open (``openat2``) takes only plain paths and leaves the rest to the walk.

``services/fs/_openat2.py`` opens a path with ``RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS``
and answers ``None`` for anything else, so the walk in ``_beneath.py`` decides. These
tests check both halves: what the call opens (exactly the plain path, never a link,
never a place outside its directory) and that the store behaves the same whichever half
answers. ``test_fs_escape.py`` runs its attacks with both halves too (its ``resolver``
fixture).
"""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest

from storager import NotFoundError, PathInvalidError
from storager.services.fs import FsStorage, _openat2
from tests.services._kernel import KERNEL_OPENAT2

needs_openat2 = pytest.mark.skipif(
    KERNEL_OPENAT2 is None,
    reason="this kernel (or its seccomp filter) has no openat2: only the walk can be tested",
)


@pytest.fixture(autouse=True)
def fresh_switch(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every test starts with the module's call on where the kernel has it."""
    monkeypatch.setattr(_openat2, "_openat2", KERNEL_OPENAT2)


@pytest.fixture
def tree(tmp_path: Path) -> tuple[Path, Path]:
    """A root holding a/b/c/file.txt, an inward and an outward link; a canary outside."""
    root = tmp_path / "root"
    outside = tmp_path / "outside"
    (root / "a" / "b" / "c").mkdir(parents=True)
    (root / "a" / "b" / "c" / "file.txt").write_bytes(b"plain")
    outside.mkdir()
    (outside / "c").mkdir()
    (outside / "c" / "file.txt").write_bytes(b"CANARY")
    os.symlink("b", root / "a" / "inward")  # a/inward/c/file.txt is a/b/c/file.txt
    os.symlink(outside, root / "a" / "outward")
    os.symlink("../../outside", root / "a" / "climbs")
    return root, outside


def opened(dir_fd: int, path: str) -> bytes | None:
    fd = _openat2.open_beneath(dir_fd, path, os.O_RDONLY | os.O_NOFOLLOW, 0)
    if fd is None:
        return None
    try:
        return os.read(fd, 100)
    finally:
        os.close(fd)


@needs_openat2
def test_a_plain_nested_path_is_opened_in_one_call(tree: tuple[Path, Path]) -> None:
    root, _ = tree
    dir_fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY)
    try:
        assert opened(dir_fd, "a/b/c/file.txt") == b"plain"
    finally:
        os.close(dir_fd)


@needs_openat2
@pytest.mark.parametrize(
    "path",
    [
        "a/inward/c/file.txt",  # an inward link: the walk follows it by its own rules
        "a/outward/c/file.txt",  # an absolute link out
        "a/climbs/c/file.txt",  # a relative link out
        "a/../../outside/c/file.txt",  # dot-dot out of the directory
        "a/b/../../../outside/c/file.txt",
        str(Path("/") / "etc" / "hostname"),  # absolute
        "a/b/c/file.txt\0../../x",  # a NUL would cut the path short in C
        "a/b/c/missing.txt",
        "",
    ],
)
def test_anything_but_a_plain_path_inside_is_left_to_the_walk(
    tree: tuple[Path, Path], path: str
) -> None:
    root, _ = tree
    dir_fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY)
    try:
        assert opened(dir_fd, path) is None
    finally:
        os.close(dir_fd)


@needs_openat2
def test_the_kernel_call_refuses_an_absolute_path_and_reports_its_errno(
    tree: tuple[Path, Path],
) -> None:
    root, _ = tree
    call = _openat2._openat2
    assert call is not None
    dir_fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY)
    try:
        # Beneath the directory, an absolute path is a way out: the kernel says EXDEV.
        assert call(dir_fd, b"/etc/hostname", os.O_RDONLY, 0) == -errno.EXDEV
        assert call(dir_fd, b"a/b/c/missing.txt", os.O_RDONLY, 0) == -errno.ENOENT
        assert call(dir_fd, b"a/inward/c/file.txt", os.O_RDONLY, 0) == -errno.ELOOP
    finally:
        os.close(dir_fd)


@pytest.fixture
def calls(monkeypatch: pytest.MonkeyPatch) -> dict[str, int]:
    """Record each path the one-call open is asked for and its answer (still made)."""
    seen: dict[str, int] = {}
    real = KERNEL_OPENAT2
    if real is None:
        pytest.skip("this kernel (or its seccomp filter) has no openat2")

    def spy(dir_fd: int, path: bytes, flags: int, mode: int) -> int:
        answer = real(dir_fd, path, flags, mode)
        seen[os.fsdecode(path)] = answer
        return answer

    monkeypatch.setattr(_openat2, "_openat2", spy)
    return seen


def test_the_store_opens_nested_paths_in_one_call_and_top_level_ones_by_openat(
    tree: tuple[Path, Path], calls: dict[str, int]
) -> None:
    root, _ = tree
    (root / "top.txt").write_bytes(b"top")
    store = FsStorage(root=str(root))
    assert store.read("a/b/c/file.txt") == b"plain"
    assert store.read("top.txt") == b"top"
    assert list(calls) == ["a/b/c/file.txt"]  # one openat is already one call
    assert calls["a/b/c/file.txt"] >= 0  # opened by the call, not by the walk after it


def test_links_still_resolve_as_the_walk_says_when_the_one_call_declines(
    tree: tuple[Path, Path], calls: dict[str, int]
) -> None:
    root, _ = tree
    store = FsStorage(root=str(root))
    assert store.read("a/inward/c/file.txt") == b"plain"
    for path in ("a/outward/c/file.txt", "a/climbs/c/file.txt"):
        with pytest.raises(PathInvalidError):
            store.read(path)
    with pytest.raises(NotFoundError):
        store.read("a/b/c/missing.txt")
    assert calls["a/inward/c/file.txt"] == -errno.ELOOP  # declined: the walk followed it
    assert calls["a/outward/c/file.txt"] == -errno.ELOOP


@pytest.mark.parametrize("refusal", [errno.ENOSYS, errno.EPERM])
def test_a_kernel_or_filter_refusing_openat2_is_asked_once_and_the_walk_serves(
    tree: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch, refusal: int
) -> None:
    root, _ = tree
    asked: list[bytes] = []

    def no_such_call(dir_fd: int, path: bytes, flags: int, mode: int) -> int:
        asked.append(path)
        return -refusal

    monkeypatch.setattr(_openat2, "_openat2", no_such_call)
    store = FsStorage(root=str(root))
    for _ in range(3):
        assert store.read("a/b/c/file.txt") == b"plain"
    assert store.read("a/inward/c/file.txt") == b"plain"
    assert asked == [b"a/b/c/file.txt"]
    assert _openat2._openat2 is None


def test_a_write_creates_missing_directories_whichever_half_opens(
    tree: tuple[Path, Path], calls: dict[str, int]
) -> None:
    root, _ = tree
    store = FsStorage(root=str(root))
    store.append("a/b/c/log.txt", b"one ")  # parents exist: one call creates the file
    store.append("a/new/deeper/log.txt", b"two")  # a parent missing: the walk makes it
    assert (root / "a" / "b" / "c" / "log.txt").read_bytes() == b"one "
    assert (root / "a" / "new" / "deeper" / "log.txt").read_bytes() == b"two"
    assert calls["a/b/c/log.txt"] >= 0  # created by the call
    assert calls["a/new/deeper/log.txt"] == -errno.ENOENT  # then by the walk
