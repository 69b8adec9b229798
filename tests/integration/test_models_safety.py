"""The model plane's safety rules (issue 9, points 5 and 6), on both stores.

The cache keeps only accepted answers: an answer the task's ``parse`` or output schema
rejected is never cached (exact or semantic), a stored answer a task rejects is dropped, the
key covers what changes the answer and not the transport's headers, and a semantic lookup
decodes stored vectors once, in a worker thread. Nothing stored can run code: a card read
from the store may name only callables registered in code. Secrets (a store URL's password,
a Redis URL's, an API key a server quotes back) never reach errors, logs or records. The
provider SDKs are imported when the app opens, in a worker thread.
"""

from __future__ import annotations

import hashlib
import importlib
import json
import logging
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from pydantic import BaseModel
from tests.wire.control import rejected

from aiosys import App
from aiosys.errors import ConfigError, NoRouteAvailable, ProviderRejected
from aiosys.models.catalog import ModelCard
from aiosys.models.chain import DeploymentCall, compose, judge
from aiosys.models.contracts import RoutingPlan
from aiosys.models.links import cache as cache_module
from aiosys.models.links.cache import CacheLink, CachePolicy
from aiosys.models.providers.local import register_callable, unregister_callable
from aiosys.models.types import Message, ModelRequest, ModelResponse, ProviderResult, Usage
from aiosys.redact import mask_url, redact
from aiosys.store import Store, open_store

pytestmark = pytest.mark.timeout(60)


class In(BaseModel):
    text: str


class Out(BaseModel):
    n: int


def build(data: In) -> ModelRequest:
    return ModelRequest(messages=[Message(role="user", content=data.text)])


def parse_json(response: ModelResponse) -> Any:
    return json.loads(response.output)


@pytest.fixture
def callables() -> Iterator[dict[str, int]]:
    """Two local models: ``primary`` first answers prose (which ``parse_json`` rejects),
    then ``{"n": 1}``; ``backup`` always ``{"n": 2}``. Counts the calls of each."""
    calls = {"primary": 0, "backup": 0}

    def primary(messages: list[dict[str, str]]) -> str:
        calls["primary"] += 1
        return "Sure! Here is the JSON:" if calls["primary"] == 1 else '{"n": 1}'

    def backup(messages: list[dict[str, str]]) -> str:
        calls["backup"] += 1
        return '{"n": 2}'

    register_callable("safety-primary", primary)
    register_callable("safety-backup", backup)
    yield calls
    unregister_callable("safety-primary")
    unregister_callable("safety-backup")


class Vectors:
    """An embedding provider: every text about the same document embeds the same way."""

    name = "vectors"
    kinds = frozenset({"embed"})

    async def invoke(self, card: ModelCard, request: ModelRequest) -> ProviderResult:
        return ProviderResult(output=[[1.0, 0.0, 0.0] for _ in request.texts])

    async def close(self) -> None:
        pass


def local_app(store_url: str) -> App:
    app = App(store=store_url)
    for name in ("primary", "backup"):
        app.models.add_card(
            {"id": name, "provider": "local", "options": {"callable": f"safety-{name}"}}
        )
    app.models.add_provider("vectors", Vectors())
    app.models.add_card({"id": "embedder", "provider": "vectors", "kind": "embed"})
    return app


@pytest.mark.parametrize(
    "policy",
    [CachePolicy(), CachePolicy(exact=False, semantic=True)],
    ids=["exact", "semantic"],
)
async def test_an_answer_the_task_rejects_is_never_cached(
    store_url: str, callables: dict[str, int], policy: CachePolicy
) -> None:
    app = local_app(store_url)
    app.models.task(
        "extract",
        input=In,
        output=Out,
        build=build,
        parse=parse_json,
        plan=RoutingPlan(["primary", "backup"]),
        cache=policy,
    )
    async with app:
        answers = [(await app.models.run("extract", {"text": "doc"})).n for _ in range(3)]
    # 1: primary's prose is rejected (not cached), the backup serves; 2: primary asked
    # again, answers well (cached); 3: from the cache.
    assert answers == [2, 1, 1]
    assert callables == {"primary": 2, "backup": 1}


async def test_a_stored_answer_a_task_rejects_is_dropped(
    store_url: str, callables: dict[str, int]
) -> None:
    app = local_app(store_url)
    callables["primary"] = 1  # primary answers {"n": 1} from now on
    plan = RoutingPlan(["primary", "backup"])
    app.models.task(
        "loose", input=In, output=In, build=build, parse=lambda r: {"text": r.output},
        plan=plan, cache=CachePolicy(),
    )  # fmt: skip
    app.models.task(
        "small", input=In, output=Out, build=build,
        parse=_small,
        plan=plan, cache=CachePolicy(),
    )  # fmt: skip
    async with app:
        assert (await app.models.run("loose", {"text": "doc"})).text == '{"n": 1}'
        assert (await app.models.run("loose", {"text": "doc"})).text == '{"n": 1}'  # cached
        assert callables == {"primary": 2, "backup": 0}
        # The same request under a stricter task: the stored answer is rejected and dropped,
        # the backup serves, and the next call asks the primary again.
        assert (await app.models.run("small", {"text": "doc"})).n == 2
        assert callables == {"primary": 2, "backup": 1}
        await app.models.run("loose", {"text": "doc"})
        assert callables == {"primary": 3, "backup": 1}


