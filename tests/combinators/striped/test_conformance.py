"""The whole conformance suite on Striped, for each codec, over memory and fs backends.

Over a mix of fs, memory and s3 (SeaweedFS) backends the suite runs with one codec,
ReedSolomon(2, 1): a third of the fragments then cross the network, which keeps the
run short while every stripe still touches all three kinds of store.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from typing import Any

import boto3
import pytest

import storager
from storager import Storager
from storager.combinators.striped import Codec, ReedSolomon, Replicas, Striped, Stripes
from storager.services.fs import FsStorage
from storager.services.memory import MemoryStorage
from storager.testing import StoragerSuite

Factory = Callable[..., Storager]

#: Small chunks, so that the suite's objects span many stripes (and the 64 MiB
#: streaming write stays within the suite's 32 MiB traced-memory bound on fs).
CHUNK = 64 * 1024

CODECS: dict[str, Callable[[], Codec]] = {
    "rs42": lambda: ReedSolomon(4, 2),
    "replicas3": lambda: Replicas(3),
    "stripes": lambda: Stripes(),
}


def _suite(codec: str, kind: str) -> type[StoragerSuite]:
    class Suite(StoragerSuite):
        # Memory backends keep every chunk in process memory: no bound to check.
        write_memory_limit = None if kind == "memory" else StoragerSuite.write_memory_limit

        @pytest.fixture
        def storager_factory(self, tmp_path_factory: pytest.TempPathFactory) -> Factory:
            root = tmp_path_factory.mktemp(f"striped-{codec}")

            def factory(work_dir: str, **pairs: Any) -> Storager:
                if kind == "memory":
                    backends: dict[str, Storager] = {n: MemoryStorage() for n in "abcdef"}
                    manifests: Storager = MemoryStorage()
                else:
                    backends = {n: FsStorage(root=str(root / n)) for n in "abcdef"}
                    manifests = FsStorage(root=str(root / "manifests"))
                return Striped(
                    backends,
                    codec=CODECS[codec](),
                    chunk_size=CHUNK,
                    manifests=manifests,
                    work_dir=work_dir,
                    **pairs,
                )

            return factory

    Suite.__name__ = Suite.__qualname__ = f"TestStriped_{codec}_{kind}"
    return Suite


TestStripedRsMemory = _suite("rs42", "memory")
TestStripedReplicasMemory = _suite("replicas3", "memory")
TestStripedStripesMemory = _suite("stripes", "memory")
TestStripedRsFs = _suite("rs42", "fs")
TestStripedReplicasFs = _suite("replicas3", "fs")
TestStripedStripesFs = _suite("stripes", "fs")


@pytest.fixture(scope="module")
def seaweedfs_bucket_url(seaweedfs_server: Any) -> tuple[str, str]:
    client = boto3.client(
        "s3",
        endpoint_url=seaweedfs_server.endpoint,
        aws_access_key_id=seaweedfs_server.access_key,
        aws_secret_access_key=seaweedfs_server.secret_key,
        region_name=seaweedfs_server.region,
    )
    name = f"striped-{secrets.token_hex(4)}"
    client.create_bucket(Bucket=name)
    url = f"s3://{name}/?endpoint={seaweedfs_server.endpoint}&location=us-east-1"
    return url, f"hmac:{seaweedfs_server.access_key}:{seaweedfs_server.secret_key}"


@pytest.mark.s3
class TestStripedMixedWithSeaweedFS(StoragerSuite):
    """fs, memory and s3 backends with ReedSolomon(2, 1), manifests on fs."""

    # A memory backend keeps its chunks in process memory: no bound to check.
    write_memory_limit = None

    @pytest.fixture
    def storager_factory(
        self, tmp_path_factory: pytest.TempPathFactory, seaweedfs_bucket_url: tuple[str, str]
    ) -> Factory:
        root = tmp_path_factory.mktemp("striped-mixed")
        url, credential = seaweedfs_bucket_url

        def factory(work_dir: str, **pairs: Any) -> Storager:
            backends: dict[str, Storager] = {
                "fs": FsStorage(root=str(root / "fs")),
                "memory": MemoryStorage(),
                "s3": storager.open(url, credential=credential),
            }
            return Striped(
                backends,
                codec=ReedSolomon(2, 1),
                chunk_size=CHUNK,
                manifests=FsStorage(root=str(root / "manifests")),
                work_dir=work_dir,
                **pairs,
            )

        return factory
