"""The conformance tests of the capability protocols beyond Storager.

Copier, Mover, Segmenter, Appender, Direr, Linker and Presigner; each test is skipped
on a store that lacks the protocol.
"""

from __future__ import annotations

import contextlib
import secrets
import urllib.request
from collections import Counter
from typing import cast

import pytest

from storager._errors import NotFoundError
from storager._object import Multipart
from storager._protocols import (
    Appender,
    Copier,
    Direr,
    Linker,
    Mover,
    Presigner,
    Segmenter,
    Storager,
)
from storager.testing._gating import covers
from storager.testing._suite_base import _files


class CapabilityTests:
    """The contracts of the capability protocols; a mixin of ``StoragerSuite``."""

    # -- Copier, Mover ----------------------------------------------------------------

    @covers("copy")
    def test_copy_overwrites_destination(self, store: Storager) -> None:
        store.write("src.txt", b"source")
        store.write("dst.txt", b"old destination, longer")
        cast(Copier, store).copy("src.txt", "dst.txt")
        assert store.read("dst.txt") == b"source"
        assert store.read("src.txt") == b"source"
        cast(Copier, store).copy("src.txt", "new/dst.txt")
        assert store.read("new/dst.txt") == b"source"

    @covers("copy")
    def test_copy_missing_source_raises_not_found(self, store: Storager) -> None:
        with pytest.raises(NotFoundError):
            cast(Copier, store).copy("missing.txt", "dst.txt")
        with pytest.raises(NotFoundError):
            store.stat("dst.txt")

    @covers("move")
    def test_move_removes_source_and_overwrites_destination(self, store: Storager) -> None:
        store.write("src.txt", b"source")
        store.write("dst.txt", b"old destination, longer")
        cast(Mover, store).move("src.txt", "dst.txt")
        assert store.read("dst.txt") == b"source"
        with pytest.raises(NotFoundError):
            store.stat("src.txt")
        assert _files(store.list("", list_mode="prefix")) == Counter({"dst.txt": 1})

    @covers("move")
    def test_move_missing_source_raises_not_found(self, store: Storager) -> None:
        with pytest.raises(NotFoundError):
            cast(Mover, store).move("missing.txt", "dst.txt")
        with pytest.raises(NotFoundError):
            store.stat("dst.txt")

    # -- Segmenter --------------------------------------------------------------------

    @covers("create_multipart", "write_multipart", "list_multipart", "complete_multipart")
    def test_multipart_round_trip_in_part_order(self, store: Storager) -> None:
        seg = cast(Segmenter, store)
        part_size = store.metadata().capability.multipart_part_size_min or 64 * 1024
        datas = {1: b"a" * part_size, 2: b"b" * part_size, 3: b"tail"}
        mp = seg.create_multipart("multi.bin")
        try:
            # Out of order on purpose: the object is joined by part number.
            parts = {n: seg.write_multipart(mp, n, datas[n]) for n in (2, 3, 1)}
            for n, part in parts.items():
                assert (part.number, part.size) == (n, len(datas[n]))
            listed = list(seg.list_multipart(mp))
            assert [(p.number, p.size) for p in listed] == [(n, len(datas[n])) for n in (1, 2, 3)]
            seg.complete_multipart(mp, [parts[1], parts[2], parts[3]])
        except BaseException:
            with contextlib.suppress(Exception):
                seg.abort_multipart(mp)
            raise
        assert store.read("multi.bin") == datas[1] + datas[2] + datas[3]
        assert store.stat("multi.bin").content_length == 2 * part_size + 4

    @covers("create_multipart", "write_multipart", "complete_multipart", "open_reader")
    def test_multipart_object_reads_and_seeks_across_its_parts(self, store: Storager) -> None:
        """A completed upload reads as one object: a reader crosses part boundaries in
        reads, seeks and line iteration, and ranges over a boundary are exact."""
        seg = cast(Segmenter, store)
        part_size = store.metadata().capability.multipart_part_size_min or 64 * 1024
        # Lines of varied length, so line ends fall on and around the part boundaries.
        text = b"".join(b"%d:%s\n" % (i, b"x" * (i % 97)) for i in range(3 * part_size // 40))
        datas = {1: text[:part_size], 2: text[part_size : 2 * part_size], 3: b"tail\nend"}
        whole = datas[1] + datas[2] + datas[3]
        mp = seg.create_multipart("multi-read.txt")
        try:
            parts = [seg.write_multipart(mp, n, datas[n]) for n in (1, 2, 3)]
            seg.complete_multipart(mp, parts)
        except BaseException:
            with contextlib.suppress(Exception):
                seg.abort_multipart(mp)
            raise
        with store.open_reader("multi-read.txt") as reader:
            assert reader.read(part_size - 3) == whole[: part_size - 3]
            assert reader.read(7) == whole[part_size - 3 : part_size + 4]  # over the boundary
            reader.seek(part_size - 100)
            buffer = bytearray(200)
            assert reader.readinto(buffer) == 200  # type: ignore[attr-defined]
            assert bytes(buffer) == whole[part_size - 100 : part_size + 100]
            reader.seek(2 * part_size - 5)
            assert reader.read() == whole[2 * part_size - 5 :]
            reader.seek(0)
            assert list(reader) == whole.splitlines(keepends=True)
        boundary = 2 * part_size
        with store.open_reader("multi-read.txt", offset=boundary - 10, size=14) as reader:
            assert reader.read() == whole[boundary - 10 : boundary + 4]
        assert (
            store.read("multi-read.txt", offset=part_size - 1, size=2)
            == whole[part_size - 1 : part_size + 1]
        )

    @covers("create_multipart", "write_multipart", "abort_multipart")
    def test_multipart_in_progress_is_invisible(self, store: Storager) -> None:
        seg = cast(Segmenter, store)
        mp = seg.create_multipart("pending/obj.bin")
        try:
            seg.write_multipart(mp, 1, b"part data")
            with pytest.raises(NotFoundError):
                store.stat("pending/obj.bin")
            with pytest.raises(NotFoundError):
                store.read("pending/obj.bin")
            assert _files(store.list("", list_mode="prefix")) == Counter()
            assert list(store.list("pending/")) == []
        finally:
            seg.abort_multipart(mp)

    @covers("create_multipart", "write_multipart", "abort_multipart")
    def test_multipart_abort_leaves_nothing_visible(self, store: Storager) -> None:
        seg = cast(Segmenter, store)
        mp = seg.create_multipart("aborted.bin")
        seg.write_multipart(mp, 1, b"part data")
        seg.abort_multipart(mp)
        with pytest.raises(NotFoundError):
            store.stat("aborted.bin")
        with pytest.raises(NotFoundError):
            store.read("aborted.bin")
        assert _files(store.list("", list_mode="prefix")) == Counter()

    @covers("write_multipart")
    def test_write_multipart_unknown_upload_raises_not_found(self, store: Storager) -> None:
        seg = cast(Segmenter, store)
        real = seg.create_multipart("unknown.bin")
        try:
            fake = Multipart(real.path, "storager-no-such-upload-" + secrets.token_hex(8))
            with pytest.raises(NotFoundError):
                seg.write_multipart(fake, 1, b"x")
        finally:
            seg.abort_multipart(real)

    # -- Appender, Direr, Linker ------------------------------------------------------

    @covers("append")
    def test_append_creates_then_appends(self, store: Storager) -> None:
        cast(Appender, store).append("log.txt", b"first,")
        assert store.read("log.txt") == b"first,"
        cast(Appender, store).append("log.txt", iter([b"sec", b"ond"]))
        assert store.read("log.txt") == b"first,second"
        assert store.stat("log.txt").content_length == 12

    @covers("create_dir")
    def test_create_dir_makes_a_directory(self, store: Storager) -> None:
        cast(Direr, store).create_dir("made")
        cast(Direr, store).create_dir("made")  # an existing directory is fine
        assert store.stat("made/").is_dir
        listed = [obj for obj in store.list("") if obj.path == "made/"]
        assert len(listed) == 1
        assert listed[0].is_dir

    @covers("create_link")
    def test_read_link_returns_target_content(self, store: Storager) -> None:
        store.write("target.txt", b"target content")
        cast(Linker, store).create_link("link.txt", "target.txt")
        assert store.read("link.txt") == b"target content"

    # -- Presigner --------------------------------------------------------------------

    @covers("presign_read")
    def test_presign_read_url_gets_content(self, store: Storager) -> None:
        store.write("signed.txt", b"signed content")
        url = cast(Presigner, store).presign_read("signed.txt", expire=300)
        with urllib.request.urlopen(url, timeout=30) as response:
            assert response.read() == b"signed content"

    @covers("presign_write")
    def test_presign_write_url_puts_content(self, store: Storager) -> None:
        url = cast(Presigner, store).presign_write("put.txt", expire=300)
        # urllib would send form-encoded Content-Type, which some servers parse as a form.
        headers = {"Content-Type": "application/octet-stream"}
        request = urllib.request.Request(url, data=b"put content", headers=headers, method="PUT")
        with urllib.request.urlopen(request, timeout=30) as response:
            assert response.status in (200, 201, 204)
        assert store.read("put.txt") == b"put content"
