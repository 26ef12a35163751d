"""Fragment digests: what each fragment's manifest entry carries to prove it intact.

Every fragment is digested when it is written, and checked against that digest before
its bytes are used (pyeclib decodes a corrupted fragment to wrong bytes without a
word). A recorded digest names its algorithm, so a reader checks each fragment with
the algorithm it was written with, whatever the store uses today:

- ``xxh3:<32 hex>`` (the default where ``xxhash`` is installed, as the ``striped``
  extra does): XXH3's 128-bit hash. It misses accidental damage with probability
  about 2^-128 per fragment and runs at about 30 GB/s on one core here, some 12x
  zlib's CRC-32 (``benchmarks/striped.py``), so checking every byte a read returns
  costs little next to the copy. It does not stop someone who can write to a
  backend from forging a fragment.
- ``crc32:<8 hex>`` (the default without ``xxhash``): zlib's CRC-32, in the standard
  library; it finds every error burst up to 32 bits and misses other accidental
  damage with probability 2^-32 per fragment.
- ``sha256:<64 hex>``: for backends that are not trusted: a forged fragment is
  caught as surely as a corrupt one.
- a bare 64-hex string: sha256, as manifests written before digests named their
  algorithm recorded it.
"""

from __future__ import annotations

import hashlib
import zlib
from collections.abc import Callable, Mapping
from types import MappingProxyType

from storager._errors import InvalidArgumentError

__all__ = ["DIGESTS", "Checker", "FragmentDigest", "checker", "default_digest", "matches"]

Buffer = bytes | bytearray | memoryview


def _crc32(data: Buffer) -> str:
    return f"{zlib.crc32(data):08x}"


def _sha256(data: Buffer) -> str:
    return hashlib.sha256(data).hexdigest()


def _xxh3(data: Buffer) -> str:
    try:
        import xxhash
    except ImportError as exc:
        raise InvalidArgumentError(
            "digest",
            "striped",
            "",
            "fragments recorded with xxh3 need xxhash: pip install 'storager[striped]'",
        ) from exc
    digest: str = xxhash.xxh3_128_hexdigest(data)
    return digest


#: The algorithms by name: each returns the hex digest of its input.
DIGESTS: Mapping[str, Callable[[Buffer], str]] = MappingProxyType(
    {"xxh3": _xxh3, "crc32": _crc32, "sha256": _sha256}
)


def default_digest() -> str:
    """Return the digest new fragments use when the store names none.

    ``xxh3`` where ``xxhash`` is installed (the ``striped`` extra), else ``crc32``.
    """
    try:
        import xxhash  # noqa: F401
    except ImportError:
        return "crc32"
    return "xxh3"


class FragmentDigest:
    """The digest new fragments are recorded with.

    Args:
        name: ``"xxh3"``, ``"crc32"`` or ``"sha256"`` (see the module docstring);
            None takes :func:`default_digest`.

    Raises:
        InvalidArgumentError: An unknown algorithm, or xxh3 without xxhash installed.
    """

    __slots__ = ("_fn", "name")

    def __init__(self, name: str | None = None) -> None:
        if name is None:
            name = default_digest()
        fn = DIGESTS.get(name) if isinstance(name, str) else None
        if fn is None:
            raise InvalidArgumentError(
                "new",
                "striped",
                "",
                f"fragment_digest must be one of {', '.join(DIGESTS)}, not {name!r}",
            )
        if name == "xxh3" and default_digest() != "xxh3":
            raise InvalidArgumentError(
                "new", "striped", "", "fragment_digest xxh3 needs xxhash: pip install xxhash"
            )
        self.name = name
        self._fn = fn

    def of(self, data: Buffer) -> str:
        """Return the digest to record for ``data``: ``<algorithm>:<hex>``."""
        return f"{self.name}:{self._fn(data)}"

    def __repr__(self) -> str:
        return f"FragmentDigest({self.name!r})"


def matches(recorded: str, data: Buffer) -> bool:
    """Return whether ``data`` has the digest ``recorded`` (an unknown algorithm: False).

    Raises:
        InvalidArgumentError: The digest is xxh3 and xxhash is not installed.
    """
    name, expected = _parse(recorded)
    fn = DIGESTS.get(name)
    return fn is not None and fn(data) == expected


def _parse(recorded: str) -> tuple[str, str]:
    """Split a recorded digest into its algorithm and hex (a bare hex is sha256)."""
    name, sep, expected = recorded.partition(":")
    return (name, expected) if sep else ("sha256", recorded)


class Checker:
    """A recorded digest checked piece by piece, as the fragment's bytes arrive.

    Each piece is digested just after it landed, while it is still in the cache,
    instead of in a second pass over the whole fragment (``benchmarks/README.md``:
    about 5-9% on a read over local stores).
    """

    __slots__ = ("_expected", "_finish", "update")

    def __init__(
        self, expected: str, update: Callable[[Buffer], object], finish: Callable[[], str]
    ) -> None:
        self._expected = expected
        self._finish = finish
        #: Digest the next piece (in order).
        self.update = update

    def matches(self) -> bool:
        """Return whether the pieces given, in order, have the recorded digest."""
        return self._finish() == self._expected


def checker(recorded: str) -> Checker | None:
    """Return a piecewise check of ``recorded`` (None: an unknown algorithm).

    Raises:
        InvalidArgumentError: The digest is xxh3 and xxhash is not installed.
    """
    name, expected = _parse(recorded)
    if name == "xxh3":
        _xxh3(b"")  # without xxhash: the error that names the extra
        import xxhash

        state = xxhash.xxh3_128()
        return Checker(expected, state.update, state.hexdigest)
    if name == "sha256":
        sha = hashlib.sha256()
        return Checker(expected, sha.update, sha.hexdigest)
    if name == "crc32":
        crc = [0]

        def update(data: Buffer) -> None:
            crc[0] = zlib.crc32(data, crc[0])

        return Checker(expected, update, lambda: f"{crc[0]:08x}")
    return None
