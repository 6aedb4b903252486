"""Scenario 1: a user evolves agent personalities, registers the champion and reads it back."""

from __future__ import annotations

import json
import re
import textwrap

import pytest

from tests.uat.conftest import User

pytestmark = [pytest.mark.uat, pytest.mark.slow]

EVOLVE = textwrap.dedent("""
    from allele.core.evolution import EvolutionConfig, EvolutionEngine
    from allele.core.fitness import target_personality

    # a support agent: warm and patient, not too talkative
    fitness = target_personality({"empathy": 0.9, "engagement": 0.8, "conciseness": 0.7})
    result = EvolutionEngine(EvolutionConfig(population_size=200, generations=40, seed=7),
                             fitness).run()
    open("champion.json", "w").write(result.best.to_json())
    print(f"best fitness {result.history[-1].best:.4f} after {len(result.history)} generations")
""")


def test_evolve_register_and_read_back_the_champion(user: User) -> None:
    (user.home / "evolve.py").write_text(EVOLVE)
    evolved = user.run(*user.allele_python(), "evolve.py")
    assert evolved.code == 0, evolved.err
    best = float(re.search(r"best fitness ([0-9.]+)", evolved.out).group(1))  # type: ignore[union-attr]
    assert best > 0.9, evolved.out
    champion = json.loads((user.home / "champion.json").read_text())

    reg = user.ok("genome", "register", "champion.json", "--name", "support-agent",
                  "--tag", "team=support")
    assert "as support-agent version 1 (alias champion)" in reg.out

    listed = user.ok("genome", "list")
    row = next(line for line in listed.out.splitlines() if "support-agent" in line)
    assert "champion" in row and champion["id"] in row

    shown = user.ok("genome", "show", "support-agent@champion")
    assert "support-agent version 1 (aliases: champion)" in shown.out
    for trait in ("empathy", "engagement", "conciseness"):
        value = champion["traits"][trait]
        assert re.search(rf"{trait}\s*[│|]\s*{value:.4f}", shown.out), (trait, shown.out)
    # the agent's system prompt derived from the genome follows the traits
    assert "empath" in shown.out.lower()

    # the registered genome is the evolved one, bit for bit
    back = json.loads(user.ok("genome", "show", "support-agent@champion", "--json").out)
    assert back["traits"] == champion["traits"]
    assert back["id"] == champion["id"]

    # a second, worse candidate registered without moving the alias: the champion stays
    worse = dict(champion, id=champion["id"] + "-b",
                 traits={**champion["traits"], "empathy": 0.1})
    (user.home / "worse.json").write_text(json.dumps(worse))
    user.ok("genome", "register", "worse.json", "--name", "support-agent", "--alias", "")
    diff = user.ok("genome", "diff", "support-agent", "champion", "2")
    assert re.search(r"empathy.*0\.1", diff.out), diff.out
    again = json.loads(user.ok("genome", "show", "support-agent@champion", "--json").out)
    assert again["id"] == champion["id"]
