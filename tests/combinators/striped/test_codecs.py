"""Codecs: round trips from any sufficient set of fragments, and their refusals."""

from __future__ import annotations

import itertools
import os

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from storager import InvalidArgumentError, UnexpectedError
from storager.combinators.striped import Codec, ReedSolomon, Replicas, Striped, Stripes
from storager.combinators.striped._codecs import codec_from_spec
from storager.services.memory import MemoryStorage

CODECS = [
    ReedSolomon(4, 2),
    ReedSolomon(2, 1),
    ReedSolomon(4, 2, library="pyeclib"),
    ReedSolomon(2, 1, library="pyeclib"),
    Replicas(3),
    Stripes(3),
]


def _id(codec: Codec) -> str:
    return f"{codec.label()}-{getattr(codec, 'library', '')}"


@pytest.mark.parametrize("codec", CODECS, ids=_id)
@settings(max_examples=15, deadline=None)
@given(data=st.binary(min_size=1, max_size=5000))
def test_any_data_fragments_rebuild_the_stripe(codec: Codec, data: bytes) -> None:
    fragments = codec.encode(data)
    assert len(fragments) == codec.total
    for chosen in itertools.combinations(range(codec.total), codec.data):
        given_fragments = {i: fragments[i] for i in chosen}
        before = dict(given_fragments)
        assert codec.decode(given_fragments, len(data)) == data
        assert given_fragments == before  # the caller's mapping is left as it was


@pytest.mark.parametrize("codec", CODECS, ids=_id)
@settings(max_examples=15, deadline=None)
@given(data=st.binary(min_size=1, max_size=5000))
def test_pieces_join_to_the_stripe_from_any_sufficient_fragments(codec: Codec, data: bytes) -> None:
    fragments = codec.encode(data)
    for chosen in itertools.combinations(range(codec.total), codec.data):
        assert b"".join(codec.pieces({i: fragments[i] for i in chosen}, len(data))) == data


@pytest.mark.parametrize("library", ["isa-l", "pyeclib"])
def test_reed_solomon_pieces_are_views_of_the_data_fragments_not_a_decode(library: str) -> None:
    codec = ReedSolomon(4, 2, library=library)
    data = os.urandom(10_001)
    fragments = [bytes(f) for f in codec.encode(data)]
    pieces = codec.pieces(dict(enumerate(fragments[:4])), len(data))
    assert len(pieces) == 4 and all(isinstance(p, memoryview) for p in pieces)
    assert [p.obj for p in pieces] == fragments[:4]  # no copy
    assert b"".join(pieces) == data


@pytest.mark.parametrize("library", ["isa-l", "pyeclib"])
def test_reed_solomon_rebuilds_only_missing_data_fragments_each_checked(library: str) -> None:
    codec = ReedSolomon(4, 2, library=library)
    data = os.urandom(10_001)
    fragments = [bytes(f) for f in codec.encode(data)]
    checked: dict[int, bytes] = {}

    def check(i: int, rebuilt: bytes | bytearray | memoryview) -> bool:
        checked[i] = bytes(rebuilt)
        return True

    given = {i: fragments[i] for i in (1, 3, 4, 5)}  # data fragments 0 and 2 missing
    pieces = codec.pieces(given, len(data), check)
    # Rebuilt byte for byte as written (so the recorded digests can check them), and the
    # stripe is views of the four data fragments' payloads, not a decode's copy.
    assert checked == {0: fragments[0], 2: fragments[2]}
    assert len(pieces) == 4 and all(isinstance(p, memoryview) for p in pieces)
    assert b"".join(pieces) == data


def test_reed_solomon_decodes_when_a_rebuilt_fragment_is_refused() -> None:
    codec = ReedSolomon(4, 2, library="pyeclib")
    data = os.urandom(10_001)
    fragments = [bytes(f) for f in codec.encode(data)]
    given = {i: fragments[i] for i in (0, 2, 4, 5)}
    pieces = codec.pieces(given, len(data), lambda i, f: False)
    assert len(pieces) == 1 and pieces[0] == data  # decode's one piece


def test_reed_solomon_pieces_decode_when_a_header_does_not_fit_the_stripe() -> None:
    codec = ReedSolomon(4, 2, library="pyeclib")
    data = os.urandom(10_001)
    fragments = [bytes(f) for f in codec.encode(data)]
    # Fragments given in the wrong slots: their headers name other indexes, so the
    # fast path must not trust them; pyeclib's decode, which reads the headers, rebuilds.
    swapped = {0: fragments[1], 1: fragments[0], 2: fragments[2], 3: fragments[3]}
    pieces = codec.pieces(swapped, len(data))
    assert len(pieces) == 1 and b"".join(pieces) == data
    with pytest.raises(UnexpectedError, match="rebuilt 10001 bytes, not 10000"):
        codec.pieces(dict(enumerate(fragments[:4])), len(data) - 1)


