"""The system sampler: process CPU, memory, threads, open files and GC runs, through psutil.

:class:`SystemSampler` takes one :class:`~allele.observe.metrics.SystemSample` per call; the
Telemetry's background thread calls it every ``sample_interval_s`` (settings
``observe.sample_interval_s``, 1 s by default), so sampling never runs on a component's thread.
"""

from __future__ import annotations

import gc
import os

import psutil

from allele.observe.metrics import SystemSample


class SystemSampler:
    """Samples one process (the current one by default)."""

    def __init__(self, pid: int | None = None) -> None:
        self._process = psutil.Process(pid if pid is not None else os.getpid())
        self._own = pid is None or pid == os.getpid()
        # The first cpu_percent(None) call only starts the measurement; prime it here so the
        # first real sample is meaningful.
        self._process.cpu_percent(None)

    def sample(self) -> SystemSample:
        """Take one sample now."""
        proc = self._process
        with proc.oneshot():
            cpu = float(proc.cpu_percent(None))
            rss = int(proc.memory_info().rss)
            threads = int(proc.num_threads())
            if hasattr(proc, "num_fds"):
                open_files = int(proc.num_fds())
            else:  # pragma: no cover - Windows
                open_files = int(proc.num_handles())
        collections = tuple(int(s["collections"]) for s in gc.get_stats()) if self._own else ()
        return SystemSample(
            cpu_percent=cpu,
            rss_bytes=rss,
            threads=threads,
            open_files=open_files,
            gc_collections=collections,
        )
