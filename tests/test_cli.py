import os
import signal
import subprocess
import sys

import pytest
from typer.testing import CliRunner

from allele import __version__
from allele.cli import app


def test_version_and_help():
    runner = CliRunner()
    assert runner.invoke(app, ["--version"]).output.strip() == f"allele {__version__}"
    out = runner.invoke(app, ["--help"]).output
    assert "demo" in out
    for module in ("allele", "allele.cli"):  # `python -m allele` failed: no __main__
        done = subprocess.run([sys.executable, "-m", module, "--version"], capture_output=True,
                              text=True, timeout=60, check=False)
        assert done.returncode == 0 and done.stdout.strip() == f"allele {__version__}"


def test_allele_error_is_one_line_and_exit_2(tmp_path):
    # A bad setting is an AlleleError raised inside a command: one line on stderr, no traceback.
    (tmp_path / "allele.toml").write_text("colour = 1\n")
    code = (
        "import sys; from allele.cli import main, app\n"
        "from allele.config import load_settings\n"
        "@app.command('boom')\n"
        "def boom():\n"
        "    load_settings()\n"
        "main(['boom'])\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert proc.stderr.strip().startswith("error:") and "colour" in proc.stderr


def test_errors_are_one_verbatim_line_with_exit_code_2(capsys: pytest.CaptureFixture[str]) -> None:
    import typer

    from allele.cli._common import one_line_errors
    from allele.errors import ValidationError

    with pytest.raises(typer.Exit) as info, one_line_errors():
        raise ValidationError("empathy must be in [0, 1]; install allele[mlflow] [/bold]")
    assert info.value.exit_code == 2
    err = capsys.readouterr().err
    assert err.strip() == "error: empathy must be in [0, 1]; install allele[mlflow] [/bold]"


def test_third_party_logs_only_with_verbose(tmp_path):
    """MLflow announces creating its database at INFO: hidden by default, shown with -v."""
    import os

    import numpy as np

    from allele.core.genome import Genome

    env = {**os.environ, "MLFLOW_DISABLE_TELEMETRY": "true"}
    env.pop("MLFLOW_LOGGING_LEVEL", None)
    genome = tmp_path / "g.json"
    genome.write_text(Genome.random(np.random.default_rng(0)).to_json())
    # registering creates the database (a read of a missing one is refused and creates nothing)
    quiet = subprocess.run([sys.executable, "-m", "allele.cli", "genome", "register", str(genome),
                            "--name", "g", "--tracking-uri", f"sqlite:///{tmp_path / 'a.db'}"],
                           capture_output=True, text=True, env=env, timeout=120, check=False,
                           cwd=tmp_path)
    assert quiet.returncode == 0, quiet.stderr
    assert quiet.stdout.startswith("registered genome ")
    assert quiet.stderr == ""
    loud = subprocess.run([sys.executable, "-m", "allele.cli", "-v", "genome", "register",
                           str(genome), "--name", "g",
                           "--tracking-uri", f"sqlite:///{tmp_path / 'b.db'}"],
                          capture_output=True, text=True, env=env, timeout=120, check=False,
                          cwd=tmp_path)
    assert loud.returncode == 0 and "INFO mlflow" in loud.stderr


def test_short_flags_mean_one_thing_and_h_is_help():
    """One meaning per short flag across the CLI; -h is help in every command; every option
    and argument is described."""
    import typer.main

    meanings: dict[str, set[str]] = {}
    undescribed: list[str] = []

    def walk(cmd, path):
        subs = getattr(cmd, "commands", None)
        if subs:
            for name, sub in subs.items():
                walk(sub, (*path, name))
            return
        for p in cmd.params:
            if not (getattr(p, "help", None) or "").strip():
                undescribed.append(f"{' '.join(path)} {p.name}")
            for o in [*p.opts, *getattr(p, "secondary_opts", [])]:
                if len(o) == 2 and o.startswith("-"):
                    meanings.setdefault(o, set()).add(p.name.rstrip("s"))

    walk(typer.main.get_command(app), ())
    assert "-h" not in meanings
    assert {k: v for k, v in meanings.items() if len(v) > 1} == {}
    assert undescribed == []
    for argv in (["-h"], ["bench", "run", "-h"], ["analyze", "forecast", "-h"]):
        r = CliRunner().invoke(app, argv)
        assert r.exit_code == 0 and "Usage:" in r.output, (argv, r.output)


_CTRL_C_SCRIPT = """
import sys, time
import typer
from allele.cli import app, demo, main

def wait():
    sys.__stdout__.write("ready\\n"); sys.__stdout__.flush()
    time.sleep(60)
    return "", ""

demo.STEPS[:] = [("wait", wait)]

@app.command("own")
def own():
    try:
        wait()
    except KeyboardInterrupt:
        print("stopped: resume with --resume x", file=sys.stderr)
        raise typer.Exit(130)

main(sys.argv[1:])
"""


def test_ctrl_c_says_interrupted_once_and_exits_130():
    """Typer turned Ctrl-C into a silent exit 130 before main() could say ``interrupted``. A
    command that handles Ctrl-C itself (prints its own line, exits 130) is not told twice."""
    def start(command: str) -> subprocess.Popen[str]:
        return subprocess.Popen(
            [sys.executable, "-c", _CTRL_C_SCRIPT, command], stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, text=True, start_new_session=True,
            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))

    procs = {name: start(name) for name in ("demo", "own")}
    for proc in procs.values():
        assert proc.stdout is not None and proc.stdout.readline() == "ready\n"
        os.killpg(proc.pid, signal.SIGINT)  # Ctrl-C reaches the terminal's foreground group
    done = {name: (*proc.communicate(timeout=30), proc.returncode)
            for name, proc in procs.items()}
    out, err, code = done["demo"]
    assert (code, out, err) == (130, "", "interrupted\n")
    out, err, code = done["own"]
    assert (code, out, err) == (130, "", "stopped: resume with --resume x\n")
