"""Golden outputs: the read commands on a committed fixture store print exactly what they did.

The store (``store.db``, built once by ``make_store.py``) holds eight runs with a step change and
a failed cell. Each command runs as a real subprocess (``TZ=UTC``, 150 columns) on a copy of the
store; stdout, stderr and the exit code must match ``outputs/<name>.txt`` byte for byte. After an
intended change of output, regenerate with ``ALLELE_UPDATE_GOLDENS=1 pytest tests/golden`` and
review the diff.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).parent
OUTPUTS = HERE / "outputs"

COMMANDS = {
    "list": ["bench", "list"],
    "show": ["bench", "show", "golden-08"],
    "compare_json": ["bench", "compare", "golden-04", "golden-08", "--json"],
    "compare_table": ["bench", "compare", "golden-04", "golden-08", "--all"],
    "regressions": ["bench", "regressions"],
    "regressions_json": ["bench", "regressions", "--json"],
    "report_markdown": ["bench", "report", "golden-08", "-b", "golden-07", "--format",
                        "markdown", "-o", "-"],
}


def _run(args: list[str], store: Path) -> str:
    env = {**os.environ, "TZ": "UTC", "COLUMNS": "150", "NO_COLOR": "1", "TERM": "dumb"}
    env.pop("ALLELE_STORE_URL", None)
    proc = subprocess.run([sys.executable, "-m", "allele.cli", *args, "--store",
                           f"sqlite:///{store.name}"], capture_output=True, text=True, env=env,
                          cwd=store.parent, timeout=120, check=False)
    out = (f"$ allele {' '.join(args)}\n--- exit {proc.returncode}\n--- stdout\n{proc.stdout}"
           f"--- stderr\n{proc.stderr}")
    return out.replace(str(store), "STORE")  # a path printed in full (never so far)


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_golden_output(name: str, tmp_path: Path) -> None:
    store = tmp_path / "store.db"
    shutil.copyfile(HERE / "store.db", store)
    got = _run(COMMANDS[name], store)
    path = OUTPUTS / f"{name}.txt"
    if os.environ.get("ALLELE_UPDATE_GOLDENS"):
        OUTPUTS.mkdir(exist_ok=True)
        path.write_text(got, encoding="utf-8")
    assert got == path.read_text(encoding="utf-8")
