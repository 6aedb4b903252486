"""``allele genome register|list|show|diff``: evolved genomes in the MLflow model registry."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from allele.cli._common import errors_as_one_line, esc, make_console, plain

app = typer.Typer(help="Version evolved genomes in the MLflow model registry (mlflow extra).",
                  no_args_is_help=True)


def _console() -> Console:
    # built per command, so that the terminal width is read when it runs; names are user text;
    # 150 columns when not a terminal (a pipe's 80 cut the genome ids)
    return make_console()


def fitness_texts(values: Sequence[float | None]) -> list[str]:
    """Fitness values as text with enough significant digits (10 to 17) that values that
    differ read differently: ``0.9999999979``, not ``1``; ``-`` for None."""
    known = sorted({v for v in values if v is not None})
    digits = 10
    while digits < 17 and len({f"{v:.{digits}g}" for v in known}) < len(known):
        digits += 1
    return ["-" if v is None else f"{v:.{digits}g}" for v in values]


def _tag_float(text: str) -> float | None:
    try:
        return float(text) if text else None
    except ValueError:
        return None



UriOption = Annotated[str | None, typer.Option(
    "--tracking-uri", help="MLflow tracking/registry URI (default: settings, sqlite:///mlflow.db).")]


@app.command("register")
@errors_as_one_line
def register(
    genome_file: Annotated[Path, typer.Argument(help="A genome JSON file (Genome.to_json).")],
    name: Annotated[str, typer.Option("--name", "-n", help="Registered model name.")],
    alias: Annotated[str, typer.Option(
        help="Alias pointed at the new version (MLflow reserves 'latest' and v<digits>)."
    )] = "champion",
    tag: Annotated[list[str] | None, typer.Option(
        "--tag", help="KEY=VALUE version tag (repeatable).")] = None,
    fitness_spec: Annotated[str | None, typer.Option(
        "--fitness-spec", help='Default fitness for predict, JSON: {"target": {...}}.')] = None,
    tracking_uri: UriOption = None,
) -> None:
    """Register a genome JSON file as a new version of NAME and alias it."""
    from allele.tracking.registry import register_genome_file

    # MLflow takes seconds to open a registry and log the model: say so on stderr meanwhile
    # (it was silent for 6-12 s); a terminal only, so logs and pipes stay clean
    with Console(stderr=True, emoji=False).status(f"registering {esc(str(genome_file))} in "
                                                  "MLflow ..."):
        reg = register_genome_file(genome_file, name, alias=alias or None, tags=tag or [],
                                   fitness_spec=fitness_spec, tracking_uri=tracking_uri)
    _console().print(f"registered genome {esc(reg.genome.id)} as [bold]{esc(reg.name)}[/] version "
                     f"{reg.version}" + (f" (alias {esc(alias)})" if alias else ""),
                     highlight=False)


@app.command("list")
@errors_as_one_line
def list_(
    name: Annotated[str | None, typer.Argument(help="Only this registered model.")] = None,
    tracking_uri: UriOption = None,
) -> None:
    """List registered genome versions with aliases, generation and fitness."""
    from allele.tracking.registry import TAG_FITNESS, TAG_GENERATION, TAG_GENOME_ID, list_genomes

    versions = list_genomes(name, tracking_uri=tracking_uri)
    if not versions:
        _console().print("no registered genomes" + (f" named {name!r}" if name else ""),
                         markup=False)
        return
    # ids are copied from here and fitness values compared: those two columns never wrap or
    # get cut, the others wrap to make room
    table = Table("name", "version", "aliases", "genome id", "generation", "fitness")
    table.columns[3].no_wrap = table.columns[5].no_wrap = True
    fitness = [_tag_float(v.tags.get(TAG_FITNESS, "")) for v in versions]
    for v, fit_text in zip(versions, fitness_texts(fitness), strict=True):
        raw = v.tags.get(TAG_FITNESS, "")
        table.add_row(plain(v.name), plain(v.version), plain(",".join(v.aliases)),
                      plain(v.tags.get(TAG_GENOME_ID, "")), plain(v.tags.get(TAG_GENERATION, "")),
                      plain(fit_text if _tag_float(raw) is not None else raw or "-"))
    _console().print(table)


@app.command("show")
@errors_as_one_line
def show(
    ref: Annotated[str, typer.Argument(help="NAME@ALIAS, NAME/VERSION or models:/...")],
    tracking_uri: UriOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the genome JSON only.")] = False,
) -> None:
    """Show a registered genome: traits, lineage, fitness and its system prompt."""
    from allele.tracking.registry import get_genome, system_prompt_for

    reg = get_genome(ref, tracking_uri=tracking_uri)
    g = reg.genome
    if as_json:
        typer.echo(g.to_json())
        return
    _console().print(f"[bold]{esc(reg.name)}[/] version {esc(reg.version)}"
                     + (f" (aliases: {esc(', '.join(reg.aliases))})" if reg.aliases else ""),
                     highlight=False)
    _console().print(f"genome {g.id}, generation {g.generation}, parents "
                     f"{', '.join(g.parent_ids) or '-'}, fitness {fitness_texts([g.fitness])[0]}",
                     highlight=False,
                     markup=False)
    table = Table("trait", "value")
    for trait, value in g.traits.items():
        table.add_row(trait, f"{value:.4f}")
    _console().print(table)
    _console().print(system_prompt_for(g), highlight=False, markup=False)


@app.command("diff")
@errors_as_one_line
def diff(
    name: Annotated[str, typer.Argument(help="Registered model name.")],
    v1: Annotated[str, typer.Argument(help="Version number or alias.")],
    v2: Annotated[str, typer.Argument(help="Version number or alias.")],
    tracking_uri: UriOption = None,
) -> None:
    """Trait differences and fitness of two versions of a registered genome."""
    from allele.tracking.registry import compare_versions

    cmp = compare_versions(name, v1, v2, tracking_uri=tracking_uri)
    table = Table("trait", f"v{cmp.a.version}", f"v{cmp.b.version}", "delta")
    for t in cmp.traits:
        style = "bold" if t.delta != 0 else ""
        table.add_row(t.trait, f"{t.a:.4f}", f"{t.b:.4f}", f"{t.delta:+.4f}", style=style)

    fit_a, fit_b = fitness_texts([cmp.fitness_a, cmp.fitness_b])
    table.add_row("fitness", fit_a, fit_b,
                  "-" if cmp.fitness_delta is None else f"{cmp.fitness_delta:+.4g}")
    _console().print(table)
