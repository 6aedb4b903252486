"""The git side of an A/B session (:mod:`allele.bench.ab`): the repository, refs, and the
checked-out trees of BASE and HEAD (a ``git worktree add --detach`` into a temporary
directory, or ``git archive`` when the repository cannot take a worktree)."""

from __future__ import annotations

import contextlib
import io
import logging
import os
import shutil
import subprocess
import tarfile
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil

from allele.errors import ConfigError

__all__ = ["Tree", "checkout", "prune_stale", "repo_root", "resolve_ref", "tree_equals"]

_log = logging.getLogger("allele.bench")
_PREFIX = "allele-ab-"
_OWNER = "owner"
"""The file beside a checked-out tree naming the process that made it (pid, start time)."""


def _git(repo: Path, *args: str, text: bool = True) -> subprocess.CompletedProcess[Any]:
    try:
        return subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=text,
                              check=False, timeout=300)
    except FileNotFoundError:
        raise ConfigError("allele bench ab needs git on the PATH") from None


def repo_root(path: Path) -> Path:
    """The top of the git repository holding ``path``."""
    res = _git(path, "rev-parse", "--show-toplevel")
    if res.returncode != 0:
        raise ConfigError(f"{path} is not inside a git repository: allele bench ab compares "
                          "two versions of one")
    return Path(res.stdout.strip())


def resolve_ref(repo: Path, ref: str) -> str:
    """The commit a ref names (one clear error when it names none)."""
    res = _git(repo, "rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}")
    if res.returncode != 0:
        raise ConfigError(f"--base/--head {ref!r}: not a commit of {repo} "
                          "(`git log --oneline` lists them)")
    return str(res.stdout.strip())


def tree_equals(repo: Path, ref: str) -> bool:
    """Whether the working tree holds exactly the files of commit ``ref``: nothing untracked
    that git does not ignore, no tracked file (staged or not) unlike ``ref``'s. A clean tree
    one commit ahead of ``ref`` does not equal it."""
    commit = resolve_ref(repo, ref)
    status = _git(repo, "status", "--porcelain", "--untracked-files=all")
    if status.returncode != 0:
        raise ConfigError(f"git status failed in {repo}: {status.stderr.strip()}")
    if any(line.startswith("??") for line in status.stdout.splitlines()):
        return False
    diff = _git(repo, "diff", "--quiet", commit, "--")
    if diff.returncode not in (0, 1):
        raise ConfigError(f"git diff against {ref} failed in {repo}: {diff.stderr.strip()}")
    return diff.returncode == 0


@dataclass
class Tree:
    """A checked-out version: its directory, the commit (None for the working tree) and how
    to remove it."""

    path: Path
    commit: str | None
    label: str
    _cleanup: list[Any] = field(default_factory=list)

    def close(self) -> None:
        for fn in reversed(self._cleanup):
            with contextlib.suppress(Exception):
                fn()
        self._cleanup.clear()


def checkout(repo: Path, ref: str) -> Tree:
    """``ref`` of ``repo`` in a temporary directory: a detached ``git worktree``, or the files
    of ``git archive`` when the repository does not take a worktree (read-only)."""
    commit = resolve_ref(repo, ref)
    tmp = Path(tempfile.mkdtemp(prefix=_PREFIX))
    me = psutil.Process(os.getpid())
    (tmp / _OWNER).write_text(f"{me.pid} {me.create_time()!r}\n", encoding="utf-8")
    target = tmp / "tree"
    res = _git(repo, "worktree", "add", "--detach", str(target), commit)
    if res.returncode == 0:
        tree = Tree(target, commit, ref)
        tree._cleanup.append(lambda: shutil.rmtree(tmp, ignore_errors=True))
        tree._cleanup.append(lambda: _git(repo, "worktree", "remove", "--force", str(target)))
        return tree
    archive = _git(repo, "archive", "--format=tar", commit, text=False)
    if archive.returncode != 0:
        shutil.rmtree(tmp, ignore_errors=True)
        raise ConfigError(f"cannot check out {ref} of {repo}: {res.stderr.strip()}")
    target.mkdir()
    with tarfile.open(fileobj=io.BytesIO(archive.stdout)) as tar:
        tar.extractall(target, filter="data")
    tree = Tree(target, commit, ref)
    tree._cleanup.append(lambda: shutil.rmtree(tmp, ignore_errors=True))
    return tree


def _owner_gone(top: Path) -> bool:
    """Whether the A/B session that made ``top`` (an ``allele-ab-*`` directory) has ended: its
    owner file names a process that no longer runs. Without the file (not written yet, or an
    older version's tree) nothing says so."""
    marker = top / _OWNER
    if not top.name.startswith(_PREFIX) or not marker.is_file():
        return False
    try:
        pid, created = marker.read_text(encoding="utf-8").split()
        started = float(psutil.Process(int(pid)).create_time())
        return abs(started - float(created)) >= 1e-3
    except (OSError, ValueError, psutil.Error):
        return True


def _prune_archives() -> list[Path]:
    """The trees ``git archive`` made (no worktree: no ``.git`` in them) for A/B sessions that
    are gone, removed from the temporary directory."""
    removed = []
    for top in sorted(Path(tempfile.gettempdir()).glob(_PREFIX + "*")):
        if (top / "tree" / ".git").exists() or not _owner_gone(top):
            continue
        shutil.rmtree(top, ignore_errors=True)
        removed.append(top)
    return removed


def prune_stale(repo: Path) -> list[Path]:
    """Remove the trees A/B sessions checked out and never removed because they were killed
    (their process is gone): ``repo``'s worktrees, and the plain trees of ``git archive`` in
    the temporary directory; the directories removed. Trees of sessions still running,
    worktrees that are not an A/B session's and other repositories' worktrees stay."""
    listing = _git(repo, "worktree", "list", "--porcelain")
    removed = []
    for line in listing.stdout.splitlines() if listing.returncode == 0 else []:
        if not line.startswith("worktree "):
            continue
        path = Path(line.removeprefix("worktree "))
        top = path.parent
        if path.name != "tree" or not _owner_gone(top):
            continue
        _git(repo, "worktree", "remove", "--force", str(path))
        shutil.rmtree(top, ignore_errors=True)
        removed.append(top)
    if removed:
        _git(repo, "worktree", "prune")
    removed += _prune_archives()
    if removed:
        _log.info("removed %d checked-out tree(s) left by killed A/B sessions: %s",
                  len(removed), ", ".join(map(str, removed)))
    return removed
