"""The provider interface: chat messages, generation parameters, completions, and the
:class:`LLMProvider` every provider implements (see :mod:`allele.core.llm`)."""

from __future__ import annotations

import asyncio
import math
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Literal, TypedDict

from allele.errors import ProviderError


class ChatMessage(TypedDict):
    """One message of an OpenAI-style chat: ``{"role": ..., "content": ...}``."""

    role: Literal["system", "user", "assistant"]
    content: str


@dataclass(frozen=True, slots=True)
class Completion:
    """What a provider answered for one chat request."""

    text: str
    prompt_tokens: int
    completion_tokens: int
    model: str
    retries: int = 0
    usage_estimated: bool = False
    finish_reason: str | None = None


@dataclass(frozen=True, slots=True)
class GenerationParams:
    """Sampling parameters shared by every provider."""

    temperature: float
    max_tokens: int
    seed: int | None = None


StreamItem = str | Completion
"""A provider stream yields text chunks (``str``) and, last, exactly one :class:`Completion`."""


class LLMProvider(ABC):
    """The interface every provider implements.

    ``stream`` yields the text chunks as they arrive and, as its last item, the complete
    :class:`Completion` (whose ``text`` is the concatenation of the chunks).
    """

    #: provider kind: ``"openai"`` or ``"llamacpp"``
    kind: str

    @property
    @abstractmethod
    def url(self) -> str:
        """The endpoint (HTTP) or model file path (in process) errors are reported against."""

    @property
    @abstractmethod
    def model(self) -> str:
        """The model name requested (may be resolved lazily)."""

    @abstractmethod
    def complete(self, messages: Sequence[ChatMessage], params: GenerationParams) -> Completion:
        """Answer one chat request."""

    @abstractmethod
    async def acomplete(
        self, messages: Sequence[ChatMessage], params: GenerationParams
    ) -> Completion:
        """Answer one chat request without blocking the event loop."""

    @abstractmethod
    def stream(
        self, messages: Sequence[ChatMessage], params: GenerationParams
    ) -> Iterator[StreamItem]:
        """Answer one chat request chunk by chunk (see the class docstring)."""

    async def astream(
        self, messages: Sequence[ChatMessage], params: GenerationParams
    ) -> AsyncIterator[StreamItem]:
        """:meth:`stream` for async code. By default the blocking stream runs in a worker thread,
        one ``next`` at a time, so the event loop is never blocked."""
        items = self.stream(messages, params)
        try:
            while True:
                item = await asyncio.to_thread(next, items, None)
                if item is None:
                    return
                yield item
        finally:
            await asyncio.to_thread(_close_iterator, items)

    def close(self) -> None:  # noqa: B027 - optional hook, default no-op
        """Release connections; the provider must not be used afterwards."""


def _close_iterator(items: Iterator[StreamItem]) -> None:
    close = getattr(items, "close", None)
    if close is not None:
        close()


def estimate_tokens(text: str) -> int:
    """The documented fallback estimate of a text's token count: ``ceil(len(text) / 4)``."""
    return math.ceil(len(text) / 4)


def estimate_prompt_tokens(messages: Sequence[ChatMessage]) -> int:
    """:func:`estimate_tokens` of the messages' contents joined (the fallback prompt count)."""
    return estimate_tokens("".join(m["content"] for m in messages))


def chat_request(
    messages: Sequence[ChatMessage], params: GenerationParams, stream: bool
) -> dict[str, Any]:
    """The chat-completion arguments both providers send: messages, sampling, ``stream``, and
    ``seed`` when one is set (OpenAI's request body, llama_cpp's keyword arguments)."""
    request: dict[str, Any] = {
        "messages": [dict(m) for m in messages],
        "temperature": params.temperature,
        "max_tokens": params.max_tokens,
        "stream": stream,
    }
    if params.seed is not None:
        request["seed"] = params.seed
    return request


def request_error(url: str, cause: str, detail: str, status: int | None = None,
                  retries: int = 0) -> ProviderError:
    """The :class:`ProviderError` of a failed HTTP request to ``url``."""
    return ProviderError(
        f"LLM request to {url} failed ({cause}): {detail}",
        url=url, cause=cause, status=status, retries=retries,
    )
