"""NLPAgent: genome -> prompt table, memory window, Kraken dynamics, observer events, and real
chats (in process with SmolLM2, over HTTP with a scripted server and the llama.cpp server)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from allele.config import Settings
from allele.core.agent import (
    FEATURE_NAMES,
    AgentConfig,
    AgentResponse,
    ConversationDynamics,
    NLPAgent,
    ema,
    message_features,
)
from allele.core.genome import TRAITS, Genome
from allele.core.llm import LlamaCppProvider, OpenAIProvider
from allele.core.observer import (
    ChatErrorStats,
    ChatStats,
    NullObserver,
    set_default_observer_factory,
)
from allele.core.prompt import (
    PREAMBLE,
    TRAIT_INSTRUCTIONS,
    build_system_prompt,
    trait_instructions,
    trait_level,
)
from allele.errors import ProviderError, ValidationError

from .conftest import Reply, ScriptedServer, completion_body, free_port, sse_body

Make = Callable[..., ScriptedServer]


class Recorder(NullObserver):
    def __init__(self) -> None:
        self.events: list[tuple[str, str, Any]] = []

    def on_chat(self, name: str, stats: ChatStats) -> None:
        self.events.append(("on_chat", name, stats))

    def on_chat_error(self, name: str, stats: ChatErrorStats) -> None:
        self.events.append(("on_chat_error", name, stats))


def echo_reply(payload: Any) -> bytes:
    """Answer with the number of messages received and the last user message."""
    messages = payload["messages"]
    return completion_body(f"{len(messages)}:{messages[-1]['content']}", 17, 5)


def http_config(server: ScriptedServer, **kw: Any) -> AgentConfig:
    base: dict[str, Any] = {"provider": "openai", "base_url": server.base_url, "model": "m",
                            "retry_backoff_s": 0.01, "timeout_s": 5.0}
    base.update(kw)
    return AgentConfig(**base)


# --------------------------------------------------------------------------- prompt table


@pytest.mark.parametrize(("value", "level"), [
    (0.0, "low"), (0.2, "low"), (0.3299, "low"), (0.33, "medium"), (0.5, "medium"),
    (0.6699, "medium"), (0.67, "high"), (0.9, "high"), (1.0, "high"),
])
def test_trait_level_boundaries(value: float, level: str) -> None:
    assert trait_level(value) == level


@pytest.mark.parametrize("bad", [-0.01, 1.01, float("nan")])
def test_trait_level_rejects_out_of_range(bad: float) -> None:
    with pytest.raises(ValidationError):
        trait_level(bad)


def test_table_covers_every_trait_with_three_distinct_instructions() -> None:
    assert set(TRAIT_INSTRUCTIONS) == set(TRAITS)
    for trait in TRAITS:
        levels = TRAIT_INSTRUCTIONS[trait]
        assert set(levels) == {"low", "medium", "high"}
        assert len(set(levels.values())) == 3
    every = [s for t in TRAITS for s in TRAIT_INSTRUCTIONS[t].values()]
    assert len(set(every)) == len(every) == 24


def test_system_prompt_lists_one_instruction_per_trait_in_order() -> None:
    values = dict(zip(TRAITS, [0.1, 0.5, 0.9, 0.0, 1.0, 0.33, 0.67, 0.66], strict=True))
    genome = Genome(values)
    prompt = build_system_prompt(genome.traits)
    lines = prompt.split("\n")
    assert lines[0] == PREAMBLE and len(lines) == 9
    expected_levels = ["low", "medium", "high", "low", "high", "medium", "high", "medium"]
    for line, trait, level in zip(lines[1:], TRAITS, expected_levels, strict=True):
        assert line == f"- {TRAIT_INSTRUCTIONS[trait][level]}"  # type: ignore[index]
    assert [lvl for _, lvl, _ in trait_instructions(genome.traits)] == expected_levels
    with_dyn = build_system_prompt(genome.traits, "engagement rising")
    assert with_dyn == prompt + "\nConversation dynamics: engagement rising."


def test_prompt_depends_on_levels_only() -> None:
    a = build_system_prompt(Genome({t: 0.70 for t in TRAITS}).traits)
    b = build_system_prompt(Genome({t: 0.99 for t in TRAITS}).traits)
    c = build_system_prompt(Genome({t: 0.50 for t in TRAITS}).traits)
    assert a == b and a != c


def test_prompt_rejects_unknown_or_missing_traits() -> None:
    with pytest.raises(ValidationError, match="unknown"):
        build_system_prompt({**{t: 0.5 for t in TRAITS}, "humour": 0.5})
    with pytest.raises(ValidationError, match="missing"):
        build_system_prompt({"empathy": 0.5})


def test_docs_table_matches_the_code() -> None:
    doc = (Path(__file__).resolve().parents[2] / "docs" / "agents.md").read_text()
    for trait in TRAITS:
        row = " | ".join([trait, *(TRAIT_INSTRUCTIONS[trait][lvl]
                                   for lvl in ("low", "medium", "high"))])
        assert f"| {row} |" in doc
    assert PREAMBLE in doc


# --------------------------------------------------------------------------- config


@pytest.mark.parametrize("bad", [
    {"temperature": -0.1}, {"temperature": 2.01}, {"max_tokens": 0}, {"context_window": 0},
    {"timeout_s": 0}, {"max_retries": -1}, {"provider": "anthropic"}, {"bogus": 1},
])
def test_agent_config_validation(bad: dict[str, Any]) -> None:
    with pytest.raises(ValidationError) as info:
        AgentConfig(**bad)
    assert next(iter(bad)) in str(info.value)
    assert info.value.param == next(iter(bad))
    assert str(info.value).startswith(f"invalid agent config: {next(iter(bad))}: ")
    assert "\n" not in str(info.value)


def test_agent_config_bounds_are_inclusive() -> None:
    cfg = AgentConfig(temperature=2.0, max_tokens=1, context_window=1, max_retries=0)
    assert (cfg.temperature, cfg.max_tokens, cfg.context_window) == (2.0, 1, 1)
    assert AgentConfig(temperature=0.0).temperature == 0.0


def test_agent_config_from_settings() -> None:
    settings = Settings(llm={"provider": "openai", "base_url": "http://h:1/v1", "timeout_s": 3,
                             "max_retries": 5, "api_key": "k"})
    cfg = AgentConfig.from_settings(settings, max_tokens=9)
    assert (cfg.provider, cfg.base_url, cfg.timeout_s, cfg.max_retries, cfg.api_key,
            cfg.max_tokens) == ("openai", "http://h:1/v1", 3.0, 5, "k", 9)
    with pytest.raises(ValidationError, match="provider"):
        AgentConfig.from_settings(Settings(llm={"provider": "nope"}))


def test_provider_is_built_from_config() -> None:
    genome = Genome()
    assert isinstance(NLPAgent(genome, AgentConfig(provider="openai")).provider, OpenAIProvider)
    assert isinstance(NLPAgent(genome, AgentConfig()).provider, LlamaCppProvider)


def test_a_genome_or_config_of_the_wrong_type_is_named() -> None:
    """``NLPAgent({"empathy": 0.9}, AgentConfig())`` failed with ``AttributeError: 'dict'
    object has no attribute 'traits'``; the docs pass a Genome, so anything else is an error
    naming the expected type (before any provider or model is built)."""
    with pytest.raises(ValidationError) as info:
        NLPAgent({"empathy": 0.9}, AgentConfig())  # type: ignore[arg-type]
    assert str(info.value) == ("genome must be an allele.core.genome.Genome, got dict (a mapping "
                               "of traits becomes one with Genome(traits))")
    with pytest.raises(ValidationError) as info:
        NLPAgent(Genome(), {"provider": "openai"})  # type: ignore[arg-type]
    assert str(info.value) == "config must be an AgentConfig, got dict"


# --------------------------------------------------------------------------- memory (real HTTP)


def test_memory_keeps_the_last_context_window_turns(scripted_server: Make) -> None:
    server = scripted_server(Reply(body=echo_reply))
    agent = NLPAgent(Genome(), http_config(server, context_window=2))
    replies = [agent.chat(f"message {i}").text for i in range(4)]
    assert replies == ["2:message 0", "4:message 1", "6:message 2", "6:message 3"]
    last = server.chat_requests[-1].json["messages"]
    assert last[0] == {"role": "system", "content": agent.system_prompt}
    assert [m["content"] for m in last[1:]] == [
        "message 1", "4:message 1", "message 2", "6:message 2", "message 3"]
    assert [m["role"] for m in last] == ["system", "user", "assistant", "user", "assistant",
                                         "user"]
    assert agent.history == [("message 2", "6:message 2"), ("message 3", "6:message 3")]
    assert agent.last_messages == last
    agent.reset()
    assert agent.history == []
    assert agent.chat("again").text == "2:again"


def test_failed_chat_leaves_memory_untouched(scripted_server: Make) -> None:
    server = scripted_server(Reply(body=echo_reply), Reply(status=400, body=b"nope"),
                             Reply(body=echo_reply))
    agent = NLPAgent(Genome(), http_config(server))
    agent.chat("one")
    with pytest.raises(ProviderError):
        agent.chat("two")
    assert agent.history == [("one", "2:one")]
    assert agent.chat("three").text == "4:three"


def test_empty_message_is_rejected(scripted_server: Make) -> None:
    server = scripted_server(Reply(body=echo_reply))
    agent = NLPAgent(Genome(), http_config(server))
    with pytest.raises(ValidationError):
        agent.chat("   ")
    assert server.requests == []


def test_achat_and_response_fields(scripted_server: Make) -> None:
    server = scripted_server(Reply(status=500, body=b"x"), Reply(body=echo_reply))
    agent = NLPAgent(Genome(), http_config(server))
    response = asyncio.run(agent.achat("hi"))
    assert isinstance(response, AgentResponse)
    assert (response.text, response.prompt_tokens, response.completion_tokens) == ("2:hi", 17, 5)
    assert (response.provider, response.model, response.retries) == ("openai", "scripted-model",
                                                                     1)
    assert response.seconds > 0 and response.time_to_first_token is None
    assert agent.history == [("hi", "2:hi")]


def test_stream_chunks_join_to_the_response(scripted_server: Make) -> None:
    usage = {"prompt_tokens": 40, "completion_tokens": 3, "total_tokens": 43}
    server = scripted_server(Reply(body=sse_body(["Good", " day", "!"], usage),
                                   content_type="text/event-stream"))
    recorder = Recorder()
    agent = NLPAgent(Genome(), http_config(server), observer=recorder, name="a1")
    stream = agent.stream("hello")
    assert stream.response is None
    chunks = list(stream)
    assert chunks == ["Good", " day", "!"]
    response = stream.response
    assert response is not None and response.text == "Good day!"
    assert response.time_to_first_token is not None
    assert 0 <= response.time_to_first_token <= response.seconds
    assert (response.prompt_tokens, response.completion_tokens) == (40, 3)
    assert agent.history == [("hello", "Good day!")]
    ((kind, name, stats),) = recorder.events
    assert (kind, name, stats.streamed, stats.completion_tokens) == ("on_chat", "a1", True, 3)
    assert stats.time_to_first_token == response.time_to_first_token


def test_astream_chunks_join_to_the_response(scripted_server: Make) -> None:
    server = scripted_server(Reply(body=sse_body(["x", "y", "z"], None),
                                   content_type="text/event-stream"))
    recorder = Recorder()
    agent = NLPAgent(Genome(), http_config(server), observer=recorder)

    async def run() -> tuple[list[str], AgentResponse | None]:
        stream = agent.astream("hello")
        chunks = [c async for c in stream]
        return chunks, stream.response

    chunks, response = asyncio.run(run())
    assert chunks == ["x", "y", "z"]
    assert response is not None and response.text == "xyz"
    assert response.usage_estimated and response.completion_tokens == 3
    assert agent.history == [("hello", "xyz")]
    assert [(e[0], e[2].streamed) for e in recorder.events] == [("on_chat", True)]


def test_abandoned_astream_is_not_remembered(scripted_server: Make) -> None:
    server = scripted_server(Reply(body=sse_body(["a", "b"], None),
                                   content_type="text/event-stream"))
    agent = NLPAgent(Genome(), http_config(server))

    async def run() -> str:
        stream = agent.astream("hi")
        first = await stream.__anext__()
        await stream.aclose()
        return first

    assert asyncio.run(run()) == "a"
    assert agent.history == []


def test_abandoned_stream_is_not_remembered(scripted_server: Make) -> None:
    server = scripted_server(Reply(body=sse_body(["a", "b"], None),
                                   content_type="text/event-stream"))
    recorder = Recorder()
    agent = NLPAgent(Genome(), http_config(server, kraken_enabled=True), observer=recorder)
    stream = agent.stream("first message here")
    assert next(stream) == "a"
    stream.close()
    assert agent.history == [] and recorder.events == []
    assert agent.dynamics is not None and agent.dynamics.messages_seen == 0
    with pytest.raises(ValidationError):
        stream.finish()


# --------------------------------------------------------------------------- observer


def test_observer_sees_success_and_error_and_prompts_do_not_change(scripted_server: Make) -> None:
    server = scripted_server(Reply(body=echo_reply))
    recorder = Recorder()
    observed = NLPAgent(Genome(), http_config(server), observer=recorder, name="watched")
    plain = NLPAgent(Genome(), http_config(server))
    for agent in (observed, plain):
        agent.chat("same words")
    a, b = server.chat_requests
    assert a.json == b.json
    ((kind, name, stats),) = recorder.events
    assert (kind, name) == ("on_chat", "watched")
    assert stats == ChatStats(provider="openai", model="scripted-model", prompt_tokens=17,
                              completion_tokens=5, seconds=stats.seconds,
                              time_to_first_token=None, retries=0, streamed=False)


def test_default_observer_factory_is_used_when_none_is_given(scripted_server: Make) -> None:
    server = scripted_server(Reply(body=echo_reply))
    recorder = Recorder()
    kinds: list[tuple[str, str]] = []

    def factory(kind: str, name: str) -> Any:
        kinds.append((kind, name))
        return recorder if kind == "agent" else None

    previous = set_default_observer_factory(factory)
    try:
        agent = NLPAgent(Genome(), http_config(server), name="auto")
    finally:
        set_default_observer_factory(previous)
    agent.chat("hello")
    assert ("agent", "auto") in kinds
    assert [(e[0], e[1]) for e in recorder.events] == [("on_chat", "auto")]


def test_observer_sees_errors_then_the_error_is_raised() -> None:
    port = free_port()
    recorder = Recorder()
    cfg = AgentConfig(provider="openai", base_url=f"http://127.0.0.1:{port}/v1", model="m",
                      max_retries=2, retry_backoff_s=0.01)
    agent = NLPAgent(Genome(), cfg, observer=recorder, name="down")
    with pytest.raises(ProviderError) as info:
        agent.chat("anyone there?")
    assert info.value.cause == "connect"
    ((kind, name, stats),) = recorder.events
    assert (kind, name) == ("on_chat_error", "down")
    assert (stats.cause, stats.retries, stats.provider, stats.model) == ("connect", 2, "openai",
                                                                         "m")
    assert str(port) in stats.message


def test_stream_error_reaches_the_observer(scripted_server: Make) -> None:
    server = scripted_server(Reply(status=401, body=b"bad key"))
    recorder = Recorder()
    agent = NLPAgent(Genome(), http_config(server), observer=recorder)
    with pytest.raises(ProviderError):
        list(agent.stream("hi"))
    ((kind, _, stats),) = recorder.events
    assert kind == "on_chat_error" and stats.cause == "http_4xx"


# --------------------------------------------------------------------------- Kraken dynamics


def test_message_features() -> None:
    np.testing.assert_allclose(message_features(""), [0.0, 0.0, 0.0])
    f = message_features("Why? How?! " + "word " * 200)
    assert f[1] == 1.0 and f[2] == 1.0
    np.testing.assert_allclose(f[0], 0.5 + 0.3 + 0.2 * 0.5)
    g = message_features("one two three")
    np.testing.assert_allclose(g[1], np.log1p(3) / np.log1p(100))
    assert FEATURE_NAMES == ("engagement", "length", "questions")


def test_kraken_readout_tracks_the_running_level_on_held_out_data() -> None:
    dyn = ConversationDynamics(seed=3)
    inputs, targets = ConversationDynamics.training_stream(seed=99, steps=300)
    levels = np.vstack([dyn.observe_features(row) for row in inputs])
    err = np.sqrt(np.mean((levels[50:] - targets[50:]) ** 2))
    spread = np.std(targets[50:])
    assert err < 0.25 * spread  # the reservoir really integrates the features
    np.testing.assert_allclose(ema(np.array([[0.0], [1.0], [1.0]]), 0.5)[:, 0], [0, 0.5, 0.75])


def test_dynamics_summary_messages_getting_shorter_and_longer() -> None:
    long_msg = "I have a long and detailed question about the design of this system " * 3
    dyn = ConversationDynamics(seed=0)
    assert dyn.summary() is None
    for _ in range(3):
        dyn.observe(long_msg)
    assert dyn.summary() is not None
    dyn.observe("ok")
    trends = dyn.trends()
    assert trends is not None and trends["length"] == "falling"
    assert trends["engagement"] == "falling"
    assert "messages getting shorter" in (dyn.summary() or "")
    assert "engagement falling" in (dyn.summary() or "")
    dyn.reset()
    for _ in range(3):
        dyn.observe("ok")
    dyn.observe("Could you explain how this works? And why is it built this way? " * 2)
    summary = dyn.summary() or ""
    assert "messages getting longer" in summary and "engagement rising" in summary
    assert dyn.last_state is not None and dyn.last_state.shape == (50,)


def test_dynamics_is_deterministic_and_rollback_replays() -> None:
    a, b = ConversationDynamics(seed=5), ConversationDynamics(seed=5)
    for text in ["hello there", "what is this?", "tell me more about it please"]:
        np.testing.assert_array_equal(a.observe(text), b.observe(text))
    assert a.last_state is not None and b.last_state is not None
    np.testing.assert_array_equal(a.last_state, b.last_state)
    state2 = a.levels[:2].copy()
    a.rollback(2)
    assert a.messages_seen == 2
    np.testing.assert_array_equal(a.levels, state2)


def test_kraken_summary_enters_the_sent_prompt(scripted_server: Make) -> None:
    server = scripted_server(Reply(body=echo_reply))
    with_k = NLPAgent(Genome(), http_config(server, kraken_enabled=True))
    without = NLPAgent(Genome(), http_config(server))
    long_msg = "Please walk me through every single step of the process in detail " * 3
    for agent in (with_k, without):
        agent.chat(long_msg)
        agent.chat(long_msg)
        agent.chat("thanks")
    sent_k = [r.json["messages"][0]["content"] for r in server.chat_requests[:3]]
    sent_plain = [r.json["messages"][0]["content"] for r in server.chat_requests[3:]]
    assert "Conversation dynamics" not in sent_k[0]  # one message: no trend yet
    assert "Conversation dynamics" in sent_k[1]
    assert sent_k[2].endswith("messages getting shorter, few questions.")
    assert all(p == without.system_prompt for p in sent_plain)
    assert "Conversation dynamics" not in without.system_prompt
    assert with_k.system_prompt == sent_k[2]


# --------------------------------------------------------------------------- real model


@pytest.mark.llm
def test_in_process_chat_with_smollm2(smollm2_path: Path) -> None:
    recorder = Recorder()
    genome = Genome({t: 0.8 for t in TRAITS})
    cfg = AgentConfig(provider="llamacpp", model=str(smollm2_path), max_tokens=12,
                      temperature=0.0, context_window=2)
    agent = NLPAgent(genome, cfg, observer=recorder, name="smol")
    first = agent.chat("What is the capital of France?")
    assert first.text.strip()
    assert first.provider == "llamacpp" and "smollm2" in first.model.lower()
    assert first.prompt_tokens > 50 and 1 <= first.completion_tokens <= 12
    stream = agent.stream("And of Italy?")
    chunks = list(stream)
    response = stream.response
    assert response is not None and "".join(chunks) == response.text and response.text.strip()
    assert response.time_to_first_token is not None
    assert response.prompt_tokens > first.prompt_tokens  # the first turn is in the memory
    second = asyncio.run(agent.achat("Thanks!"))
    assert second.text.strip()
    assert [e[0] for e in recorder.events] == ["on_chat"] * 3
    assert [e[2].streamed for e in recorder.events] == [False, True, False]
    assert len(agent.history) == 2


@pytest.mark.llm
@pytest.mark.slow
def test_chat_over_http_with_llama_cpp_server(llama_server: str) -> None:
    cfg = AgentConfig(provider="openai", base_url=llama_server, max_tokens=12, temperature=0.0,
                      kraken_enabled=True)
    with NLPAgent(Genome(), cfg) as agent:
        first = agent.chat("Name one colour.")
        assert first.text.strip() and not first.usage_estimated
        assert first.provider == "openai" and first.prompt_tokens > 50
        stream = agent.stream("Name another one, please, and tell me why you like it?")
        text = "".join(stream)
        assert stream.response is not None and stream.response.text == text and text.strip()
        assert "Conversation dynamics" in json.dumps(agent.last_messages)
