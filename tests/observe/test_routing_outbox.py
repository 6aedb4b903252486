"""Alerting end to end in one process: rule evaluation -> AlertManager -> AlertRouter
(IntelligentAlertManager: dedup, inhibition, grouping, escalation) -> outbox -> channels
(a real local webhook receiver and a real local SMTP server)."""

from __future__ import annotations

import email
import random
from collections.abc import Iterator
from typing import Any

import pytest

from allele.analytics.correlate import IntelligentAlertManager
from allele.bench.alerting import identity_fingerprint
from allele.observe.channels import (
    AlertmanagerChannel,
    DeliveryError,
    EmailChannel,
    SlackChannel,
    WebhookChannel,
    alertmanager_alert,
    message_id,
    slack_payload,
)
from allele.observe.outbox import OutboxWorker
from allele.observe.routing import AlertRouter, alert_board
from allele.store import ResultStore
from allele.store import alerts as A
from allele.store.outbox import outbox_items, outbox_stats

from .conftest import ManualClock, Receiver


def _row(fp: str, labels: dict[str, str] | None = None, severity: str = "warning",
         starts_at: float = 1_700_000_000.0) -> A.AlertRow:
    return A.AlertRow(fp, "Slow", "rule", {"alertname": "Slow", **(labels or {})},
                      {"summary": "slow <b>cell</b>"}, severity, "firing", starts_at, value=2.0)


class SMTPSink:
    """aiosmtpd on 127.0.0.1: keeps every message."""

    def __init__(self) -> None:
        from aiosmtpd.controller import Controller

        self.messages: list[email.message.Message] = []
        sink = self

        class Handler:
            async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
                sink.messages.append(email.message_from_bytes(envelope.content))
                return "250 OK"

        from .conftest import free_port

        self.controller = Controller(Handler(), hostname="127.0.0.1", port=free_port())
        self.controller.start()
        self.port = self.controller.port

    def stop(self) -> None:
        self.controller.stop()


@pytest.fixture
def smtp() -> Iterator[SMTPSink]:
    s = SMTPSink()
    yield s
    s.stop()


def test_router_queues_per_channel_and_drops_duplicates(sqlite_store: ResultStore,
                                                        clock: ManualClock) -> None:
    router = AlertRouter(sqlite_store, ["webhook", "email"], clock=clock,
                         manager=IntelligentAlertManager(clock=clock, dedup_window_s=300))
    first = router.route(_row("fp1", {"component": "kraken-0"}), "firing", "fp1:firing:1")
    assert (first.outcome, first.queued) == ("queued", 2)
    assert first.group_id is not None
    clock.advance(60)
    again = router.route(_row("fp1", {"component": "kraken-0"}), "firing", "fp1:firing:2")
    assert again.outcome == "duplicate" and again.queued == 0
    done = router.route(_row("fp1", {"component": "kraken-0"}), "resolved", "fp1:resolved")
    assert (done.outcome, done.queued) == ("resolved", 2)
    stored = A.get_alert(sqlite_store, "fp1")
    assert stored is not None and stored.state == "resolved" and stored.group_id == first.group_id
    assert sorted({i.note_id for i in outbox_items(sqlite_store)}) == ["fp1:firing:1",
                                                                      "fp1:resolved"]


def test_silenced_and_inhibited_alerts_are_stored_but_not_sent(sqlite_store: ResultStore,
                                                               clock: ManualClock) -> None:
    router = AlertRouter(sqlite_store, ["webhook"], clock=clock,
                         manager=IntelligentAlertManager(clock=clock))
    A.add_silence(sqlite_store, {"alertname": "Slo*", "component": "agent-*"},
                  clock.now - 1, clock.now + 3600)
    assert router.route(_row("s1", {"component": "agent-0"}), "firing", "n1").outcome == (
        "silenced")
    sys_row = _row("sys", {"scope": "system", "host": "h1"}, severity="critical")
    comp_row = _row("cmp", {"scope": "component", "host": "h1"})
    assert router.route(sys_row, "firing", "n2").outcome == "queued"
    assert router.route(comp_row, "firing", "n3").outcome == "inhibited"
    assert {i.note_id for i in outbox_items(sqlite_store)} == {"n2"}
    board = alert_board(sqlite_store, now=clock.now)
    by_fp = {a["fingerprint"]: a for a in board["alerts"]}
    assert by_fp["s1"]["silenced"] and not by_fp["sys"]["silenced"]
    assert by_fp["cmp"]["annotations"]["inhibited_by"] == "sys"
    assert board["counts"]["silenced"] == 1


