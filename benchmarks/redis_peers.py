"""Redis peer benchmark: storager's redis service against redis-py called directly, and
against OpenDAL's redis service (Python wheel), on one local redis-server.

Run from the repository root::

    python benchmarks/redis_peers.py             # median of 5 rounds (--rounds)
    python benchmarks/redis_peers.py --quick     # 1 round, fewer operations
    python benchmarks/redis_peers.py --only small   # only the 4 KiB rows
    python benchmarks/redis_peers.py --lane-off     # also storager without auto-pipelining
    python benchmarks/redis_peers.py --poll-off     # also storager without busy polling

The script starts its own redis-server (``tests/servers/redis.py``) unless ``--port`` is
given. Rows:

- ``SET/GET/EXISTS 4 KiB``: the same 4 KiB value over 1,000 keys (cycled), sequentially
  and from 16 threads sharing one client; storager's verbs are write, read and stat,
  redis-py's SET, GET and EXISTS, OpenDAL's write, read and stat. Each row runs in
  slices of 400 operations per client, the clients taking turns slice by slice; ops/s
  are medians over the slices, and each ratio is the median of the ratios measured
  within one slice (so the machine's drift between slices cancels).
- ``list 10,000 keys``: storager lists a prefix holding 10,000 keys (ZRANGEBYLEX pages
  plus one HMGET pipeline per page, so each entry carries size, etag and mtime);
  redis-py has no listing, the nearest is ``SCAN MATCH prefix*`` over the whole
  keyspace (names only); OpenDAL's redis service cannot list.
- ``256 MiB write / read``: in a child process each, so its peak RSS (``VmHWM``) is
  its own, interpreter and imports included (``ru_maxrss`` would carry the parent's
  peak across execve). storager streams the write from a
  generator of 1 MiB pieces and reads through open_reader into a discarding sink;
  redis-py SETs and GETs one 256 MiB value (it needs the whole value in memory, and a
  value cannot pass 512 MB); OpenDAL writes and reads the value whole.

Client and server share the machine's cores, so compare ratios measured in one run.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

MiB = 1 << 20
SMALL = b"v" * 4096
KEYS = [f"bench/k{i:04d}" for i in range(1000)]
THREADS = 16
#: Slices per row and round; clients take turns slice by slice.
SLICES = 10
LIST_KEYS = 10_000
BIG_MIB = 256
NAMESPACE = "bench"


# -- clients: the same three verbs each ------------------------------------------------


class Raw:
    """redis-py, one key per object."""

    name = "redis-py"

    def __init__(self, port: int) -> None:
        import redis

        self.client = redis.Redis(host="127.0.0.1", port=port)

    def write(self, key: str, data: bytes) -> None:
        self.client.set(key, data)

    def read(self, key: str) -> bytes:
        value = self.client.get(key)
        assert isinstance(value, bytes)
        return value

    def exists(self, key: str) -> None:
        assert self.client.exists(key)


class Storager:
    """storager's redis service."""

    name = "storager"

    query = ""

    def __init__(self, port: int) -> None:
        import storager

        self.store: Any = storager.open(
            f"redis://127.0.0.1:{port}/?namespace={NAMESPACE}{self.query}"
        )

    def write(self, key: str, data: bytes) -> None:
        self.store.write(key, data)

    def read(self, key: str) -> bytes:
        data: bytes = self.store.read(key)
        return data

    def exists(self, key: str) -> None:
        self.store.stat(key)


class StoragerNoLane(Storager):
    """storager with auto-pipelining off: one connection per concurrent thread."""

    name = "storager-nolane"

    def __init__(self, port: int) -> None:
        super().__init__(port)
        self.store._link.lane_limit = 0


class StoragerNoPoll(Storager):
    """storager whose threads sleep at once while a reply is on its way (busy_poll_us=0)."""

    name = "storager-nopoll"
    query = "&busy_poll_us=0"


class OpenDAL:
    """OpenDAL's redis service (one SET per object)."""

    name = "opendal"

    def __init__(self, port: int) -> None:
        import opendal

        self.op = opendal.Operator("redis", endpoint=f"tcp://127.0.0.1:{port}", root="/odal")

    def write(self, key: str, data: bytes) -> None:
        self.op.write(key, data)

    def read(self, key: str) -> bytes:
        return bytes(self.op.read(key))

    def exists(self, key: str) -> None:
        self.op.stat(key)


CLIENTS: dict[str, Callable[[int], Any]] = {
    "raw": Raw,
    "storager": Storager,
    "opendal": OpenDAL,
    "nolane": StoragerNoLane,
    "nopoll": StoragerNoPoll,
}


# -- small operations --------------------------------------------------------------------


