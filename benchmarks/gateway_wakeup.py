"""What waking up costs the gateway: one signed HEAD handled by ``S3App`` in process, back
to back, after the thread slept, and after it busy-waited as long.

Run ``python benchmarks/gateway_wakeup.py`` (``--requests``, ``--rounds``, ``--pauses`` in
microseconds). It prints µs per request (the best and the median of the rounds) for each
pause; on the machines of benchmarks/README.md ("Session 9" under the S3 gateway) a
200 µs sleep before each request doubled its cost and a 200 µs busy wait did not, which is
why ``storager serve`` polls a while after each answer (``--busy-poll-us``).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from typing import Any

import storager
from storager._sigv4 import Credentials, sign_headers
from storager.gateway import S3App

AK, SK = "AKBENCHMARK", "bench-secret"
EMPTY = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"


def _scope(key: str) -> dict[str, Any]:
    """A HEAD as obstore sends it: its headers, in its order, signed."""
    headers = {"host": "127.0.0.1:9000", "accept": "*/*", "user-agent": "object_store/0.14"}
    sign_headers("HEAD", f"/bench/{key}", [], headers, EMPTY, Credentials(AK, SK), "us-east-1")
    order = ["x-amz-date", "x-amz-content-sha256", "authorization", "accept", "user-agent"]
    return {
        "type": "http",
        "method": "HEAD",
        "path": f"/bench/{key}",
        "raw_path": f"/bench/{key}".encode(),
        "query_string": b"",
        "headers": [(name.encode(), headers[name].encode()) for name in [*order, "host"]],
    }


async def _receive() -> dict[str, Any]:
    return {"type": "http.request", "body": b"", "more_body": False}


async def _send(message: Any) -> None:
    pass


def _pause(seconds: float, spin: bool) -> None:
    if not seconds:
        return
    if spin:
        until = time.perf_counter() + seconds
        while time.perf_counter() < until:
            pass
    else:
        time.sleep(seconds)


async def _round(app: S3App, count: int, pause: float, spin: bool) -> float:
    scopes = [_scope(f"small/{i % 100:06d}") for i in range(count)]
    for scope in scopes[:100]:  # warm up
        await app(scope, _receive, _send)
    spent = 0.0
    for scope in scopes:
        _pause(pause, spin)
        began = time.perf_counter()
        await app(scope, _receive, _send)
        spent += time.perf_counter() - began
    return spent / count * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--pauses", default="0,200,1000", help="microseconds, comma-separated")
    args = parser.parse_args()
    store = storager.open("memory://")
    for i in range(100):
        store.write(f"small/{i:06d}", b"x" * 4096)
    app = S3App({"bench": store}, credentials={AK: SK})
    print("| pause | how | µs per HEAD (best) | median |")
    print("|---|---|---|---|")
    for micros in (int(p) for p in args.pauses.split(",")):
        for spin in (False, True) if micros else (False,):
            rounds = [
                asyncio.run(_round(app, args.requests, micros / 1e6, spin))
                for _ in range(args.rounds)
            ]
            how = "busy wait" if spin else ("sleep" if micros else "back to back")
            print(f"| {micros} µs | {how} | {min(rounds):.1f} | {statistics.median(rounds):.1f} |")


if __name__ == "__main__":
    main()
