"""Alert correlation and an alert manager with deduplication, inhibition, priority and escalation.

Input alerts are :class:`AlertEvent` records; :func:`as_alert_event` adapts the observability
layer's ``allele.observe.alert_model.Alert`` (and any object or dict with the same fields) to it,
so this module does not depend on the observe package.

:class:`AlertCorrelator` groups alerts that belong together. The distance between two alerts
combines three features scaled to [0, 1]: label difference (Jaccard distance of their label
pairs, ignoring ``alertname`` and ``severity``), time proximity (``|dt| / time_window_s``, capped
at 1) and co-movement of their metric windows (``1 - |corr|`` of the first differences, when
both alerts carry a ``series``). Two rules keep unrelated alerts apart:

* alerts whose ``host`` or ``instance`` labels differ (both present) are never linked
  (distance 1): one shared label such as ``scope=component`` used to link simultaneous alerts
  on different hosts;
* groups are formed by complete linkage cut at ``eps`` (scipy's hierarchical clustering): every
  pair in a group is closer than ``eps``. DBSCAN and single linkage chain: A close to B close
  to C put A and C together however far apart they were (alerts 0.89 apart ended in one group).
  ``eps`` = 0.35 was chosen on seeds 0-19 of the labelled set and is reported on seeds 100-149.

Validated on :func:`~allele.analytics.synthetic_answers.mixed_incidents` (simultaneous incidents
on different hosts, chains of unrelated alerts just within the time window, flapping singletons):
pairwise precision and recall are printed by ``benchmarks/analytics_real_answers.py``.

Group ids are stable across batches: the correlator retains recent alerts (``retention_s``; each
occurrence, a fingerprint and a start time, is one alert) and clusters each batch with them; a
cluster inherits the id of its earliest member that already had one, and a new cluster's id is
derived from its earliest member's fingerprint and start time (sha1, never Python's salted
``hash()``), so it does not depend on the batch.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from allele.analytics._common import FloatArray, stable_fingerprint
from allele.errors import AnalyticsError

__all__ = [
    "AlertCorrelator",
    "AlertEvent",
    "AlertGroup",
    "Escalation",
    "InhibitRule",
    "IntelligentAlertManager",
    "ManagerUpdate",
    "as_alert_event",
    "correlate_batch",
]

SEVERITY_WEIGHT = {"critical": 1.0, "error": 0.8, "warning": 0.6, "info": 0.2}
"""The known severities (lower case) and their weight in an alert's priority."""


def _severity(value: Any, alert: Any) -> str:
    """``value`` as one of the known severities, matched case-insensitively, or an
    AnalyticsError naming the alert and the accepted values. An unknown severity used to be
    weighted 0.5, below ``warning``: ``"CRITICAL"`` (or a typo) ranked an outage under a warning.
    """
    if isinstance(value, str) and value.lower() in SEVERITY_WEIGHT:
        return value.lower()
    raise AnalyticsError(f"alert {alert!r}: severity must be one of "
                         f"{', '.join(SEVERITY_WEIGHT)} (in any case), got {value!r}")


@dataclass(frozen=True)
class AlertEvent:
    """The minimal alert the analytics layer needs."""

    fingerprint: str
    name: str
    labels: Mapping[str, str]
    severity: str
    starts_at: float
    state: str = "firing"
    ends_at: float | None = None
    value: float | None = None
    series: tuple[float, ...] | None = field(default=None, compare=False)
    """Optional recent values of the alert's metric (for co-movement)."""

    def __post_init__(self) -> None:
        # Every event carries a known, lower-case severity, however it was built: priorities
        # and group severities look it up in SEVERITY_WEIGHT.
        object.__setattr__(self, "severity", _severity(self.severity, self.name))

    @property
    def component(self) -> str | None:
        """The ``component`` label, if any."""
        return self.labels.get("component")


