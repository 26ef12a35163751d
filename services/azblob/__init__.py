"""The azblob service: Azure Blob Storage on adlfs and the azure-storage-blob SDK.

adlfs's ``AzureBlobFileSystem`` connects (credentials, the environment, its event loop
thread and the SDK's async ``BlobServiceClient``); the operations call that client
directly, because they need what adlfs's file-system view hides: keys that end with
``/``, lazy paged listings, block staging with bounded memory, append blobs, content
type and user metadata on every write.

Connection string: ``azblob://CONTAINER/WORK_DIR/?endpoint=URL&credential=...``; see
:mod:`storager.services.azblob._credential` for the credential's forms.

Directories are prefixes of keys; ``create_dir`` also writes an empty marker blob whose
key ends with ``/`` (with ``hdi_isfolder=true`` metadata, as adlfs and ADLS expect).
"""

from __future__ import annotations

import asyncio
import base64
import io
import logging
import weakref
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping
from types import MappingProxyType
from typing import Any, BinaryIO, TypeVar

from adlfs import AzureBlobFileSystem
from azure.core import MatchConditions
from azure.core.exceptions import HttpResponseError, ResourceExistsError, ResourceNotFoundError
from azure.storage.blob import BlobProperties, BlobType, ContentSettings
from azure.storage.blob.aio import BlobClient

from storager._errors import (
    NotFoundError,
    ObjectModeInvalidError,
    PairInvalidError,
    ServiceInternalError,
    StorageError,
)
from storager._object import Object, ObjectMode
from storager._protocols import IoCallback, WriteData
from storager._streams import CHUNK_SIZE, RangeReader, iter_chunks
from storager.services.azblob._blocks import APPEND_BLOCK_MAX, pieces, run, upload
from storager.services.azblob._credential import adlfs_options
from storager.services.azblob._errors import error_code, map_azure_error
from storager.services.azblob._generated import AzblobGenerated

__all__ = ["AzblobStorage"]

logger = logging.getLogger("storager.services.azblob")

T = TypeVar("T")

SERVICE = "azblob"
#: Default size of the blocks a write stages.
BLOCK_SIZE = 4 << 20
#: Azure's largest block (service version 2019-12-12 and later).
BLOCK_SIZE_MAX = 4000 << 20
#: How many staged blocks a write keeps in flight (each is held in memory).
BLOCK_WINDOW = 2
#: The buffer of open_reader: each refill is one ranged download.
READ_BUFFER = 1 << 20
#: Default of the retry_max pair.
RETRY_MAX = 3
#: Results per listing page.
PAGE_SIZE = 1000
#: Metadata keys adlfs and ADLS use to mark directories; not the user's.
_DIR_MARKERS = frozenset({"hdi_isfolder", "is_directory"})
_COPY_POLL = 0.05
_COPY_POLL_MAX = 2.0


def _key(path: str) -> str:
    """Return the blob key of a store-absolute path."""
    return path[1:]


