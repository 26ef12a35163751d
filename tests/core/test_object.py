"""Object values: the fast constructor is indistinguishable from the dataclass one."""

from __future__ import annotations

import dataclasses
import pickle
from datetime import UTC, datetime
from types import MappingProxyType

import pytest

from storager import Object, ObjectMode


@pytest.mark.parametrize(
    ("path", "mode", "length", "modified"),
    [
        ("a.txt", ObjectMode.READ, 5, datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)),
        ("dir/", ObjectMode.DIR, None, None),
        ("log", ObjectMode.READ | ObjectMode.APPEND, 0, None),
    ],
)
def test_quick_object_equals_dataclass_object(
    path: str, mode: ObjectMode, length: int | None, modified: datetime | None
) -> None:
    quick = Object._quick(path, mode, length, modified)
    slow = Object(path, mode, content_length=length, last_modified=modified)
    assert type(quick) is Object
    assert quick == slow
    assert hash(quick) == hash(slow)
    assert repr(quick) == repr(slow)
    assert pickle.loads(pickle.dumps(quick)) == slow


def test_quick_object_with_etag_and_system_metadata_equals_dataclass_object() -> None:
    modified = datetime(2026, 1, 2, 3, 4, 5, 678000, tzinfo=UTC)
    system = MappingProxyType({"storage_class": "STANDARD"})
    quick = Object._quick("a.bin", ObjectMode.READ, 7, modified, "0f1e", system)
    slow = Object(
        "a.bin",
        ObjectMode.READ,
        content_length=7,
        etag="0f1e",
        last_modified=modified,
        system_metadata=system,
    )
    assert type(quick) is Object
    assert quick == slow
    assert hash(quick) == hash(slow)
    assert repr(quick) == repr(slow)
    assert pickle.loads(pickle.dumps(quick)) == slow
    assert quick.etag == "0f1e"
    assert dict(quick.system_metadata) == {"storage_class": "STANDARD"}


def test_object_with_metadata_pickles() -> None:
    obj = Object("a.txt", user_metadata={"k": "v"}, system_metadata={"class": "STANDARD"})
    back = pickle.loads(pickle.dumps(obj))
    assert back == obj
    assert dict(back.user_metadata) == {"k": "v"}


def test_quick_object_is_frozen() -> None:
    quick = Object._quick("a.txt", ObjectMode.READ, 1)
    with pytest.raises(dataclasses.FrozenInstanceError):
        quick.path = "b.txt"  # type: ignore[misc]
    assert dataclasses.replace(quick, path="b.txt").path == "b.txt"
    assert quick.path == "a.txt"
