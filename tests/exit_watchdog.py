"""A watchdog for the test process's own exit.

Every test can pass and the process still never exit: a thread the interpreter must join
(a ``ThreadPoolExecutor`` worker, any non-daemon thread) blocked forever, or an exit-time
finalizer waiting on an event loop that no longer runs. CI then sits until its time limit
and prints nothing useful. This plugin makes that failure short and explained instead:

- at the end of the session it lists the non-daemon threads still running something
  (idle pool workers are fine: the interpreter wakes and joins them), with their stacks;
- from the moment pytest unconfigures, a daemon timer gives the interpreter
  ``EXIT_GRACE`` seconds to exit; past that it writes every thread's stack to stderr and
  ends the process with status 3, a failure that names where it hung.
"""

from __future__ import annotations

import faulthandler
import os
import sys
import threading
import traceback

import pytest

EXIT_GRACE = 90.0
HUNG_AT_EXIT = 3


def _busy_threads() -> list[tuple[threading.Thread, str]]:
    frames = sys._current_frames()
    busy = []
    for thread in threading.enumerate():
        if thread.daemon or thread is threading.main_thread() or thread.ident is None:
            continue
        frame = frames.get(thread.ident)
        if frame is None:
            continue
        stack = traceback.extract_stack(frame)
        # An idle executor worker waits in its own loop (the queue's get is C code); the
        # interpreter wakes and joins it at exit.
        innermost = stack[-1] if stack else None
        if innermost and (innermost.name, os.path.basename(innermost.filename)) == (
            "_worker",
            "thread.py",
        ):
            continue
        busy.append((thread, "".join(traceback.format_list(stack))))
    return busy


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    busy = _busy_threads()
    if not busy:
        return
    terminalreporter.section("threads still running at the end of the session")
    for thread, stack in busy:
        terminalreporter.write_line(f"{thread.name} (non-daemon):")
        terminalreporter.write_line(stack)


def pytest_unconfigure(config: pytest.Config) -> None:
    def expire() -> None:
        sys.stderr.write(
            f"\nexit_watchdog: the test process did not exit within {EXIT_GRACE:.0f} s "
            "after the session ended; every thread's stack follows.\n"
        )
        faulthandler.dump_traceback(file=sys.stderr, all_threads=True)
        sys.stderr.flush()
        os._exit(HUNG_AT_EXIT)

    timer = threading.Timer(EXIT_GRACE, expire)
    timer.daemon = True
    timer.start()
