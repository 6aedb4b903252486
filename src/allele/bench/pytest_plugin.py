"""pytest plugin: record the ``benchmark`` fixture's results straight into the result store.

    pytest benchmarks/micro --allele-store sqlite:///.allele/results.db --allele-run micro-abc

Enabled by ``--allele-store`` or ``--allele-run`` (either one; the store defaults to the
configured one). Before any test runs the store is opened and the run name checked: a name the
store already holds is a usage error then, not after every benchmark ran. At the end of the
session every benchmark pytest-benchmark measured becomes one cell of a new run, with one
``wall_s`` sample per round (see :mod:`allele.bench.importers` for the cell keys), so ``allele
bench compare`` and ``allele bench regressions`` work on them. Register it with ``-p
allele.bench.pytest_plugin`` (or through the ``pytest11`` entry point).
"""

from __future__ import annotations

import time
from typing import Any

import pytest

from allele.errors import AlleleError

_KEY = "allele_recorded_run"
_FAILED = pytest.StashKey[list[dict[str, Any]]]()


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("allele", "record pytest-benchmark results in Allele's result store")
    group.addoption("--allele-store", dest="allele_store", default=None, metavar="URL",
                    help="Result store URL to record benchmark results into "
                         "(default: the configured store).")
    group.addoption("--allele-run", dest="allele_run", default=None, metavar="NAME",
                    help="Name of the run to create (default: pytest-<timestamp>).")


def _enabled(config: pytest.Config) -> bool:
    return bool(config.getoption("allele_store") or config.getoption("allele_run"))


@pytest.hookimpl(trylast=True)  # after pytest-benchmark's own configure made its session
def pytest_configure(config: pytest.Config) -> None:
    """Refuse, before any test runs, what would only fail once every benchmark had run: a run
    name the store already holds, a store that cannot be opened, no pytest-benchmark."""
    if not _enabled(config) or hasattr(config, "workerinput"):  # xdist workers: not theirs
        return
    try:
        check_session(config)
    except AlleleError as exc:
        raise pytest.UsageError(f"allele: {exc}") from None


def check_session(config: pytest.Config) -> None:
    """What :func:`pytest_configure` checks (AlleleError naming the option at fault). The store
    is opened as the recording will open it (created when missing)."""
    from allele.store import open_store

    collect_benchmarks(config)  # pytest-benchmark active
    name = config.getoption("allele_run")
    url = config.getoption("allele_store")
    try:
        store = open_store(url)
    except AlleleError as exc:
        raise AlleleError(f"--allele-store: {exc}") from None
    with store:
        if name is None:
            return
        if name == "latest":
            raise AlleleError("--allele-run latest: 'latest' is reserved and cannot be a run "
                              "name; choose another")
        taken = store.run_name_taken(name)
    if taken:
        raise AlleleError(f"--allele-run {name}: a run named {name!r} already exists in the "
                          "store; choose another name")


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    """Remember benchmark tests that failed: pytest-benchmark drops them from its results."""
    report = yield
    if (report.when == "call" and report.failed and _enabled(item.config)
            and "benchmark" in getattr(item, "fixturenames", ())):
        callspec = getattr(item, "callspec", None)
        message = call.excinfo.exconly() if call.excinfo is not None else "failed"
        item.config.stash.setdefault(_FAILED, []).append({
            "name": item.name, "fullname": item.nodeid,
            "params": dict(callspec.params) if callspec is not None else None,
            "group": None, "error": message.splitlines()[0][:500] if message else "failed",
        })
    return report


def collect_benchmarks(config: pytest.Config) -> list[tuple[dict[str, Any], bool]]:
    """``(as_dict with raw data, has_error)`` for every benchmark of the session."""
    session = getattr(config, "_benchmarksession", None)
    if session is None:
        raise AlleleError("--allele-store needs pytest-benchmark (its plugin is not active)")
    out = []
    for bench in session.benchmarks:
        out.append((bench.as_dict(include_data=True), bool(bench.has_error)))
    return out


def record_session(config: pytest.Config) -> str | None:
    """Write the session's benchmarks into the store as one run; its id (None: nothing ran)."""
    from allele.bench.environment import fingerprint
    from allele.bench.importers import SOURCE, cell_from_benchmark, record_cells
    from allele.store import open_store

    now = time.time()
    cells = {}
    for bench, has_error in collect_benchmarks(config):
        cell = cell_from_benchmark(bench, when=now, error=has_error)
        cells[cell.key] = cell
    for failed in config.stash.get(_FAILED, []):
        cell = cell_from_benchmark(failed, when=now, error=True)
        cell.error = failed["error"]
        cells.setdefault(cell.key, cell)
    if not cells:
        return None
    name = config.getoption("allele_run") or time.strftime("pytest-%Y%m%d-%H%M%S")
    env = {"source": SOURCE, **fingerprint(repo=str(config.rootpath))}
    spec = {"source": SOURCE, "args": list(config.invocation_params.args),
            "rootdir": str(config.rootpath)}
    with open_store(config.getoption("allele_store")) as store:
        return record_cells(store, list(cells.values()), name=name, spec=spec, environment=env)


@pytest.hookimpl(trylast=True)
def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    config = session.config
    if not _enabled(config) or hasattr(config, "workerinput"):  # xdist workers: not theirs
        return
    try:
        run_id = record_session(config)
    except AlleleError as exc:
        setattr(config, _KEY, f"error: {exc}")
        session.exitstatus = pytest.ExitCode.INTERNAL_ERROR
        return
    setattr(config, _KEY, run_id)


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    recorded = getattr(config, _KEY, None)
    if not _enabled(config):
        return
    if recorded is None:
        terminalreporter.write_line("allele: no benchmarks ran, nothing recorded")
    elif str(recorded).startswith("error: "):
        terminalreporter.write_line(f"allele: could not record the benchmarks: {recorded[7:]}",
                                    red=True)
    else:
        terminalreporter.write_line(f"allele: recorded benchmarks as run {recorded}")
