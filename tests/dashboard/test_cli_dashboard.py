"""``allele dashboard`` and ``allele top`` at the command line: the refusals are one line."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from allele.cli import app


@pytest.mark.parametrize("host", ["0.0.0.0", "192.168.1.7", "::"])
def test_non_loopback_bind_without_token_is_refused(host: str, tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ALLELE_DASHBOARD_TOKEN", raising=False)
    r = CliRunner().invoke(app, ["dashboard", "--host", host, "--store",
                                 f"sqlite:///{tmp_path / 's.db'}"])
    assert r.exit_code == 2
    lines = [line for line in r.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: --host")
    assert not (tmp_path / "s.db").exists()  # refused before anything was opened


def test_short_token_from_the_environment_is_refused(tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ALLELE_DASHBOARD_TOKEN", "short")
    r = CliRunner().invoke(app, ["dashboard", "--host", "0.0.0.0"])
    assert r.exit_code == 2 and "at least 8 characters" in r.output


def test_help_lists_the_faces() -> None:
    out = CliRunner().invoke(app, ["--help"]).output
    assert "dashboard" in out and "top" in out
    run_help = CliRunner().invoke(app, ["bench", "run", "--help"]).output
    assert "--metrics-port" in run_help and "--no-live" in run_help


@pytest.mark.parametrize("host", ["127.0.0.1", "::1"])
def test_a_port_in_use_is_one_line(host: str, tmp_path: Path,
                                   monkeypatch: pytest.MonkeyPatch) -> None:
    import socket

    monkeypatch.delenv("ALLELE_DASHBOARD_TOKEN", raising=False)
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as taken:
        taken.bind((host, 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        r = CliRunner().invoke(app, ["dashboard", "--host", host, "--port", str(port),
                                     "--store", f"sqlite:///{tmp_path / 's.db'}"])
    assert r.exit_code == 2, r.output
    assert r.output.strip().splitlines()[-1] == (
        f"error: cannot listen on {host}:{port}: in use (another dashboard?); "
        "choose another --port")
    assert "Traceback" not in r.output
