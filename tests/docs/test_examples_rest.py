"""The documentation's code runs (issue 17), part two: every page not in
:data:`tests.docs.examples.FIRST` (see :mod:`tests.docs.examples`)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.docs.examples import pages, run_page


@pytest.mark.slow
@pytest.mark.parametrize("page", pages(first=False), ids=lambda p: p.name)
def test_the_pages_code_runs(page: Path, tmp_path: Path) -> None:
    run_page(page, tmp_path)
