"""The caller's buffer lent to pool threads (``_fragments.Lease``): once ``revoke``
returns, no thread of ours uses the buffer, whatever interrupts the caller."""

from __future__ import annotations

import signal
import threading
import time
from typing import ClassVar

import pytest

from storager.combinators.striped._fragments import Lease, Revoked

#: Long enough for a revoke that does not wait to return first; short for a test.
SETTLE = 0.2


def _use_until(lease: Lease, release: threading.Event, log: list[str]) -> threading.Thread:
    """Start a thread that holds ``lease`` until ``release`` is set, logging when it ends."""
    entered = threading.Event()

    def use() -> None:
        with lease.hold():
            entered.set()
            release.wait(30)
            log.append("use ended")

    thread = threading.Thread(target=use, daemon=True)
    thread.start()
    assert entered.wait(30)
    return thread


def _revoke_later(lease: Lease, log: list[str]) -> threading.Thread:
    def revoke() -> None:
        lease.revoke()
        log.append("revoked")

    thread = threading.Thread(target=revoke, daemon=True)
    thread.start()
    return thread


def test_revoke_waits_out_a_use_in_progress_then_refuses_more() -> None:
    lease, release, log = Lease(), threading.Event(), list[str]()
    user = _use_until(lease, release, log)
    revoker = _revoke_later(lease, log)
    time.sleep(SETTLE)
    assert log == []  # still waiting for the use in progress
    with pytest.raises(Revoked), lease.hold():  # a new use is refused meanwhile
        pass
    release.set()
    revoker.join(30)
    user.join(30)
    assert log == ["use ended", "revoked"]
    with pytest.raises(Revoked), lease.hold():
        pass


def test_revoke_waits_for_every_thread_using_the_buffer() -> None:
    lease, log = Lease(), list[str]()
    releases = [threading.Event(), threading.Event()]
    users = [_use_until(lease, release, log) for release in releases]
    revoker = _revoke_later(lease, log)
    releases[0].set()
    users[0].join(30)
    time.sleep(SETTLE)
    assert log == ["use ended"]  # one use still in progress
    releases[1].set()
    revoker.join(30)
    assert log == ["use ended", "use ended", "revoked"]
    assert not users[1].is_alive()


def _revoked_in_time(lease: Lease) -> bool:
    """Revoke ``lease`` on a thread of its own; return whether that returned (bounded)."""
    log: list[str] = []
    _revoke_later(lease, log).join(30)
    return log == ["revoked"]


def test_uses_one_after_another_and_a_revoke_with_none_in_progress() -> None:
    lease = Lease()
    for _ in range(3):  # the same lease, held again and again
        with lease.hold():
            pass
    assert _revoked_in_time(lease)  # nothing in progress: returns at once
    assert _revoked_in_time(lease)  # and again
    with pytest.raises(Revoked), lease.hold():
        pass


def test_a_use_that_raises_still_ends() -> None:
    lease = Lease()
    with pytest.raises(ValueError), lease.hold():
        raise ValueError("the read failed")
    assert _revoked_in_time(lease)


def test_an_interrupt_while_revoking_is_raised_once_no_thread_uses_the_buffer() -> None:
    lease, release, log = Lease(), threading.Event(), list[str]()
    user = _use_until(lease, release, log)
    main = threading.get_ident()
    revoking = threading.Event()
    returned = threading.Event()

    def on_sigint(signum: int, frame: object) -> None:
        if not revoking.is_set():  # too late: revoke returned before the signal came
            log.append("signal after revoke")
            return
        raise KeyboardInterrupt

    def interrupt_then_release() -> None:
        # Signal only once revoke waits for the use (it made its event to wait on).
        deadline = time.monotonic() + 30
        while lease._drained is None and time.monotonic() < deadline:
            if returned.wait(0.001):
                return  # revoke returned without waiting: nothing to interrupt
        time.sleep(SETTLE)
        if returned.is_set():
            return
        signal.pthread_kill(main, signal.SIGINT)
        time.sleep(SETTLE)
        log.append("releasing")
        release.set()
        if not returned.wait(10):  # a watchdog: a revoke that never returns fails here
            log.append("revoke stuck")
            if lease._drained is not None:
                lease._drained.set()

    previous = signal.signal(signal.SIGINT, on_sigint)
    helper = threading.Thread(target=interrupt_then_release, daemon=True)
    at_raise: list[str] | None = None
    try:
        revoking.set()
        helper.start()
        try:
            lease.revoke()
        except KeyboardInterrupt:
            at_raise = list(log)
    except KeyboardInterrupt:  # anywhere else in this block: a failure, not an abort
        at_raise = ["interrupted outside revoke"]
    finally:
        revoking.clear()
        returned.set()
        helper.join(30)  # its signal is handled here, whatever happened
        signal.signal(signal.SIGINT, previous)
    # Raised, and only after the use ended, not when the signal came.
    assert at_raise == ["releasing", "use ended"]
    assert "revoke stuck" not in log
    user.join(30)
    with pytest.raises(Revoked), lease.hold():
        pass


