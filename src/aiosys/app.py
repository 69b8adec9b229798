"""The public ``App``: the kernel's App with the model data plane attached.

The composition root, outside the layers: the kernel knows effects and the gate, not models,
so the pieces above it are put together here. ``app.models`` is created on first use (no
provider, connection or SDK import before). ``app.audit`` is the audit log
(``aiosys.governance.audit``): on by default, its interceptor on the gate, and the run actions
(start, signal, cancel, resume) recorded here.
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
from collections.abc import Callable
from datetime import timedelta
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import kernel
from .errors import AiosysError, ConfigError, ModelNotFound
from .governance.ai_act import AiAct
from .governance.audit import AuditLog, AuditSettings
from .governance.identity import Identity, note_identity
from .governance.lineage import Lineage, LineageSettings
from .governance.policy_entities import resource_entity
from .governance.policy_files import policies_dir
from .governance.redaction_gate import Redact, RedactionSettings
from .governance.roles import check_roles
from .humans import HumanTasks, Inbox, TaskRow
from .humans.approval import Approvals
from .kernel import EffectCall
from .kernel.app import Admitted, Readiness, RunHandle
from .kernel.checks import ClientCall
from .kernel.gcfreeze import freeze_again
from .models.catalog import ModelCard
from .models.catalog_files import load_card_files
from .models.describe import describe
from .models.plane import ModelPlane
from .observe import slo as slo_mod
from .observe.settings import TracingSettings
from .observe.spans import stored_trace
from .observe.stats import Stats, read_stats, window_start
from .observe.traceids import parse_traceparent
from .observe.tracing import Tracing
from .store.base import RunRow

log = logging.getLogger("aiosys.audit")

#: ``Admitted.meta`` key: a start's audit ``Starting`` and tenant, from admission to commit.
_AUDIT = "audit"

if TYPE_CHECKING:  # imported when a policy directory is found (cedarpy takes ~0.15 s)
    from .governance.policy import PolicyEngine
    from .governance.policy_gate import Authorize

#: The client actions the policies decide (the rest are the built-in roles' alone).
CLIENT_ACTIONS = frozenset(
    {"start_workflow", "signal_run", "cancel_run", "resume_run", "complete_task"}
)


class App(kernel.App):
    """Workflows, steps and queues bound to one store, with models (``app.models``).

    When the app opens, the catalog is filled from the store (cards ``aiosys models sync``
    saved) and then from the card files under ``models_dir`` (the argument, else the
    ``AIOSYS_MODELS_DIR`` environment variable, empty meaning none, else ``./models`` when it
    exists), so a file's card wins over the stored one of the same id. Cards added in code
    with ``app.models.add_card`` before opening win over both. The providers the catalog
    names are then imported, off the event loop (``ModelPlane.import_modules``), unless
    ``preload_models`` is False (commands that only read the store, such as ``aiosys runs``).
    That warm-up (with the redaction detector, below) is awaited by ``open()``; with
    ``open(background=True)`` (``aiosys server``, which must answer its liveness probe at
    once) it runs on while the app serves: ``app.warming`` says what it is loading,
    ``readiness()`` is not ready until it ends, and a model call waits for it first.

    Policies (Cedar, ``aiosys.governance.policy``) come from ``policies_dir`` (else
    ``AIOSYS_POLICIES_DIR``, empty meaning none, else ``./policies`` when it exists): when
    the app opens they are loaded (a broken set is a ``PolicyFileError`` naming the file and
    line), ``app.policy`` is the engine and the gate's ``authorize`` interceptor asks it
    before every model, connector and child-start effect and every declared step; ``start``,
    ``signal``, ``cancel`` and ``resume`` ask it too (``start_workflow``, ``signal_run``,
    ``cancel_run``, ``resume_run``). Without a directory nothing is installed. A policy
    that forbids an effect until a person approves it (``@approval``) makes a run's effect
    wait for that approval as a human task (``app.approvals``, ``aiosys.humans.approval``);
    a workflow declared ``high_risk=True`` is so for the policies (``Workflow.high_risk``).

    The audit log (``app.audit``) is on unless ``audit=False`` (or ``AIOSYS_AUDIT=off``, or
    ``enabled = false`` under ``[audit]`` in aiosys.toml); ``audit_key`` is the PEM file of the
    Ed25519 key that signs its checkpoints (default: generated under ``.aiosys/``), written
    every ``audit_checkpoint_records`` records or ``audit_checkpoint_seconds`` seconds (see
    ``AuditSettings``).

    Lineage (``app.lineage``, ``aiosys.governance.lineage``) is recorded with every effect
    unless ``lineage=False`` (or ``AIOSYS_LINEAGE=off``, or ``lineage = false`` in
    aiosys.toml): the content hashes of its inputs and the policy decisions behind it, in the
    effect's own record; ``app.lineage.show``, ``runs`` and ``openlineage`` read it back.
    ``app.ai_act.export`` gathers the AI Act evidence of a workflow over a period (the
    Article 12 extract, an Annex IV draft) from the audit log, lineage and catalog.

    Traces (``app.tracing``, ``aiosys.observe.tracing``) are on unless ``tracing=False`` (or
    ``AIOSYS_TRACING=off``, or ``enabled = false`` under ``[tracing]``); ``trace_content``
    puts model prompts and completions on spans (off by default). A run joins the trace of
    ``start(..., traceparent=...)`` or of the OpenTelemetry span current when it is started.

    Redaction (``app.redaction``, ``aiosys.governance.redaction_gate``) is on unless
    ``redaction=False`` (or ``AIOSYS_REDACTION=off``, or ``enabled = false`` under
    ``[redaction]``): personal data is replaced by pseudonyms in the requests of model calls
    to external cards of confidential data (by default; per task and per card otherwise),
    and restored in their answers for callers the policies allow ``read_data``. When the
    catalog holds a card that may need it, the detector is loaded as the app opens.
    """

    def __init__(
        self,
        *args: Any,
        models_dir: str | Path | None = None,
        preload_models: bool = True,
        policies_dir: str | Path | None = None,
        audit: bool | None = None,
        audit_key: str | Path | None = None,
        audit_checkpoint_records: int | None = None,
        audit_checkpoint_seconds: float | None = None,
        tracing: bool | None = None,
        trace_content: bool | None = None,
        redaction: RedactionSettings | bool | None = None,
        lineage: bool | None = None,
        **kw: Any,
    ) -> None:
        super().__init__(*args, **kw)
        self.models_dir = models_dir
        self.preload_models = preload_models
        self.add_check("roles", check_roles, local=False)
        self.policies_dir = policies_dir
        self.policy: PolicyEngine | None = None  # the Cedar engine, once the app opened
        self.authorizer: Authorize | None = None  # the gate's `authorize` interceptor
        self.audit = AuditLog(
            lambda: self.store,
            lambda: AuditSettings.resolve(
                audit, audit_key, audit_checkpoint_records, audit_checkpoint_seconds
            ),
        )
        # Just inside the effect log: a replayed effect is not audited again, and the record
        # sees the effect's final outcome, after its retries. (It passes effects through
        # when the audit is off: settings are read when the app opens.)
        self.gate.add("audit", self.audit.interceptor, before=self.gate.names[1])
        self.slos: list[slo_mod.Slo] = []  # declared in code (app.slo); aiosys.toml's beside
        self._start_writes.append(self.audit.start_writes)
        self.tracing = Tracing(lambda: TracingSettings.resolve(tracing, trace_content))
        # Human tasks: the `human_task` effect (ctx.human_task) and the inbox (list_tasks...).
        self.humans = HumanTasks(self)
        self.humans.install(self.gate)
        self._inbox = Inbox(self)
        # The gate's `approve` interceptor, installed with the policies (right outside
        # `authorize`): an effect a policy forbids until a person approves it waits for that.
        self.approvals = Approvals(self.humans)
        self._redaction_arg = redaction
        self._redaction_settings: RedactionSettings | None = None
        self.redaction = Redact(lambda: self.redaction_settings, lambda: self.store, self._may_read)
        # Right inside ``authorize`` (installed when the app opens, before this one), outside
        # retry: DESIGN.md's order. Its presenter restores pseudonyms in what callers get.
        self.gate.add("redact", self.redaction, before="retry")
        self.gate.present("model", self.redaction.present)
        self.lineage = Lineage(self, lambda: LineageSettings.resolve(lineage))
        #: What the warm-up is loading now (``loading model providers``, ``loading
        #: redaction models``); None once it ended, or when none runs.
        self.warming: str | None = None
        self._warm_up: asyncio.Task[None] | None = None
        # The AI Act evidence: the audit log and lineage of a workflow's uses, and what the
        # catalog says of the models and tasks they used (the model layer's to tell).
        self.ai_act = AiAct(self, lambda models, tasks: describe(self.models, models, tasks))

    async def open(self, *, background: bool = False) -> App:
        """Open the store, install the policies and load the catalog (the first open of a
        process: a later one only counts), then warm up: import the catalog's providers and
        load the redaction detector when a card may need it, off the event loop. With
        ``background`` the warm-up goes on after ``open`` returns (``warming``,
        ``readiness``, ``warmed``); a model call made meanwhile waits for it, so none pays
        for it twice or races it. ``PolicyFileError``, ``ConfigError`` and the store's
        errors as the app's settings, policies and store are found wanting."""
        first = self._opened == 0
        if first:
            from .kernel.oplog import set_span_ids
            from .observe.logs import install_default, run_span_ids

            install_default()  # structured lines, only if the process configured no logging
            set_span_ids(run_span_ids)  # aiosys.runs lines carry their run's trace
            _ = self.audit.settings  # read now: a bad setting fails the open, not a call
            _ = self.redaction_settings
            if self.lineage.enabled:
                self._install_lineage()
        if first and self.policy is None:
            await self._install_policies()  # before the store: a broken set opens nothing
        if first and self.tracing.enabled and "trace" not in self.gate.names:
            self._install_tracing()
        await super().open()
        if first:
            await note_identity(self.store)
            await self._load_catalog()
            if not background:
                await self.warmed()
        return self

    async def warmed(self) -> None:
        """Until the warm-up ``open`` started has ended (at once if none runs). Cancelling
        the caller leaves the warm-up running."""
        task = self._warm_up
        if task is not None and not task.done():
            await asyncio.shield(task)

    async def readiness(self) -> Readiness:
        """``kernel.App.readiness``, and not ready while the warm-up runs (``warming``:
        the reason and ``loading``)."""
        found = await super().readiness()
        loading = self.warming
        if found.ready and loading is not None:
            return Readiness(False, loading, loading=loading)
        return found

    async def _warm(self, plane: ModelPlane) -> None:
        """The warm-up, off the event loop: the providers' modules (their SDKs: never
        imported inside a first call), then the redaction detector if a card may need it
        (Presidio, spaCy and the name model: once a process). A failure is logged, not
        raised: the call that needs what failed to load loads it itself and fails with the
        reason."""
        redacts = self.redaction_settings.enabled and any(
            c.external or c.redaction == "always" for c in plane.cards.values()
        )
        try:
            self.warming = "loading model providers"
            await _on_daemon_thread(plane.import_modules)
            if redacts:
                self.warming = "loading redaction models"
                try:
                    await _on_daemon_thread(self.redaction.load)
                except ConfigError as exc:  # a call that needs it fails with this, and sends
                    logging.getLogger("aiosys.redaction").warning(
                        "the detector could not be loaded: %s", exc
                    )
        except Exception as exc:
            logging.getLogger("aiosys.models").error(
                "the model warm-up failed (calls load what they need): %s", exc, exc_info=exc
            )
        finally:
            self.warming = None
        freeze_again()  # what it loaded stays: not the collector's either (kernel.gcfreeze)

    def _install_lineage(self) -> None:
        # Just inside the effect log and the audit (a replayed effect is not hashed again),
        # outside the policy (which it hears the decisions of) and retry (hashed once).
        names = self.gate.names
        at = names.index("audit") + 1 if "audit" in names else 1
        self.lineage.install(self.gate, before=names[at] if at < len(names) else None)

    def _install_tracing(self) -> None:
        tracing = self.tracing
        tracing.open()  # exporters from the environment, the metrics' MeterProvider
        # Just inside the effect log (a replayed effect makes no span), outside the audit and
        # the policy (a denied effect has its span, the decision an event on it).
        self.gate.add("trace", tracing.interceptor, before=self.gate.names[1])
        self.gate.wait_hooks.append(tracing.wait_ended)
        self.run_end_hooks.append(tracing.run_ended)
        if self.policy is not None:
            self.policy.listen(self._trace_decision)

    def _trace_decision(self, decision: Any) -> None:
        """A policy decision, as an event on the span of the effect it was made for."""
        self.tracing.add_event(
            decision.call,
            "aiosys.policy.decision",
            {
                "decision": decision.decision,
                "action": decision.action,
                "resource": decision.resource,
                "policies": list(decision.policies),
                "cached": decision.cached,
            },
        )

    @property
    def redaction_settings(self) -> RedactionSettings:
        """The redaction settings (``RedactionSettings.resolve``), read once."""
        if self._redaction_settings is None:
            self._redaction_settings = RedactionSettings.resolve(self._redaction_arg)
        return self._redaction_settings

    def _may_read(self, call: EffectCall, entity: str) -> bool:
        """Whether a model effect's principal may have values of ``entity`` restored:
        ``read_data`` on ``Dataset::"pii/<entity>"`` (classification: the call's) when
        policies are installed; else yes."""
        authorizer = self.authorizer
        if authorizer is None:
            return True
        label = call.params.get("classification")
        try:
            values = {"classification": label, "tenant": call.tenant}
            resource = resource_entity("Dataset", f"pii/{entity}", values)
        except AiosysError:  # an unknown classification label: nothing is restored
            return False
        return authorizer.allows(call, "read_data", resource)

    @cached_property
    def identity(self) -> Identity:
        """The store's API keys and the JWT settings: ``await app.identity.authenticate(
        credential)`` is the principal to bind."""
        return Identity(self.store, audit=self.audit.key_action)

    async def _load_catalog(self) -> None:
        plane = self.models
        in_code = dict(plane.cards)
        await plane.load_store()
        directory = self.models_dir
        if directory is None:
            directory = os.environ.get("AIOSYS_MODELS_DIR", "models")
        if directory:
            # Reading the card files is blocking file I/O: off the event loop.
            for card, _ in await asyncio.to_thread(_card_files, Path(directory)):
                plane.add_card(card)
        for card in in_code.values():
            plane.add_card(card)
        if self.preload_models:
            self.warming = "loading model providers"  # ready no sooner than the task starts
            self._warm_up = plane.warm_up = asyncio.create_task(self._warm(plane))

    async def _install_policies(self) -> None:
        directory = policies_dir(self.policies_dir)
        if directory is None:
            return
        from .governance.policy import PolicyEngine
        from .governance.policy_gate import Authorize

        engine = await asyncio.to_thread(PolicyEngine.from_dir, directory)
        authorizer = Authorize(engine, self._policy_models, self._high_risk)
        names = self.gate.names
        # Right inside the effect log (a replayed effect is not asked again), the audit
        # (which writes the effect's decisions with its record, a denial's too) and the
        # lineage (which keeps them with the effect's inputs).
        outer = [names.index(n) + 1 for n in ("effect_log", "audit", "lineage") if n in names]
        after = max(outer, default=0)
        self.gate.add("authorize", authorizer, before=names[after] if after < len(names) else None)
        self.approvals.install(self.gate)  # right outside it: it hears its ApprovalRequired
        self.policy, self.authorizer = engine, authorizer
        self.add_check("policy", self._check_policy)  # after the roles
        if self.audit.enabled:  # every decision, allow or deny, to the audit log
            engine.listen(self.audit.on_decision)
            # And every reload: the version put in force, or the broken set refused.
            engine.source.on_change.append(self._policies_loaded)
            engine.source.on_refused.append(self._policies_refused)
        if "lineage" in self.gate.names:  # and to the lineage of the effect it was made for
            self.lineage.listen(engine)

    def _policies_loaded(self, policies: Any) -> None:
        detail = {"policy_version": policies.version, "policies": len(policies)}
        self._note_reload(policies.version, "loaded", detail)

    def _policies_refused(self, error: Exception, kept: str) -> None:
        self._note_reload(kept, "refused", {"policy_version": kept, "reason": str(error)[:500]})

    def _note_reload(self, version: str, outcome: str, detail: dict[str, Any]) -> None:
        """A reload is the process's act: it is found by whichever decision looks at the
        files first, so it is recorded as the local principal's, not that decision's."""
        with kernel.bind_principal(kernel.LOCAL):
            self.audit.note_admin_action(
                "load_policies",
                tenant=kernel.LOCAL.tenant,
                resource=f"policies:{version}",
                outcome=outcome,
                detail=detail,
            )

    def _policy_models(self, call: EffectCall) -> list[ModelCard]:
        """The cards a model effect may reach: a direct call's model; a task's candidates
        and shadow, less those its plan keeps away from this data (``internal_only_for``)."""
        plane, params = self.models, call.params
        if "task" not in params:
            return [plane.card(params["model"])]
        plan = plane.contract(params["task"]).plan
        internal = params.get("classification") in plan.internal_only_for
        names = [c.model for c in plan.choices] + ([plan.shadow] if plan.shadow else [])
        cards = []
        for name in names:
            try:
                card = plane.card(name)
            except ModelNotFound:  # the router skips it too
                continue
            if not (internal and card.external):
                cards.append(card)
        return cards

    def _high_risk(self, workflow: str) -> bool:
        """Whether a version of ``workflow`` is declared ``high_risk=True``."""
        return any(spec.high_risk for spec in self.workflows.get(workflow, {}).values())

    async def _check_policy(self, call: ClientCall) -> None:
        """The client check of the Cedar policies (after the built-in roles): ``start``,
        ``signal``, ``cancel`` and ``resume`` as ``start_workflow``, ``signal_run``,
        ``cancel_run``, ``resume_run``, and a task's decision as ``complete_task`` on its
        ``HumanTask``. A child's start is asked at the gate instead."""
        engine = self.policy
        if engine is None or call.action not in CLIENT_ACTIONS or call.parent_id is not None:
            return  # a child's start was decided at the gate (its child_start effect)
        run = call.run
        if call.action == "complete_task":  # the task's attributes (humans.inbox.task_attrs)
            attrs: dict[str, Any] = dict(call.input)
        elif run is None:
            attrs = {"workflow": call.workflow, "tenant": call.tenant}
            if call.workflow is not None and self._high_risk(call.workflow):
                attrs["high_risk"] = True
        else:
            attrs = {"run_id": run.id, "workflow": run.workflow, "tenant": run.tenant}
            attrs["status"] = run.status
        await engine.check_client(call.action, call.principal, attrs)

    async def metrics(self, *, tenant: str | None = None) -> str:
        """The Prometheus metrics of the store, in the text exposition format (0.0.4): runs,
        effects, queues, workers, model calls, tokens, cost, budgets (this app's) and this
        process's circuit breakers, computed from the store now, so they count the work of
        every worker sharing it (``aiosys.observe.metrics`` lists the series).

        Scoped like every read (action ``read_usage``): a non-local principal sees only its
        tenant's series (``tenant`` None means its own; another is ``PermissionDenied``); the
        local principal sees every tenant (or only ``tenant``) and the live workers."""
        from .observe.metrics import BudgetSpec, collect, exposition

        scope = await self.authorize("read_usage", tenant=tenant)
        await self._ready()
        budgets: list[BudgetSpec] = []
        breakers: dict[str, str] = {}
        if "models" in self.__dict__:  # the plane exists: its budgets and breakers
            from .models.links.metering import flush_usage

            await flush_usage(self.store)  # this process's usage rows not yet written
            budgets = [
                BudgetSpec(b.scope, b.key, b.limit, b.period, b.hard) for b in self.models.budgets
            ]
            breakers = {k: v["state"] for k, v in self.models.breakers.snapshot().items()}
        families = await collect(self.store, tenant=scope, budgets=budgets, breakers=breakers)
        return exposition(families)

    @cached_property
    def models(self) -> ModelPlane:
        """The catalog, tasks, providers, budgets and router of this app."""
        return ModelPlane(self)

    async def close(self) -> None:
        warm_up = self._warm_up
        if self._opened <= 1 and warm_up is not None:
            # A warm-up still loading is left to its thread: nothing waits for it any more.
            self._warm_up = None
            warm_up.cancel()
            await asyncio.gather(warm_up, return_exceptions=True)
            self.warming = None  # (a task cancelled before it started never said so)
        # The plane goes first: shadow calls in flight still meter into the store.
        if self._opened <= 1 and "models" in self.__dict__:
            await self.models.close()
        if self._opened <= 1:
            await self.audit.close()  # the last checkpoint signs what this process appended
            await asyncio.to_thread(self.tracing.shutdown)  # exports what is queued
        await super().close()

    # ---- stats and SLOs (aiosys.observe) -----------------------------------------------

    async def stats(
        self,
        *,
        since: str | float | timedelta = "24h",
        until: float | None = None,
        workflow: str | None = None,
        model: str | None = None,
        tenant: str | None = None,
    ) -> Stats:
        """Per workflow and per model stats over ``[since, until)`` (see
        ``aiosys.observe.stats``): ``since`` a duration back from ``until`` (``"24h"``, a
        ``timedelta``), an ISO 8601 time or epoch seconds; ``until`` epoch seconds, default
        now on the store's clock. Of ``tenant`` (None: the bound principal's; every tenant
        for the local principal). ``PermissionDenied`` for another tenant (action
        ``read_usage``), ``InvalidInput`` for a malformed ``since``."""
        scope = await self.authorize("read_usage", tenant=tenant, workflow=workflow)
        await self._ready()
        if "models" in self.__dict__:  # this process's pending usage rows count too
            await self.models.flush_usage()
        end = self.store.clock() if until is None else float(until)
        start = window_start(since, end, until=until is not None)
        return await read_stats(
            self.store, since=start, until=end, tenant=scope, workflow=workflow, model=model
        )

    def slo(
        self,
        *,
        objective: str,
        target: float,
        window: str | float = slo_mod.DEFAULT_WINDOW,
        workflow: str | None = None,
        model: str | None = None,
    ) -> slo_mod.Slo:
        """Declare an SLO of one workflow or model (see ``aiosys.observe.slo``): objective
        ``p95_latency`` (seconds), ``error_rate`` (a fraction), ``cost_per_run`` (workflow)
        or ``cost_per_call`` (model), over the last ``window`` (``"1h"``). ``ConfigError``
        for a malformed one."""
        declared = slo_mod.make_slo(
            objective=objective, target=target, window=window, workflow=workflow, model=model
        )
        self.slos.append(declared)
        return declared

    async def check_slos(
        self, *, tenant: str | None = None, toml: str | Path | None = "aiosys.toml"
    ) -> list[slo_mod.SloResult]:
        """Check the SLOs declared in code and in ``toml``'s ``[[slo]]`` tables (None: code
        only) against the stats of each one's last window, now on the store's clock, in
        ``tenant`` (as ``stats``). One ``SloResult`` each, in declaration order (code
        first); ``ConfigError`` for a malformed table, a ``tenant`` the store does not know,
        or an SLO naming a workflow or model this app does not know (when it declares any;
        else one the store never saw: ``slo.check_subjects``): a typo would otherwise read
        as "no data" and pass; ``PermissionDenied`` as ``stats``."""
        scope = await self.authorize("read_usage", tenant=tenant)
        declared = list(self.slos) + (slo_mod.slos_from_toml(Path(toml)) if toml else [])
        if not declared:
            return []
        await self._ready()
        await slo_mod.check_subjects(
            self.store,
            declared,
            tenant=scope,
            workflows=self.workflows,
            models=self.models.cards if "models" in self.__dict__ else {},
        )
        end = self.store.clock()

        async def over(window: float) -> Stats:
            return await self.stats(since=end - window, until=end, tenant=scope)

        return await slo_mod.check(declared, over)

    async def trace(self, run_id: str, *, tenant: str | None = None) -> list[dict[str, Any]]:
        """A run's trace as the store keeps it, whether tracing is on here or not: the run's
        span first, then its effects' spans in the order they started (the dicts of
        ``aiosys.observe.spans.stored_trace``). ``RunNotFound`` if the run is not in the
        caller's tenant."""
        tenant, row = await self._admit_run("read_run", run_id, tenant)
        if row is None:
            row = await self._read_run(run_id, tenant)
        return await stored_trace(self.store, row)

    # ---- human tasks (aiosys.humans.inbox) -----------------------------------------------

    async def list_tasks(
        self,
        *,
        status: str | None = None,
        tenant: str | None = None,
        run_id: str | None = None,
        limit: int = 50,
    ) -> list[TaskRow]:
        """The human tasks the bound principal may act on (its roles', or claimed by it;
        the local principal: all), most urgent first; ``status`` None: still to decide.
        See ``Inbox.listing``."""
        await self._ready()
        return await self._inbox.listing(status=status, tenant=tenant, run_id=run_id, limit=limit)

    async def get_task(self, task_id: str, *, tenant: str | None = None) -> TaskRow:
        """One human task; ``TaskNotFound`` if it is not in the caller's tenant."""
        await self._ready()
        return await self._inbox.read(task_id, tenant=tenant)

    async def claim_task(self, task_id: str, *, tenant: str | None = None) -> TaskRow:
        """Claim a task for the bound principal (who alone may then decide it)."""
        await self._ready()
        return await self._inbox.claim(task_id, tenant=tenant)

    async def release_task(self, task_id: str, *, tenant: str | None = None) -> TaskRow:
        """Give a claimed task back to its role."""
        await self._ready()
        return await self._inbox.release(task_id, tenant=tenant)

    async def admit_task(self, action: str, task_id: str, *, tenant: str | None = None) -> None:
        """Ask the caller's rights for ``action`` on a task without doing it
        (``Inbox.admit``)."""
        await self._ready()
        await self._inbox.admit(action, task_id, tenant=tenant)

    async def complete_task(
        self,
        task_id: str,
        action: str,
        *,
        data: Any = None,
        comment: str | None = None,
        tenant: str | None = None,
    ) -> TaskRow:
        """Decide a task (``approve``, ``reject``, or ``edit`` with ``data`` checked against
        its form); the run waiting for it resumes at once. ``PolicyDenied`` when decided
        already or not the principal's to decide. See ``Inbox.complete``."""
        await self._ready()
        return await self._inbox.complete(
            task_id, action, data=data, comment=comment, tenant=tenant
        )

    # ---- run actions, audited -----------------------------------------------------------

    async def _admit_start(
        self, workflow: str, input: dict[str, Any] | None = None, **kw: Any
    ) -> Admitted:
        """``kernel.App._admit_start``; ``traceparent`` (W3C text) is checked
        (``InvalidInput``, after the caller's rights: ``_check_traceparent``), and without one
        the run joins the current OpenTelemetry span's trace, if there is one (a child: its
        parent's ``child_start`` span). The policy decisions of the admission are collected
        for the start's audit record; a refusal is recorded at once."""
        if kw.get("traceparent") is None and self.tracing.enabled:
            kw["traceparent"] = self.tracing.current_traceparent()
        if not self.audit.enabled or kw.get("parent_id"):  # a child: its parent's effect
            return await super()._admit_start(workflow, input, **kw)
        tenant = kw.get("tenant") or kernel.current_principal().tenant  # as start scopes it
        with self.audit.starting() as started:
            try:
                admitted = await super()._admit_start(workflow, input, **kw)
            except AiosysError as exc:
                await self._audit_refusal(
                    "start_workflow", tenant, None, exc, {"workflow": workflow}, started.decisions
                )
                raise
        admitted.meta[_AUDIT] = (started, tenant)
        return admitted

    async def _commit_start(self, admitted: Admitted) -> RunHandle:
        """``kernel.App._commit_start``, audited: the start's record, its policy decisions
        folded in, commits with the new run (``AuditLog.start_writes``, a kernel start
        hook); an existing run or a refusal is appended after."""
        audited = admitted.meta.get(_AUDIT)
        if audited is None:  # no audit, or a child's start (its parent's effect records it)
            return await super()._commit_start(admitted)
        started, tenant = audited
        detail: dict[str, Any] = {"workflow": admitted.spec.name}
        with self.audit.starting(started):
            try:
                handle = await super()._commit_start(admitted)
            except AiosysError as exc:
                await self._audit_refusal(
                    "start_workflow", tenant, None, exc, detail, started.decisions
                )
                raise
        if handle.created:
            self.audit.appended(started.written)
            return handle
        await self._audit("start_workflow", tenant, handle.id, False, detail, started.decisions)
        return handle

    async def _abandon_start(self, admitted: Admitted, why: AiosysError) -> None:
        """The audit record of an admitted start that is not made (another start of the
        same publish was refused): its policy decisions, and the refusal that undid it."""
        audited = admitted.meta.get(_AUDIT)
        if audited is not None:
            started, tenant = audited
            detail = {"workflow": admitted.spec.name}
            await self._audit_refusal(
                "start_workflow", tenant, None, why, detail, started.decisions
            )

    def _check_traceparent(self, traceparent: str) -> None:
        """A start's ``traceparent`` is W3C's (``InvalidInput`` else), checked by the kernel's
        ``start`` after the caller's rights."""
        parse_traceparent(traceparent)

    async def signal(self, run_id: str, name: str, payload: Any = None, **kw: Any) -> None:
        try:
            await super().signal(run_id, name, payload, **kw)
        except AiosysError as exc:
            await self._audit_refusal("signal_run", kw.get("tenant"), run_id, exc, {"signal": name})
            raise
        await self._audit("signal_run", kw.get("tenant"), run_id, True, {"signal": name})

    async def cancel(self, run_id: str, *args: Any, **kw: Any) -> RunRow:
        try:
            row = await super().cancel(run_id, *args, **kw)
        except AiosysError as exc:
            await self._audit_refusal("cancel_run", kw.get("tenant"), run_id, exc)
            raise
        await self._audit("cancel_run", row.tenant, run_id, True, {"status": row.status})
        return row

    async def resume(self, run_id: str, **kw: Any) -> RunRow:
        try:
            row = await super().resume(run_id, **kw)
        except AiosysError as exc:
            await self._audit_refusal("resume_run", kw.get("tenant"), run_id, exc)
            raise
        await self._audit("resume_run", row.tenant, run_id, True)
        return row

    async def _audit_refusal(
        self,
        action: str,
        tenant: str | None,
        run_id: str | None,
        exc: AiosysError,
        detail: dict[str, Any] | None = None,
        decisions: list[Any] | None = None,
    ) -> None:
        """Record a refused run action; a failure to record it is logged, never raised
        over the refusal the caller must see."""
        try:
            await self._audit(action, tenant, run_id, exc, detail, decisions)
        except Exception as failure:
            log.error("audit: the refused %s could not be recorded: %s", action, failure)

    async def _audit(
        self,
        action: str,
        tenant: str | None,
        run_id: str | None,
        outcome: bool | BaseException,
        detail: dict[str, Any] | None = None,
        decisions: list[Any] | None = None,
    ) -> None:
        """Append a run action's record: ``outcome`` True (done; for a start, a new run),
        False (a start that returned an existing run) or the error it raised; with the
        policy ``decisions`` made for it (folded in)."""
        if not self.audit.enabled:
            return
        await self._ready()
        if tenant is None and run_id is not None:  # the local default named no tenant
            run = await self.store.get_run(run_id)
            tenant = run.tenant if run is not None else "default"
        if isinstance(outcome, BaseException):
            text = f"error:{type(outcome).__name__}"
        else:
            text = ("created" if outcome else "existing") if action == "start_workflow" else "ok"
        await self.audit.run_action(
            action,
            tenant=tenant or "default",
            run_id=run_id,
            outcome=text,
            detail=detail,
            decisions=decisions,
        )


async def _on_daemon_thread(fn: Callable[[], None]) -> None:
    """``fn()`` on a daemon thread of its own, awaited: unlike the default executor's, a
    process that stops meanwhile (SIGTERM while the models load) does not wait for it.
    Cancelling the caller leaves ``fn`` running; its outcome is then dropped."""
    loop = asyncio.get_running_loop()
    done: asyncio.Future[None] = loop.create_future()

    def settle(error: BaseException | None) -> None:
        if done.done():  # the caller was cancelled
            return
        if error is None:
            done.set_result(None)
        else:
            done.set_exception(error)

    def run() -> None:
        error: BaseException | None = None
        try:
            fn()
        except BaseException as exc:
            error = exc
        try:
            loop.call_soon_threadsafe(settle, error)
        except RuntimeError:  # the loop is closed: nobody waits any more
            pass

    threading.Thread(target=run, name="aiosys-warm-up", daemon=True).start()
    await done


def _card_files(directory: Path) -> list[tuple[ModelCard, Path]]:
    return load_card_files(directory) if directory.is_dir() else []


__all__ = ["App"]
