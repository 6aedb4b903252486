import subprocess
import sys

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
