"""A benchmark checked against its built-in target before anything runs: its parameters (with
the component's own validation), the metrics it keeps, and the hooks it may not have."""

from __future__ import annotations

from typing import TYPE_CHECKING

from allele.bench.metrics import INSTRUCTION_METRICS, MEASURED_METRICS
from allele.errors import AlleleError, ConfigError

if TYPE_CHECKING:
    from allele.bench.spec import BenchmarkSpec


def check_builtin(spec: BenchmarkSpec, source: str, prefix: str) -> None:
    """Built-in targets know their parameters and metrics: check them before anything runs."""
    from allele.bench.targets import BUILTINS  # local: targets imports core lazily

    if spec.target not in BUILTINS:
        return
    info = BUILTINS[spec.target]
    for hook in ("setup", "teardown"):
        if getattr(spec, hook) is not None:
            raise ConfigError(
                f"{source}: {prefix}{hook}: the built-in target {spec.target!r} builds its own "
                f"input and takes no state; '{hook}' works with a 'package.module:function' "
                "target only")
    if spec.metrics is not None:
        allowed = set(info.metrics) | set(MEASURED_METRICS) | set(INSTRUCTION_METRICS)
        for j, metric in enumerate(spec.metrics):
            if metric not in allowed:
                at = f".{metric}" if isinstance(spec.metrics, dict) else f"[{j}]"
                raise ConfigError(
                    f"{source}: {prefix}metrics{at}: unknown metric {metric!r} for target "
                    f"{spec.target!r} (allowed: {', '.join(sorted(allowed))})")
    for params in spec.expand():
        try:
            info.check_params(params)
        except AlleleError as exc:
            bad = getattr(exc, "param", None)
            where = _where(spec, bad, prefix)
            raise ConfigError(f"{source}: {where}: {exc}") from None


def _where(spec: BenchmarkSpec, param: str | None, prefix: str) -> str:
    if param is None:
        return prefix + "matrix"
    if param in spec.matrix:
        return f"{prefix}matrix.{param}"
    if param in spec.fixed:
        return f"{prefix}fixed.{param}"
    for n, entry in enumerate(spec.include):
        if param in entry:
            return f"{prefix}include[{n}].{param}"
    return f"{prefix}matrix.{param}"
