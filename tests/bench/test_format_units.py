"""Sizes are labelled as what they are: the runner measures memory in binary units (MiB), and a
decimal unit a user declares keeps decimal steps."""

from __future__ import annotations

from allele.analytics._common import format_value
from allele.bench.format import quantity
from allele.bench.metrics import metric_info


def test_the_runners_memory_metrics_are_in_mebibytes() -> None:
    # peak RSS is read from /proc in kB (kibibytes) and divided by 1024: MiB, not MB
    for metric in ("peak_rss_mb", "alloc_peak_mb", "tracemalloc_peak_mb"):
        assert metric_info(metric).unit == "MiB"
    assert quantity(59.91, "MiB") == "59.91 MiB"
    assert quantity(2048.0, "MiB") == "2 GiB"
    assert quantity(0.5, "MiB") == "512 KiB"
    assert quantity(3 * 1024**3, "B") == "3 GiB"


def test_a_decimal_unit_scales_by_thousands() -> None:
    assert quantity(1500.0, "MB") == "1.5 GB"
    assert quantity(0.25, "MB") == "250 KB"
    assert quantity(0.0, "MB") == "0 MB"


def test_the_analytics_messages_use_the_same_labels() -> None:
    assert format_value(8 * 1024**3, "bytes") == "8 GiB"
    assert format_value(1536.0, "MiB") == "1.5 GiB"
    assert format_value(2500.0, "MB") == "2.5 GB"
    assert format_value(0.0, "MiB") == "0 MiB"
    assert format_value(3.0, "ms") == "3 ms"


def test_one_ladder_of_size_units_for_tables_and_messages() -> None:
    # allele.units is the one table: both writers reach TiB and read a declared "bytes"
    assert quantity(2048.0, "GiB") == "2 TiB"
    assert format_value(2048.0, "GiB") == "2 TiB"
    assert quantity(4096.0, "bytes") == "4 KiB"
    assert quantity(3e6, "MB") == "3 TB"


def test_large_counts_are_written_in_full() -> None:
    # a median of an even number of instruction counts ends in .5: it is still a count
    assert quantity(24012345.5, "") == "24,012,346"
    assert quantity(24012345.0, "instructions") == "24,012,345 instructions"
    assert quantity(1234.5, "") == "1234"
    assert quantity(2.5e15, "") == "2.500e+15"


def test_a_byte_count_is_whole() -> None:
    # alloc_peak_mb of 736.9 bytes was written "736.9 B"
    assert quantity(736.9 / 1024**2, "MiB") == "737 B"
    assert quantity(736.9, "bytes") == "737 B"
    assert quantity(99.96, "KB") == "99.96 KB"  # a larger unit keeps its digits
    assert quantity(0.4996, "KB") == "500 B"
