"""Preloaded by the benchmark pool's forkserver: it leaves when the runner does.

The forkserver that forks the pool's workers is a child of the runner. It stays up as long as
any process holds its "alive" pipe, and every worker holds it; so a runner killed outright
(``kill -9``) left the forkserver, its workers (a hanging cell burning a core until its
timeout) and the resource tracker behind. Imported in the forkserver (as a preload module), this
starts one daemon thread that notices the runner is gone (the forkserver's parent pid changes)
and ends the forkserver; the workers, which ask the kernel to kill them when their parent dies
(``PR_SET_PDEATHSIG`` on Linux, see :mod:`allele.bench.executors`), go with it, and the resource
tracker follows once nobody holds its pipe. Imported anywhere else, it does nothing.
"""

from __future__ import annotations

import os
import sys
import threading
import time

POLL_S = 0.2


def _in_forkserver() -> bool:
    frame = sys._getframe()
    while frame is not None:
        code = frame.f_code
        if code.co_name == "main" and code.co_filename.endswith(
                os.path.join("multiprocessing", "forkserver.py")):
            return True
        frame = frame.f_back  # type: ignore[assignment]
    return False


def _watch(parent: int) -> None:
    while os.getppid() == parent:
        time.sleep(POLL_S)
    os._exit(0)


if _in_forkserver():
    threading.Thread(target=_watch, args=(os.getppid(),), name="allele-forkserver-watch",
                     daemon=True).start()
