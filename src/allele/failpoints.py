"""Fail points: deterministic places where a test can kill or pause a process for real.

Fault-injection tests (``tests/faults/``) need a crash at an exact point of a run ("kill the
runner right after its 3rd committed cell", "kill it while the MLflow writer holds 5 records in
memory"), not at a random moment of a sleep. The code calls :func:`hit` at a few named points;
the environment variable ``ALLELE_FAILPOINTS`` arms some of them::

    ALLELE_FAILPOINTS="runner.cell_committed=3:kill"
    ALLELE_FAILPOINTS="store.save_cells=2:kill,tracker.delivered=5:pause=/tmp/x/paused"

``NAME=K:ACTION`` fires on the ``K``-th hit of ``NAME`` in this process (counted from 1) and
every hit after it when ``K`` ends with ``+``. Actions: ``kill`` (SIGKILL this process),
``killpg`` (SIGKILL this process's process group: the runner with its workers), ``exit``
(``os._exit(70)``), ``pause=FILE`` (create FILE with this process's pid, then wait until FILE
is removed: the test does its part, e.g. kills a server, and lets the process go on).

Unarmed, a hit costs one truthiness test of a module-level dict (the variable is read once, at
import). The points:

``runner.cell_committed``   after a cell is committed to the store (runner process)
``store.save_cells``        inside the write transaction of ``save_cells``, before the commit
``tracker.delivered``       after the MLflow writer delivered (or spooled) one record
``worker.task``             in a pool worker, when a cell arrives (before it runs)
"""

from __future__ import annotations

import os
import signal
import time

_ENV = "ALLELE_FAILPOINTS"


def _parse(text: str) -> dict[str, tuple[int, bool, str]]:
    points: dict[str, tuple[int, bool, str]] = {}
    for item in filter(None, (p.strip() for p in text.split(","))):
        name, _, rest = item.partition("=")
        count, _, action = rest.partition(":")
        every = count.endswith("+")
        try:
            k = int(count.rstrip("+"))
        except ValueError:
            continue  # a malformed entry arms nothing (this is a test hook, never user input)
        points[name.strip()] = (k, every, action.strip() or "kill")
    return points


_ARMED: dict[str, tuple[int, bool, str]] = _parse(os.environ.get(_ENV, ""))
_HITS: dict[str, int] = {}


def hit(name: str) -> None:
    """Count one pass through the fail point ``name``; act if it is armed for this pass."""
    if not _ARMED:
        return
    armed = _ARMED.get(name)
    if armed is None:
        return
    n = _HITS[name] = _HITS.get(name, 0) + 1
    k, every, action = armed
    if n == k or (every and n > k):
        _act(action)


def _act(action: str) -> None:
    if action == "kill":
        os.kill(os.getpid(), signal.SIGKILL)
    elif action == "killpg":
        os.killpg(os.getpgid(0), signal.SIGKILL)
    elif action == "exit":
        os._exit(70)
    elif action.startswith("pause="):
        flag = action[len("pause="):]
        with open(flag, "w", encoding="utf-8") as fh:
            fh.write(str(os.getpid()))
        while os.path.exists(flag):
            time.sleep(0.01)


def rearm(text: str | None = None) -> None:
    """Re-read the fail points (from ``text``, else the environment) and reset the counts:
    for a process forked from a parent that already imported this module."""
    _ARMED.clear()
    _ARMED.update(_parse(os.environ.get(_ENV, "") if text is None else text))
    _HITS.clear()
