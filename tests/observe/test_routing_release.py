"""An evaluator that stops cleanly ends its firing alerts: ``allele observe serve`` stores them
resolved ("observer stopped") instead of leaving them firing until they go stale minutes later.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from allele.analytics.correlate import IntelligentAlertManager
from allele.observe import Telemetry
from allele.observe.alerts import AlertManager
from allele.observe.routing import AlertRouter, alert_board
from allele.store import ResultStore, open_store
from allele.store import alerts as A
from allele.store.outbox import outbox_items
from tests.faults.cli import allele

from .conftest import ManualClock
from .test_alerts import gen, rule


def test_release_stores_the_firing_rule_alerts_resolved_without_notifying(
        sqlite_store: ResultStore, clock: ManualClock) -> None:
    tel = Telemetry(background=False, system=False, clock=clock)
    router = AlertRouter(sqlite_store, ["webhook"], clock=clock,
                         manager=IntelligentAlertManager(clock=clock))
    am = AlertManager(tel, [rule(**{"for": 0})], [router.notifier()], clock=clock)
    tel.on_generation("evolution-0", gen(0, 2.5))
    (a,) = am.evaluate()
    regression = A.AlertRow("reg1", "BenchmarkRegression", "regression",
                            {"alertname": "BenchmarkRegression"}, {}, "warning", "firing",
                            clock.now)
    router.raise_regression(regression)
    queued = len(outbox_items(sqlite_store))
    clock.advance(40)
    assert router.release([a.fingerprint, "reg1", "unknown"], "observer stopped") == 1
    row = A.get_alert(sqlite_store, a.fingerprint)
    assert row is not None and row.state == "resolved" and row.ends_at == clock.now
    assert row.annotations == {"summary": "evolution-0 took 2.5s",
                               "resolved_reason": "observer stopped"}
    stored_regression = A.get_alert(sqlite_store, "reg1")
    assert stored_regression is not None and stored_regression.state == "firing"
    assert len(outbox_items(sqlite_store)) == queued  # nobody told: it was not seen to clear
    board = alert_board(sqlite_store, now=clock.now)
    assert board["counts"]["firing"] == 1 and board["counts"]["resolved"] == 1
    assert router.release([a.fingerprint], "observer stopped") == 0  # already resolved
    # an evaluator that starts again and still sees the condition fires it again
    am2 = AlertManager(tel, [rule(**{"for": 0})], [router.notifier()], clock=clock)
    clock.advance(5)
    tel.on_generation("evolution-0", gen(1, 2.5))
    am2.evaluate()
    again = A.get_alert(sqlite_store, a.fingerprint)
    assert again is not None and again.state == "firing" and again.ends_at is None
    assert "resolved_reason" not in again.annotations


def test_serve_ending_at_its_duration_resolves_its_firing_alerts(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ALLELE_OBSERVE__SAMPLE_INTERVAL_S", "0.1")
    url = f"sqlite:///{tmp_path / 'alerts.db'}"
    open_store(url).close()
    rules = tmp_path / "rules.yaml"
    rules.write_text("rules:\n  - {name: Always, metric: allele_process_rss_bytes, op: '>', "
                     "threshold: 0}\n")
    code, out, err = allele("observe", "serve", "--port", "0", "--store", url, "--rules",
                            str(rules), "--interval", "0.1", "--duration", "2")
    assert code == 0, (out, err)
    with open_store(url) as st:
        (stored,) = A.list_alerts(st)
    assert stored.name == "Always" and stored.state == "resolved"
    assert stored.annotations["resolved_reason"] == "observer stopped"
    assert stored.ends_at is not None and stored.ends_at >= stored.starts_at
