"""The streamed answers of an :class:`~allele.core.agent.NLPAgent`: :class:`ChatStream` for
sync code, :class:`AsyncChatStream` for async code.

Both keep their books in one class, :class:`_StreamBookkeeping` (the text chunks' timing, the
provider's final :class:`~allele.core.llm.Completion`, finishing, failing or abandoning the turn),
and reach the agent only through its turn methods (``generation_params``, ``end_turn``,
``fail_turn``, ``drop_turn``); the two classes differ only in how they iterate the provider's
stream.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncGenerator, Generator, Iterator
from typing import TYPE_CHECKING

from allele.errors import AlleleError, ProviderError, ValidationError

if TYPE_CHECKING:
    from allele.core.agent import AgentResponse, NLPAgent
    from allele.core.llm import ChatMessage, Completion, StreamItem

__all__ = ["AsyncChatStream", "ChatStream"]


class _StreamBookkeeping:
    """What a sync and an async stream of one turn both keep and do.

    ``response`` is None until the provider's stream has ended well; ``time_to_first_token`` is
    the seconds from the call to the first text chunk. A turn ends exactly once: finished (in the
    agent's memory, ``on_chat``), failed (``on_chat_error``) or abandoned (nothing recorded).
    """

    def __init__(self, agent: NLPAgent, message: str, started: float) -> None:
        self._agent = agent
        self._message = message
        self._started = started
        self._done = False
        self._completion: Completion | None = None
        self.response: AgentResponse | None = None
        self.time_to_first_token: float | None = None

    def _take(self, item: StreamItem) -> str | None:
        """One item of the provider's stream: a text chunk is returned (the first one is timed),
        the final Completion is kept."""
        if isinstance(item, str):
            if self.time_to_first_token is None:
                self.time_to_first_token = time.perf_counter() - self._started
            return item
        self._completion = item
        return None

    @contextlib.contextmanager
    def _turn(self) -> Iterator[None]:
        """Wraps the iteration of the provider's stream: when it ends, the turn is finished (or
        failed with ProviderError if no final answer came); a failure fails the turn and is
        re-raised. An abandoned iteration (GeneratorExit) passes through untouched."""
        try:
            yield
            completion = self._completion
            if completion is None:
                raise ProviderError("the stream ended without a final answer",
                                    url=self._agent.provider.url, cause="invalid_response")
        except AlleleError as err:
            self._done = True
            self._agent.fail_turn(err, self._started)
            raise
        self._done = True
        self.response = self._agent.end_turn(
            self._message, completion, self._started,
            time_to_first_token=self.time_to_first_token, streamed=True,
        )

    def _abandon(self) -> None:
        if not self._done:
            self._done = True
            self._agent.drop_turn()

    def _result(self) -> AgentResponse:
        if self.response is None:  # closed before the end
            raise ValidationError("this stream was closed before it finished")
        return self.response


class ChatStream(_StreamBookkeeping):
    """The text chunks of one streamed answer.

    Iterate it for ``str`` chunks; when it is exhausted, ``response`` holds the
    :class:`~allele.core.agent.AgentResponse` (its ``text`` is the chunks joined,
    ``time_to_first_token`` the seconds from the call to the first chunk). :meth:`finish` consumes
    the rest and returns the response. A failure raises :class:`ProviderError` from the iteration.
    Abandoning a stream (``close``) records nothing in the memory.
    """

    def __init__(self, agent: NLPAgent, message: str, messages: list[ChatMessage],
                 started: float) -> None:
        super().__init__(agent, message, started)
        self._gen = self._run(messages)

    def _run(self, messages: list[ChatMessage]) -> Generator[str, None, None]:
        agent = self._agent
        with self._turn():
            for item in agent.provider.stream(messages, agent.generation_params):
                text = self._take(item)
                if text is not None:
                    yield text

    def __iter__(self) -> ChatStream:
        return self

    def __next__(self) -> str:
        return next(self._gen)

    def finish(self) -> AgentResponse:
        """Consume the remaining chunks and return the final response."""
        for _ in self._gen:
            pass
        return self._result()

    def close(self) -> None:
        """Abandon the stream: nothing enters the memory and the observer sees nothing."""
        self._gen.close()
        self._abandon()


class AsyncChatStream(_StreamBookkeeping):
    """:class:`ChatStream` for async code: ``async for`` the chunks, then read ``response``
    (or ``await finish()``); ``await aclose()`` abandons it."""

    def __init__(self, agent: NLPAgent, message: str, messages: list[ChatMessage],
                 started: float) -> None:
        super().__init__(agent, message, started)
        self._gen = self._run(messages)

    async def _run(self, messages: list[ChatMessage]) -> AsyncGenerator[str, None]:
        agent = self._agent
        with self._turn():
            async for item in agent.provider.astream(messages, agent.generation_params):
                text = self._take(item)
                if text is not None:
                    yield text

    def __aiter__(self) -> AsyncChatStream:
        return self

    async def __anext__(self) -> str:
        return await self._gen.__anext__()

    async def finish(self) -> AgentResponse:
        """Consume the remaining chunks and return the final response."""
        async for _ in self._gen:
            pass
        return self._result()

    async def aclose(self) -> None:
        """Abandon the stream: nothing enters the memory and the observer sees nothing."""
        await self._gen.aclose()
        self._abandon()
