"""One process per run: the runner holds its run's lease while it runs cells.

Two ``allele bench run --resume latest`` started at once used to run the same cells twice. Now
the runner takes the run's lease (a row in the store, :mod:`allele.store.leases`) before it runs
anything and gives it up when it stops; the second one finds a live holder and refuses in one
line naming it. A holder that is gone (``kill -9``, a crash, a reboot) does not block anyone:

* on this host, the holder is alive while its pid runs *and* started when the lease says (a
  reused pid does not count);
* on another host (a shared PostgreSQL store), the holder is alive while its heartbeat is
  younger than :data:`STALE_AFTER_S`; the runner refreshes it at least every
  :data:`HEARTBEAT_S` while cells are being committed.
"""

from __future__ import annotations

import os
import socket
import time

from allele.errors import BenchmarkError
from allele.machine import process_alive, process_started
from allele.store.leases import Lease
from allele.store.results import ResultStore

HEARTBEAT_S = 60.0
"""How often (at most) a runner refreshes its lease while it commits cells."""
STALE_AFTER_S = 900.0
"""A lease of another host whose heartbeat is older than this is taken over."""


class RunBusyError(BenchmarkError):
    """Another live process holds the run."""


def this_process() -> Lease:
    """The lease this process would hold."""
    return Lease(socket.gethostname(), os.getpid(), process_started())


def holder_alive(lease: Lease, now: float | None = None) -> bool:
    """Whether the process named by ``lease`` still runs (see the module docstring)."""
    if lease.host == socket.gethostname():
        return process_alive(lease.pid, lease.pid_started)
    return (now if now is not None else time.time()) - lease.heartbeat_at < STALE_AFTER_S


def _busy(run_name: str, lease: Lease) -> RunBusyError:
    since = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(lease.acquired_at))
    where = "" if lease.host == socket.gethostname() else f" on {lease.host}"
    return RunBusyError(f"run {run_name!r} is being run by process {lease.pid}{where} (since "
                        f"{since}); wait for it to end or stop it (kill {lease.pid}), then "
                        "resume")


class RunLease:
    """The runner's hold on one run: :meth:`acquire`, :meth:`beat` while it runs, then
    :meth:`release`."""

    def __init__(self, store: ResultStore, run_id: str, run_name: str) -> None:
        self.store = store
        self.run_id = run_id
        self.run_name = run_name
        self.me = this_process()
        self._last_beat = 0.0
        self.held = False

    def acquire(self) -> None:
        """Take the lease, or raise :class:`RunBusyError` naming the live holder."""
        seen = self.store.lease(self.run_id)
        for _ in range(3):
            if seen is not None and not self.me.same_holder(seen) and holder_alive(seen):
                raise _busy(self.run_name, seen)
            seen = self.store.swap_lease(self.run_id, self.me, seen)
            if seen is None:
                self.held = True
                self._last_beat = time.monotonic()
                return
        assert seen is not None
        raise _busy(self.run_name, seen)

    def beat(self) -> None:
        """Refresh the heartbeat when :data:`HEARTBEAT_S` have passed since the last one."""
        if self.held and time.monotonic() - self._last_beat >= HEARTBEAT_S:
            self._last_beat = time.monotonic()
            self.store.touch_lease(self.run_id, self.me)

    def release(self) -> None:
        """Give the lease up (it is ours only while this process runs the run)."""
        if self.held:
            self.held = False
            self.store.release_lease(self.run_id, self.me)
