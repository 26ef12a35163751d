"""Capabilities, describe, trace, Logged, Audited, Router and Prefixed behaviour."""

from __future__ import annotations

import io
import logging
from typing import Any

import pytest

from storager import (
    Copier,
    Direr,
    InvalidArgumentError,
    NotFoundError,
    PathInvalidError,
    PermissionDeniedError,
    Presigner,
    Segmenter,
    ServiceInternalError,
    UnexpectedError,
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


def test_audited_refuses_a_change_when_its_log_cannot_be_read(mem: MemoryStorage) -> None:
    from storager.testing.faulty import FaultyStorager

    log = FaultyStorager(MemoryStorage(), fail={"list": 1})  # the first read of the log fails
    mem.write("src", b"1")
    store = Retry(Audited(mem, log))
    store.move("src", "dst")  # the first attempt is refused before moving anything
    assert mem.read("dst") == b"1"
    with pytest.raises(NotFoundError):
        mem.stat("src")
    records = list(read_audit(log))
    assert [(r.seq, r.operation, r.outcome, r.target) for r in records] == [
        (1, "move", "ok", "dst")
    ]
    failing = Audited(MemoryStorage(), FaultyStorager(MemoryStorage(), fail={"list": 5}))
    with pytest.raises(ServiceInternalError):
        failing.write("a", b"x")
    with pytest.raises(NotFoundError):
        failing.inner.stat("a")  # no change without its record


def test_audited_gives_back_a_number_only_when_none_was_taken_since(mem: MemoryStorage) -> None:
    # The async form orders records per event loop: while record #2 is being written on
    # one loop, another loop may take #3; #2 failing must not hand #3 out again.
    class Log(MemoryStorage):
        def write(self, path: str, data: Any, **pairs: Any) -> Any:
            if path.endswith("2.json"):
                store._seq = 3  # another loop numbered and wrote #3 meanwhile
                raise ServiceInternalError("write", "log", path, "injected")
            return super().write(path, data, **pairs)

    log = Log()
    store = Audited(mem, log)
    store.write("a", b"1")  # record #1
    with pytest.raises(UnexpectedError, match="audit record could not be written"):
        store.write("b", b"2")  # record #2 fails
    store.write("c", b"3")
    assert [r.seq for r in read_audit(log)] == [1, 4]  # #3 was not reused


def test_prefixed_uploads_show_the_callers_path_in_traces(mem: MemoryStorage) -> None:
    store = Prefixed(mem, "sub/")
    upload = store.create_multipart("a/m")
    with trace() as t:
        part = store.write_multipart(upload, 1, b"x")
        list(store.list_multipart(upload))
        store.complete_multipart(upload, [part])
    lines = [line.strip() for line in t.render().splitlines() if line.startswith("prefixed")]
    calls = [line.split(": ", 1)[1] for line in lines]  # "<op> <path> <outcome> <time>"
    assert [c.split()[:2] for c in calls] == [
        ["write_multipart", "/a/m"],
        ["list_multipart", "/a/m"],
        ["complete_multipart", "/a/m"],
    ]
    assert mem.read("sub/a/m") == b"x"
