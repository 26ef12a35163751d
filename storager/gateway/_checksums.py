"""The body digests S3 clients send: Content-MD5 and the ``x-amz-checksum-*`` values.

A checksum arrives as a header before the body or as a trailer after it (the
``aws-chunked`` trailer forms); either way it is computed over the decoded body and
compared at its end, before the object becomes visible.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import zlib
from collections.abc import Callable, Mapping
from typing import Protocol

from storager.gateway._errors import S3Error

__all__ = ["ALGORITHMS", "Digest", "Expected", "expected_digests"]


class Digest(Protocol):
    """A running digest: ``update`` with each piece, ``value`` at the end (raw bytes)."""

    def update(self, data: bytes | memoryview) -> None: ...

    def value(self) -> bytes: ...


class _Hashlib:
    def __init__(self, name: str) -> None:
        self._hash = hashlib.new(name)

    def update(self, data: bytes | memoryview) -> None:
        self._hash.update(data)

    def value(self) -> bytes:
        return self._hash.digest()


class _Crc32:
    def __init__(self) -> None:
        self._crc = 0

    def update(self, data: bytes | memoryview) -> None:
        self._crc = zlib.crc32(data, self._crc)

    def value(self) -> bytes:
        return self._crc.to_bytes(4, "big")


class _Crc32c:
    def __init__(self) -> None:
        try:
            import google_crc32c
        except ImportError:  # pragma: no cover - installed with the gateway extra
            raise S3Error(
                "NotImplemented", "CRC32C checksums need the google-crc32c package"
            ) from None
        # google-crc32c ships no type information.
        self._crc = google_crc32c.Checksum()  # type: ignore[no-untyped-call]

    def update(self, data: bytes | memoryview) -> None:
        self._crc.update(bytes(data) if isinstance(data, memoryview) else data)  # type: ignore[no-untyped-call]

    def value(self) -> bytes:
        return bytes(self._crc.digest())  # type: ignore[no-untyped-call]


class _Crc64Nvme:
    """CRC-64/NVME (S3's ``crc64nvme``), through anycrc's table-driven C code (~5 GB/s)."""

    def __init__(self) -> None:
        try:
            import anycrc  # type: ignore[import-untyped]  # ships no type information
        except ImportError:  # pragma: no cover - installed with the gateway extra
            raise S3Error("NotImplemented", "CRC64NVME checksums need the anycrc package") from None
        self._model = anycrc.Model("CRC64-NVME")
        self._crc: int = self._model.calc(b"")

    def update(self, data: bytes | memoryview) -> None:
        self._crc = self._model.calc(data, self._crc)

    def value(self) -> bytes:
        return self._crc.to_bytes(8, "big")


#: The ``x-amz-checksum-<name>`` algorithms the gateway verifies.
ALGORITHMS: dict[str, Callable[[], Digest]] = {
    "crc32": _Crc32,
    "crc32c": _Crc32c,
    "crc64nvme": _Crc64Nvme,
    "sha1": lambda: _Hashlib("sha1"),
    "sha256": lambda: _Hashlib("sha256"),
}


class Expected:
    """A digest to compute over the decoded body and the value it must end with.

    ``wanted`` is None for a trailer checksum until the trailer arrives.
    """

    def __init__(self, header: str, digest: Digest, wanted: bytes | None) -> None:
        self.header = header
        self.digest = digest
        self.wanted = wanted

    def check(self) -> None:
        """Raise BadDigest unless the body matched (or the value never arrived)."""
        if self.wanted is None:
            raise S3Error("InvalidRequest", f"the trailer {self.header} was announced but not sent")
        if self.digest.value() != self.wanted:
            name = self.header.removeprefix("x-amz-checksum-").upper()
            if self.header == "content-md5":
                raise S3Error("BadDigest", "the Content-MD5 you specified did not match")
            raise S3Error("BadDigest", f"the {name} you specified did not match the body")


def _decode(header: str, text: str) -> bytes:
    try:
        return base64.b64decode(text.strip(), validate=True)
    except (binascii.Error, ValueError):
        code = "InvalidDigest" if header == "content-md5" else "InvalidRequest"
        raise S3Error(code, f"{header} is not valid base64") from None


def expected_digests(headers: Mapping[str, str]) -> tuple[list[Expected], dict[str, Expected]]:
    """Return the digests the request's headers ask for, and those its trailer will give.

    Returns:
        ``(digests, by_trailer)``: every digest to compute, and the ones whose value comes
        in the trailer, keyed by the trailer's header name.
    """
    digests: list[Expected] = []
    by_trailer: dict[str, Expected] = {}
    md5 = headers.get("content-md5")
    if md5 is not None:
        wanted = _decode("content-md5", md5)
        if len(wanted) != 16:
            raise S3Error("InvalidDigest", "Content-MD5 must be 16 bytes in base64")
        digests.append(Expected("content-md5", _Hashlib("md5"), wanted))
    for name, factory in ALGORITHMS.items():
        header = f"x-amz-checksum-{name}"
        if header in headers:
            digests.append(Expected(header, factory(), _decode(header, headers[header])))
    for name in (n.strip().lower() for n in headers.get("x-amz-trailer", "").split(",")):
        if not name:
            continue
        algorithm = name.removeprefix("x-amz-checksum-")
        if not name.startswith("x-amz-checksum-") or algorithm not in ALGORITHMS:
            raise S3Error("InvalidRequest", f"the trailer {name} is not supported")
        expected = Expected(name, ALGORITHMS[algorithm](), None)
        digests.append(expected)
        by_trailer[name] = expected
    return digests, by_trailer
