"""``ModelPlane``: the entry point of the model data plane, one per app (``app.models``).

It holds the catalog (cards by id, aliases), the providers (created on first use, by
name), the task contracts, the budgets and circuit breakers, the router and the deployment
chain, composed once in this order, outermost first::

    metering -> redact -> cache -> budget -> rate limit -> breaker -> provider

(``redact`` redacts personal data from the requests to cards that must not see it, before
the cache keys on them: ``links/redact.py``. The cache sits outside budget and rate limit,
unlike DESIGN.md's sketch, because an answer from the cache costs nothing and sends
nothing: it must neither use up a rate-limit slot nor be refused by an exhausted budget.)

Inside a workflow, ``ctx.models.run(task, input)`` and ``ctx.models.call(model, messages)``
(``bound.py``) are effects of kind ``model`` through the gate: recorded once, replayed from
the record (the provider is not called again), with the model, version, usage, cost,
latency and every attempt in the effect's ``meta``. When no candidate can serve now (an
outage: every one failed transiently or has its breaker open) the effect fails with
``ProviderUnavailable`` and is retried under ``MODEL_RETRY`` (or the task's or the call's
``retry=``): the kernel waits at least the provider's retry-after, parking the run for
waits of ``park_after`` seconds or more, so an outage costs no worker slot and survives a
restart. Outside a workflow, ``app.models.run`` and ``app.models.call`` (the HTTP gateway,
scripts) are *direct* effects: the same gate and interceptors (policy, tracing, ...),
nothing recorded (and no retry: the caller gets the ``ProviderUnavailable`` and its
``retry_after``); ``app.models.stream`` is a direct ``call`` whose answer arrives piece by
piece (``streaming.py``).

A call's ``model`` names a card (id, ``id@version``) or an alias; failing those, a task
contract, whose routing plan then serves the request as it is (its candidates, fallbacks,
cost cap, SLO, cache and redaction; not its ``build`` and ``parse``): so a caller that speaks
only chat, such as the OpenAI-compatible gateway, can name ``summarize`` and get its routing.
"""

from __future__ import annotations

import asyncio
import importlib
import os
import random
from collections.abc import Awaitable, Callable
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar, overload

import pydantic

from ..errors import ConfigError, InvalidInput, ModelNotFound
from ..governance.lineage_hash import file_hash
from ..governance.policy_entities import check_classification
from ..governance.redaction_gate import REDACTOR
from ..kernel import App, Context, EffectCall
from ..kernel.retry import Retry
from .bound import BoundModels, Messages, make_request
from .catalog import ModelCard
from .chain import DeploymentCall, Link, NextLink, compose
from .contracts import Candidate, RouteContext, RoutingPlan, TaskContract, describe
from .links.breaker import BreakerLink, Breakers
from .links.budget import BudgetLink, Budgets
from .links.metering import (
    MeteringLink,
    flush_usage,
    spent,
    usage_by_model,
    usage_by_run,
    usage_by_workflow,
    usage_log,
)
from .links.ratelimit import RateLimitLink, RedisWindows, StoreWindows, Windows
from .links.redact import RedactLink
from .providers.base import Provider
from .providers.registry import Providers
from .route_trace import Trace
from .router import Router, ShadowResult
from .shadows import record_shadow, shadow_results
from .streaming import ModelStream, StreamSink
from .types import ModelRequest, ModelResponse

if TYPE_CHECKING:
    from ..governance.redaction import Redaction
    from .links.cache import CachePolicy

In = TypeVar("In", bound=pydantic.BaseModel)
Out = TypeVar("Out", bound=pydantic.BaseModel)


