"""Without MLflow installed (simulated by an import blocker in a fresh interpreter): ``import
allele`` and everything else work, and using tracking raises one clear TrackingError."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

BLOCKER = textwrap.dedent("""
    import sys

    class _NoMlflow:
        def find_spec(self, name, path=None, target=None):
            if name == "mlflow" or name.startswith("mlflow."):
                raise ModuleNotFoundError(f"No module named {name!r}")
            return None

    sys.meta_path.insert(0, _NoMlflow())
""")


def _run(code: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", BLOCKER + textwrap.dedent(code)],
                          capture_output=True, text=True, timeout=120, cwd=tmp_path)


def test_everything_but_tracking_works_without_mlflow(tmp_path: Path) -> None:
    proc = _run("""
        import allele, allele.tracking
        from allele.core.evolution import EvolutionConfig, EvolutionEngine
        from allele.core.fitness import target_personality
        from allele.errors import TrackingError
        from allele.tracking.mlflow import MlflowTracker, sync_spool

        result = EvolutionEngine(EvolutionConfig(population_size=10, generations=3, seed=0),
                                 target_personality({"empathy": 1.0})).run()
        print("evolution ok", len(result.history))
        print("empty sync ok", sync_spool("spool.jsonl").replayed)
        for what, call in [
            ("tracker", lambda: MlflowTracker("sqlite:///x.db", "e")),
            ("autolog", lambda: allele.tracking.autolog("sqlite:///x.db")),
            ("registry", lambda: allele.tracking.register_genome),
        ]:
            try:
                call()
            except TrackingError as exc:
                print(what, "->", exc)
        print("mlflow imported:", "mlflow" in sys.modules)
    """, tmp_path)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0] == "evolution ok 4" and lines[1] == "empty sync ok 0"
    for what in ("tracker", "autolog", "registry"):
        line = next(x for x in lines if x.startswith(f"{what} ->"))
        assert "pip install 'allele[mlflow]'" in line
    assert lines[-1] == "mlflow imported: False"


def test_cli_gives_one_line_error_without_mlflow(tmp_path: Path) -> None:
    proc = _run("""
        from allele.cli import main
        main(["genome", "list", "--tracking-uri", "sqlite:///x.db"])
    """, tmp_path)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert "pip install 'allele[mlflow]'" in proc.stderr
    help_proc = _run("""
        from allele.cli import main
        main(["--help"])
    """, tmp_path)
    assert help_proc.returncode == 0 and "genome" in help_proc.stdout
    assert "tracking" in help_proc.stdout
