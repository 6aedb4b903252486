"""Bad alert fields are one-line errors naming the field and the accepted form."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from allele.analytics.correlate import as_alert_event
from allele.errors import AnalyticsError


@pytest.mark.parametrize(("alert", "message"), [
    ({"name": "X", "starts_at": "2024-01-01T00:00:00Z"},
     "alert 'X': starts_at must be seconds since the epoch (a number, e.g. 1700000000.5), "
     "got '2024-01-01T00:00:00Z'"),
    ({"name": "X", "starts_at": 1.0, "labels": [1]},
     "alert 'X': labels must be an object of names to values, e.g. {\"host\": \"h1\"}, got [1]"),
    ({"name": "X", "starts_at": 1.0, "ends_at": "soon"},
     "alert 'X': ends_at must be seconds since the epoch (a number, e.g. 1700000000.5), "
     "got 'soon'"),
    ({"name": "X", "starts_at": True}, "alert 'X': starts_at must be seconds since the epoch"),
    ({"name": "X", "starts_at": 1.0, "value": "high"},
     "alert 'X': value must be a number, got 'high'"),
    ({"name": "X", "starts_at": 1.0, "series": "[1 2 3]"},
     "alert 'X': series must be a list of numbers, got '[1 2 3]'"),
    ({"name": "X", "starts_at": 1.0, "series": [1, "a"]},
     "alert 'X': series must be a list of finite numbers, got 'a'"),
])
def test_bad_fields_are_clear_errors(alert: dict[str, Any], message: str) -> None:
    with pytest.raises(AnalyticsError) as info:
        as_alert_event(alert)
    assert str(info.value).startswith(message)


def test_good_fields_still_convert() -> None:
    ev = as_alert_event({"name": "X", "starts_at": 5, "labels": {"host": "h"}, "value": 2,
                         "series": np.array([1.0, 2.0]), "ends_at": 7.5})
    assert (ev.starts_at, ev.ends_at, ev.value, ev.series) == (5.0, 7.5, 2.0, (1.0, 2.0))
    assert ev.labels == {"host": "h"}
