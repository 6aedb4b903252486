"""How the measured tree enters the process that callgrind counts, so that two versions of one
tree, or one tree from two places, count the same.

An instruction count depends on the heap the measured call starts from, and the heap depends on
more than the code: the length of the tree's path (module file names are strings on the heap),
how many entries the directories on ``sys.path`` hold (the import system caches each
directory's listing), and whether modules came from bytecode or were compiled in the process.
An A/B session's BASE is a fresh worktree at a temporary path with no bytecode and nothing but
tracked files; its HEAD is the user's tree, full of caches, a virtual environment and build
output. Measured on an evolution cell (docs/benchmarking.md, "Instruments"): a path 18
characters longer 0.19% fewer instructions, 80 more entries beside ``src`` 0.35% more, no
bytecode 0.13% more. So every directory goes on the path as a *view* (:func:`path_view`), the
working directory through an alias (:func:`path_alias`), both of one length, and the sources are
compiled first (:func:`precompile`).
"""

from __future__ import annotations

import compileall
import contextlib
import hashlib
import os
import shutil
import subprocess
from collections.abc import Sequence
from pathlib import Path


def cache_dir() -> Path:
    """Allele's cache directory (``$XDG_CACHE_HOME/allele``, by default ``~/.cache/allele``)."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "allele"


def _slot(real: str, kind: str) -> Path:
    """A place of one length for ``real``, named by a hash of the path (stable for a tree, so
    that numba's cache, keyed by file paths, keeps hitting); links and views to trees since
    removed (an A/B session's BASE) are swept first."""
    base = cache_dir() / "callgrind-paths"
    base.mkdir(parents=True, exist_ok=True)
    for source in base.glob("*.source"):
        with contextlib.suppress(OSError):
            if not os.path.exists(source.read_text(encoding="utf-8")):
                stale = source.with_suffix("")
                if stale.is_symlink():
                    stale.unlink()
                else:
                    shutil.rmtree(stale, ignore_errors=True)
                source.unlink()
    slot = base / f"{kind}-{hashlib.sha256(real.encode()).hexdigest()[:16]}"
    slot.with_suffix(".source").write_text(real, encoding="utf-8")
    return slot


def path_alias(path: str | Path) -> str:
    """``path`` under a name of one length: a symbolic link in the cache directory (for the
    working directory, where a target may open any file of its tree)."""
    real = os.path.realpath(path)
    link = _slot(real, "alias")
    with contextlib.suppress(OSError):
        if os.readlink(link) == real:
            return str(link)
    tmp = link.with_name(f"{link.name}.{os.getpid()}.tmp")
    with contextlib.suppress(FileNotFoundError):
        tmp.unlink()
    os.symlink(real, tmp)
    os.replace(tmp, link)  # atomic: a concurrent run sees the old link or the new one
    return str(link)


def own_entries(directory: Path) -> list[str]:
    """The entries of ``directory`` that a fresh checkout of its tree would hold: git's tracked
    files and the untracked ones it does not ignore, when the directory is in a work tree and git
    lists anything there; otherwise every entry but hidden ones. ``__pycache__`` always, where
    it is: the bytecode of the directory's own modules is looked up beside them, in the view."""
    names: set[str] = set()
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        out = subprocess.run(["git", "-C", str(directory), "ls-files", "--cached", "--others",
                              "--exclude-standard", "-z", "--", "."],
                             capture_output=True, check=True, timeout=60).stdout
        names = {p.split("/", 1)[0] for p in out.decode("utf-8", "surrogateescape").split("\0")
                 if p}
    if not names:
        names = {e.name for e in directory.iterdir() if not e.name.startswith(".")}
    names.add("__pycache__")
    return sorted(n for n in names if os.path.lexists(directory / n))


def path_view(path: str | Path) -> str:
    """``path`` as a ``sys.path`` entry of one length that lists only the tree's own entries
    (:func:`own_entries`): a directory in the cache of symbolic links to them. What is not a
    directory (a zip file) goes on the path as it is."""
    real = os.path.realpath(path)
    if not os.path.isdir(real):
        return str(path)
    view = _slot(real, "view")
    entries = own_entries(Path(real))
    with contextlib.suppress(OSError):
        if sorted(os.listdir(view)) == entries and all(
                os.readlink(view / n) == os.path.join(real, n) for n in entries):
            return str(view)  # unchanged: a concurrent run of the same tree keeps its view
    new = view.with_name(f"{view.name}.{os.getpid()}.new")
    shutil.rmtree(new, ignore_errors=True)
    new.mkdir()
    for name in entries:
        os.symlink(os.path.join(real, name), new / name)
    old = view.with_name(f"{view.name}.{os.getpid()}.old")
    with contextlib.suppress(FileNotFoundError):
        os.rename(view, old)
    try:
        os.rename(new, view)
    except OSError:  # a concurrent run of the same tree put its own view there first
        shutil.rmtree(new, ignore_errors=True)
    shutil.rmtree(old, ignore_errors=True)  # removes the links, never what they lead to
    return str(view)


def precompile(paths: Sequence[str | Path]) -> None:
    """Bring the bytecode of the measured sources up to date before they are counted: each
    path's top-level modules and packages (``src/allele``, a user's target module beside the
    spec), not what else lies in the tree (a virtual environment, the tests).

    A module compiled from source in the counted process leaves the heap otherwise than one
    loaded from ``__pycache__``: a tree without bytecode (a fresh A/B worktree under
    ``PYTHONDONTWRITEBYTECODE``) counted an evolution cell 0.13% more. Written even then:
    ``__pycache__`` is the interpreter's own cache beside the sources, and a file that cannot be
    written or compiled is left to the worker, whose import reports it."""
    for path in dict.fromkeys(Path(p) for p in paths):
        if not path.is_dir():
            continue
        with contextlib.suppress(OSError):
            compileall.compile_dir(path, maxlevels=0, quiet=2)
            for sub in sorted(path.iterdir()):
                if (sub / "__init__.py").is_file():
                    compileall.compile_dir(sub, quiet=2)
