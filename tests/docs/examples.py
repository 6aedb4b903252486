"""The documentation's code runs (issue 17): every ```python block of README.md and docs/*.md is
executed, and every shell block marked ``<!-- runnable -->`` on the line before it.

The blocks of one page run in order in one namespace (a later block may use what an earlier one
built), in a fresh process whose working directory is a temporary folder holding a link to the
project's ``benchmarks/``; the result store, data folder and MLflow store point into it. A block
that cannot run here says what it needs in its visible title (```python title="Needs ..."```);
signature listings are titled ``Signature``. Those two kinds are the only ones not run.

The pages are run by two test files, :data:`FIRST` in ``test_examples.py`` and the rest in
``test_examples_rest.py``: two of the suite's workers each take a file, and the pages together
take about two minutes, too long for one worker to run alone at the end."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PAGES = sorted([ROOT / "README.md", *(ROOT / "docs").glob("*.md")])
FENCE = re.compile(r"(?m)^```(python|bash|sh)([^\n]*)\n(.*?)^```", re.S)
NOT_RUN = re.compile(r'title="(Needs|Signature)')

RUNNER = r"""
import json, sys, traceback
blocks = json.load(open(sys.argv[1]))
ns = {"__name__": "__docs__"}
for where, code in blocks:
    try:
        exec(compile(code, where, "exec"), ns)
    except BaseException:
        traceback.print_exc()
        print(f"DOCS BLOCK FAILED: {where}", file=sys.stderr)
        sys.exit(1)
"""


def blocks(page: Path) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """(python blocks to run, shell blocks to run) of ``page``, each as (file:line, code)."""
    text = page.read_text(encoding="utf-8")
    python, shell = [], []
    for m in FENCE.finditer(text):
        line = text[:m.start()].count("\n") + 1
        where = f"{page.relative_to(ROOT)}:{line}"
        lang, attrs, code = m.group(1), m.group(2), m.group(3)
        if lang == "python":
            if not NOT_RUN.search(attrs):
                python.append((where, code))
        else:
            before = text[:m.start()].rstrip("\n").rsplit("\n", 1)[-1]
            if before.strip() == "<!-- runnable -->":
                shell.append((where, code))
    return python, shell


def _sandbox(tmp_path: Path) -> dict[str, str]:
    (tmp_path / "benchmarks").symlink_to(ROOT / "benchmarks")
    venv_bin = str(Path(sys.executable).parent)
    return {**os.environ,
            "PATH": venv_bin + os.pathsep + os.environ.get("PATH", ""),
            "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), str(ROOT)]),
            "ALLELE_DATA_DIR": str(tmp_path / "data"),
            "ALLELE_STORE_URL": f"sqlite:///{tmp_path / 'results.db'}",
            "MLFLOW_DISABLE_TELEMETRY": "true", "MPLBACKEND": "Agg"}


FIRST = ("benchmarking.md", "comparison.md", "README.md", "scale.md", "store.md")
"""The pages ``test_examples.py`` runs (the longest, benchmarking.md, and a few short ones)."""


def pages(first: bool) -> list[Path]:
    """The pages one of the two test files runs."""
    return [p for p in PAGES if (p.name in FIRST) == first]


def run_page(page: Path, tmp_path: Path) -> None:
    """Run a page's python blocks in one fresh process, then its runnable shell blocks."""
    python, shell = blocks(page)
    if not python and not shell:
        return
    env = _sandbox(tmp_path)
    if python:
        (tmp_path / "blocks.json").write_text(json.dumps(python))
        proc = subprocess.run([sys.executable, "-c", RUNNER, str(tmp_path / "blocks.json")],
                              cwd=tmp_path, env=env, capture_output=True, text=True,
                              timeout=360, check=False)
        assert proc.returncode == 0, proc.stderr[-3000:]
    for where, code in shell:
        proc = subprocess.run(["bash", "-euo", "pipefail", "-c", code], cwd=tmp_path, env=env,
                              capture_output=True, text=True, timeout=300, check=False)
        assert proc.returncode == 0, f"{where}\n{proc.stdout[-1500:]}\n{proc.stderr[-1500:]}"


def check_blocks() -> None:
    """A python block is either run or titled Needs/Signature; the harness finds blocks."""
    found = 0
    for page in PAGES:
        text = page.read_text(encoding="utf-8")
        for m in FENCE.finditer(text):
            if m.group(1) == "python":
                found += 1
                attrs = m.group(2)
                assert "title=" not in attrs or NOT_RUN.search(attrs), (page, attrs)
    python_run = sum(len(blocks(p)[0]) for p in PAGES)
    assert found >= 20 and python_run >= found // 2, (found, python_run)
