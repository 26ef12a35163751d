"""Peak client memory while copying one large object between two storage services.

Run from the repository root::

    python benchmarks/transfer_memory.py                          # 1 GiB, the ring, cli + lib
    python benchmarks/transfer_memory.py --size-mib 256 --pairs fs:s3,s3:gcs --modes lib
    python benchmarks/transfer_memory.py --cap gcs=512 --json out.json

The claim under test: copying a 1 GiB object between any two services keeps the
process's peak memory under 256 MiB.

The script starts the servers the pairs need with the ``tests/servers`` start functions
(SeaweedFS for s3, gcp-storage-emulator for gcs, Azurite for azblob, OpenSSH sshd for
sftp; fs is a temp dir), and creates the bucket and container the way the service tests
do. Then, for each pair ``SRC:DST``:

1. **fill**: unless the source already holds the object (the ring reuses the previous
   pair's copy), a subprocess writes ``--size-mib`` MiB of pseudo-random data to the
   source as a stream of 1 MiB chunks (chunk *i* is SHAKE-128 of the seed and *i*), never
   whole in memory, and a second subprocess reads it back with ``open_reader`` and
   hashes it (sha256, streamed).
2. **copy**, in a fresh subprocess, once per mode:

   * ``cli``: ``python -m storager cp --no-progress SRC_URL DST_URL``. Every service's
     credentials and host keys go in the URL query (``credential=hmac:...`` for s3,
     ``credential=token:anon`` for gcs, ``credential=shared_key:...`` for azblob,
     ``private_key=...&known_hosts=...`` for sftp).
   * ``lib``: ``python -c`` that opens both stores with ``storager.open`` and runs
     ``dst.write(path, src.open_reader(path))``.

3. **measure**: the subprocess's peak RSS is ``ru_maxrss`` from ``os.wait4`` on that
   one child (so no other child, such as a server, is counted), with psutil sampling
   the RSS every 0.1 s alongside for the curve. Seconds are the subprocess's wall time,
   interpreter start and imports included; MB/s is size / seconds (MB = 10^6 bytes).
4. **verify**: the destination's ``stat().content_length``, and a streamed sha256 of the
   destination (``open_reader``, 1 MiB reads, in a subprocess) equal to the source's.

Only the client's RSS is measured; the servers run in their own processes (their
memory, e.g. the GCS emulator's in-memory objects, is not counted). ``--cap SERVICE=MIB``
limits the size for one service (as source or destination) when its emulator cannot
hold or handle the full size in reasonable time; the table says so.

``--profile`` reruns each copy that misses the target with tracemalloc in the child and
prints the top allocation sites at its peak.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import secrets
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

import psutil

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

MiB = 1 << 20
TARGET_MIB = 256
SERVICES = ("fs", "s3", "gcs", "azblob", "sftp")
RING = "fs:s3,s3:gcs,gcs:azblob,azblob:sftp,sftp:fs"
SEED = b"storager-transfer-memory"
PYTHON = sys.executable

# -- the code the subprocesses run --------------------------------------------------------

FILL = """
import hashlib, json, sys, storager
url, path, size, seed = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4].encode()
digest = hashlib.sha256()
def chunks():
    done, i = 0, 0
    while done < size:
        n = min(1 << 20, size - done)
        chunk = hashlib.shake_128(seed + i.to_bytes(8, "big")).digest(n)
        digest.update(chunk)
        yield chunk
        done, i = done + n, i + 1
with storager.open(url) as store:
    obj = store.write(path, chunks(), size=size)
print(json.dumps({"sha256": digest.hexdigest(), "length": obj.content_length}))
"""

HASH = """
import hashlib, json, sys, storager
url, path = sys.argv[1], sys.argv[2]
digest, total = hashlib.sha256(), 0
with storager.open(url) as store:
    length = store.stat(path).content_length
    with store.open_reader(path) as reader:
        while chunk := reader.read(1 << 20):
            digest.update(chunk)
            total += len(chunk)
print(json.dumps({"sha256": digest.hexdigest(), "length": length, "read": total}))
"""

COPY = """
import sys, storager
src_url, src_path, dst_url, dst_path = sys.argv[1:5]
with storager.open(src_url) as src, storager.open(dst_url) as dst:
    with src.open_reader(src_path) as reader:
        dst.write(dst_path, reader)
