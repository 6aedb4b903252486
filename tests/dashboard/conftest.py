"""A dashboard over a copy of the golden store with a live run's events in it, through FastAPI's
TestClient (the app's lifespan runs: store, live hub, no delivery)."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from allele.config import load_settings
from allele.dashboard.web.app import create_app
from allele.dashboard.web.context import DashboardConfig
from allele.store import open_store
from allele.store.live import Event
from allele.store.points import MetricPoint

GOLDEN = Path(__file__).resolve().parents[1] / "golden" / "store.db"
EVO = 'evolution|{"generations":20,"population_size":250}'


def make_store(path: Path) -> str:
    shutil.copyfile(GOLDEN, path)
    url = f"sqlite:///{path}"
    with open_store(url) as st:
        st.append_events([
            Event("run_started", "bench:1", ts=1000.0, run_id="live1",
                  data={"name": "live-run", "spec": "s", "cells": 3, "skipped": 0}),
            Event("cell_started", "bench:1", ts=1001.0, run_id="live1",
                  data={"key": "k1", "benchmark": "b", "params": {"x": 1}}),
            Event("cell_stored", "bench:1", ts=1002.0, run_id="live1",
                  data={"key": "k1", "status": "ok", "done": 1, "failed": 0})])
        st.write_metric_points([MetricPoint("allele_evolution_best_fitness", "9:evolution-0", (),
                                            1000.0 + i, 0.5 + (i % 7) / 100 + (0.3 if i == 150 else 0.0))
                                for i in range(200)]
                               + [MetricPoint("cpu_gauge", "user", (("k", "v"),), 1000.0, 7.0)])
    return url


@pytest.fixture(scope="module")
def store_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    return make_store(tmp_path_factory.mktemp("dash") / "store.db")


@pytest.fixture(scope="module")
def client(store_url: str) -> Iterator[TestClient]:
    app = create_app(DashboardConfig(store_url=store_url, deliver=False,
                                     settings=load_settings(notify={})))
    with TestClient(app) as c:
        yield c
