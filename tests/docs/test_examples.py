"""The documentation's code runs (issue 17), part one: the pages of
:data:`tests.docs.examples.FIRST` (the harness and the rule are in :mod:`tests.docs.examples`);
every page is run by exactly one of the two files."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.docs.examples import FIRST, PAGES, check_blocks, pages, run_page


@pytest.mark.slow
@pytest.mark.parametrize("page", pages(first=True), ids=lambda p: p.name)
def test_the_pages_code_runs(page: Path, tmp_path: Path) -> None:
    run_page(page, tmp_path)


def test_every_block_is_run_or_says_what_it_needs() -> None:
    """A python block is either run or titled Needs/Signature; the harness finds blocks."""
    check_blocks()


def test_every_page_is_run_by_one_of_the_two_files() -> None:
    assert set(FIRST) <= {p.name for p in PAGES}
    assert sorted(pages(first=True) + pages(first=False)) == sorted(PAGES)
