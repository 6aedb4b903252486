"""What ``allele top`` reads from the store, by what the store's schema holds.

``top`` opens the store read-only, so a store written by an older Allele is not migrated (see
docs/store.md: it "serves every read"). Its runs are read as usual; what its schema does not
have yet is shown as unavailable, with the reason, instead of failing on a missing table:

* below :data:`LIVE_SCHEMA` (the event log and the packed telemetry points the tail reads) the
  Runs tab shows the stored runs' headers, re-read on every refresh, and no live series;
* below :data:`ALERTS_SCHEMA` there are no alerts or verdicts.

Every read goes through :class:`TopSource`, so the app has one place where a store error
(a damaged file, a server gone) comes from.
"""

from __future__ import annotations

from typing import Any

from allele.bench.lease import shown_status
from allele.bench.livestate import LiveState, RunProgress
from allele.observe.routing import alert_board
from allele.observe.tail import StoreTail
from allele.store.results import ResultStore

ALERTS_SCHEMA = 3
"""The schema version that added the alerts and silences (``schema._migration_3``)."""
LEASES_SCHEMA = 4
"""The schema version that added the run leases, which tell a killed run from a running one."""
LIVE_SCHEMA = 6
"""The schema version from which the tail can read: the event log came with 3, the telemetry
points it reads (``point_blocks``) with 6."""
MIGRATE_HINT = "a command that writes to the store (e.g. `allele dashboard`) migrates it"


class TopSource:
    """The store's runs, live series, alerts and verdicts for ``allele top``."""

    def __init__(self, store: ResultStore) -> None:
        self.store = store
        self.version = store.opened_version
        self.live = self.version >= LIVE_SCHEMA
        self.has_alerts = self.version >= ALERTS_SCHEMA
        self.state = LiveState()
        self.tail: StoreTail | None = None

    def unavailable(self, what: str, need: int) -> str:
        """Why ``what`` is not shown: the store's schema is older than version ``need``."""
        return (f"{what} unavailable: they need schema version {need}, this store has "
                f"{self.version} (written by an older Allele; read-only here, so not migrated); "
                f"{MIGRATE_HINT}")

    def notice(self) -> str | None:
        """What an older store cannot show, in short (None: it shows everything; the tabs
        that show nothing say how to migrate it)."""
        if self.live:
            return None
        missing = "live progress or series" + ("" if self.has_alerts else ", alerts or verdicts")
        return (f"store schema version {self.version}, from an older Allele (read-only: not "
                f"migrated): stored runs only, no {missing}")

    def start(self) -> None:
        """The first read: the newest runs' progress and the live series (or, on an older
        store, the runs' headers); then the tail begins after what was read."""
        if self.live:
            self.state.bootstrap(self.store)
            self.tail = StoreTail(self.store)
        else:
            self._headers()

    def read(self) -> dict[str, Any]:
        """What is new since the last read, folded in: the :meth:`LiveState.snapshot`."""
        if self.tail is not None:
            batch = self.tail.poll()
            self.state.apply(batch.events)
            self.state.apply_points(batch.points)
            self.state.check_holders(self.store)
        elif not self.live:
            self._headers()
        return self.state.snapshot()

    def _headers(self) -> None:
        """The stored runs' headers, as :meth:`LiveState.bootstrap` shows a run recorded
        without live telemetry (an older Allele may still be adding runs: re-read each time).
        Without leases in the schema a run is shown with its stored status."""
        state = LiveState()
        for info in reversed(self.store.list_runs(state.max_runs)):
            status, gone = (shown_status(self.store, info) if self.version >= LEASES_SCHEMA
                            else (info.status, False))
            state.runs[info.id] = RunProgress(
                info.id, name=info.name, spec=info.spec_name, status=status, holder_gone=gone,
                planned=info.cell_count, done=info.cell_count, failed=info.failed_count,
                started_at=info.created_at, updated_at=info.created_at,
                finished_at=info.finished_at)
        self.state = state

    def alerts(self, limit: int) -> list[dict[str, Any]] | None:
        """The ``limit`` most recently updated alerts of every source (None: unavailable)."""
        if not self.has_alerts:
            return None
        return list(alert_board(self.store, limit=limit)["alerts"])

    def verdicts(self, limit: int) -> list[dict[str, Any]] | None:
        """The ``limit`` most recent regression verdicts, read apart from the other alerts
        (hundreds of newer rule alerts must not hide them; None: unavailable)."""
        if not self.has_alerts:
            return None
        return list(alert_board(self.store, source="regression", limit=limit)["alerts"])
