"""exclusive_names on the object stores: the suite's name contracts, on the real servers.

s3 (SeaweedFS), gcs and azblob keep flat keys, so ``d`` and ``d/x`` may coexist there;
with ``exclusive_names=true`` they refuse such names as fs does (storager._names). The
whole suite runs on them elsewhere without the pair; here only ``NameSuite`` runs, with
it on, plus what the pair changes around it (default off, the capability, async).
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import pytest

import storager
from storager import AlreadyExistsError, ObjectModeInvalidError, Storager
from storager.testing import url_factory
from storager.testing._url import UrlFactory
from storager.testing.suite import NameSuite
from tests.servers.azurite import AzuriteServer
from tests.servers.gcs import GCSServer
from tests.servers.seaweedfs import SeaweedFSServer
from tests.services.test_azblob import _credential, blob_service, container
from tests.services.test_gcs import gcs_bucket
from tests.services.test_s3 import Bucket, _make_bucket

__all__ = ["blob_service", "container", "gcs_bucket"]  # fixtures, used by name


@pytest.fixture(scope="session")
def seaweedfs_names_bucket(seaweedfs_server: SeaweedFSServer) -> Bucket:
    return _make_bucket(seaweedfs_server, "names")


@pytest.fixture(scope="session")
def s3_names_url(seaweedfs_names_bucket: Bucket) -> str:
    bucket = seaweedfs_names_bucket
    return f"{bucket.url()}&credential={quote(bucket.credential, safe='')}"


@pytest.fixture(scope="session")
def gcs_names_url(gcs_server: GCSServer, gcs_bucket: str) -> str:
    return f"gcs://{gcs_bucket}/?endpoint={gcs_server.endpoint}&credential=token:anon"


@pytest.fixture(scope="session")
def azblob_names_url(azurite_server: AzuriteServer, container: str) -> str:
    credential = quote(_credential(azurite_server), safe="")
    return f"azblob://{container}/?endpoint={azurite_server.endpoint}&credential={credential}"


@pytest.mark.s3
class TestS3SeaweedFSNames(NameSuite):
    @pytest.fixture
    def storager_factory(self, s3_names_url: str) -> UrlFactory:
        return url_factory(s3_names_url, exclusive_names=True)


@pytest.mark.gcs
class TestGcsNames(NameSuite):
    @pytest.fixture
    def storager_factory(self, gcs_names_url: str) -> UrlFactory:
        return url_factory(gcs_names_url, exclusive_names=True)


@pytest.mark.azblob
class TestAzblobNames(NameSuite):
    @pytest.fixture
    def storager_factory(self, azblob_names_url: str) -> UrlFactory:
        return url_factory(azblob_names_url, exclusive_names=True)


# -- what the pair changes around the suite ----------------------------------------------

SERVICES = [
    pytest.param("s3_names_url", marks=pytest.mark.s3, id="s3"),
    pytest.param("gcs_names_url", marks=pytest.mark.gcs, id="gcs"),
    pytest.param("azblob_names_url", marks=pytest.mark.azblob, id="azblob"),
]


@pytest.fixture(params=SERVICES)
def names_url(request: pytest.FixtureRequest) -> str:
    url: str = request.getfixturevalue(request.param)
    return url


def _open(url: str, work_dir: str, **pairs: Any) -> Storager:
    base, _, query = url.partition("?")
    return storager.open(f"{base}{work_dir.lstrip('/')}?{query}", **pairs)


@pytest.fixture
def work_dir() -> str:
    return f"/names-{secrets.token_hex(4)}/"


@pytest.fixture
def plain(names_url: str, work_dir: str) -> Iterator[Storager]:
    """The store without the pair: the object store's own data model."""
    with _open(names_url, work_dir) as store:
        yield store
        for obj in list(store.list("", list_mode="prefix")):
            store.delete(obj.path)


def test_the_pair_is_off_by_default_and_both_names_coexist(plain: Storager) -> None:
    assert plain.metadata().capability.exclusive_names is False
    plain.write("d/inner.txt", b"inner")
    plain.write("d", b"a file beside the directory")
    plain.write("f", b"a file")
    plain.write("f/child.txt", b"under it")
    assert plain.read("d") == b"a file beside the directory"
    assert plain.read("f/child.txt") == b"under it"


def test_the_pair_is_reported_per_store_and_read_from_the_connection_string(
    names_url: str, work_dir: str, plain: Storager
) -> None:
    with _open(names_url + "&exclusive_names=true", work_dir) as strict:
        assert strict.metadata().capability.exclusive_names is True
        assert plain.metadata().capability.exclusive_names is False
        plain.write("d/inner.txt", b"inner")
        with pytest.raises(ObjectModeInvalidError) as info:
            strict.write("d", b"x")
        assert info.value.op == "write" and info.value.path.endswith("/d")
        assert "a directory has this name" in str(info.value)
        plain.write("x", b"a file")
        with pytest.raises(AlreadyExistsError) as exists:
            strict.create_dir("x/")
        assert exists.value.op == "create_dir"
        assert sorted(o.path for o in plain.list("", list_mode="prefix")) == ["d/inner.txt", "x"]


def test_the_async_view_refuses_the_same_names(
    names_url: str, work_dir: str, plain: Storager
) -> None:
    plain.write("d/inner.txt", b"inner")
    plain.write("f", b"a file")

    async def run() -> None:
        async with storager.open_async(
            names_url.replace("?", work_dir.lstrip("/") + "?", 1), exclusive_names=True
        ) as store:
            with pytest.raises(ObjectModeInvalidError):
                await store.write("d", b"x")
            with pytest.raises(ObjectModeInvalidError):
                await store.write("f/child.txt", b"x")
            await store.write("e/ok.txt", b"ok")  # a free name still writes

    asyncio.run(run())
    assert sorted(o.path for o in plain.list("", list_mode="prefix")) == [
        "d/inner.txt",
        "e/ok.txt",
        "f",
    ]
