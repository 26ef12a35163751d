"""storager.open: connection strings, typed query values, entry points, no leaked secrets."""

from __future__ import annotations

import importlib
import logging
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

import storager
from storager import ConnectionStringInvalidError, ServiceNotRegisteredError
from storager._pairs import PairSpec, parse_text_value
from storager._registry import parse_connection_string, redact_url, reload_entry_points
from storager.services.fs import FsStorage
from storager.services.memory import MemoryStorage

SECRET = "TOPSECRETVALUE"

THIRD_PARTY_MODULE = '''
from typing import Any

from storager._pairs import PairSpec
from storager._service import ConnectionForm
from storager.services.memory import MemoryStorage
from storager.services.memory._generated import INIT_PAIRS


class ThirdPartyStorage(MemoryStorage):
    """A service from another distribution, found through its entry point."""

    service_name = "thirdparty"
    connection = ConnectionForm(
        scheme="thirdparty", example="thirdparty://user@host/dir", user="user",
        host="host", path="work_dir",
    )
    init_pairs = {
        **INIT_PAIRS,
        "user": PairSpec("user", "str", "Who connects."),
        "host": PairSpec("host", "str", "Where to connect."),
        "shards": PairSpec("shards", "int", "How many shards."),
        "credential": PairSpec("credential", "str", "How to sign in.", secret=True),
    }

    def __init__(
        self,
        *,
        user: str | None = None,
        host: str | None = None,
        shards: int | None = None,
        credential: str | None = None,
        **pairs: Any,
    ) -> None:
        self.user, self.host, self.shards = user, host, shards
        self._credential = credential
        super().__init__(**pairs)
'''


