"""The model cache: answers a request that was answered before, from the store.

Opt-in per task contract (``call.cache``, a ``CachePolicy``; ``None``: no caching). The
cache lives in the store's ``model_cache`` table, so every worker shares it.

Only accepted answers are kept: a fresh answer is stored when the caller (the router)
accepts it, after the task's ``parse`` and output schema (``chain.judge``); an answer they
reject is never stored, and a stored answer they reject is dropped, so one bad answer cannot
make a model look broken for the cache's TTL. A call whose caller gives no verdict is not
cached.

Exact: the key is a SHA-256 over the tenant, the deployment (``card.key``, so a new model
version misses, with the card's provider and upstream model name, so a card repointed at
another model misses too) and the request as sorted-keys JSON, after a light normalization
of its texts: line endings made ``\\n``, trailing whitespace of each line and blank lines at
either end dropped. Whitespace inside a line is kept: it can mean something (code
indentation, tables), and a cache must never answer a different question. Every param is
part of the key (temperature, max_tokens, seed, ...) but the transport's own
(``TRANSPORT_PARAMS``: HTTP headers), which never change the answer.

Semantic (``semantic=True``, needs the link's ``embed`` function): the request's text (the
user messages, or the text to summarize) is embedded and compared by cosine similarity with
the newest live entries (at most ``SEMANTIC_CANDIDATES``) of the same scope; the best at or
above ``threshold`` answers. Stored vectors are decoded once per process (kept by entry key
and creation time, at most ``VECTOR_MEMO``), and decoding and scoring run in a worker
thread: a lookup never holds the event loop for the size of the scope. The scope is the
tenant, the deployment and everything in the request but the user's words (kind, system
prompt, other messages' roles, params): a paraphrase hits only when it was asked the same
way. Entries never cross tenants: a near-duplicate question must not return another
tenant's answer.

A hit returns the stored response with ``cached=True``, ``cost=0.0`` and the lookup's own
latency. Requests that name a ``document`` by path are not cached (a path is not its
content: pass the bytes in ``data`` to cache OCR). The cache is an optimization: when the
store or the embedding function fails, the call goes to the model and a warning is logged.
Two identical requests at the same moment both miss and both reach the model.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from ...errors import ConfigError
from ...store.base import Store
from ..chain import DeploymentCall, NextLink, await_verdict
from ..types import ModelRequest, ModelResponse

log = logging.getLogger("aiosys.models.cache")

Embed = Callable[[list[str]], Awaitable[list[list[float]]]]
Vector = np.ndarray[Any, np.dtype[np.float64]]

SEMANTIC_CANDIDATES = 500  # newest live entries compared per semantic lookup
PURGE_EVERY = 300.0  # seconds between sweeps of expired entries (per link)
SEMANTIC_KINDS = frozenset({"chat", "summarize"})  # kinds whose text can be paraphrased
VECTOR_MEMO = 20_000  # decoded stored vectors kept per link (by entry key and creation time)
# Request params that only shape the transport, never the answer: not part of the key.
TRANSPORT_PARAMS = frozenset({"extra_headers"})


@dataclass(frozen=True, slots=True)
class CachePolicy:
    """How a task's calls are cached: ``ttl`` seconds (``None``: until purged by hand)."""

    exact: bool = True
    ttl: float | None = 3600.0
    semantic: bool = False
    threshold: float = 0.92

    def __post_init__(self) -> None:
        if self.ttl is not None and not self.ttl > 0:
            raise ConfigError(f"cache ttl must be positive seconds or None, got {self.ttl!r}")
        if not 0.0 < self.threshold <= 1.0:
            raise ConfigError(
                f"cache similarity threshold must be in (0, 1], got {self.threshold!r}"
            )