def as_alert_event(obj: Any) -> AlertEvent:
    """Adapt an observe ``Alert``, an :class:`AlertEvent`, a dict or any object with
    ``fingerprint``, ``name``, ``labels``, ``severity`` and ``starts_at`` (or ``active_at``).

    Times (``starts_at``, ``active_at``, ``ends_at``) are finite seconds since the epoch, as
    the observe layer records them; ``labels`` is an object of names to values; ``severity`` one
    of :data:`SEVERITY_WEIGHT` in any case (``warning`` when absent); ``value`` a number and
    ``series`` a list of finite numbers. Anything else is an AnalyticsError naming the alert, the
    field and the accepted form (a string start time was an internal ``ValueError``; a NaN start
    was accepted and sorted nowhere). ``value`` may be infinite or NaN here: a live rule alert
    reports its metric as it was, and the manager never computes with it;
    :func:`correlate_batch`, which reads a batch from a file, refuses such a value.
    """
    if isinstance(obj, AlertEvent):
        return obj

    def get(key: str, default: Any = None) -> Any:
        if isinstance(obj, Mapping):
            return obj.get(key, default)
        return getattr(obj, key, default)

    raw_labels = get("labels") or {}
    if not isinstance(raw_labels, Mapping):
        raise AnalyticsError(f"alert {get('name')!r}: labels must be an object of names to "
                             f"values, e.g. {{\"host\": \"h1\"}}, got {raw_labels!r}")
    labels = dict(raw_labels)
    name = get("name") or labels.get("alertname")
    starts = get("starts_at")
    if starts is None:
        starts = get("active_at")
    if name is None or starts is None:
        raise AnalyticsError("an alert needs a name and a start time (starts_at or active_at)")
    fp = get("fingerprint") or stable_fingerprint([str(name)] + [
        f"{k}={v}" for k, v in sorted(labels.items())])
    series = get("series")
    if series is not None and (isinstance(series, str | bytes) or not isinstance(series, Iterable)):
        raise AnalyticsError(f"alert {name!r}: series must be a list of numbers, got "
                             f"{str(series)[:40]!r}")
    return AlertEvent(
        fingerprint=str(fp), name=str(name), labels=labels,
        severity=get("severity", "warning"),
        starts_at=_number(starts, name, "starts_at", _TIME_FORM),
        state=str(get("state", "firing")),
        ends_at=None if get("ends_at") is None else _number(get("ends_at"), name, "ends_at",
                                                            _TIME_FORM),
        value=None if get("value") is None else _number(get("value"), name, "value", "a number",
                                                        finite=False),
        series=None if series is None else tuple(
            _number(v, name, "series", "a list of finite numbers") for v in series),
    )


_TIME_FORM = "seconds since the epoch (a number, e.g. 1700000000.5)"


def _number(value: Any, alert: Any, field_name: str, form: str, *, finite: bool = True) -> float:
    """``value`` as a float, or an AnalyticsError naming the alert, the field and ``form``.

    With ``finite`` (the default), NaN and infinities are refused too: Python's JSON reader
    accepts ``NaN`` and ``Infinity``, and a NaN start time compares false with every other,
    so its alert was neither a duplicate nor in time order, and a NaN in a series broke the
    clustering."""
    if isinstance(value, bool) or not isinstance(value, int | float | np.number):
        raise AnalyticsError(f"alert {alert!r}: {field_name} must be {form}, got {value!r}")
    number = float(value)
    if finite and not math.isfinite(number):
        raise AnalyticsError(f"alert {alert!r}: {field_name} must be finite: {form}, "
                             f"got {value!r}")
    return number


@dataclass
class AlertGroup:
    """Alerts that belong to one incident."""

    id: str
    alerts: list[AlertEvent]

    @property
    def starts_at(self) -> float:
        """Start of the earliest alert."""
        return min(a.starts_at for a in self.alerts)

    @property
    def severity(self) -> str:
        """The most severe member severity."""
        return max((a.severity for a in self.alerts), key=SEVERITY_WEIGHT.__getitem__)

    @property
    def common_labels(self) -> dict[str, str]:
        """Label pairs shared by every member."""
        first = dict(self.alerts[0].labels)
        return {k: v for k, v in first.items() if all(a.labels.get(k) == v for a in self.alerts)}

    @property
    def fingerprints(self) -> list[str]:
        """Member fingerprints, sorted."""
        return sorted(a.fingerprint for a in self.alerts)


