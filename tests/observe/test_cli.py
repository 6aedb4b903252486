"""``allele observe``: rules, metrics, and serve (a real process scraped over HTTP)."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from typer.testing import CliRunner

from allele.cli.observe import app
from allele.observe import CATALOGUE

from .conftest import free_port

runner = CliRunner()


def test_rules_lists_the_defaults() -> None:
    result = runner.invoke(app, ["rules"])
    assert result.exit_code == 0, result.output
    assert "AgentFailureRatioHigh" in result.output and "ProcessRSSHigh" in result.output


def test_rules_validates_a_file(tmp_path: Path) -> None:
    good = tmp_path / "r.yaml"
    good.write_text("rules:\n  - name: Threads\n    metric: allele_process_threads\n"
                    "    threshold: 100\n    for: 2m\n")
    result = runner.invoke(app, ["rules", str(good)])
    assert result.exit_code == 0 and "Threads" in result.output and "120s" in result.output
    bad = tmp_path / "bad.yaml"
    bad.write_text("rules:\n  - name: X\n    metric: allele_process_threads\n    op: '~'\n"
                   "    threshold: 1\n")
    result = runner.invoke(app, ["rules", str(bad)])
    assert result.exit_code != 0
    assert "rule X" in str(result.exception)


def test_metrics_lists_the_catalogue() -> None:
    result = runner.invoke(app, ["metrics"], env={"COLUMNS": "250"})
    assert result.exit_code == 0
    for name in CATALOGUE:
        assert name in result.output


@pytest.mark.slow
def test_serve_process_is_scraped_over_http(tmp_path: Path) -> None:
    port = free_port()
    proc = subprocess.Popen(
        [str(Path(sys.executable).parent / "allele"), "observe", "serve", "--port", str(port),
         "--demo", "evolution", "--duration", "60", "--interval", "0.5",
         "--store", f"sqlite:///{tmp_path / 'r.db'}"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=tmp_path)
    try:
        fams: dict[str, object] = {}
        deadline = time.monotonic() + 45
        while time.monotonic() < deadline:
            try:
                text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=2).text
            except httpx.HTTPError:
                time.sleep(0.2)
                continue
            fams = {f.name: f for f in text_string_to_metric_families(text)}
            if "allele_evolution_best_fitness" in fams and fams[
                    "allele_evolution_best_fitness"].samples:  # type: ignore[attr-defined]
                break
            time.sleep(0.2)
        assert "allele_evolution_best_fitness" in fams, proc.poll()
        best = fams["allele_evolution_best_fitness"].samples[0]  # type: ignore[attr-defined]
        assert best.labels == {"component": "evolution-demo"} and 0 < best.value <= 1
        assert "allele_process_rss_bytes" in fams
    finally:
        proc.terminate()
        out, _ = proc.communicate(timeout=30)
    assert f"serving http://127.0.0.1:{port}/metrics" in out
