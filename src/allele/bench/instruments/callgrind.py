"""The ``instructions`` instrument: instruction counts under valgrind's callgrind, one
subprocess per run.

On a shared 2-core machine a whole run of identical code moves by +-10% in wall and CPU time;
the same call counted under callgrind moves by a few parts in 10^5 (an evolution cell counted
34,111,866 instructions in two runs, identical). :func:`count_cells` runs *one* valgrind process
for all the instrumented cells of a run (valgrind's start-up costs seconds)::

    valgrind --tool=callgrind --instr-atstart=no --callgrind-out-file=TMP/cg.%p.out \\
        python .../callgrind_worker.py TMP/job.json          (PYTHONHASHSEED=0)

The worker (:mod:`allele.bench.instruments.callgrind_worker`) counts each cell in a process
forked from one common state (so that a count does not depend on the cells counted before it;
each process writes its own dumps, hence ``%p``) and calls the cell's first
``instruction_seeds`` seeds, each after an uninstrumented warm-up call, with collection switched
on around the call only by the project's C extension (``_callgrind``: callgrind client requests
from valgrind's own header), and counts Python-level calls in a further uninstrumented call.
Every measured call is one callgrind dump; this module parses them
(:mod:`allele.bench.instruments.callgrind_format`) into samples ``instructions`` (and, with
``cache_sim``, ``estimated_cycles``) per seed and the cell's instruction profile
(:mod:`allele.bench.instruments.profiles`).

What the counts describe: the code paths valgrind's synthetic CPU takes. numpy and numba choose
kernels by the CPU features they detect, and valgrind's CPU reports fewer than the host's (no
AVX-512), so counts are for those paths; they are comparable between versions measured this
way, not with a native profile. numba compiles anew under valgrind (LLVM sees another CPU and
its cache misses): the warm-up keeps that out of the measured call, and the instrumented process
keeps its own numba cache (``NUMBA_CACHE_DIR``, under ``~/.cache/allele/numba-callgrind``) so
that it compiles once per machine, not once per run (a first compile costs 7-17 s per kernel).

Threads: callgrind counts the instructions of every thread, and an idle thread that spins
counts for as long as the scheduler lets it. The instrumented process pins BLAS and OpenMP
pools to one thread (:data:`SINGLE_THREAD`); a target that runs threads of its own (Kraken with
``threads: 2``) counts its waiting too and is not deterministic: count it with one thread.
"""

from __future__ import annotations

import contextlib
import importlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from allele.bench.instruments.callgrind_format import Dump, dump_files, parse_file
from allele.bench.instruments.paths import cache_dir, path_alias, path_view, precompile
from allele.bench.instruments.profiles import InstructionProfile, encode, merge_functions
from allele.errors import BenchmarkError
from allele.store.model import Sample

HASH_SEED = "0"
"""The fixed ``PYTHONHASHSEED`` of the instrumented process (set iteration order, hence the code
path, depends on it)."""
_WORKER = Path(__file__).with_name("callgrind_worker.py")
SINGLE_THREAD = {"OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
                 "BLIS_NUM_THREADS": "1", "NUMEXPR_NUM_THREADS": "1"}
"""Thread pools pinned to one thread in the instrumented process: callgrind counts every
thread, and a pool's idle threads spin for as long as the scheduler lets them (OpenBLAS's
``exec_blas_async_wait`` moved a Kraken count by 5% between two invocations)."""


class InstrumentUnavailable(BenchmarkError):
    """The ``instructions`` instrument cannot run here (no valgrind, or no extension)."""


@dataclass(frozen=True, slots=True)
class InstrumentedCell:
    """One cell the instrument counts: its identity, call and seeds."""

    key: str
    target: str
    params: dict[str, Any]
    seeds: tuple[int, ...]
    warmup: int = 0
    timeout_s: float = 600.0
    cache_sim: bool = False
    setup: str | None = None
    """``module:function`` whose return value reaches the target as ``state=`` (uncounted)."""
    teardown: str | None = None


