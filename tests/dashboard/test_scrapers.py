"""Many scrapers at once, on loopback: Telemetry's /metrics server and the web dashboard's
/metrics and JSON API each answer every concurrent request with a valid, complete answer."""

from __future__ import annotations

import json
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from allele.core.observer import GenerationStats
from allele.observe import Telemetry
from allele.observe.export import make_registry, serve
from allele.store import open_store
from allele.store.points import MetricPoint
from tests.e2e.dashboard_server import serve_dashboard

from .conftest import make_store

SCRAPERS = 24
ROUNDS = 4


def _get(url: str) -> tuple[int, bytes]:
    with urllib.request.urlopen(url, timeout=30) as resp:
        return int(resp.status), resp.read()


def _scrape_all(urls: list[str]) -> list[tuple[str, int, bytes]]:
    jobs = [u for u in urls for _ in range(SCRAPERS * ROUNDS // len(urls))]
    with ThreadPoolExecutor(SCRAPERS) as pool:
        return [(u, *r) for u, r in zip(jobs, pool.map(_get, jobs), strict=True)]


def test_concurrent_scrapers_of_telemetry_metrics_all_get_the_same_counts() -> None:
    tel = Telemetry(background=False, system=False)
    for g in range(50):
        tel.on_generation("evolution-0", GenerationStats(
            generation=g, best=g / 50, mean=0.1, std=0.1, diversity=0.3, evaluations=10,
            seconds=0.01))
    server = serve(make_registry(tel), port=0)
    try:
        answers = _scrape_all([server.url])
    finally:
        server.close()
    assert len(answers) == SCRAPERS * ROUNDS
    for _, status, body in answers:
        assert status == 200
        fams = {f.name: f for f in text_string_to_metric_families(body.decode())}
        gens = [s.value for s in fams["allele_evolution_generations"].samples
                if s.name.endswith("_total")]
        assert gens == [50.0]
        best = fams["allele_evolution_best_fitness"].samples
        assert [s.value for s in best] == [49 / 50]


def test_concurrent_scrapers_of_the_dashboard_all_get_valid_answers(tmp_path: Path) -> None:
    url = make_store(tmp_path / "store.db")
    with serve_dashboard(url, deliver=False) as base:
        with open_store(url) as st:  # a point the dashboard's tail picks up after it started
            st.write_metric_points([MetricPoint("scrape_probe", "c", (), time.time(), 42.0)])
        deadline = time.monotonic() + 20
        while b"scrape_probe" not in _get(f"{base}/metrics")[1]:
            assert time.monotonic() < deadline, "the dashboard never tailed the point"
            time.sleep(0.1)
        answers = _scrape_all([f"{base}/metrics", f"{base}/api/runs?limit=5",
                               f"{base}/api/live"])
    assert len(answers) == SCRAPERS * ROUNDS
    runs_seen = set()
    for u, status, body in answers:
        assert status == 200, u
        if u.endswith("/metrics"):
            fams = {f.name: f for f in text_string_to_metric_families(body.decode())}
            assert "allele_dashboard_events" in fams
            assert [x.value for x in fams["scrape_probe"].samples] == [42.0]
        elif "/api/runs" in u:
            doc = json.loads(body)
            assert len(doc["runs"]) == 5 and doc["total"] >= 5
            runs_seen.add(tuple(r["name"] for r in doc["runs"]))
        else:
            assert isinstance(json.loads(body), dict)
    assert len(runs_seen) == 1  # every scraper saw the same newest runs


@pytest.mark.parametrize("host", ["0.0.0.0", "::"])
def test_metrics_refuse_to_serve_beyond_loopback_without_a_token(host: str) -> None:
    from allele.errors import ConfigError

    with pytest.raises(ConfigError, match="beyond this machine"):
        serve(make_registry(Telemetry(background=False, system=False)), port=0, host=host)
