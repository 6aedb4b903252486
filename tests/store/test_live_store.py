"""The store as the bus: events tailed by id, the notification outbox, alerts and silences."""

from __future__ import annotations

import time

import pytest

from allele.errors import StoreError
from allele.store import ResultStore
from allele.store import alerts as A
from allele.store import outbox as O
from allele.store.live import Event, last_ids, point_series, prune, read_events, read_points_after
from allele.store.points import MetricPoint


def test_events_are_tailed_by_increasing_id_without_loss(store: ResultStore) -> None:
    assert last_ids(store) == (0, 0)
    store.append_events([Event("run_started", "bench:1", ts=1.0, run_id="r1", data={"cells": 3}),
                         Event("cell_started", "bench:1", ts=2.0, run_id="r1",
                               data={"key": "a|{}", "params": {"x": "<b>"}})])
    first = read_events(store, 0)
    assert [e.kind for e in first] == ["run_started", "cell_started"]
    assert first[1].data == {"key": "a|{}", "params": {"x": "<b>"}}
    assert first[0].id < first[1].id
    store.append_events([Event("cell_stored", "bench:1", ts=3.0, run_id="r2")])
    after = read_events(store, first[-1].id)
    assert [e.kind for e in after] == ["cell_stored"]
    assert [e.kind for e in read_events(store, 0, run_id="r1")] == ["run_started", "cell_started"]
    assert [e.kind for e in read_events(store, 0, kinds=["cell_stored"])] == ["cell_stored"]
    assert last_ids(store)[0] == after[0].id


def test_points_are_tailed_and_listed_and_pruned(store: ResultStore) -> None:
    store.write_metric_points([MetricPoint("m", "c", (("k", "v"),), 10.0, 1.0),
                               MetricPoint("m", "d", (), 20.0, 2.0),
                               MetricPoint("n", "c", (), 30.0, 3.0)])
    pts = read_points_after(store, 0)
    assert [(p.metric, p.component, p.value) for _, p in pts] == [
        ("m", "c", 1.0), ("m", "d", 2.0), ("n", "c", 3.0)]
    assert pts[0][1].labels == (("k", "v"),)
    assert [p.value for _, p in read_points_after(store, pts[0][0], metrics=["m"])] == [2.0]
    assert point_series(store) == [("m", "c", 1, 10.0), ("m", "d", 1, 20.0), ("n", "c", 1, 30.0)]
    store.append_events([Event("x", "s", ts=5.0), Event("y", "s", ts=50.0)])
    assert prune(store, 25.0) == (1, 2)
    assert [p.value for _, p in read_points_after(store, 0)] == [3.0]


def test_outbox_queues_once_per_channel_claims_leases_and_counts_refusals(
        sqlite_store: ResultStore) -> None:
    db = sqlite_store
    assert O.enqueue(db, "n1", ["webhook", "email"], {"id": "n1"}, now=100.0) == (2, 0)
    assert O.enqueue(db, "n1", ["webhook", "email"], {"id": "n1"}, now=100.0) == (0, 0)
    # a limit of 3 pending rows: one more fits, the second channel is refused and counted
    assert O.enqueue(db, "n2", ["webhook", "email"], {"id": "n2"}, limit=3, now=101.0) == (1, 1)
    assert O.outbox_stats(db).to_dict() == {"pending": 3, "delivered": 0, "dead": 0,
                                            "refused": 1}
    got = O.claim_due(db, ["webhook"], now=200.0, lease_s=30.0)
    assert sorted(i.note_id for i in got) == ["n1", "n2"]
    assert O.claim_due(db, ["webhook"], now=210.0) == []  # leased
    assert [i.note_id for i in O.claim_due(db, ["webhook"], now=231.0)] == ["n1", "n2"]
    O.mark_delivered(db, got[0].pk, now=232.0)
    O.mark_failed(db, got[1].pk, "HTTP 503", retry_at=300.0)
    O.mark_failed(db, O.claim_due(db, ["email"], now=232.0)[0].pk, "refused", retry_at=None)
    stats = O.outbox_stats(db)
    assert (stats.pending, stats.delivered, stats.dead) == (1, 1, 1)
    pending = O.outbox_items(db, status="pending")
    assert pending[0].attempts == 1 and pending[0].last_error == "HTTP 503"
    assert O.claim_due(db, ["webhook"], now=299.0) == []
    assert len(O.claim_due(db, ["webhook"], now=300.0)) == 1
    assert O.read_counters(db) == {O.REFUSED_COUNTER: 1.0}


def test_alerts_upsert_tells_new_identities_and_keeps_acknowledgements(
        sqlite_store: ResultStore) -> None:
    db = sqlite_store
    row = A.AlertRow("fp1", "Slow", "regression", {"cell": "a"}, {"summary": "x"}, "warning",
                     "firing", 100.0, value=1.2, identity={"base": "b", "head": "h"})
    assert A.upsert_alert(db, row, only_new=True) is True
    assert A.upsert_alert(db, row, only_new=True) is False
    assert A.acknowledge(db, ["fp1", "nope"], at=5.0) == 1
    from dataclasses import replace

    assert A.upsert_alert(db, replace(row, state="resolved", ends_at=200.0)) is False
    got = A.get_alert(db, "fp1")
    assert got is not None
    assert (got.state, got.ends_at, got.acknowledged_at, got.starts_at) == (
        "resolved", 200.0, 5.0, 100.0)
    assert got.identity == {"base": "b", "head": "h"}
    assert [a.fingerprint for a in A.list_alerts(db, states=["resolved"])] == ["fp1"]
    assert A.list_alerts(db, states=["firing"]) == []


def test_silences_are_stored_listed_and_expired(sqlite_store: ResultStore) -> None:
    db = sqlite_store
    now = time.time()
    s = A.add_silence(db, {"alertname": "Slow*"}, now - 1, now + 60, "deploy")
    assert [x.id for x in A.list_silences(db, active_at=now)] == [s.id]
    assert A.expire_silence(db, s.id) is True
    assert A.list_silences(db, active_at=now + 1) == []
    assert A.expire_silence(db, s.id) is False
    with pytest.raises(StoreError, match="matcher"):
        A.add_silence(db, {}, now, now + 1)
    with pytest.raises(StoreError, match="end after"):
        A.add_silence(db, {"a": "b"}, now, now)