"""

IDLE = """
import sys, storager
with storager.open(sys.argv[1]) as a, storager.open(sys.argv[2]) as b:
    a.stat(sys.argv[3])
"""

PROFILE = """
import sys, threading, time, tracemalloc, storager
src_url, src_path, dst_url, dst_path = sys.argv[1:5]
tracemalloc.start(25)
best = [0, None]
stop = threading.Event()
def watch():
    while not stop.wait(0.05):
        now, peak = tracemalloc.get_traced_memory()
        if now > best[0]:
            best[0], best[1] = now, tracemalloc.take_snapshot()
            tracemalloc.reset_peak()
watcher = threading.Thread(target=watch, daemon=True)
watcher.start()
with storager.open(src_url) as src, storager.open(dst_url) as dst:
    with src.open_reader(src_path) as reader:
        dst.write(dst_path, reader)
stop.set()
watcher.join()
print(f"traced peak (tracemalloc): {tracemalloc.get_traced_memory()[1] / 2**20:.1f} MiB")
print(f"largest snapshot taken: {best[0] / 2**20:.1f} MiB traced")
if best[1] is not None:
    for stat in best[1].statistics("traceback")[:6]:
        print(f"-- {stat.size / 2**20:.1f} MiB in {stat.count} blocks")
        for line in stat.traceback.format(limit=8):
            print("   " + line)
"""


# -- running a child and measuring it -----------------------------------------------------


@dataclass
class Run:
    """One measured subprocess."""

    argv: list[str]
    seconds: float
    peak_rss_mib: float
    returncode: int
    stdout: str
    stderr: str
    samples: list[tuple[float, float]] = field(default_factory=list)
    """(seconds since start, RSS MiB), every 0.1 s."""

    def json(self) -> dict[str, Any]:
        return json.loads(self.stdout.strip().splitlines()[-1])


def measure(argv: list[str], *, timeout: float = 1800.0) -> Run:
    """Run ``argv``; return its wall time and peak RSS (``ru_maxrss`` of that child)."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        return _measure(argv, out, err, timeout)


def _measure(argv: list[str], out: Any, err: Any, timeout: float) -> Run:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    start = time.perf_counter()
    popen = subprocess.Popen(argv, stdout=out, stderr=err, stdin=subprocess.DEVNULL, env=env)
    samples: list[tuple[float, float]] = []
    done = threading.Event()

    def sample() -> None:
        try:
            proc = psutil.Process(popen.pid)
            while not done.is_set():
                samples.append((time.perf_counter() - start, proc.memory_info().rss / MiB))
                done.wait(0.1)
        except psutil.Error:
            pass

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    timer = threading.Timer(timeout, popen.kill)
    timer.start()
    try:
        _, status, usage = os.wait4(popen.pid, 0)
    finally:
        timer.cancel()
    seconds = time.perf_counter() - start
    done.set()
    sampler.join()
    popen.returncode = os.waitstatus_to_exitcode(status)
    out.seek(0)
    err.seek(0)
    return Run(
        argv=argv,
        seconds=seconds,
        peak_rss_mib=usage.ru_maxrss / 1024,  # kilobytes on Linux
        returncode=popen.returncode,
        stdout=out.read().decode(errors="replace"),
        stderr=err.read().decode(errors="replace"),
        samples=samples,
    )


def checked(run: Run, what: str) -> Run:
    if run.returncode != 0:
        raise RuntimeError(f"{what} failed (exit {run.returncode}):\n{run.stderr[-3000:]}")
    return run


# -- services: servers, buckets, URLs -----------------------------------------------------


@dataclass
class Endpoint:
    """Where one service keeps the benchmark's objects."""

    service: str
    store_url: str
    """Connection string of the store (for ``storager.open``)."""
    cli_base: str
    """Object URL prefix for the CLI: ``cli_base + key + cli_query``."""
    cli_query: str
    key_prefix: str = ""
    """Prefix of the key in the store for the library path (fs, sftp: relative to root)."""

    def cli_url(self, key: str) -> str:
        return f"{self.cli_base}{quote(key)}{self.cli_query}"

    def path(self, key: str) -> str:
        return self.key_prefix + key


