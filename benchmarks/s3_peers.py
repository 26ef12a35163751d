"""S3 peer benchmark: storager against boto3, s3fs, obstore and opendal on SeaweedFS.

Run from the repository root::

    python benchmarks/s3_peers.py                 # full: median of 3 runs
    python benchmarks/s3_peers.py --quick         # 1 run, fewer operations
    python benchmarks/s3_peers.py --clients boto3,obstore,storager --json out.json

The script starts SeaweedFS itself (``tests/servers/seaweedfs.py``), creates a bucket,
and then, for each run and each client, starts **one subprocess per workload**:

- ``small``: 1,000 PUT then 1,000 GET of 4 KiB objects sequentially, the same with 16
  threads, 1,000 HEADs, and listing 10,000 keys (populated once, before the runs).
  Client CPU per small request is ``resource.getrusage(RUSAGE_SELF)`` user + system
  time around the sequential PUT and GET loops, divided by their request count; it
  counts every thread of the client process (obstore's and opendal's runtimes too),
  never the server's.
- ``big-put`` / ``big-get``: one 256 MiB object, PUT from a file and GET into a
  discarding sink, with the child's peak RSS (``VmHWM`` from ``/proc/self/status``), so
  each client's RSS is measured alone, interpreter and imports included. Not
  ``ru_maxrss``: on Linux it survives ``execve``, so a child started by a large parent
  reports the parent's peak.

Concurrency is threads for every client (16 threads sharing one client object), so the
harness is the same for all; obstore and opendal release the GIL inside their Rust
calls. Clients run interleaved within each run, so drift hits them alike; each row is
the median over the runs. SeaweedFS runs on the same machine, so client and server
share its cores.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

KiB = 1 << 10
MiB = 1 << 20
ALL_CLIENTS = ("boto3", "s3fs", "obstore", "opendal", "storager", "storager-s3fs")
SMALL = 4 * KiB
THREADS = 16
LIST_PREFIX = "list10k/"


# -- clients: each is a small adapter with the same verbs -------------------------------


class Client:
    """The verbs the benchmark needs, over one peer library."""

    def __init__(self, cfg: dict[str, str]) -> None:
        self.cfg = cfg
        self.bucket = cfg["bucket"]

    def put(self, key: str, data: bytes) -> None:
        raise NotImplementedError

    def get(self, key: str) -> bytes:
        raise NotImplementedError

    def head(self, key: str) -> None:
        raise NotImplementedError

    def count(self, prefix: str) -> int:
        raise NotImplementedError

    def put_file(self, key: str, path: str) -> None:
        raise NotImplementedError

    def get_discard(self, key: str) -> int:
        raise NotImplementedError


class Boto3(Client):
    def __init__(self, cfg: dict[str, str]) -> None:
        super().__init__(cfg)
        import boto3
        from botocore.config import Config

        self.c = boto3.client(
            "s3",
            endpoint_url=cfg["endpoint"],
            aws_access_key_id=cfg["key"],
            aws_secret_access_key=cfg["secret"],
            region_name=cfg["region"],
            config=Config(max_pool_connections=32),
        )

    def put(self, key: str, data: bytes) -> None:
        self.c.put_object(Bucket=self.bucket, Key=key, Body=data)

    def get(self, key: str) -> bytes:
        body: bytes = self.c.get_object(Bucket=self.bucket, Key=key)["Body"].read()
        return body

    def head(self, key: str) -> None:
        self.c.head_object(Bucket=self.bucket, Key=key)

    def count(self, prefix: str) -> int:
        pages = self.c.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=prefix)
        return sum(len(page.get("Contents", [])) for page in pages)

    def put_file(self, key: str, path: str) -> None:
        self.c.upload_file(path, self.bucket, key)  # TransferConfig defaults: 8 MB, 10 threads

    def get_discard(self, key: str) -> int:
        with open(os.devnull, "wb") as sink:
            self.c.download_fileobj(self.bucket, key, sink)
        return 0


class S3fs(Client):
    def __init__(self, cfg: dict[str, str]) -> None:
        super().__init__(cfg)
        import s3fs

        self.fs = s3fs.S3FileSystem(
            key=cfg["key"],
            secret=cfg["secret"],
            endpoint_url=cfg["endpoint"],
            skip_instance_cache=True,
            use_listings_cache=False,
        )

    def _p(self, key: str) -> str:
        return f"{self.bucket}/{key}"

    def put(self, key: str, data: bytes) -> None:
        self.fs.pipe_file(self._p(key), data)

    def get(self, key: str) -> bytes:
        data: bytes = self.fs.cat_file(self._p(key))
        return data

    def head(self, key: str) -> None:
        self.fs.info(self._p(key))

    def count(self, prefix: str) -> int:
        return len(self.fs.find(self._p(prefix)))

    def put_file(self, key: str, path: str) -> None:
        self.fs.put_file(path, self._p(key))

    def get_discard(self, key: str) -> int:
        n = 0
        buf = bytearray(8 * MiB)
        # get_file cannot write to a non-seekable sink; a streaming reader is the s3fs way.
        with self.fs.open(self._p(key), "rb", block_size=8 * MiB) as f:
            while got := f.readinto(buf):
                n += got
        return n


class Obstore(Client):
    def __init__(self, cfg: dict[str, str]) -> None:
        super().__init__(cfg)
        import obstore
        from obstore.store import S3Store

        self.ob = obstore
        self.store = S3Store(
            self.bucket,
            endpoint=cfg["endpoint"],
            access_key_id=cfg["key"],
            secret_access_key=cfg["secret"],
            region=cfg["region"],
            virtual_hosted_style_request=False,
            client_options={"allow_http": True, "pool_max_idle_per_host": "32"},
        )

    def put(self, key: str, data: bytes) -> None:
        self.ob.put(self.store, key, data)

    def get(self, key: str) -> bytes:
        return bytes(self.ob.get(self.store, key).bytes())

    def head(self, key: str) -> None:
        self.ob.head(self.store, key)

    def count(self, prefix: str) -> int:
        return sum(len(batch) for batch in self.ob.list(self.store, prefix=prefix))

    def put_file(self, key: str, path: str) -> None:
        with open(path, "rb") as f:
            self.ob.put(self.store, key, f)  # multipart: 5 MiB chunks, 12 in flight

    def get_discard(self, key: str) -> int:
        n = 0
        for chunk in self.ob.get(self.store, key).stream(min_chunk_size=8 * MiB):
            n += len(chunk)
        return n


class OpenDAL(Client):
    def __init__(self, cfg: dict[str, str]) -> None:
        super().__init__(cfg)
        import opendal

        self.op = opendal.Operator(
            "s3",
            bucket=self.bucket,
            endpoint=cfg["endpoint"],
            region=cfg["region"],
            access_key_id=cfg["key"],
            secret_access_key=cfg["secret"],
            root="/",
        )

    def put(self, key: str, data: bytes) -> None:
        self.op.write(key, data)

    def get(self, key: str) -> bytes:
        return bytes(self.op.read(key))

    def head(self, key: str) -> None:
        self.op.stat(key)

    def count(self, prefix: str) -> int:
        return sum(1 for e in self.op.list(prefix, recursive=True) if not e.path.endswith("/"))

    def put_file(self, key: str, path: str) -> None:
        with open(path, "rb") as src, self.op.open(key, "wb", chunk=8 * MiB, concurrent=8) as dst:
            while chunk := src.read(8 * MiB):
                dst.write(chunk)

    def get_discard(self, key: str) -> int:
        n = 0
        buf = bytearray(8 * MiB)
        with self.op.open(key, "rb") as f:
            while got := f.readinto(buf):
                n += got
        return n


class Storager(Client):
    """storager's s3 service; ``request_path`` picks its transport (default or s3fs)."""

    request_path = "lean"

    def __init__(self, cfg: dict[str, str]) -> None:
        super().__init__(cfg)
        import storager

        url = (
            f"s3://{self.bucket}/?endpoint={cfg['endpoint']}&location={cfg['region']}"
            f"&credential=hmac:{cfg['key']}:{cfg['secret']}&request_path={self.request_path}"
        )
        self.store = storager.open(url)

    def put(self, key: str, data: bytes) -> None:
        self.store.write(key, data)

    def get(self, key: str) -> bytes:
        return self.store.read(key)

    def head(self, key: str) -> None:
        self.store.stat(key)

    def count(self, prefix: str) -> int:
        return sum(1 for _ in self.store.list(prefix, list_mode="prefix"))

    def put_file(self, key: str, path: str) -> None:
        with open(path, "rb") as f:
            self.store.write(key, f)

    def get_discard(self, key: str) -> int:
        n = 0
        buf = bytearray(8 * MiB)
        with self.store.open_reader(key) as f:
            while got := f.readinto(buf):
                n += got
        return n


