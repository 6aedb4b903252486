"""``allele dashboard`` and ``allele top`` at the command line: the refusals are one line."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from allele.cli import app
from allele.store import open_store


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
    open_store(f"sqlite:///{tmp_path / 's.db'}").close()
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


def test_both_viewers_take_a_plain_path_and_create_nothing(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``--store .allele/results.db`` (the default ``--help`` names) opens that file; a mistyped
    store is one line, and neither viewer makes a directory or an empty database."""
    import uvicorn

    from allele.dashboard.tui.app import TopApp

    monkeypatch.delenv("ALLELE_DASHBOARD_TOKEN", raising=False)
    monkeypatch.chdir(tmp_path)
    with open_store(".allele/results.db") as st:
        st.create_run("seen", "spec", "t", {}, {})
    served: list[str] = []

    def serve(server: uvicorn.Server, sockets: list[object]) -> None:
        served.append(server.config.app.title)  # type: ignore[union-attr]

    def top(self: TopApp) -> None:
        served.append(f"top {self.store.url} read_only={self.store.read_only} "
                      f"{[r.name for r in self.store.list_runs(5)]}")

    monkeypatch.setattr(uvicorn.Server, "run", serve)
    monkeypatch.setattr(TopApp, "run", top)
    r = CliRunner().invoke(app, ["dashboard", "--port", "0", "--no-deliver",
                                 "--store", ".allele/results.db"])
    assert r.exit_code == 0, r.output
    assert "(store sqlite:///.allele/results.db)" in r.output
    r = CliRunner().invoke(app, ["top", "--store", ".allele/results.db"])
    assert r.exit_code == 0, r.output
    assert served == ["Allele dashboard",
                      "top sqlite:///.allele/results.db read_only=True ['seen']"]

    for argv in (["dashboard", "--port", "0"], ["top"]):
        r = CliRunner().invoke(app, [*argv, "--store", f"sqlite:///{tmp_path}/nope/x.db"])
        assert r.exit_code == 2
        assert r.output.strip() == (f"error: no result store at {tmp_path}/nope/x.db: the file "
                                    "does not exist (nothing was created; `allele bench run` "
                                    "makes one, or pass --store URL)")
    assert sorted(p.name for p in tmp_path.iterdir()) == [".allele"]


@pytest.mark.parametrize("argv", [["dashboard"], ["top"], ["bench", "list"],
                                  ["analyze", "forecast"]])
def test_the_store_help_says_a_path_is_a_sqlite_file(argv: list[str]) -> None:
    import re

    out = CliRunner().invoke(app, [*argv, "--help"], terminal_width=200).output
    text = " ".join(re.sub(r"[│╭╮╰╯─]", " ", out).split())
    assert ("--store TEXT Result store: a SQLite file path (relative to the working directory) "
            "or a database URL") in text.replace("<str>", "TEXT"), text
    assert "(default: ALLELE_STORE_URL, else the file .allele/results.db)" in text