def _small(response: ModelResponse) -> dict[str, int]:
    """Accepts only answers with ``n`` above 1."""
    n = json.loads(response.output)["n"]
    if n <= 1:
        raise ValueError(f"n must be above 1, got {n}")
    return {"n": n}


# ---- the key ------------------------------------------------------------------------------


class Counting:
    def __init__(self) -> None:
        self.calls = 0

    async def __call__(self, call: DeploymentCall) -> ModelResponse:
        self.calls += 1
        return ModelResponse(
            model=call.card.id,
            version=call.card.version,
            output=f"answer {self.calls}",
            usage=Usage(input_tokens=1, output_tokens=1),
        )


BASE_PARAMS: dict[str, Any] = {"temperature": 0.2, "max_tokens": 50}


def request_of(text: str = "What is 2 + 2?", role: str = "user", **params: Any) -> ModelRequest:
    messages = [Message(role="system", content="Be brief."), Message(role=role, content=text)]  # type: ignore[arg-type]
    return ModelRequest(messages=messages, params={**BASE_PARAMS, **params})


def card_of(**fields: Any) -> ModelCard:
    return ModelCard(**{"id": "m", "provider": "counting", **fields})


# Each changes the answer: a miss.
CHANGES: dict[str, tuple[dict[str, Any], ModelRequest]] = {
    "model": ({"id": "other"}, request_of()),
    "version": ({"version": "2"}, request_of()),
    "provider_model": ({"provider_model": "m-large"}, request_of()),
    "provider": ({"provider": "openai"}, request_of()),
    "message text": ({}, request_of("What is 2 + 3?")),
    "message role": ({}, request_of(role="assistant")),
    "temperature": ({}, request_of(temperature=0.9)),
    "max_tokens": ({}, request_of(max_tokens=51)),
    "top_p": ({}, request_of(top_p=0.5)),
    "seed": ({}, request_of(seed=7)),
    "stop": ({}, request_of(stop=["\n"])),
    "response_format": ({}, request_of(response_format={"type": "json_object"})),
    "extra_body": ({}, request_of(extra_body={"top_k": 5})),
    "extra_query": ({}, request_of(extra_query={"api-version": "2024-06-01"})),
}


async def test_every_parameter_that_changes_the_answer_changes_the_key_and_headers_do_not(
    store: Store,
) -> None:
    provider = Counting()
    chain = compose([CacheLink(store)], provider)
    policy = CachePolicy()

    async def ask(card: ModelCard, request: ModelRequest) -> ModelResponse:
        call = DeploymentCall(card=card, request=request, cache=policy)
        response = await chain(call)
        await judge(call, True)
        return response

    await ask(card_of(), request_of())
    assert provider.calls == 1
    for what, (fields, request) in CHANGES.items():
        before = provider.calls
        response = await ask(card_of(**fields), request)
        assert not response.cached and provider.calls == before + 1, what
    # Headers are the transport's: the same question, answered from the cache.
    headers = request_of(extra_headers={"X-Request-Id": "abc", "Authorization": "Bearer x"})
    same = await ask(card_of(), headers)
    assert same.cached and same.output == "answer 1"
    reordered = ModelRequest(
        messages=request_of().messages, params=dict(reversed(list(BASE_PARAMS.items())))
    )
    assert (await ask(card_of(), reordered)).cached


# ---- the semantic lookup --------------------------------------------------------------------


class Embed:
    """Each text a random direction (seeded by its hash: near-orthogonal to the others),
    except texts starting with "Q:", which all embed the same."""

    def __init__(self, dim: int = 256) -> None:
        self.dim = dim

    async def __call__(self, texts: list[str]) -> list[list[float]]:
        out = []
        for text in texts:
            seed = (
                0 if text.startswith("Q:") else int(hashlib.sha256(text.encode()).hexdigest(), 16)
            )
            out.append(np.random.default_rng(seed).standard_normal(self.dim).tolist())
        return out