class StoragerS3fs(Storager):
    request_path = "s3fs"


CLIENTS: dict[str, type[Client]] = {
    "boto3": Boto3,
    "s3fs": S3fs,
    "obstore": Obstore,
    "opendal": OpenDAL,
    "storager": Storager,
    "storager-s3fs": StoragerS3fs,
}


# -- workers (run in a subprocess each) ---------------------------------------------------


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _timed(fn: Callable[[], None]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def worker_small(client: Client, prefix: str, ops: int, list_keys: int) -> dict[str, float]:
    payload = os.urandom(SMALL)
    keys = [f"{prefix}seq/{i:05d}" for i in range(ops)]
    pkeys = [f"{prefix}par/{i:05d}" for i in range(ops)]
    # Warm up: a connection, credentials, lazy imports.
    for i in range(5):
        client.put(f"{prefix}warm{i}", payload)
        client.get(f"{prefix}warm{i}")
    out: dict[str, float] = {}
    cpu0 = _cpu()
    t = _timed(lambda: [client.put(k, payload) for k in keys] and None)
    out["seq_put_ops"] = ops / t
    t = _timed(lambda: [client.get(k) for k in keys] and None)
    out["seq_get_ops"] = ops / t
    out["cpu_us_per_req"] = (_cpu() - cpu0) / (2 * ops) * 1e6
    with ThreadPoolExecutor(THREADS) as pool:
        t = _timed(lambda: list(pool.map(lambda k: client.put(k, payload), pkeys)) and None)
        out["par_put_ops"] = ops / t
        t = _timed(lambda: list(pool.map(client.get, pkeys)) and None)
        out["par_get_ops"] = ops / t
    t = _timed(lambda: [client.head(k) for k in keys] and None)
    out["head_ops"] = ops / t
    got = 0

    def count() -> None:
        nonlocal got
        got = client.count(LIST_PREFIX)

    out["list_s"] = _timed(count)
    if got != list_keys:
        raise RuntimeError(f"listed {got} keys, expected {list_keys}")
    return out


def worker_big(client: Client, mode: str, key: str, path: str, size: int) -> dict[str, float]:
    out: dict[str, float] = {}
    if mode == "big-put":
        out["big_put_mbs"] = size / 1e6 / _timed(lambda: client.put_file(key, path))
    else:
        out["big_get_mbs"] = size / 1e6 / _timed(lambda: client.get_discard(key) and None)
    out[f"{mode.replace('-', '_')}_rss_mib"] = peak_rss_mib()
    return out


def peak_rss_mib() -> float:
    """This process's peak resident set (``VmHWM``), in MiB.

    ``ru_maxrss`` would be wrong here: Linux keeps it across ``execve``, so a worker
    started from a parent that once held more reports the parent's peak.
    """
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024  # kB
    raise RuntimeError("no VmHWM in /proc/self/status")


def worker_main(args: argparse.Namespace) -> None:
    cfg = json.loads(args.cfg)
    client = CLIENTS[args.client](cfg)
    if args.worker == "small":
        result = worker_small(client, args.prefix, args.ops, args.list_keys)
    elif args.worker == "populate":
        payload = b"x" * 16
        keys = [f"{LIST_PREFIX}{i:05d}" for i in range(args.list_keys)]
        with ThreadPoolExecutor(THREADS) as pool:
            list(pool.map(lambda k: client.put(k, payload), keys))
        result = {}
    else:
        result = worker_big(client, args.worker, args.prefix + "big", args.file, args.size)
    print("RESULT " + json.dumps(result))


def run_worker(cfg: dict[str, str], client: str, worker: str, **extra: Any) -> dict[str, float]:
    argv = [sys.executable, str(Path(__file__).resolve()), "--worker", worker, "--client", client]
    argv += ["--cfg", json.dumps(cfg)]
    for name, value in extra.items():
        argv += [f"--{name.replace('_', '-')}", str(value)]
    proc = subprocess.run(argv, capture_output=True, text=True, cwd=ROOT, timeout=1800)
    for line in proc.stdout.splitlines():
        if line.startswith("RESULT "):
            result: dict[str, float] = json.loads(line[7:])
            return result
    raise RuntimeError(f"{client} {worker} failed:\n{proc.stderr[-3000:]}")


# -- the driver ---------------------------------------------------------------------------

ROWS = [
    # key, label, higher is better
    ("seq_put_ops", "sequential PUT 4 KiB (ops/s)", True),
    ("seq_get_ops", "sequential GET 4 KiB (ops/s)", True),
    ("par_put_ops", "16 threads PUT 4 KiB (ops/s)", True),
    ("par_get_ops", "16 threads GET 4 KiB (ops/s)", True),
    ("head_ops", "HEAD x N sequential (ops/s)", True),
    ("list_s", "list 10,000 keys (s)", False),
    ("cpu_us_per_req", "client CPU per small request (us)", False),
    ("big_put_mbs", "256 MiB PUT (MB/s)", True),
    ("big_get_mbs", "256 MiB GET (MB/s)", True),
    ("big_put_rss_mib", "peak RSS, 256 MiB PUT (MiB)", False),
    ("big_get_rss_mib", "peak RSS, 256 MiB GET (MiB)", False),
]


def _fmt(value: float | None) -> str:
    if value is None:
        return "-"
    if value >= 100:
        return f"{value:,.0f}"
    return f"{value:.2f}" if value < 10 else f"{value:.1f}"


def table(medians: dict[str, dict[str, float]], clients: list[str], ops: int, size: int) -> str:
    me = "storager"
    peers = [c for c in clients if c != me]
    head = ["workload", *clients]
    if me in clients:
        head += [f"{me}/{p}" for p in peers]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for key, label, higher in ROWS:
        label = label.replace("x N", f"x {ops:,}").replace("256 MiB", f"{size // MiB} MiB")
        cells = [label + ("" if higher else " lower is better")]
        cells += [_fmt(medians[c].get(key)) for c in clients]
        if me in clients:
            mine = medians[me].get(key)
            for p in peers:
                theirs = medians[p].get(key)
                cells.append("-" if not mine or not theirs else f"{mine / theirs:.2f}")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="1 run, fewer operations")
    parser.add_argument("--clients", default="boto3,s3fs,obstore,opendal,storager")
    parser.add_argument("--json", help="write the raw and median results here")
    parser.add_argument("--runs", type=int, help="runs per row (default 3, --quick 1)")
    parser.add_argument("--endpoint", help="use a running S3 server instead of SeaweedFS")
    # Worker mode (internal).
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--client", help=argparse.SUPPRESS)
    parser.add_argument("--cfg", help=argparse.SUPPRESS)
    parser.add_argument("--prefix", default="", help=argparse.SUPPRESS)
    parser.add_argument("--ops", type=int, default=1000, help=argparse.SUPPRESS)
    parser.add_argument("--list-keys", type=int, default=10_000, help=argparse.SUPPRESS)
    parser.add_argument("--file", help=argparse.SUPPRESS)
    parser.add_argument("--size", type=int, default=256 * MiB, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker_main(args)
        return

    clients = [c.strip() for c in args.clients.split(",") if c.strip()]
    unknown = [c for c in clients if c not in CLIENTS]
    if unknown:
        parser.error(f"unknown clients {unknown}; known: {', '.join(CLIENTS)}")
    runs = args.runs or (1 if args.quick else 3)
    ops = 200 if args.quick else 1000
    list_keys = 2000 if args.quick else 10_000
    size = 64 * MiB if args.quick else 256 * MiB

    server = None
    if args.endpoint:
        endpoint = args.endpoint
    else:
        from tests.servers.seaweedfs import start_seaweedfs

        server = start_seaweedfs()
        endpoint = server.endpoint
    try:
        import boto3

        cfg = {
            "endpoint": endpoint,
            "bucket": f"bench-{os.getpid()}",
            "key": "storager",
            "secret": "storager-secret",
            "region": "us-east-1",
        }
        boto3.client(
            "s3",
            endpoint_url=endpoint,
            aws_access_key_id=cfg["key"],
            aws_secret_access_key=cfg["secret"],
            region_name=cfg["region"],
        ).create_bucket(Bucket=cfg["bucket"])
        filler = "obstore" if "obstore" in clients else clients[0]
        run_worker(cfg, filler, "populate", list_keys=list_keys)
        with tempfile.TemporaryDirectory(prefix="s3-peers-") as tmp:
            big = Path(tmp) / "big.bin"
            with big.open("wb") as f:
                for _ in range(size // (8 * MiB)):
                    f.write(os.urandom(8 * MiB))
            raw: dict[str, list[dict[str, float]]] = {c: [] for c in clients}
            for run in range(runs):
                for client in clients:
                    prefix = f"r{run}/{client}/"
                    result = run_worker(
                        cfg, client, "small", prefix=prefix, ops=ops, list_keys=list_keys
                    )
                    common = {"prefix": prefix, "file": big, "size": size}
                    result |= run_worker(cfg, client, "big-put", **common)
                    result |= run_worker(cfg, client, "big-get", **common)
                    raw[client].append(result)
                    print(f"run {run + 1}/{runs} {client}: " + json.dumps(result), file=sys.stderr)
    finally:
        if server is not None:
            server.stop()

    medians = {c: {k: statistics.median(r[k] for r in rs) for k in rs[0]} for c, rs in raw.items()}
    print(
        f"\nS3 peers on SeaweedFS ({endpoint}), {os.cpu_count()} cores shared with the server; "
        f"median of {runs} run(s), {ops:,} small ops, {list_keys:,} keys listed, "
        f"{size // MiB} MiB object\n"
    )
    print(table(medians, clients, ops, size).replace("10,000 keys", f"{list_keys:,} keys"))
    if args.json:
        Path(args.json).write_text(
            json.dumps({"runs": runs, "ops": ops, "raw": raw, "median": medians}, indent=1)
        )


if __name__ == "__main__":
    main()