@dataclass(slots=True)
class CellCounts:
    """What the instrument measured for one cell: samples per seed and the profile, or why
    not."""

    key: str
    samples: list[Sample] = field(default_factory=list)
    profile: bytes | None = None
    error: str | None = None
    seconds: dict[str, float] = field(default_factory=dict)
    """Wall time under valgrind of the cell's ``warmup``, ``measured`` and ``calls`` (call
    counting) calls, summed over its seeds (instrumentation slows the measured calls about
    100-200 times)."""


@dataclass(slots=True)
class CountPass:
    """One callgrind subprocess: each cell's counts, the wall time of the whole pass."""

    cells: dict[str, CellCounts]
    seconds: float
    command: list[str]


def extension_path() -> Path | None:
    """The built ``_callgrind`` extension beside this module, or None."""
    try:
        module = importlib.import_module("allele.bench.instruments._callgrind")
    except ImportError:
        return None
    path = getattr(module, "__file__", None)
    return Path(path) if path else None


def valgrind_path() -> str | None:
    """The ``valgrind`` executable on the PATH, or None."""
    return shutil.which("valgrind")


def require() -> tuple[str, Path]:
    """``(valgrind, extension)`` or one :class:`InstrumentUnavailable` saying what to install."""
    ext = extension_path()
    valgrind = valgrind_path()
    if ext is None or valgrind is None:
        missing = " and ".join(x for x, ok in (("valgrind", valgrind is not None),
                                               ("Allele's callgrind extension", ext is not None))
                               if not ok)
        raise InstrumentUnavailable(
            f"the 'instructions' instrument needs {missing}: install valgrind (Debian: "
            "`apt-get install valgrind`, or `make sysdeps`), which ships valgrind/callgrind.h, "
            "then reinstall Allele (`pip install -e .` or `make env`) so that the extension is "
            "built; or drop 'instructions' from the spec's instruments")
    return valgrind, ext


def numba_cache_dir() -> Path:
    """Where the instrumented process keeps numba's compiled kernels."""
    return cache_dir() / "numba-callgrind"


def _job(cells: Sequence[InstrumentedCell], tmp: Path, paths: Sequence[str], cwd: Path | None,
         ext: Path) -> Path:
    doc = {"extension": str(ext), "paths": list(paths), "cwd": str(cwd) if cwd else None,
           "results": str(tmp / "results.jsonl"),
           "cells": [{"index": i, "key": c.key, "target": c.target, "params": c.params,
                      "seeds": list(c.seeds), "warmup": c.warmup, "timeout_s": c.timeout_s,
                      "setup": c.setup, "teardown": c.teardown}
                     for i, c in enumerate(cells)]}
    path = tmp / "job.json"
    path.write_text(json.dumps(doc), encoding="utf-8")
    return path


def command(valgrind: str, out: Path, job: Path, cache_sim: bool,
            python: str = sys.executable) -> list[str]:
    """The valgrind command line of one pass."""
    return [valgrind, "--tool=callgrind", "--instr-atstart=no", f"--callgrind-out-file={out}",
            "--dump-instr=no", "--compress-strings=no", "--compress-pos=no", "-q",
            f"--cache-sim={'yes' if cache_sim else 'no'}", python, str(_WORKER), str(job)]


def _environment(paths: Sequence[str]) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONHASHSEED"] = HASH_SEED
    # this process's whole path (the working directory's targets included; the worker drops
    # its own directory), after the measured version's paths
    here = [p or os.getcwd() for p in sys.path]
    env["PYTHONPATH"] = os.pathsep.join(dict.fromkeys([*paths, *here]))
    env["NUMBA_CACHE_DIR"] = str(numba_cache_dir())
    env.update(SINGLE_THREAD)
    env.pop("ALLELE_FAILPOINTS", None)
    return env


def _run(cmd: list[str], env: dict[str, str], cwd: Path | None,
         on_start: Callable[[int], None] | None) -> subprocess.CompletedProcess[str]:
    proc = subprocess.Popen(cmd, env=env, cwd=str(cwd) if cwd else None,
                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)
    if on_start is not None:
        on_start(proc.pid)
    try:
        _, err = proc.communicate()
    except BaseException:
        with contextlib.suppress(OSError):
            os.killpg(proc.pid, 9)
        proc.wait()
        raise
    return subprocess.CompletedProcess(cmd, proc.returncode, "", err)


