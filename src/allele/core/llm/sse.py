"""OpenAI-style server-sent events: parse a streamed chat answer line by line and build its
:class:`~allele.core.llm.base.Completion`.

Token usage comes from the stream's ``usage`` object (the request asks for
``stream_options: {"include_usage": true}``); if the server omits it anyway, completion tokens
are counted as the number of content chunks and prompt tokens are estimated as
``ceil(characters / 4)``, and the result says so (``usage_estimated=True``).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from allele.core.llm.base import ChatMessage, Completion, estimate_prompt_tokens, request_error
from allele.errors import ProviderError

DONE = object()
"""Returned by :meth:`SSEAccumulator.feed` for the ``data: [DONE]`` line."""


class SSEAccumulator:
    """Parses an OpenAI-style SSE stream line by line and builds the final Completion."""

    def __init__(self, url: str, model: str, retries: int,
                 messages: Sequence[ChatMessage]) -> None:
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
        return request_error(self.url, "invalid_response", detail, retries=self.retries)

    def feed(self, line: str) -> str | object | None:
        """The text chunk of one line, :data:`DONE` at the end marker, else None."""
        if not line or line.startswith(":") or not line.startswith("data:"):
            if line and len(self.skipped) < 3:
                self.skipped.append(line[:100])
            return None
        self.events += 1
        data = line[5:].strip()
        if data == "[DONE]":
            return DONE
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
            prompt_tokens = estimate_prompt_tokens(self.messages)
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