def _occurrence(a: AlertEvent) -> tuple[str, float]:
    """One occurrence of an alert: its fingerprint and start (a repeated notification of a
    firing alert is the same occurrence; the same alert firing again later is another)."""
    return a.fingerprint, a.starts_at


def _label_distance(a: AlertEvent, b: AlertEvent, ignore: frozenset[str]) -> float:
    sa = {(k, v) for k, v in a.labels.items() if k not in ignore}
    sb = {(k, v) for k, v in b.labels.items() if k not in ignore}
    union = sa | sb
    return 0.0 if not union else 1.0 - len(sa & sb) / len(union)


def _comove_distance(a: AlertEvent, b: AlertEvent) -> float | None:
    if a.series is None or b.series is None:
        return None
    n = min(len(a.series), len(b.series))
    if n < 4:
        return None
    da = np.diff(np.asarray(a.series[-n:], dtype=np.float64))
    db = np.diff(np.asarray(b.series[-n:], dtype=np.float64))
    if np.std(da) == 0 or np.std(db) == 0:
        return None
    r = float(np.corrcoef(da, db)[0, 1])
    return 1.0 - abs(r)


class AlertCorrelator:
    """Groups alerts by shared labels, time proximity and co-movement, never across hosts and
    without chaining (see module docstring)."""

    def __init__(
        self,
        time_window_s: float = 600.0,
        eps: float = 0.35,
        weights: tuple[float, float, float] = (0.4, 0.3, 0.3),
        ignore_labels: Sequence[str] = ("alertname", "severity"),
        retention_s: float = 3600.0,
        identity_labels: Sequence[str] = ("host", "instance"),
        linkage: Literal["complete", "average", "single"] = "complete",
    ) -> None:
        if linkage not in ("complete", "average", "single"):
            raise AnalyticsError(f"unknown linkage {linkage!r}; use complete, average or single")
        self.linkage = linkage
        self.time_window_s = time_window_s
        self.eps = eps
        self.identity_labels = tuple(identity_labels)
        self.weights = weights
        self.ignore_labels = tuple(ignore_labels)
        self.retention_s = retention_s
        # Keyed by occurrence, (fingerprint, starts_at): keyed by fingerprint alone, an alert
        # that fired again later replaced its earlier occurrence, and of two far apart in one
        # batch only the last was grouped (the other vanished from the output).
        self._retained: dict[tuple[str, float], AlertEvent] = {}
        self._group_of: dict[tuple[str, float], str] = {}

    def distance_matrix(self, alerts: Sequence[AlertEvent]) -> FloatArray:
        """Pairwise combined distances in [0, 1]."""
        n = len(alerts)
        ignore = frozenset(self.ignore_labels)
        wl, wt, wc = self.weights
        d = np.zeros((n, n))
        for i in range(n):
            for j in range(i + 1, n):
                a, b = alerts[i], alerts[j]
                if any(a.labels.get(k) is not None and b.labels.get(k) is not None
                       and a.labels[k] != b.labels[k] for k in self.identity_labels):
                    d[i, j] = d[j, i] = 1.0  # different machines: never one group
                    continue
                parts = [(wl, _label_distance(a, b, ignore)),
                         (wt, min(1.0, abs(a.starts_at - b.starts_at) / self.time_window_s))]
                cm = _comove_distance(a, b)
                if cm is not None:
                    parts.append((wc, cm))
                total_w = sum(w for w, _ in parts)
                d[i, j] = d[j, i] = sum(w * v for w, v in parts) / total_w
        return d

    def _labels(self, d: FloatArray) -> list[int]:
        """Hierarchical clusters cut at ``eps``; with complete linkage (the default) every pair
        in a group is within ``eps`` (``single`` is kept only to measure how it chains)."""
        n = d.shape[0]
        if n < 2:
            return list(range(n))
        from scipy.cluster.hierarchy import fcluster, linkage
        from scipy.spatial.distance import squareform

        tree = linkage(squareform(d, checks=False), method=self.linkage)
        return [int(v) for v in fcluster(tree, t=self.eps, criterion="distance")]

    def correlate(self, alerts: Iterable[Any]) -> list[AlertGroup]:
        """Group a batch (together with retained recent alerts); returns the groups that contain
        at least one alert of this batch, oldest group first."""
        batch = [as_alert_event(a) for a in alerts]
        if not batch:
            return []
        # Alerts of earlier batches are kept while they started within retention_s of the
        # newest alert; the current batch is always clustered whole.
        newest = max(a.starts_at for a in batch)
        self._retained = {k: a for k, a in self._retained.items()
                          if newest - a.starts_at <= self.retention_s}
        for a in batch:
            self._retained[_occurrence(a)] = a
        pool = sorted(self._retained.values(), key=lambda a: (a.starts_at, a.fingerprint))
        labels = self._labels(self.distance_matrix(pool))
        clusters: dict[int, list[AlertEvent]] = {}
        for lab, a in zip(labels, pool, strict=True):
            clusters.setdefault(lab, []).append(a)
        batch_keys = {_occurrence(a) for a in batch}
        groups = []
        for members in clusters.values():
            members.sort(key=lambda a: (a.starts_at, a.fingerprint))
            known = [self._group_of[_occurrence(a)] for a in members
                     if _occurrence(a) in self._group_of]
            if known:
                gid = known[0]
            else:
                first = members[0]
                gid = "g-" + stable_fingerprint([first.fingerprint, repr(first.starts_at)])[:10]
            for a in members:
                self._group_of[_occurrence(a)] = gid
            if any(_occurrence(a) in batch_keys for a in members):
                groups.append(AlertGroup(gid, members))
        groups.sort(key=lambda g: (g.starts_at, g.id))
        return groups


