"""``allele demo``: one short run of every core component, with a table of what each did."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import typer
from rich.console import Console
from rich.table import Table

from allele.errors import AlleleError

console = Console()


def _evolution() -> tuple[str, str]:
    from allele.core.evolution import EvolutionConfig, EvolutionEngine
    from allele.core.fitness import target_personality

    target = {"empathy": 0.9, "engagement": 0.8, "technical_knowledge": 0.6, "conciseness": 0.3}
    cfg = EvolutionConfig(population_size=500, generations=100, seed=42)
    result = EvolutionEngine(cfg, target_personality(target)).run()
    first, last = result.history[0], result.history[-1]
    ms = 1e3 * sum(h.seconds for h in result.history[1:]) / max(len(result.history) - 1, 1)
    return (
        f"GA, population {cfg.population_size}, {cfg.generations} generations",
        f"best fitness {first.best:.4f} -> {last.best:.4f}; {ms:.2f} ms/generation; "
        f"{result.evaluations} evaluations",
    )


def _kraken() -> tuple[str, str]:
    from allele.core.datasets import mackey_glass, nrmse
    from allele.core.kraken import KrakenLNN

    series = mackey_glass(3000, seed=0)
    train, test = series[:2000], series[2000:]
    net = KrakenLNN(reservoir_size=300, seed=0)
    net.fit(train[:-1], train[1:], warmup=100)
    pred = net.predict(test[:-1])
    error = nrmse(test[1:], pred)
    return ("reservoir of 300 units, Mackey-Glass one-step prediction",
            f"test NRMSE {error:.2e} on {len(test) - 1} steps")


def _agent() -> tuple[str, str]:
    from allele.core.agent import AgentConfig, NLPAgent
    from allele.core.genome import Genome

    genome = Genome({"empathy": 0.9, "conciseness": 0.9, "technical_knowledge": 0.7})
    agent = NLPAgent(genome, AgentConfig(provider="llamacpp", max_tokens=32, temperature=0.2))
    reply = agent.chat("In one sentence: what is a genetic algorithm?")
    rate = reply.completion_tokens / reply.seconds if reply.seconds > 0 else 0.0
    text = " ".join(reply.text.split())
    if len(text) > 90:
        text = text[:87] + "..."
    return (f"chat with {reply.model} ({reply.provider})",
            f"{reply.completion_tokens} tokens at {rate:.0f} tokens/s: \"{text}\"")


STEPS: list[tuple[str, Callable[[], tuple[str, str]]]] = [
    ("evolution", _evolution),
    ("kraken", _kraken),
    ("agent", _agent),
]


def demo() -> None:
    """Run a short evolution, a Kraken fit on Mackey-Glass and one chat with the local model."""
    table = Table(title="Allele core components")
    for col in ("component", "what ran", "result", "seconds"):
        table.add_column(col, overflow="fold")
    failures = 0
    for name, step in STEPS:
        t0 = time.perf_counter()
        with console.status(f"running {name}..."):
            try:
                what, outcome = step()
                style: Any = None
            except (AlleleError, ImportError) as exc:
                what, outcome, style = "failed", f"{type(exc).__name__}: {exc}", "red"
                failures += 1
        table.add_row(name, what, outcome, f"{time.perf_counter() - t0:.2f}", style=style)
    console.print(table)
    if failures:
        raise typer.Exit(code=1)


def register(app: typer.Typer) -> None:
    """Add the ``demo`` command to the root app."""
    app.command("demo")(demo)
