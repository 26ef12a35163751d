"""The gateway's upload notes never turn a landed upload into a failure, nor outlive it."""

from __future__ import annotations

from typing import Any

import pytest

from storager import NotFoundError, ServiceInternalError
from storager._object import Multipart, Object
from storager.gateway._uploads import NOTES, SegmenterParts
from storager.services.memory import MemoryStorage


class Backend(MemoryStorage):
    """Memory, with S3's abort (NoSuchUpload once an upload is completed or dropped)
    and deletes of upload notes that fail while ``stuck`` is set."""

    def __init__(self) -> None:
        super().__init__()
        self.stuck = False
        self.gone: set[str] = set()

    def delete(self, path: str, **pairs: Any) -> None:
        if self.stuck and path.startswith(NOTES):
            raise ServiceInternalError("delete", "memory", path, "injected")
        super().delete(path, **pairs)

    def complete_multipart(self, multipart: Multipart, parts: Any, **pairs: Any) -> Object:
        obj = super().complete_multipart(multipart, parts, **pairs)
        self.gone.add(multipart.upload_id)
        return obj

    def abort_multipart(self, multipart: Multipart, **pairs: Any) -> None:
        if multipart.upload_id in self.gone:
            raise NotFoundError("abort_multipart", "memory", multipart.path, "no such upload")
        super().abort_multipart(multipart, **pairs)


def _notes(parts: SegmenterParts) -> list[str]:
    return [s.multipart.upload_id for s in parts.started()]


def test_a_completed_upload_whose_note_cannot_be_removed_still_succeeds() -> None:
    store = Backend()
    parts = SegmenterParts(store)
    upload = parts.create_multipart("k")
    part = parts.write_multipart(upload, 1, b"x")
    store.stuck = True
    obj = parts.complete_multipart(upload, [part])
    assert obj.path.endswith("k")
    assert store.read("k") == b"x"
    assert _notes(parts) == [upload.upload_id]  # left for the sweep
    store.stuck = False
    with pytest.raises(NotFoundError):  # the sweep's abort finds nothing to abort...
        parts.abort_multipart(upload)
    assert _notes(parts) == []  # ...and the note goes with it
    store.close()


def test_aborting_an_upload_the_backend_already_dropped_removes_its_note() -> None:
    store = Backend()
    parts = SegmenterParts(store)
    upload = parts.create_multipart("k")
    store.gone.add(upload.upload_id)  # expired by the backend's own rules
    with pytest.raises(NotFoundError):
        parts.abort_multipart(upload)
    assert _notes(parts) == []
    store.close()
