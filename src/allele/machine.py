"""Facts about the machine this process runs on, read the same way everywhere: CPUs, and
whether a process (named by pid and start time, since pids are reused) still runs."""

from __future__ import annotations

import os


def cpu_affinity() -> int | None:
    """How many CPUs this process may run on (its affinity mask), or None where the platform
    cannot say (not Linux)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return None


def usable_cpus() -> int:
    """The CPUs this process may use: its affinity mask where there is one, else the logical
    CPU count (at least 1). A container limited by a cpuset reports its share, not the host's."""
    return cpu_affinity() or os.cpu_count() or 1


def process_started(pid: int | None = None) -> float:
    """When process ``pid`` (default: this one) started, in epoch seconds; 0.0 when unknown."""
    try:
        import psutil

        return float(psutil.Process(pid).create_time())
    except Exception:  # psutil missing, restricted, or the process is gone
        return 0.0


def process_alive(pid: int, started: float) -> bool:
    """Whether process ``pid`` of this host, started at ``started`` (0: unknown), still runs
    (a zombie does not count; a pid reused by a process started later does not either)."""
    try:
        import psutil
    except ImportError:  # pragma: no cover - psutil is a core dependency
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True
    try:
        proc = psutil.Process(pid)
        if started and abs(proc.create_time() - started) > 1.0:
            return False  # the pid was reused by another process
        return bool(proc.status() != psutil.STATUS_ZOMBIE)
    except psutil.NoSuchProcess:
        return False
    except psutil.Error:
        return True
