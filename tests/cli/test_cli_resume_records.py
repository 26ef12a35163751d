"""Resume records on local disk: safe in a directory others can reach, and refused when
the source's version cannot be told exactly. File system and memory store only."""

from __future__ import annotations

import json
import os
import stat
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

import storager
from storager import Multipart, NotFoundError, Object, Part, Segmenter
from storager.cli._parts import copy_in_parts, has_exact_version
from storager.cli._resume import UploadRecord, source_version
from storager.services.memory import MemoryStorage

PART = 1024
OTHER_UID = 12345
VICTIM = b"the victim's own file\n"


@pytest.fixture
def memory() -> Iterator[MemoryStorage]:
    with storager.open("memory://") as store:
        assert isinstance(store, MemoryStorage)
        yield store


@pytest.fixture
def records(tmp_path: Path) -> Path:
    directory = tmp_path / "records"
    directory.mkdir(mode=0o700)
    return directory


@pytest.fixture
def victim(tmp_path: Path) -> Path:
    file = tmp_path / "victim.txt"
    file.write_bytes(VICTIM)
    return file


@pytest.fixture
def make_foreign(monkeypatch: pytest.MonkeyPatch) -> Callable[[Path], None]:
    """Make a path belong to another user: chown as root, else this process pretends
    to be another uid (then every file of the test is foreign, which is what matters)."""

    def make(path: Path) -> None:
        if os.getuid() == 0:
            os.chown(path, OTHER_UID, -1, follow_symlinks=False)
        else:
            monkeypatch.setattr(os, "getuid", lambda: OTHER_UID)

    return make


def _record(directory: Path, store: MemoryStorage, path: str = "/big.bin") -> UploadRecord:
    return UploadRecord(directory, "memory://", store, path, "src")


def _header(upload_id: str) -> bytes:
    return (json.dumps({"upload_id": upload_id, "size": 1}) + "\n").encode()


def test_a_symlink_planted_at_the_old_temp_name_is_left_alone(
    records: Path, victim: Path, memory: MemoryStorage
) -> None:
    record = _record(records, memory)
    planted = record.file.with_suffix(".tmp")
    planted.symlink_to(victim)
    assert record.start("UPLOAD", {"size": 1})
    record.add(Part(1, 5, "e1"))
    record.close()
    assert victim.read_bytes() == VICTIM
    assert planted.is_symlink()
    info = os.lstat(record.file)
    assert stat.S_ISREG(info.st_mode) and stat.S_IMODE(info.st_mode) == 0o600
    pending = record.pending()
    assert pending is not None and pending.upload_id == "UPLOAD"
    assert pending.parts == {1: Part(1, 5, "e1")}
    assert sorted(p.name for p in records.iterdir()) == sorted([record.file.name, planted.name])


def test_a_symlink_planted_at_the_record_name_is_never_read_or_written_through(
    records: Path, victim: Path, memory: MemoryStorage
) -> None:
    victim.write_bytes(_header("ATTACKERS-UPLOAD"))
    record = _record(records, memory)
    record.file.symlink_to(victim)
    assert record.pending() is None  # the upload id it names is not trusted
    assert not record.reopen()
    record.add(Part(1, 5, "e1"))  # nothing open: nothing written
    assert record.start("MINE", {"size": 1})  # replaces the link, not its target
    record.add(Part(1, 5, "e1"))
    record.remove()
    assert victim.read_bytes() == _header("ATTACKERS-UPLOAD")
    assert not record.file.exists() and not record.file.is_symlink()

    record.file.symlink_to(victim)
    record.remove()  # the link goes, its target stays
    assert not record.file.is_symlink()
    assert victim.read_bytes() == _header("ATTACKERS-UPLOAD")


def test_a_record_owned_by_another_user_is_ignored(
    records: Path, memory: MemoryStorage, make_foreign: Callable[[Path], None]
) -> None:
    record = _record(records, memory)
    assert record.start("UPLOAD", {"size": 1})
    record.close()
    assert record.pending() is not None
    if os.getuid() != 0:
        pytest.skip("only root can give a file away; the directory test covers the rest")
    make_foreign(record.file)
    assert record.pending() is None
    assert not record.reopen()


def test_a_missing_directory_is_made_private(tmp_path: Path, memory: MemoryStorage) -> None:
    directory = tmp_path / "state" / "uploads"
    record = _record(directory, memory)
    assert record.pending() is None
    assert not directory.exists()  # reading makes nothing
    assert record.start("UPLOAD", {"size": 1})
    record.close()
    assert stat.S_IMODE(directory.stat().st_mode) & 0o077 == 0


