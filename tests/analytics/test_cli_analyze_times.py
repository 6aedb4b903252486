"""``allele analyze forecast`` prints sub-second timestamps with the decimals they need."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import numpy as np
from typer.testing import CliRunner

from allele.cli.analyze import app
from allele.observe.metrics import MetricPoint
from allele.store import open_store


def test_half_second_steps_print_distinct_times(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'r.db'}"
    y = np.linspace(86.4e6, 88.1e6, 25)
    with open_store(url) as st:
        st.write_metric_points([MetricPoint("rss_line", "c", (), 1e9 + 0.5 * i, float(v))
                                for i, v in enumerate(y)])
    res = CliRunner().invoke(app, ["forecast", "rss_line", "--store", url, "--horizon", "3"])
    assert res.exit_code == 0, res.output
    # as local times, with the decimal the half seconds need (they printed as 1000000012.5)
    for t in (1e9 + 12.5, 1e9 + 13.0, 1e9 + 13.5):
        stamp = datetime.fromtimestamp(t)
        assert stamp.strftime("%Y-%m-%d %H:%M:%S") + f".{stamp.microsecond // 100000}" in (
            res.output)
    assert "1000000012.5" not in res.output
    # rss_line is a plain number; a size in bytes reads in its unit
    res = CliRunner().invoke(app, ["forecast", "rss_line", "--store", url, "--horizon", "3",
                                   "--unit", "bytes"])
    assert res.exit_code == 0 and " MiB " in res.output and "e+07" not in res.output.split(
        "\n- ")[0]


def test_times_keep_the_decimals_their_steps_need() -> None:
    from allele.cli.analyze import _when

    t = 1.7e9 + 0.123456
    stamp = datetime.fromtimestamp(t).strftime("%Y-%m-%d %H:%M:%S")
    assert [_when(t, spec) for spec in (".0f", ".1f", ".3f", ".6f")] == [
        stamp, stamp + ".1", stamp + ".123", stamp + ".123456"]  # .6f printed nothing
    assert _when(12.5, ".1f") == "12.5"  # not a time: the number it is