@dataclass(frozen=True)
class InhibitRule:
    """A firing alert matching ``source`` mutes alerts matching ``target`` when they agree on
    every label in ``equal`` (Alertmanager semantics)."""

    source: Mapping[str, str]
    target: Mapping[str, str]
    equal: tuple[str, ...] = ("host",)

    def mutes(self, src: AlertEvent, tgt: AlertEvent) -> bool:
        """Whether ``src`` mutes ``tgt`` under this rule."""
        if src.fingerprint == tgt.fingerprint or src.state != "firing":
            return False
        if any(src.labels.get(k) != v for k, v in self.source.items()):
            return False
        if any(tgt.labels.get(k) != v for k, v in self.target.items()):
            return False
        return all(src.labels.get(k) is not None and src.labels.get(k) == tgt.labels.get(k)
                   for k in self.equal)


DEFAULT_INHIBIT = (InhibitRule({"scope": "system"}, {"scope": "component"}, ("host",)),)


@dataclass(frozen=True)
class Escalation:
    """An unacknowledged high-priority group was escalated to ``level``."""

    group_id: str
    level: int
    priority: float
    at: float


@dataclass
class _GroupState:
    group: AlertGroup
    first_seen: float
    acknowledged: bool = False
    level: int = 0
    last_escalated: float | None = None


@dataclass
class ManagerUpdate:
    """What one :meth:`IntelligentAlertManager.process` call did."""

    accepted: list[AlertEvent]
    duplicates: list[AlertEvent]
    inhibited: list[tuple[AlertEvent, str]]
    """(muted alert, fingerprint of the alert that muted it)."""
    groups: list[AlertGroup]
    priorities: dict[str, float]
    """Priority per group id of this update."""