class AzblobStorage(AzblobGenerated):
    """A store in one Azure Blob container; see the module docstring.

    Example:
        >>> store = AzblobStorage(
        ...     name="data",
        ...     endpoint="http://127.0.0.1:10000/devstoreaccount1",
        ...     credential="shared_key:devstoreaccount1:KEY",
        ... )
        >>> store.write("a.txt", b"hi").content_length
        2
    """

    def _open(
        self,
        *,
        name: str,
        endpoint: str | None,
        credential: str | None,
        account_name: str | None,
        block_size: int | None,
        retry_max: int | None,
    ) -> None:
        if not name:
            raise PairInvalidError("new", SERVICE, "", "pair 'name' (the container) is empty")
        if block_size is not None and not 1 <= block_size <= BLOCK_SIZE_MAX:
            raise PairInvalidError(
                "new", SERVICE, "", f"pair 'block_size' must be 1 to {BLOCK_SIZE_MAX}"
            )
        self._block_size = block_size or BLOCK_SIZE
        options = adlfs_options(credential, endpoint, account_name)
        try:
            self._fs = AzureBlobFileSystem(
                **options, skip_instance_cache=True, use_listings_cache=False
            )
        except Exception as exc:
            # The cause may quote the connection string, key included: drop it.
            logger.debug("azblob client construction failed: %s", type(exc).__name__)
            raise PairInvalidError(
                "new", SERVICE, "", "cannot build the Azure client from these pairs"
            ) from None
        self._name = name
        self._loop: asyncio.AbstractEventLoop = self._fs.loop
        _limit_retries(self._fs.service_client, RETRY_MAX if retry_max is None else retry_max)
        self._container = self._fs.service_client.get_container_client(name)

    def _close(self) -> None:
        try:
            self._run(self._fs.service_client.close())
            # adlfs made these only for its own credential chain (DefaultAzureCredential...).
            credential = getattr(self._fs, "credential", None)
            if credential is not None and hasattr(credential, "close"):
                self._run(credential.close())
            sync_credential = getattr(self._fs, "sync_credential", None)
            if sync_credential is not None and hasattr(sync_credential, "close"):
                sync_credential.close()
        except Exception as exc:  # closing must not fail the caller
            logger.debug("azblob close: %s", type(exc).__name__)
        _detach_finalizers(self._fs)

    def _map_error(self, exc: Exception, op: str, path: str) -> StorageError:
        return map_azure_error(exc, op, path)

    # -- helpers -----------------------------------------------------------------------

    def _run(self, awaitable: Awaitable[T]) -> T:
        """Await ``awaitable`` on adlfs's event loop thread and return its result."""
        return run(self._loop, awaitable)

    def _blob(self, key: str) -> BlobClient:
        blob: BlobClient = self._container.get_blob_client(key)
        return blob

    def _file_key(self, op: str, path: str) -> str:
        if path.endswith("/"):
            raise ObjectModeInvalidError(op, SERVICE, path, "is a directory")
        return _key(path)

    def _to_object(self, key: str, props: BlobProperties) -> Object:
        path = "/" + key
        is_dir = key.endswith("/")
        settings = props.content_settings
        md5 = settings.content_md5 if settings is not None else None
        metadata = {
            k: v for k, v in (props.metadata or {}).items() if k.lower() not in _DIR_MARKERS
        }
        blob_type = props.blob_type
        mode = ObjectMode.DIR if is_dir else ObjectMode.READ
        if blob_type == BlobType.APPENDBLOB and not is_dir:
            mode |= ObjectMode.APPEND
        system: dict[str, object] = {}
        if blob_type is not None:
            system["blob_type"] = str(getattr(blob_type, "value", blob_type))
        if props.blob_tier is not None:
            system["access_tier"] = str(getattr(props.blob_tier, "value", props.blob_tier))
        return Object(
            self._rel(path),
            mode,
            content_length=None if is_dir else props.size,
            content_type=settings.content_type if settings is not None else None,
            content_md5=base64.b64encode(bytes(md5)).decode() if md5 else None,
            etag=props.etag.strip('"') if props.etag else None,
            last_modified=props.last_modified,
            user_metadata=MappingProxyType(metadata),
            system_metadata=MappingProxyType(system),
        )

    async def _any_under(self, prefix: str) -> bool:
        async for _ in self._container.list_blobs(name_starts_with=prefix, results_per_page=1):
            return True
        return False

    def _pages(self, make: Callable[[], AsyncIterator[AsyncIterator[T]]]) -> Iterator[T]:
        """Yield the items of a paged listing, fetching one page at a time."""

        async def start() -> AsyncIterator[AsyncIterator[T]]:
            return make()

        async def next_page(pages: AsyncIterator[AsyncIterator[T]]) -> list[T] | None:
            try:
                page = await pages.__anext__()
            except StopAsyncIteration:
                return None
            return [item async for item in page]

        pages = self._run(start())
        while (items := self._run(next_page(pages))) is not None:
            yield from items

    # -- Storager -----------------------------------------------------------------------

    def _stat(self, path: str) -> Object:
        key = _key(path)
        if key and not key.endswith("/"):
            try:
                props: BlobProperties = self._run(self._blob(key).get_blob_properties())
            except ResourceNotFoundError as exc:
                if error_code(exc) == "BlobNotFound" and self._run(self._any_under(key + "/")):
                    return Object(self._rel(path + "/"), ObjectMode.DIR)
                raise
            return self._to_object(key, props)
        if not key or self._run(self._any_under(key)):
            return Object(self._rel(path), ObjectMode.DIR)
        raise NotFoundError("stat", SERVICE, path)

    def _read(
        self, path: str, *, io_callback: IoCallback | None, offset: int | None, size: int | None
    ) -> bytes:
        blob = self._blob(self._file_key("read", path))
        if size == 0:
            self._run(blob.get_blob_properties())  # a missing object still raises
            data = b""
        else:
            data = self._run(_download(blob, offset or 0, size, None))
        if io_callback is not None:
            io_callback(len(data))
        return data

    def _open_reader(self, path: str, *, offset: int | None, size: int | None) -> BinaryIO:
        blob = self._blob(self._file_key("open_reader", path))
        props: BlobProperties = self._run(blob.get_blob_properties())
        total = props.size
        start = min(offset or 0, total)
        length = total - start if size is None else min(size, total - start)
        # Every range asks for the version stat saw: a reader never mixes two versions.
        etag = props.etag

        def fetch(pos: int, n: int) -> bytes:
            try:
                return self._run(_download(blob, start + pos, n, etag))
            except StorageError:
                raise
            except Exception as exc:
                raise self._map_error(exc, "read", path) from exc

        return io.BufferedReader(RangeReader(fetch, length), buffer_size=READ_BUFFER)

    def _write(
        self,
        path: str,
        data: WriteData,
        *,
        content_type: str | None,
        io_callback: IoCallback | None,
        size: int | None,
        user_metadata: Mapping[str, str] | None,
    ) -> Object:
        chunks = iter_chunks(
            "write",
            SERVICE,
            path,
            data,
            size=size,
            io_callback=io_callback,
            chunk_size=min(CHUNK_SIZE, self._block_size),
        )
        done = upload(
            self._loop,
            self._blob(_key(path)),
            chunks,
            block_size=self._block_size,
            window=BLOCK_WINDOW,
            content_settings=ContentSettings(content_type=content_type) if content_type else None,
            metadata=user_metadata,
        )
        return Object(
            self._rel(path),
            ObjectMode.READ,
            content_length=done.length,
            content_type=content_type,
            etag=done.etag,
            last_modified=done.last_modified,
            user_metadata=MappingProxyType(dict(user_metadata or {})),
        )

    def _delete(self, path: str) -> None:
        key = _key(path)
        if not key:
            return
        try:
            self._run(self._blob(key).delete_blob())
        except ResourceNotFoundError as exc:
            if error_code(exc) != "BlobNotFound":
                raise

    def _list(self, path: str, *, list_mode: str | None) -> Iterator[Object]:
        key = _key(path)
        if list_mode == "prefix":
            for props in self._pages(
                lambda: self._container.list_blobs(
                    name_starts_with=key or None, include=["metadata"], results_per_page=PAGE_SIZE
                ).by_page()
            ):
                yield self._to_object(props.name, props)
            return
        prefix = key if not key or key.endswith("/") else key + "/"
        for item in self._pages(
            lambda: self._container.walk_blobs(
                name_starts_with=prefix or None,
                include=["metadata"],
                delimiter="/",
                results_per_page=PAGE_SIZE,
            ).by_page()
        ):
            # The async walk yields its own BlobPrefix class: test for properties instead.
            if not isinstance(item, BlobProperties):
                yield Object(self._rel("/" + item.name), ObjectMode.DIR)
            elif item.name != prefix:  # not the directory's own marker
                yield self._to_object(item.name, item)

    # -- Copier, Mover ------------------------------------------------------------------

    def _copy(self, src: str, dst: str) -> None:
        self._copy_blob("copy", src, dst)

    def _copy_blob(self, op: str, src: str, dst: str) -> None:
        source = self._blob(self._file_key(op, src))
        status = self._run(_server_copy(source, self._blob(_key(dst))))
        if status != "success":
            raise ServiceInternalError(op, SERVICE, dst, f"server-side copy ended {status}")

    def _move(self, src: str, dst: str) -> None:
        if src == dst:
            self._run(self._blob(self._file_key("move", src)).get_blob_properties())
            return
        self._copy_blob("move", src, dst)
        try:
            self._run(self._blob(_key(src)).delete_blob())
        except ResourceNotFoundError as exc:
            if error_code(exc) != "BlobNotFound":
                raise

    # -- Appender, Direr ----------------------------------------------------------------

    def _append(
        self,
        path: str,
        data: WriteData,
        *,
        content_type: str | None,
        io_callback: IoCallback | None,
        size: int | None,
    ) -> Object:
        key = self._file_key("append", path)
        blob = self._blob(key)
        chunks = iter_chunks(
            "append", SERVICE, path, data, size=size, io_callback=io_callback, chunk_size=CHUNK_SIZE
        )
        settings = ContentSettings(content_type=content_type) if content_type else None
        appended = False
        # Appends at most APPEND_BLOCK_MAX long are one request, so all or nothing.
        for piece in pieces(chunks, APPEND_BLOCK_MAX):
            try:
                self._run(_append_block(blob, piece, settings, create=not appended))
            except ResourceExistsError as exc:
                if error_code(exc) == "InvalidBlobType":
                    raise ObjectModeInvalidError(
                        "append", SERVICE, path, "the object was written whole, not appended to"
                    ) from exc
                raise
            appended = True
        if not appended:
            self._run(_ensure_append_blob(blob, settings))
        return self._to_object(key, self._run(blob.get_blob_properties()))

    def _create_dir(self, path: str) -> Object:
        key = _key(path).rstrip("/") + "/"
        if key != "/":
            self._run(
                self._blob(key).upload_blob(b"", overwrite=True, metadata={"hdi_isfolder": "true"})
            )
        return Object(self._rel("/" + key.lstrip("/")), ObjectMode.DIR)


