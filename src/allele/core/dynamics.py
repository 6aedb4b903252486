"""Conversation dynamics: lexical features of each user message streamed through a small
:class:`~allele.core.kraken.KrakenLNN`, summarised in one line for the agent's system prompt
(see :class:`ConversationDynamics`)."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

from allele.errors import AlleleError

if TYPE_CHECKING:
    from allele.core.kraken import KrakenLNN

__all__ = ["FEATURE_NAMES", "ConversationDynamics", "ema", "message_features"]

FEATURE_NAMES: tuple[str, ...] = ("engagement", "length", "questions")
_LENGTH_SATURATION_WORDS = 100
_DYNAMICS_ALPHA = 0.3
_TREND_MARGIN = 0.08
_PRIME_STEPS = 20


def message_features(text: str) -> npt.NDArray[np.float64]:
    """Deterministic lexical features of one user message, each in [0, 1].

    * ``length``: ``log1p(words) / log1p(100)``, capped at 1 (100 words or more -> 1);
    * ``questions``: ``min(1, count('?') / 2)``;
    * ``engagement``: ``0.5 * length + 0.3 * questions + 0.2 * min(1, count('!') / 2)``.

    Returned in the order of :data:`FEATURE_NAMES`: ``[engagement, length, questions]``.
    """
    words = len(text.split())
    length = min(1.0, math.log1p(words) / math.log1p(_LENGTH_SATURATION_WORDS))
    questions = min(1.0, text.count("?") / 2.0)
    exclaims = min(1.0, text.count("!") / 2.0)
    engagement = 0.5 * length + 0.3 * questions + 0.2 * exclaims
    return np.array([engagement, length, questions], dtype=np.float64)


class ConversationDynamics:
    """Conversation features through a KrakenLNN, summarised in one line.

    The reservoir (50 units, seeded) gets a ridge readout trained, on first use, to output a slow
    running level of each feature (the exponential moving average with ``alpha = 0.3``) from its
    state; the training stream is synthetic and derived from ``seed`` only (piecewise-constant
    levels plus noise, 600 steps). During a conversation each user message is one reservoir step.
    A feature is *rising* (*falling*) when the newest message's value exceeds (is below) the
    reservoir's level from before that message by more than 0.08; otherwise it is *steady*.
    The summary needs at least two user messages; before that it is None.

    Example summary: ``"engagement rising, messages getting shorter, few questions"``.
    """

    def __init__(self, seed: int | None = 0, reservoir_size: int = 50,
                 name: str | None = None) -> None:
        self.seed = seed
        self.name = name
        self.reservoir_size = reservoir_size
        self._kraken: KrakenLNN | None = None
        self._features: list[npt.NDArray[np.float64]] = []
        self._levels: list[npt.NDArray[np.float64]] = []  # readout output after each message
        self.last_state: npt.NDArray[np.float64] | None = None

    # ---- the reservoir
    def _reservoir(self) -> KrakenLNN:
        if self._kraken is None:
            from allele.core.kraken import KrakenLNN

            kraken = KrakenLNN(
                reservoir_size=self.reservoir_size,
                spectral_radius=0.9,
                leak_rate=0.3,
                input_scaling=0.5,
                connectivity=0.2,
                ridge=1e-4,
                memory_size=256,
                seed=self.seed,
                name=self.name,
            )
            inputs, targets = self.training_stream(self.seed)
            kraken.fit(inputs, targets, warmup=50)
            kraken.reset()
            self._kraken = kraken
        return self._kraken

    @staticmethod
    def training_stream(
        seed: int | None, steps: int = 600
    ) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
        """The synthetic feature stream and its EMA targets the readout is trained on."""
        rng = np.random.default_rng(seed)
        d = len(FEATURE_NAMES)
        inputs = np.empty((steps, d))
        level = rng.uniform(0.0, 1.0, size=d)
        for t in range(steps):
            if rng.random() < 0.1:
                level = rng.uniform(0.0, 1.0, size=d)
            inputs[t] = np.clip(level + rng.normal(0.0, 0.15, size=d), 0.0, 1.0)
        return inputs, ema(inputs, _DYNAMICS_ALPHA)

    # ---- streaming
    def observe(self, text: str) -> npt.NDArray[np.float64]:
        """Feed one user message; returns the reservoir's level estimate after it."""
        return self.observe_features(message_features(text))

    def observe_features(self, features: npt.ArrayLike) -> npt.NDArray[np.float64]:
        """Feed one feature vector ``[engagement, length, questions]``; returns the level."""
        row = np.asarray(features, dtype=np.float64).reshape(len(FEATURE_NAMES))
        # The first message primes the reservoir: it is held for _PRIME_STEPS steps, so that the
        # level starts at the first message (as the EMA targets do) rather than at a cold state.
        steps = _PRIME_STEPS if not self._features else 1
        result = self._reservoir().process_sequence(np.repeat(row[None, :], steps, axis=0))
        if result.outputs is None:  # the readout is always fitted by _reservoir()
            raise AlleleError("Kraken readout missing")
        outputs: npt.NDArray[np.float64] = np.asarray(result.outputs, dtype=np.float64)
        level: npt.NDArray[np.float64] = outputs[-1].reshape(-1)
        self.last_state = result.state
        self._features.append(row)
        self._levels.append(level)
        return level

    def rollback(self, n_messages: int) -> None:
        """Forget everything after the first ``n_messages`` messages (the rest are replayed)."""
        keep = self._features[:n_messages]
        self.reset()
        for row in keep:
            self.observe_features(row)

    def reset(self) -> None:
        """Forget the conversation (the trained readout is kept)."""
        if self._kraken is not None:
            self._kraken.reset()
        self._features.clear()
        self._levels.clear()
        self.last_state = None

    @property
    def messages_seen(self) -> int:
        return len(self._features)

    @property
    def levels(self) -> npt.NDArray[np.float64]:
        """The reservoir's level estimates, one row per message: (messages, 3)."""
        if not self._levels:
            return np.empty((0, len(FEATURE_NAMES)))
        return np.vstack(self._levels)

    def trends(self) -> dict[str, str] | None:
        """``{"engagement": "rising"|"falling"|"steady", "length": ..., "questions": ...}``."""
        if len(self._features) < 2:
            return None
        newest = self._features[-1]
        before = self._levels[-2]
        out: dict[str, str] = {}
        for i, feature in enumerate(FEATURE_NAMES):
            diff = float(newest[i] - before[i])
            if diff > _TREND_MARGIN:
                out[feature] = "rising"
            elif diff < -_TREND_MARGIN:
                out[feature] = "falling"
            else:
                out[feature] = "steady"
        return out

    def summary(self) -> str | None:
        """One line for the system prompt, or None before two user messages."""
        trends = self.trends()
        if trends is None:
            return None
        length_words = {
            "rising": "messages getting longer",
            "falling": "messages getting shorter",
            "steady": "message length steady",
        }
        question_level = float(self._levels[-1][2])
        questions = "many questions" if question_level >= 0.4 else "few questions"
        return (
            f"engagement {trends['engagement']}, {length_words[trends['length']]}, {questions}"
        )


def ema(values: npt.NDArray[np.float64], alpha: float) -> npt.NDArray[np.float64]:
    """Exponential moving average along axis 0, starting at the first row."""
    out = np.empty_like(values)
    level = values[0].copy()
    for t in range(values.shape[0]):
        level = (1.0 - alpha) * level + alpha * values[t]
        out[t] = level
    return out
