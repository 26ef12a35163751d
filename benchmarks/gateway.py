"""The S3 gateway against other S3 servers: ``storager serve``, moto's server,
``rclone serve s3`` and SeaweedFS's S3 gateway, all on this machine, driven by the same
client (obstore) with the same object sizes.

Run ``python benchmarks/gateway.py`` (``--small N``, ``--big-mib``, ``--list``, ``--rss-gib``,
``--servers``, ``--rounds``). All servers run at once and take turns through the small rows,
round by round, each row keeping its best (the machine's load moves between rounds). Rows:

- 4 KiB PUT / GET / HEAD, sequential (ops/s), and the server's CPU time per request (µs,
  user + system of its processes: less moved by other load than the rates);
- 4 KiB PUT / GET / HEAD, 16 in flight (ops/s);
- list 10,000 keys (s);
- a 256 MiB PUT and GET (MB/s), three rounds (``--big-rounds``), the servers taking
  turns, each row keeping its best, and the first PUT on a row of its own (before the
  server has freed any memory it could reuse); the server's CPU per PUT (the lowest)
  and peak RSS (VmHWM, MiB);
- storager only: peak RSS while a 1 GiB object is uploaded to a gateway over a local
  directory (the bound that does not depend on the object's size).

storager, moto and rclone keep objects in memory (storager ``memory://``, moto's RAM,
rclone's ``:memory:`` backend); SeaweedFS (``weed mini``, its S3 gateway) keeps them on the
local disk, as it always does. Each server runs as its
own process, started here and stopped by its PID.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

MiB = 1 << 20
BIN = Path(sys.executable).parent
AK, SK = "AKBENCHMARK", "bench-secret"


def _port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Server:
    name: str
    pid: int
    port: int
    stopper: Callable[[], None]

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _tree(self) -> list[int]:
        """The server's process and its descendants (granian serves from a child)."""
        found, todo = [], [self.pid]
        while todo:
            pid = todo.pop()
            try:
                children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
            except FileNotFoundError:
                continue
            found.append(pid)
            todo += [int(child) for child in children]
        return found

    def peak_rss_mib(self) -> float:
        """The peak resident memory (VmHWM) so far, added up over the server's processes."""
        total = 0.0
        for pid in self._tree():
            text = Path(f"/proc/{pid}/status").read_text()
            line = next(x for x in text.splitlines() if x.startswith("VmHWM:"))
            total += int(line.split()[1]) / 1024
        return total

    def cpu_seconds(self) -> float:
        """CPU time (user + system) of the server's processes so far.

        Less moved by other load on a shared machine than wall-clock rates are.
        """
        tick = os.sysconf("SC_CLK_TCK")
        total = 0.0
        for pid in self._tree():
            stat = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(stat[11]) + int(stat[12])) / tick
        return total

    def stop(self) -> None:
        self.stopper()


def _stop_process(proc: subprocess.Popen[bytes]) -> Callable[[], None]:
    def stop() -> None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()

    return stop


def _seaweedfs() -> Server:
    root = str(Path(__file__).resolve().parents[1])
    if root not in sys.path:
        sys.path.insert(0, root)
    from tests.servers.seaweedfs import start_seaweedfs

    weed = start_seaweedfs()
    return Server("seaweedfs", weed.pid, int(weed.endpoint.rpartition(":")[2]), weed.stop)


def start(name: str, store: str = "memory://") -> Server:
    if name == "seaweedfs":
        server = _seaweedfs()
        _make_bucket(server)
        return server
    port = _port()
    commands = {
        "storager": [
            str(BIN / "storager"),
            "serve",
            store,
            "--bucket",
            "bench",
            "--credential",
            f"{AK}:{SK}",
            "--port",
            str(port),
            "--log-level",
            "warning",
        ],
        "moto": [str(BIN / "moto_server"), "-H", "127.0.0.1", "-p", str(port)],
        "rclone": [
            str(BIN / "rclone"),
            "serve",
            "s3",
            ":memory:",
            "--addr",
            f"127.0.0.1:{port}",
            "--auth-key",
            f"{AK},{SK}",
            "--config",
            "",
        ],
    }
    # storager served by granian instead of uvicorn (a column of its own, not a peer).
    commands["storager-granian"] = [*commands["storager"], "--server", "granian"]
    proc = subprocess.Popen(
        commands[name],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    deadline = time.monotonic() + 30
    while True:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2).close()
            break
        except urllib.error.HTTPError:
            break  # any HTTP answer: up
        except (urllib.error.URLError, ConnectionError):
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"{name} did not start") from None
            time.sleep(0.05)
    server = Server(name, proc.pid, port, _stop_process(proc))
    _make_bucket(server)
    return server