class CacheLink:
    """Serves repeated (and, opted in, paraphrased) requests from the store's cache."""

    def __init__(
        self,
        store: Store,
        embed: Embed | None = None,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self.embed = embed
        self.clock = clock
        self._next_purge = 0.0
        self._vectors: OrderedDict[tuple[str, float], Vector | None] = OrderedDict()

    async def __call__(self, call: DeploymentCall, next: NextLink) -> ModelResponse:
        policy = call.cache
        if policy is None:
            return await next(call)
        if not isinstance(policy, CachePolicy):
            raise ConfigError(f"a call's cache policy must be a CachePolicy, not {policy!r}")
        if call.request.document is not None or not (policy.exact or policy.semantic):
            return await next(call)
        started = time.perf_counter()
        body = _normalized(call.request)
        deployment = [call.card.key, call.card.provider, call.card.upstream_model]
        key = _digest(call.tenant, deployment, body)
        if policy.exact:
            found = await self._lookup(key)
            if found is not None:
                return self._hit(call, key, found, started)
        scope = vector = None
        text = _semantic_text(call.request)
        if policy.semantic and text:
            if self.embed is None:
                raise ConfigError(
                    f"task {call.task!r} asks for a semantic cache, but the model plane has "
                    "no embedding function for it"
                )
            scope = _digest(call.tenant, deployment, _without_user_words(body))
            vector = await self._embed(text)
            if vector is not None:
                near = await self._nearest(scope, vector, policy.threshold)
                if near is not None:
                    return self._hit(call, near[0], near[1], started)
        response = await next(call)
        entry = (key, scope or call.card.key, response, vector, policy.ttl, call.run_id)

        async def verdict(accepted: bool) -> None:
            if accepted:
                await self._put(*entry)

        await_verdict(call, verdict)
        return response

    def _hit(self, call: DeploymentCall, key: str, stored: str, started: float) -> ModelResponse:
        """The stored answer; dropped from the cache if the caller rejects it."""

        async def verdict(accepted: bool) -> None:
            if not accepted:
                await self._drop(key)

        await_verdict(call, verdict)
        return _hit(stored, started)

    # ---- store access (failures degrade to a miss) ------------------------------------------

    async def _lookup(self, key: str) -> str | None:
        try:
            rows = await self.store.fetch("cache_get", {"key": key, "now": self.clock()})
        except Exception as exc:  # each store driver has its own errors; a miss is safe
            log.warning("model cache lookup failed, calling the model: %s", exc)
            return None
        return str(rows[0]["response"]) if rows else None

    async def _embed(self, text: str) -> Vector | None:
        assert self.embed is not None
        try:
            vectors = await self.embed([text])
            vector = np.asarray(vectors[0], dtype=np.float64)
        except Exception as exc:  # the embedding model is an optimization here, not the call
            log.warning("embedding for the semantic cache failed, calling the model: %s", exc)
            return None
        norm = float(np.linalg.norm(vector))
        return vector / norm if vector.ndim == 1 and norm > 0 else None

    async def _nearest(
        self, scope: str, vector: Vector, threshold: float
    ) -> tuple[str, str] | None:
        """The key and stored response of the nearest live entry of ``scope`` at or above
        ``threshold``. Vectors this link decoded before come from its memo; the others are
        decoded, and all are scored, in a worker thread."""
        params = {"scope": scope, "now": self.clock(), "limit": SEMANTIC_CANDIDATES}
        try:
            rows = await self.store.fetch("cache_semantic_candidates", params)
        except Exception as exc:
            log.warning("semantic cache lookup failed, calling the model: %s", exc)
            return None
        if not rows:
            return None
        slots = [(str(r["key"]), float(r["created_at"])) for r in rows]
        known = [self._vectors.get(slot, _UNKNOWN) for slot in slots]
        missing = [(i, str(rows[i]["embedding"])) for i, v in enumerate(known) if v is _UNKNOWN]
        best, decoded = await asyncio.to_thread(_score, known, missing, vector, threshold)
        for i, unit in decoded:
            self._vectors[slots[i]] = unit
        while len(self._vectors) > VECTOR_MEMO:
            self._vectors.popitem(last=False)
        if best is None:
            return None
        return slots[best][0], str(rows[best]["response"])

    async def _drop(self, key: str) -> None:
        try:
            await self.store.execute("cache_delete", {"key": key})
        except Exception as exc:
            log.warning("dropping a rejected model answer from the cache failed: %s", exc)

    async def _put(
        self,
        key: str,
        scope: str,
        response: ModelResponse,
        vector: Vector | None,
        ttl: float | None,
        run_id: str | None,
    ) -> None:
        now = self.clock()
        entry = {
            "key": key,
            "scope": scope,
            "response": response.model_dump_json(),
            "embedding": None if vector is None else json.dumps(vector.tolist()),
            "now": now,
            "expires_at": None if ttl is None else now + ttl,
            "run_id": run_id,  # a prune of the run deletes the entry
        }
        if vector is not None:  # this worker never decodes its own entry
            self._vectors[(key, now)] = vector
        try:
            await self.store.execute("cache_put", entry)
            if now >= self._next_purge:
                self._next_purge = now + PURGE_EVERY
                await self.store.execute("cache_purge_expired", {"now": now})
        except Exception as exc:
            log.warning("storing a model response in the cache failed: %s", exc)


_UNKNOWN: Any = object()  # a stored vector this link has not decoded yet


def _score(
    known: list[Vector | None],
    missing: list[tuple[int, str]],
    vector: Vector,
    threshold: float,
) -> tuple[int | None, list[tuple[int, Vector | None]]]:
    """In a worker thread: decode the ``missing`` stored vectors (JSON text) to unit
    vectors, score every candidate by cosine with ``vector``; the index of the best at or
    above ``threshold`` (or None) and what was decoded. A vector of another dimension (an
    entry embedded by another model) or of zero length cannot be compared: None."""
    vectors = list(known)
    decoded: list[tuple[int, Vector | None]] = []
    for i, text in missing:
        unit: Vector | None = None
        try:
            raw = np.asarray(json.loads(text), dtype=np.float64)
            norm = float(np.linalg.norm(raw)) if raw.ndim == 1 else 0.0
            unit = raw / norm if norm > 0 else None
        except (TypeError, ValueError):  # a damaged entry is a miss, not a failed call
            unit = None
        vectors[i] = unit
        decoded.append((i, unit))
    usable = [i for i, v in enumerate(vectors) if v is not None and v.shape == vector.shape]
    if not usable:
        return None, decoded
    matrix = np.stack([vectors[i] for i in usable])  # type: ignore[misc]
    scores = matrix @ vector
    top = int(np.argmax(scores))
    return (usable[top] if float(scores[top]) >= threshold else None), decoded


def _hit(stored: str, started: float) -> ModelResponse:
    response = ModelResponse.model_validate_json(stored)
    latency_ms = (time.perf_counter() - started) * 1000
    return response.model_copy(update={"cached": True, "cost": 0.0, "latency_ms": latency_ms})


# ---- keys -------------------------------------------------------------------------------


def _tidy(text: str) -> str:
    lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    return "\n".join(line.rstrip() for line in lines).strip("\n")


def _normalized(request: ModelRequest) -> dict[str, Any]:
    body = request.model_dump(mode="json", exclude={"data", "messages", "texts", "text"})
    body["params"] = {k: v for k, v in body["params"].items() if k not in TRANSPORT_PARAMS}
    body["messages"] = [{"role": m.role, "content": _tidy(m.content)} for m in request.messages]
    body["texts"] = [_tidy(t) for t in request.texts]
    body["text"] = None if request.text is None else _tidy(request.text)
    body["data"] = None if request.data is None else hashlib.sha256(request.data).hexdigest()
    return body


def _without_user_words(body: dict[str, Any]) -> dict[str, Any]:
    messages = [
        {"role": "user", "content": ""} if m["role"] == "user" else m for m in body["messages"]
    ]
    return {**body, "messages": messages, "text": None if body["text"] is None else ""}


def _digest(tenant: str, deployment: list[str], body: dict[str, Any]) -> str:
    blob = json.dumps([tenant, deployment, body], sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()


def _semantic_text(request: ModelRequest) -> str:
    """What a paraphrase changes: the user's messages, or the text to summarize."""
    if request.kind not in SEMANTIC_KINDS:
        return ""
    if request.kind == "summarize":
        return _tidy(request.text or "")
    return "\n".join(_tidy(m.content) for m in request.messages if m.role == "user")
