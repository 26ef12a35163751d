"""Command-line peer benchmark: `storager` against rclone and aws-cli on one SeaweedFS.

Run from the repository root::

    python benchmarks/cli_peers.py                    # every row, median of 3 runs
    python benchmarks/cli_peers.py --quick            # 1 run, no 1 GiB and 10,000 rows
    python benchmarks/cli_peers.py --rows jobs        # storager cp -r at -j 1..64
    python benchmarks/cli_peers.py --json out.json

The script starts SeaweedFS itself (``tests/servers/seaweedfs.py``), creates a bucket,
writes the local trees once, and times each tool as a subprocess, wall clock from start
to exit (interpreter or binary start-up included, as a user waits for it):

- ``cp 1000x4KiB``: a tree of 1,000 files of 4 KiB from local disk to a fresh prefix
  (``storager cp -r``, ``rclone copy``, ``aws s3 cp --recursive``);
- ``sync 1000x4KiB``: the same tree to a fresh prefix by each tool's sync
  (``storager sync``, ``rclone sync``, ``aws s3 sync``);
- ``sync no change 1000`` / ``sync no change 10000``: the sync again, nothing changed;
  each tool re-syncs the prefix it synced itself (so each sees its own steady state);
- ``cp 1GiB``: one file of 1 GiB from local disk (``storager cp``, ``rclone copyto``,
  ``aws s3 cp``), deleted after each run;
- ``sync 1GiB``: a directory holding that one file, by each tool's sync;
- ``ls one object``: list one object (``storager ls``, ``rclone lsf``, ``aws s3 ls``):
  one request, so mostly each tool's start-up (``--rows startup``).

Tools run interleaved within each run, so load from elsewhere hits them alike; each row
is the median over the runs. Every tool uses its defaults (rclone: 4 transfers, 8
checkers, 5 MiB chunks x 4; aws-cli: 10 threads, 8 MiB parts; storager: -j 16), except
that rclone is told the server's region and endpoint, and all three get the same key.
SeaweedFS runs on the same machine, so tools and server share its cores.

Before timing, the storager package the ``storager`` script imports is byte-compiled
(``compileall``), as ``pip install`` does: a strict editable install ships no ``.pyc``,
and with ``PYTHONDONTWRITEBYTECODE`` set (as on the project's machines) every run would
otherwise compile some 40 modules from source, 0.1-0.2 s that no installed copy pays.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

BIN = Path(sys.executable).parent
TOOLS = ("storager", "rclone", "aws")


def _tool(name: str) -> str:
    found = BIN / name
    if found.exists():
        return str(found)
    on_path = shutil.which(name)
    if on_path is None:
        raise SystemExit(f"{name} not found next to {sys.executable} nor on PATH")
    return on_path


class Peers:
    """How each tool is called against one bucket on one server."""

    def __init__(self, endpoint: str, key: str, secret: str, bucket: str) -> None:
        self.endpoint, self.bucket = endpoint, bucket
        self.query = f"endpoint={endpoint}&location=us-east-1&credential=hmac:{key}:{secret}"
        self.env = {
            **os.environ,
            "AWS_ACCESS_KEY_ID": key,
            "AWS_SECRET_ACCESS_KEY": secret,
            "AWS_DEFAULT_REGION": "us-east-1",
            "RCLONE_CONFIG_SW_TYPE": "s3",
            "RCLONE_CONFIG_SW_PROVIDER": "SeaweedFS",
            "RCLONE_CONFIG_SW_ENDPOINT": endpoint,
            "RCLONE_CONFIG_SW_ACCESS_KEY_ID": key,
            "RCLONE_CONFIG_SW_SECRET_ACCESS_KEY": secret,
            "RCLONE_CONFIG_SW_REGION": "us-east-1",
        }
        self.storager, self.rclone, self.aws = _tool("storager"), _tool("rclone"), _tool("aws")

    def s3(self, prefix: str) -> str:
        return f"s3://{self.bucket}/{prefix}?{self.query}"

    def cp_tree(self, tool: str, src: Path, prefix: str, jobs: int | None = None) -> list[str]:
        if tool == "storager":
            extra = ["-j", str(jobs)] if jobs else []
            return [self.storager, "cp", "-r", *extra, f"{src}/", self.s3(prefix)]
        if tool == "rclone":
            return [self.rclone, "copy", str(src), f"sw:{self.bucket}/{prefix}"]
        return [
            self.aws,
            "--endpoint-url",
            self.endpoint,
            "s3",
            "cp",
            "--recursive",
            "--only-show-errors",
            str(src),
            f"s3://{self.bucket}/{prefix}",
        ]

    def sync_tree(self, tool: str, src: Path, prefix: str) -> list[str]:
        if tool == "storager":
            return [self.storager, "sync", f"{src}/", self.s3(prefix)]
        if tool == "rclone":
            return [self.rclone, "sync", str(src), f"sw:{self.bucket}/{prefix}"]
        return [
            self.aws,
            "--endpoint-url",
            self.endpoint,
            "s3",
            "sync",
            "--only-show-errors",
            str(src),
            f"s3://{self.bucket}/{prefix}",
        ]

    def cp_file(self, tool: str, src: Path, key: str) -> list[str]:
        if tool == "storager":
            return [self.storager, "cp", str(src), self.s3(key)]
        if tool == "rclone":
            return [self.rclone, "copyto", str(src), f"sw:{self.bucket}/{key}"]
        return [
            self.aws,
            "--endpoint-url",
            self.endpoint,
            "s3",
            "cp",
            "--only-show-errors",
            str(src),
            f"s3://{self.bucket}/{key}",
        ]

    def ls_one(self, tool: str, key: str) -> list[str]:
        if tool == "storager":
            return [self.storager, "ls", self.s3(key)]
        if tool == "rclone":
            return [self.rclone, "lsf", f"sw:{self.bucket}/{key}"]
        return [self.aws, "--endpoint-url", self.endpoint, "s3", "ls", f"s3://{self.bucket}/{key}"]

    def run(self, argv: list[str]) -> tuple[float, float]:
        """Run one command (it must succeed); return its wall-clock and CPU seconds."""
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        started = time.perf_counter()
        done = subprocess.run(argv, env=self.env, capture_output=True, text=True, check=False)
        seconds = time.perf_counter() - started
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        if done.returncode != 0:
            raise SystemExit(f"{argv[0]} failed ({done.returncode}): {done.stderr[-2000:]}")
        cpu = after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime
        return seconds, cpu


def _byte_compile_storager() -> None:
    """Write the .pyc files of the package the ``storager`` script imports, as pip does."""
    where = subprocess.run(
        [
            str(BIN / "python"),
            "-c",
            "import storager, os; print(os.path.dirname(storager.__file__))",
        ],
        cwd=tempfile.gettempdir(),
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    subprocess.run(
        [str(BIN / "python"), "-m", "compileall", "-q", where], check=True, capture_output=True
    )


def make_tree(root: Path, count: int, size: int) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    for i in range(count):
        (root / f"d{i % 10}" / f"f{i:05d}.bin").parent.mkdir(exist_ok=True)
        (root / f"d{i % 10}" / f"f{i:05d}.bin").write_bytes(os.urandom(size))
    # Older than any upload, so every sync sees the copies as up to date.
    past = time.time() - 3600
    for path in root.rglob("*.bin"):
        os.utime(path, (past, past))
    return root


def make_big(path: Path, size: int) -> Path:
    block = os.urandom(1 << 20)
    with path.open("wb") as fh:
        for _ in range(size >> 20):
            fh.write(block)
    return path


def delete_prefix(client: Any, bucket: str, prefix: str) -> None:
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        keys = [{"Key": o["Key"]} for o in page.get("Contents", [])]
        if keys:
            client.delete_objects(Bucket=bucket, Delete={"Objects": keys, "Quiet": True})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="1 run; skip the big rows")
    parser.add_argument(
        "--rows",
        default="startup,cp,sync,nochange,big,nochange10k,jobs",
        help="comma-separated: startup, cp, sync, nochange, big, nochange10k, jobs",
    )
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()
    rows = set(args.rows.split(","))
    runs = 1 if args.quick else args.runs
    if args.quick:
        rows -= {"big", "bigsync", "nochange10k"}

    import boto3

    from tests.servers.seaweedfs import start_seaweedfs

    _byte_compile_storager()
    server = start_seaweedfs()
    work = Path(tempfile.mkdtemp(prefix="storager-cli-bench-"))
    results: dict[str, dict[str, list[float]]] = {}
    cpu: dict[str, dict[str, list[float]]] = {}

    def record(row: str, tool: str, measured: tuple[float, float]) -> None:
        seconds, used = measured
        results.setdefault(row, {}).setdefault(tool, []).append(seconds)
        cpu.setdefault(row, {}).setdefault(tool, []).append(used)
        print(f"  {row:<24} {tool:<12} {seconds:8.3f} s  cpu {used:7.3f} s", flush=True)

    try:
        client = boto3.client(
            "s3",
            endpoint_url=server.endpoint,
            aws_access_key_id=server.access_key,
            aws_secret_access_key=server.secret_key,
            region_name=server.region,
        )
        bucket = f"cli-bench-{secrets.token_hex(3)}"
        client.create_bucket(Bucket=bucket)
        peers = Peers(server.endpoint, server.access_key, server.secret_key, bucket)
        small = make_tree(work / "small", 1000, 4096)
        client.put_object(Bucket=bucket, Key="one/object.bin", Body=b"x" * 4096)
        for run in range(runs):
            print(f"run {run + 1}/{runs}", flush=True)
            tag = secrets.token_hex(3)
            if "startup" in rows:
                for tool in TOOLS:
                    record("ls one object", tool, peers.run(peers.ls_one(tool, "one/object.bin")))
            if "jobs" in rows:
                for jobs in (1, 4, 8, 16, 32, 64):
                    prefix = f"jobs-{tag}-{jobs}/"
                    record(
                        f"cp -j {jobs}",
                        "storager",
                        peers.run(peers.cp_tree("storager", small, prefix, jobs)),
                    )
                    delete_prefix(client, bucket, prefix)
            for tool in TOOLS:
                if "cp" in rows:
                    prefix = f"cp-{tag}-{tool}/"
                    record("cp 1000x4KiB", tool, peers.run(peers.cp_tree(tool, small, prefix)))
                    delete_prefix(client, bucket, prefix)
                if rows & {"sync", "nochange"}:
                    prefix = f"sync-{tag}-{tool}/"
                    record("sync 1000x4KiB", tool, peers.run(peers.sync_tree(tool, small, prefix)))
                    if "nochange" in rows:
                        measured = peers.run(peers.sync_tree(tool, small, prefix))
                        record("sync no change 1000", tool, measured)
                    delete_prefix(client, bucket, prefix)
        if "nochange10k" in rows:
            large_tree = make_tree(work / "tenk", 10_000, 256)
            for tool in TOOLS:
                prefix = f"tenk-{tool}/"
                peers.run(peers.sync_tree(tool, large_tree, prefix))  # populate, untimed
            for _ in range(runs):
                for tool in TOOLS:
                    measured = peers.run(peers.sync_tree(tool, large_tree, f"tenk-{tool}/"))
                    record("sync no change 10000", tool, measured)
            for tool in TOOLS:
                delete_prefix(client, bucket, f"tenk-{tool}/")
            shutil.rmtree(large_tree)
        if rows & {"big", "bigsync"}:
            (work / "bigdir").mkdir()
            big = make_big(work / "bigdir" / "big.bin", 1 << 30)
            for _ in range(max(1, runs - 1)):
                for tool in TOOLS:
                    if "big" in rows:
                        key = f"big-{tool}.bin"
                        record("cp 1GiB", tool, peers.run(peers.cp_file(tool, big, key)))
                        client.delete_object(Bucket=bucket, Key=key)
                    if "bigsync" in rows:
                        prefix = f"bigsync-{tool}/"
                        measured = peers.run(peers.sync_tree(tool, big.parent, prefix))
                        record("sync 1GiB", tool, measured)
                        delete_prefix(client, bucket, prefix)
            big.unlink()
        client.close()
    finally:
        server.stop()
        shutil.rmtree(work, ignore_errors=True)

    print("\nwall clock, median")
    summary = _summarise(results)
    print("\nCPU (user + system of the tool's process tree), median")
    cpu_summary = _summarise(cpu)
    if args.json:
        args.json.write_text(
            json.dumps(
                {"wall": results, "cpu": cpu, "median": summary, "cpu_median": cpu_summary},
                indent=2,
            )
        )


def _summarise(results: dict[str, dict[str, list[float]]]) -> dict[str, dict[str, float]]:
    median: dict[str, dict[str, float]] = {}
    print(f"{'row':<24}" + "".join(f"{t:>12}" for t in TOOLS) + "   rclone/storager")
    for row, by_tool in results.items():
        median[row] = {tool: statistics.median(times) for tool, times in by_tool.items()}
        cells = "".join(
            f"{median[row][t]:>11.2f}s" if t in median[row] else f"{'':>12}" for t in TOOLS
        )
        ratio = ""
        if "rclone" in median[row]:
            ratio = f"   {median[row]['rclone'] / median[row]['storager']:.2f}x"
        print(f"{row:<24}{cells}{ratio}")
    return median


if __name__ == "__main__":
    main()
