"""``allele analyze forecast`` prints sub-second timestamps with the decimals they need."""

from __future__ import annotations

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
    assert "1000000012.5" in res.output and "1000000013.0" in res.output
    assert "1000000013.5" in res.output
