"""One process per run: the runner holds its run's lease while it runs cells.

Two ``allele bench run --resume latest`` started at once used to run the same cells twice. Now
the runner takes the run's lease (a row in the store, :mod:`allele.store.leases`) before it runs
anything and gives it up when it stops; the second one finds a live holder and refuses in one
line naming it. A holder that is gone (``kill -9``, a crash, a reboot) does not block anyone:

* on this host, the holder is alive while its pid runs *and* started when the lease says (a
  reused pid does not count);
* on another host (a shared PostgreSQL store), the holder is alive while its heartbeat is
  younger than :data:`STALE_AFTER_S`; the runner refreshes it every :data:`HEARTBEAT_S` from a
  thread of its own, however long its cells take.

What the views show: a run stored ``running`` whose lease names a holder that is gone was
killed without a word; :func:`shown_status` calls it ``interrupted`` (what Ctrl-C records, and
what ``--resume`` continues), so ``bench list``, ``show``, ``report``, ``export``, the dashboards
and ``allele top`` stop calling it running. The store is not changed: a later ``--resume`` takes
the lease over as before. An A/B session holds the leases of its two runs (:class:`RunLeases`)
in the same way, so a killed session shows both halves ``interrupted`` too. A run with no lease
at all (recorded before leases) keeps its stored status.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time

from allele.errors import BenchmarkError
from allele.machine import process_alive, process_started
from allele.store.leases import Lease
from allele.store.model import RunInfo, RunRecord, RunStatus
from allele.store.results import ResultStore

_log = logging.getLogger("allele.bench")

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


def shown_status(store: ResultStore, info: RunInfo, now: float | None = None
                 ) -> tuple[RunStatus, bool]:
    """``(status to show, holder gone)`` of a stored run: ``interrupted`` and True for a run
    stored ``running`` whose lease holder is gone (see the module docstring), else its stored
    status and False."""
    if info.status != "running":
        return info.status, False
    lease = store.lease(info.id)
    if lease is None or holder_alive(lease, now):
        return "running", False
    return "interrupted", True


def with_shown_status(store: ResultStore, infos: list[RunInfo]) -> list[RunInfo]:
    """``infos`` with each status as :func:`shown_status` shows it."""
    from dataclasses import replace

    out = []
    for info in infos:
        status, _ = shown_status(store, info)
        out.append(info if status == info.status else replace(info, status=status))
    return out


def record_with_shown_status(store: ResultStore, record: RunRecord) -> RunRecord:
    """``record`` with its header's status as :func:`shown_status` shows it: ``bench show``,
    ``report`` and ``export`` call a run killed with -9 ``interrupted``, as ``bench list`` and
    the dashboards do, not ``running`` beside them."""
    from dataclasses import replace

    (info,) = with_shown_status(store, [record.info])
    return record if info is record.info else replace(record, info=info)


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
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

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
                self._start_beating()
                return
        assert seen is not None
        raise _busy(self.run_name, seen)

    def beat(self) -> None:
        """Refresh the heartbeat when :data:`HEARTBEAT_S` have passed since the last one."""
        if self.held and time.monotonic() - self._last_beat >= HEARTBEAT_S:
            self._last_beat = time.monotonic()
            self.store.touch_lease(self.run_id, self.me)

    def _start_beating(self) -> None:
        """Beat every :data:`HEARTBEAT_S` from a daemon thread while the lease is held: a cell
        that runs for an hour must not make a live runner look gone from another host."""
        self._stop.clear()
        self._thread = threading.Thread(target=self._beat_loop, name="allele-lease",
                                        daemon=True)
        self._thread.start()

    def _beat_loop(self) -> None:
        while not self._stop.wait(HEARTBEAT_S):
            try:
                self.beat()
            except Exception:  # the store is briefly unreachable: the next beat may pass
                _log.warning("could not refresh the lease of run %r", self.run_name,
                             exc_info=True)

    def release(self) -> None:
        """Give the lease up (it is ours only while this process runs the run)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None
        if self.held:
            self.held = False
            self.store.release_lease(self.run_id, self.me)


class RunLeases:
    """The leases of several runs taken together and given up together (the two halves of an
    A/B session); taking them raises :class:`RunBusyError` as :meth:`RunLease.acquire` does."""

    def __init__(self, store: ResultStore, runs: list[tuple[str, str]]) -> None:
        """``runs``: ``(run id, run name)`` pairs."""
        self.held: list[RunLease] = []
        try:
            for run_id, name in runs:
                lease = RunLease(store, run_id, name)
                lease.acquire()
                self.held.append(lease)
        except BaseException:
            self.release()
            raise

    def release(self) -> None:
        """Give every lease up."""
        for lease in self.held:
            lease.release()
        self.held = []
