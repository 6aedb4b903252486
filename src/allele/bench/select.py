"""Choosing what to look at: which cells (one filter language), since when, against which run.

**Cell filters.** One language for every command that narrows cells (``bench run --filter``,
``bench regressions --cell``): a term is either

* ``key=value``: a parameter's value, or the cell's ``target`` / ``benchmark`` name; the value is
  read as a YAML scalar (``100`` is the number 100, ``rank`` a string) and also matches a value
  whose text is the same. Terms on the same key are alternatives (OR); different keys must all
  match (AND);
* a glob on the cell key (``*tournament*``); a plain word without ``=`` matches as a substring.
  A glob names cells in addition to those the ``key=value`` terms select.

So ``population_size=50 population_size=250 selection=rank`` keeps the rank-selection cells of
both sizes, and ``population_size=500 *tournament*`` keeps the size-500 cells and every
tournament cell.

**Since.** ``7d`` / ``12h`` / ``30m`` ago, an ISO date or time, or the creation time of a run.

**Baseline.** ``bench run --report`` compares a run with the previous finished run of its spec.
"""

from __future__ import annotations

import fnmatch
import json
import re
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

import yaml

from allele.errors import AlleleError, ConfigError

if TYPE_CHECKING:
    from allele.store.model import RunInfo
    from allele.store.results import ResultStore


class _Yaml12Loader(yaml.SafeLoader):
    """PyYAML's safe loader with YAML 1.2's floats: ``1e5`` and ``2E-3`` are numbers (YAML 1.1
    wants a dot, so a matrix ``n: [1e5, 2.0e5]`` ran ``n='1e5'`` and ``n=200000.0``)."""


_Yaml12Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float", re.compile(r"^[-+]?[0-9][0-9_]*(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"),
    list("-+0123456789"))


def load_yaml(text: str) -> Any:
    """YAML text as Python values, numbers read as YAML 1.2 reads them (see
    :class:`_Yaml12Loader`): specs and ``--filter`` values alike."""
    return yaml.load(text, Loader=_Yaml12Loader)  # a SafeLoader subclass: no arbitrary objects


_GLOB_CHARS = "*?["


def parse_filters(filters: Iterable[str]) -> dict[str, list[Any]]:
    """``key=value`` terms -> {key: [values]} (values parsed as YAML scalars: ``100`` is 100)."""
    out: dict[str, list[Any]] = {}
    for text in filters:
        key, sep, raw = text.partition("=")
        key = key.strip()
        if not sep or not key:
            raise ConfigError(f"--filter {text!r}: expected key=value")
        try:
            value = load_yaml(raw) if raw.strip() else ""
        except yaml.YAMLError:
            value = raw
        out.setdefault(key, []).append(value)
    return out


def matches(filters: Mapping[str, Sequence[Any]], benchmark: str | None, target: str,
            params: Mapping[str, Any]) -> bool:
    """Whether a cell passes every ``key=value`` term (see :func:`parse_filters`)."""
    for key, values in filters.items():
        if key == "benchmark" and benchmark is not None:
            actual: Any = benchmark
        elif key == "target":
            actual = target
        elif key in params:
            actual = params[key]
        else:
            return False
        if not any(actual == v or str(actual) == str(v) for v in values):
            return False
    return True


def _is_term(text: str) -> bool:
    return "=" in text and "|" not in text and not any(ch in text for ch in _GLOB_CHARS)


@dataclass(frozen=True, slots=True)
class CellFilter:
    """A parsed filter (see the module docstring). An empty filter keeps every cell."""

    terms: dict[str, list[Any]] = field(default_factory=dict)
    globs: tuple[str, ...] = ()

    @classmethod
    def parse(cls, patterns: Iterable[str]) -> CellFilter:
        items = [p.strip() for p in patterns if p.strip()]
        globs = tuple(p if any(ch in p for ch in _GLOB_CHARS) else f"*{p}*"
                      for p in items if not _is_term(p))
        return cls(parse_filters(p for p in items if _is_term(p)), globs)

    def __bool__(self) -> bool:
        return bool(self.terms or self.globs)

    def matches(self, target: str, params: Mapping[str, Any], *, key: str | None = None,
                benchmark: str | None = None) -> bool:
        """Whether the cell passes (``key`` is its cell key, needed by globs)."""
        if not self:
            return True
        if self.terms and matches(self.terms, benchmark, target, params):
            return True
        return key is not None and any(fnmatch.fnmatchcase(key, g) for g in self.globs)

    def match_key(self, key: str) -> bool:
        """:meth:`matches` for a cell known only by its key (``target|{json params}``)."""
        target, _, raw = key.partition("|")
        try:
            params = json.loads(raw) if raw else {}
        except json.JSONDecodeError:
            params = {}
        return self.matches(target, params if isinstance(params, dict) else {}, key=key)


def cell_matcher(patterns: Iterable[str]) -> Any:
    """A predicate on cell keys for ``patterns`` (see :class:`CellFilter`), or None when there
    are none (every cell)."""
    flt = CellFilter.parse(patterns)
    return flt.match_key if flt else None


def parse_since(text: str, store: ResultStore | None = None, now: float | None = None) -> float:
    """A timestamp from ``7d`` / ``12h`` / ``30m``, an ISO date or time, or a run reference."""
    now = time.time() if now is None else now
    m = re.fullmatch(r"(\d+(?:\.\d+)?)\s*([smhdw])", text.strip())
    if m:
        unit = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}[m.group(2)]
        return now - float(m.group(1)) * unit
    try:
        return datetime.fromisoformat(text).timestamp()
    except ValueError:
        pass
    if store is not None:
        try:
            return store.get_run(text).created_at
        except AlleleError:
            pass
    raise ConfigError(f"--since {text!r}: give a duration (7d, 12h), an ISO date "
                      "(2026-11-01) or a run id/name")


def previous_run(store: ResultStore, run: RunInfo) -> RunInfo | None:
    """The newest finished run of the same spec created before ``run``: what ``bench run
    --report`` and ``make run`` compare a new run with.

    Never the BASE half of an A/B session (it re-measured old code), and for a plain run never
    either half: a session measures some metrics differently (``peak_rss_mb`` is a worker's peak
    over a round of calls, ``alloc_peak_mb`` comes from one call per seed), so a plain run held
    against a session's HEAD gave verdicts on identical code (4 regressed, 12 improved, every
    peak_rss_mb row "improved" by 54-85 %)."""
    from allele.bench.history import ab_meta, is_ab_base

    plain = ab_meta(run) is None
    return next((r for r in store.list_runs(None)
                 if r.id != run.id and r.spec_name == run.spec_name
                 and r.status == "finished" and r.created_at < run.created_at
                 and not is_ab_base(r) and not (plain and ab_meta(r) is not None)), None)