def _rate(op: Callable[[str], object], ops: int, threads: int, pool: ThreadPoolExecutor) -> float:
    """Run ``op`` over the keys ``ops`` times, on ``threads`` threads; return ops/s."""
    keys = [KEYS[i % len(KEYS)] for i in range(ops)]
    start = time.perf_counter()
    if threads == 1:
        for key in keys:
            op(key)
    else:
        share = [keys[i::threads] for i in range(threads)]
        list(pool.map(lambda part: [op(key) for key in part], share))
    return ops / (time.perf_counter() - start)


def small_rows(
    clients: dict[str, Any], ops: int, rounds: int, slices: int = SLICES
) -> dict[str, dict[str, float]]:
    """Return ``{row: {client: median ops/s}}`` for SET/GET/EXISTS, sequential and 16 threads.

    Each round runs each row in ``slices`` slices of ``ops / slices`` operations, the
    clients taking turns slice by slice, so that the clients compared in one slice
    ran within a fraction of a second of each other.
    """
    for client in clients.values():  # warm up, and the keys exist for GET and EXISTS
        for key in KEYS:
            client.write(key, SMALL)
    samples: dict[str, dict[str, list[float]]] = {}
    per_slice = max(THREADS, ops // slices)
    with ThreadPoolExecutor(THREADS) as pool:
        for _ in range(rounds):
            for threads in (1, THREADS):
                label = "sequential" if threads == 1 else f"{THREADS} threads"
                for verb in ("write", "read", "exists"):
                    name_of = {"write": "SET", "read": "GET", "exists": "EXISTS"}
                    row = f"{name_of[verb]} 4 KiB, {label}"
                    for _ in range(slices):
                        for name, client in clients.items():
                            method = getattr(client, verb)
                            op = (
                                (lambda key, m=method: m(key, SMALL)) if verb == "write" else method
                            )
                            samples.setdefault(row, {}).setdefault(name, []).append(
                                _rate(op, per_slice, threads, pool)
                            )
    out: dict[str, dict[str, float]] = {}
    for row, by in samples.items():
        out[row] = {name: statistics.median(values) for name, values in by.items()}
        # A ratio per slice cancels the machine's drift between slices; the row's ratio
        # is their median.
        for peer in ("raw", "opendal", "nolane", "nopoll"):
            if peer in by:
                ratios = [
                    mine / theirs for mine, theirs in zip(by["storager"], by[peer], strict=True)
                ]
                out[row][f"storager/{peer}"] = statistics.median(ratios)
    return out


def list_rows(port: int, rounds: int) -> dict[str, float]:
    """Return seconds to list 10,000 keys: storager list (prefix) and redis-py SCAN MATCH."""
    raw, store = Raw(port), Storager(port)
    names = [f"list10k/{i:05d}" for i in range(LIST_KEYS)]
    pipe = raw.client.pipeline(transaction=False)
    for name in names:
        pipe.set(name, b"x")
    pipe.execute()
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda name: store.write(name, b"x"), names))
    out: dict[str, list[float]] = {"storager": [], "raw": []}
    for _ in range(rounds):
        start = time.perf_counter()
        listed = list(store.store.list("list10k/", list_mode="prefix"))
        out["storager"].append(time.perf_counter() - start)
        assert len(listed) == LIST_KEYS
        start = time.perf_counter()
        scanned = list(raw.client.scan_iter(match="list10k/*", count=1000))
        out["raw"].append(time.perf_counter() - start)
        assert len(scanned) == LIST_KEYS
    return {name: statistics.median(values) for name, values in out.items()}


# -- big objects (one child process each) ----------------------------------------------


def _child(client_name: str, mode: str, port: int) -> dict[str, float]:
    base = bytes(range(256)) * 4096
    start = time.perf_counter()
    if client_name == "storager":
        store = Storager(port).store
        if mode == "write":
            store.write("big.bin", (base for _ in range(BIG_MIB)))
        else:
            with store.open_reader("big.bin") as reader:
                while reader.read(MiB):
                    pass
    else:
        client = CLIENTS[client_name](port)
        if mode == "write":
            value = base * BIG_MIB
            start = time.perf_counter()  # building the value is not the client's cost
            client.write("big.bin", value)
        else:
            assert len(client.read("big.bin")) == BIG_MIB * MiB
    took = time.perf_counter() - start
    return {"mb_s": BIG_MIB * MiB / took / 1e6, "rss_mib": _peak_rss_kib() / 1024}


def _peak_rss_kib() -> int:
    """Return this process image's peak resident set, in KiB.

    ``VmHWM`` starts afresh at execve; ``ru_maxrss`` would keep the peak of the process
    that started this one (getrusage(2)), here the benchmark's parent.
    """
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    raise RuntimeError("no VmHWM in /proc/self/status")