@pytest.mark.parametrize("why", ["group-writable", "other-writable", "foreign"])
def test_an_unsafe_directory_is_refused_saying_why_and_a_failure_aborts(
    records: Path,
    tmp_path: Path,
    memory: MemoryStorage,
    make_foreign: Callable[[Path], None],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    why: str,
) -> None:
    source = tmp_path / "big.bin"
    source.write_bytes(os.urandom(4 * PART))
    # A record a planting user left, naming their upload.
    planted = memory.create_multipart("/big.bin")
    other = _record(records, memory)
    assert other.start(planted.upload_id, {"size": 1})
    other.close()
    if why == "group-writable":
        records.chmod(0o770)
    elif why == "other-writable":
        records.chmod(0o1777)
    else:
        make_foreign(records)
    created: list[Multipart] = []
    real_create = memory.create_multipart

    def spy(path: str) -> Multipart:
        created.append(real_create(path))
        return created[-1]

    monkeypatch.setattr(memory, "create_multipart", spy)
    record = _record(records, memory)
    assert record.pending() is None
    with storager.open("fs:///") as src:
        listed = src.stat(str(source))
        with pytest.raises(KeyboardInterrupt):
            copy_in_parts(
                src, str(source), memory, "/big.bin", listed, _stop, record=record, part_size=PART
            )
    err = capsys.readouterr().err
    assert str(records) in err
    expected = {
        "group-writable": "writable by group or others",
        "other-writable": "writable by group or others",
        "foreign": "not by this user",
    }[why]
    assert expected in err and "cannot be resumed" in err
    assert err.count("resume records not used") == 1  # once per directory
    assert not record.kept
    assert len(created) == 1
    with pytest.raises(NotFoundError):  # aborted, as without a record
        list(memory.list_multipart(created[0]))
    assert list(memory.list_multipart(planted)) == []  # the planted upload is not touched
    assert [p.name for p in records.iterdir()] == [other.file.name]


def _stop(_n: int) -> None:
    raise KeyboardInterrupt


def _object(*, etag: str = "", modified: datetime | None = None) -> Object:
    return Object(path="/x", content_length=1, etag=etag or None, last_modified=modified)


def test_only_an_etag_or_a_sub_second_time_tells_versions_apart() -> None:
    whole = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    assert has_exact_version(_object(etag='"abc"', modified=whole))
    assert has_exact_version(_object(modified=whole.replace(microsecond=1)))
    assert not has_exact_version(_object(modified=whole))
    assert not has_exact_version(_object())


def test_a_source_with_a_whole_second_time_and_no_etag_is_copied_from_the_start(
    records: Path, tmp_path: Path, memory: MemoryStorage
) -> None:
    source = tmp_path / "big.bin"
    old = os.urandom(4 * PART)
    source.write_bytes(old)
    os.utime(source, (1_700_000_000, 1_700_000_000))
    with storager.open("fs:///") as src:
        assert isinstance(memory, Segmenter)
        listed = src.stat(str(source))
        assert not has_exact_version(listed)
        # An earlier run (of an older storager) recorded two parts of the old bytes.
        earlier = memory.create_multipart("/big.bin")
        record = _record(records, memory)
        assert record.start(earlier.upload_id, source_version("src", listed, PART))
        for number in (1, 2):
            chunk = old[(number - 1) * PART : number * PART]
            record.add(memory.write_multipart(earlier, number, chunk))
        record.close()
        # Rewritten: same size, same whole-second time.
        new = os.urandom(4 * PART)
        source.write_bytes(new)
        os.utime(source, (1_700_000_000, 1_700_000_000))
        assert src.stat(str(source)) == listed

        again = _record(records, memory)
        copied = copy_in_parts(
            src, str(source), memory, "/big.bin", listed, record=again, part_size=PART
        )
        assert copied.reused == 0
        assert memory.read("/big.bin") == new
        with pytest.raises(NotFoundError):
            list(memory.list_multipart(earlier))
        assert not list(records.iterdir())

        # A failed copy of such a source keeps nothing: a re-run could not resume it.
        failing = _record(records, memory)
        with pytest.raises(KeyboardInterrupt):
            copy_in_parts(
                src, str(source), memory, "/b2.bin", listed, _stop, record=failing, part_size=PART
            )
        assert not failing.kept
        assert not list(records.iterdir())
