"""Every command of the CLI, fuzzed with hypothesis over its own options (issue 16, acceptance:
no traceback over all commands): whatever the arguments, ``allele`` ends with exit code 0, 1
(a command's own verdict) or 2 with one ``error:`` line on stderr, never a traceback and never
an internal error (exit 3).

The commands and their options are read from the CLI itself, so a new command or option is
fuzzed without touching this file. Values mix what each kind of option can meet: numbers (huge,
negative, NaN, not numbers), paths (missing, directories, garbage files, a valid tiny spec),
store and tracking URLs (malformed, missing, a read-only store), user text with rich markup,
emoji codes and control characters. Values that would start long work (a real MLflow database,
a Dask cluster, serving forever) are kept out: those paths have their own tests."""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from allele.store import open_store
from allele.store.model import CellResult, Sample
from tests.faults.cli import allele

EXAMPLES = int(os.environ.get("ALLELE_FUZZ_EXAMPLES", "12"))


def _commands() -> list[tuple[tuple[str, ...], list[Any]]]:
    import typer.main

    from allele.cli import app

    found: list[tuple[tuple[str, ...], list[Any]]] = []

    def walk(cmd: Any, path: tuple[str, ...]) -> None:
        subs = getattr(cmd, "commands", None)
        if subs:
            for name, sub in subs.items():
                walk(sub, (*path, name))
        else:
            found.append((path, list(cmd.params)))

    walk(typer.main.get_command(app), ())
    return found


COMMANDS = _commands()


@pytest.fixture(scope="module")
def pool(tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[str]]:
    """Files, stores and URLs the fuzzed values are drawn from (all under a temp directory)."""
    root = tmp_path_factory.mktemp("fuzz")
    spec = root / "tiny.yaml"
    spec.write_text("name: tiny\ntarget: tests.faults.targets:tiny\nisolation: inline\n"
                    "seeds: 1\nmatrix: {a: [1]}\npresets: {q: {seeds: 2}}\n")
    markup = root / "markup.yaml"
    markup.write_text("name: m\ntarget: tests.faults.targets:raises\nisolation: inline\n"
                      "seeds: 1\nmatrix: {message: ['[/red] :ok: [bold]x']}\n")
    garbage = root / "garbage.yaml"
    garbage.write_bytes(b"\x00\xff[: {\n\t- ]")
    json_list = root / "alerts.json"
    json_list.write_text('[{"name": "[/x]", "labels": {"a": ":ok:"}, "severity": "bogus"}]')
    (root / "dir").mkdir()
    store = root / "store.db"
    with open_store(f"sqlite:///{store}") as s:
        for name in ("a", "b [/x]"):
            run_id = s.create_run(name, "tiny", "tests.faults.targets:tiny", {}, {})
            s.save_cell(run_id, CellResult("k", "t", {"p": "[/red]"}, "ok",
                                           [Sample("v", float(i), i, 0) for i in range(3)],
                                           None, time.time(), time.time()))
            s.finish_run(run_id, "finished")
    spool = root / "spool.jsonl"
    spool.write_text('{"t": "rec", "op": "log"}\nnot json\n')
    files = [str(p) for p in (spec, markup, garbage, json_list, root / "dir", spool,
                              root / "missing.yaml")] + ["/dev/null/x.html", "-", ""]
    stores = [f"sqlite:///{store}", f"sqlite:///file:{store}?mode=ro&uri=true",
              f"sqlite:///{root / 'none' / 'x.db'}", f"sqlite:///{root / 'dir'}",
              "postgresql+psycopg://u@h:notaport/db", "nope://", "sqlite:///", ":::"]
    uris = ["nope://x", "http://[::1", "", "::", "databricks"]
    hosts = ["127.0.0.1", "0.0.0.0", "::1", "localhost", "256.1.1.1", "", "[::1]"]
    return {"files": files, "stores": stores, "uris": uris, "hosts": hosts,
            "out": [str(root / "out" / "o.txt"), str(root / "dir"), "/dev/null/x"]}


TEXT = st.one_of(
    st.sampled_from(["[/red] unbalanced", "[bold]x[/]", ":ok:", ":thumbs_down:", "latest",
                     "a", "x=1", "target=t", "benchmark=[/x]", "nightly [/x]", "\x00", "\n",
                     "-", "--", "-1", "nan", "inf", "1e999", "0", "65536", "70000",
                     "99999999999999999999", "-5", "3.5", "{}", "{\"a\": 1}", "[1, 2",
                     "json", "csv", "html", "markdown", "never", "regressed", "7d", "2026-13-45",
                     "arima", "lstm", "robust", "none", "evolution", "inline", "local",
                     "threads", "dask://", "tcp://", "é" * 3, "💥"]),
    st.text(min_size=0, max_size=12),
    st.integers(min_value=-(2**70), max_value=2**70).map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
)


