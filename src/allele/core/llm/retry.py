"""The retry policy of HTTP requests, one for the sync and the async calls.

``connect``, ``timeout``, any 5xx and 429 are retried up to ``max_retries`` times with
exponential backoff ``backoff_s * 2**attempt`` (capped at :data:`MAX_BACKOFF_S`; a
``Retry-After`` header on a 429/503 is honoured up to the same cap). Other 4xx answers and
malformed bodies are never retried. A stream is only retried before its first byte of body.

:class:`RetryLoop` holds every decision of one request's retry loop (how many attempts so far,
whether a failure is retried, how long to wait); the loops of
:class:`~allele.core.llm.openai.OpenAIProvider` (plain and streamed, sync and async) only send,
and sleep or await the delay it returns.
"""

from __future__ import annotations

import math
from typing import NoReturn

import httpx

from allele.errors import ProviderError

MAX_BACKOFF_S = 8.0
"""Upper bound of one backoff sleep between retries, in seconds."""


def backoff_delay(attempt: int, backoff_s: float, retry_after: float | None) -> float:
    """Seconds to wait after failed attempt ``attempt`` (0 first): ``backoff_s * 2**attempt``,
    at least ``retry_after`` when the server sent one, at most :data:`MAX_BACKOFF_S`."""
    delay = backoff_s * (2.0**attempt)
    if retry_after is not None:
        delay = max(delay, retry_after)
    return min(delay, MAX_BACKOFF_S)


def parse_retry_after(response: httpx.Response) -> float | None:
    """The ``Retry-After`` header in seconds, or None when absent or not a finite number >= 0
    (the HTTP-date form is not read)."""
    raw = response.headers.get("retry-after")
    if raw is None:
        return None
    try:
        value = float(raw)
    except ValueError:
        return None
    return value if value >= 0 and math.isfinite(value) else None


def is_retryable(cause: str, status: int | None) -> bool:
    """Whether a failure of this ``ProviderError.cause`` (and HTTP status) is worth retrying."""
    if cause in ("connect", "timeout", "http_5xx"):
        return True
    return status == 429


class RetryLoop:
    """The bookkeeping and decisions of one request's retries.

    ``attempt`` counts the failed attempts so far; :meth:`failed` records one more and returns
    the delay before the next attempt, or raises the error when it is final.
    """

    __slots__ = ("attempt", "backoff_s", "max_retries")

    def __init__(self, max_retries: int, backoff_s: float) -> None:
        self.max_retries = max_retries
        self.backoff_s = backoff_s
        self.attempt = 0

    def succeeded(self, response: httpx.Response) -> httpx.Response:
        """``response``, tagged with the retries it took (``response.retries``)."""
        response.retries = self.attempt  # type: ignore[attr-defined]
        return response

    def failed(self, err: ProviderError, response: httpx.Response | None = None) -> float:
        """Record that the current attempt failed with ``err`` (``response``: the failed HTTP
        answer, whose ``Retry-After`` is honoured) and return the seconds to wait before the next
        attempt; raise ``err`` (with ``err.retries`` set) when it is not retried."""
        err.retries = self.attempt
        if self.attempt >= self.max_retries or not is_retryable(err.cause, err.status):
            raise err
        retry_after = None if response is None else parse_retry_after(response)
        delay = backoff_delay(self.attempt, self.backoff_s, retry_after)
        self.attempt += 1
        return delay

    def failed_midstream(self, err: ProviderError) -> NoReturn:
        """Raise ``err``: a stream that has yielded text is never retried."""
        err.retries = self.attempt
        raise err from None
