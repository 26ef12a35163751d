"""Uploads: one request for short data, a resumable upload in chunks for the rest.

Data arrives as an iterator of chunks whose total length is unknown until it ends.
Up to ``chunk_size`` bytes are held back; once more than that has arrived, a resumable
upload starts and each full chunk goes out with ``Content-Range: bytes A-B/*``. The last
request names the total and completes the upload, so nothing is visible at the key until
every byte arrived, and an error on the way (including a ``size`` mismatch raised by the
iterator) cancels the upload instead. Memory stays near ``chunk_size`` plus one
incoming chunk whatever the object's size.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections import deque
from collections.abc import AsyncIterator, Mapping
from typing import Any

import aiohttp
from gcsfs.core import GCSFileSystem, initiate_upload, simple_upload

from storager._errors import ServiceInternalError

__all__ = ["CHUNK_ALIGN", "DEFAULT_CHUNK_SIZE", "Uploader"]

#: Resumable upload chunks other than the last must be multiples of this.
CHUNK_ALIGN = 256 * 1024
DEFAULT_CHUNK_SIZE = 32 * CHUNK_ALIGN  # 8 MiB
_CANCEL_TIMEOUT = 10.0

logger = logging.getLogger("storager.services.gcs")


class _Pending:
    """Bytes received but not sent yet, kept as the chunks they came in (no joins)."""

    def __init__(self) -> None:
        self._views: deque[memoryview] = deque()
        self.size = 0

    def add(self, chunk: bytes | bytearray | memoryview) -> None:
        # A producer may refill the buffer it yielded; keep only immutable bytes.
        data = chunk if isinstance(chunk, bytes) else bytes(chunk)
        self._views.append(memoryview(data))
        self.size += len(data)

    def take(self, n: int) -> bytes:
        """Remove and return the first ``n`` bytes (all of them when fewer)."""
        parts: list[memoryview] = []
        want = n
        while want and self._views:
            head = self._views[0]
            if len(head) <= want:
                parts.append(self._views.popleft())
                want -= len(head)
            else:
                parts.append(head[:want])
                self._views[0] = head[want:]
                want = 0
        if not parts:
            return b""
        out = parts[0].tobytes() if len(parts) == 1 else b"".join(parts)
        self.size -= len(out)
        return out

    def push_front(self, data: bytes) -> None:
        self._views.appendleft(memoryview(data))
        self.size += len(data)


class Uploader:
    """Write one object from async chunks, on one gcsfs client; see the module docstring."""

    def __init__(self, fs: GCSFileSystem, chunk_size: int) -> None:
        self._fs = fs
        self._chunk_size = chunk_size

    async def upload(
        self,
        path: str,
        bucket: str,
        key: str,
        chunks: AsyncIterator[bytes | bytearray | memoryview],
        *,
        content_type: str,
        metadata: Mapping[str, str] | None,
    ) -> dict[str, Any]:
        """Upload the chunks to ``bucket/key``; return the object resource GCS answers.

        ``path`` is the store path, for error messages. Cancelled or failed, a resumable
        upload is cancelled: nothing becomes visible.
        """
        pending = _Pending()
        location: str | None = None
        offset = 0
        meta = dict(metadata) if metadata else None
        try:
            async for chunk in chunks:
                pending.add(chunk)
                # Send only when more than a chunk is held: the chunk just received may be
                # the last, and the last request must carry the total length.
                while pending.size > self._chunk_size:
                    if location is None:
                        location = await initiate_upload(self._fs, bucket, key, content_type, meta)
                        logger.debug("resumable upload of %s/%s started", bucket, key)
                    offset = await self._send(path, location, pending, offset)
            if location is None:
                body = pending.take(pending.size)
                result: dict[str, Any] = await simple_upload(
                    self._fs, bucket, key, body, meta, None, content_type
                )
                return result
            return await self._finish(path, location, pending, offset)
        except BaseException:
            if location is not None:
                await self._cancel(location)
            raise

    async def _send(self, path: str, location: str, pending: _Pending, offset: int) -> int:
        """Send one full chunk; return the new offset (what the service has stored)."""
        data = pending.take(self._chunk_size)
        end = offset + len(data) - 1
        headers, _ = await self._fs._call(
            "PUT",
            location,
            headers={"Content-Range": f"bytes {offset}-{end}/*", "Content-Length": str(len(data))},
            data=data,
        )
        stored = _stored_end(headers) + 1
        if stored <= offset:
            raise ServiceInternalError("write", "gcs", path, "upload made no progress")
        if stored < offset + len(data):
            # The service kept only part of the chunk: send the rest again.
            pending.push_front(data[stored - offset :])
        logger.debug("resumable upload chunk stored up to byte %d", stored)
        return stored

    async def _finish(
        self, path: str, location: str, pending: _Pending, offset: int
    ) -> dict[str, Any]:
        """Send what is left and complete the upload."""
        while True:
            data = pending.take(pending.size)
            total = offset + len(data)
            rng = f"bytes {offset}-{total - 1}/{total}" if data else f"bytes */{total}"
            headers, body = await self._fs._call(
                "PUT",
                location,
                headers={"Content-Range": rng, "Content-Length": str(len(data))},
                data=data,
            )
            if body:
                result: dict[str, Any] = json.loads(body)
                return result
            stored = _stored_end(headers) + 1
            if stored <= offset:
                raise ServiceInternalError("write", "gcs", path, "upload did not complete")
            pending.push_front(data[stored - offset :])
            offset = stored

    async def _cancel(self, location: str) -> None:
        # Best effort and without gcsfs's retries: services that do not support
        # cancelling (emulators answer 5xx) would otherwise hold the caller ~30 s, and an
        # upload never completed expires on its own. Shielded: a cancelled write still
        # cancels its upload.
        with contextlib.suppress(BaseException):
            await asyncio.shield(_delete_once(self._fs, location))
        logger.debug("resumable upload cancelled")


async def _delete_once(fs: GCSFileSystem, location: str) -> None:
    session = await fs._set_session()
    timeout = aiohttp.ClientTimeout(total=_CANCEL_TIMEOUT)
    async with session.delete(location, headers=fs._get_headers(None), timeout=timeout) as r:
        await r.read()


def _stored_end(headers: Mapping[str, str]) -> int:
    """Return the last byte offset a 308 response says is stored (-1 when none)."""
    rng = headers.get("Range")
    if not rng:
        return -1
    return int(rng.rpartition("-")[2])
