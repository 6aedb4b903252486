"""The environment fingerprint recorded with every run: what machine and software measured it.

Everything is best effort and never raises: a value that cannot be read is ``None`` (a missing
frequency governor inside a container is normal). Two runs whose fingerprints differ in CPU,
Python, numpy/BLAS or the allele commit are not strictly comparable; reports can say so.
"""

from __future__ import annotations

import contextlib
import io
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from importlib import metadata
from pathlib import Path
from typing import Any

from allele.machine import cpu_affinity

MAIN_DEPENDENCIES = ("numpy", "scipy", "numba", "pydantic", "SQLAlchemy", "psutil", "dask",
                     "distributed", "llama_cpp_python", "scikit-learn", "statsmodels", "torch",
                     "mlflow")


def _read(path: str) -> str | None:
    try:
        return Path(path).read_text().strip() or None
    except OSError:
        return None


def cpu_model() -> str | None:
    """The CPU's model name (``/proc/cpuinfo`` on Linux, else :func:`platform.processor`)."""
    text = _read("/proc/cpuinfo")
    if text:
        for line in text.splitlines():
            if line.lower().startswith(("model name", "hardware", "cpu model")):
                return line.split(":", 1)[1].strip() or None
    return platform.processor() or None


def cpu_governor() -> str | None:
    """The frequency-scaling governor of CPU 0, when the kernel exposes it."""
    return _read("/sys/devices/system/cpu/cpu0/cpufreq/scaling_governor")


def _versions(names: tuple[str, ...]) -> dict[str, str]:
    out: dict[str, str] = {}
    for name in names:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return out


def blas_info() -> list[dict[str, Any]]:
    """BLAS / OpenMP libraries numpy uses: threadpoolctl's view when installed, else the
    ``blas``/``lapack`` section of ``numpy.show_config``."""
    try:
        from threadpoolctl import threadpool_info

        return [
            {k: info.get(k) for k in ("user_api", "internal_api", "version", "num_threads",
                                      "threading_layer", "architecture")}
            for info in threadpool_info()
        ]
    except Exception:  # threadpoolctl missing or confused: fall back to numpy's own record
        pass
    try:
        import numpy as np

        cfg = np.show_config(mode="dicts")
        deps = cfg.get("Build Dependencies", {}) if isinstance(cfg, dict) else {}
        return [{"user_api": k, **v} for k, v in deps.items() if isinstance(v, dict)]
    except Exception:
        return []


def git_state(path: str | Path | None = None) -> dict[str, Any] | None:
    """``{"commit": sha, "dirty": bool, "branch": name}`` of the working tree, or None."""
    cwd = str(path) if path is not None else os.getcwd()

    def git(*args: str) -> str | None:
        try:
            out = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True,
                                 timeout=5, check=False)
        except (OSError, subprocess.SubprocessError):
            return None
        return out.stdout.strip() if out.returncode == 0 else None

    commit = git("rev-parse", "HEAD")
    if commit is None:
        return None
    status = git("status", "--porcelain", "--untracked-files=no")
    return {
        "commit": commit,
        "dirty": bool(status) if status is not None else None,
        "branch": git("rev-parse", "--abbrev-ref", "HEAD"),
    }


VOLATILE_KEYS: tuple[tuple[str, ...], ...] = (("load",), ("cpu", "freq_mhz"))
"""Entries of :func:`fingerprint` that describe the moment, not the machine: kept with the run
(they explain noisy timings) but left out of :func:`stable_view`."""


def load_average() -> dict[str, float] | None:
    """The 1, 5 and 15 minute load averages (None where the OS has none)."""
    try:
        one, five, fifteen = os.getloadavg()
    except (AttributeError, OSError):
        return None
    return {"1m": round(one, 2), "5m": round(five, 2), "15m": round(fifteen, 2)}


def stable_view(environment: dict[str, Any]) -> dict[str, Any]:
    """``environment`` without its :data:`VOLATILE_KEYS`: what identifies the machine and
    software (for a fingerprint hash), the same for two runs on an idle or a busy machine."""
    out = dict(environment)
    for path in VOLATILE_KEYS:
        node: Any = out
        for part in path[:-1]:
            child = node.get(part) if isinstance(node, dict) else None
            if not isinstance(child, dict):
                node = None
                break
            node[part] = child = dict(child)
            node = child
        if isinstance(node, dict):
            node.pop(path[-1], None)
    return out


def cpu_time_resolution(budget_s: float = 0.05, steps: int = 9) -> float | None:
    """The step of the process's CPU time as ``getrusage`` reports it here, in seconds: the
    median of the first ``steps`` changes of the user time seen while spinning for at most
    ``budget_s``. A kernel with precise accounting steps by 1 us; one that samples scheduler
    ticks by 1-10 ms. None when fewer than 3 changes were seen (a tick longer than the budget
    allows to tell)."""
    seen: list[float] = []
    prev = resource.getrusage(resource.RUSAGE_SELF).ru_utime
    end = time.perf_counter() + budget_s
    while len(seen) < steps and time.perf_counter() < end:
        now = resource.getrusage(resource.RUSAGE_SELF).ru_utime
        if now != prev:
            seen.append(now - prev)
            prev = now
    return statistics.median(seen) if len(seen) >= 3 else None


def fingerprint(*, repo: str | Path | None = None) -> dict[str, Any]:
    """Everything :mod:`allele.bench` records about the machine and software of a run."""
    try:
        import psutil

        freq = psutil.cpu_freq()
        mem_total = psutil.virtual_memory().total
        physical = psutil.cpu_count(logical=False)
    except Exception:
        freq, mem_total, physical = None, None, None
    affinity = cpu_affinity()
    try:
        import numpy as np

        numpy_version: str | None = np.__version__
    except ImportError:  # pragma: no cover - numpy is a hard dependency
        numpy_version = None
    with contextlib.redirect_stdout(io.StringIO()):
        blas = blas_info()
    return {
        "cpu": {
            "model": cpu_model(),
            "logical": os.cpu_count(),
            "physical": physical,
            "usable": affinity,
            "governor": cpu_governor(),
            "freq_mhz": round(freq.current, 1) if freq is not None else None,
            "time_resolution_s": cpu_time_resolution(),
        },
        "memory_total_mb": round(mem_total / 2**20, 1) if mem_total else None,
        "os": {
            "system": platform.system(),
            "release": platform.release(),
            "version": platform.version(),
            "machine": platform.machine(),
        },
        "hostname": platform.node(),
        "python": {
            "version": platform.python_version(),
            "implementation": platform.python_implementation(),
            "executable": sys.executable,
        },
        "numpy": numpy_version,
        "blas": blas,
        "packages": {"allele": _versions(("allele",)).get("allele"),
                     **_versions(MAIN_DEPENDENCIES)},
        "git": git_state(repo),
        "load": load_average(),
    }
