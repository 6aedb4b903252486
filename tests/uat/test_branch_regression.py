"""Scenario 3: a user introduces a regression in a branch of their own project.

The project is a git repository with one module and a spec. On a branch, a new code path makes
the ``mode=sorted`` cells do about 10% more work. The user runs ``allele bench ab`` (the working
tree against ``main``), and then looks where Allele says to look: the exit code and the table,
the HTML report (in Chromium), the webhook they configured, the dashboard (its API and its Alerts
page in Chromium), MLflow, and ``allele analyze rca``. The verdicts asserted are on instruction
counts (``instruments: [time, instructions]``), which do not depend on how busy this machine is.
"""

from __future__ import annotations

import subprocess
import textwrap
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.dashboard_server import chromium, free_port
from tests.uat.conftest import User, Webhook

pytestmark = [pytest.mark.uat, pytest.mark.slow, pytest.mark.browser]

LIBRARY = textwrap.dedent('''
    """A user's library: checksums of integer ranges."""


    def checksum(n: int, mode: str) -> int:
        total = 0
        for i in range(n):
            total = (total * 31 + i) % 1_000_003
        return total


    def bench_checksum(params, seed):
        checksum(params["n"] + seed, params["mode"])
        return {}
''')

SLOW_PATH = '''        total = (total * 31 + i) % 1_000_003
    if mode == "sorted":  # the branch's new code path: one more pass over a tenth of the range
        for i in range(n // 10):
            total = (total * 17 + i) % 1_000_003
'''

SPEC = textwrap.dedent("""
    name: shapes
    benchmarks:
      - name: checksum
        target: shapes:bench_checksum
        matrix:
          n: [10000, 15000, 20000, 25000, 30000, 40000]
          mode: [plain, sorted]
        seeds: 3
        repeats: 4
        instruments: [time, instructions]
        instruction_seeds: 1
""")


def _git(user: User, *args: str, cwd: Path) -> None:
    res = user.run("git", "-c", "user.email=dev@example.org", "-c", "user.name=dev", *args,
                   cwd=cwd)
    assert res.code == 0, res.err


def _project(user: User) -> Path:
    proj = user.home / "shapes"
    proj.mkdir()
    (proj / "shapes.py").write_text(LIBRARY)
    (proj / "bench.yaml").write_text(SPEC)
    _git(user, "init", "-q", "-b", "main", cwd=proj)
    _git(user, "add", "-A", cwd=proj)
    _git(user, "commit", "-qm", "shapes: checksums", cwd=proj)
    _git(user, "checkout", "-q", "-b", "faster-sums", cwd=proj)
    text = (proj / "shapes.py").read_text()
    (proj / "shapes.py").write_text(text.replace(
        "        total = (total * 31 + i) % 1_000_003\n", SLOW_PATH))
    _git(user, "commit", "-qam", "shapes: sorted mode", cwd=proj)
    return proj


def _regressed_cells(rows: list[dict[str, Any]]) -> set[str]:
    return {r["params_text"] if "params_text" in r else
            ", ".join(f"{k}={v}" for k, v in sorted(r["params"].items()))
            for r in rows if r["verdict"] == "regressed"}