@pytest.mark.parametrize("codec", CODECS, ids=_id)
def test_too_few_fragments_raise(codec: Codec) -> None:
    data = os.urandom(3000)
    fragments = codec.encode(data)
    with pytest.raises(UnexpectedError):
        codec.decode({i: fragments[i] for i in range(codec.data - 1)}, len(data))


@pytest.mark.parametrize("library", ["isa-l", "pyeclib"])
def test_a_corrupt_fragment_decodes_to_wrong_bytes_silently(library: str) -> None:
    """The pitfall that makes Striped verify every fragment's digest before decoding."""
    codec = ReedSolomon(4, 2, library=library)
    data = os.urandom(1 << 16)
    fragments = [bytes(f) for f in codec.encode(data)]
    corrupt = bytearray(fragments[1])
    corrupt[500] ^= 0xFF
    out = codec.decode(
        {0: fragments[0], 1: bytes(corrupt), 2: fragments[2], 3: fragments[3]}, len(data)
    )
    assert out != data
    # A parity fragment corrupted the same way rebuilds a missing data fragment wrongly.
    corrupt_parity = bytearray(fragments[4])
    corrupt_parity[500] ^= 0xFF
    given = {0: fragments[0], 2: fragments[2], 3: fragments[3], 4: bytes(corrupt_parity)}
    assert codec.decode(given, len(data)) != data


def test_isa_l_refuses_a_rebuilt_fragment_its_check_refuses() -> None:
    """Never wrong bytes: a rebuilt fragment that is not the recorded one is an error."""
    codec = ReedSolomon(4, 2, library="isa-l")
    data = os.urandom(10_001)
    fragments = [bytes(f) for f in codec.encode(data)]
    given = {i: fragments[i] for i in (0, 2, 4, 5)}
    with pytest.raises(UnexpectedError, match="rebuilt fragment 1 is not the one recorded"):
        codec.pieces(given, len(data), lambda i, f: False)


def test_isa_l_fragments_are_the_stripe_cut_in_blocks_without_a_header() -> None:
    codec = ReedSolomon(4, 2, library="isa-l")
    data = os.urandom(10_001)  # blocks of 2,501 bytes; the last one padded with 3 zeros
    fragments = [bytes(f) for f in codec.encode(data)]
    assert [len(f) for f in fragments] == [2_501] * 6
    assert b"".join(fragments[:4]) == data + bytes(3)


def test_isa_l_refuses_fragments_of_the_wrong_length() -> None:
    codec = ReedSolomon(4, 2, library="isa-l")
    data = os.urandom(10_001)
    fragments = [bytes(f) for f in codec.encode(data)]
    with pytest.raises(UnexpectedError, match="needs fragments of 2502 bytes each, got 2501"):
        codec.pieces(dict(enumerate(fragments[:4])), len(data) + 4)
    short = {0: fragments[0][:-1], 1: fragments[1], 2: fragments[2], 3: fragments[3]}
    with pytest.raises(UnexpectedError, match="needs fragments of 2501 bytes each, got 2500, 2501"):
        codec.pieces(short, len(data))


def test_isa_l_and_pyeclib_parity_differ_and_each_reads_its_own() -> None:
    """The manifest names the library: a store reads objects written with the other one."""
    backends = {n: MemoryStorage() for n in "abcdef"}
    manifests = MemoryStorage()
    data = os.urandom(50_000)
    with Striped(
        backends,
        codec=ReedSolomon(4, 2, library="pyeclib"),
        manifests=manifests,
        chunk_size=4096,
    ) as old:
        old.write("old.bin", data)
    with Striped(
        backends,
        codec=ReedSolomon(4, 2, library="isa-l"),
        manifests=manifests,
        chunk_size=4096,
    ) as new:
        new.write("new.bin", data[::-1])
        assert new.read("old.bin") == data
        # Two backends gone: both objects still rebuild, each with its own library.
        for name in "ab":
            for key in [o.path for o in backends[name].list("", list_mode="prefix")]:
                backends[name].delete(key)
        assert new.read("old.bin") == data
        assert new.read("new.bin") == data[::-1]


def test_unknown_reed_solomon_library_is_refused() -> None:
    with pytest.raises(InvalidArgumentError, match="library must be"):
        ReedSolomon(4, 2, library="zfec")
    with pytest.raises(InvalidArgumentError, match="unknown erasure library"):
        codec_from_spec({"kind": "reed_solomon", "data": 4, "parity": 2, "library": "zfec"})


@pytest.mark.parametrize("codec", CODECS, ids=_id)
def test_spec_round_trips(codec: Codec) -> None:
    assert codec_from_spec(codec.spec()) == codec