class _Tracked(Lease):
    """A lease that counts its uses after ``read()`` raised (``LATE``)."""

    __slots__ = ()
    entered: ClassVar[set[int]] = set()
    state: ClassVar[dict[str, int]] = {}

    def __enter__(self) -> None:
        _Tracked.entered.add(id(self))
        super().__enter__()
        if _Tracked.state.get("done"):
            _Tracked.state["late"] = _Tracked.state.get("late", 0) + 1


def _interrupted_read(monkeypatch: pytest.MonkeyPatch, lease: type[Lease]) -> dict[str, int]:
    """Read 16 MiB over slow backends with the caller's own first read interrupted;
    return ``_Tracked.state`` one second after ``read()`` raised."""
    from storager.combinators.striped import ReedSolomon, Striped, _in_place
    from storager.services.memory import MemoryStorage
    from storager.testing import FaultyStorager

    _Tracked.entered.clear()
    _Tracked.state.clear()
    monkeypatch.setattr(_in_place, "Lease", lease)
    mib = 1 << 20
    backends = {f"b{i}": FaultyStorager(MemoryStorage()) for i in range(6)}
    store = Striped(
        backends,
        codec=ReedSolomon(4, 2),
        manifests=MemoryStorage(),
        chunk_size=mib,
        hedge_after=None,
        io_workers=2,
    )
    try:
        data = bytes(range(256)) * (64 * 1024)  # 16 MiB: four stripes
        store.write("obj", data)
        for backend in backends.values():  # reads queue behind slow ones
            backend.latency = {"open_reader": 0.05}
        # The first interrupt: the caller's own read of the first stripe is cut.
        first = store._load("read", "obj", store._key("read", "obj")).stripes[0].fragments[0]
        assert first is not None
        backends[first.backend].fail = {"open_reader": KeyboardInterrupt}
        _Tracked.state["armed"] = 1
        with pytest.raises(KeyboardInterrupt):
            store.read("obj")
        _Tracked.state["armed"] = 0  # what interrupts, interrupts that read only
        _Tracked.state["done"] = 1
        time.sleep(1.0)  # reads still lent, if any, run now
        seen = dict(_Tracked.state)
        _Tracked.state["done"] = 0  # the read below is not late
        for backend in backends.values():
            backend.latency = None
            backend.fail = {}
        try:
            assert store.read("obj") == data  # the process is whole and reads true bytes
        except KeyboardInterrupt as exc:  # never into pytest: that would end the run
            pytest.fail(f"a second read was interrupted: {exc!r}")
        return seen
    finally:
        store.close()


def test_a_revoke_a_second_interrupt_cuts_short_is_made_again(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    class CutOnce(_Tracked):
        __slots__ = ()

        def revoke(self) -> None:
            state = _Tracked.state
            state["revokes"] = state.get("revokes", 0) + 1
            # Not the first (the caller's own read, which never runs later), and once.
            queued = state["revokes"] > 1 and id(self) not in _Tracked.entered
            if queued and state.get("armed") and not state.get("cut"):
                state["cut"] = 1  # a second Ctrl-C on revoke's first line
                raise KeyboardInterrupt("second interrupt")
            super().revoke()

    state = _interrupted_read(monkeypatch, CutOnce)
    assert state.get("cut") == 1
    assert state.get("late", 0) == 0  # taken back on the retry: nothing ran late
