"""Benchmark specs: a YAML file, validated with pydantic, that expands into matrix cells.

A spec file is either one benchmark (its keys at the top level) or a *suite*: a ``benchmarks:``
list of benchmarks that run together as one run, with shared ``defaults`` and ``presets``::

    name: seed-matrix
    order: randomized          # or sequential; the run-level cell order
    order_seed: 0
    defaults: {repeats: 1, seeds: 3}
    presets:
      quick: {seeds: 2}        # applied to every benchmark
    benchmarks:
      - name: evolution
        target: evolution
        matrix: {population_size: [50, 100], selection: [tournament, rank]}
        fixed: {generations: 30}
        presets:
          quick: {matrix: {population_size: [50]}}   # this benchmark's part of 'quick'

Merge order for one benchmark: suite ``defaults`` < the benchmark's own keys < the suite
preset < the benchmark's preset. ``matrix`` and ``fixed`` merge axis by axis (a preset's
``matrix: {population_size: [50]}`` replaces only that axis); every other key is replaced.

Matrix expansion follows GitHub Actions: the cartesian product of ``matrix``; then every
``exclude`` entry (a partial assignment) removes the combinations that match all of its keys;
then every ``include`` entry is added to each remaining combination whose *original* matrix
values it does not contradict (its extra keys are added, and may overwrite keys added by an
earlier include but never an original matrix value); an include that fits no combination becomes
a new combination of its own. ``fixed`` params are added to every cell (a matrix or include value
wins over a fixed one).

Any wrong key or value raises :class:`allele.errors.ConfigError` with one line naming the file,
the key path and what is allowed.
"""

from __future__ import annotations

import itertools
import math
import random
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StrictFloat,
    StrictInt,
    StrictStr,
    field_validator,
    model_validator,
)
from pydantic import ValidationError as PydanticValidationError

from allele.bench.metrics import (
    MetricInfo,
    declaration,
)
from allele.bench.select import load_yaml
from allele.bench.spec_check import check_builtin
from allele.errors import ConfigError
from allele.store.model import cell_key

Scalar = StrictBool | StrictInt | StrictFloat | StrictStr | None
Order = Literal["randomized", "sequential"]
Isolation = Literal["process", "inline"]
Instrument = Literal["time", "instructions"]

BUILTIN_TARGETS = ("evolution", "kraken", "agent", "genome_ops")
_IDENT = r"[A-Za-z_][A-Za-z0-9_]*"
_TARGET_REF = re.compile(rf"^{_IDENT}(\.{_IDENT})*:{_IDENT}$")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$")
_PARAM = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def _check_target(value: str) -> str:
    if value in BUILTIN_TARGETS or _TARGET_REF.match(value):
        return value
    raise ValueError(
        f"unknown target {value!r} (allowed: {', '.join(BUILTIN_TARGETS)}, "
        "or 'package.module:function')"
    )


def _check_name(value: str) -> str:
    if not _NAME.match(value):
        raise ValueError("a name uses letters, digits, '_', '.', '-' and starts alphanumeric")
    return value


def _check_params(value: Mapping[str, Any], what: str) -> None:
    for key in value:
        if not isinstance(key, str) or not _PARAM.match(key):
            raise ValueError(f"{what} name {key!r} must be an identifier")


