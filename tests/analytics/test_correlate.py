from __future__ import annotations

import pytest

from allele.analytics.correlate import (
    AlertCorrelator,
    AlertEvent,
    AlertGroup,
    IntelligentAlertManager,
    as_alert_event,
)
from allele.analytics.synthetic import SyntheticAlert, incident_alerts
from allele.analytics.synthetic_answers import mixed_incidents, pair_scores
from allele.errors import AnalyticsError


def _by_incident(groups: list[AlertGroup], alerts: list[SyntheticAlert]) -> dict[str, set[int]]:
    inc = {a.fingerprint: a.incident for a in alerts}
    return {g.id: {inc[a.fingerprint] for a in g.alerts} for g in groups}


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_incidents_grouped_and_separated(seed: int) -> None:
    alerts = incident_alerts(n_incidents=2, alerts_per_incident=4, seed=seed)
    groups = AlertCorrelator().correlate(alerts)
    assert len(groups) == 2
    assert sorted(len(g.alerts) for g in groups) == [4, 4]
    assert all(len(incs) == 1 for incs in _by_incident(groups, alerts).values())


def test_group_ids_are_stable_across_batches() -> None:
    alerts = sorted(incident_alerts(n_incidents=2, alerts_per_incident=4, seed=3),
                    key=lambda a: a.starts_at)
    whole = {frozenset(g.fingerprints): g.id
             for g in AlertCorrelator(retention_s=7200).correlate(alerts)}
    corr = AlertCorrelator(retention_s=7200)
    first = corr.correlate(alerts[:2])
    second = corr.correlate(alerts[2:])
    ids_first = {g.id for g in first}
    incident0 = next(g for g in second if alerts[0].fingerprint in g.fingerprints)
    assert incident0.id in ids_first  # same incident keeps its id in the next batch
    final = {frozenset(g.fingerprints): g.id for g in second}
    assert final == whole  # ids do not depend on how alerts were batched


def test_one_shared_label_does_not_link_hosts() -> None:
    a = AlertEvent("a", "HighCPU", {"host": "h1", "scope": "component"}, "warning", 100.0)
    b = AlertEvent("b", "HighCPU", {"host": "h2", "scope": "component"}, "warning", 100.0)
    c = AlertEvent("c", "HighRSS", {"host": "h1", "scope": "component"}, "warning", 130.0)
    groups = AlertCorrelator().correlate([a, b, c])
    assert sorted(g.fingerprints for g in groups) == [["a", "c"], ["b"]]
    assert AlertCorrelator().distance_matrix([a, b])[0, 1] == 1.0


def test_no_chaining_through_intermediate_alerts() -> None:
    # five alerts on one host, 4 minutes apart: neighbours are close, the ends 16 minutes apart
    alerts = [AlertEvent(f"a{i}", "X", {"host": "h"}, "warning", 240.0 * i) for i in range(5)]
    single = AlertCorrelator(linkage="single").correlate(alerts)
    assert len(single) == 1  # single linkage chains them all
    groups = AlertCorrelator().correlate(alerts)
    assert len(groups) > 1
    for g in groups:
        span = max(x.starts_at for x in g.alerts) - min(x.starts_at for x in g.alerts)
        assert span <= 600.0
    with pytest.raises(AnalyticsError):
        AlertCorrelator(linkage="ward")  # type: ignore[arg-type]


def test_labelled_incidents_with_mixed_noise() -> None:
    """20 labelled sets (seeds 100-119; eps was chosen on seeds 0-19): 6 incidents, half of them
    simultaneous with one on another host, chains of unrelated alerts on one host, flapping
    singletons, a quarter of alerts without a metric window. Pairwise precision >= 0.85 and
    recall >= 0.95 (measured 0.92 and 1.00; the former DBSCAN at eps 0.5 without the host rule:
    0.16)."""
    precision, recall, base = [], [], []
    for seed in range(100, 120):
        alerts = mixed_incidents(seed)
        truth = {a.fingerprint: a.incident for a in alerts}
        groups = AlertCorrelator(retention_s=1e9).correlate(alerts)
        p, r = pair_scores([g.fingerprints for g in groups], truth)
        precision.append(p)
        recall.append(r)
        # the former behaviour: DBSCAN (min_samples 2 = single linkage) at eps 0.5, no host rule
        chained = AlertCorrelator(retention_s=1e9, eps=0.5, linkage="single",
                                  identity_labels=()).correlate(alerts)
        base.append(pair_scores([g.fingerprints for g in chained], truth)[0])
    assert sum(precision) / 20 >= 0.85 and sum(recall) / 20 >= 0.95
    assert sum(base) / 20 < 0.5


