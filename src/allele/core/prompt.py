"""Genome -> system prompt: a fixed, documented table of trait levels to instructions.

Each of the 8 traits (a value in [0, 1]) falls into one of three levels:

* ``low``     when value < 0.33
* ``medium``  when 0.33 <= value < 0.67
* ``high``    when value >= 0.67

and each (trait, level) pair maps to one instruction sentence in :data:`TRAIT_INSTRUCTIONS`. The
system prompt is a fixed preamble, then one bullet per trait in the canonical trait order, then
(optionally) a line of conversation dynamics from the Kraken reservoir. The same genome always
gives the same prompt, byte for byte. The table is reproduced in ``docs/agents.md``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Literal

from allele.core.genome import TRAITS
from allele.errors import ValidationError

Level = Literal["low", "medium", "high"]

LOW_MAX = 0.33
"""Values below this are ``low``."""
MEDIUM_MAX = 0.67
"""Values below this (and at least :data:`LOW_MAX`) are ``medium``; the rest are ``high``."""

TRAIT_ORDER: tuple[str, ...] = TRAITS
"""The canonical trait order (that of :data:`allele.core.genome.TRAITS`)."""

TRAIT_INSTRUCTIONS: Mapping[str, Mapping[Level, str]] = {
    "empathy": {
        "low": "Stay neutral and matter-of-fact; do not comment on the user's feelings.",
        "medium": "Acknowledge the user's feelings briefly when they express them.",
        "high": "Show warmth: recognise the user's feelings and respond to them with care.",
    },
    "engagement": {
        "low": "Answer only what is asked; do not ask follow-up questions.",
        "medium": "Ask a follow-up question when it helps move the conversation forward.",
        "high": "Be actively engaged: show curiosity and invite the user to say more.",
    },
    "technical_knowledge": {
        "low": "Use plain everyday language and avoid jargon.",
        "medium": "Use technical terms when useful and explain them briefly.",
        "high": "Give precise, expert-level technical detail and correct terminology.",
    },
    "creativity": {
        "low": "Stick to conventional, well-established answers.",
        "medium": "Offer an alternative idea or an example when it adds value.",
        "high": "Be imaginative: propose original ideas, analogies and unexpected angles.",
    },
    "conciseness": {
        "low": "Explain thoroughly, with detail and context.",
        "medium": "Keep answers reasonably short, a few sentences.",
        "high": "Be very brief: one or two sentences.",
    },
    "context_awareness": {
        "low": "Treat each message on its own.",
        "medium": "Take the earlier conversation into account when it matters.",
        "high": "Refer back to earlier points of the conversation and keep track of them.",
    },
    "adaptability": {
        "low": "Keep a consistent style whatever the user's tone.",
        "medium": "Adjust your tone somewhat to match the user.",
        "high": "Mirror the user's tone, vocabulary and level of detail closely.",
    },
    "personability": {
        "low": "Be formal and impersonal.",
        "medium": "Be friendly and polite.",
        "high": "Be personable and casual, like a friendly companion.",
    },
}

PREAMBLE = "You are a helpful conversational assistant. Your personality:"


def trait_level(value: float) -> Level:
    """The level of one trait value: low < 0.33 <= medium < 0.67 <= high."""
    if not 0.0 <= value <= 1.0:  # also rejects NaN
        raise ValidationError(f"trait value must be in [0, 1], got {value!r}")
    if value < LOW_MAX:
        return "low"
    if value < MEDIUM_MAX:
        return "medium"
    return "high"


def trait_instructions(traits: Mapping[str, float]) -> list[tuple[str, Level, str]]:
    """``(trait, level, instruction)`` for each of the 8 traits, in canonical order."""
    unknown = sorted(set(traits) - set(TRAIT_ORDER))
    if unknown:
        raise ValidationError(f"unknown trait(s) {unknown}; expected {list(TRAIT_ORDER)}")
    missing = [t for t in TRAIT_ORDER if t not in traits]
    if missing:
        raise ValidationError(f"missing trait(s) {missing}")
    out: list[tuple[str, Level, str]] = []
    for trait in TRAIT_ORDER:
        level = trait_level(float(traits[trait]))
        out.append((trait, level, TRAIT_INSTRUCTIONS[trait][level]))
    return out


def build_system_prompt(traits: Mapping[str, float], dynamics: str | None = None) -> str:
    """The system prompt for a genome's traits, plus an optional conversation-dynamics line."""
    lines = [PREAMBLE]
    lines.extend(f"- {instruction}" for _, _, instruction in trait_instructions(traits))
    if dynamics:
        lines.append(f"Conversation dynamics: {dynamics}.")
    return "\n".join(lines)