def test_a_branch_regression_is_seen_everywhere(user: User, webhook: Webhook,
                                               tmp_path: Path) -> None:
    proj = _project(user)
    user.env["ALLELE_NOTIFY__WEBHOOK_URL"] = webhook.url
    mlflow_uri = f"sqlite:///{user.home / 'mlflow.db'}"

    # 1. the A/B session: exit 1; on instruction counts exactly the sorted cells regressed,
    # by about 10%, and no time row of a plain cell moved either way
    ab = user.allele("bench", "ab", "bench.yaml", "--base", "main", "--json",
                     "--report", "ab.html", "--mlflow", mlflow_uri, cwd=proj)
    assert ab.code == 1, ab.out + ab.err
    result = ab.json()
    counted = [r for r in result["rows"] if r["metric"] == "instructions"]
    assert len(counted) == 12
    for r in counted:
        expect = "regressed" if r["params"]["mode"] == "sorted" else "unchanged"
        assert r["verdict"] == expect, r
    assert all(1.05 < r["ratio"] < 1.15 for r in counted if r["params"]["mode"] == "sorted")
    regressed = [r for r in result["rows"] if r["verdict"] == "regressed"]
    assert {r["params"]["mode"] for r in regressed} == {"sorted"}, [
        (r["params"], r["metric"], r["reason"]) for r in regressed]
    base, head = result["base"]["name"], result["head"]["name"]
    assert "regression alerts raised" in ab.err

    # 2. the webhook got one notification per regressed row, naming the cell and the verdict
    deadline = time.monotonic() + 30
    while len(webhook.received()) < len(regressed) and time.monotonic() < deadline:
        time.sleep(0.2)
    alerts = [b["alert"] for b in webhook.received()]
    assert len(alerts) == len(regressed), alerts
    assert all(a["labels"]["params"].startswith("mode=sorted") for a in alerts)
    assert all(a["annotations"]["verdict"].startswith("regressed: +") for a in alerts)

    # 3. the report, in Chromium: the regressed cells stand out, the page has no script error
    report = proj / "ab.html"
    assert report.exists()
    with chromium() as browser:
        page = browser.new_page(viewport={"width": 1400, "height": 900})
        errors: list[str] = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto(report.as_uri())
        page.wait_for_load_state("load")
        text = page.inner_text("body")
        page.screenshot(path=str(tmp_path / "uat-report.png"), full_page=True)
        assert not errors, errors
        assert "regressed" in text and "mode=sorted" in text

        # 4. the dashboard: the comparison and the alerts, over the API and on the Alerts page
        port = free_port()
        dash = subprocess.Popen([*user.allele_command(), "dashboard", "--port", str(port),
                                 "--no-deliver"], env=user.env, cwd=user.home,
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        try:
            url = f"http://127.0.0.1:{port}"
            deadline = time.monotonic() + 60
            while True:
                try:
                    httpx.get(url + "/api/runs", timeout=2).raise_for_status()
                    break
                except httpx.HTTPError:
                    assert time.monotonic() < deadline and dash.poll() is None, "no dashboard"
                    time.sleep(0.3)
            comp = httpx.get(url + "/api/compare", params={"base": base, "head": head},
                             timeout=60).json()
            assert _regressed_cells(comp["rows"]) == _regressed_cells(result["rows"])
            listed = httpx.get(url + "/api/alerts", timeout=30).json()["alerts"]
            firing = [a for a in listed if a["name"] == "BenchmarkRegression"]
            assert len(firing) == len(regressed)
            page.goto(url + "/alerts")
            page.wait_for_selector("text=BenchmarkRegression", timeout=30_000)
            page.screenshot(path=str(tmp_path / "uat-alerts.png"), full_page=True)
            assert "mode=sorted" in page.inner_text("body")
        finally:
            dash.terminate()
            dash.wait(timeout=30)

    # 5. MLflow: both halves, HEAD's cells carry their verdicts
    from mlflow import MlflowClient

    client = MlflowClient(mlflow_uri)
    exp = client.get_experiment_by_name("allele")
    assert exp is not None
    runs = client.search_runs([exp.experiment_id], max_results=100)
    sides = {r.data.tags.get("allele.ab_side"): r for r in runs if "allele.ab_side" in r.data.tags}
    assert set(sides) == {"base", "head"}
    assert sides["head"].data.tags["allele.regressed"] == str(len(regressed))
    verdicts = {r.data.params["mode"]: r.data.tags.get("allele.verdict.instructions")
                for r in runs if r.data.tags.get("mlflow.parentRunId") == sides["head"].info.run_id
                and r.data.params.get("n") == "40000"}
    assert verdicts == {"sorted": "regressed", "plain": "unchanged"}

    # 6. why? rca names the mode parameter first
    rca = user.ok("analyze", "rca", base, head, "--metric", "instructions", "--json")
    causes = rca.json()
    first = causes["causes"][0] if isinstance(causes, dict) else causes[0]
    assert first["name"] == "mode", causes