class IntelligentAlertManager:
    """Deduplication, inhibition, grouping, priority and escalation of alerts.

    * Dedup: an alert whose fingerprint was last seen within ``dedup_window_s`` of it is a
      duplicate; it only raises that fingerprint's frequency count. "Seen" is measured on the
      ``dedup_clock``: ``"arrival"`` (the default, for alerts arriving over time, as the observe
      router feeds them) is the manager's clock when :meth:`process` sees the alert, so a repeated
      notification of a still-firing alert is a duplicate within the window and news after it;
      ``"start"`` (a batch read at once, :func:`correlate_batch`) is the alerts' own
      ``starts_at``, since a batch has no arrival times: before, every alert of a file "arrived"
      at one instant, so two alerts 100,000 s apart were duplicates and the first in the file won.
      Each call takes its alerts in ``starts_at`` order. Of two alerts merged as duplicates the
      more severe survives, whatever their order; a more severe alert than the one accepted in an
      earlier call is accepted (a rise in severity is news, and that one was already reported).
    * Inhibition: with the default rule, a firing ``scope=system`` alert mutes ``scope=component``
      alerts of the same ``host`` (they are explained by it) while it is active.
    * Grouping: the remaining alerts go through the :class:`AlertCorrelator`.
    * Priority in [0, 1]: ``0.4 severity + 0.2 duration + 0.2 frequency + 0.2 criticality``, with
      duration ``1 - exp(-age / escalate_after_s)``, frequency ``1 - exp(-(count - 1) / 3)`` and
      the component's criticality (default 0.5). A group's priority is its highest member's.
    * Escalation: :meth:`check_escalations` escalates unacknowledged groups whose priority is at
      least ``escalation_threshold`` and that are older than ``escalate_after_s`` (again every
      ``escalate_after_s``). The clock is injected (``clock``) for tests.
    """

    def __init__(
        self,
        correlator: AlertCorrelator | None = None,
        dedup_window_s: float = 300.0,
        inhibit_rules: Sequence[InhibitRule] = DEFAULT_INHIBIT,
        criticality: Mapping[str, float] | None = None,
        escalate_after_s: float = 600.0,
        escalation_threshold: float = 0.7,
        clock: Callable[[], float] = time.time,
        dedup_clock: Literal["arrival", "start"] = "arrival",
    ) -> None:
        if dedup_clock not in ("arrival", "start"):
            raise AnalyticsError(f"unknown dedup_clock {dedup_clock!r}; use arrival or start")
        self.dedup_clock = dedup_clock
        self.correlator = correlator if correlator is not None else AlertCorrelator()
        self.dedup_window_s = dedup_window_s
        self.inhibit_rules = tuple(inhibit_rules)
        self.criticality = dict(criticality or {})
        self.escalate_after_s = escalate_after_s
        self.escalation_threshold = escalation_threshold
        self.clock = clock
        self._last_seen: dict[str, float] = {}
        self._survivor: dict[str, AlertEvent] = {}
        """The accepted alert that later duplicates of a fingerprint merge into."""
        self._count: dict[str, int] = {}
        self._active: dict[str, AlertEvent] = {}
        self._groups: dict[str, _GroupState] = {}

    def priority(self, alert: AlertEvent) -> float:
        """The priority of one alert now."""
        now = self.clock()
        sev = SEVERITY_WEIGHT[alert.severity]
        age = max(0.0, now - alert.starts_at)
        dur = 1.0 - math.exp(-age / self.escalate_after_s)
        freq = 1.0 - math.exp(-(self._count.get(alert.fingerprint, 1) - 1) / 3.0)
        crit = self.criticality.get(alert.component or "", 0.5)
        return 0.4 * sev + 0.2 * dur + 0.2 * freq + 0.2 * crit

    def group_priority(self, group: AlertGroup) -> float:
        """The highest member priority."""
        return max(self.priority(a) for a in group.alerts)

    def process(self, alerts: Iterable[Any]) -> ManagerUpdate:
        """Take a batch of alerts through dedup, inhibition and grouping."""
        now = self.clock()
        accepted, duplicates = self._dedup([as_alert_event(a) for a in alerts], now)
        inhibited: list[tuple[AlertEvent, str]] = []
        kept: list[AlertEvent] = []
        sources = list(self._active.values())
        for ev in accepted:
            by = next((s.fingerprint for s in sources for rule in self.inhibit_rules
                       if rule.mutes(s, ev)), None)
            if by is not None:
                inhibited.append((ev, by))
            else:
                kept.append(ev)
        groups = self.correlator.correlate(kept)
        priorities: dict[str, float] = {}
        for g in groups:
            state = self._groups.get(g.id)
            if state is None:
                self._groups[g.id] = _GroupState(g, first_seen=now)
            else:
                state.group = g
            priorities[g.id] = self.group_priority(g)
        return ManagerUpdate(accepted, duplicates, inhibited, groups, priorities)

    def _dedup(self, events: list[AlertEvent], now: float
               ) -> tuple[list[AlertEvent], list[AlertEvent]]:
        """Split firing ``events`` into accepted alerts and duplicates (see the class docstring);
        resolved ones leave the active set."""
        accepted: list[AlertEvent] = []
        duplicates: list[AlertEvent] = []
        here: dict[str, int] = {}  # fingerprint -> index in accepted of this call's survivor
        for ev in sorted(events, key=lambda e: e.starts_at):  # stable: ties keep their order
            fp = ev.fingerprint
            if ev.state == "resolved":
                self._active.pop(fp, None)
                continue
            seen = now if self.dedup_clock == "arrival" else ev.starts_at
            last = self._last_seen.get(fp)
            self._last_seen[fp] = seen
            self._count[fp] = self._count.get(fp, 0) + 1
            survivor = self._survivor.get(fp)
            if (last is not None and survivor is not None
                    and abs(seen - last) <= self.dedup_window_s):
                if SEVERITY_WEIGHT[ev.severity] <= SEVERITY_WEIGHT[survivor.severity]:
                    duplicates.append(ev)
                    continue
                if fp in here:  # merged within this call: the more severe takes its place
                    duplicates.append(accepted[here[fp]])
                    accepted[here[fp]] = ev
                    self._survivor[fp] = self._active[fp] = ev
                    continue
            self._survivor[fp] = self._active[fp] = ev
            here[fp] = len(accepted)
            accepted.append(ev)
        return accepted, duplicates

    def acknowledge(self, group_id: str) -> None:
        """Mark a group acknowledged (it will not escalate)."""
        if group_id not in self._groups:
            raise AnalyticsError(f"unknown alert group {group_id!r}")
        self._groups[group_id].acknowledged = True

    def check_escalations(self) -> list[Escalation]:
        """Escalate the groups that are due (see the class docstring)."""
        now = self.clock()
        out = []
        for gid, st in sorted(self._groups.items()):
            if st.acknowledged:
                continue
            prio = self.group_priority(st.group)
            if prio < self.escalation_threshold:
                continue
            since = st.last_escalated if st.last_escalated is not None else st.first_seen
            if now - since >= self.escalate_after_s:
                st.level += 1
                st.last_escalated = now
                out.append(Escalation(gid, st.level, prio, now))
        return out

    @property
    def groups(self) -> dict[str, AlertGroup]:
        """Every group seen so far, by id."""
        return {gid: st.group for gid, st in self._groups.items()}


def correlate_batch(alerts: Iterable[Any], now: float | None = None) -> ManagerUpdate:
    """One batch of alerts through a fresh :class:`IntelligentAlertManager` (default settings)
    whose clock stands at ``now``, by default the newest alert's start: a batch read from a file
    is judged as of its own time, so its ages (and priorities) do not grow with the file's age.

    Duplicates are judged on the alerts' own start times (``dedup_clock="start"``), so the
    result does not depend on the order of the batch. A ``value`` that is not finite (JSON's
    ``NaN`` / ``Infinity``, which Python reads) is an AnalyticsError naming the alert and the
    field: a file of alerts has no reason to hold one."""
    events = [as_alert_event(a) for a in alerts]
    for e in events:
        if e.value is not None and not math.isfinite(e.value):
            raise AnalyticsError(f"alert {e.name!r}: value must be a finite number, "
                                 f"got {e.value!r}")
    if now is not None and not math.isfinite(now):
        raise AnalyticsError(f"now must be a finite time (seconds since the epoch), got {now!r}")
    clock_now = now if now is not None else max((e.starts_at for e in events), default=0.0)
    manager = IntelligentAlertManager(clock=lambda: clock_now, dedup_clock="start")
    return manager.process(events)
