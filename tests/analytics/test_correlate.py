from __future__ import annotations

import math

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


def _disk(severity: str, starts_at: float) -> dict[str, object]:
    return {"name": "DiskFull", "labels": {"host": "b"}, "severity": severity,
            "starts_at": starts_at}


@pytest.mark.parametrize("reverse", [False, True])
def test_batch_dedup_is_judged_on_start_times_whatever_the_order(reverse: bool) -> None:
    from allele.analytics.correlate import correlate_batch

    # 100,000 s apart: two incidents, far beyond the 300 s dedup window.
    far = [_disk("warning", 1_700_000_000.0), _disk("critical", 1_699_900_000.0)]
    upd = correlate_batch(far[::-1] if reverse else far)
    assert upd.duplicates == []
    assert sorted((e.severity, e.starts_at) for e in upd.accepted) == [
        ("critical", 1_699_900_000.0), ("warning", 1_700_000_000.0)]
    assert sorted(g.severity for g in upd.groups) == ["critical", "warning"]
    # 100 s apart: one alert; the more severe survives, the other is the duplicate.
    near = [_disk("critical", 1_700_000_100.0), _disk("warning", 1_700_000_000.0)]
    upd = correlate_batch(near[::-1] if reverse else near)
    assert [(e.severity, e.starts_at) for e in upd.accepted] == [("critical", 1_700_000_100.0)]
    assert [(e.severity, e.starts_at) for e in upd.duplicates] == [("warning", 1_700_000_000.0)]
    assert [g.severity for g in upd.groups] == ["critical"]
    # critical, age 0, seen twice (the duplicate counts toward frequency), criticality 0.5
    expected = 0.4 * 1.0 + 0.2 * (1 - math.exp(-1 / 3)) + 0.2 * 0.5
    assert upd.priorities[upd.groups[0].id] == pytest.approx(expected)


def test_live_manager_dedups_on_arrival_and_reports_a_rise_in_severity() -> None:
    now = [1000.0]
    mgr = IntelligentAlertManager(dedup_window_s=300, clock=lambda: now[0])
    first = AlertEvent("fp", "Slow", {"host": "h"}, "warning", 990.0)
    assert mgr.process([first]).accepted == [first]
    now[0] = 1060.0  # the same alert notified again (same start) within the window
    assert mgr.process([first]).duplicates == [first]
    now[0] = 1200.0  # and again later: still a duplicate, the window slides with each sighting
    assert mgr.process([first]).duplicates == [first]
    now[0] = 1600.0  # a repeat notification after the window is news again
    assert mgr.process([first]).accepted == [first]
    # More severe than the one already reported: accepted, not swallowed as a duplicate.
    now[0] = 1610.0
    worse = AlertEvent("fp", "Slow", {"host": "h"}, "critical", 990.0)
    upd = mgr.process([worse])
    assert (upd.accepted, upd.duplicates) == ([worse], [])
    now[0] = 1620.0
    assert mgr.process([first]).duplicates == [first]  # less severe than the survivor
    with pytest.raises(AnalyticsError, match="dedup_clock 'wall'; use arrival or start"):
        IntelligentAlertManager(dedup_clock="wall")  # type: ignore[arg-type]


def test_severities_match_in_any_case_and_unknown_ones_are_refused() -> None:
    loud = as_alert_event({"name": "NodeDown", "labels": {}, "severity": "CRITICAL",
                           "starts_at": 100.0})
    assert loud.severity == "critical"
    mgr = IntelligentAlertManager(clock=lambda: 100.0)
    quiet = AlertEvent("w", "Slow", {}, "warning", 100.0)
    assert mgr.priority(loud) == pytest.approx(0.4 * 1.0 + 0.2 * 0.5)
    assert mgr.priority(loud) > mgr.priority(quiet)
    assert AlertEvent("e", "E", {}, "Error", 1.0).severity == "error"
    accepted = "severity must be one of critical, error, warning, info \\(in any case\\)"
    with pytest.raises(AnalyticsError, match=f"alert 'x': {accepted}, got 'bogus'"):
        as_alert_event({"name": "x", "labels": {}, "severity": "bogus", "starts_at": 1})
    with pytest.raises(AnalyticsError, match=f"alert 'x': {accepted}, got None"):
        as_alert_event({"name": "x", "labels": {}, "severity": None, "starts_at": 1})
    with pytest.raises(AnalyticsError, match=f"alert 'y': {accepted}, got 'sev1'"):
        AlertEvent("y", "y", {}, "sev1", 1.0)
    assert as_alert_event({"name": "x", "starts_at": 1}).severity == "warning"  # absent: default


def test_non_finite_times_series_and_batch_values_are_refused() -> None:
    from allele.analytics.correlate import correlate_batch

    base = {"name": "x", "labels": {}, "severity": "warning", "starts_at": 1.0}
    with pytest.raises(AnalyticsError, match="alert 'x': starts_at must be finite: seconds"):
        as_alert_event({**base, "starts_at": float("nan")})
    with pytest.raises(AnalyticsError, match="alert 'x': ends_at must be finite.*got inf"):
        as_alert_event({**base, "ends_at": float("inf")})
    with pytest.raises(AnalyticsError, match="alert 'x': series must be finite"):
        as_alert_event({**base, "series": [1.0, float("nan"), 2.0, 3.0]})
    # A live rule alert may carry its metric's infinite value; a batch read from a file may not.
    assert as_alert_event({**base, "value": float("inf")}).value == float("inf")
    with pytest.raises(AnalyticsError, match="alert 'x': value must be a finite number, got inf"):
        correlate_batch([{**base, "value": float("inf")}])
    with pytest.raises(AnalyticsError, match="now must be a finite time"):
        correlate_batch([base], now=float("nan"))
