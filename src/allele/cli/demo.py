"""``allele demo``: one short run of every core component, with a table of what each did."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import typer
from rich.table import Table

from allele.cli._common import esc, make_console, plain
from allele.errors import AlleleError

console = make_console()


class StepFailed(Exception):
    """A step that failed after saying what it ran: its row names what was tried (which
    provider, which server) instead of only "failed"."""

    def __init__(self, what: str, error: Exception) -> None:
        super().__init__(str(error))
        self.what = what
        self.error = error


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
    """One chat with the configured LLM (``ALLELE_LLM__*``, allele.toml; by default the bundled
    SmolLM2 run in process). An in-process model is loaded before the chat is timed, so the
    tokens/s is the model's speed, not its load; over HTTP it is the whole request's."""
    from allele.core.agent import AgentConfig, NLPAgent
    from allele.core.genome import Genome

    config = AgentConfig.from_settings(max_tokens=32, temperature=0.2)
    genome = Genome({"empathy": 0.9, "conciseness": 0.9, "technical_knowledge": 0.7})
    agent = NLPAgent(genome, config)
    model = config.model or ("" if config.provider == "openai" else "the bundled SmolLM2")
    what = _chat_what(config.provider, model, config.base_url)
    try:
        load_s = _load(agent.provider)
        reply = agent.chat("In one sentence: what is a genetic algorithm?")
    except (AlleleError, ImportError) as exc:
        raise StepFailed(what, exc) from exc
    rate = reply.completion_tokens / reply.seconds if reply.seconds > 0 else 0.0
    text = " ".join(reply.text.split())
    if len(text) > 90:
        text = text[:87] + "..."
    tokens = f"{'~' if reply.usage_estimated else ''}{reply.completion_tokens} tokens"
    chat = (f"{tokens} for a {reply.prompt_tokens}-token prompt in {reply.seconds:.2f} s "
            f"({rate:.0f} tokens/s")
    timing = (f"model loaded in {load_s:.2f} s, then {chat})" if load_s is not None else
              f"{chat}, whole HTTP round trip)")
    return _chat_what(reply.provider, reply.model, config.base_url), f"{timing}: \"{text}\""


def _chat_what(provider: str, model: str, base_url: str) -> str:
    """What the agent row ran: which provider and model (and server), as configured."""
    if provider == "openai":
        return f"chat with {model or 'the server model'} (openai at {base_url})"
    return f"chat with {model} ({provider}, in process)"


def _load(provider: object) -> float | None:
    """Seconds to load an in-process model (None: the provider has nothing to load)."""
    load = getattr(provider, "load", None)
    if load is None:
        return None
    t0 = time.perf_counter()
    load()
    return time.perf_counter() - t0


STEPS: list[tuple[str, Callable[[], tuple[str, str]]]] = [
    ("evolution", _evolution),
    ("kraken", _kraken),
    ("agent", _agent),
]


def demo() -> None:
    """Run a short evolution, a Kraken fit on Mackey-Glass and one chat with the configured LLM
    (ALLELE_LLM__* or allele.toml; by default the bundled local model)."""
    table = Table(title="Allele core components")
    for col in ("component", "what ran", "result", "seconds"):
        table.add_column(col, overflow="fold")
    failures = 0
    for name, step in STEPS:
        t0 = time.perf_counter()
        with console.status(f"running {esc(name)}..."):
            try:
                what, outcome = step()
                style: Any = None
            except (AlleleError, ImportError, StepFailed) as exc:
                failed = exc if isinstance(exc, StepFailed) else StepFailed("failed", exc)
                what, style = failed.what, "red"
                outcome = f"{type(failed.error).__name__}: {failed.error}"
                failures += 1
        # error text and replies are printed as text: "pip install 'allele[llm]'" kept its
        # [llm], and a path holding "[/b]" crashed the table (MarkupError)
        table.add_row(plain(name), plain(what), plain(outcome),
                      f"{time.perf_counter() - t0:.2f}", style=style)
    console.print(table)
    if failures:
        raise typer.Exit(code=1)


def register(app: typer.Typer) -> None:
    """Add the ``demo`` command to the root app."""
    app.command("demo")(demo)
