"""The generated reference pages match the code (run ``python scripts/gen_docs.py`` after a
change to the CLI), and the site builds offline without a fetch."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def test_cli_reference_is_current() -> None:
    proc = subprocess.run([sys.executable, "scripts/gen_docs.py", "--check"], cwd=ROOT,
                          capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr


def test_cli_reference_lists_every_command() -> None:
    import typer

    from allele.cli import app

    page = (ROOT / "docs" / "reference" / "cli.md").read_text(encoding="utf-8")
    root = typer.main.get_command(app)
    stack = [(["allele"], root)]
    while stack:
        path, cmd = stack.pop()
        assert f"`{' '.join(path)}`" in page
        for name, sub in getattr(cmd, "commands", {}).items():
            stack.append(([*path, name], sub))


@pytest.mark.slow
def test_site_builds_strictly_and_fetches_nothing(tmp_path: Path) -> None:
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    mkdocs = Path(sys.executable).with_name("mkdocs")
    proc = subprocess.run([str(mkdocs), "build", "--strict", "-d", str(tmp_path / "site")],
                          cwd=ROOT, capture_output=True, text=True, timeout=300, env=env,
                          check=False)
    assert proc.returncode == 0, proc.stderr[-2000:]
    pages = list((tmp_path / "site").rglob("*.html"))
    assert len(pages) >= 10
    for page in pages:
        text = page.read_text(encoding="utf-8")
        for remote in ("fonts.googleapis", "fonts.gstatic", "cdn.jsdelivr", "unpkg.com"):
            assert remote not in text, f"{page.name} fetches from {remote}"
