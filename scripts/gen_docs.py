"""Generates the reference pages of the docs site from the code: the CLI reference from the typer
app (every command, argument and option with its help) into ``docs/reference/cli.md``, and the
spec-file reference from the pydantic models of :mod:`allele.bench.spec` (every key, its type,
default, bounds and description) into ``docs/reference/spec.md``.

    python scripts/gen_docs.py            # write the pages
    python scripts/gen_docs.py --check    # exit 1 when a committed page is out of date

``make docs`` runs it before ``mkdocs build --strict``; a test runs ``--check``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import typer
from typer._click.core import Context  # typer 0.2x carries its own click

ROOT = Path(__file__).resolve().parent.parent
CLI_PAGE = ROOT / "docs" / "reference" / "cli.md"


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ").strip()


def _param_line(param: Any, ctx: Any) -> str:
    record = param.get_help_record(ctx)
    usage, help_text = record if record else (param.name, "")
    if param.param_type_name == "argument":
        usage = usage.split(" ")[0].upper()
    return f"| `{_cell(usage)}` | {_cell(help_text)} |"


def _command_doc(cmd: Any, path: list[str], depth: int) -> list[str]:
    out: list[str] = []
    title = " ".join(path)
    out.append(f"{'#' * min(depth, 6)} `{title}`")
    out.append("")
    help_text = (cmd.help or "").strip()
    if help_text:
        out.append(help_text.split("\n\n")[0].replace("\n", " "))
        out.append("")
    params = [p for p in cmd.params if p.name not in ("help",)]
    if params:
        ctx = Context(cmd, info_name=path[-1])
        out.append("| parameter | description |")
        out.append("| --- | --- |")
        out.extend(_param_line(p, ctx) for p in params)
        out.append("")
    if hasattr(cmd, "commands"):
        for name in sorted(cmd.commands):
            out.extend(_command_doc(cmd.commands[name], [*path, name], depth + 1))
    return out


def cli_reference() -> str:
    from allele.cli import app

    root = typer.main.get_command(app)
    lines = ["# Command-line reference", "",
             "Generated from the `allele` command by `scripts/gen_docs.py`; every command also "
             "answers `--help`. Errors are one line on stderr and exit code 2.", ""]
    lines.extend(_command_doc(root, ["allele"], 2))
    return "\n".join(lines).rstrip() + "\n"


SPEC_PAGE = ROOT / "docs" / "reference" / "spec.md"


def _type_text(annotation: Any) -> str:
    """A readable type: ``list[int] | int``, ``str | int | float | bool | None`` (no
    ``Annotated`` or ``Strict`` noise)."""
    import types
    import typing

    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin is typing.Annotated:
        return _type_text(args[0])
    if origin in (typing.Union, types.UnionType):
        return " | ".join(dict.fromkeys(_type_text(a) for a in args))
    if origin is typing.Literal:
        return " | ".join(repr(a) for a in args)
    if origin is not None:
        name = getattr(origin, "__name__", str(origin))
        return f"{name}[{', '.join(_type_text(a) for a in args)}]"
    if annotation is type(None):
        return "None"
    if annotation is typing.Any:
        return "any"
    return getattr(annotation, "__name__", str(annotation))


def _bounds(field: Any) -> str:
    out = []
    for m in field.metadata:
        for attr, sym in (("ge", ">="), ("gt", ">"), ("le", "<="), ("lt", "<")):
            v = getattr(m, attr, None)
            if v is not None:
                out.append(f"{sym} {v:g}" if isinstance(v, float) else f"{sym} {v}")
    return ", ".join(out)


def _model_table(model: Any, skip: tuple[str, ...] = ()) -> list[str]:
    from pydantic_core import PydanticUndefined

    lines = ["| key | type | default | description |", "| --- | --- | --- | --- |"]
    for name, field in model.model_fields.items():
        if name in skip:
            continue
        if field.is_required():
            default = "required"
        elif field.default_factory is not None:
            default = f"`{field.default_factory()!r}`"
        elif field.default is PydanticUndefined:
            default = ""
        else:
            default = f"`{field.default!r}`"
        bounds = _bounds(field)
        desc = " ".join((field.description or "").split())
        lines.append(f"| `{name}` | `{_cell(_type_text(field.annotation))}` | {_cell(default)} | "
                     f"{_cell(desc)}{(' (' + bounds + ')') if bounds else ''} |")
    return lines


def spec_reference() -> str:
    from allele.bench.spec import BenchmarkSpec, SuiteSpec

    lines = ["# Spec-file reference", "",
             "Generated from the pydantic models of `allele.bench.spec` by `scripts/gen_docs.py`. "
             "A spec file is YAML: either one benchmark at the top level, or a suite with "
             "`benchmarks:` (a list of benchmarks), optional `defaults:` applied to every "
             "benchmark, and `presets:` (named partial overrides chosen with `--preset`). "
             "Unknown keys are errors. The guide with examples is "
             "[Matrix benchmarking](../benchmarking.md).", "",
             "## Suite", ""]
    lines += _model_table(SuiteSpec, skip=("benchmarks", "preset"))
    lines += ["", "## Benchmark", "",
              "Every key below can also appear in `defaults:` and in a preset, where all are "
              "optional.", ""]
    lines += _model_table(BenchmarkSpec)
    return "\n".join(lines).rstrip() + "\n"


PAGES = {CLI_PAGE: cli_reference, SPEC_PAGE: spec_reference}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only check the pages are current")
    args = parser.parse_args(argv)
    stale = []
    for path, make in PAGES.items():
        text = make()
        if args.check:
            if not path.exists() or path.read_text(encoding="utf-8") != text:
                stale.append(path)
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
    for path in stale:
        print(f"{path.relative_to(ROOT)} is out of date: run python scripts/gen_docs.py",
              file=sys.stderr)
    return 1 if stale else 0


if __name__ == "__main__":
    sys.exit(main())
