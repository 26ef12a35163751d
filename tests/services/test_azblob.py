"""The azblob service against Azurite: the conformance suite, then azblob's own behaviour.

Azurite starts once per session (``azurite_server``); each session gets its own
container, and each test its own random work_dir inside it.
"""

from __future__ import annotations

import gc
import logging
import secrets
import time
import traceback
import tracemalloc
import weakref
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from urllib.parse import quote

import pytest
from azure.core.exceptions import HttpResponseError
from azure.storage.blob import BlobServiceClient, ContainerSasPermissions, generate_container_sas

import storager
from storager import (
    InvalidArgumentError,
    NotFoundError,
    ObjectModeInvalidError,
    OperationTimeoutError,
    PairInvalidError,
    PairRequiredError,
    PermissionDeniedError,
    PreconditionFailedError,
    RateLimitedError,
    ServiceInternalError,
    StorageError,
    UnexpectedError,
)
from storager._object import ObjectMode
from storager.services.azblob import AzblobStorage
from storager.services.azblob._credential import adlfs_options
from storager.services.azblob._errors import map_azure_error
from storager.testing import StoragerSuite, url_factory
from storager.testing._url import UrlFactory
from tests.servers.azurite import AzuriteServer

pytestmark = pytest.mark.azblob

KiB = 1024
MiB = 1024 * KiB
#: A valid base64 key that is not the account's: Azure refuses its signatures.
WRONG_KEY = "d3Jvbmcta2V5LW5vdC10aGUtYWNjb3VudHMta2V5LXRoYXQtc2lnbnMtbm90aGluZw=="


@pytest.fixture(scope="session")
def blob_service(azurite_server: AzuriteServer) -> Iterator[BlobServiceClient]:
    """The SDK's own client on Azurite: to set up and to check behind the store's back."""
    client = BlobServiceClient.from_connection_string(azurite_server.connection_string)
    yield client
    client.close()


@pytest.fixture(scope="session")
def container(blob_service: BlobServiceClient) -> str:
    """A fresh container for this session."""
    name = f"storager-{secrets.token_hex(4)}"
    blob_service.create_container(name)
    return name


def _credential(server: AzuriteServer, key: str | None = None) -> str:
    return f"shared_key:{server.account_name}:{key or server.account_key}"


@pytest.fixture(scope="session")
def azblob_url(azurite_server: AzuriteServer, container: str) -> str:
    """The session's connection string, the credential percent-encoded."""
    credential = quote(_credential(azurite_server), safe="")
    return f"azblob://{container}/?endpoint={azurite_server.endpoint}&credential={credential}"


@pytest.fixture
def store(azurite_server: AzuriteServer, container: str) -> Iterator[AzblobStorage]:
    """A store in a fresh work_dir, with small blocks so block uploads stay quick."""
    s = AzblobStorage(
        name=container,
        work_dir=f"/t-{secrets.token_hex(4)}/",
        endpoint=azurite_server.endpoint,
        credential=_credential(azurite_server),
        block_size=256 * KiB,
    )
    yield s
    s.close()


class TestAzblob(StoragerSuite):
    """The conformance suite on Azurite, opened from a connection string."""

    @pytest.fixture
    def storager_factory(self, azblob_url: str) -> UrlFactory:
        return url_factory(azblob_url)


# -- connection and credentials ---------------------------------------------------------


def test_connection_string_opens_the_container_and_work_dir(azblob_url: str) -> None:
    with storager.open(azblob_url.replace("/?", "/base/dir/?", 1)) as s:
        assert isinstance(s, AzblobStorage)
        meta = s.metadata()
        assert (meta.service, meta.work_dir) == ("azblob", "/base/dir/")
        assert meta.name == azblob_url.split("/")[2]
        s.write("f.txt", b"x")
        assert [o.path for o in s.list()] == ["f.txt"]
        s.delete("f.txt")


