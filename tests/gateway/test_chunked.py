"""The aws-chunked decoder alone: any split of the body decodes the same, and random
bytes never crash it (only S3 errors), in bounded time."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from storager.gateway import S3Error
from storager.gateway._chunked import MAX_HEADER_LINE, ChunkedDecoder


def _encode(chunks: list[bytes], trailer: bytes = b"x-amz-checksum-crc32:AAAAAA==") -> bytes:
    body = b"".join(f"{len(c):x}\r\n".encode() + c + b"\r\n" for c in chunks if c)
    return body + b"0\r\n" + trailer + b"\r\n\r\n"


def _decode(body: bytes, cuts: list[int]) -> tuple[bytes, dict[str, str]]:
    decoder = ChunkedDecoder(None, trailer=True)
    out = []
    start = 0
    for cut in [*sorted(set(cuts)), len(body)]:
        out += [bytes(p) for p in decoder.feed(body[start:cut])]
        start = cut
    decoder.finish()
    return b"".join(out), decoder.trailers


@settings(max_examples=60, deadline=None)
@given(
    chunks=st.lists(st.binary(min_size=1, max_size=300), max_size=6),
    cuts=st.lists(st.integers(min_value=0, max_value=2000), max_size=8),
)
def test_any_split_decodes_the_same(chunks: list[bytes], cuts: list[int]) -> None:
    body = _encode(chunks)
    data, trailers = _decode(body, [c for c in cuts if c <= len(body)])
    assert data == b"".join(chunks)
    assert trailers == {"x-amz-checksum-crc32": "AAAAAA=="}


@settings(max_examples=150, deadline=None)
@given(body=st.binary(max_size=400), signed=st.booleans())
def test_random_bytes_raise_only_s3_errors(body: bytes, signed: bool) -> None:
    decoder = ChunkedDecoder(None, trailer=signed)
    try:
        decoder.feed(body)
        decoder.finish()
    except S3Error as exc:
        assert exc.status in (400, 403)


@settings(max_examples=60, deadline=None)
@given(chunks=st.lists(st.binary(min_size=1, max_size=50), min_size=1, max_size=4), at=st.data())
def test_every_truncation_is_incomplete(chunks: list[bytes], at: st.DataObject) -> None:
    body = _encode(chunks)
    cut = at.draw(st.integers(min_value=0, max_value=len(body) - 1))
    decoder = ChunkedDecoder(None, trailer=True)
    with pytest.raises(S3Error) as exc:
        decoder.feed(body[:cut])
        decoder.finish()
    assert exc.value.code in ("IncompleteBody", "InvalidRequest")


def test_header_line_is_bounded_whatever_the_split() -> None:
    decoder = ChunkedDecoder(None, trailer=False)
    with pytest.raises(S3Error) as exc:
        for _ in range(MAX_HEADER_LINE + 1):
            decoder.feed(b"1")
    assert exc.value.code == "InvalidRequest"


def test_bytes_after_the_end_are_refused() -> None:
    decoder = ChunkedDecoder(None, trailer=False)
    with pytest.raises(S3Error):
        decoder.feed(b"3\r\nabc\r\n0\r\n\r\nextra")
