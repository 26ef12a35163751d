"""The azblob operations, written once as coroutines on the SDK's async clients.

The sync store runs them on adlfs's event loop thread; the native async store
(``_async``) runs them on the caller's loop, with a container client made for that
loop. Paths are store-absolute and pairs validated, as the ``_op`` methods get them.
"""

from __future__ import annotations

import asyncio
import base64
import logging
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from azure.core import MatchConditions
from azure.core.exceptions import HttpResponseError, ResourceExistsError, ResourceNotFoundError
from azure.storage.blob import BlobProperties, BlobType, ContentSettings
from azure.storage.blob.aio import BlobClient, ContainerClient

from storager._errors import NotFoundError, ObjectModeInvalidError, ServiceInternalError
from storager._object import Object, ObjectMode
from storager._protocols import IoCallback
from storager.services.azblob._blocks import APPEND_BLOCK_MAX, Chunk, apieces, upload
from storager.services.azblob._errors import error_code

__all__ = ["PAGE_SIZE", "Blobs", "Pinned", "download", "file_key", "limit_retries"]

logger = logging.getLogger("storager.services.azblob")

SERVICE = "azblob"
#: Results per listing page.
PAGE_SIZE = 1000
#: How many staged blocks a write keeps in flight (each is held in memory).
BLOCK_WINDOW = 2
#: Metadata keys adlfs and ADLS use to mark directories; not the user's.
_DIR_MARKERS = frozenset({"hdi_isfolder", "is_directory"})
_COPY_POLL = 0.05
_COPY_POLL_MAX = 2.0


@dataclass(frozen=True, slots=True)
class Pinned:
    """The range a reader covers, in one version of an object.

    Every fetch asks for the version (etag) stat saw: a reader never mixes two versions.
    """

    key: str
    start: int
    length: int
    etag: str


def _key(path: str) -> str:
    """Return the blob key of a store-absolute path."""
    return path[1:]


def file_key(op: str, path: str) -> str:
    """Return the key of a file path; a directory path is refused."""
    if path.endswith("/"):
        raise ObjectModeInvalidError(op, SERVICE, path, "is a directory")
    return _key(path)