def _make_bucket(server: Server) -> None:
    import boto3

    boto3.client(
        "s3",
        endpoint_url=server.endpoint,
        aws_access_key_id=AK,
        aws_secret_access_key=SK,
        region_name="us-east-1",
    ).create_bucket(Bucket="bench")


def client(server: Server) -> Any:
    from obstore.store import S3Store

    return S3Store(
        "bench",
        endpoint=server.endpoint,
        access_key_id=AK,
        secret_access_key=SK,
        region="us-east-1",
        client_options={"allow_http": True, "timeout": "300s"},
    )


def rate(count: int, fn: Callable[[], object]) -> float:
    began = time.perf_counter()
    fn()
    return count / (time.perf_counter() - began)


def small_rows(server: Server, count: int) -> dict[str, float]:
    import obstore

    store = client(server)
    data = os.urandom(4096)
    keys = [f"small/{i:06d}" for i in range(count)]
    rows: dict[str, float] = {}
    sequential: dict[str, Callable[[str], object]] = {
        "PUT": lambda k: obstore.put(store, k, data),
        "GET": lambda k: obstore.get(store, k).bytes(),
        "HEAD": lambda k: obstore.head(store, k),
    }
    for op, call in sequential.items():
        cpu = server.cpu_seconds()
        rows[f"{op} 4 KiB seq (ops/s)"] = rate(count, lambda: [call(k) for k in keys])  # noqa: B023
        spent = server.cpu_seconds() - cpu
        rows[f"server CPU per {op} 4 KiB seq (µs)"] = spent / count * 1e6

    async def many(op: Callable[[str], Any]) -> None:
        gate = asyncio.Semaphore(16)

        async def one(key: str) -> None:
            async with gate:
                await op(key)

        await asyncio.gather(*(one(k) for k in keys))

    async def put(key: str) -> None:
        await obstore.put_async(store, key, data)

    async def get(key: str) -> None:
        await (await obstore.get_async(store, key)).bytes_async()

    async def head(key: str) -> None:
        await obstore.head_async(store, key)

    rows["PUT 4 KiB 16-way (ops/s)"] = rate(count, lambda: asyncio.run(many(put)))
    rows["GET 4 KiB 16-way (ops/s)"] = rate(count, lambda: asyncio.run(many(get)))
    rows["HEAD 4 KiB 16-way (ops/s)"] = rate(count, lambda: asyncio.run(many(head)))
    return rows


def list_row(server: Server, count: int) -> dict[str, float]:
    import obstore

    store = client(server)

    async def fill() -> None:
        gate = asyncio.Semaphore(32)

        async def one(i: int) -> None:
            async with gate:
                await obstore.put_async(store, f"list/{i:06d}", b"x")

        await asyncio.gather(*(one(i) for i in range(count)))

    asyncio.run(fill())
    began = time.perf_counter()
    found = sum(len(page) for page in obstore.list(store, "list/", chunk_size=1000))
    took = time.perf_counter() - began
    assert found == count, (found, count)
    return {f"list {count:,} keys (s)": took}


def big_rows(server: Server, size: int) -> dict[str, float]:
    import obstore

    store = client(server)
    data = os.urandom(size)
    cpu = server.cpu_seconds()
    began = time.perf_counter()
    obstore.put(store, "big.bin", data, use_multipart=True, chunk_size=16 * MiB)
    put = size / (time.perf_counter() - began) / 1e6
    put_cpu = server.cpu_seconds() - cpu
    began = time.perf_counter()
    got = 0
    for piece in obstore.get(store, "big.bin").stream(min_chunk_size=8 * MiB):
        got += len(piece)
    get = size / (time.perf_counter() - began) / 1e6
    assert got == size
    label = f"{size // MiB} MiB"
    return {
        f"PUT {label} (MB/s)": put,
        f"server CPU per {label} PUT (s)": put_cpu,
        f"GET {label} (MB/s)": get,
        f"server peak RSS after {label} PUT+GET (MiB)": server.peak_rss_mib(),
    }