class MetricDeclaration(BaseModel):
    """One entry of a spec's ``metrics`` mapping: which way is better, and the unit."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    direction: Literal["higher", "lower"] | None = None
    unit: StrictStr | None = None


MetricsKey = list[StrictStr] | dict[str, MetricDeclaration | None]
"""A spec's ``metrics``: a list of names, or a mapping ``{name: {direction, unit}}``; either
selects the metrics kept."""


class _Fields(BaseModel):
    """The keys a benchmark and its overrides share (everything but name/target/presets)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    matrix: dict[str, list[Scalar]] | None = None
    include: list[dict[str, Scalar]] | None = None
    exclude: list[dict[str, Scalar]] | None = None
    fixed: dict[str, Any] | None = None
    repeats: int | None = Field(None, ge=1, le=10_000)
    warmup: int | None = Field(None, ge=0, le=10_000)
    timeout_s: float | None = Field(None, gt=0, le=7 * 24 * 3600, allow_inf_nan=False)
    seeds: list[StrictInt] | StrictInt | None = None
    isolation: Isolation | None = None
    metrics: MetricsKey | None = None
    profile: StrictBool | None = None
    tracemalloc: StrictBool | None = None
    alloc_peak: StrictBool | None = None
    memory_limit_mb: float | None = Field(None, gt=0, allow_inf_nan=False)
    rounds: int | None = Field(None, ge=1, le=1000)
    instruments: list[Instrument] | None = None
    cache_sim: StrictBool | None = None
    instruction_seeds: int | None = Field(None, ge=1, le=1000)

    @field_validator("instruments")
    @classmethod
    def _instruments(cls, v: list[str] | None) -> list[str] | None:
        if v is not None:
            if not v:
                raise ValueError("the instrument list is empty (allowed: time, instructions)")
            if len(set(v)) != len(v):
                raise ValueError("the instrument list repeats an instrument")
        return v

    setup: StrictStr | None = None
    teardown: StrictStr | None = None
    inner_loops: int | None = Field(None, ge=1, le=1_000_000)

    @field_validator("setup", "teardown")
    @classmethod
    def _hook(cls, v: str | None) -> str | None:
        if v is not None and not _TARGET_REF.match(v):
            raise ValueError(f"{v!r} is not a 'package.module:function' reference")
        return v

    @field_validator("matrix")
    @classmethod
    def _matrix(cls, v: dict[str, list[Any]] | None) -> dict[str, list[Any]] | None:
        if v is None:
            return v
        _check_params(v, "matrix axis")
        for axis, values in v.items():
            if not values:
                raise ValueError(f"matrix axis {axis!r} has no values")
            if len({repr(x) for x in values}) != len(values):
                raise ValueError(f"matrix axis {axis!r} repeats a value")
        return v

    @field_validator("include", "exclude")
    @classmethod
    def _partials(cls, v: list[dict[str, Any]] | None) -> list[dict[str, Any]] | None:
        if v is None:
            return v
        for entry in v:
            if not entry:
                raise ValueError("an entry must assign at least one parameter")
            _check_params(entry, "parameter")
        return v

    @field_validator("fixed")
    @classmethod
    def _fixed(cls, v: dict[str, Any] | None) -> dict[str, Any] | None:
        if v is not None:
            _check_params(v, "fixed parameter")
        return v

    @field_validator("seeds")
    @classmethod
    def _seeds(cls, v: list[int] | int | None) -> list[int] | int | None:
        if isinstance(v, int):
            if not 1 <= v <= 100_000:
                raise ValueError("a seed count must be between 1 and 100000")
        elif isinstance(v, list):
            if not v:
                raise ValueError("the seed list is empty")
            if len(set(v)) != len(v):
                raise ValueError("the seed list repeats a seed")
            if any(s < 0 or s >= 2**63 for s in v):
                raise ValueError("seeds must be integers in [0, 2**63)")
        return v


class Override(_Fields):
    """A preset's (or the suite defaults') partial benchmark: every key optional."""


