"""How a measured tree enters the counted process (allele.bench.instruments.paths): aliases and
views of one length, the tree's own entries only, bytecode compiled first."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from allele.bench.instruments import paths


@pytest.fixture(autouse=True)
def _cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))


def _tree(where: Path) -> Path:
    where.mkdir(parents=True)
    (where / "mark").write_text(where.name)
    return where


def test_an_alias_is_stable_of_one_length_and_leads_to_the_tree(tmp_path: Path) -> None:
    short, long = _tree(tmp_path / "a"), _tree(tmp_path / ("b" * 60))
    a, b = paths.path_alias(short), paths.path_alias(long)
    assert len(a) == len(b) and a != b and paths.path_alias(short) == a
    assert (Path(b) / "mark").read_text() == "b" * 60
    gone = _tree(tmp_path / "gone")
    stale = Path(paths.path_alias(gone))
    (gone / "mark").unlink()
    gone.rmdir()
    paths.path_alias(short)  # a new alias sweeps the links to removed trees
    assert not stale.is_symlink() and Path(a).is_symlink()


def test_a_view_lists_what_git_would_check_out_and_follows_changes(tmp_path: Path) -> None:
    tree = _tree(tmp_path / "repo")
    for cmd in (["init", "-q"], ["config", "user.email", "t@t"], ["config", "user.name", "t"]):
        subprocess.run(["git", "-C", str(tree), *cmd], check=True)
    (tree / ".gitignore").write_text(".venv/\nbuild/\n")
    (tree / "pkg").mkdir()
    (tree / "pkg" / "__init__.py").write_text("X = 1\n")
    for ignored in (".venv", "build", "__pycache__"):
        (tree / ignored).mkdir()
    (tree / "__pycache__" / "x.pyc").write_bytes(b"")
    subprocess.run(["git", "-C", str(tree), "add", ".gitignore", "pkg"], check=True)
    view = Path(paths.path_view(tree))
    # tracked (.gitignore, pkg), untracked but not ignored (mark) and the bytecode of the
    # directory's own modules (__pycache__); not .venv or build
    assert sorted(p.name for p in view.iterdir()) == [".gitignore", "__pycache__", "mark", "pkg"]
    assert (view / "pkg" / "__init__.py").read_text() == "X = 1\n"
    (tree / "new.py").write_text("")
    assert paths.path_view(tree) == str(view)  # the same place, with the new entry
    assert (view / "new.py").is_symlink()
    assert len(paths.path_view(_tree(tmp_path / ("c" * 70)))) == len(str(view))


def test_outside_git_a_view_drops_hidden_entries(tmp_path: Path) -> None:
    tree = _tree(tmp_path / "plain")
    for hidden in (".venv", ".mypy_cache", "__pycache__"):
        (tree / hidden).mkdir()
    (tree / "mod.py").write_text("")
    view = Path(paths.path_view(tree))
    assert sorted(p.name for p in view.iterdir()) == ["__pycache__", "mark", "mod.py"]
    removed = Path(paths.path_view(_tree(tmp_path / "gone")))
    (tmp_path / "gone" / "mark").unlink()
    (tmp_path / "gone").rmdir()
    paths.path_view(tree)  # sweeps the view of the removed tree, never the tree it showed
    assert not removed.exists() and (tree / "mod.py").exists()


def test_precompile_writes_bytecode_for_top_modules_and_packages_only(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PYTHONDONTWRITEBYTECODE", "1")
    tree = _tree(tmp_path / "t")
    (tree / "top.py").write_text("A = 1\n")
    (tree / "pkg" / "sub").mkdir(parents=True)
    (tree / "pkg" / "__init__.py").write_text("")
    (tree / "pkg" / "sub" / "deep.py").write_text("B = 2\n")
    (tree / "venv" / "lib").mkdir(parents=True)  # not a package: left alone
    (tree / "venv" / "lib" / "big.py").write_text("C = 3\n")
    (tree / "broken.py").write_text("def (:\n")  # the worker's import reports it
    paths.precompile([tree, tmp_path / "missing"])
    pyc = sorted(p.name.split(".")[0] for p in tree.rglob("*.pyc"))
    assert pyc == ["__init__", "deep", "top"]