def test_environment_connection_string_is_used_without_credential(
    azurite_server: AzuriteServer, container: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AZURE_STORAGE_CONNECTION_STRING", azurite_server.connection_string)
    with AzblobStorage(name=container, work_dir=f"/env-{secrets.token_hex(4)}/") as s:
        s.write("a", b"from env")
        assert s.read("a") == b"from env"
        s.delete("a")


def test_explicit_credential_wins_over_environment(
    azurite_server: AzuriteServer, container: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AZURE_STORAGE_CONNECTION_STRING", azurite_server.connection_string)
    with (
        AzblobStorage(
            name=container,
            endpoint=azurite_server.endpoint,
            credential=_credential(azurite_server, WRONG_KEY),
        ) as s,
        pytest.raises(PermissionDeniedError),
    ):
        s.stat("anything")


def test_connection_string_credential_form(azurite_server: AzuriteServer, container: str) -> None:
    credential = "connection_string:" + azurite_server.connection_string
    with AzblobStorage(name=container, credential=credential) as s:
        s.write("cs.txt", b"ok")
        assert s.read("cs.txt") == b"ok"
        s.delete("cs.txt")


def test_sas_credential_form_reads_writes_and_copies(
    azurite_server: AzuriteServer, container: str
) -> None:
    token = generate_container_sas(
        azurite_server.account_name,
        container,
        account_key=azurite_server.account_key,
        permission=ContainerSasPermissions(read=True, write=True, delete=True, list=True),
        expiry=datetime.now(UTC) + timedelta(hours=1),
    )
    with AzblobStorage(
        name=container,
        work_dir=f"/sas-{secrets.token_hex(4)}/",
        endpoint=azurite_server.endpoint,
        credential=f"sas:{azurite_server.account_name}:?{token}",
    ) as s:
        s.write("a", b"signed")
        s.copy("a", "b")  # the copy source must carry the token too
        assert s.read("b") == b"signed"
        assert sorted(o.path for o in s.list()) == ["a", "b"]
        s.delete("a")
        s.delete("b")


def test_anonymous_credential_reads_a_public_container(
    azurite_server: AzuriteServer, blob_service: BlobServiceClient
) -> None:
    name = f"public-{secrets.token_hex(4)}"
    blob_service.create_container(name, public_access="container")
    blob_service.get_blob_client(name, "open.txt").upload_blob(b"for all")
    with AzblobStorage(name=name, endpoint=azurite_server.endpoint, credential="anonymous") as s:
        assert s.read("open.txt") == b"for all"
        assert [o.path for o in s.list()] == ["open.txt"]
        with pytest.raises(StorageError) as info:
            s.write("nope.txt", b"x")  # public read does not allow writes
    assert isinstance(info.value, PermissionDeniedError | NotFoundError)


@pytest.mark.parametrize(
    ("environ", "account", "endpoint", "expected"),
    [
        (
            {"AZURE_STORAGE_CONNECTION_STRING": "AccountName=a;AccountKey=k;BlobEndpoint=x"},
            None,
            "http://h:1/a",
            {"connection_string": "AccountName=a;AccountKey=k;BlobEndpoint=http://h:1/a;"},
        ),
        (
            {"AZURE_STORAGE_ACCOUNT_NAME": "acct", "AZURE_STORAGE_ACCOUNT_KEY": "k"},
            None,
            None,
            {
                "connection_string": "DefaultEndpointsProtocol=https;AccountName=acct;"
                "AccountKey=k;EndpointSuffix=core.windows.net"
            },
        ),
        ({}, "acct", None, {"account_name": "acct"}),
        (
            {},
            "acct",
            "https://proxy.example/blob/",
            {"account_name": "acct", "account_host": "proxy.example/blob"},
        ),
    ],
)
def test_environment_decides_without_a_credential(
    environ: dict[str, str], account: str | None, endpoint: str | None, expected: dict[str, str]
) -> None:
    assert adlfs_options(None, endpoint, account, environ) == expected


def test_token_chain_over_http_endpoint_raises_pair_invalid() -> None:
    with pytest.raises(PairInvalidError, match="https"):
        adlfs_options(None, "http://127.0.0.1:1/acct", "acct", {})


def test_close_releases_the_client(azurite_server: AzuriteServer, container: str) -> None:
    store = AzblobStorage(
        name=container, endpoint=azurite_server.endpoint, credential=_credential(azurite_server)
    )
    assert list(store.list("no-such-dir/")) == []
    fs = weakref.ref(store._fs)
    store.close()
    store.close()  # twice is fine
    del store
    gc.collect()
    assert fs() is None  # adlfs's exit-time finalizer no longer pins it


@pytest.mark.parametrize(
    "credential",
    ["hmac:a:b", "shared_key:only-account", "shared_key::key", "sas:acct", "anonymous:x", ""],
)
def test_malformed_credential_raises_pair_invalid_without_its_value(
    azurite_server: AzuriteServer, credential: str
) -> None:
    with pytest.raises(PairInvalidError) as info:
        AzblobStorage(name="c", endpoint=azurite_server.endpoint, credential=credential)
    assert "shared_key:ACCOUNT:KEY" in str(info.value)
    if credential:
        assert credential not in str(info.value)


def test_no_credential_and_no_account_raises_pair_required(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for var in (
        "AZURE_STORAGE_CONNECTION_STRING",
        "AZURE_STORAGE_ACCOUNT_NAME",
        "AZURE_STORAGE_ACCOUNT_KEY",
    ):
        monkeypatch.delenv(var, raising=False)
    with pytest.raises(PairRequiredError, match="account_name"):
        AzblobStorage(name="c")


def test_account_key_never_shows_in_repr_errors_or_logs(
    azurite_server: AzuriteServer, container: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    keys = (azurite_server.account_key, WRONG_KEY)
    good = AzblobStorage(
        name=container, endpoint=azurite_server.endpoint, credential=_credential(azurite_server)
    )
    bad = AzblobStorage(
        name=container,
        endpoint=azurite_server.endpoint,
        credential=_credential(azurite_server, WRONG_KEY),
    )
    with good, bad:
        with pytest.raises(NotFoundError) as missing:
            good.read("no-such-object")
        with pytest.raises(PermissionDeniedError) as denied:
            bad.write("x", b"data")
        texts = [repr(good), repr(bad), caplog.text]
        for info in (missing, denied):
            texts.append(str(info.value))
            texts.append("".join(traceback.format_exception(info.value)))
    assert "permission denied" in str(denied.value)
    for text in texts:
        for key in keys:
            assert key not in text
            assert quote(key, safe="") not in text


# -- writes: blocks, metadata -----------------------------------------------------------


def test_generator_write_stages_several_blocks(
    store: AzblobStorage, blob_service: BlobServiceClient, container: str
) -> None:
    piece = secrets.token_bytes(100 * KiB)
    pieces = 12  # 1.2 MiB over 256 KiB blocks: five blocks, the last one short

    obj = store.write("big.bin", (piece for _ in range(pieces)), user_metadata={"k": "v"})

    assert obj.content_length == pieces * len(piece)
    key = store.metadata().work_dir.lstrip("/") + "big.bin"
    blob = blob_service.get_blob_client(container, key)
    committed, uncommitted = blob.get_block_list("all")
    assert [b.size for b in committed] == [256 * KiB] * 4 + [pieces * len(piece) - 4 * 256 * KiB]
    assert uncommitted == []
    assert store.read("big.bin") == piece * pieces
    assert store.stat("big.bin").user_metadata == {"k": "v"}


def test_large_generator_write_keeps_memory_bounded(store: AzblobStorage) -> None:
    piece = secrets.token_bytes(MiB)
    tracemalloc.start()
    try:
        store.write("bounded.bin", (piece for _ in range(24)))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    # 24 MiB through 256 KiB blocks: a few blocks and one source chunk, never the whole.
    assert peak < 8 * MiB
    assert store.stat("bounded.bin").content_length == 24 * MiB


def test_failed_block_write_leaves_existing_object_untouched(store: AzblobStorage) -> None:
    store.write("keep.bin", b"old content")

    def broken() -> Iterator[bytes]:
        yield b"x" * MiB  # enough to stage blocks
        raise OSError("source broke")

    # The caller's own exception comes back unchanged, even an OSError.
    with pytest.raises(OSError, match="source broke") as info:
        store.write("keep.bin", broken())
    assert not isinstance(info.value, StorageError)
    assert store.read("keep.bin") == b"old content"


def test_stat_fills_every_field(store: AzblobStorage) -> None:
    written = store.write(
        "meta.txt", b"hello", content_type="text/plain", user_metadata={"owner": "me"}
    )
    obj = store.stat("meta.txt")
    assert obj.content_length == 5
    assert obj.content_type == "text/plain"
    assert obj.user_metadata == {"owner": "me"}
    assert obj.etag and not obj.etag.startswith('"') and obj.etag == written.etag
    assert obj.last_modified is not None and obj.last_modified.tzinfo is not None
    assert obj.content_md5 == "XUFAKrxLKna5cZ2REBfFkg=="  # MD5 of b"hello"
    assert obj.system_metadata["blob_type"] == "BlockBlob"


# -- reads ------------------------------------------------------------------------------


def test_open_reader_reads_in_ranges_and_seeks(store: AzblobStorage) -> None:
    data = secrets.token_bytes(3 * MiB + 17)
    store.write("r.bin", data)
    with store.open_reader("r.bin", offset=10, size=2 * MiB) as reader:
        assert reader.read(5) == data[10:15]
        reader.seek(MiB)
        assert reader.read(100) == data[10 + MiB : 10 + MiB + 100]
        reader.seek(0)
        assert reader.read() == data[10 : 10 + 2 * MiB]


def test_reader_of_a_replaced_object_raises_precondition_failed(store: AzblobStorage) -> None:
    store.write("v.bin", b"a" * (3 * MiB))
    with store.open_reader("v.bin") as reader:
        assert reader.read(10) == b"a" * 10
        store.write("v.bin", b"b" * (3 * MiB))
        reader.seek(2 * MiB)  # past the buffer: the next read is a new range
        with pytest.raises(PreconditionFailedError, match="ConditionNotMet"):
            reader.read(10)


# -- directories, appends, copies -------------------------------------------------------


def test_create_dir_is_a_marker_listed_once(store: AzblobStorage) -> None:
    obj = store.create_dir("d")
    assert obj.path == "d/" and obj.is_dir
    store.write("d/f.txt", b"x")
    assert store.stat("d").is_dir
    assert [o.path for o in store.list()] == ["d/"]
    assert [o.path for o in store.list("d/")] == ["d/f.txt"]
    prefix = {o.path: o.mode for o in store.list(list_mode="prefix")}
    assert prefix == {"d/": ObjectMode.DIR, "d/f.txt": ObjectMode.READ}
    assert store.stat("d/").user_metadata == {}  # the marker's hdi_isfolder is not the user's


def test_append_uses_an_append_blob(store: AzblobStorage) -> None:
    store.append("log", b"one,", content_type="text/csv")
    obj = store.append("log", b"two" * (2 * MiB))  # 6 MiB: two append blocks
    assert obj.content_length == 4 + 6 * MiB
    assert ObjectMode.APPEND in obj.mode
    assert obj.content_type == "text/csv"
    assert store.read("log", size=7) == b"one,two"
    assert store.stat("log").system_metadata["blob_type"] == "AppendBlob"


def test_append_of_nothing_creates_an_empty_object(store: AzblobStorage) -> None:
    assert store.append("empty", b"").content_length == 0
    assert store.read("empty") == b""


def test_append_to_a_written_object_raises_object_mode_invalid(store: AzblobStorage) -> None:
    store.write("whole", b"block blob")
    with pytest.raises(ObjectModeInvalidError, match="written whole"):
        store.append("whole", b"more")
    assert store.read("whole") == b"block blob"


def test_write_replaces_an_append_blob(store: AzblobStorage) -> None:
    store.append("a", b"appended")
    store.write("a", b"x" * MiB)  # four staged blocks over an append blob
    assert store.read("a") == b"x" * MiB
    assert store.stat("a").system_metadata["blob_type"] == "BlockBlob"


def test_copy_runs_on_the_server_and_keeps_metadata(store: AzblobStorage) -> None:
    store.write("src", b"payload", content_type="text/plain", user_metadata={"a": "1"})
    store.copy("src", "dst")
    obj = store.stat("dst")
    assert (obj.content_type, dict(obj.user_metadata)) == ("text/plain", {"a": "1"})
    assert store.read("dst") == b"payload"


def test_move_onto_itself_keeps_the_object(store: AzblobStorage) -> None:
    store.write("same", b"stay")
    store.move("same", "same")
    assert store.read("same") == b"stay"


# -- the error map ----------------------------------------------------------------------


def test_missing_container_raises_not_found(azurite_server: AzuriteServer) -> None:
    with AzblobStorage(
        name=f"missing-{secrets.token_hex(4)}",
        endpoint=azurite_server.endpoint,
        credential=_credential(azurite_server),
    ) as s:
        with pytest.raises(NotFoundError, match="ContainerNotFound"):
            s.read("x")
        with pytest.raises(NotFoundError):
            s.delete("x")  # a missing object is fine, a missing container is not


def test_invalid_container_name_raises_invalid_argument(azurite_server: AzuriteServer) -> None:
    with (
        AzblobStorage(
            name="ab", endpoint=azurite_server.endpoint, credential=_credential(azurite_server)
        ) as s,
        pytest.raises(InvalidArgumentError) as info,
    ):
        s.stat("x")
    assert info.value.op == "stat" and info.value.service == "azblob"


def test_unreachable_endpoint_raises_retryable_error_quickly(
    azurite_server: AzuriteServer,
) -> None:
    started = time.monotonic()
    with (
        AzblobStorage(
            name="cont",
            endpoint="http://127.0.0.1:9/devstoreaccount1",
            credential=_credential(azurite_server),
            retry_max=1,
        ) as s,
        pytest.raises(ServiceInternalError, match="cannot reach the service") as info,
    ):
        s.stat("x")
    assert info.value.retryable
    # One retry after about half a second, not the SDK's default 15 s.
    assert time.monotonic() - started < 5


def _http_error(status: int, code: str | None) -> HttpResponseError:
    """An SDK error as azure-storage-blob raises it (status and error code set)."""
    error = HttpResponseError(message=f"status {status}")
    error.status_code = status
    error.error_code = code  # type: ignore[attr-defined]
    return error


@pytest.mark.parametrize(
    ("status", "code", "expected"),
    [
        (404, "BlobNotFound", NotFoundError),
        (404, "ContainerNotFound", NotFoundError),
        (404, None, NotFoundError),
        (403, "AuthorizationFailure", PermissionDeniedError),
        (403, None, PermissionDeniedError),
        (412, "ConditionNotMet", PreconditionFailedError),
        (412, None, PreconditionFailedError),
        (503, "ServerBusy", RateLimitedError),
        (503, None, RateLimitedError),
        (429, None, RateLimitedError),
        (500, "InternalError", ServiceInternalError),
        (502, None, ServiceInternalError),
        (500, "OperationTimedOut", OperationTimeoutError),
        (400, "InvalidHeaderValue", InvalidArgumentError),
        (409, "InvalidBlobType", ObjectModeInvalidError),
        (409, "LeaseIdMissing", UnexpectedError),
    ],
)
def test_error_map_by_code_and_status(
    status: int, code: str | None, expected: type[StorageError]
) -> None:
    error = map_azure_error(_http_error(status, code), "read", "/a")
    assert type(error) is expected
    assert (error.op, error.service, error.path) == ("read", "azblob", "/a")
    assert (code or f"HTTP {status}") in error.reason


def test_error_map_handles_adlfs_oserrors() -> None:
    assert isinstance(map_azure_error(FileNotFoundError(2, "x"), "stat", "/a"), NotFoundError)
    assert isinstance(
        map_azure_error(PermissionError(13, "x"), "stat", "/a"), PermissionDeniedError
    )
