"""The redis service against a model (a dict), under random sequences of writes, copies,
moves and deletes: every object reads back as the model says, and after the sweep the
chunks left are exactly those of the generations the manifests use, each counted once per
manifest. Bounded hypothesis runs on the standalone server."""

from __future__ import annotations

import secrets
from collections import Counter
from collections.abc import Iterator

import pytest
import redis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import storager
from storager.services.redis import RedisStorage
from tests.servers.redis import RedisServer

pytestmark = pytest.mark.redis

PATHS = ["a.bin", "b.bin", "c/d.bin", "c/e.bin"]
#: Sizes around the inline limit (100) and the chunk size (1024).
SIZES = [0, 7, 100, 101, 1024, 2500]

operations = st.lists(
    st.one_of(
        st.tuples(st.just("write"), st.sampled_from(PATHS), st.sampled_from(SIZES)),
        st.tuples(st.just("copy"), st.sampled_from(PATHS), st.sampled_from(PATHS)),
        st.tuples(st.just("move"), st.sampled_from(PATHS), st.sampled_from(PATHS)),
        st.tuples(st.just("delete"), st.sampled_from(PATHS), st.just(0)),
    ),
    max_size=25,
)


@pytest.fixture
def raw(redis_server: RedisServer) -> Iterator[redis.Redis]:
    """redis-py on the standalone server, to look behind the service."""
    client = redis.Redis(host=redis_server.host, port=redis_server.port)
    yield client
    client.close()


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(steps=operations)
def test_random_operations_match_a_model_and_the_sweep_keeps_exactly_the_used_chunks(
    redis_server: RedisServer, raw: redis.Redis, steps: list[tuple[str, str, object]]
) -> None:
    namespace = f"model-{secrets.token_hex(4)}"
    store = storager.open(
        redis_server.url(), namespace=namespace, chunk_size=1024, inline_limit=100
    )
    assert isinstance(store, RedisStorage)
    model: dict[str, bytes] = {}
    try:
        for number, (op, first, second) in enumerate(steps):
            if op == "write":
                assert isinstance(second, int)
                content = bytes([number % 256]) * second
                store.write(first, content)
                model[first] = content
            elif op == "delete":
                store.delete(first)
                model.pop(first, None)
            elif first not in model:
                with pytest.raises(storager.NotFoundError):
                    getattr(store, op)(first, second)
            else:
                assert isinstance(second, str)
                getattr(store, op)(first, second)
                model[second] = model[first]
                if op == "move" and first != second:
                    del model[first]
        for path, content in model.items():
            assert store.read(path) == content
        listed = {o.path for o in store.list("", list_mode="prefix") if not o.is_dir}
        assert listed == set(model)

        store.sweep(grace=0)

        manifests = {path: raw.hget(f"{{{namespace}}}:m:/{path}", "gen") for path in model}
        uses = Counter(gen for gen in manifests.values() if gen is not None)
        chunk_keys = list(raw.scan_iter(match=f"{namespace}:c:*", count=1000))
        assert {key.split(b":")[2] for key in chunk_keys} == set(uses)
        refs = {gen: int(count) for gen, count in raw.hgetall(f"{{{namespace}}}:r").items()}
        assert refs == dict(uses)
        for path, content in model.items():
            assert store.read(path) == content
    finally:
        for path in PATHS:
            store.delete(path)
        store.sweep(grace=0)
        store.close()