class Blobs:
    """The operations on one container client; see the module docstring.

    Args:
        container: The SDK's async container client (bound to one event loop).
        rel: Turns a store-absolute path into the path the caller sees.
        block_size: The size of the blocks a write stages.
    """

    def __init__(
        self, container: ContainerClient, rel: Callable[[str], str], block_size: int
    ) -> None:
        self.container = container
        self._rel = rel
        self._block_size = block_size

    def _blob(self, key: str) -> BlobClient:
        blob: BlobClient = self.container.get_blob_client(key)
        return blob

    def to_object(self, key: str, props: BlobProperties) -> Object:
        """Build an Object from a blob's properties."""
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

    async def is_object(self, path: str) -> bool:
        """Return whether a blob has the store-absolute path (one properties request)."""
        try:
            await self._blob(_key(path)).get_blob_properties()
        except ResourceNotFoundError as exc:
            if error_code(exc) == "BlobNotFound":
                return False
            raise
        return True

    async def any_under(self, prefix: str) -> bool:
        """Return whether any blob's name starts with the store-absolute ``prefix``."""
        return await self._any_under(_key(prefix))

    async def _any_under(self, prefix: str) -> bool:
        async for _ in self.container.list_blobs(name_starts_with=prefix, results_per_page=1):
            return True
        return False

    # -- Storager -----------------------------------------------------------------------

    async def stat(self, path: str) -> Object:
        key = _key(path)
        if key and not key.endswith("/"):
            try:
                props: BlobProperties = await self._blob(key).get_blob_properties()
            except ResourceNotFoundError as exc:
                if error_code(exc) == "BlobNotFound" and await self._any_under(key + "/"):
                    return Object(self._rel(path + "/"), ObjectMode.DIR)
                raise
            return self.to_object(key, props)
        if not key or await self._any_under(key):
            return Object(self._rel(path), ObjectMode.DIR)
        raise NotFoundError("stat", SERVICE, path)

    async def read(
        self, path: str, *, io_callback: IoCallback | None, offset: int | None, size: int | None
    ) -> bytes:
        blob = self._blob(file_key("read", path))
        if size == 0:
            await blob.get_blob_properties()  # a missing object still raises
            data = b""
        else:
            data = await download(blob, offset or 0, size, None)
        if io_callback is not None:
            io_callback(len(data))
        return data

    async def open_range(self, path: str, *, offset: int | None, size: int | None) -> Pinned:
        """Pin the object's current version and the range a reader covers."""
        key = file_key("open_reader", path)
        props: BlobProperties = await self._blob(key).get_blob_properties()
        total = props.size
        start = min(offset or 0, total)
        length = total - start if size is None else min(size, total - start)
        return Pinned(key, start, length, props.etag)

    async def fetch(self, pinned: Pinned, pos: int, n: int) -> bytes:
        """Return ``n`` bytes at ``pos`` of a pinned range (any loop's client may ask)."""
        return await download(self._blob(pinned.key), pinned.start + pos, n, pinned.etag)

    async def write(
        self,
        path: str,
        chunks: AsyncIterator[Chunk],
        *,
        content_type: str | None,
        user_metadata: Mapping[str, str] | None,
    ) -> Object:
        done = await upload(
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

    async def delete(self, path: str) -> None:
        key = _key(path)
        if not key:
            return
        try:
            await self._blob(key).delete_blob()
        except ResourceNotFoundError as exc:
            if error_code(exc) != "BlobNotFound":
                raise

    async def list_pages(self, path: str, *, list_mode: str | None) -> AsyncGenerator[list[Object]]:
        """Yield the listing a page at a time (one request each)."""
        key = _key(path)
        if list_mode == "prefix":
            pages = self.container.list_blobs(
                name_starts_with=key or None, include=["metadata"], results_per_page=PAGE_SIZE
            ).by_page()
            async for page in pages:
                yield [self.to_object(props.name, props) async for props in page]
            return
        prefix = key if not key or key.endswith("/") else key + "/"
        walked = self.container.walk_blobs(
            name_starts_with=prefix or None,
            include=["metadata"],
            delimiter="/",
            results_per_page=PAGE_SIZE,
        ).by_page()
        async for walk_page in walked:
            objects: list[Object] = []
            async for item in walk_page:
                # The async walk yields its own BlobPrefix class: test for properties instead.
                if not isinstance(item, BlobProperties):
                    objects.append(Object(self._rel("/" + item.name), ObjectMode.DIR))
                elif item.name != prefix:  # not the directory's own marker
                    objects.append(self.to_object(item.name, item))
            yield objects

    # -- Copier, Mover ------------------------------------------------------------------

    async def copy(self, op: str, src: str, dst: str) -> None:
        source = self._blob(_key(src))
        status = await _server_copy(source, self._blob(_key(dst)))
        if status != "success":
            raise ServiceInternalError(op, SERVICE, dst, f"server-side copy ended {status}")

    async def move(self, src: str, dst: str) -> None:
        if src == dst:
            await self._blob(_key(src)).get_blob_properties()
            return
        await self.copy("move", src, dst)
        try:
            await self._blob(_key(src)).delete_blob()
        except ResourceNotFoundError as exc:
            if error_code(exc) != "BlobNotFound":
                raise

    # -- Appender, Direr ----------------------------------------------------------------

    async def append(
        self, path: str, chunks: AsyncIterator[Chunk], *, content_type: str | None
    ) -> Object:
        key = _key(path)
        blob = self._blob(key)
        settings = ContentSettings(content_type=content_type) if content_type else None
        appended = False
        # Appends at most APPEND_BLOCK_MAX long are one request, so all or nothing.
        async for piece in apieces(chunks, APPEND_BLOCK_MAX):
            try:
                await _append_block(blob, piece, settings, create=not appended)
            except ResourceExistsError as exc:
                if error_code(exc) == "InvalidBlobType":
                    raise ObjectModeInvalidError(
                        "append", SERVICE, path, "the object was written whole, not appended to"
                    ) from exc
                raise
            appended = True
        if not appended:
            await _ensure_append_blob(blob, settings)
        return self.to_object(key, await blob.get_blob_properties())

    async def create_dir(self, path: str) -> Object:
        key = _key(path).rstrip("/") + "/"
        if key != "/":
            await self._blob(key).upload_blob(
                b"", overwrite=True, metadata={"hdi_isfolder": "true"}
            )
        return Object(self._rel("/" + key.lstrip("/")), ObjectMode.DIR)


def limit_retries(client: Any, retry_max: int) -> None:
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


async def download(blob: BlobClient, offset: int, length: int | None, etag: str | None) -> bytes:
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