class ModelPlane:
    def __init__(self, app: App) -> None:
        self.app = app
        self.cards: dict[str, ModelCard] = {}  # by id
        self.tasks: dict[str, TaskContract[Any, Any]] = {}
        self.providers = Providers()
        self._breakers = Breakers()
        self.router = Router(self._breakers, resolve=self.card, send=self._send)
        # The card (id or alias) that embeds requests for the semantic cache; None: the
        # first ``embed`` card of the catalog.
        self.embed_model: str | None = None
        self._chain: NextLink | None = None
        self._chain_store: object = None
        self._redis_url: str | None = os.environ.get("AIOSYS_REDIS_URL") or None
        self._windows: Windows | None = None
        self.router.record_shadow = self._record_shadow
        #: The app's warm-up while it runs (``aiosys.App.open``): a model effect waits for
        #: it before anything else, so a call never imports a provider on the event loop
        #: while the warm-up imports it in a thread, nor loads the detector beside it.
        self.warm_up: asyncio.Future[None] | None = None
        app.gate.register("model", self._execute)

    # ---- catalog --------------------------------------------------------------------------

    def add_card(self, card: ModelCard | dict[str, Any]) -> ModelCard:
        """Add or replace (same id) a card. An alias another card holds moves to this one,
        as a registry's ``production`` alias moves when a new version is promoted."""
        if isinstance(card, dict):
            name = card.get("id", "?")
            try:
                card = ModelCard.model_validate(card)
            except pydantic.ValidationError as exc:
                raise ConfigError(f"invalid model card {name!r}: {describe(exc)}") from None
        for alias in card.aliases:
            if alias in self.cards and alias != card.id:
                raise ConfigError(f"alias {alias!r} of model {card.id!r} is another model's id")
        if card.id in {a for c in self.cards.values() if c.id != card.id for a in c.aliases}:
            raise ConfigError(f"model id {card.id!r} is an alias of another model")
        for other in list(self.cards.values()):
            kept = [a for a in other.aliases if a not in card.aliases]
            if other.id != card.id and len(kept) != len(other.aliases):
                self.cards[other.id] = other.model_copy(update={"aliases": kept})
        self.cards[card.id] = card
        return card

    def load_files(self, directory: str | Path = "models") -> list[ModelCard]:
        """Add the cards declared in TOML/YAML files under ``directory`` (see
        ``catalog_files``); a bad file is a ``ConfigError`` naming it and the field."""
        from .catalog_files import load_card_files

        return [self.add_card(card) for card, _ in load_card_files(directory)]

    async def load_store(self) -> list[ModelCard]:
        """Add the cards kept in the store (``aiosys models sync`` put them there)."""
        from .catalog_store import load_cards

        return [self.add_card(card) for card in await load_cards(self.app.store)]

    async def preload(self) -> None:
        """Import, in a worker thread, what the first call would: the modules of the
        providers the catalog names (their SDKs) and the cache link (numpy)."""
        await asyncio.to_thread(self.import_modules)

    def import_modules(self) -> None:
        """``preload``'s imports, blocking (run it off the event loop; ``App.open``'s
        warm-up does, once the catalog is loaded)."""
        self.providers.preload({card.provider for card in self.cards.values()})
        importlib.import_module("aiosys.models.links.cache")

    async def save_to_store(self, source: str | None = None) -> None:
        """Keep this catalog's cards in the store, so other workers and the console see it."""
        from .catalog_store import save_cards

        await save_cards(self.app.store, [(card, source) for card in self.cards.values()])

    def card(self, name: str) -> ModelCard:
        """The card of that id, ``id@version`` or alias; ``ModelNotFound`` lists the ids."""
        found = self.cards.get(name)
        if found is not None:
            return found
        for card in self.cards.values():
            if name == card.key or name in card.aliases:
                return card
        known = ", ".join(sorted(self.cards)) or "the catalog is empty"
        raise ModelNotFound(f"no model card or alias named {name!r} (known: {known})")

    # ---- providers ------------------------------------------------------------------------

    def add_provider(self, name: str, provider: Provider) -> None:
        """Serve cards whose ``provider`` is ``name`` with this instance (replaces a built-in
        one of that name)."""
        self.providers.add(name, provider)

    def provider(self, name: str) -> Provider:
        """The provider of that name (a built-in one is created on first use)."""
        return self.providers.get(name)

    @property
    def breakers(self) -> Breakers:
        """The circuit breakers of this process (see ``links/breaker.py``)."""
        return self._breakers

    @breakers.setter
    def breakers(self, breakers: Breakers) -> None:
        """Replace the breakers (other thresholds, a test clock); the chain is rebuilt."""
        self._breakers = self.router.breakers = breakers
        self._chain = None

    # ---- tasks and budgets ----------------------------------------------------------------

    def task(
        self,
        name: str,
        *,
        input: type[In],
        output: type[Out],
        build: Callable[[In], ModelRequest],
        parse: Callable[[ModelResponse], Any],
        plan: RoutingPlan,
        slo_p95_ms: float | None = None,
        cost_cap: float | None = None,
        cache: CachePolicy | None = None,
        retry: Retry | None = None,
        redaction: Redaction | None = None,
        version: str = "1",
    ) -> TaskContract[In, Out]:
        """Register a task contract (see ``contracts.TaskContract``); ``version`` names this
        revision of it (recorded with each call: ``task_version``)."""
        contract: TaskContract[In, Out] = TaskContract(
            name,
            input,
            output,
            build,
            parse,
            plan,
            slo_p95_ms,
            cost_cap,
            cache,
            retry,
            redaction,
            version,
        )
        return self.add_task(contract)

    def add_task(self, contract: TaskContract[In, Out]) -> TaskContract[In, Out]:
        if contract.name in self.tasks:
            raise ConfigError(f"task {contract.name!r} is registered twice")
        self.tasks[contract.name] = contract
        return contract

    def contract(self, task: str | TaskContract[Any, Any]) -> TaskContract[Any, Any]:
        if isinstance(task, TaskContract):
            return task
        found = self.tasks.get(task)
        if found is None:
            known = ", ".join(sorted(self.tasks)) or "none"
            raise ConfigError(f"no model task named {task!r} is registered (known: {known})")
        return found

    @property
    def redis_url(self) -> str | None:
        """Where the rate-limit windows are counted: a Redis URL, or None for the store
        (the default; ``AIOSYS_REDIS_URL`` sets it). See ``links/ratelimit.py``."""
        return self._redis_url

    @redis_url.setter
    def redis_url(self, url: str | None) -> None:
        self._redis_url = url or None
        self._windows = None
        self._chain = None  # rebuilt with the new windows on the next call

    @cached_property
    def budgets(self) -> Budgets:
        """Spending caps per tenant and workflow (``budgets.add(Budget(...))``)."""
        return Budgets()

    # ---- the chain --------------------------------------------------------------------------

    def links(self) -> list[Link]:
        """The deployment chain's links, outermost first (see the module docstring)."""
        from .links.cache import CacheLink  # imported on first call: it needs numpy

        store = self.app.store
        if self._redis_url is not None:
            self._windows = RedisWindows(self._redis_url)
        else:
            self._windows = StoreWindows(store)
        return [
            MeteringLink(store),
            RedactLink(),
            CacheLink(store, self._embed),
            BudgetLink(store, self.budgets),
            RateLimitLink(store, windows=self._windows),
            BreakerLink(self._breakers),
        ]

    def _send(self, call: DeploymentCall) -> Awaitable[ModelResponse]:
        store = self.app.store
        if self._chain is None or self._chain_store is not store:
            self._chain, self._chain_store = compose(self.links(), self.providers.invoke), store
        return self._chain(call)

    async def _embed(self, texts: list[str]) -> list[list[float]]:
        """Embeddings for the semantic cache, straight from the embedding model's provider."""
        if self.embed_model is not None:
            card = self.card(self.embed_model)
        else:
            found = [c for c in self.cards.values() if c.kind == "embed"]
            if not found:
                raise ConfigError(
                    "the semantic cache needs an embedding model: add a card of kind 'embed' "
                    "or set app.models.embed_model"
                )
            card = found[0]
        call = DeploymentCall(card=card, request=ModelRequest(kind="embed", texts=texts))
        vectors: list[list[float]] = (await self.providers.invoke(call)).output
        return vectors

    # ---- calls ----------------------------------------------------------------------------

    @overload
    async def run(
        self,
        task: TaskContract[Any, Out],
        input: dict[str, Any] | pydantic.BaseModel,
        *,
        tenant: str | None = ...,
        classification: str | None = ...,
        workflow: str | None = ...,
    ) -> Out: ...

    @overload
    async def run(
        self,
        task: str,
        input: dict[str, Any] | pydantic.BaseModel,
        *,
        tenant: str | None = ...,
        classification: str | None = ...,
        workflow: str | None = ...,
    ) -> Any: ...

    async def run(
        self,
        task: str | TaskContract[Any, Any],
        input: dict[str, Any] | pydantic.BaseModel,
        *,
        tenant: str | None = None,
        classification: str | None = None,
        workflow: str | None = None,
    ) -> Any:
        """Run a task outside any workflow: a direct effect through the gate (its
        interceptors apply; nothing is recorded). Its validated output. ``tenant``: whose
        call it is (None: the bound principal's, ``default`` for the local one; another is
        ``PermissionDenied``). ``classification``: the data's label (``LABELS`` of
        ``aiosys.governance.policy_entities``; None: unclassified), another is
        ``InvalidInput``."""
        check_classification(classification)
        tenant = await self._tenant("call_model", tenant, workflow)
        contract = self.contract(task)
        data = contract.validate_input(input)
        params = {"task": contract.name, "input": data, "classification": classification}
        return await self.app.gate.direct(
            "model", contract.name, params=params, tenant=tenant, workflow=workflow
        )

    async def call(
        self,
        model: str,
        messages: Messages,
        *,
        tenant: str | None = None,
        classification: str | None = None,
        workflow: str | None = None,
        **params: Any,
    ) -> ModelResponse:
        """Call one model (a card or alias; else a task's plan: see the module docstring)
        outside any workflow: a direct effect through the gate (its interceptors apply;
        nothing is recorded). Its metered response. ``tenant`` and ``classification`` as
        in ``run``."""
        check_classification(classification)
        tenant = await self._tenant("call_model", tenant, workflow)
        request = make_request(messages, params)
        return await self._direct(model, request, tenant, classification, workflow)

    def stream(
        self,
        model: str,
        messages: Messages,
        *,
        tenant: str | None = None,
        classification: str | None = None,
        workflow: str | None = None,
        **params: Any,
    ) -> ModelStream:
        """``call``, with the answer's text streamed (``streaming.py``)::

            async with app.models.stream(model, messages) as stream:
                async for text in stream: ...
            stream.response  # ModelResponse: model, usage, cost

        Entering raises what ``call`` would before the first piece (``PermissionDenied``,
        ``PolicyDenied``, ``BudgetExceeded``, ``ModelNotFound``, ``ProviderUnavailable``, ...);
        iterating raises a failure after it. ``InvalidInput`` at once for bad messages or
        an unknown ``classification``."""
        check_classification(classification)
        request = make_request(messages, params)

        async def run(sink: StreamSink) -> ModelResponse:
            scope = await self._tenant("call_model", tenant, workflow)
            return await self._direct(model, request, scope, classification, workflow, sink)

        return ModelStream(run)

    async def _direct(
        self,
        model: str,
        request: ModelRequest,
        tenant: str,
        classification: str | None,
        workflow: str | None,
        stream: StreamSink | None = None,
    ) -> ModelResponse:
        effect_params = self._call_params(model, request, classification)
        if stream is not None:
            effect_params["stream"] = stream
        response: ModelResponse = await self.app.gate.direct(
            "model", f"call:{model}", params=effect_params, tenant=tenant, workflow=workflow
        )
        return response

    def _call_params(
        self, model: str, request: ModelRequest, classification: str | None
    ) -> dict[str, Any]:
        """The params of a ``call`` effect: ``model`` a card or alias (a name that is
        neither, nor a task, fails in the effect as ``ModelNotFound``), else the ``task``
        whose plan serves ``request`` as it is."""
        if model not in self.cards and model in self.tasks:
            try:
                self.card(model)
            except ModelNotFound:
                return {"task": model, "request": request, "classification": classification}
        return {"model": model, "request": request, "classification": classification}

    def bind(self, ctx: Context) -> BoundModels:
        """What ``ctx.models`` is inside a workflow."""
        return BoundModels(self, ctx)

    async def _execute(self, call: EffectCall) -> Any:
        """The executor of ``model`` effects (``BoundModels`` makes them in workflows,
        ``run`` and ``call`` outside). In a workflow the usage rows of its attempts are
        committed with the effect's record (``EffectCall.also_write``): a crash keeps both
        or neither, and replay, which never calls the model again, never meters it again.
        A direct effect's rows are written behind the call (``links/metering.py``)."""
        warm_up = self.warm_up
        if warm_up is not None and not warm_up.done():
            await asyncio.shield(warm_up)
        p, ex = call.params, call.run_execution
        run_id, seq = (None, None) if ex is None else (ex.run.id, call.seq)
        held: list[dict[str, Any]] | None = None if ex is None else []
        contract = self.contract(p["task"]) if "task" in p else None
        built = contract is not None and "input" in p  # else a call: its request as it is
        redactor = call.meta.get(REDACTOR)
        if redactor is not None and contract is not None and contract.redaction is not None:
            redactor.rule = contract.redaction  # the task's own rule over the app's default
        route = RouteContext(
            task=None if contract is None else contract.name,
            request=contract.build(p["input"]) if built and contract else p["request"],
            input=p["input"] if built else None,
            classification=p.get("classification"),
            tenant=call.tenant,
            workflow=call.workflow,
            run_id=run_id,
            seq=seq,
            cache=None if contract is None else contract.cache,
            held=held,
            redactor=redactor,
            stream=p.get("stream"),
        )
        trace = Trace(task=route.task, task_version=None if contract is None else contract.version)
        document = route.request.document
        if document is not None and ex is not None and "lineage" in self.app.gate.names:
            trace.document = await asyncio.to_thread(file_hash, document)
        try:
            if contract is None:
                self.card(p["model"])  # ModelNotFound before anything else
                await self.router.route(RoutingPlan([Candidate(p["model"])]), route, trace=trace)
                result: Any = trace.response
            elif not built:  # a call naming a task: its plan serves the request as it is
                await self.router.route(
                    contract.plan,
                    route,
                    cost_cap=contract.cost_cap,
                    slo_p95_ms=contract.slo_p95_ms,
                    rng=None if ex is None else random.Random(f"{run_id}:{seq}"),
                    trace=trace,
                )
                result = trace.response
            else:
                await self.router.route(
                    contract.plan,
                    route,
                    accept=contract.accept,
                    cost_cap=contract.cost_cap,
                    slo_p95_ms=contract.slo_p95_ms,
                    # In a run, canary draws from a generator seeded by the run and the
                    # effect: the same on every execution, and the run's own ``ctx.random()``
                    # is left untouched (replays skip this code and would diverge).
                    rng=None if ex is None else random.Random(f"{run_id}:{seq}"),
                    trace=trace,
                )
                result = trace.output
        except Exception:
            self._commit_usage_with_record(call, held)
            raise
        except BaseException:  # cancelled: no record will be written, so neither are they
            if held:
                usage_log(self.app.store).release(held, committed=False)
            sink = route.stream
            if isinstance(sink, StreamSink) and sink.started and trace.response is None:
                trace.card, trace.response = sink.card, sink.partial()  # what the caller got
            raise
        finally:
            call.meta["record"] = trace.record()
        self._commit_usage_with_record(call, held)
        return result

    def _commit_usage_with_record(
        self, call: EffectCall, rows: list[dict[str, Any]] | None
    ) -> None:
        if not rows:
            return
        for row in rows:
            call.also_write("insert_usage", row)
        log = usage_log(self.app.store)
        call.on_recorded.append(lambda committed: log.release(rows, committed=committed))

    async def _record_shadow(self, result: ShadowResult, ctx: RouteContext) -> None:
        await record_shadow(self.app.store, result, ctx)

    async def _tenant(self, action: str, tenant: str | None, workflow: str | None = None) -> str:
        """The tenant a call of the bound principal acts in, after the app's client checks
        (``PermissionDenied`` for another tenant than a non-local principal's)."""
        return await self.app.authorize(action, tenant=tenant, workflow=workflow) or "default"

    async def shadow_results(
        self, task: str | None = None, *, tenant: str | None = None, limit: int = 100
    ) -> list[dict[str, Any]]:
        """What shadow models answered beside the serving model (see ``shadows.py``), of
        ``tenant`` (None: the bound principal's, ``default`` for the local one)."""
        tenant = await self._tenant("read_usage", tenant)
        await self.app._ready()
        return await shadow_results(self.app.store, task, tenant=tenant, limit=limit)

    async def usage(
        self, *, by: str = "model", since: float = 0.0, tenant: str | None = None
    ) -> list[dict[str, Any]]:
        """Model calls, outcomes, tokens and cost of ``tenant`` (as in ``shadow_results``)
        since ``since`` (seconds since the epoch), one dict per model (``by="model"``) or
        per workflow (``by="workflow"``); see ``links/metering.py``. Pending usage rows are
        written first."""
        if by not in ("model", "workflow"):
            raise InvalidInput(f"usage is reported by 'model' or 'workflow', not {by!r}")
        tenant = await self._tenant("read_usage", tenant)
        await self.app._ready()
        await self.flush_usage()
        read = usage_by_model if by == "model" else usage_by_workflow
        return await read(self.app.store, tenant, since)

    async def run_usage(self, run_id: str, *, tenant: str | None = None) -> dict[str, Any]:
        """Tokens, cost and number of model calls of one run (``input_tokens``,
        ``output_tokens``, ``cost``, ``calls``); ``RunNotFound`` if the run is not in the
        caller's tenant (as ``app.get_run``)."""
        await self.app.get_run(run_id, tenant=tenant)
        return await usage_by_run(self.app.store, run_id)

    async def spent(
        self, *, workflow: str | None = None, since: float = 0.0, tenant: str | None = None
    ) -> float:
        """What ``tenant`` (as in ``shadow_results``), or one of its workflows, spent on
        models since ``since`` (seconds since the epoch), in the catalog's currency units."""
        tenant = await self._tenant("read_usage", tenant, workflow)
        await self.app._ready()
        return await spent(self.app.store, tenant, workflow, since=since)

    async def close(self) -> None:
        """Wait for shadow calls in flight, then close the providers."""
        await self.router.drain()
        await self.providers.close()
        if self._windows is not None:
            await self._windows.close()
        await self.flush_usage()

    async def flush_usage(self) -> None:
        """Write the usage rows metered in this process that are still pending (they are
        written behind the calls, in batches: see ``links/metering.py``)."""
        await flush_usage(self.app.store)