@pytest.fixture
def third_party(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Install a tiny distribution declaring a ``storager.services`` entry point."""
    site = tmp_path / "site"
    site.mkdir()
    (site / "thirdparty_storager.py").write_text(textwrap.dedent(THIRD_PARTY_MODULE))
    dist = site / "thirdparty_storager-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: thirdparty-storager\nVersion: 1.0\n"
    )
    (dist / "entry_points.txt").write_text(
        "[storager.services]\nthirdparty = thirdparty_storager:ThirdPartyStorage\n"
    )
    monkeypatch.syspath_prepend(str(site))
    importlib.invalidate_caches()
    reload_entry_points()
    yield
    reload_entry_points()
    sys.modules.pop("thirdparty_storager", None)


# -- opening built-in services --------------------------------------------------------


def test_open_fs_builds_an_fs_store_at_the_url_path(tmp_path: Path) -> None:
    store = storager.open(f"fs://{tmp_path}/data")
    assert isinstance(store, FsStorage)
    store.write("a.txt", b"x")
    assert (tmp_path / "data" / "a.txt").read_bytes() == b"x"
    assert store.metadata().service == "fs"


def test_open_memory_builds_a_memory_store_with_the_url_path_as_work_dir() -> None:
    store = storager.open("memory:///work/dir")
    assert isinstance(store, MemoryStorage)
    assert store.metadata().work_dir == "/work/dir/"
    store.write("a.txt", b"x")
    assert store.read("/work/dir/a.txt") == b"x"


def test_scheme_is_case_insensitive(tmp_path: Path) -> None:
    assert isinstance(storager.open("MEMORY://"), MemoryStorage)


def test_query_values_are_parsed_by_their_declared_type(tmp_path: Path) -> None:
    store = storager.open(f"fs://{tmp_path}?default_sync=true&loose_pairs=yes")
    assert store._default_sync is True  # type: ignore[attr-defined]
    assert store.write("a.txt", b"x", not_a_pair=1).content_length == 1  # loose_pairs took
    _, pairs = parse_connection_string("fs:///r?default_sync=0")
    assert pairs["default_sync"] is False


def test_int_query_values_become_ints(third_party: None) -> None:
    store = storager.open("thirdparty://?shards=12")
    assert store.shards == 12  # type: ignore[attr-defined]
    with pytest.raises(ConnectionStringInvalidError, match="'shards': 'many' is not a valid int"):
        storager.open("thirdparty://?shards=many")


@pytest.mark.parametrize("text", ["maybe", "2", ""])
def test_a_bad_bool_is_refused(text: str) -> None:
    with pytest.raises(ConnectionStringInvalidError, match="is not a valid bool"):
        storager.open(f"memory://?loose_pairs={text}")


def test_a_negative_int_is_refused() -> None:
    spec = PairSpec("n", "int", "a count")
    assert parse_text_value("x", spec, "42") == 42
    with pytest.raises(ConnectionStringInvalidError):
        parse_text_value("x", spec, "-1")


def test_query_values_and_the_path_are_percent_decoded(tmp_path: Path) -> None:
    store = storager.open("memory:///a%20b/?default_content_type=text%2Fplain%3B%20charset%3Dutf-8")
    assert store.metadata().work_dir == "/a b/"
    assert store.write("x", b"1").content_type == "text/plain; charset=utf-8"
    fs = storager.open(f"fs://{tmp_path}/with%20space")
    fs.write("f", b"1")
    assert (tmp_path / "with space" / "f").exists()


def test_keyword_pairs_override_url_pairs(tmp_path: Path) -> None:
    store = storager.open("memory:///from-url/", work_dir="/from-keyword/")
    assert store.metadata().work_dir == "/from-keyword/"
    fs = storager.open(f"fs://{tmp_path}?default_sync=false", default_sync=True)
    assert fs._default_sync is True  # type: ignore[attr-defined]


# -- bad connection strings ------------------------------------------------------------


def test_unknown_key_is_refused_naming_it_and_the_known_ones() -> None:
    with pytest.raises(ConnectionStringInvalidError) as info:
        storager.open("memory://?colour=blue")
    assert "unknown key 'colour'" in str(info.value)
    assert "work_dir" in str(info.value)


def test_repeated_key_is_refused() -> None:
    with pytest.raises(ConnectionStringInvalidError, match="'loose_pairs' given twice"):
        storager.open("memory://?loose_pairs=true&loose_pairs=false")


def test_a_key_also_given_by_the_url_path_is_refused() -> None:
    with pytest.raises(ConnectionStringInvalidError, match="'work_dir' given twice"):
        storager.open("memory:///a?work_dir=/b")


def test_bad_port_is_a_malformed_url() -> None:
    with pytest.raises(ConnectionStringInvalidError, match="malformed URL"):
        storager.open("memory://host:notaport/")


@pytest.mark.parametrize("url", ["memory", "no-scheme-here", "://x"])
def test_a_string_without_a_scheme_is_refused(url: str) -> None:
    with pytest.raises(ConnectionStringInvalidError):
        storager.open(url)


def test_a_url_part_the_service_does_not_take_is_refused() -> None:
    with pytest.raises(ConnectionStringInvalidError, match="memory takes no host"):
        storager.open("memory://somehost/")


def test_a_password_in_the_url_is_refused_and_not_shown() -> None:
    with pytest.raises(ConnectionStringInvalidError) as info:
        storager.open(f"memory://user:{SECRET}@/dir")
    assert "passwords in the URL are refused" in str(info.value)
    assert SECRET not in str(info.value)


def test_an_unknown_scheme_raises_service_not_registered() -> None:
    with pytest.raises(ServiceNotRegisteredError, match="no service for scheme 'nosuch'"):
        storager.open("nosuch://bucket/")


def test_a_missing_required_pair_is_refused() -> None:
    with pytest.raises(storager.PairRequiredError, match="'root' is required"):
        storager.open("fs://")


# -- third-party services -----------------------------------------------------------------


def test_a_third_party_service_registers_through_its_entry_point(third_party: None) -> None:
    store = storager.open("thirdparty://ana@example/dir/?shards=3")
    assert type(store).__name__ == "ThirdPartyStorage"
    assert type(store).__module__ == "thirdparty_storager"
    assert (store.user, store.host, store.shards) == ("ana", "example", 3)  # type: ignore[attr-defined]
    assert store.metadata().work_dir == "/dir/"
    store.write("a.txt", b"plugged in")
    assert store.read("/dir/a.txt") == b"plugged in"


def test_reload_entry_points_forgets_uninstalled_services(third_party: None) -> None:
    storager.open("thirdparty://")
    reload_entry_points()
    sys.path.remove(next(p for p in sys.path if p.endswith("site")))
    importlib.invalidate_caches()
    with pytest.raises(ServiceNotRegisteredError):
        storager.open("thirdparty://")


# -- secrets ------------------------------------------------------------------------------


def test_credentials_never_appear_in_repr(third_party: None) -> None:
    store = storager.open(f"thirdparty://?credential=hmac:AK:{SECRET}")
    assert store._credential == f"hmac:AK:{SECRET}"  # type: ignore[attr-defined]
    assert SECRET not in repr(store)
    assert SECRET not in str(store.metadata())


@pytest.mark.parametrize(
    "url",
    [
        f"memory:///d?credential=hmac:AK:{SECRET}",
        f"thirdparty://?credential=hmac:AK:{SECRET}&colour=blue",
        f"thirdparty://?credential=hmac:AK:{SECRET}&shards=x",
        f"thirdparty://?credential=hmac:AK:{SECRET}&credential=again",
        f"thirdparty://host:bad/?credential=hmac:AK:{SECRET}",
        f"nosuch://?credential=hmac:AK:{SECRET}",
    ],
)
def test_credentials_never_appear_in_errors_or_logs(
    third_party: None, url: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    with pytest.raises(storager.StorageError) as info:
        storager.open(url)
    assert SECRET not in str(info.value)
    assert SECRET not in repr(info.value)
    assert all(SECRET not in record.getMessage() for record in caplog.records)


def test_redact_url_hides_passwords_and_secret_values() -> None:
    shown = redact_url(
        f"s3://ak:{SECRET}@host/b?credential={SECRET}&location=eu", frozenset({"location"})
    )
    assert SECRET not in shown
    assert shown == "s3://ak:***@host/b?credential=***&location=eu"


@pytest.mark.parametrize(
    "query",
    [
        f"cred%65ntial=hmac:AK:{SECRET}&bogus=1",
        f"CREDENTIAL=hmac:AK:{SECRET}",
        f"credentail=hmac:AK:{SECRET}",
        f"work_dir=/x/&hmac:AK:{SECRET}",
    ],
)
def test_connection_string_errors_show_no_value_of_a_key_not_known_public(
    third_party: None, query: str
) -> None:
    with pytest.raises(storager.ConnectionStringInvalidError) as info:
        storager.open(f"thirdparty://?{query}")
    assert SECRET not in str(info.value)


def test_values_of_known_public_pairs_stay_visible_in_errors(third_party: None) -> None:
    with pytest.raises(storager.ConnectionStringInvalidError) as info:
        storager.open(f"memory:///?work_dir=/visible/&credential=hmac:AK:{SECRET}")
    assert "work_dir=/visible/" in str(info.value)
    assert SECRET not in str(info.value)
