"""The gcs service against gcp-storage-emulator: GCS-specific behaviour and errors.

The emulator starts once per session (``gcs_server``); each session gets its own
bucket, and each test its own random work_dir inside it.
"""

from __future__ import annotations

import json
import logging
import secrets
import time
import tracemalloc
import urllib.request
from collections.abc import Iterator
from typing import Any

import aiohttp
import pytest
import requests.exceptions
from gcsfs.retry import HttpError

import storager
from storager import (
    InvalidArgumentError,
    NotFoundError,
    ObjectModeInvalidError,
    PairInvalidError,
    PermissionDeniedError,
    PreconditionFailedError,
    RateLimitedError,
    ServiceInternalError,
    StorageError,
)
from storager.services.gcs import GcsStorage
from storager.services.gcs._errors import map_gcs_error
from storager.testing import StoragerSuite, url_factory
from storager.testing._url import UrlFactory
from tests.servers.gcs import GCSServer

pytestmark = pytest.mark.gcs

KiB = 1024
MiB = 1024 * KiB
CHUNK = 256 * KiB


@pytest.fixture(scope="session")
def gcs_bucket(gcs_server: GCSServer) -> str:
    """A fresh bucket in the emulator, created with a plain JSON API request.

    Soft delete is off: the emulator keeps soft-deleted objects in the metadata it
    re-serialises on every change, which makes each write slower than the last.
    """
    name = f"storager-{secrets.token_hex(4)}"
    base = f"{gcs_server.endpoint}/storage/v1/b"
    created = _json_request("POST", f"{base}?project={gcs_server.project}", {"name": name})
    assert created["name"] == name
    policy = {"softDeletePolicy": {"retentionDurationSeconds": "0"}}
    patched = _json_request("PATCH", f"{base}/{name}", policy)
    assert int(patched["softDeletePolicy"]["retentionDurationSeconds"]) == 0
    return name


