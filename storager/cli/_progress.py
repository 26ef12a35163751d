"""The progress display of cp, sync and mv: live on a terminal, one line per object elsewhere.

The transfer workers only add numbers under a lock; they never write to the terminal.

* Live (stderr is a terminal and ``rich`` is installed, the ``cli`` extra): rich redraws a
  small block ten times a second from its own thread: a bar, bytes and objects done of
  those planned so far, the rate, the ETA, and the objects moving now with their bytes.
* Lines (``--progress`` into a file or pipe, or no ``rich``): each finished object is one
  line, ``name: done/size bytes (pct%)``.
"""

from __future__ import annotations

import threading
import time
from types import TracebackType
from typing import TYPE_CHECKING, Any, TextIO

if TYPE_CHECKING:
    from rich.console import RenderableType
    from rich.live import Live

__all__ = ["TransferDisplay", "human_bytes", "human_seconds", "rich_installed"]

#: How many objects in flight the live block lists.
SHOWN_FILES = 4


def human_bytes(n: float) -> str:
    """Return ``n`` bytes as ``512 B``, ``4.0 KiB``, ``1.5 GiB``..."""
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    raise AssertionError("unreachable")


def human_seconds(seconds: float) -> str:
    """Return a duration as ``42s``, ``3m05s`` or ``2h01m``."""
    s = int(seconds + 0.5)
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s // 3600}h{s % 3600 // 60:02d}m"


def rich_installed() -> bool:
    """Return whether ``rich`` (the ``cli`` extra) can be imported."""
    try:
        import rich  # noqa: F401
    except ImportError:
        return False
    return True


class TransferDisplay:
    """Count planned and finished objects and bytes, and show them on ``stream``.

    Thread-safe: the transfer workers call :meth:`begin`, :meth:`advance` and :meth:`end`
    from their threads. Use it as a context manager: the live block starts on enter and
    is drawn a last time on exit.

    Args:
        stream: Where to draw (stderr).
        live: Redraw a block in place (a terminal); else one line per finished object.
    """

    def __init__(self, stream: TextIO, *, live: bool) -> None:
        self._stream = stream
        self._live_wanted = live and rich_installed()
        self._lock = threading.Lock()
        self._planned_objects = 0
        self._planned_bytes = 0
        self._done_objects = 0
        self._failed_objects = 0
        self._done_bytes = 0
        self._current: dict[int, tuple[str, int, int | None]] = {}
        self._started = time.monotonic()
        self._live: Live | None = None

    @property
    def live(self) -> bool:
        """Whether the block is redrawn in place."""
        return self._live_wanted

    def __enter__(self) -> TransferDisplay:
        self._started = time.monotonic()
        if self._live_wanted:
            from rich.console import Console
            from rich.live import Live

            console = Console(file=self._stream, force_terminal=True)
            self._live = Live(
                get_renderable=self._render,
                console=console,
                refresh_per_second=10,
                transient=False,
                redirect_stdout=False,
                redirect_stderr=False,
            )
            self._live.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        live, self._live = self._live, None
        if live is not None:
            live.stop()  # draws the final state and leaves it on screen

    # -- counting (any thread) ------------------------------------------------------------

    def plan(self, size: int | None) -> None:
        """Count one more object to transfer, of ``size`` bytes if known."""
        with self._lock:
            self._planned_objects += 1
            self._planned_bytes += size or 0

    def begin(self, name: str, size: int | None) -> int:
        """Show ``name`` as moving; return the token :meth:`advance` and :meth:`end` take."""
        token = threading.get_ident()
        with self._lock:
            self._current[token] = (name, 0, size)
        return token

    def advance(self, token: int, n: int) -> None:
        """Count ``n`` more bytes of the object ``token``."""
        with self._lock:
            self._done_bytes += n
            name, done, size = self._current.get(token, ("", 0, None))
            self._current[token] = (name, done + n, size)

    def end(self, token: int, *, ok: bool, counted_bytes: int = 0) -> None:
        """Finish the object ``token``; ``counted_bytes`` adds bytes no callback reported."""
        with self._lock:
            name, done, size = self._current.pop(token, ("", 0, None))
            self._done_bytes += counted_bytes
            self._done_objects += 1
            if not ok:
                self._failed_objects += 1
                if size:  # a failed object will not finish: stop expecting its bytes
                    self._planned_bytes -= max(size - done - counted_bytes, 0)
        if not self._live_wanted and ok:
            total = done + counted_bytes
            if size:
                line = f"{name}: {total}/{size} bytes ({100 * total // size}%)\n"
            else:
                line = f"{name}: {total} bytes\n"
            self._stream.write(line)
            self._stream.flush()

    # -- drawing (rich's refresh thread) ---------------------------------------------------

    def summary(self) -> str:
        """Return the summary line: bytes, objects, rate, ETA."""
        elapsed = max(time.monotonic() - self._started, 1e-6)
        with self._lock:
            done_b, plan_b = self._done_bytes, self._planned_bytes
            done_o, plan_o = self._done_objects, self._planned_objects
            failed = self._failed_objects
        rate = done_b / elapsed
        eta = human_seconds((plan_b - done_b) / rate) if rate > 0 and plan_b > done_b else "-"
        line = (
            f"{human_bytes(done_b)} / {human_bytes(plan_b)}  {done_o}/{plan_o} objects  "
            f"{human_bytes(rate)}/s  ETA {eta}"
        )
        return line + (f"  {failed} failed" if failed else "")

    def _render(self) -> RenderableType:
        from rich.console import Group
        from rich.progress_bar import ProgressBar
        from rich.table import Table
        from rich.text import Text

        with self._lock:
            done_b, plan_b = self._done_bytes, self._planned_bytes
            current = list(self._current.values())[:SHOWN_FILES]
        head = Table.grid(padding=(0, 1))
        head.add_row(
            ProgressBar(total=max(plan_b, 1), completed=min(done_b, plan_b), width=30),
            Text(self.summary(), no_wrap=True, overflow="ellipsis"),
        )
        lines: list[Any] = [head]
        for name, done, size in current:
            of = f" / {human_bytes(size)}" if size else ""
            lines.append(
                Text(f"  {name}  {human_bytes(done)}{of}", no_wrap=True, overflow="ellipsis")
            )
        return Group(*lines)
