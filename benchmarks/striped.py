"""Striped benchmarks: codecs against the library called directly, throughput, memory.

Run ``python benchmarks/striped.py`` (``--size-mib``, ``--rss-mib``, ``--dir``, ``--rounds``).
It prints, for one run on this machine:

1. **Codecs**: encode and decode MB/s of each codec's ``encode``/``decode`` next to
   pyeclib's ``ECDriver`` called directly on the same stripes (decode with the first two
   data fragments missing), and the writer's per-stripe work (encode + a digest per
   fragment: XXH3 (the default), CRC-32 and sha256), which is what a write pays, and
   ``rebuild``: ``Codec.pieces`` on the same fragments, what a degraded read does
   (RS: only the missing data fragments rebuilt). Target: the codec ≥ 0.9 of the library.
2. **Throughput**: write and read of one object (256 MiB by default) over 6 fs backends
   with ``ReedSolomon(4, 2)`` and 4 MiB chunks, against one ``FsStorage``; and the read with
   two backends failing every read (degraded). Reads are timed two ways: ``read()`` (the
   whole object in one ``bytes``) and a stream (``open_reader``, 8 MiB ``read`` calls).
   Targets: read ≥ 1.0x, write ≥ 0.7x of one fs store, degraded read ≥ 0.5x of the
   healthy one. Each round times the fs store
   and Striped back to back (the machine may be shared); medians of ``--rounds``, with
   the CPU seconds (user + system) per GiB each took, which the load changes less.
   ``--tune-malloc`` builds the store with ``tune_malloc=True`` (glibc keeps freed
   buffers for reuse, for the whole process: the fs store's numbers change too).
3. **Memory**: peak RSS of a child process that writes, then streams back, a 1 GiB object
   (and the same for a quarter of it: the peak must not grow with the size).

Codecs: best of ``--rounds``; throughput: medians of per-round ratios.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import zlib
from collections.abc import Callable, Iterator
from typing import Any

import xxhash

from storager._malloc import retain_freed_buffers
from storager.combinators.striped import Codec, ReedSolomon, Replicas, Striped, Stripes
from storager.services.fs import FsStorage
from storager.testing import FaultyStorager

MiB = 1 << 20
CHUNK = 4 * MiB


def best(fn: Callable[[], object], rounds: int) -> float:
    """Return the shortest wall time of ``rounds`` calls of ``fn``."""
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def paired(a: Callable[[], object], b: Callable[[], object], rounds: int) -> tuple[float, float]:
    """Return the shortest wall times of ``a`` and ``b``, called in alternating order."""
    times: tuple[list[float], list[float]] = ([], [])
    for r in range(rounds):
        for which in (0, 1) if r % 2 == 0 else (1, 0):
            start = time.perf_counter()
            (a, b)[which]()
            times[which].append(time.perf_counter() - start)
    return min(times[0]), min(times[1])


def bench_codecs(total: int, rounds: int) -> None:
    from pyeclib.ec_iface import ECDriver

    print(f"== codecs: {total // MiB} MiB in stripes of data x 4 MiB, MB/s, best of {rounds}")
    print(
        f"{'codec':<18}{'encode':>9}{'library':>9}{'ratio':>7}"
        f"{'+xxh3':>9}{'+crc32':>9}{'+sha256':>9}"
        f"{'decode':>9}{'library':>9}{'ratio':>7}{'rebuild':>9}"
    )
    for k, m in ((4, 2), (8, 3)):
        bench_codec(ReedSolomon(k, m, library="isa-l"), _RawIsaL(k, m), total, rounds)
        pyeclib = ECDriver(k=k, m=m, ec_type="isa_l_rs_vand")
        bench_codec(ReedSolomon(k, m, library="pyeclib"), pyeclib, total, rounds)
    bench_codec(Replicas(3), None, total, rounds)
    bench_codec(Stripes(4), None, total, rounds)


class _RawIsaL:
    """ISA-L called directly, as simply as it can be: the reference for the isa-l codec.

    ``encode`` codes the parity of the stripe's blocks (no padding, no checks);
    ``decode`` inverts the rows of the fragments given and rebuilds the missing data.
    """

    def __init__(self, k: int, m: int) -> None:
        from storager.combinators.striped._isal import load_isal, rows_of

        isal = load_isal()
        assert isal is not None
        self.isal, self.k, self.m = isal, k, m
        self.matrix = isal.cauchy(k, k + m)
        self.parity = isal.tables(k, rows_of(self.matrix, k, range(k, k + m)))

    def encode(self, stripe: bytes) -> list[Any]:
        view = memoryview(stripe)
        block = len(view) // self.k
        blocks = [view[i * block : (i + 1) * block] for i in range(self.k)]
        parity = [bytearray(block) for _ in range(self.m)]
        self.isal.apply(self.parity, self.k, blocks, parity)
        return blocks + parity

    def decode(self, fragments: list[Any]) -> bytes:
        """Return the stripe from ``fragments`` (those of ``bench_codec``'s ``keep``)."""
        from storager.combinators.striped._isal import decoding_rows

        chosen = list(range(min(2, self.m), self.k + self.m))[: self.k]  # bench_codec's `keep`
        missing = [i for i in range(self.k) if i not in chosen]
        rows = decoding_rows(self.matrix, self.k, chosen, missing)
        assert rows is not None
        rebuilt = [bytearray(len(fragments[0])) for _ in missing]
        self.isal.apply(self.isal.tables(self.k, rows), self.k, fragments, rebuilt)
        have = dict(zip(chosen, fragments, strict=True)) | dict(zip(missing, rebuilt, strict=True))
        return b"".join(have[i] for i in range(self.k))


def bench_codec(codec: Codec, driver: Any, total: int, rounds: int) -> None:
    """Print one codec's row: ours, the library's, and ours with the writer's digests."""
    stripe_bytes = codec.data * CHUNK
    stripes = [os.urandom(stripe_bytes) for _ in range(max(1, total // stripe_bytes))]
    size = stripe_bytes * len(stripes)
    encoded = [codec.encode(s) for s in stripes]
    # Decode without the first two data fragments (parity stands in), as a degraded read.
    keep = list(range(min(2, codec.parity), codec.total))[: codec.data]

    def ours_encode() -> None:
        for s in stripes:
            codec.encode(s)

    def with_digests(digest: Callable[[Any], object]) -> Callable[[], None]:
        def run() -> None:
            for s in stripes:
                seen: set[int] = set()
                for f in codec.encode(s):
                    if id(f) not in seen:
                        seen.add(id(f))
                        digest(f)

        return run

    def ours_decode() -> None:
        for s, frags in zip(stripes, encoded, strict=True):
            codec.decode({i: frags[i] for i in keep}, len(s))

    def ours_rebuild() -> None:
        # What a degraded read does: only the missing data fragments rebuilt, then views.
        for s, frags in zip(stripes, encoded, strict=True):
            codec.pieces({i: frags[i] for i in keep}, len(s))

    def mbs(fn: Callable[[], object]) -> float:
        return size / best(fn, rounds) / 1e6

    enc, dec, rebuild = mbs(ours_encode), mbs(ours_decode), mbs(ours_rebuild)
    xxh = mbs(with_digests(xxhash.xxh3_128_digest))
    crc = mbs(with_digests(zlib.crc32))
    sha = mbs(with_digests(lambda f: hashlib.sha256(f).digest()))
    label = f"{codec.label()} {getattr(codec, 'library', '')}".strip()
    row = f"{label:<18}{enc:>9.0f}"
    if driver is None:
        print(
            f"{row}{'-':>9}{'-':>7}{xxh:>9.0f}{crc:>9.0f}{sha:>9.0f}{dec:>9.0f}{'-':>9}{'-':>7}"
            f"{rebuild:>9.0f}"
        )
        return
    # Ours and the library's in alternating rounds, so both see the same load.
    enc_s, lib_enc_s = paired(ours_encode, lambda: [driver.encode(s) for s in stripes], 2 * rounds)
    dec_s, lib_dec_s = paired(
        ours_decode, lambda: [driver.decode([f[i] for i in keep]) for f in encoded], 2 * rounds
    )
    enc, lib_enc, dec, lib_dec = (size / t / 1e6 for t in (enc_s, lib_enc_s, dec_s, lib_dec_s))
    row = f"{label:<18}{enc:>9.0f}"
    print(
        f"{row}{lib_enc:>9.0f}{enc / lib_enc:>7.2f}{xxh:>9.0f}{crc:>9.0f}{sha:>9.0f}"
        f"{dec:>9.0f}{lib_dec:>9.0f}{dec / lib_dec:>7.2f}{rebuild:>9.0f}"
    )


def _source(total: int) -> Iterator[bytes]:
    block = os.urandom(MiB)
    for i in range(total // MiB):
        yield i.to_bytes(8, "big") + block[8:]


def _drain(reader: object) -> int:
    n = 0
    while chunk := reader.read(8 * MiB):  # type: ignore[attr-defined]
        n += len(chunk)
    return n


_CPU: dict[str, list[float]] = {}


def _timed(fn: Callable[[], object], name: str = "") -> float:
    """Return the wall time of ``fn()``; its CPU time (user + system) goes to ``_CPU``."""
    before = resource.getrusage(resource.RUSAGE_SELF)
    start = time.perf_counter()
    fn()
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_SELF)
    cpu = after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime
    _CPU.setdefault(name, []).append(cpu)
    return wall


def bench_throughput(
    root: str,
    total: int,
    rounds: int,
    *,
    fragment_digest: str,
    stripes_in_flight: int,
    tune_malloc: bool,
    library: str | None,
) -> None:
    print(
        f"\n== throughput: {total // MiB} MiB, RS(4,2) on 6 fs backends vs one fs, "
        f"{rounds} interleaved rounds, fragment_digest={fragment_digest}, "
        f"stripes_in_flight={stripes_in_flight}, tune_malloc={tune_malloc}, "
        f"library={library or 'default'}, "
        f"load average before: {os.getloadavg()[0]:.2f}"
    )
    single = FsStorage(root=os.path.join(root, "single"))
    faulty = {n: FaultyStorager(FsStorage(root=os.path.join(root, n))) for n in "abcdef"}
    striped = Striped(
        faulty,
        codec=ReedSolomon(4, 2, library=library),
        chunk_size=CHUNK,
        manifests=FsStorage(root=os.path.join(root, "manifests")),
        fragment_digest=fragment_digest,
        stripes_in_flight=stripes_in_flight,
        tune_malloc=tune_malloc,
    )
    seconds: dict[str, list[float]] = {}
    # Each round times the one fs store and Striped back to back, so both see the same
    # load from whatever else shares the machine; the ratios are per round.
    for _ in range(rounds):
        seconds.setdefault("fs write", []).append(
            _timed(lambda: single.write("obj", _source(total)), "fs write")
        )
        seconds.setdefault("striped write", []).append(
            _timed(lambda: striped.write("obj", _source(total)), "striped write")
        )
        striped.gc(grace=0)  # the replaced object's chunks, outside the timing
        seconds.setdefault("fs read()", []).append(_timed(lambda: single.read("obj"), "fs read()"))
        seconds.setdefault("striped read()", []).append(
            _timed(lambda: striped.read("obj"), "striped read()")
        )
        seconds.setdefault("fs stream", []).append(
            _timed(lambda: _drain(single.open_reader("obj")), "fs stream")
        )
        seconds.setdefault("striped stream", []).append(
            _timed(lambda: _drain(striped.open_reader("obj")), "striped stream")
        )
    for name in "ab":  # two backends fail every read
        faulty[name].fail = {"read": OSError, "open_reader": OSError}
    for _ in range(rounds):
        seconds.setdefault("striped degraded read()", []).append(
            _timed(lambda: striped.read("obj"), "striped degraded read()")
        )
        seconds.setdefault("striped degraded stream", []).append(
            _timed(lambda: _drain(striped.open_reader("obj")), "striped degraded stream")
        )
    gib = total / (1 << 30)
    for name, times in seconds.items():
        rates = sorted(total / t / 1e6 for t in times)
        spread = f"{rates[0]:.0f}-{rates[-1]:.0f}"
        cpu = statistics.median(_CPU[name]) / gib
        print(
            f"{name:<24}{statistics.median(rates):>8.0f} MB/s (median; {spread}), "
            f"CPU {cpu:.2f} s/GiB"
        )

    def ratios(a: str, b: str) -> str:
        values = sorted(x / y for x, y in zip(seconds[a], seconds[b], strict=False))
        spread = f"{values[0]:.2f}-{values[-1]:.2f}"
        return f"{statistics.median(values):.2f}x (median of {len(values)}; {spread})"

    print(f"write ratio {ratios('fs write', 'striped write')} (target >= 0.7)")
    for way in ("read()", "stream"):
        print(f"{way} ratio {ratios(f'fs {way}', f'striped {way}')} (target >= 1.0)")
        degraded = statistics.median(seconds[f"striped {way}"]) / statistics.median(
            seconds[f"striped degraded {way}"]
        )
        print(f"{way} degraded/healthy {degraded:.2f}x (target >= 0.5)")
    print(f"load average after: {os.getloadavg()[0]:.2f} (2 cores)")
    striped.close()
    single.close()


_CHILD = """
import os, sys
from storager.combinators.striped import ReedSolomon, Striped
from storager.services.fs import FsStorage

def peak_mib():
    # VmHWM is this process's own peak: ru_maxrss would include the parent's, copied at fork.
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) // 1024

root, total, tune = sys.argv[1], int(sys.argv[2]), sys.argv[3] == "1"
MiB = 1 << 20
store = Striped({n: FsStorage(root=os.path.join(root, n)) for n in "abcdef"},
                codec=ReedSolomon(4, 2), chunk_size=4 * MiB,
                manifests=FsStorage(root=os.path.join(root, "manifests")), tune_malloc=tune)
block = os.urandom(MiB)
store.write("big", (block for _ in range(total // MiB)))
after_write = peak_mib()
n = 0
with store.open_reader("big") as reader:
    while chunk := reader.read(8 * MiB):
        n += len(chunk)
assert n == total, n
print(after_write, peak_mib())
"""


def bench_rss(root: str, total: int, tune_malloc: bool) -> None:
    print(
        "\n== peak RSS of a child writing then streaming back one object (RS(4,2), 4 MiB "
        f"chunks, tune_malloc={tune_malloc})"
    )
    for size in (total // 4, total):
        where = tempfile.mkdtemp(dir=root)
        out = subprocess.run(
            [sys.executable, "-c", _CHILD, where, str(size), str(int(tune_malloc))],
            check=True,
            capture_output=True,
            text=True,
        ).stdout.split()
        shutil.rmtree(where)
        print(f"{size // MiB:>6} MiB: peak RSS after write {out[0]} MiB, after read {out[1]} MiB")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mib", type=int, default=256)
    parser.add_argument("--rss-mib", type=int, default=1024)
    parser.add_argument("--codec-mib", type=int, default=128)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--fragment-digest", default="xxh3", choices=["xxh3", "crc32", "sha256"])
    parser.add_argument(
        "--tune-malloc", action="store_true", help="Striped(tune_malloc=True): glibc keeps buffers"
    )
    parser.add_argument("--stripes-in-flight", type=int, default=2)
    parser.add_argument("--library", choices=["isa-l", "pyeclib"], default=None)
    parser.add_argument("--dir", default=None, help="where the temporary directory goes")
    parser.add_argument("--only", choices=["codecs", "throughput", "rss"], default=None)
    args = parser.parse_args()
    if args.tune_malloc:
        retain_freed_buffers()  # for the codecs too (the throughput's store sets it anyway)
    root = tempfile.mkdtemp(prefix="striped-bench-", dir=args.dir)
    try:
        if args.only in (None, "codecs"):
            bench_codecs(args.codec_mib * MiB, args.rounds)
        if args.only in (None, "throughput"):
            bench_throughput(
                root,
                args.size_mib * MiB,
                args.rounds,
                fragment_digest=args.fragment_digest,
                stripes_in_flight=args.stripes_in_flight,
                tune_malloc=args.tune_malloc,
                library=args.library,
            )
        if args.only in (None, "rss"):
            bench_rss(root, args.rss_mib * MiB, args.tune_malloc)
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024
        print(f"\nthis process's peak RSS: {peak} MiB")
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