def test_regression_identity_alerts_once(sqlite_store: ResultStore, clock: ManualClock) -> None:
    router = AlertRouter(sqlite_store, ["webhook"], clock=clock,
                         manager=IntelligentAlertManager(clock=clock))
    fp = identity_fingerprint("base", "head", "cell|{}", "wall_s")
    assert fp == identity_fingerprint("base", "head", "cell|{}", "wall_s")
    assert fp != identity_fingerprint("base", "head2", "cell|{}", "wall_s")
    row = A.AlertRow(fp, "BenchmarkRegression", "regression", {"cell": "cell|{}"}, {}, "warning",
                     "firing", clock.now, identity={"base": "base"})
    assert router.raise_regression(row).outcome == "queued"
    clock.advance(10_000)  # long after the dedup window: the identity still decides
    assert router.raise_regression(row).outcome == "known"
    assert [i.note_id for i in outbox_items(sqlite_store)] == [f"regression:{fp}"]


def test_unacknowledged_groups_escalate_and_acknowledged_ones_do_not(
        sqlite_store: ResultStore, clock: ManualClock) -> None:
    manager = IntelligentAlertManager(clock=clock, escalate_after_s=600,
                                      escalation_threshold=0.5)
    router = AlertRouter(sqlite_store, ["webhook"], clock=clock, manager=manager)
    a = router.route(_row("c1", {"component": "x"}, severity="critical", starts_at=clock.now),
                     "firing", "c1:f")
    clock.advance(601)
    router.touch(["c1"])  # the heartbeat of an evaluator that still sees it firing
    esc = router.escalate()
    assert [(e.group_id, e.note_id) for e in esc] == [(a.group_id, f"escalation:{a.group_id}:1")]
    A.acknowledge(sqlite_store, ["c1"])
    clock.advance(601)
    router.touch(["c1"])
    assert router.escalate() == []


def test_outbox_worker_delivers_through_an_outage_with_stable_ids(
        sqlite_store: ResultStore, clock: ManualClock, receiver: Receiver,
        smtp: SMTPSink) -> None:
    channels = {"webhook": WebhookChannel(receiver.url),
                "email": EmailChannel("127.0.0.1", smtp.port, recipients=["ops@example.org"])}
    router = AlertRouter(sqlite_store, list(channels), clock=clock,
                         manager=IntelligentAlertManager(clock=clock))
    router.route(_row("fp9"), "firing", "fp9:firing:1")
    receiver.stop()  # the webhook receiver is down
    worker = OutboxWorker(sqlite_store, channels, backoff_initial_s=10, backoff_max_s=40,
                          clock=clock, rng=random.Random(1))
    assert worker.run_once() == 1  # e-mail delivered, webhook failed
    assert worker.failures == 1
    pending = outbox_items(sqlite_store, status="pending")
    assert [(p.channel, p.attempts) for p in pending] == [("webhook", 1)]
    assert 9.0 <= pending[0].next_at - clock.now <= 11.0  # backoff 10 s +-10% jitter
    worker2 = OutboxWorker(sqlite_store, channels, clock=clock)  # a restarted process
    assert worker2.run_once() == 0  # not due yet
    receiver.start()
    clock.advance(11)
    assert worker2.run_once() == 1
    assert receiver.keys == ["fp9:firing:1"]
    assert receiver.requests[0][1]["alert"]["fingerprint"] == "fp9"
    # the document docs/dashboard.md shows, key for key
    body = receiver.requests[0][1]
    assert set(body) == {"id", "kind", "status", "sent_at", "sentAt", "group_id", "alert"}
    assert set(body["alert"]) == {"fingerprint", "name", "source", "labels", "annotations",
                                  "severity", "value", "starts_at", "ends_at", "identity"}
    assert (body["id"], body["kind"], body["status"]) == ("fp9:firing:1", "alert", "firing")
    (msg,) = smtp.messages
    assert msg["Message-ID"] == message_id("fp9:firing:1") == "<fp9.firing.1@allele>"
    assert msg["Subject"].startswith("[FIRING] Slow:")
    assert outbox_stats(sqlite_store).to_dict() == {"pending": 0, "delivered": 2, "dead": 0,
                                                    "refused": 0}


