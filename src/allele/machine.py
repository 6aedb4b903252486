"""Facts about the machine this process runs on, read the same way everywhere."""

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