class Services:
    """Start servers on demand; stop them all at the end."""

    def __init__(self) -> None:
        self._stack = contextlib.ExitStack()
        self._endpoints: dict[str, Endpoint] = {}
        self.pids: dict[str, int] = {}

    def __enter__(self) -> Services:
        return self

    def __exit__(self, *exc: object) -> None:
        self._stack.close()

    def get(self, service: str) -> Endpoint:
        if service not in self._endpoints:
            started = time.perf_counter()
            self._endpoints[service] = getattr(self, f"_start_{service}")()
            print(f"  {service}: ready in {time.perf_counter() - started:.1f} s", flush=True)
        return self._endpoints[service]

    def _start_fs(self) -> Endpoint:
        root = Path(tempfile.mkdtemp(prefix="storager-transfer-fs-"))
        self._stack.callback(_rmtree, root)
        return Endpoint("fs", f"fs://{root}", f"fs://{quote(str(root))}/", "")

    def _start_s3(self) -> Endpoint:
        import boto3

        from tests.servers.seaweedfs import start_seaweedfs

        server = start_seaweedfs()
        self._stack.callback(server.stop)
        self.pids["s3 (SeaweedFS)"] = server.pid
        bucket = f"storager-transfer-{secrets.token_hex(4)}"
        boto3.client(
            "s3",
            endpoint_url=server.endpoint,
            aws_access_key_id=server.access_key,
            aws_secret_access_key=server.secret_key,
            region_name=server.region,
        ).create_bucket(Bucket=bucket)
        credential = quote(f"hmac:{server.access_key}:{server.secret_key}", safe="")
        query = f"?endpoint={server.endpoint}&location=us-east-1&credential={credential}"
        return Endpoint("s3", f"s3://{bucket}/{query}", f"s3://{bucket}/", query)

    def _start_gcs(self) -> Endpoint:
        from tests.servers.gcs import start_gcs

        server = start_gcs()
        self._stack.callback(server.stop)
        self.pids["gcs (gcp-storage-emulator)"] = server.pid
        bucket = f"storager-transfer-{secrets.token_hex(4)}"
        base = f"{server.endpoint}/storage/v1/b"
        _json_request("POST", f"{base}?project={server.project}", {"name": bucket})
        # As the gcs tests do: no soft delete, so overwrites do not pile up in the emulator.
        _json_request(
            "PATCH", f"{base}/{bucket}", {"softDeletePolicy": {"retentionDurationSeconds": "0"}}
        )
        query = f"?endpoint={server.endpoint}&credential=token:anon"
        return Endpoint("gcs", f"gcs://{bucket}/{query}", f"gcs://{bucket}/", query)

    def _start_azblob(self) -> Endpoint:
        from azure.storage.blob import BlobServiceClient

        from tests.servers.azurite import start_azurite

        server = start_azurite()
        self._stack.callback(server.stop)
        self.pids["azblob (Azurite)"] = server.pid
        container = f"storager-transfer-{secrets.token_hex(4)}"
        with BlobServiceClient.from_connection_string(server.connection_string) as client:
            client.create_container(container)
        credential = quote(f"shared_key:{server.account_name}:{server.account_key}", safe="")
        query = f"?endpoint={server.endpoint}&credential={credential}"
        return Endpoint("azblob", f"azblob://{container}/{query}", f"azblob://{container}/", query)

    def _start_sftp(self) -> Endpoint:
        from tests.servers.sshd import start_sshd

        server = start_sshd()
        self._stack.callback(server.stop)
        self.pids["sftp (sshd)"] = server.pid
        query = (
            f"?private_key={quote(str(server.client_key_path), safe='/')}"
            f"&known_hosts={quote(str(server.known_hosts_path), safe='/')}"
        )
        netloc = f"{server.username}@{server.host}:{server.port}"
        root = quote(str(server.root_dir))
        return Endpoint("sftp", f"sftp://{netloc}{root}{query}", f"sftp://{netloc}{root}/", query)


def _rmtree(path: Path) -> None:
    import shutil

    shutil.rmtree(path, ignore_errors=True)