def _json_request(method: str, url: str, body: dict[str, Any]) -> dict[str, Any]:
    request = urllib.request.Request(
        url,
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
        method=method,
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        result: dict[str, Any] = json.load(response)
    return result


@pytest.fixture(scope="session")
def gcs_url(gcs_server: GCSServer, gcs_bucket: str) -> str:
    """The session's connection string (no work_dir)."""
    return f"gcs://{gcs_bucket}/?endpoint={gcs_server.endpoint}&credential=token:anon"


@pytest.fixture
def store(gcs_server: GCSServer, gcs_bucket: str) -> Iterator[GcsStorage]:
    """A store in a fresh work_dir, with small resumable-upload chunks."""
    s = GcsStorage(
        name=gcs_bucket,
        work_dir=f"/t-{secrets.token_hex(4)}/",
        endpoint=gcs_server.endpoint,
        credential="token:anon",
        chunk_size=CHUNK,
    )
    yield s
    # The emulator re-serialises all its metadata on every change: keep it small.
    for obj in list(s.list("", list_mode="prefix")):
        s.delete(obj.path)
    s.close()


def _pieces(total: int, piece: int) -> Iterator[bytes]:
    for start in range(0, total, piece):
        yield bytes([(start // piece) % 251]) * min(piece, total - start)


# -- connection strings and objects ----------------------------------------------------


def test_connection_string_sets_bucket_and_work_dir(gcs_url: str, gcs_bucket: str) -> None:
    store = storager.open(gcs_url.replace("/?", "/some/dir/?"))
    meta = store.metadata()
    assert (meta.service, meta.name, meta.work_dir) == ("gcs", gcs_bucket, "/some/dir/")
    assert isinstance(store, storager.Copier)
    assert isinstance(store, storager.Mover)
    assert isinstance(store, storager.Direr)
    assert not isinstance(store, storager.Presigner)


def test_stat_fills_length_etag_time_type_and_user_metadata(store: GcsStorage) -> None:
    written = store.write(
        "a.txt", b"hello", content_type="text/plain", user_metadata={"owner": "ann"}
    )
    got = store.stat("a.txt")
    assert got.path == "a.txt"
    assert got.content_length == 5
    assert got.content_type == "text/plain"
    assert dict(got.user_metadata) == {"owner": "ann"}
    assert got.etag and got.etag == written.etag
    assert got.last_modified is not None and got.last_modified.tzinfo is not None
    assert got.system_metadata["generation"]


def test_directory_marker_lists_one_level_and_stats_as_dir(store: GcsStorage) -> None:
    store.create_dir("d")
    store.write("d/x", b"1")
    store.write("d/e/y", b"22")
    assert sorted(o.path for o in store.list("d")) == ["d/e/", "d/x"]
    assert sorted(o.path for o in store.list("")) == ["d/"]
    assert sorted(o.path for o in store.list("", list_mode="prefix")) == ["d/", "d/e/y", "d/x"]
    assert store.stat("d").is_dir
    assert store.stat("d/e/").is_dir  # implied by a key, no marker
    with pytest.raises(ObjectModeInvalidError):
        store.read("d/")


def test_read_range_and_open_reader_use_ranged_requests(store: GcsStorage) -> None:
    data = bytes(range(256)) * 64  # 16 KiB
    store.write("r.bin", data)
    assert store.read("r.bin", offset=10, size=5) == data[10:15]
    assert store.read("r.bin", offset=len(data) + 5) == b""
    with store.open_reader("r.bin", offset=100, size=1000) as reader:
        reader.seek(500)
        assert reader.read(10) == data[600:610]
        reader.seek(0)
        assert reader.read() == data[100:1100]


# -- uploads ---------------------------------------------------------------------------


def test_generator_write_uses_resumable_chunks(
    store: GcsStorage, caplog: pytest.LogCaptureFixture
) -> None:
    total = 2 * MiB + 123
    with caplog.at_level(logging.DEBUG, logger="storager.services.gcs"):
        obj = store.write("big.bin", _pieces(total, 100 * KiB))
    messages = [r.getMessage() for r in caplog.records]
    assert any("resumable upload" in m and "started" in m for m in messages)
    # 2 MiB + 123 bytes in 256 KiB chunks: 8 full chunks, then the rest completes it.
    assert sum("chunk stored" in m for m in messages) == 8
    assert obj.content_length == total
    assert store.read("big.bin") == b"".join(_pieces(total, 100 * KiB))


def test_small_write_is_a_single_request(
    store: GcsStorage, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.DEBUG, logger="storager.services.gcs"):
        store.write("small.bin", _pieces(CHUNK, 10 * KiB))  # exactly one chunk
    assert not any("resumable" in r.getMessage() for r in caplog.records)
    assert store.stat("small.bin").content_length == CHUNK


def test_streaming_write_memory_stays_near_one_chunk(store: GcsStorage) -> None:
    total = 12 * MiB
    tracemalloc.start()
    try:
        store.write("stream.bin", _pieces(total, 64 * KiB))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert store.stat("stream.bin").content_length == total
    assert peak < 3 * MiB, f"peak {peak} bytes for a {total}-byte stream in {CHUNK}-byte chunks"


def test_failed_resumable_upload_leaves_old_object(store: GcsStorage) -> None:
    store.write("keep.bin", b"old")
    with pytest.raises(InvalidArgumentError):
        store.write("keep.bin", _pieces(MiB, 64 * KiB), size=MiB + 1)
    assert store.read("keep.bin") == b"old"
    with pytest.raises(InvalidArgumentError):
        store.write("new.bin", _pieces(MiB, 64 * KiB), size=MiB - 1)
    with pytest.raises(NotFoundError):
        store.stat("new.bin")


def test_chunk_size_must_be_a_multiple_of_256_kib(gcs_bucket: str) -> None:
    with pytest.raises(PairInvalidError, match="chunk_size"):
        GcsStorage(name=gcs_bucket, credential="token:anon", chunk_size=1000)


# -- copy, move, delete -----------------------------------------------------------------


def test_move_is_fast_and_keeps_metadata(store: GcsStorage) -> None:
    store.write("src", b"moved", content_type="text/x-a", user_metadata={"k": "v"})
    start = time.monotonic()
    store.move("src", "dst")
    assert time.monotonic() - start < 5, "move must not go through gcsfs's slow moveTo path"
    with pytest.raises(NotFoundError):
        store.stat("src")
    got = store.stat("dst")
    assert (got.content_type, dict(got.user_metadata)) == ("text/x-a", {"k": "v"})
    assert store.read("dst") == b"moved"


def test_move_onto_itself_keeps_the_object(store: GcsStorage) -> None:
    store.write("same", b"x")
    store.move("same", "same")
    assert store.read("same") == b"x"


def test_delete_missing_object_is_idempotent(store: GcsStorage) -> None:
    store.delete("never-there")
    store.write("once", b"1")
    store.delete("once")
    store.delete("once")
    with pytest.raises(NotFoundError):
        store.stat("once")


# -- errors -------------------------------------------------------------------------------


def test_missing_bucket_raises_not_found(gcs_server: GCSServer) -> None:
    store = GcsStorage(
        name=f"no-such-{secrets.token_hex(4)}",
        endpoint=gcs_server.endpoint,
        credential="token:anon",
    )
    with pytest.raises(NotFoundError) as info:
        store.read("a.txt")
    assert info.value.op == "read" and info.value.service == "gcs"
    assert isinstance(info.value.__cause__, FileNotFoundError)
    with pytest.raises(NotFoundError):
        list(store.list(""))


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        (400, InvalidArgumentError),
        (401, PermissionDeniedError),
        (403, PermissionDeniedError),
        (404, NotFoundError),
        (412, PreconditionFailedError),
        (429, RateLimitedError),
        (500, ServiceInternalError),
        (503, ServiceInternalError),
    ],
)
def test_http_status_maps_to_storager_error(status: int, expected: type[StorageError]) -> None:
    err = map_gcs_error(HttpError({"code": status, "message": "boom"}), "read", "/a")
    assert type(err) is expected
    assert (err.op, err.service, err.path) == ("read", "gcs", "/a")
    assert "boom" not in str(err)


@pytest.mark.parametrize(
    ("exc", "expected"),
    [
        (FileNotFoundError("b/o"), NotFoundError),
        (OSError("Forbidden: b/o\nno access"), PermissionDeniedError),
        (FileExistsError("b/o"), PreconditionFailedError),
        (ValueError("Bad Request: b/o\ninvalid name"), InvalidArgumentError),
        (requests.exceptions.ProxyError(), ServiceInternalError),
        (aiohttp.ClientConnectionError(), ServiceInternalError),
    ],
)
def test_gcsfs_exception_shapes_map_to_storager_errors(
    exc: Exception, expected: type[StorageError]
) -> None:
    err = map_gcs_error(exc, "stat", "/b")
    assert type(err) is expected
    assert err.retryable is (expected is ServiceInternalError)


# -- credentials --------------------------------------------------------------------------


def test_credentials_never_shown(gcs_server: GCSServer, gcs_bucket: str) -> None:
    secret = "ya29.SECRET-TOKEN-" + secrets.token_hex(8)
    url = f"gcs://{gcs_bucket}/w/?endpoint={gcs_server.endpoint}&credential=token:{secret}"
    store = storager.open(url)
    assert secret not in repr(store)
    assert secret not in repr(store.metadata())
    # The emulator ignores the bearer token, so requests go through.
    store.write("x", b"1")
    with pytest.raises(NotFoundError) as info:
        store.read("missing")
    assert secret not in str(info.value)
    with pytest.raises(storager.ConnectionStringInvalidError) as bad:
        storager.open(url + "&nosuchkey=1")
    assert secret not in str(bad.value)


@pytest.mark.parametrize("credential", ["hmac:a:b", "token:", "file:", "plain-secret-value"])
def test_bad_credential_form_is_refused_without_echo(gcs_bucket: str, credential: str) -> None:
    with pytest.raises(PairInvalidError) as info:
        GcsStorage(name=gcs_bucket, credential=credential)
    assert "credential" in str(info.value)
    if credential.partition(":")[2]:
        assert credential.partition(":")[2] not in str(info.value)


def test_credential_file_must_exist(gcs_bucket: str, tmp_path: Any) -> None:
    missing = tmp_path / "secret-key.json"
    with pytest.raises(PairInvalidError) as info:
        GcsStorage(name=gcs_bucket, credential=f"file:{missing}")
    assert "secret-key" not in str(info.value)


def test_absent_credential_uses_application_default_credentials(
    gcs_bucket: str, tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    missing = tmp_path / "adc-secret.json"
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(missing))
    with pytest.raises(PermissionDeniedError) as info:
        GcsStorage(name=gcs_bucket)
    assert info.value.op == "new"
    assert "adc-secret" not in str(info.value)


def test_close_is_idempotent_and_releases_the_session(gcs_url: str) -> None:
    store = storager.open(gcs_url)
    store.write("closing.txt", b"1")
    store.delete("closing.txt")
    assert isinstance(store, GcsStorage) and store._fs._session is not None
    store.close()
    store.close()
    assert store._fs._session is None


# -- the conformance suite ----------------------------------------------------------------


class TestGcs(StoragerSuite):
    """Every behaviour contract, against the emulator."""

    @pytest.fixture
    def storager_factory(self, gcs_url: str) -> UrlFactory:
        return url_factory(gcs_url)
