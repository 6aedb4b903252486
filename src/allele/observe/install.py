"""The process-wide default observer: observe components created without an explicit one.

``uninstall = install(telemetry)`` makes a Telemetry (or any observer) the default through
``allele.core.observer.set_default_observer_factory``. A factory installed before (e.g. MLflow
autolog) keeps working: both get every event through a :class:`FanOut`, each observer's failure
isolated by ``allele.core.observer.notify``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from allele.core import observer as _core_observer
from allele.core.observer import (
    ChatErrorStats,
    ChatStats,
    GenerationStats,
    ReadoutStats,
    SequenceStats,
)


def install(observer: Any) -> Callable[[], None]:
    """Observe every component created from now on without an explicit observer.

    Uses ``allele.core.observer.set_default_observer_factory``; a factory installed before
    (e.g. MLflow autolog) keeps working: both observers get the events. Returns a function
    that restores the previous factory.
    """
    previous = _core_observer.set_default_observer_factory(None)

    def factory(kind: str, name: str) -> Any:
        other = previous(kind, name) if previous is not None else None
        return observer if other is None else FanOut(observer, other)

    _core_observer.set_default_observer_factory(factory)

    def uninstall() -> None:
        _core_observer.set_default_observer_factory(previous)

    return uninstall


class FanOut:
    """An observer that forwards every event to several observers (each failure isolated)."""

    def __init__(self, *observers: Any) -> None:
        self.observers = observers

    def _send(self, method: str, name: str, stats: object) -> None:
        for obs in self.observers:
            _core_observer.notify(obs, method, name, stats)

    def on_generation(self, name: str, stats: GenerationStats) -> None:
        self._send("on_generation", name, stats)

    def on_sequence(self, name: str, stats: SequenceStats) -> None:
        self._send("on_sequence", name, stats)

    def on_readout(self, name: str, stats: ReadoutStats) -> None:
        self._send("on_readout", name, stats)

    def on_chat(self, name: str, stats: ChatStats) -> None:
        self._send("on_chat", name, stats)

    def on_chat_error(self, name: str, stats: ChatErrorStats) -> None:
        self._send("on_chat_error", name, stats)
