"""``allele analyze alerts`` on the files of the user review: order-independent dedup on start
times, case-insensitive severities, and errors naming the field for unknown severities and
non-finite numbers."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from allele.cli.analyze import app

runner = CliRunner()

DISK = [{"name": "DiskFull", "labels": {"host": "b"}, "severity": "warning",
         "starts_at": 1700000000},
        {"name": "DiskFull", "labels": {"host": "b"}, "severity": "critical",
         "starts_at": 1699900000}]


def _run(tmp_path: Path, text: str) -> tuple[int, str, BaseException | None]:
    f = tmp_path / "alerts.json"
    f.write_text(text)
    res = runner.invoke(app, ["alerts", str(f), "--json"])
    return res.exit_code, res.output, res.exception


@pytest.mark.parametrize("alerts", [DISK, DISK[::-1]])
def test_alerts_far_apart_are_not_duplicates_in_either_order(tmp_path: Path,
                                                              alerts: list[object]) -> None:
    code, out, _ = _run(tmp_path, json.dumps(alerts))
    assert code == 0, out
    data = json.loads(out)
    assert data["duplicates"] == []
    assert sorted(g["severity"] for g in data["groups"]) == ["critical", "warning"]
    prio = {g["severity"]: g["priority"] for g in data["groups"]}
    assert prio["critical"] > prio["warning"]


def test_one_alert_firing_twice_is_told_apart_by_its_start(tmp_path: Path) -> None:
    """The same alert (one fingerprint) firing a day apart lands in two groups: each group lists
    its member with its start, not a bare fingerprint the two groups share."""
    code, out, _ = _run(tmp_path, json.dumps(DISK))
    assert code == 0, out
    groups = json.loads(out)["groups"]
    members = [a for g in groups for a in g["alerts"]]
    assert len(groups) == 2 and len(members) == 2
    assert members[0]["fingerprint"] == members[1]["fingerprint"]  # one alert
    assert {(m["name"], m["starts_at"]) for m in members} == {("DiskFull", 1700000000),
                                                             ("DiskFull", 1699900000)}
    by_start = {g["alerts"][0]["starts_at"]: g["severity"] for g in groups}
    assert by_start == {1700000000: "warning", 1699900000: "critical"}


def test_upper_case_severity_ranks_as_critical(tmp_path: Path) -> None:
    alerts = [{"name": "NodeDown", "labels": {"host": "x"}, "severity": "CRITICAL",
               "starts_at": 1700000000},
              {"name": "SlowDisk", "labels": {"host": "y"}, "severity": "warning",
               "starts_at": 1700000000}]
    code, out, _ = _run(tmp_path, json.dumps(alerts))
    assert code == 0, out
    groups = json.loads(out)["groups"]
    by_sev = {g["severity"]: g["priority"] for g in groups}
    assert set(by_sev) == {"critical", "warning"}
    assert by_sev["critical"] == pytest.approx(0.5)  # 0.4 * 1.0 + 0.2 * 0.5 criticality
    assert by_sev["critical"] > by_sev["warning"]


@pytest.mark.parametrize(("text", "message"), [
    ('[{"name":"x","labels":{},"severity":"bogus","starts_at":1}]',
     "alert 'x': severity must be one of critical, error, warning, info (in any case), "
     "got 'bogus'"),
    ('[{"name":"x","labels":{},"severity":"warning","starts_at":NaN,"value":1}]',
     "alert 'x': starts_at must be finite: seconds since the epoch (a number, e.g. "
     "1700000000.5), got nan"),
    ('[{"name":"x","labels":{},"severity":"warning","starts_at":1,"value":Infinity}]',
     "alert 'x': value must be a finite number, got inf"),
])
def test_malformed_alert_fields_are_errors_naming_the_field(tmp_path: Path, text: str,
                                                             message: str) -> None:
    code, out, exc = _run(tmp_path, text)
    assert code != 0, out
    assert str(exc) == message