def count_cells(cells: Sequence[InstrumentedCell], *, paths: Sequence[str] = (),
                cwd: Path | None = None, extension: Path | None = None,
                on_start: Callable[[int], None] | None = None) -> CountPass:
    """Count every cell's seeds in one callgrind subprocess (see the module docstring).

    ``paths`` go first on the worker's ``sys.path`` (an A/B session's tree); ``extension`` is
    the ``_callgrind`` build to use (default: this package's, i.e. HEAD's). A cell that fails
    under callgrind gets its error; the pass itself raises only when valgrind is missing."""
    valgrind, ext = require()
    ext = extension or ext
    precompile([*paths, *([cwd] if cwd is not None else [])])
    paths = [path_view(p) for p in paths]  # one length, the tree's own entries (paths.py)
    cwd = Path(path_alias(cwd)) if cwd is not None else None
    cache_sim = any(c.cache_sim for c in cells)
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="allele-callgrind-") as tmp_name:
        tmp = Path(tmp_name)
        job = _job(cells, tmp, paths, cwd, ext)
        out = tmp / "cg.%p.out"  # a file per process: each cell is counted in its own
        cmd = command(valgrind, out, job, cache_sim)
        numba_cache_dir().mkdir(parents=True, exist_ok=True)
        res = _run(cmd, _environment(paths), cwd, on_start)
        answers = _answers(tmp / "results.jsonl")
        dumps = _dumps(out)
    seconds = time.perf_counter() - t0
    result = {c.key: _cell_counts(i, c, answers.get(i), dumps.get(i, {}), res)
              for i, c in enumerate(cells)}
    return CountPass(result, seconds, cmd)


def _answers(path: Path) -> dict[int, dict[str, Any]]:
    out: dict[int, dict[str, Any]] = {}
    if not path.exists():
        return out
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            doc = json.loads(line)
        except ValueError:
            continue
        out[int(doc["index"])] = doc
    return out


def _dumps(out: Path) -> dict[int, dict[int, Dump]]:
    """``{cell index: {seed: dump}}`` from the numbered dump files."""
    found: dict[int, dict[int, Dump]] = {}
    for path in dump_files(out):
        try:
            dump = parse_file(path)
        except (OSError, ValueError):
            continue
        index, sep, seed = dump.label.partition(":")
        if sep and index.isdigit() and seed.lstrip("-").isdigit():
            found.setdefault(int(index), {})[int(seed)] = dump
    return found


def _cell_counts(index: int, cell: InstrumentedCell, answer: dict[str, Any] | None,
                 dumps: dict[int, Dump], res: subprocess.CompletedProcess[str]) -> CellCounts:
    if answer is None:
        tail = " ".join((res.stderr or "").strip().splitlines()[-3:])
        why = (f"the callgrind process ended (exit code {res.returncode}) before this cell"
               + (f": {tail}" if tail else ""))
        return CellCounts(cell.key, error=why[:1000])
    if "error" in answer:
        return CellCounts(cell.key, error=f"under callgrind: {answer['error']}")
    missing = [s for s in cell.seeds if s not in dumps]
    if missing:
        return CellCounts(cell.key, error=f"callgrind wrote no counts for seeds {missing}")
    samples: list[Sample] = []
    for seed in cell.seeds:
        dump = dumps[seed]
        samples.append(Sample("instructions", float(dump.instructions), seed, 0))
        if cell.cache_sim and dump.cache_simulated:
            samples.append(Sample("estimated_cycles", float(dump.estimated_cycles), seed, 0))
    profile = InstructionProfile(
        seeds=tuple(cell.seeds),
        instructions=sum(dumps[s].instructions for s in cell.seeds),
        functions=merge_functions([dumps[s].functions for s in cell.seeds]),
        calls={str(k): int(v) for k, v in answer.get("calls", {}).items()},
        beneath={str(k): int(v) for k, v in answer.get("beneath", {}).items()})
    seconds = {str(k): float(v) for k, v in answer.get("seconds", {}).items()}
    return CellCounts(cell.key, samples=samples, profile=encode(profile), seconds=seconds)
