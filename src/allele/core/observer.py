"""The observer Protocol through which core components report what they do.

``core`` knows nothing of metrics or exporters. Each component (EvolutionEngine, KrakenLNN,
NLPAgent) takes an optional ``observer`` and, when one is given, calls one method per event with a
small slotted dataclass; treat it as read-only (observers may keep it, and GenerationStats also
lives in ``EvolutionResult.history``). The dataclasses are not ``frozen``: a frozen one costs about
1 us more to build (``object.__setattr__`` per field), a few per cent of a short
``process_sequence`` call. With ``observer=None`` (the default) no event object is even built, so
an unobserved component pays nothing. ``allele.observe.Telemetry`` implements this Protocol.

Every call passes the component's stable ``name`` (e.g. ``"evolution-0"``) first, so one observer
can watch many components. Observers must never raise into the component: components call them
through :func:`notify`, which swallows and counts observer failures.
"""

from __future__ import annotations

import itertools
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

_log = logging.getLogger("allele.core.observer")


@dataclass(slots=True)
class GenerationStats:
    """What one generation of an EvolutionEngine did."""

    generation: int
    best: float
    mean: float
    std: float
    diversity: float
    evaluations: int
    seconds: float


@dataclass(slots=True)
class SequenceStats:
    """What one ``process_sequence`` / ``predict`` call of a KrakenLNN did."""

    steps: int
    seconds: float
    state_norm: float
    saturated_fraction: float
    memory_fill: int
    memory_capacity: int


@dataclass(slots=True)
class ReadoutStats:
    """A KrakenLNN readout was trained."""

    samples: int
    seconds: float
    train_nrmse: float


@dataclass(slots=True)
class ChatStats:
    """An NLPAgent chat finished successfully."""

    provider: str
    model: str
    prompt_tokens: int
    completion_tokens: int
    seconds: float
    time_to_first_token: float | None
    retries: int
    streamed: bool


@dataclass(slots=True)
class ChatErrorStats:
    """An NLPAgent chat failed; ``cause`` is ProviderError.cause (connect, timeout, http_5xx...)."""

    provider: str
    model: str
    cause: str
    seconds: float
    retries: int
    message: str


@runtime_checkable
class Observer(Protocol):
    """One method per event. Implementations may ignore the events they do not care about."""

    def on_generation(self, name: str, stats: GenerationStats) -> None: ...

    def on_sequence(self, name: str, stats: SequenceStats) -> None: ...

    def on_readout(self, name: str, stats: ReadoutStats) -> None: ...

    def on_chat(self, name: str, stats: ChatStats) -> None: ...

    def on_chat_error(self, name: str, stats: ChatErrorStats) -> None: ...


class NullObserver:
    """An observer that does nothing (useful as a base class for partial observers)."""

    def on_generation(self, name: str, stats: GenerationStats) -> None:
        return None

    def on_sequence(self, name: str, stats: SequenceStats) -> None:
        return None

    def on_readout(self, name: str, stats: ReadoutStats) -> None:
        return None

    def on_chat(self, name: str, stats: ChatStats) -> None:
        return None

    def on_chat_error(self, name: str, stats: ChatErrorStats) -> None:
        return None


observer_failures = 0
"""How many observer calls raised (and were swallowed) in this process."""

_fail_lock = threading.Lock()


def notify(observer: Any, method: str, name: str, stats: object) -> None:
    """Call ``observer.<method>(name, stats)``; an observer's failure never reaches the caller."""
    global observer_failures
    try:
        getattr(observer, method)(name, stats)
    except Exception:  # an observer must never break the observed component
        with _fail_lock:
            observer_failures += 1
        _log.exception("observer %r failed in %s for %s", observer, method, name)


_counters: dict[str, itertools.count[int]] = {}
_counters_lock = threading.Lock()


def default_name(kind: str) -> str:
    """A stable, process-unique component name: ``evolution-0``, ``evolution-1``, ``kraken-0``..."""
    with _counters_lock:
        counter = _counters.setdefault(kind, itertools.count())
        return f"{kind}-{next(counter)}"


# -- process-wide default observer (used by allele.tracking.autolog) -------------------------------
# Components call ``default_observer(kind, name)`` when constructed with ``observer=None``. Unset
# (the default) it is one global read returning None: an unobserved component still pays nothing.

ObserverFactory = Callable[[str, str], Any]
"""``factory(kind, name) -> observer or None``; kind is ``evolution``, ``kraken`` or ``agent``."""

_default_factory: ObserverFactory | None = None


def set_default_observer_factory(factory: ObserverFactory | None) -> ObserverFactory | None:
    """Install (or with None remove) the process-wide default observer factory; returns the old."""
    global _default_factory
    old, _default_factory = _default_factory, factory
    return old


def default_observer(kind: str, name: str) -> Any:
    """The observer a component named ``name`` of ``kind`` gets when it was given none (or None)."""
    factory = _default_factory
    if factory is None:
        return None
    try:
        return factory(kind, name)
    except Exception:  # a broken factory must never break the component
        _log.exception("default observer factory failed for %s %s", kind, name)
        return None
