"""Calling the ``allele`` entry point in this process, as a shell would (its exit code, stdout
and stderr), for commands that do not need a process of their own."""

from __future__ import annotations

import io
from contextlib import redirect_stderr, redirect_stdout


def allele(*args: str) -> tuple[int, str, str]:
    """``allele ARGS``: (exit code, stdout, stderr) through :func:`allele.cli.main`."""
    from allele.cli import main

    out, err = io.StringIO(), io.StringIO()
    code = 0
    with redirect_stdout(out), redirect_stderr(err):
        try:
            main(list(args))
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    return code, out.getvalue(), err.getvalue()


def one_line_error(code: int, out: str, err: str) -> bool:
    """Exit 2, ``error: ...`` as the only line of stderr, no traceback anywhere."""
    return (code == 2 and err.startswith("error: ") and err.count("\n") == 1
            and "Traceback" not in out + err)
