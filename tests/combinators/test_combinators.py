"""Capabilities, describe, trace, Logged, Audited, Router and Prefixed behaviour."""

from __future__ import annotations

import io
import logging

import pytest

from storager import (
    Copier,
    Direr,
    InvalidArgumentError,
    PathInvalidError,
    PermissionDeniedError,
    Presigner,
    Segmenter,
)
from storager.combinators import (
    Audited,
    Cached,
    Event,
    Logged,
    Mirror,
    Prefixed,
    ReadOnly,
    Retry,
    Router,
    capability_class,
    describe,
    read_audit,
    trace,
)
from storager.services.fs import FsStorage
from storager.services.memory import MemoryStorage


def test_capabilities_are_what_the_children_allow(mem: MemoryStorage, fs: FsStorage) -> None:
    assert isinstance(Retry(mem), Presigner) and isinstance(Retry(mem), Segmenter)
    retry_fs = Retry(fs)
    assert isinstance(retry_fs, Copier) and not isinstance(retry_fs, Presigner)
    assert not hasattr(retry_fs, "presign_read")
    mirror = Mirror({"m": mem, "f": fs})
    assert isinstance(mirror, Copier) and isinstance(mirror, Direr)
    assert not isinstance(mirror, Segmenter) and not hasattr(mirror, "create_multipart")
    assert not isinstance(ReadOnly(mem), Copier)
    assert type(Retry(MemoryStorage())) is type(Retry(mem))  # cached classes
    assert capability_class(Retry, []) is Retry
    assert "copy" in mirror.metadata().capability.operations
    assert mirror.metadata().service == "mirror"
    mirror.close()


def test_bad_children_raise_clear_errors(mem: MemoryStorage) -> None:
    with pytest.raises(InvalidArgumentError):
        Mirror({})
    with pytest.raises(InvalidArgumentError):
        Retry("memory://")  # type: ignore[arg-type]
    with pytest.raises(InvalidArgumentError):
        Router({"a/": mem, "/a": mem})


def test_readonly_refuses_changes(mem: MemoryStorage) -> None:
    mem.write("a", b"x")
    ro = ReadOnly(mem)
    assert ro.read("a") == b"x"
    with pytest.raises(PermissionDeniedError):
        ro.write("b", b"y")
    with pytest.raises(PermissionDeniedError):
        ro.delete("a")
    assert mem.read("a") == b"x"


def test_prefixed_cannot_leave_its_prefix(mem: MemoryStorage) -> None:
    mem.write("secret.txt", b"s")
    view = Prefixed(mem, "sub/")
    view.write("a.txt", b"1")
    assert mem.read("sub/a.txt") == b"1"
    assert view.read("/a.txt") == b"1"
    assert [o.path for o in view.list()] == ["a.txt"]
    with pytest.raises(PathInvalidError):
        view.read("../secret.txt")


def test_router_longest_prefix_and_cross_mount_copy(mem: MemoryStorage, fs: FsStorage) -> None:
    deep = MemoryStorage()
    router = Router({"": mem, "logs/": fs, "logs/deep/": deep})
    router.write("logs/a.txt", b"fs")
    router.write("logs/deep/b.txt", b"deep")
    router.write("c.txt", b"mem")
    assert fs.read("a.txt") == b"fs" and deep.read("b.txt") == b"deep"
    assert [o.path for o in router.list()] == ["c.txt", "logs/"]
    assert sorted(o.path for o in router.list("logs/")) == ["logs/a.txt", "logs/deep/"]
    assert router.stat("logs").is_dir
    router.copy("logs/a.txt", "copied.txt")
    router.move("c.txt", "logs/deep/moved.txt")
    assert mem.read("copied.txt") == b"fs" and deep.read("moved.txt") == b"mem"
    assert not [o for o in mem.list() if o.path == "c.txt"]


def test_logged_records_structured_fields_and_calls_back(
    mem: MemoryStorage, caplog: pytest.LogCaptureFixture
) -> None:
    events: list[Event] = []
    store = Logged(
        Mirror({"a": MemoryStorage(), "b": mem}),
        on_success=events.append,
        on_failure=events.append,
    )
    mem.write("only-b", b"12345")
    with caplog.at_level(logging.INFO, logger="storager.combinators.logged"):
        assert store.read("only-b") == b"12345"
        with pytest.raises(FileNotFoundError):
            store.read("missing")
    ok, failed = caplog.records
    assert (ok.operation, ok.path, ok.bytes, ok.outcome, ok.served_by) == (  # type: ignore[attr-defined]
        "read",
        "only-b",
        5,
        "ok",
        "b",
    )
    assert failed.levelno == logging.WARNING
    assert failed.outcome.startswith("MirrorError")  # type: ignore[attr-defined]
    assert events[0].outcome == "ok" and events[1].error is not None


def test_audited_keeps_an_ordered_record_with_checksums(mem: MemoryStorage) -> None:
    log = MemoryStorage()
    store = Audited(mem, log)
    store.write("a", b"abc")
    store.write("b", io.BytesIO(b"abc"))
    store.copy("a", "c")
    store.delete("a")
    store.read("b")  # not a change: not recorded
    records = list(read_audit(log))
    assert [(r.seq, r.operation, r.path) for r in records] == [
        (1, "write", "a"),
        (2, "write", "b"),
        (3, "copy", "a"),
        (4, "delete", "a"),
    ]
    digest = "sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    assert records[0].checksum == records[1].checksum == digest
    assert records[2].target == "c"
    again = Audited(mem, log)  # numbering continues after the existing records
    again.delete("b")
    assert [r.seq for r in read_audit(log)][-1] == 5


def test_describe_and_trace_show_the_tree(mem: MemoryStorage, fs: FsStorage) -> None:
    store = Retry(Mirror({"primary": Cached(MemoryStorage(), mem), "backup": fs}))
    text = describe(store)
    assert text.splitlines()[0].startswith("retry")
    assert "├── primary: cached" in text and "backup: fs /" in text
    mermaid = describe(store, "mermaid")
    assert mermaid.startswith("graph TD") and "-->|primary|" in mermaid
    store.write("a", b"1")
    with trace() as t:
        store.read("a")
    assert t.nodes()[:3] == [
        "retry attempts=5 budget=30s",
        "mirror write=sequential read=first",
        "cached",
    ]
    assert "memory /: read a ok" in t.render()
    store.close()
