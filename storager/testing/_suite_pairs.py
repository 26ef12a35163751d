"""The conformance tests of pairs: supported, unsupported, loose, defaults, wrong types,
and control characters in pairs that travel as headers."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable

import pytest

from storager._errors import NotFoundError, PairInvalidError, PairUnsupportedError, StorageError
from storager._header_pairs import HEADER_PAIRS
from storager._protocols import Storager
from storager._service import Service
from storager.testing._gating import covers
from storager.testing._suite_base import Factory, _files

#: The global op pairs tried, in order, as "a real pair this operation does not accept".
_FOREIGN_PAIRS = ("content_type", "storage_class", "expire", "list_mode", "offset")
_UNKNOWN_PAIR = "storager_no_such_pair"
#: Values that would add a header, end the head or smuggle a request if sent raw.
_INJECTIONS = (
    "a\rb",
    "a\nb",
    "a\r\nX-Injected: 1",
    "a\x00b",
    "a\x7fb",
    "a\r\n\r\nGET /smuggled HTTP/1.1",
)


def _injected_pairs(pair: str, payload: str) -> list[dict[str, object]]:
    """The pair with ``payload`` in each place it can go (a map: its value and its key)."""
    if pair == "user_metadata":
        return [{pair: {"k": payload}}, {pair: {f"k{payload}": "v"}}]
    return [{pair: payload}]


class PairTests:
    """The contracts of op pairs; a mixin of ``StoragerSuite``."""

    @covers("read", "list")
    def test_supported_pair_works(self, store: Storager) -> None:
        store.write("pairs/a.txt", b"0123456789")
        assert store.read("pairs/a.txt", offset=2, size=3) == b"234"
        assert _files(store.list("pairs/", list_mode="prefix")) == Counter({"pairs/a.txt": 1})

    @covers("write", accepts=("write", "content_type"))
    def test_supported_content_type_is_stored(self, store: Storager) -> None:
        store.write("typed.txt", b"x", content_type="text/x-storager")
        assert store.stat("typed.txt").content_type == "text/x-storager"

    @covers("stat", "read")
    def test_unsupported_pair_raises_pair_unsupported(self, store: Storager) -> None:
        service = store.metadata().service
        capability = store.metadata().capability
        store.write("pairs.txt", b"x")
        for op in ("stat", "read"):
            foreign = [p for p in _FOREIGN_PAIRS if not capability.accepts(op, p)][:1]
            for pair in [*foreign, _UNKNOWN_PAIR]:
                call = store.stat if op == "stat" else store.read
                with pytest.raises(PairUnsupportedError) as info:
                    call("pairs.txt", **{pair: "text/plain"})
                err = info.value
                assert isinstance(err, NotImplementedError)
                assert err.op == op
                assert err.service == service or not isinstance(store, Service)
                for word in (pair, op, err.service):
                    assert word in str(err)

    @covers("stat", "write")
    def test_loose_pairs_ignores_unsupported_pair(
        self, store: Storager, storager_factory: Factory, work_dir: str
    ) -> None:
        try:
            loose = storager_factory(work_dir, loose_pairs=True)
        except (TypeError, StorageError) as exc:
            pytest.skip(f"the store refuses loose_pairs: {exc}")
        try:
            loose.write("loose.txt", b"x", **{_UNKNOWN_PAIR: 1})
            assert loose.stat("loose.txt", **{_UNKNOWN_PAIR: 1}).content_length == 1
            assert loose.read("loose.txt", **{_UNKNOWN_PAIR: 1}) == b"x"
        finally:
            loose.close()

    @covers("write", accepts=("write", "content_type"))
    def test_default_pair_applies_and_caller_wins(
        self, store: Storager, storager_factory: Factory, work_dir: str
    ) -> None:
        try:
            defaulted = storager_factory(work_dir, default_content_type="text/x-default")
        except (TypeError, StorageError) as exc:
            pytest.skip(f"the store refuses default_content_type: {exc}")
        try:
            defaulted.write("default.txt", b"x")
            assert defaulted.stat("default.txt").content_type == "text/x-default"
            defaulted.write("caller.txt", b"x", content_type="text/x-caller")
            assert defaulted.stat("caller.txt").content_type == "text/x-caller"
        finally:
            defaulted.close()

    @covers("read", "list")
    def test_wrong_pair_type_raises_pair_invalid(self, store: Storager) -> None:
        store.write("typed.bin", b"0123456789")
        bad: list[Callable[[], object]] = [
            lambda: store.read("typed.bin", offset="1"),
            lambda: store.read("typed.bin", size=1.5),
            lambda: store.read("typed.bin", offset=True),
            lambda: store.read("typed.bin", io_callback="not callable"),
            lambda: list(store.list("", list_mode="bogus")),
            lambda: list(store.list("", list_mode=1)),
        ]
        for call in bad:
            with pytest.raises(PairInvalidError) as info:
                call()
            assert isinstance(info.value, ValueError)

    @covers("write", "stat", "read")
    def test_header_pairs_refuse_control_characters_and_write_nothing(
        self, store: Storager
    ) -> None:
        """A control character in a header-bound pair is refused, and nothing is written.

        Every pair in ``HEADER_PAIRS`` that the store's write accepts gets CR, LF, CRLF
        with a header after it, NUL, DEL and a smuggled request, as its value (and, for
        user_metadata, in a key): PairInvalidError naming the operation, the path and
        the pair, without the raw value; the path stays absent, and an existing object
        keeps its bytes.
        """
        capability = store.metadata().capability
        pairs = sorted(p for p in HEADER_PAIRS if capability.accepts("write", p))
        if not pairs:
            pytest.skip("write accepts no header-bound pair")
        store.write("headers/kept.txt", b"original")
        for pair in pairs:
            for payload in _INJECTIONS:
                for given in _injected_pairs(pair, payload):
                    for path in ("headers/absent.txt", "headers/kept.txt"):
                        with pytest.raises(PairInvalidError) as info:
                            store.write(path, b"INJECTED", **given)
                        err = info.value
                        assert err.op == "write", (pair, payload, err.op)
                        for word in (pair, path):
                            assert word in str(err), (word, str(err))
                        assert not any(c in str(err) for c in "\r\n\x00\x7f"), str(err)
        with pytest.raises(NotFoundError):
            store.stat("headers/absent.txt")
        assert store.read("headers/kept.txt") == b"original"