def test_manager_dedup_inhibition_priority_escalation() -> None:
    now = [1000.0]
    mgr = IntelligentAlertManager(dedup_window_s=300, escalate_after_s=600,
                                  escalation_threshold=0.6,
                                  criticality={"llm": 1.0, "store": 0.1}, clock=lambda: now[0])
    sys_alert = AlertEvent("sys", "HostOOM", {"host": "h1", "scope": "system"}, "critical", 990.0)
    comp = AlertEvent("c1", "SlowGeneration", {"host": "h1", "scope": "component",
                                               "component": "llm"}, "warning", 995.0)
    other = AlertEvent("c2", "SlowStore", {"host": "h2", "scope": "component",
                                           "component": "store"}, "info", 995.0)
    upd = mgr.process([sys_alert, comp, other])
    assert [(e.fingerprint, by) for e, by in upd.inhibited] == [("c1", "sys")]
    assert {e.fingerprint for e in upd.accepted} == {"sys", "c1", "c2"}
    # Duplicate inside the window is dropped, but counts towards frequency.
    now[0] = 1100.0
    upd2 = mgr.process([other])
    assert [e.fingerprint for e in upd2.duplicates] == ["c2"]
    assert upd2.groups == []
    # Priority: critical system alert outranks an info alert on a non-critical component.
    assert mgr.priority(sys_alert) > mgr.priority(other)
    sys_group = next(g for g in mgr.groups.values() if "sys" in g.fingerprints)
    other_group = next(g for g in mgr.groups.values() if "c2" in g.fingerprints)
    # Escalation only after escalate_after_s, only for high priority, not when acknowledged.
    assert mgr.check_escalations() == []
    now[0] = 1700.0
    esc = mgr.check_escalations()
    assert [e.group_id for e in esc] == [sys_group.id]
    assert esc[0].level == 1
    assert mgr.check_escalations() == []  # not again until another period passes
    now[0] = 2400.0
    mgr.acknowledge(sys_group.id)
    assert mgr.check_escalations() == []
    assert other_group.id not in {e.group_id for e in esc}
    with pytest.raises(AnalyticsError):
        mgr.acknowledge("g-unknown")


def test_adapter_accepts_observe_alerts_and_dicts() -> None:
    from allele.observe.alert_model import Alert

    obs = Alert(name="HighRSS", labels={"host": "h", "component": "kraken"}, annotations={},
                severity="critical", state="firing", value=9.5, fingerprint="fp1",
                active_at=10.0, starts_at=None, ends_at=None)
    ev = as_alert_event(obs)
    assert (ev.fingerprint, ev.starts_at, ev.severity, ev.component) == ("fp1", 10.0,
                                                                         "critical", "kraken")
    d = as_alert_event({"name": "X", "labels": {"a": "1"}, "starts_at": 5})
    assert d.fingerprint == as_alert_event({"name": "X", "labels": {"a": "1"},
                                            "starts_at": 6}).fingerprint
    with pytest.raises(AnalyticsError):
        as_alert_event({"labels": {}})


def test_co_movement_separates_alerts_with_equal_labels_and_times() -> None:
    import numpy as np

    rng = np.random.default_rng(0)
    base = np.cumsum(rng.normal(size=60))
    labels = {"host": "h", "scope": "component"}
    a = AlertEvent("a", "A", labels, "warning", 0.0, series=tuple(base))
    b = AlertEvent("b", "B", labels, "warning", 0.0, series=tuple(2 * base + 1))
    c = AlertEvent("c", "C", labels, "warning", 0.0,
                   series=tuple(np.cumsum(rng.normal(size=60))))
    d = AlertCorrelator().distance_matrix([a, b, c])
    assert d[0, 1] < 0.05  # moved together
    assert d[0, 2] > d[0, 1] + 0.15  # independent series push them apart