def _detach_finalizers(fs: object) -> None:
    """Drop adlfs's exit-time finalizers of ``fs``, now that the store closed its clients.

    adlfs registers ``weakref.finalize(fs, ..., fs)``: the finalizer holds ``fs`` itself,
    so without this every store would keep its file system and clients alive until the
    interpreter exits.
    """
    registry = getattr(weakref.finalize, "_registry", None)
    if not isinstance(registry, dict):
        return
    for finalizer in list(registry):
        info = finalizer.peek()
        if info is not None and info[0] is fs:
            finalizer.detach()


def _limit_retries(client: Any, retry_max: int) -> None:
    """Make the SDK retry at most ``retry_max`` times, after short waits.

    adlfs builds the client with the SDK's default retry policy: three retries after
    about 15, 18 and 24 seconds, so an unreachable endpoint takes a minute to fail.
    The SDK reads these attributes of its policy object on every request; the policy
    is reached through the client's config, which has no public setter.
    """
    policy = getattr(getattr(client, "_config", None), "retry_policy", None)
    if policy is None or not hasattr(policy, "total_retries"):
        logger.debug("azblob: the SDK's retry policy was not found; keeping its defaults")
        return
    policy.total_retries = retry_max
    for name in ("connect_retries", "read_retries", "status_retries"):
        setattr(policy, name, min(getattr(policy, name, retry_max), retry_max))
    if hasattr(policy, "initial_backoff"):
        policy.initial_backoff = 0.5
        policy.increment_base = 2
        policy.random_jitter_range = 0.5


