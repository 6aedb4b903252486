"""The OpenAI-compatible provider: ``POST {base_url}/chat/completions`` over httpx, plain or
streamed as server-sent events, with the retries of :mod:`allele.core.llm.retry`."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from typing import Any

import httpx

from allele.core.llm.base import (
    ChatMessage,
    Completion,
    GenerationParams,
    LLMProvider,
    StreamItem,
    chat_request,
    estimate_prompt_tokens,
    estimate_tokens,
    request_error,
)
from allele.core.llm.retry import RetryLoop
from allele.core.llm.sse import DONE, SSEAccumulator
from allele.errors import ProviderError

__all__ = ["OpenAIProvider"]


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

    def _retry_loop(self) -> RetryLoop:
        return RetryLoop(self.max_retries, self.backoff_s)

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
        payload: dict[str, Any] = {"model": model, **chat_request(messages, params, stream)}
        if stream:
            payload["stream_options"] = {"include_usage": True}
        return payload

    def _classify_transport(self, url: str, exc: httpx.HTTPError) -> ProviderError:
        if isinstance(exc, httpx.TimeoutException):
            detail = f"no answer within {self._timeout.read}s ({exc!r})"
            return request_error(url, "timeout", detail)
        if isinstance(exc, httpx.TransportError):
            return request_error(url, "connect", f"cannot reach the server ({exc!r})")
        return request_error(url, "other", repr(exc))

    def _classify_status(self, url: str, response: httpx.Response, body: str) -> ProviderError:
        status = response.status_code
        cause = "http_5xx" if status >= 500 else "http_4xx"
        snippet = body.strip().replace("\n", " ")[:300]
        return request_error(url, cause, f"HTTP {status}: {snippet}", status=status)

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
                prompt_tokens = estimate_prompt_tokens(messages)
                completion_tokens = estimate_tokens(text)
            finish = choice.get("finish_reason")
            answered_model = data.get("model") or model
        except (ValueError, KeyError, IndexError, TypeError, AttributeError) as exc:
            snippet = body[:200].decode("utf-8", "replace")
            raise request_error(url, "invalid_response",
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
            raise request_error(url, "invalid_response",
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

    # ---- the retry loops: the decisions are RetryLoop's; these only send and sleep (or await)
    def _send_with_retries(self, send: Callable[[], httpx.Response], url: str) -> httpx.Response:
        loop = self._retry_loop()
        while True:
            try:
                response = send()
            except httpx.HTTPError as exc:
                err, failed = self._classify_transport(url, exc), None
            else:
                if response.status_code < 400:
                    return loop.succeeded(response)
                err, failed = self._classify_status(url, response, response.text), response
            self._sleep(loop.failed(err, failed))

    async def _asend_with_retries(
        self, send: Callable[[], Any], url: str
    ) -> httpx.Response:
        loop = self._retry_loop()
        while True:
            try:
                response: httpx.Response = await send()
            except httpx.HTTPError as exc:
                err, failed = self._classify_transport(url, exc), None
            else:
                if response.status_code < 400:
                    return loop.succeeded(response)
                err, failed = self._classify_status(url, response, response.text), response
            await asyncio.sleep(loop.failed(err, failed))

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
        loop = self._retry_loop()
        while True:
            sse = SSEAccumulator(url, model, loop.attempt, messages)
            try:
                with client.stream("POST", url, json=payload) as response:
                    if response.status_code < 400:
                        for line in response.iter_lines():
                            piece = sse.feed(line)
                            if piece is DONE:
                                break
                            if isinstance(piece, str):
                                yield piece
                        yield sse.finish()
                        return
                    body = response.read().decode("utf-8", "replace")
                    err, failed = self._classify_status(url, response, body), response
            except httpx.HTTPError as exc:
                err, failed = self._classify_transport(url, exc), None
                if sse.started:  # text was already yielded: never retried
                    loop.failed_midstream(err)
            self._sleep(loop.failed(err, failed))

    async def astream(
        self, messages: Sequence[ChatMessage], params: GenerationParams
    ) -> AsyncIterator[StreamItem]:
        async with httpx.AsyncClient(timeout=self._timeout, headers=self._headers()) as client:
            model = await self._aresolved_model(client)
            payload = self._payload(messages, params, model, stream=True)
            url = self.url
            loop = self._retry_loop()
            while True:
                sse = SSEAccumulator(url, model, loop.attempt, messages)
                try:
                    async with client.stream("POST", url, json=payload) as response:
                        if response.status_code < 400:
                            async for line in response.aiter_lines():
                                piece = sse.feed(line)
                                if piece is DONE:
                                    break
                                if isinstance(piece, str):
                                    yield piece
                            yield sse.finish()
                            return
                        body = (await response.aread()).decode("utf-8", "replace")
                        err, failed = self._classify_status(url, response, body), response
                except httpx.HTTPError as exc:
                    err, failed = self._classify_transport(url, exc), None
                    if sse.started:
                        loop.failed_midstream(err)
                await asyncio.sleep(loop.failed(err, failed))