@pytest.mark.parametrize(
    "make",
    [lambda: Replicas(0), lambda: ReedSolomon(0, 2), lambda: ReedSolomon(4, 0), lambda: Stripes(0)],
)
def test_bad_codec_parameters_are_refused(make: object) -> None:
    with pytest.raises(InvalidArgumentError):
        make()  # type: ignore[operator]


def test_unknown_codec_kind_is_refused() -> None:
    with pytest.raises(InvalidArgumentError, match="unknown codec"):
        codec_from_spec({"kind": "raid7"})


def test_codec_needing_more_backends_than_given_is_refused() -> None:
    backends = {n: MemoryStorage() for n in "abcde"}
    with pytest.raises(InvalidArgumentError, match=r"rs\(4,2\) writes 6 fragments.*only 5"):
        Striped(backends, codec=ReedSolomon(4, 2), manifests=MemoryStorage())


def test_stripes_without_width_takes_every_backend() -> None:
    backends = {n: MemoryStorage() for n in "abcd"}
    with Striped(backends, codec=Stripes(), manifests=MemoryStorage()) as store:
        assert store.codec.total == 4
        assert "stripes(4)" in store.describe_label()


@pytest.mark.parametrize("codec", CODECS, ids=_id)
@pytest.mark.parametrize("length", [1, 1000, 4096, 10_001])
def test_block_says_where_each_data_fragment_holds_the_stripe(codec: Codec, length: int) -> None:
    """What a reader relies on to read a fragment straight into the caller's buffer."""
    data = os.urandom(length)
    block = codec.block(length)
    if getattr(codec, "library", None) == "pyeclib":
        assert block is None  # headers first: never read in place
        return
    assert block is not None
    for i, fragment in enumerate(codec.encode(data)[: codec.data]):
        held = data[i * block : (i + 1) * block]
        assert bytes(fragment)[: len(held)] == held
        assert bytes(fragment)[len(held) :] == bytes(len(fragment) - len(held))  # padding


@pytest.mark.parametrize("codec", CODECS, ids=_id)
def test_rebuild_into_writes_missing_data_fragments_in_place(codec: Codec) -> None:
    data = os.urandom(4 * 3000)
    fragments = [bytes(f) for f in codec.encode(data)]
    lost = list(range(min(codec.parity, codec.data)))
    given = {i: f for i, f in enumerate(fragments) if i not in lost}
    outputs = {i: memoryview(bytearray(len(fragments[i]))) for i in lost}
    if not codec.rebuild_into(given, outputs):
        assert codec.block(len(data)) is None or codec.parity == 0  # pyeclib, stripes
        return
    assert all(bytes(outputs[i]) == fragments[i] for i in lost)
    # Never into memory that may not be written (the C code writes through a pointer).
    read_only = {i: memoryview(bytes(len(fragments[i]))) for i in lost}
    assert codec.rebuild_into(given, read_only) is False


def test_default_library_is_isa_l_unless_a_pyeclib_ec_type_is_named() -> None:
    assert ReedSolomon(4, 2).library == "isa-l"
    named = ReedSolomon(4, 2, ec_type="isa_l_rs_vand")
    assert named.library == "pyeclib" and named.spec()["ec_type"] == "isa_l_rs_vand"


def test_isa_l_refuses_more_fragments_than_its_field_has() -> None:
    assert ReedSolomon(200, 56).total == 256
    with pytest.raises(InvalidArgumentError, match="data \\+ parity <= 256, not 257"):
        ReedSolomon(200, 57)


def test_without_libisal_isa_l_objects_still_read_while_their_data_is_whole(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from storager.combinators.striped import _codecs

    written = ReedSolomon(4, 2, library="isa-l")
    data = os.urandom(10_000)
    fragments = [bytes(f) for f in written.encode(data)]
    monkeypatch.setattr(_codecs, "load_isal", lambda: None)
    with pytest.raises(InvalidArgumentError, match="needs libisal"):
        ReedSolomon(4, 2, library="isa-l")  # a store that would write: refused at once
    reading = codec_from_spec(written.spec())  # a manifest read on such a host
    assert b"".join(reading.pieces(dict(enumerate(fragments[:4])), len(data))) == data
    with pytest.raises(InvalidArgumentError, match="needs libisal"):
        reading.pieces({i: fragments[i] for i in (0, 1, 2, 4)}, len(data))


def test_isa_l_lets_go_of_its_sources_when_an_output_is_refused() -> None:
    from storager.combinators.striped._isal import load_isal

    isal = load_isal()
    assert isal is not None
    source = bytearray(64)
    with pytest.raises(BufferError):
        isal.apply(isal.tables(1, b"\x01"), 1, [source], [memoryview(bytes(64))])
    source.extend(b"x")  # a bytearray still exported (pinned) could not grow
    assert len(source) == 65
