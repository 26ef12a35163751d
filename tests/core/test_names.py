"""storager._names: which names a store with exclusive_names refuses, and what it asks."""

from __future__ import annotations

import pytest

from codegen.model import load_model
from codegen.render import render_service
from storager._errors import AlreadyExistsError, ObjectModeInvalidError
from storager._names import NAME_CLAIMS, claim_name


class Keys:
    """A flat key space, as an object store has, that counts the questions asked."""

    def __init__(self, *keys: str) -> None:
        self.keys = set(keys)
        self.asked: list[tuple[str, str]] = []

    def _probe_object(self, op: str, path: str) -> bool:
        self.asked.append(("object", path))
        return path in self.keys

    def _probe_children(self, op: str, prefix: str) -> bool:
        self.asked.append(("children", prefix))
        return any(key.startswith(prefix) for key in self.keys)


def test_a_free_name_costs_one_listing_and_one_question_per_parent() -> None:
    keys = Keys("/other")
    claim_name(keys, "s3", "write", "/a/b/c.txt")
    assert keys.asked == [
        ("children", "/a/b/c.txt/"),
        ("object", "/a"),
        ("object", "/a/b"),
    ]


def test_an_object_over_a_directory_is_refused_naming_op_and_path() -> None:
    with pytest.raises(ObjectModeInvalidError) as info:
        claim_name(Keys("/d/x"), "gcs", "copy", "/d")
    assert (info.value.op, info.value.service, info.value.path) == ("copy", "gcs", "/d")
    assert "a directory has this name" in str(info.value)


@pytest.mark.parametrize("path", ["/f/x", "/f/g/h/x", "/f/sub/"])
def test_a_name_below_an_object_is_refused(path: str) -> None:
    with pytest.raises(ObjectModeInvalidError, match="a parent is not a directory"):
        claim_name(Keys("/f"), "azblob", "create_dir" if path.endswith("/") else "write", path)


@pytest.mark.parametrize("path", ["/x/", "/x"])
def test_create_dir_over_an_object_is_already_exists(path: str) -> None:
    with pytest.raises(AlreadyExistsError, match="an object has this name"):
        claim_name(Keys("/x"), "s3", "create_dir", path)


def test_names_of_the_same_kind_pass() -> None:
    keys = Keys("/a/b.txt", "/a/")
    claim_name(keys, "s3", "write", "/a/b.txt")  # an overwrite
    claim_name(keys, "s3", "create_dir", "/a")  # an existing directory, without its slash
    claim_name(keys, "s3", "create_dir", "/a/new/")


def test_codegen_emits_the_check_only_where_the_pair_is_taken() -> None:
    model = load_model()
    code = {svc.name: render_service(model, svc) for svc in model.services}
    for name in ("s3", "gcs", "azblob"):
        assert 'self._claim_name("write", path_abs)' in code[name]
        assert 'self._claim_name("copy", dst_abs)' in code[name]
        assert 'self._claim_name("move", dst_abs)' in code[name]
        assert 'self._claim_name("create_dir", path_abs)' in code[name]
        assert "self._set_exclusive_names(exclusive_names)" in code[name]
    assert 'self._claim_name("complete_multipart", multipart.path)' in code["s3"]
    assert 'self._claim_name("append", path_abs)' in code["azblob"]
    for name in ("fs", "sftp", "memory", "redis"):
        assert "_claim_name" not in code[name]  # they keep names apart on their own
    assert set(NAME_CLAIMS) <= set(model.operations)