def big_rows(port: int, names: list[str]) -> dict[str, dict[str, float]]:
    """Return ``{"256 MiB write": {client: {...}}, ...}`` measured in child processes."""
    out: dict[str, dict[str, float]] = {}
    for mode in ("write", "read"):
        for name in names:
            argv = [sys.executable, __file__, "--child", name, mode, "--port", str(port)]
            done = subprocess.run(argv, capture_output=True, text=True, cwd=ROOT, timeout=900)
            if done.returncode != 0:
                # OpenDAL's 256 MiB write sometimes times out ("I/O error ... timed out"):
                # a failed row shows as nan, with the error's last line on stderr.
                lines = done.stderr.strip().splitlines()
                last = [line for line in lines if "Error" in line or "exceptions." in line]
                print(f"{name} {mode} failed: {(last or ['?'])[-1][:200]}", file=sys.stderr)
                result = {"mb_s": float("nan"), "rss_mib": float("nan")}
            else:
                result = json.loads(done.stdout.strip().splitlines()[-1])
            out[f"256 MiB {mode}: MB/s"] = {
                **out.get(f"256 MiB {mode}: MB/s", {}),
                name: result["mb_s"],
            }
            key = f"256 MiB {mode}: peak RSS MiB"
            out[key] = {**out.get(key, {}), name: result["rss_mib"]}
    return out


# -- main ----------------------------------------------------------------------------------


def _print_table(rows: dict[str, dict[str, float]], names: list[str]) -> None:
    head = " | ".join(names)
    print(f"| row | {head} | storager/raw | storager/opendal |")
    print("|---|" + "---|" * (len(names) + 2))
    for row, by in rows.items():
        cells = " | ".join(f"{by[n]:,.0f}" if n in by else "-" for n in names)
        nan = float("nan")
        ratio = by.get("storager/raw", by["storager"] / by["raw"] if "raw" in by else nan)
        ratio_odal = by.get(
            "storager/opendal", by["storager"] / by["opendal"] if "opendal" in by else nan
        )
        print(f"| {row} | {cells} | {ratio:.2f} | {ratio_odal:.2f} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--port", type=int, help="a running redis-server (default: start one)")
    parser.add_argument("--quick", action="store_true", help="1 round, fewer operations")
    parser.add_argument("--rounds", type=int, default=5, help="rounds of the small rows")
    parser.add_argument("--child", nargs=2, metavar=("CLIENT", "MODE"), help=argparse.SUPPRESS)
    parser.add_argument("--json", help="also write the results to this file")
    parser.add_argument(
        "--only", choices=("small", "list", "big"), help="run only this group of rows"
    )
    parser.add_argument(
        "--lane-off",
        action="store_true",
        help="also run storager without auto-pipelining in the small rows (column nolane)",
    )
    parser.add_argument(
        "--poll-off",
        action="store_true",
        help="also run storager without busy polling in the small rows (column nopoll)",
    )
    args = parser.parse_args()
    if args.child:
        print(json.dumps(_child(args.child[0], args.child[1], args.port)))
        return
    server = None
    port = args.port
    if port is None:
        from tests.servers.redis import start_redis

        server = start_redis()
        port = server.port
    try:
        names = ["raw", "storager", "opendal"]
        rounds, ops = (1, 1000) if args.quick else (args.rounds, 4000)
        small: dict[str, dict[str, float]] = {}
        listing: dict[str, float] = {}
        big: dict[str, dict[str, float]] = {}
        if args.only in (None, "small"):
            small_names = [*names, *(["nolane"] if args.lane_off else [])]
            small_names += ["nopoll"] if args.poll_off else []
            small = small_rows({name: CLIENTS[name](port) for name in small_names}, ops, rounds)
        if args.only in (None, "list"):
            listing = list_rows(port, rounds)
        if args.only in (None, "big"):
            big = big_rows(port, names)
    finally:
        if server is not None:
            server.stop()
    from redis.utils import HIREDIS_AVAILABLE

    print(f"redis-py's reply parser: {'hiredis' if HIREDIS_AVAILABLE else 'pure Python'}")
    if small:
        print("ops/s (median of slices):")
        _print_table(small, names)
        if args.lane_off:
            print("\nstorager/storager without auto-pipelining (lane_limit 0), per slice:")
            for row, by in small.items():
                print(f"  {row}: {by['storager/nolane']:.2f}")
        if args.poll_off:
            print("\nstorager/storager without busy polling (busy_poll_us=0), per slice:")
            for row, by in small.items():
                print(f"  {row}: {by['storager/nopoll']:.2f}")
    if listing:
        print(
            f"\nlist {LIST_KEYS:,} keys (s): storager {listing['storager']:.3f}, "
            f"redis-py SCAN MATCH {listing['raw']:.3f}"
        )
    if big:
        print("\n256 MiB:")
        _print_table(big, names)
    if args.json:
        Path(args.json).write_text(
            json.dumps({"small": small, "list": listing, "big": big}, indent=2)
        )


if __name__ == "__main__":
    main()
