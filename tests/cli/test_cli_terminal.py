"""The live progress display, drawn on a real pseudo-terminal by a storager subprocess."""

from __future__ import annotations

import os
import pty
import re
import select
import subprocess
import sys
import time
from pathlib import Path

import pytest

ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")

pytest.importorskip("rich", reason="the cli extra (rich) draws the live display")


def run_on_terminal(argv: list[str], timeout: float = 60.0) -> tuple[int, str]:
    """Run ``python -m storager ARGV`` with stdout and stderr on a pty; return what it drew."""
    master, slave = pty.openpty()
    env = {**os.environ, "COLUMNS": "100", "LINES": "30", "TERM": "xterm-256color"}
    env.pop("NO_COLOR", None)
    proc = subprocess.Popen(
        [sys.executable, "-m", "storager", *argv],
        stdin=subprocess.DEVNULL,
        stdout=slave,
        stderr=slave,
        env=env,
        close_fds=True,
    )
    os.close(slave)
    drawn = bytearray()
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 0.2)
            if ready:
                try:
                    chunk = os.read(master, 65536)
                except OSError:  # the child closed its side (EIO on Linux)
                    break
                if not chunk:
                    break
                drawn += chunk
            elif proc.poll() is not None:
                break
        code = proc.wait(timeout=max(deadline - time.monotonic(), 1))
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)
        os.close(master)
    return code, drawn.decode("utf-8", "replace")


def test_cp_r_on_a_terminal_draws_a_live_block_with_bytes_objects_rate_and_eta(
    tmp_path: Path,
) -> None:
    src = tmp_path / "src"
    src.mkdir()
    for i in range(40):
        (src / f"f{i:02d}.bin").write_bytes(os.urandom(2048))
    code, drawn = run_on_terminal(
        ["cp", "-r", "-j", "4", str(src), f"fs://{tmp_path}/dst/?work_dir=/"]
    )
    assert code == 0, drawn
    assert len(list((tmp_path / "dst").iterdir())) == 40
    assert "\x1b[" in drawn  # redrawn in place with escape sequences, not appended lines
    text = ANSI.sub("", drawn)
    assert "40/40 objects" in text
    assert "80.0 KiB / 80.0 KiB" in text
    assert "/s" in text and "ETA" in text
    assert "━" in drawn  # the bar


def test_progress_is_off_on_a_terminal_with_no_progress_and_with_json(tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    (src / "a.bin").write_bytes(b"a" * 100)
    code, drawn = run_on_terminal(["cp", "-r", "--no-progress", str(src), str(tmp_path / "d1")])
    assert (code, drawn) == (0, "")
    code, drawn = run_on_terminal(["cp", "-r", "--json", str(src), str(tmp_path / "d2")])
    assert code == 0
    assert "objects" not in drawn and '"copied": 1' in drawn
