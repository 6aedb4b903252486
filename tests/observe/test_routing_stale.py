"""A rule alert whose evaluator stopped is not shown firing forever: the manager's router
refreshes its firing alerts in the store, and the Alerts page shows one not refreshed for
``RULE_STALE_S`` as resolved (stale); a regression alert, which has no evaluator, stays."""

from __future__ import annotations

from allele.analytics.correlate import IntelligentAlertManager
from allele.observe import Telemetry
from allele.observe.alerts import AlertManager
from allele.observe.routing import REFRESH_S, AlertRouter, alert_board
from allele.store import ResultStore
from allele.store import alerts as A

from .conftest import ManualClock
from .test_alerts import gen, rule


def _board_states(store: ResultStore, now: float, **kw: object) -> dict[str, tuple[str, bool]]:
    board = alert_board(store, now=now, **kw)  # type: ignore[arg-type]
    return {a["labels"]["alertname"]: (a["state"], a["stale"]) for a in board["alerts"]}


def test_a_firing_alert_goes_stale_when_its_evaluator_stops(sqlite_store: ResultStore,
                                                            clock: ManualClock) -> None:
    tel = Telemetry(background=False, system=False, clock=clock)
    router = AlertRouter(sqlite_store, clock=clock, manager=IntelligentAlertManager(clock=clock))
    am = AlertManager(tel, [rule(**{"for": 0})], [router.notifier()], clock=clock)
    tel.on_generation("evolution-0", gen(0, 2.5))
    (a,) = am.evaluate()
    assert a.state == "firing"
    regression = A.AlertRow("reg1", "BenchmarkRegression", "regression",
                            {"alertname": "BenchmarkRegression"}, {}, "warning", "firing",
                            clock.now)
    router.raise_regression(regression)
    # the evaluator keeps running for 10 minutes: the alert is refreshed, never stale
    for _ in range(20):
        clock.advance(30)
        tel.on_generation("evolution-0", gen(1, 2.5))
        am.evaluate()
        assert _board_states(sqlite_store, clock.now)["SlowGeneration"] == ("firing", False)
    last_seen = A.get_alert(sqlite_store, a.fingerprint)
    assert last_seen is not None and clock.now - last_seen.updated_at <= REFRESH_S
    # it stops (killed: nothing resolves the alert in the store)
    stopped = last_seen.updated_at
    assert _board_states(sqlite_store, stopped + 299)["SlowGeneration"] == ("firing", False)
    later = stopped + 301
    states = _board_states(sqlite_store, later)
    assert states["SlowGeneration"] == ("resolved", True)
    assert states["BenchmarkRegression"] == ("firing", False)
    board = alert_board(sqlite_store, now=later)
    assert board["counts"]["firing"] == 1 and board["counts"]["resolved"] == 1
    stale = next(x for x in board["alerts"] if x["stale"])
    assert stale["ends_at"] == stopped
    # filters follow what is shown, not what is stored
    assert set(_board_states(sqlite_store, later, states=["firing"])) == {"BenchmarkRegression"}
    assert set(_board_states(sqlite_store, later, states=["resolved"])) == {"SlowGeneration"}
    # a new router (another dashboard or serve process) neither adopts nor escalates it
    other = AlertRouter(sqlite_store, clock=lambda: later,
                        manager=IntelligentAlertManager(clock=lambda: later))
    assert other.adopt() == 1  # the regression only
    t = ManualClock(later)
    escalating = AlertRouter(sqlite_store, clock=t, manager=IntelligentAlertManager(
        clock=t, escalate_after_s=60, escalation_threshold=0.0))
    escalating.manager.process([{"fingerprint": a.fingerprint, "name": a.name,
                                 "labels": a.labels, "severity": "critical",
                                 "starts_at": stopped - 600, "state": "firing",
                                 "value": 2.5}])
    t.advance(61)  # its group is due to escalate (it would, were the alert refreshed) ...
    assert escalating.escalate() == []  # ... but its alert is stale
    # an evaluator that comes back refreshes it: firing again
    clock.now = t.now
    tel.on_generation("evolution-0", gen(2, 2.5))
    am.evaluate()
    assert _board_states(sqlite_store, clock.now)["SlowGeneration"] == ("firing", False)