def rss_of_a_big_upload(gib: float) -> dict[str, float]:
    """Peak RSS of a gateway over a local directory while one big object is uploaded."""
    import obstore

    folder = tempfile.mkdtemp(prefix="gateway-bench-")
    server = start("storager", folder)
    try:
        store = client(server)
        size = int(gib * 1024) * MiB
        piece = os.urandom(16 * MiB)

        writer = obstore.open_writer(store, "huge.bin", buffer_size=16 * MiB)
        with writer:
            for _ in range(size // len(piece)):
                writer.write(piece)
        return {
            f"storager peak RSS, {gib:g} GiB upload to a directory (MiB)": server.peak_rss_mib()
        }
    finally:
        server.stop()
        shutil.rmtree(folder, ignore_errors=True)


def _lower_is_better(row: str) -> bool:
    return "(s)" in row or "(µs)" in row or "RSS" in row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument(
        "--servers",
        default="storager,moto,rclone,seaweedfs",
        help="comma-separated; storager-granian is storager under granian (not a peer)",
    )
    parser.add_argument("--small", type=int, default=1000, help="4 KiB objects per row")
    parser.add_argument("--list", type=int, default=10000, help="keys to list")
    parser.add_argument("--big-mib", type=int, default=256)
    parser.add_argument("--rss-gib", type=float, default=1.0)
    parser.add_argument(
        "--big-rounds", type=int, default=3, help="rounds of the big rows; each keeps its best"
    )
    parser.add_argument(
        "--rounds",
        type=int,
        default=3,
        help="rounds of the small rows, the servers taking turns; each row keeps its best",
    )
    args = parser.parse_args()
    names = args.servers.split(",")
    servers: dict[str, Server] = {}
    results: dict[str, dict[str, float]] = {name: {} for name in names}
    try:
        for name in names:
            servers[name] = start(name)
        # The servers take turns round by round, so a burst of load on the shared machine
        # hits every server alike; the best of the rounds is kept.
        for _ in range(args.rounds):
            for name in names:
                for row, value in small_rows(servers[name], args.small).items():
                    best = min if _lower_is_better(row) else max
                    results[name][row] = best(results[name].get(row, value), value)
        for name in names:
            results[name] |= list_row(servers[name], args.list)
        # The big rows take turns the same way; each keeps its best, and the first PUT
        # (on a server that has freed nothing yet) is shown on its own row.
        for n in range(args.big_rounds):
            for name in names:
                for row, value in big_rows(servers[name], args.big_mib * MiB).items():
                    if n == 0 and row.startswith("PUT"):
                        results[name][row.replace("PUT", "first PUT")] = value
                    if "RSS" in row:  # a peak over the server's life: the last is the peak
                        results[name][row] = value
                        continue
                    best = min if _lower_is_better(row) else max
                    results[name][row] = best(results[name].get(row, value), value)
        print("done", file=sys.stderr, flush=True)
    finally:
        for server in servers.values():
            server.stop()
    peers = [n for n in names if not n.startswith("storager")]
    print("| row | " + " | ".join(names) + " | storager ÷ best peer |")
    print("|---" * (len(names) + 2) + "|")
    for row in results[names[0]]:
        values = [results[n][row] for n in names]
        peer_values = [results[n][row] for n in peers]
        lower_is_better = _lower_is_better(row)
        best_peer = (
            (min(peer_values) if lower_is_better else max(peer_values)) if peer_values else 0
        )
        ratio = (
            (best_peer / values[0] if lower_is_better else values[0] / best_peer)
            if best_peer and values[0]
            else float("nan")
        )
        cells = " | ".join(f"{v:,.1f}" if v >= 10 else f"{v:.3f}" for v in values)
        print(f"| {row} | {cells} | {ratio:.2f}x |")
    if "storager" in names and args.rss_gib > 0:
        for row, value in rss_of_a_big_upload(args.rss_gib).items():
            print(f"\n{row}: {value:,.0f}")


if __name__ == "__main__":
    main()