async def test_a_semantic_lookup_decodes_stored_vectors_once_and_off_the_loop(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    policy = CachePolicy(exact=False, semantic=True, threshold=0.99)
    writer = compose([CacheLink(store, Embed())], Counting())
    for i in range(40):
        call = DeploymentCall(card=card_of(), request=request_of(f"topic {i}"), cache=policy)
        await writer(call)
        await judge(call, True)
    call = DeploymentCall(card=card_of(), request=request_of("Q: first"), cache=policy)
    await writer(call)
    await judge(call, True)

    seen: list[tuple[bool, int]] = []
    score = cache_module._score

    def spy(known: Any, missing: Any, vector: Any, threshold: float) -> Any:
        seen.append((threading.current_thread() is threading.main_thread(), len(missing)))
        return score(known, missing, vector, threshold)

    monkeypatch.setattr(cache_module, "_score", spy)
    provider = Counting()
    reader = compose([CacheLink(store, Embed())], provider)  # another worker
    for text in ("Q: a paraphrase", "Q: another"):
        call = DeploymentCall(card=card_of(), request=request_of(text), cache=policy)
        assert (await reader(call)).cached
    assert provider.calls == 0
    # 41 stored vectors decoded by the first lookup, none by the second; never on the loop.
    assert seen == [(False, 41), (False, 0)]


# ---- nothing stored can run code --------------------------------------------------------

RAN: list[str] = []


def imported_model(messages: list[Message]) -> str:
    """A function a card names as ``module:function``; records that it ran."""
    RAN.append(messages[-1].content)
    return "imported ran"


IMPORTED = f"{__name__}:imported_model"


@pytest.fixture
def ran() -> Iterator[list[str]]:
    RAN.clear()
    yield RAN
    RAN.clear()
    unregister_callable(IMPORTED)
    unregister_callable("safety-registered")


async def test_a_stored_card_naming_module_function_is_refused_and_a_registered_one_works(
    store_url: str, tmp_path: Path, ran: list[str]
) -> None:
    # Anyone who can write the database writes this card, naming a function to import.
    writer = App(store=store_url, models_dir=tmp_path / "none")
    writer.models.add_card({"id": "evil", "provider": "local", "options": {"callable": IMPORTED}})
    writer.models.add_card(
        {"id": "good", "provider": "local", "options": {"callable": "safety-registered"}}
    )
    async with writer:
        await writer.models.save_to_store()

    register_callable("safety-registered", lambda messages: "registered ran")
    worker = App(store=store_url, models_dir=tmp_path / "none")
    async with worker:
        assert worker.models.card("evil").from_store
        with pytest.raises(ConfigError) as refused:
            await worker.models.call("evil", "hello")
        message = str(refused.value)
        assert "evil@1: this card was read from the store" in message
        assert f"register_callable({IMPORTED!r}, fn)" in message
        assert ran == []  # the function never ran
        assert (await worker.models.call("good", "hello")).output == "registered ran"
        # Registered in code under that very name, the stored card may use it.
        register_callable(IMPORTED, imported_model)
        assert (await worker.models.call("evil", "hi")).output == "imported ran"
    assert ran == ["hi"]


async def test_module_function_works_for_cards_from_code_and_from_the_operators_files(
    store_url: str, tmp_path: Path, ran: list[str]
) -> None:
    (tmp_path / "local.toml").write_text(
        f'id = "from-file"\nprovider = "local"\n[options]\ncallable = "{IMPORTED}"\n'
    )
    app = App(store=store_url, models_dir=tmp_path)
    app.models.add_card({"id": "in-code", "provider": "local", "options": {"callable": IMPORTED}})
    async with app:
        await app.models.save_to_store()  # stored too: the file and the code still win
        assert (await app.models.call("from-file", "a")).output == "imported ran"
        assert (await app.models.call("in-code", "b")).output == "imported ran"
    assert ran == ["a", "b"]
    # Another worker with the same file: the file's card wins over the stored copy.
    again = App(store=store_url, models_dir=tmp_path)
    async with again:
        assert not again.models.card("from-file").from_store
        assert again.models.card("in-code").from_store
        assert (await again.models.call("from-file", "c")).output == "imported ran"


# ---- secrets never reach logs, errors or records -------------------------------------------

SECRET = "s3cr3t-Pa55"


def test_urls_and_texts_are_masked() -> None:
    assert mask_url(f"postgresql://bob:{SECRET}@db:5432/app") == "postgresql://bob:***@db:5432/app"
    assert mask_url(f"redis://:{SECRET}@cache:6379/0") == "redis://:***@cache:6379/0"
    assert mask_url("postgresql://db/app") == "postgresql://db/app"
    quoted = f'in URI: "postgres://bob:p@{SECRET}@[bad/x" and host=db password={SECRET} x'
    assert SECRET not in redact(quoted)
    assert redact(f"Incorrect API key provided: sk-{SECRET}.", f"sk-{SECRET}") == (
        "Incorrect API key provided: ***."
    )


async def test_a_store_urls_password_is_masked_in_its_errors() -> None:
    for url in (
        f"postgres://bob:{SECRET}@[bad/x",  # psycopg quotes the URL back
        f"postgresql://nobody:{SECRET}@127.0.0.1:5432/nodb",  # the server refuses the role
        f"postgresql://nobody:{SECRET}@127.0.0.1:1/nodb",  # nothing listens
    ):
        with pytest.raises(ConfigError) as caught:
            s = open_store(url)
            await s.open()
        assert SECRET not in str(caught.value) and SECRET not in repr(caught.value), url
        assert caught.value.__cause__ is None or SECRET not in str(caught.value.__cause__)


async def test_a_redis_urls_password_is_masked_in_the_log(
    store_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    register_callable("safety-registered", lambda messages: "ok")
    app = App(store=store_url)
    app.models.redis_url = f"redis://:{SECRET}@127.0.0.1:1/0"  # nothing listens
    app.models.add_card(
        {
            "id": "limited",
            "provider": "local",
            "options": {"callable": "safety-registered"},
            "limits": {"requests_per_minute": 5},
        }
    )
    try:
        async with app:
            with caplog.at_level(logging.WARNING, logger="aiosys.models.ratelimit"):
                assert (await app.models.call("limited", "hi")).output == "ok"
    finally:
        unregister_callable("safety-registered")
    assert "redis://:***@127.0.0.1:1/0 unreachable" in caplog.text
    assert SECRET not in caplog.text


async def test_an_api_key_a_server_quotes_back_is_masked_in_errors_and_records(
    store_url: str, openai_server: Any, monkeypatch: pytest.MonkeyPatch, error_of: Any
) -> None:
    key = f"sk-{SECRET}"
    monkeypatch.setenv("SAFETY_KEY", key)
    openai_server.always(rejected(401, message=f"Incorrect API key provided: {key}."))

    def make_app() -> App:  # each app its own breakers: a 401 opens the deployment's
        app = App(store=store_url)
        app.models.add_card(
            {
                "id": "gpt",
                "provider": "openai",
                "endpoint": openai_server.endpoint,
                "api_key_env": "SAFETY_KEY",
                "timeout": 5.0,
            }
        )

        @app.workflow
        async def ask(ctx: Any) -> str:
            return (await ctx.models.call("gpt", "hi")).output  # type: ignore[no-any-return]

        return app

    app = make_app()
    async with app:
        run = await app.start("ask", {})
        with pytest.raises(Exception):  # noqa: B017  (the run's error, rebuilt)
            await run.result(timeout=20)
        row = await app.get_run(run.id)
        effects = await app.effects(run.id)
        await app.models.flush_usage()
        usage = await app.store.fetch("usage_by_model", {"tenant": "default", "since": 0})
    record = json.dumps(error_of(row))
    assert "Incorrect API key provided: ***." in record and SECRET not in record
    assert effects and all(SECRET not in repr(e) for e in effects)
    assert SECRET not in json.dumps(usage, default=str)

    direct = make_app()
    async with direct:
        # A 401 is a fault of the deployment: with no other candidate, no route is left.
        with pytest.raises((ProviderRejected, NoRouteAvailable)) as caught:
            await direct.models.call("gpt", "hi")
    assert "(HTTP 401): Incorrect API key provided: ***." in str(caught.value)
    assert SECRET not in str(caught.value)


# ---- the provider SDKs are imported when the app opens, off the event loop ---------------


async def test_the_sdks_are_imported_at_open_off_the_loop_and_never_in_the_first_call(
    store_url: str, openai_server: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from aiosys.models.providers import registry

    imports: list[tuple[str, bool]] = []  # (module, on the loop's thread)
    fresh: list[str] = []  # modules imported for the first time on the loop's thread
    real_import = importlib.import_module

    def spy(name: str, package: str | None = None) -> Any:
        on_loop = threading.current_thread() is threading.main_thread()
        if on_loop and name not in sys.modules:
            fresh.append(name)
        if name.startswith("aiosys.models."):
            imports.append((name, on_loop))
        return real_import(name, package)

    monkeypatch.setattr(registry.importlib, "import_module", spy)
    app = App(store=store_url)
    app.models.add_card(
        {"id": "gpt", "provider": "openai", "endpoint": openai_server.endpoint, "timeout": 5}
    )
    async with app:
        assert imports == [  # in a worker thread
            ("aiosys.models.providers.openai_compat", False),
            ("aiosys.models.links.cache", False),
        ]
        fresh.clear()
        assert (await app.models.call("gpt", "hi")).output
        assert fresh == []  # the first call imported nothing on the loop

    # A command that only reads the store imports nothing.
    imports.clear()
    quiet = App(store=store_url, preload_models=False)
    quiet.models.add_card({"id": "gpt", "provider": "openai"})
    async with quiet:
        pass
    assert imports == []