def test_a_permanent_refusal_gives_up_at_once(sqlite_store: ResultStore,
                                              clock: ManualClock) -> None:
    bad = Receiver(status=400)
    bad.start()
    try:
        router = AlertRouter(sqlite_store, ["webhook"], clock=clock,
                             manager=IntelligentAlertManager(clock=clock))
        router.route(_row("x"), "firing", "x:1")
        worker = OutboxWorker(sqlite_store, {"webhook": WebhookChannel(bad.url)}, clock=clock)
        assert worker.run_once() == 0
        (dead,) = outbox_items(sqlite_store, status="dead")
        assert dead.last_error is not None and dead.last_error.startswith("HTTP 400")
    finally:
        bad.stop()


def test_payloads_of_slack_and_alertmanager() -> None:
    doc = {"id": "k1", "kind": "alert", "status": "resolved", "sent_at": 1_700_000_100.0,
           "alert": {"fingerprint": "f1", "name": "Slow", "severity": "warning",
                     "labels": {"cell": "a|{}", "bad-name": "v"},
                     "annotations": {"summary": "<@here> & co"}, "starts_at": 1_700_000_000.0,
                     "ends_at": None}}
    slack = slack_payload(doc)
    assert "&lt;@here&gt; &amp; co" in slack["text"] and "<@here>" not in slack["text"]
    assert slack["blocks"][0]["text"]["type"] == "mrkdwn"
    am = alertmanager_alert(doc)
    assert am["labels"]["allele_fingerprint"] == "f1"
    assert am["labels"]["bad_name"] == "v" and am["labels"]["alertname"] == "Slow"
    assert am["startsAt"] == "2023-11-14T22:13:20Z" and am["endsAt"] == "2023-11-14T22:15:00Z"
    assert am["annotations"]["allele_notification_id"] == "k1"
    with pytest.raises(Exception, match="http"):
        SlackChannel("ftp://x")
    with pytest.raises(DeliveryError):
        AlertmanagerChannel("http://127.0.0.1:9").deliver(doc)


def test_rule_evaluation_feeds_the_router(sqlite_store: ResultStore, clock: ManualClock,
                                          receiver: Receiver) -> None:
    from allele.core.observer import GenerationStats
    from allele.observe import AlertManager, AlertRule, Telemetry

    tel = Telemetry(background=False, system=False, clock=clock)
    rule = AlertRule.model_validate({"name": "Stagnating", "metric":
                                     "allele_evolution_stagnation_generations", "op": ">=",
                                     "threshold": 2, "severity": "info",
                                     "annotations": {"summary": "{component} is stuck"}})
    router = AlertRouter(sqlite_store, ["webhook"], clock=clock,
                         manager=IntelligentAlertManager(clock=clock))
    manager = AlertManager(tel, [rule], [router.notifier()], clock=clock)
    for g in range(4):
        tel.on_generation("evolution-7", GenerationStats(g, 0.5, 0.4, 0.1, 0.3, 10, 0.01))
    manager.evaluate()
    (stored,) = A.list_alerts(sqlite_store)
    assert (stored.name, stored.state, stored.annotations["summary"]) == (
        "Stagnating", "firing", "evolution-7 is stuck")
    OutboxWorker(sqlite_store, {"webhook": WebhookChannel(receiver.url)}, clock=clock).run_once()
    assert len(receiver.keys) == 1 and receiver.keys[0].startswith(stored.fingerprint)