class BenchmarkSpec(_Fields):
    """One benchmark: a target and the parameter grid it runs over (fully resolved)."""

    name: str
    target: str
    matrix: dict[str, list[Scalar]] = Field(default_factory=dict)
    include: list[dict[str, Scalar]] = Field(default_factory=list)
    exclude: list[dict[str, Scalar]] = Field(default_factory=list)
    fixed: dict[str, Any] = Field(default_factory=dict)
    repeats: int = Field(1, ge=1, le=10_000)
    warmup: int = Field(0, ge=0, le=10_000)
    timeout_s: float = Field(600.0, gt=0, le=7 * 24 * 3600, allow_inf_nan=False)
    seeds: list[StrictInt] | StrictInt = 3
    isolation: Isolation = "process"
    metrics: MetricsKey | None = None
    """The metrics kept: a list of names, or a mapping that also declares each one's direction
    and unit (``{items_per_s: {direction: higher, unit: 1/s}}``)."""
    profile: StrictBool = False
    tracemalloc: StrictBool = False
    alloc_peak: StrictBool = True
    """Measure ``alloc_peak_mb``: two untimed calls per seed of the first round (one traced, one
    not), for the memory the call itself needs (see :func:`allele.bench.profiler._memory_pass`)."""
    memory_limit_mb: float | None = Field(None, gt=0, allow_inf_nan=False)
    rounds: int = Field(1, ge=1, le=1000)
    """Split each cell's seeds into this many tasks (seed ``i`` goes to round ``i % rounds``);
    round ``r`` of every cell runs before round ``r + 1`` of any, so a slow spell of the machine
    or a slow worker process touches a few samples of many cells instead of every sample of one
    cell (see docs/benchmarking.md)."""
    instruments: list[Instrument] = Field(default_factory=lambda: list[Instrument](["time"]))
    """``time``: the timed samples (wall, CPU, memory and the target's metrics); ``instructions``:
    after the timed phase, the first ``instruction_seeds`` seeds counted under callgrind
    (:mod:`allele.bench.instruments`)."""
    cache_sim: StrictBool = False
    """With ``instructions``: also simulate the caches and store ``estimated_cycles``."""
    instruction_seeds: int = Field(3, ge=1, le=1000)
    """How many of the cell's seeds (the first ones) the ``instructions`` instrument counts."""
    setup: StrictStr | None = None
    """``module:function`` run before every timed call, untimed: ``setup(params, seed)``; its
    return value reaches the target as ``state=`` (user targets only)."""
    teardown: StrictStr | None = None
    """``module:function`` run after every timed sample, untimed:
    ``teardown(params, seed, state=state)``."""
    inner_loops: int | None = Field(None, ge=1, le=1_000_000)
    """Calls per timed sample; unset: calibrated (targets under 1 ms a call are looped so a
    sample lasts at least 10 ms), reported per call."""

    @model_validator(mode="after")
    def _rounds_fit_the_seeds(self) -> BenchmarkSpec:
        if self.rounds > len(self.seed_list):
            raise ValueError(f"rounds ({self.rounds}) cannot exceed the number of seeds "
                             f"({len(self.seed_list)}): each round runs at least one seed")
        return self

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        return _check_name(v)

    @field_validator("target")
    @classmethod
    def _target(cls, v: str) -> str:
        return _check_target(v)

    def cell_bound(self) -> int:
        """How many cells :meth:`expand` can make at most, from the axes' sizes alone (the
        product of the matrix axes plus the include entries; excludes and duplicates only
        remove): what a size limit checks before anything is built."""
        product = math.prod(len(v) for v in self.matrix.values()) if self.matrix else 0
        return max(1, product + len(self.include))

    @property
    def seed_list(self) -> list[int]:
        """The seeds every cell runs with: the list as given, or ``0..n-1`` for a count ``n``."""
        if isinstance(self.seeds, int):
            return list(range(self.seeds))
        return list(self.seeds)

    def expand(self) -> list[dict[str, Any]]:
        """Every cell's parameters (fixed params included), in matrix order, without duplicates."""
        axes = list(self.matrix)
        combos: list[dict[str, Any]] = [
            dict(zip(axes, values, strict=True))
            for values in itertools.product(*(self.matrix[a] for a in axes))
        ] if axes else []
        for ex in self.exclude:
            combos = [c for c in combos if not all(k in c and c[k] == v for k, v in ex.items())]
        original = set(axes)
        base_count = len(combos)
        added: list[dict[str, Any]] = []
        for inc in self.include:
            matched = False
            for combo in combos[:base_count]:
                if all(combo[k] == v for k, v in inc.items() if k in original):
                    matched = True
                    for k, v in inc.items():
                        if k not in original:
                            combo[k] = v
            if not matched:
                added.append(dict(inc))
        combos.extend(added)
        if not combos and not axes and not self.include:
            combos = [{}]  # no matrix at all: one cell with the fixed params
        cells: list[dict[str, Any]] = []
        seen: set[str] = set()
        for combo in combos:
            params = {**self.fixed, **combo}
            key = cell_key(self.target, params)
            if key in seen:
                continue
            seen.add(key)
            cells.append(params)
        return cells


