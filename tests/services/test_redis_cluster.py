"""The redis service on a real three-master Redis Cluster: the conformance suite, and
where its keys land (metadata on the slot of the namespace's hash tag, chunks spread
over every master)."""

from __future__ import annotations

import secrets
import time
from collections.abc import Iterator
from typing import Any

import pytest
import redis.cluster

import storager
from storager import PairInvalidError
from storager.services.redis import RedisStorage
from storager.testing import StoragerSuite, url_factory
from tests.servers.redis import RedisCluster

pytestmark = pytest.mark.redis


class TestRedisCluster(StoragerSuite):
    """Every behaviour contract, against a three-master Redis Cluster."""

    @pytest.fixture
    def storager_factory(self, redis_cluster: RedisCluster) -> Any:
        return url_factory(redis_cluster.url())


@pytest.fixture
def raw(redis_cluster: RedisCluster) -> Iterator[redis.cluster.RedisCluster]:
    """redis-py's cluster client, to look behind the service."""
    client = redis.cluster.RedisCluster(host=redis_cluster.host, port=redis_cluster.port)
    yield client
    client.close()


def test_metadata_shares_one_slot_and_chunks_spread_over_every_master(
    redis_cluster: RedisCluster, raw: redis.cluster.RedisCluster
) -> None:
    namespace = f"spread-{secrets.token_hex(4)}"
    store = storager.open(redis_cluster.url(namespace=namespace, chunk_size="1024"))
    assert isinstance(store, RedisStorage)
    try:
        content = secrets.token_bytes(64 * 1024)
        store.write("dir/big.bin", content)
        store.copy("dir/big.bin", "other/copy.bin")
        store.create_dir("made")
        assert store.read("other/copy.bin") == content
        meta_keys = [
            f"{{{namespace}}}:m:/dir/big.bin",
            f"{{{namespace}}}:m:/other/copy.bin",
            f"{{{namespace}}}:m:/made/",
            f"{{{namespace}}}:i",
            f"{{{namespace}}}:r",
        ]
        assert len({raw.keyslot(key) for key in meta_keys}) == 1
        assert all(raw.exists(key) for key in meta_keys)
        generation = raw.hget(meta_keys[0], "gen")
        assert isinstance(generation, bytes)
        chunks = [f"{namespace}:c:{generation.decode()}:{n}" for n in range(64)]
        owners = {raw.get_node_from_key(key).name for key in chunks}
        assert len(owners) == 3, "64 chunks should land on every one of the 3 masters"
        assert sum(raw.exists(key) for key in chunks) == 64
        store.delete("dir/big.bin")
        store.delete("other/copy.bin")
        store.sweep(grace=0)
        assert sum(raw.exists(key) for key in chunks) == 0
    finally:
        store.close()


def test_db_other_than_zero_is_refused_on_a_cluster(redis_cluster: RedisCluster) -> None:
    with pytest.raises(PairInvalidError, match="db"):
        storager.open(redis_cluster.url(db="1"))


def test_expired_objects_are_pruned_on_a_cluster(
    redis_cluster: RedisCluster, raw: redis.cluster.RedisCluster
) -> None:
    namespace = f"expiry-{secrets.token_hex(4)}"
    store = storager.open(redis_cluster.url(namespace=namespace, chunk_size="1024"))
    assert isinstance(store, RedisStorage)
    try:
        store.write("d/gone.bin", b"g" * 4000, expire=1)
        store.write("kept.txt", b"k")
        time.sleep(1.1)
        assert [o.path for o in store.list("")] == ["kept.txt"]
        store.write("d", b"a file where the expired directory was")
        store.sweep(grace=0)
        assert raw.zrange(f"{{{namespace}}}:i", 0, -1) == [b"/d", b"/kept.txt"]
        assert not list(raw.scan_iter(match=f"{namespace}:c:*", count=1000))
    finally:
        store.close()