def _json_request(method: str, url: str, body: dict[str, Any]) -> dict[str, Any]:
    request = urllib.request.Request(
        url,
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
        method=method,
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        result: dict[str, Any] = json.load(response)
    return result


# -- the benchmark ------------------------------------------------------------------------


@dataclass
class Row:
    source: str
    destination: str
    mode: str
    size_mib: int
    seconds: float
    mb_per_s: float
    peak_rss_mib: float
    verified: bool
    note: str = ""
    samples: list[tuple[float, float]] = field(default_factory=list)

    @property
    def meets(self) -> bool:
        return self.peak_rss_mib < TARGET_MIB


@dataclass
class Held:
    """An object a service holds: its key, size and sha256."""

    key: str
    size: int
    sha256: str


def fill(services: Services, service: str, size: int, held: dict[str, Held]) -> Held:
    """Make sure ``service`` holds a ``size``-byte object; return it."""
    have = held.get(service)
    if have is not None and have.size == size:
        return have
    ep = services.get(service)
    key = f"transfer-memory/{size // MiB}MiB-{secrets.token_hex(3)}.bin"
    print(f"  fill {service}: {size // MiB} MiB ...", flush=True)
    run = checked(
        measure([PYTHON, "-c", FILL, ep.store_url, ep.path(key), str(size), SEED.hex()]),
        f"fill {service}",
    )
    written = run.json()
    print(
        f"    wrote in {run.seconds:.1f} s ({size / run.seconds / 1e6:.0f} MB/s), "
        f"writer peak RSS {run.peak_rss_mib:.0f} MiB",
        flush=True,
    )
    got = read_back(ep, key, "source")
    if got["sha256"] != written["sha256"] or got["length"] != size:
        raise RuntimeError(f"fill {service}: read back {got} != written {written}")
    held[service] = Held(key, size, written["sha256"])
    return held[service]


def read_back(ep: Endpoint, key: str, role: str) -> dict[str, Any]:
    run = checked(measure([PYTHON, "-c", HASH, ep.store_url, ep.path(key)]), f"hash {role}")
    got = run.json()
    print(
        f"    sha256 of {role} ({ep.service}) in {run.seconds:.1f} s, "
        f"reader peak RSS {run.peak_rss_mib:.0f} MiB",
        flush=True,
    )
    return got


def copy_argv(mode: str, src: Endpoint, dst: Endpoint, src_key: str, dst_key: str) -> list[str]:
    if mode == "cli":
        return [
            PYTHON,
            "-m",
            "storager",
            "cp",
            "--no-progress",
            src.cli_url(src_key),
            dst.cli_url(dst_key),
        ]
    return [PYTHON, "-c", COPY, src.store_url, src.path(src_key), dst.store_url, dst.path(dst_key)]


def run_pair(
    services: Services,
    source: str,
    destination: str,
    mode: str,
    size: int,
    held: dict[str, Held],
    *,
    note: str,
    profile: bool,
) -> Row:
    src_obj = fill(services, source, size, held)
    src, dst = services.get(source), services.get(destination)
    dst_key = f"transfer-memory/{size // MiB}MiB-from-{source}-{mode}.bin"
    print(f"  copy {source} -> {destination} ({mode}, {size // MiB} MiB) ...", flush=True)
    run = checked(
        measure(copy_argv(mode, src, dst, src_obj.key, dst_key)), f"{source}->{destination}"
    )
    print(
        f"    {run.seconds:.1f} s, {size / run.seconds / 1e6:.0f} MB/s, "
        f"peak RSS {run.peak_rss_mib:.0f} MiB",
        flush=True,
    )
    got = read_back(dst, dst_key, "destination")
    verified = got["sha256"] == src_obj.sha256 and got["length"] == size and got["read"] == size
    row = Row(
        source,
        destination,
        mode,
        size // MiB,
        run.seconds,
        size / run.seconds / 1e6,
        run.peak_rss_mib,
        verified,
        note,
        run.samples,
    )
    print(f"    verified={verified}", flush=True)
    if verified:
        held[destination] = Held(dst_key, size, src_obj.sha256)
    if profile and not row.meets:
        print("    profiling with tracemalloc ...", flush=True)
        prof = measure(
            [
                *(PYTHON, "-c", PROFILE, src.store_url, src.path(src_obj.key)),
                *(dst.store_url, dst.path(dst_key + ".profile")),
            ]
        )
        print(prof.stdout + prof.stderr[-2000:], flush=True)
    return row


def idle_baseline(services: Services, source: str, destination: str, key: str) -> float:
    src, dst = services.get(source), services.get(destination)
    run = checked(
        measure([PYTHON, "-c", IDLE, src.store_url, dst.store_url, src.path(key)]), "idle"
    )
    return run.peak_rss_mib


def table(rows: list[Row]) -> str:
    lines = [
        "| source | destination | way | size (MiB) | seconds | MB/s | client peak RSS (MiB) "
        "| < 256 MiB? | verified |",
        "|---|---|---|---:|---:|---:|---:|---|---|",
    ]
    for r in rows:
        size = f"{r.size_mib}" + (f" ({r.note})" if r.note else "")
        lines.append(
            f"| {r.source} | {r.destination} | {r.mode} | {size} | {r.seconds:.1f} "
            f"| {r.mb_per_s:.0f} | {r.peak_rss_mib:.0f} | {'yes' if r.meets else '**no**'} "
            f"| {'sha256 + length' if r.verified else '**MISMATCH**'} |"
        )
    return "\n".join(lines)


def parse_pairs(text: str) -> list[tuple[str, str]]:
    pairs = []
    for item in text.split(","):
        source, sep, destination = item.strip().partition(":")
        if not sep or source not in SERVICES or destination not in SERVICES:
            raise SystemExit(f"bad pair {item!r}: use SRC:DST with services from {SERVICES}")
        pairs.append((source, destination))
    return pairs


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size-mib", type=int, default=1024)
    parser.add_argument("--pairs", default=RING, help=f"SRC:DST,... (default {RING})")
    parser.add_argument("--modes", default="cli,lib", help="cli, lib or cli,lib")
    parser.add_argument(
        "--cap",
        action="append",
        default=[],
        metavar="SERVICE=MIB",
        help="largest size for a service whose emulator cannot take --size-mib",
    )
    parser.add_argument("--profile", action="store_true", help="tracemalloc rows that miss")
    parser.add_argument("--json", type=Path, help="write rows and RSS samples here")
    args = parser.parse_args(argv)
    pairs = parse_pairs(args.pairs)
    modes = [m.strip() for m in args.modes.split(",")]
    if any(m not in ("cli", "lib") for m in modes):
        raise SystemExit("--modes takes cli, lib or cli,lib")
    caps = {}
    for cap in args.cap:
        service, _, mib = cap.partition("=")
        caps[service] = int(mib)

    load_before = os.getloadavg()
    print(
        f"python {platform.python_version()}, {os.cpu_count()} cores, "
        f"load {load_before[0]:.2f} {load_before[1]:.2f} {load_before[2]:.2f}, "
        f"{psutil.virtual_memory().available / MiB / 1024:.1f} GiB available",
        flush=True,
    )
    loads: list[float] = []
    stop_load = threading.Event()

    def sample_load() -> None:
        while not stop_load.wait(5.0):
            loads.append(os.getloadavg()[0])

    threading.Thread(target=sample_load, daemon=True).start()
    rows: list[Row] = []
    idle: dict[str, float] = {}
    started = time.perf_counter()
    held: dict[str, Held] = {}
    with Services() as services:
        for source, destination in pairs:
            mib = min(args.size_mib, caps.get(source, 1 << 30), caps.get(destination, 1 << 30))
            note = ""
            if mib < args.size_mib:
                capped = [s for s in (source, destination) if caps.get(s, 1 << 30) < args.size_mib]
                note = f"capped: {', '.join(capped)}"
            for mode in modes:
                rows.append(
                    run_pair(
                        services,
                        source,
                        destination,
                        mode,
                        mib * MiB,
                        held,
                        note=note,
                        profile=args.profile,
                    )
                )
            idle[f"{source}->{destination}"] = idle_baseline(
                services, source, destination, held[source].key
            )
        pids = dict(services.pids)
    load_after = os.getloadavg()
    stop_load.set()
    loads = loads or [load_after[0]]
    elapsed = time.perf_counter() - started
    print()
    print(table(rows))
    print()
    print(
        "idle client (import storager, open both stores, one stat), peak RSS MiB: "
        + ", ".join(f"{k} {v:.0f}" for k, v in idle.items())
    )
    print(
        f"1-min load average: before {load_before[0]:.2f}, during min {min(loads):.2f} "
        f"mean {sum(loads) / len(loads):.2f} max {max(loads):.2f}, after {load_after[0]:.2f}; "
        f"whole run {elapsed / 60:.1f} min; servers: {', '.join(pids)}"
    )
    if args.json:
        payload = {
            "rows": [asdict(r) for r in rows],
            "idle_rss_mib": idle,
            "load_before": load_before,
            "load_after": load_after,
            "load_samples": loads,
            "elapsed_s": elapsed,
        }
        args.json.write_text(json.dumps(payload, indent=1))
    ok = all(r.meets and r.verified for r in rows)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
