"""Real ``allele`` processes for fault injection, started cheaply: forked from the (already
warm) test process instead of a fresh interpreter, each in its own process group, with its own
environment (fail points included) and output files. A process started here is as real as
``allele ...`` from a shell: it opens the store, starts its forkserver and workers, talks to
the MLflow server, and can be killed with SIGKILL at any moment."""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import time
import traceback
from collections.abc import Mapping, Sequence
from pathlib import Path

import psutil


def _fresh_multiprocessing() -> None:
    """A forked child must not use its parent's forkserver or resource tracker (they are not
    its children): give it fresh ones, started on first use, as a new interpreter would."""
    import multiprocessing.forkserver as fsm
    import multiprocessing.resource_tracker as rtm

    fs = fsm.ForkServer()
    fsm._forkserver = fs  # type: ignore[attr-defined]
    for name in ("ensure_running", "get_inherited_fds", "connect_to_new_process",
                 "set_forkserver_preload"):
        setattr(fsm, name, getattr(fs, name))
    rt = rtm.ResourceTracker()
    rtm._resource_tracker = rt  # type: ignore[attr-defined]
    for name in ("ensure_running", "register", "unregister", "getfd"):
        setattr(rtm, name, getattr(rt, name))


class Cli:
    """One ``allele`` invocation running in a forked child."""

    def __init__(self, argv: Sequence[str], *, env: Mapping[str, str], cwd: Path,
                 out: Path) -> None:
        self.argv = list(argv)
        self.out = out
        self.returncode: int | None = None
        out.parent.mkdir(parents=True, exist_ok=True)
        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:  # pragma: no cover - the child
            code = 99
            try:
                os.setpgrp()
                fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
                os.dup2(fd, 1)
                os.dup2(fd, 2)
                sys.stdout = open(1, "w", closefd=False)  # noqa: SIM115
                sys.stderr = open(2, "w", closefd=False)  # noqa: SIM115
                os.chdir(cwd)
                os.environ.update(env)
                import logging

                logging.getLogger().handlers.clear()  # log as a fresh process: to stderr
                _fresh_multiprocessing()
                from allele.cli import main

                try:  # the fail points of this process's environment
                    from allele import failpoints

                    failpoints.rearm()
                except ImportError:  # an Allele without them (checking a test against main)
                    pass
                try:
                    main(self.argv)
                    code = 0
                except SystemExit as exc:
                    code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None
                                                                       else 1)
            except BaseException:
                traceback.print_exc()
            finally:
                with contextlib.suppress(Exception):
                    sys.stdout.flush()
                    sys.stderr.flush()
                os._exit(code)
        self.pid = pid

    def wait(self, timeout: float = 120.0) -> int:
        """The exit code (negative: killed by that signal); kills the group on timeout."""
        if self.returncode is not None:
            return self.returncode
        deadline = time.monotonic() + timeout
        while True:
            done, status = os.waitpid(self.pid, os.WNOHANG)
            if done:
                self.returncode = os.waitstatus_to_exitcode(status)
                return self.returncode
            if time.monotonic() > deadline:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.pid, signal.SIGKILL)
                os.waitpid(self.pid, 0)
                raise AssertionError(f"allele {' '.join(self.argv)} did not end within "
                                     f"{timeout}s:\n{self.output[-3000:]}")
            time.sleep(0.02)

    @property
    def output(self) -> str:
        return self.out.read_text(errors="replace") if self.out.exists() else ""


def processes_marked(marker: str) -> list[psutil.Process]:
    """Live (non-zombie) processes whose environment holds ``ALLELE_FAULT_MARK=marker``."""
    found = []
    for proc in psutil.process_iter(["pid"]):
        try:
            if proc.pid == os.getpid() or proc.status() == psutil.STATUS_ZOMBIE:
                continue
            if proc.environ().get("ALLELE_FAULT_MARK") == marker:
                found.append(proc)
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            continue
    return found


def left_behind(marker: str, within_s: float = 5.0) -> list[str]:
    """What still runs with ``marker`` after ``within_s`` seconds (empty when all are gone)."""
    deadline = time.monotonic() + within_s
    while True:
        alive = processes_marked(marker)
        if not alive or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    out = []
    for p in alive:
        with contextlib.suppress(psutil.Error):
            out.append(f"{p.pid} {' '.join(p.cmdline())[:120]}")
    for p in alive:  # never leave them for the next test
        with contextlib.suppress(psutil.Error):
            p.kill()
    return out


def wait_for_file(path: Path, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        if time.monotonic() > deadline:
            raise AssertionError(f"{path} did not appear within {timeout}s")
        time.sleep(0.01)


def killed_process() -> tuple[int, float]:
    """The pid and start time of a process killed with SIGKILL (and reaped): what a lease
    whose holder died holds."""
    import subprocess

    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    started = psutil.Process(proc.pid).create_time()
    proc.kill()
    assert proc.wait(timeout=10) == -9
    return proc.pid, started