def _value(name: str, pool: dict[str, list[str]]) -> st.SearchStrategy[str]:
    if name in ("store",):
        return st.sampled_from(pool["stores"])
    if name in ("mlflow_uri", "tracking_uri"):
        return st.sampled_from(pool["uris"])
    if name == "host":
        return st.sampled_from(pool["hosts"])
    if name == "webhook":
        return st.sampled_from(["http://127.0.0.1:95OO/hook", "ftp://x", "http://", "x",
                                "http://h:70000/"])
    if name in ("output", "report"):
        return st.sampled_from(pool["out"])
    if name in ("spec", "files", "file", "path", "rules", "genome_file", "spool"):
        return st.sampled_from(pool["files"])
    if name == "executor":
        return st.sampled_from(["inline", "threads", "dask://", "tcp://", "", "[/x]"])
    return TEXT


def _argv(path: tuple[str, ...], params: list[Any], pool: dict[str, list[str]]
          ) -> st.SearchStrategy[list[str]]:
    options = [p for p in params if getattr(p, "param_type_name", "") == "option"]
    arguments = [p for p in params if getattr(p, "param_type_name", "") == "argument"]

    @st.composite
    def build(draw: Any) -> list[str]:
        argv = list(path)
        for p in arguments:
            if draw(st.integers(0, 9)):  # mostly given, sometimes missing
                argv.append(draw(_value(p.name, pool)))
        for p in draw(st.lists(st.sampled_from(options), max_size=4)) if options else []:
            flag = p.opts[0]
            if getattr(p, "is_flag", False):
                argv.append(draw(st.sampled_from([flag, *p.secondary_opts])))
            else:
                argv += [flag, draw(_value(p.name, pool))]
        if draw(st.integers(0, 9)) == 0:
            argv.append(draw(st.sampled_from(["--bogus", "extra", "-x", "--store"])))
        return argv

    return build()


def _safe(argv: list[str]) -> list[str]:
    """Keep long-running work out: ``observe serve`` stops at once; ``demo`` (it runs every core
    component), ``dashboard`` and ``top`` (they serve until stopped) only with bad arguments.
    The dashboards' own failures (a port in use, a bad store) have tests of their own."""
    if argv[:2] == ["observe", "serve"]:
        argv = [a for i, a in enumerate(argv) if a != "--duration"
                and (i == 0 or argv[i - 1] != "--duration")]
        argv += ["--duration", "0", "--port", "0"]
    if argv[:1] in (["demo"], ["dashboard"], ["top"]):  # serve or run until stopped
        argv.append("--bogus")
    return argv


def _check(argv: list[str], code: int, out: str, err: str) -> None:
    shown = f"allele {argv!r}\n--- exit {code}\n--- stdout\n{out[-1500:]}\n--- stderr\n{err}"
    assert "Traceback" not in out + err, shown
    assert code in (0, 1, 2), shown
    if code == 2 and not (err == "" and "Usage:" in out):  # the help of a bare group is fine
        lines = err.rstrip("\n").split("\n")
        assert lines[-1].startswith("error: "), shown
        assert sum(line.startswith("error:") for line in lines) == 1, shown


@pytest.mark.parametrize(("path", "params"), COMMANDS, ids=[" ".join(c[0]) for c in COMMANDS])
def test_every_command_fails_in_one_line_on_any_input(
        path: tuple[str, ...], params: list[Any], pool: dict[str, list[str]], tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("ALLELE_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("ALLELE_STORE_URL", f"sqlite:///{tmp_path / 'default.db'}")
    monkeypatch.setenv("ALLELE_TRACKING__TRACKING_URI", "nope://x")
    monkeypatch.delenv("ALLELE_OBSERVE_TOKEN", raising=False)

    @settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
    @given(_argv(path, params, pool))
    def fuzz(argv: list[str]) -> None:
        argv = _safe(argv)
        code, out, err = allele(*argv)
        _check(argv, code, out, err)

    fuzz()
    shutil.rmtree(tmp_path / "data", ignore_errors=True)
