"""Entry points, register(), URLs, pickling for dask, universal_pathlib."""

from __future__ import annotations

import pickle
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import fsspec
import pytest
from fsspec.registry import known_implementations, registry

import storager
from storager import AlreadyExistsError, ServiceNotRegisteredError
from storager.fsspec import StoragerFileSystem, register, split_url
from tests.services import test_s3

seaweedfs_bucket = test_s3.seaweedfs_bucket


def _run(code: str) -> str:
    """Run ``code`` in a fresh interpreter (no storager import before it) and return stdout."""
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def test_storager_urls_open_through_fsspec_with_no_import(tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_bytes(b"from disk")
    code = (
        "import fsspec, sys\n"
        f"print(fsspec.open('storager+fs://{tmp_path}/a.txt').open().read().decode())\n"
        "print(any(m.startswith('storager') for m in sys.modules) and 'loaded')\n"
    )
    assert _run(code).splitlines() == ["from disk", "loaded"]


@pytest.mark.parametrize(
    ("url", "connection", "path"),
    [
        ("storager+memory://a/b.txt", "memory:///", "a/b.txt"),
        ("storager+fs:///srv/data/x", "fs:///", "srv/data/x"),
        (
            "storager+s3://bucket/dir/x.parquet?endpoint=http://127.0.0.1:1",
            "s3://bucket/?endpoint=http://127.0.0.1:1",
            "dir/x.parquet",
        ),
        ("storager+redis://127.0.0.1:6379/k/", "redis://127.0.0.1:6379/", "k"),
    ],
)
def test_split_url_separates_the_store_from_the_path(url: str, connection: str, path: str) -> None:
    split = split_url(url)
    assert (split.connection, split.path) == (connection, path)


def test_unknown_scheme_is_refused() -> None:
    with pytest.raises(ValueError, match="storager\\+nosuch"):
        fsspec.url_to_fs("storager+nosuch://x")
    with pytest.raises(ServiceNotRegisteredError):
        split_url("storager+nosuch://x")


def test_url_filesystems_share_one_store_per_process() -> None:
    fs1, path = fsspec.url_to_fs("storager+memory://shared-test/a.txt")
    fs1.pipe_file(path, b"seen")
    fs2 = StoragerFileSystem(url="memory:///", skip_instance_cache=True)
    assert fs2 is not fs1 and fs2.cat_file("shared-test/a.txt") == b"seen"
    assert fs1.unstrip_protocol(path) == "storager+memory://shared-test/a.txt"


def test_pickled_url_filesystem_works_in_another_process(tmp_path: Path) -> None:
    fs, path = fsspec.url_to_fs(f"storager+fs://{tmp_path}/p.bin")
    fs.pipe_file(path, b"pickled")
    blob = pickle.dumps(fs)
    code = f"import pickle; print(pickle.loads({blob!r}).cat_file({path!r}).decode())"
    assert _run(code) == "pickled"


def test_pickled_tree_filesystem_rebuilds_the_tree_on_the_other_side(tmp_path: Path) -> None:
    (tmp_path / "one").mkdir()
    (tmp_path / "two").mkdir()
    tree = tmp_path / "tree.toml"
    tree.write_text(
        "[trees.both]\n"
        'kind = "mirror"\n'
        f'targets.one = "fs://{tmp_path}/one"\n'
        f'targets.two = "fs://{tmp_path}/two"\n'
    )
    fs = StoragerFileSystem(tree=str(tree))
    fs.pipe_file("m/x.txt", b"mirrored")
    assert (tmp_path / "two" / "m" / "x.txt").read_bytes() == b"mirrored"
    blob = pickle.dumps(fs)
    assert b"mirrored" not in blob
    assert _run(f"import pickle; print(pickle.loads({blob!r}).cat('m/x.txt').decode())") == (
        "mirrored"
    )


@pytest.mark.s3
def test_tree_with_an_environment_credential_pickles_without_the_secret(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest
) -> None:
    bucket = request.getfixturevalue("seaweedfs_bucket")
    secret = bucket.credential
    monkeypatch.setenv("FSSPEC_TEST_CREDENTIAL", secret)
    tree = tmp_path / "tree.toml"
    tree.write_text(
        "[trees.cloud]\n"
        'kind = "s3"\n'
        f'name = "{bucket.name}"\n'
        f'endpoint = "{bucket.endpoint}"\n'
        'location = "us-east-1"\n'
        'work_dir = "/pickled-tree/"\n'
        'credential = "${FSSPEC_TEST_CREDENTIAL}"\n'
    )
    fs = StoragerFileSystem(tree=str(tree))
    fs.pipe_file("k.txt", b"no secret inside")
    blob = pickle.dumps(fs)
    assert secret.encode() not in blob and secret.split(":")[-1].encode() not in blob
    # The other side reads the credential from its own environment (inherited here).
    assert _run(f"import pickle; print(pickle.loads({blob!r}).cat('k.txt').decode())") == (
        "no secret inside"
    )


def test_filesystem_over_a_live_store_refuses_to_pickle() -> None:
    with storager.open("memory://") as store, pytest.raises(TypeError, match=r"url=\.\.\.|tree="):
        pickle.dumps(StoragerFileSystem(store))


def test_repr_hides_the_credential() -> None:
    fs = StoragerFileSystem(url="memory:///w/")
    assert repr(fs) == "<StoragerFileSystem memory:///w/>"
    secret = "s3://b/?endpoint=http://127.0.0.1:1&credential=hmac:AKEY:SUPERSECRET"
    from storager.fsspec._filesystem import StoragerFileSystem as Cls

    shown = Cls.__repr__.__get__(_FakeUrl(secret))()
    assert "SUPERSECRET" not in shown and "AKEY" not in shown


class _FakeUrl:
    """Only what ``__repr__`` reads, so no S3 store has to be opened for the check."""

    def __init__(self, url: str) -> None:
        self._url = url
        self._tree = None


@pytest.fixture
def restore_fsspec_registry() -> Iterator[None]:
    known = dict(known_implementations)
    live = dict(registry)
    yield
    known_implementations.clear()
    known_implementations.update(known)
    live_registry = sys.modules["fsspec.registry"]._registry
    live_registry.clear()
    live_registry.update(live)


@pytest.mark.usefixtures("restore_fsspec_registry")
def test_register_never_takes_a_known_scheme_unless_told() -> None:
    with pytest.raises(AlreadyExistsError):
        register("memory")
    assert fsspec.get_filesystem_class("memory") is not StoragerFileSystem
    register("memory", clobber=True)
    assert fsspec.get_filesystem_class("memory") is StoragerFileSystem


@pytest.mark.usefixtures("restore_fsspec_registry")
def test_register_makes_plain_urls_open_with_storager(tmp_path: Path) -> None:
    register("fs")
    with fsspec.open(f"fs://{tmp_path}/plain.txt", "wb") as f:
        f.write(b"plain")
    assert (tmp_path / "plain.txt").read_bytes() == b"plain"
    with pytest.raises(ServiceNotRegisteredError):
        register("nosuch")


# universal_pathlib warns about every protocol it has no class of its own for.
@pytest.mark.filterwarnings("ignore:UPath 'storager\\+memory' filesystem not explicitly")
def test_universal_pathlib_paths_work() -> None:
    from upath import UPath

    root = UPath("storager+memory://upath-test/")
    (root / "dir").mkdir(parents=True, exist_ok=True)
    (root / "dir" / "f.txt").write_text("via upath")
    assert (root / "dir" / "f.txt").read_text() == "via upath"
    assert sorted(p.name for p in (root / "dir").iterdir()) == ["f.txt"]
    assert (root / "dir").is_dir() and (root / "dir" / "f.txt").is_file()


def test_every_builtin_scheme_has_an_entry_point() -> None:
    from importlib.metadata import entry_points

    from storager.fsspec._urls import BUILTIN_SCHEMES
    from storager.services import BUILTIN

    declared = {ep.name for ep in entry_points(group="fsspec.specs") if ep.name.startswith("stor")}
    assert declared == {"storager", *(f"storager+{scheme}" for scheme in BUILTIN_SCHEMES)}
    assert set(BUILTIN_SCHEMES) == set(BUILTIN)