async def _download(blob: BlobClient, offset: int, length: int | None, etag: str | None) -> bytes:
    """Download ``length`` bytes from ``offset`` (to the end when None)."""
    conditions: dict[str, Any] = {}
    if etag is not None:
        conditions = {"etag": etag, "match_condition": MatchConditions.IfNotModified}
    try:
        stream = await blob.download_blob(offset=offset, length=length, **conditions)
    except HttpResponseError as exc:
        if exc.status_code == 416:  # the range starts at or past the end
            return b""
        raise
    data: bytes = await stream.readall()
    return data


async def _server_copy(source: BlobClient, target: BlobClient) -> str:
    """Copy ``source`` to ``target`` in the service; return the final copy status."""
    response = await target.start_copy_from_url(source.url)
    status = str(response.get("copy_status") or "success")
    delay = _COPY_POLL
    while status == "pending":
        await asyncio.sleep(delay)
        delay = min(delay * 2, _COPY_POLL_MAX)
        props = await target.get_blob_properties()
        status = str(props.copy.status or "success")
    return status


async def _append_block(
    blob: BlobClient,
    data: bytes | bytearray | memoryview,
    settings: ContentSettings | None,
    *,
    create: bool,
) -> None:
    """Append ``data``; when ``create``, first create the append blob if it is missing."""
    try:
        await blob.append_block(data, length=len(data))  # type: ignore[arg-type]
    except ResourceNotFoundError as exc:
        if not create or error_code(exc) != "BlobNotFound":
            raise
        await _ensure_append_blob(blob, settings)
        await blob.append_block(data, length=len(data))  # type: ignore[arg-type]


async def _ensure_append_blob(blob: BlobClient, settings: ContentSettings | None) -> None:
    """Create ``blob`` as an empty append blob unless something exists there."""
    try:
        await blob.create_append_blob(content_settings=settings, headers={"If-None-Match": "*"})
    except ResourceExistsError:
        pass
    except HttpResponseError as exc:
        if exc.status_code != 412 and error_code(exc) not in ("BlobAlreadyExists",):
            raise