class SuiteSpec(BaseModel):
    """A spec file's content once presets are applied: one or more benchmarks run together."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    description: str = ""
    order: Order = "randomized"
    order_seed: StrictInt = 0
    benchmarks: list[BenchmarkSpec]
    preset: str | None = None

    @property
    def targets(self) -> list[str]:
        """The distinct targets of the suite, in file order."""
        return list(dict.fromkeys(b.target for b in self.benchmarks))

    def declared_metrics(self) -> dict[str, MetricInfo]:
        """What the suite declares about its metrics: the built-in targets' declarations, then
        the ``metrics`` mappings of its benchmarks (a spec's declaration wins)."""
        from allele.bench.targets import BUILTINS  # local: targets imports core lazily

        out: dict[str, MetricInfo] = {}
        for b in self.benchmarks:
            if b.target in BUILTINS:
                out.update(BUILTINS[b.target].metrics)
        for b in self.benchmarks:
            if isinstance(b.metrics, dict):
                for name, d in b.metrics.items():
                    if d is not None and (d.direction is not None or d.unit is not None):
                        out[name] = declaration(name, d.direction, d.unit)
        return out


class _RawBenchmark(_Fields):
    name: str
    target: str
    presets: dict[str, Override] = Field(default_factory=dict)

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        return _check_name(v)

    @field_validator("target")
    @classmethod
    def _target(cls, v: str) -> str:
        return _check_target(v)


class _RawSuite(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    description: StrictStr = ""
    order: Order = "randomized"
    order_seed: StrictInt = 0
    defaults: Override = Field(default_factory=Override)
    presets: dict[str, Override] = Field(default_factory=dict)
    benchmarks: list[_RawBenchmark] = Field(min_length=1)

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        return _check_name(v)


_SUITE_KEYS = ("name", "description", "order", "order_seed", "defaults", "presets", "benchmarks")
_BENCH_KEYS = (*BenchmarkSpec.model_fields, "presets")


def _merge(base: dict[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in over.items():
        if key in ("matrix", "fixed") and isinstance(out.get(key), dict):
            out[key] = {**out[key], **value}
        else:
            out[key] = value
    return out


def _loc(loc: Sequence[int | str]) -> str:
    text = ""
    for part in loc:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            name = str(part)
            if not name or not name.isprintable() or name.strip() != name or "." in name:
                name = repr(name)  # a key like '\n' or 'a.b' stays one readable path part
            text += ("." if text else "") + name
    return text or "(top level)"


def _allowed_for(loc: Sequence[int | str], suite: bool) -> str:
    """The allowed keys at the place an unknown key was found."""
    parents = [p for p in loc[:-1] if isinstance(p, str)]
    last = parents[-1] if parents else ""
    if not parents:
        return ", ".join(_SUITE_KEYS if suite else (*_BENCH_KEYS, "order", "order_seed"))
    if last == "benchmarks":
        return ", ".join(_BENCH_KEYS if suite else (*_BENCH_KEYS, "order", "order_seed",
                                                     "description"))
    if last == "defaults" or (len(parents) >= 2 and parents[-2] == "presets") or last == "presets":
        return ", ".join(Override.model_fields)
    return ""


def _pydantic_line(exc: PydanticValidationError, source: str, suite: bool,
                   prefix: Sequence[int | str] = ()) -> str:
    parts: list[str] = []
    for err in exc.errors()[:3]:
        loc = [*prefix, *err["loc"]]
        # Drop pydantic's union branch names (e.g. 'list[...]', 'int') from the path.
        clean = [p for p in loc if not (isinstance(p, str) and ("[" in p or p in (
            "int", "float", "str", "bool", "none", "list", "dict")))]
        if err["type"] == "extra_forbidden":
            allowed = _allowed_for(clean, suite)
            msg = f"unknown key {str(clean[-1])!r}" + (f" (allowed: {allowed})" if allowed else "")
        elif err["type"] == "missing":
            msg = "this key is required"
        else:
            msg = str(err["msg"])
            if msg.startswith("Value error, "):
                msg = msg[len("Value error, "):]
        parts.append(f"{_loc(clean)}: {msg}")
    extra = len(exc.errors()) - 3
    more = f" (+{extra} more)" if extra > 0 else ""
    return f"{source}: " + "; ".join(parts) + more


def _check_size(benches: Sequence[BenchmarkSpec], source: str, max_cells: int | None) -> None:
    """Refuse a spec over the cell limit before any cell is built (see :meth:`cell_bound`)."""
    if max_cells is None:
        from allele.config import load_settings

        max_cells = load_settings().bench.max_cells
    sizes = [(b.name, b.cell_bound()) for b in benches]
    total = sum(n for _, n in sizes)
    if total > max_cells:
        biggest = ", ".join(f"{name}: {n:,}" for name, n in
                            sorted(sizes, key=lambda x: -x[1])[:3])
        raise ConfigError(
            f"{source}: the matrix defines up to {total:,} cells ({biggest}), over the limit of "
            f"{max_cells:,}; narrow the matrix, or raise the limit (--max-cells, or "
            "ALLELE_BENCH__MAX_CELLS)")


def parse_suite(data: object, *, source: str = "<spec>", preset: str | None = None,
                max_cells: int | None = None) -> SuiteSpec:
    """Validate a spec's parsed YAML (a suite or a single benchmark) and apply ``preset``.

    A spec defining more cells than ``max_cells`` (default: the ``bench.max_cells`` setting,
    100,000) is refused before any cell is built."""
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: the spec must be a mapping of keys, got "
                          f"{type(data).__name__}")
    is_suite = "benchmarks" in data
    if not is_suite:
        bench = {k: v for k, v in data.items() if k not in ("order", "order_seed", "description")}
        data = {
            "name": data.get("name", "benchmark"),
            **{k: data[k] for k in ("order", "order_seed", "description") if k in data},
            "benchmarks": [bench],
        }
    try:
        raw = _RawSuite.model_validate(data)
    except PydanticValidationError as exc:
        if not is_suite:  # report paths as the user wrote them (no 'benchmarks[0].')
            raise ConfigError(_single_line(exc, source)) from None
        raise ConfigError(_pydantic_line(exc, source, True)) from None

    known = set(raw.presets) | {p for b in raw.benchmarks for p in b.presets}
    if preset is not None and preset not in known:
        allowed = ", ".join(sorted(known)) or "none defined"
        raise ConfigError(f"{source}: preset: unknown preset {preset!r} (allowed: {allowed})")

    benches: list[BenchmarkSpec] = []
    names: set[str] = set()
    for i, rb in enumerate(raw.benchmarks):
        if rb.name in names:
            where = f"benchmarks[{i}].name" if is_suite else "name"
            raise ConfigError(f"{source}: {where}: duplicate benchmark name {rb.name!r}")
        names.add(rb.name)
        merged = raw.defaults.model_dump(exclude_unset=True)
        merged = _merge(merged, rb.model_dump(exclude_unset=True, exclude={"presets"}))
        if preset is not None:
            if preset in raw.presets:
                merged = _merge(merged, raw.presets[preset].model_dump(exclude_unset=True))
            if preset in rb.presets:
                merged = _merge(merged, rb.presets[preset].model_dump(exclude_unset=True))
        try:
            spec = BenchmarkSpec.model_validate(merged)
        except PydanticValidationError as exc:  # pragma: no cover - parts validated above
            raise ConfigError(_pydantic_line(exc, source, True, ("benchmarks", i))) from None
        benches.append(spec)
    _check_size(benches, source, max_cells)
    for i, spec in enumerate(benches):
        if spec.target in BUILTIN_TARGETS:
            check_builtin(spec, source, f"benchmarks[{i}]." if is_suite else "")

    keys: dict[str, str] = {}
    for spec in benches:
        for params in spec.expand():
            key = cell_key(spec.target, params)
            if key in keys:
                raise ConfigError(
                    f"{source}: benchmarks: benchmarks {keys[key]!r} and {spec.name!r} "
                    f"both define the cell {key}")
            keys[key] = spec.name
    return SuiteSpec(name=raw.name, description=raw.description, order=raw.order,
                     order_seed=raw.order_seed, benchmarks=benches, preset=preset)


def _single_line(exc: PydanticValidationError, source: str) -> str:
    line = _pydantic_line(exc, source, False)
    return line.replace("benchmarks[0].", "").replace("benchmarks[0]", "(top level)")


def load_suite(path: str | Path, *, preset: str | None = None,
               max_cells: int | None = None) -> SuiteSpec:
    """Read and validate a spec file; every problem is one ConfigError line naming the file."""
    p = Path(path)
    source = str(path)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{source}: no such spec file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{source}: cannot read the spec: {exc}") from None
    return loads_suite(text, source=source, preset=preset, max_cells=max_cells)


def loads_suite(text: str, *, source: str = "<spec>", preset: str | None = None,
                max_cells: int | None = None) -> SuiteSpec:
    """Validate a spec given as YAML text."""
    try:
        data = load_yaml(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or "unparsable"
        raise ConfigError(f"{source}: invalid YAML{where}: {problem}") from None
    except (ValueError, TypeError, RecursionError) as exc:  # e.g. odd timestamps
        raise ConfigError(f"{source}: invalid YAML: {exc}") from None
    return parse_suite(data, source=source, preset=preset, max_cells=max_cells)


# --- cells and filters ------------------------------------------------------------------------


def ordered(items: list[Any], order: Order, seed: int) -> list[Any]:
    """The run's cell order: as listed, or shuffled by a ``random.Random(seed)``."""
    if order == "sequential":
        return list(items)
    out = list(items)
    random.Random(seed).shuffle(out)
    return out
