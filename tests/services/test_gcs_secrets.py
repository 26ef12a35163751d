"""A gcs store never carries its bearer token out: no pickle, no repr, no error text."""

from __future__ import annotations

import pickle

import pytest

import storager
from storager import StorageError
from tests.servers.gcs import GCSServer

pytestmark = pytest.mark.gcs

TOKEN = "ya29.TOPSECRET-bearer-token-value"


def test_a_gcs_store_with_a_bearer_token_refuses_to_pickle(gcs_server: GCSServer) -> None:
    store = storager.open(
        f"gcs://bucket-x/?endpoint={gcs_server.endpoint}&credential=token:{TOKEN}"
    )
    try:
        with pytest.raises(TypeError) as info:
            pickle.dumps(store)
        assert TOKEN not in str(info.value)
        assert TOKEN not in repr(store)
    finally:
        store.close()


@pytest.mark.parametrize(
    "query",
    [
        f"cred%65ntial=token:{TOKEN}&bogus=1",
        f"CREDENTIAL=token:{TOKEN}",
        f"credential=token:{TOKEN}&credential=again",
        f"credentail=token:{TOKEN}",
        f"endpoint=http://127.0.0.1:1&{TOKEN}",
    ],
)
def test_connection_string_errors_never_echo_a_secret(query: str) -> None:
    with pytest.raises(StorageError) as info:
        storager.open(f"gcs://bucket-x/?{query}")
    assert TOKEN not in str(info.value)
    assert TOKEN not in repr(info.value)
    assert TOKEN not in str(pickle.loads(pickle.dumps(info.value)))
