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
