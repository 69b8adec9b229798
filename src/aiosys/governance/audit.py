"""The tamper-evident audit log: what is recorded, when, and how it is read back.

On by default, the embedded default too (``AuditSettings``). What is recorded:

- every effect a run makes through the gate that completes (``step``, ``model``,
  ``child_start``, and any kind added later), with its outcome (``ok`` or
  ``error:<Type>``); the kernel's own waits and reads (``sleep``, ``signal``,
  ``child_result``, ``now``) are not. The record is committed in the same transaction as
  the effect's record (``EffectCall.also_write``): no audited effect without its record,
  and the other way round. A replay returns recorded outcomes and records nothing again. A
  direct effect (outside a run) is appended before the call returns.
- human tasks (``aiosys.humans``): not their effect (``human_task``), but each step of the
  task, with the principal that took it, committed with the change it records:
  ``create_task`` and ``escalate_task`` (as the run's principal), ``claim_task``,
  ``release_task`` and ``complete_task`` (as the caller; a refused one is appended too).
- the run actions of the App: ``start_workflow``, ``signal_run``, ``cancel_run``,
  ``resume_run`` (``App`` in ``aiosys.app``). A start that creates a run has its record
  committed in the transaction that inserts the run (``start_writes``, a kernel start hook),
  its ``start_workflow`` decision folded in: one record, no run without it. The others (a
  start that returned an existing run, a refused one, a signal, cancel or resume) are
  appended after the action and before the call returns (``run_action``), batched with
  concurrent callers' (one transaction), with their decision folded in likewise.
- every policy decision handed to ``on_decision`` (``aiosys.governance`` policy). The
  decision of an audited run effect, allow or deny, is folded into that effect's own record
  (``decision``, ``policies``, ``policy_version``, and in ``detail`` the decision's
  ``policy_action``, ``policy_resource`` and ``cached``): one record per effect, committed
  with it (a denial: ``outcome`` ``error:PolicyDenied``). An effect asked more than once (a
  model call that may reach several models) has a record per decision beside its own; a
  start's decision is folded into the start's record; another client action's decision and
  a direct effect's are records of their own.

Appends form one chain (``audit_record``), checkpoints are signed (``audit_checkpoint``),
``verify`` and ``export`` read it back (``audit_verify``, ``audit_export``).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import os
import tomllib
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import IO, Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from ..errors import ConfigError, InvalidInput, PermissionDenied
from ..kernel.gate import EffectCall, Next
from ..kernel.principal import current_principal, principal_of_run
from ..store import Store
from ..store._text import check_identifier
from ..store.base import NewRun
from .audit_checkpoint import Checkpoint, Checkpointer
from .audit_effects import KEPT, EffectRecords
from .audit_export import extract as _extract
from .audit_keys import DEFAULT_KEY, default_signing_key, load_signing_key, load_verify_key
from .audit_record import AuditRecord, Scalar, micros
from .audit_verify import Report, verify_store
from .roles import allows

log = logging.getLogger("aiosys.audit")

#: Effect kinds not audited: the kernel's waits and reads (see the module docstring), and
#: human tasks, whose creation, claims, escalations and decision the inbox audits itself.
UNAUDITED = frozenset({"now", "sleep", "signal", "child_result", "human_task"})
#: ``call.meta`` key: the decisions made for a run's effect, that its record writes.
_DECISIONS = "audit_decisions"
DEFAULT_RECORDS = 1000
DEFAULT_SECONDS = 60.0
_TRUE, _FALSE = {"1", "true", "on", "yes"}, {"0", "false", "off", "no"}


@dataclass(slots=True)
class Starting:
    """A start being made in this task (``AuditLog.starting``): the policy decisions made
    for it, folded into its record."""

    decisions: list[Any] = field(default_factory=list)
    written: int = 0  # records start_writes handed to the run's creating transaction


_STARTING: ContextVar[Starting | None] = ContextVar("aiosys_audit_starting", default=None)


@dataclass(frozen=True, slots=True)
class AuditSettings:
    """``enabled``: on by default; ``key``: the PEM file of the Ed25519 key that signs
    checkpoints (None: the embedded default's, generated on first use); a checkpoint is
    written every ``checkpoint_records`` records or ``checkpoint_seconds`` seconds.

    ``resolve`` takes each from the argument, else the environment (``AIOSYS_AUDIT`` on/off,
    ``AIOSYS_AUDIT_KEY``, ``AIOSYS_AUDIT_CHECKPOINT_RECORDS``,
    ``AIOSYS_AUDIT_CHECKPOINT_SECONDS``), else ``[audit]`` in ./aiosys.toml (``enabled``,
    ``key``, ``checkpoint_records``, ``checkpoint_seconds``), else the default."""

    enabled: bool = True
    key: str | None = None
    checkpoint_records: int = 1000  # DEFAULT_RECORDS
    checkpoint_seconds: float = 60.0  # DEFAULT_SECONDS

    @classmethod
    def resolve(
        cls,
        enabled: bool | None = None,
        key: str | Path | None = None,
        checkpoint_records: int | None = None,
        checkpoint_seconds: float | None = None,
    ) -> AuditSettings:
        toml = _toml_audit()

        def pick(arg: Any, env: str, name: str) -> Any:
            if arg is not None:
                return arg
            if os.environ.get(env):
                return os.environ[env]
            return toml.get(name)

        on = pick(enabled, "AIOSYS_AUDIT", "enabled")
        if isinstance(on, str):
            if on.lower() not in _TRUE | _FALSE:
                raise ConfigError(f"audit enabled must be on or off, not {on!r}")
            on = on.lower() in _TRUE
        records = _number(
            pick(checkpoint_records, "AIOSYS_AUDIT_CHECKPOINT_RECORDS", "checkpoint_records"),
            int,
            "checkpoint_records",
        )
        seconds = _number(
            pick(checkpoint_seconds, "AIOSYS_AUDIT_CHECKPOINT_SECONDS", "checkpoint_seconds"),
            float,
            "checkpoint_seconds",
        )
        path = pick(key, "AIOSYS_AUDIT_KEY", "key")
        return cls(
            enabled=True if on is None else bool(on),
            key=None if path is None else str(path),
            checkpoint_records=DEFAULT_RECORDS if records is None else int(records),
            checkpoint_seconds=DEFAULT_SECONDS if seconds is None else float(seconds),
        )


def _number(value: Any, kind: type[int] | type[float], name: str) -> int | float | None:
    if value is None:
        return None
    try:
        number = kind(value)
    except (TypeError, ValueError):
        raise ConfigError(f"audit {name} must be a number, not {value!r}") from None
    if number <= 0:
        raise ConfigError(f"audit {name} must be more than 0, not {value!r}")
    return number


def _toml_audit() -> dict[str, Any]:
    path = Path("aiosys.toml")
    if not path.is_file():
        return {}
    try:
        with path.open("rb") as f:
            table = tomllib.load(f).get("audit", {})
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"aiosys.toml is not valid TOML: {exc}") from None
    if not isinstance(table, dict):
        raise ConfigError("aiosys.toml: [audit] must be a table")
    return table


class AuditLog:
    """The audit log of one app: ``app.audit``."""

    def __init__(
        self, store: Callable[[], Store], settings: AuditSettings | Callable[[], AuditSettings]
    ) -> None:
        """``settings``, or how to get them: resolved on first use (when the app opens), so
        the environment of that moment counts, not the one the app was made in."""
        self._store = store
        self._settings = settings
        self._signing: Ed25519PrivateKey | None = None
        self._pending: list[tuple[dict[str, Any], asyncio.Future[None]]] = []
        self._flushing: asyncio.Task[None] | None = None
        self._background: set[asyncio.Task[None]] = set()
        self._records = EffectRecords()
        self._enabled: bool | None = None

    @property
    def settings(self) -> AuditSettings:
        if not isinstance(self._settings, AuditSettings):
            self._settings = self._settings()
        return self._settings

    @cached_property
    def checkpointer(self) -> Checkpointer:
        s = self.settings
        return Checkpointer(
            self._store,
            self.signing_key,
            every=s.checkpoint_records,
            seconds=s.checkpoint_seconds,
        )

    @property
    def enabled(self) -> bool:
        on = self._enabled
        if on is None:  # resolved once (asked per effect)
            on = self._enabled = self.settings.enabled
        return on

    # ---- keys -------------------------------------------------------------------------

    def key_path(self) -> Path:
        """The signing key's file: the configured one, else the embedded default's
        (``audit_key.pem`` beside a SQLite store's file, else ``.aiosys/audit_key.pem``)."""
        if self.settings.key:
            return Path(self.settings.key)
        path = getattr(self._store(), "path", None)
        return Path(path).parent / DEFAULT_KEY.name if isinstance(path, Path) else DEFAULT_KEY

    def signing_key(self) -> Ed25519PrivateKey:
        if self._signing is None:
            path = self.key_path()
            self._signing = (
                load_signing_key(path) if self.settings.key else default_signing_key(path)
            )
        return self._signing

    def verify_key(self, path: str | Path | None = None) -> Ed25519PublicKey:
        """The public key checkpoints are checked with: ``path`` (a public or private PEM),
        else the configured or default key's public half."""
        if path is not None:
            return load_verify_key(path)
        if not self.settings.key and not self.key_path().exists():
            raise ConfigError(
                f"no audit key to verify with: {self.key_path()} does not exist; pass "
                "--public-key or configure audit_key"
            )
        return self.signing_key().public_key()

    async def _read_key(self, path: str | Path | None) -> Ed25519PublicKey:
        """The key ``verify`` and ``export`` check checkpoints with (``verify_key``). A new
        log (no record, no checkpoint) of the embedded default has no key yet, as none was
        needed: it is made now, as the first record would make it, so that an empty log
        verifies ``empty`` and exports an extract that verifies. A log with records whose
        key is gone stays a ``ConfigError``: a new key would check nothing."""
        if path is None and not self.settings.key and not self.key_path().exists():
            heads = await self._store().fetch("audit_head_counted", {})
            if heads and int(heads[0]["seq"]) == 0 and int(heads[0]["checkpoints"]) == 0:
                return self.signing_key().public_key()
        return self.verify_key(path)

    # ---- writing ----------------------------------------------------------------------

    async def interceptor(self, call: EffectCall, next: Next) -> Any:
        """The gate's ``audit`` interceptor (just inside the effect log, outside
        ``authorize``: the decisions made for the effect are folded into, or written beside,
        its record, whichever way it ends). A direct effect cancelled by its caller (an HTTP
        client that went away from a stream) is recorded as ``cancelled``; a run's effect
        that is cancelled leaves no record, as the effect log writes none."""
        on = self._enabled
        if on is None:
            on = self.enabled
        if not on or call.kind in UNAUDITED:
            return await next(call)
        call.meta[_DECISIONS] = []  # this interceptor writes the decisions made inside it
        try:
            out = await next(call)
        except Exception as exc:
            if call.run_execution is None:
                await self._direct_done(call, f"error:{type(exc).__name__}")
            else:
                self._effect_done(call, f"error:{type(exc).__name__}")
            raise
        except asyncio.CancelledError:
            if call.run_execution is None:
                try:
                    await self._direct_done(call, "cancelled")
                except Exception as exc:  # the caller's cancellation is what propagates
                    log.error("audit: a cancelled %s effect was not recorded: %s", call.kind, exc)
            raise
        if call.run_execution is None:
            await self._direct_done(call, "ok")
        else:
            self._effect_done(call, "ok")
        return out

    async def _direct_done(self, call: EffectCall, outcome: str) -> None:
        decisions: list[Any] = call.meta.pop(_DECISIONS, None) or []
        await self.append(
            self.effect_record(call, outcome, decisions[0] if len(decisions) == 1 else None)
        )

    def _effect_done(self, call: EffectCall, outcome: str) -> None:
        """A run's effect ended: its record (and any decisions beside it) go with the
        effect's record (``also_write``)."""
        decisions: list[Any] = call.meta.pop(_DECISIONS, None) or []
        at = micros(self._store().clock())
        if len(decisions) > 1:
            for decision in decisions:
                params = decision_record(decision, at).params()
                call.also_write("audit_append", params, self._committed)
        # One decision: the effect's own record carries it. Several (a model call that may
        # reach more than one model): each is a record of its own, beside the effect's.
        one = decisions[0] if len(decisions) == 1 else None
        call.also_write(
            "audit_append", self._effect_params(call, outcome, one, at), self._committed
        )

    def _effect_params(
        self, call: EffectCall, outcome: str, decision: Any, at: int
    ) -> dict[str, Any]:
        """``effect_record(...).params()``, rendered from a template (``audit_effects``)."""
        run = call.execution.run
        meta = call.meta
        kept = meta.get("record")
        kept = {k: kept[k] for k in KEPT if k in kept} if isinstance(kept, dict) else {}
        attempt = meta.get("attempt")
        try:
            return self._records.params(
                principal=principal_of_run(run).uid,
                tenant=run.tenant,
                kind=call.kind,
                name=call.name,
                workflow=run.workflow,
                kept=kept,
                attempt=None if attempt is None else int(attempt),
                decision=decision,
                outcome=outcome,
                run_id=run.id,
                seq=call.seq,
                at=at,
            )
        except TypeError:  # a kept value that is not hashable: the plain way
            return self.effect_record(call, outcome, decision, at).params()

    def _committed(self, committed: bool) -> None:
        if committed:
            self.checkpointer.note_appended()
            self.checkpointer.start()

    def effect_record(
        self, call: EffectCall, outcome: str, decision: Any = None, at: int | None = None
    ) -> AuditRecord:
        """The record of an effect that ended with ``outcome`` at ``at`` (microseconds; None:
        now); with ``decision`` (the policy decision that let it proceed, a ``Decision``)
        folded in."""
        ex = call.run_execution
        detail: dict[str, Scalar] = {"workflow": call.workflow}
        kept = call.meta.get("record")
        if isinstance(kept, dict):
            detail.update({k: kept[k] for k in KEPT if k in kept})
        if "attempt" in call.meta:
            detail["attempt"] = int(call.meta["attempt"])
        verdict, policies, version = _fold(detail, decision)
        return AuditRecord(
            principal=_run_principal(call),
            tenant=call.tenant,
            action=call.kind,
            resource=call.name,
            outcome=outcome,
            decision=verdict,
            policies=policies,
            policy_version=version,
            run_id=None if ex is None else ex.run.id,
            effect_seq=None if ex is None else call.seq,
            at=micros(self._store().clock()) if at is None else at,
            detail=detail,
        )

    @contextmanager
    def starting(self, start: Starting | None = None) -> Iterator[Starting]:
        """Around an App's start: the client policy decisions made for it in this task are
        collected (not appended on their own) and folded into the start's record, which
        ``start_writes`` commits with the run (or the caller appends with ``run_action``: an
        existing run, a refusal). ``start``: the ``Starting`` of the same start's admission,
        entered again around its commit (a start in two phases: ``App.publish``)."""
        start = Starting() if start is None else start
        token = _STARTING.set(start)
        try:
            yield start
        finally:
            _STARTING.reset(token)

    def start_writes(self, new: NewRun) -> list[tuple[str, dict[str, Any]]]:
        """The kernel's start hook: the ``start_workflow`` record of a start made inside
        ``starting``, as a statement the store commits in the transaction that inserts the
        run, written only if it is created (``audit_append_for_run``). Outside ``starting``
        (a child's start: its parent's effect records it), nothing."""
        start = _STARTING.get()
        if start is None or not self.enabled:
            return []
        at = micros(self._store().clock())
        records = self._action_records(
            "start_workflow",
            new.tenant,
            new.id,
            "created",
            {"workflow": new.workflow},
            start.decisions,
            at,
        )
        out = []
        for record in records:
            params = record.params()
            params["run_id"] = new.id
            out.append(("audit_append_for_run", params))
        start.written = len(out)
        return out

    def appended(self, n: int = 1) -> None:
        """``n`` records committed by a transaction of someone else's (``start_writes``'s)."""
        for _ in range(n):
            self._committed(True)

    async def run_action(
        self,
        action: str,
        *,
        tenant: str,
        run_id: str | None,
        outcome: str,
        detail: dict[str, Scalar] | None = None,
        decisions: list[Any] | None = None,
    ) -> None:
        """Append a run action of the App (``start_workflow``, ``signal_run``, ...), with
        the policy ``decisions`` made for it (one is folded into its record; several are
        records of their own beside it)."""
        at = micros(self._store().clock())
        records = self._action_records(
            action, tenant, run_id, outcome, detail or {}, decisions or [], at
        )
        await asyncio.gather(*(self.append(r) for r in records))

    async def admin_action(
        self,
        action: str,
        *,
        tenant: str,
        resource: str,
        outcome: str,
        detail: dict[str, Scalar] | None = None,
    ) -> None:
        """Append the record of an administrative action made by the bound principal (an
        API key created or revoked: ``create_key``, ``revoke_key``) and wait for its commit.
        Nothing when the audit log is off."""
        if not self.enabled:
            return
        await self.append(self._admin_record(action, tenant, resource, outcome, detail))

    async def key_action(self, action: str, key: Any) -> None:
        """The ``KeyAudit`` hook of ``Identity``: an API key ``key`` (a ``KeyInfo``) was
        created or revoked by the bound principal."""
        detail: dict[str, Scalar] = {"principal": key.principal, "kind": key.kind}
        detail["roles"] = ",".join(key.roles)
        if key.expires_at is not None:
            detail["expires_at"] = micros(key.expires_at)
        outcome = "created" if action == "create_key" else "revoked"
        await self.admin_action(
            action, tenant=key.tenant, resource=f"key:{key.id}", outcome=outcome, detail=detail
        )

    def note_admin_action(
        self,
        action: str,
        *,
        tenant: str,
        resource: str,
        outcome: str,
        detail: dict[str, Scalar] | None = None,
    ) -> None:
        """``admin_action`` from a synchronous listener (a policy set loaded or refused by
        a reload: ``load_policies``): appended in the background, a failure logged."""
        if not self.enabled:
            return
        record = self._admin_record(action, tenant, resource, outcome, detail)
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # a blocking reload outside any loop: nothing to append with
            log.warning("audit: %s %s (%s) not recorded: no event loop", action, resource, outcome)
            return
        task = loop.create_task(self._append_logged(record))
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    def _admin_record(
        self,
        action: str,
        tenant: str,
        resource: str,
        outcome: str,
        detail: dict[str, Scalar] | None,
    ) -> AuditRecord:
        principal = current_principal()
        if not principal.local and tenant != principal.tenant:
            raise PermissionDenied(f"{principal.uid} may not record an action in tenant {tenant!r}")
        return AuditRecord(
            principal=principal.uid,
            tenant=tenant,
            action=action,
            resource=resource,
            outcome=outcome,
            at=micros(self._store().clock()),
            detail=dict(detail or {}),
        )

    def _action_records(
        self,
        action: str,
        tenant: str,
        run_id: str | None,
        outcome: str,
        detail: dict[str, Scalar],
        decisions: list[Any],
        at: int,
    ) -> list[AuditRecord]:
        one = decisions[0] if len(decisions) == 1 else None
        detail = dict(detail)
        verdict, policies, version = _fold(detail, one)
        record = AuditRecord(
            principal=current_principal().uid,
            tenant=tenant,
            action=action,
            resource=f"run:{run_id}" if run_id else "run",
            outcome=outcome,
            decision=verdict,
            policies=policies,
            policy_version=version,
            run_id=run_id,
            at=at,
            detail=detail,
        )
        if one is not None or not decisions:
            return [record]
        return [decision_record(d, at) for d in decisions] + [record]

    def on_decision(self, decision: Any, call: EffectCall | None = None) -> None:
        """A policy decision (``principal``/``principal_uid``, ``tenant``, ``action``,
        ``resource``, ``decision``, ``policy_ids``/``policies``, ``policy_version``,
        ``run_id``, ``effect_seq``/``seq``, ``time``, and ``call``: the policy engine's
        ``Decision``). With the ``call`` of a run's effect (the argument, else the decision's
        own) it commits with that effect's record: folded into it when it is the effect's
        only decision and the ``audit`` interceptor wraps the call (see the module
        docstring), else as a record of its own. Else it is appended in the background.
        Subscribe it with ``app.policy.listen(app.audit.on_decision)``."""
        if not self.enabled:
            return
        if call is None:
            call = getattr(decision, "call", None)
            if not isinstance(call, EffectCall):
                call = None
        if call is None:
            start = _STARTING.get()
            if start is not None:  # a client decision of a start: folded into its record
                start.decisions.append(decision)
                return
        if call is not None and call.run_execution is not None and _DECISIONS in call.meta:
            # Made inside the interceptor, which writes it when the effect ends, however it
            # ends: folded into the effect's record, or beside it.
            call.meta[_DECISIONS].append(decision)
            return
        record = decision_record(decision, micros(self._store().clock()))
        if call is not None and not call.direct:
            call.also_write("audit_append", record.params(), self._committed)
            return
        task = asyncio.get_running_loop().create_task(self._append_logged(record))
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _append_logged(self, record: AuditRecord) -> None:
        try:
            await self.append(record)
        except Exception as exc:
            log.error("audit: a record could not be appended: %s", exc)

    async def append(self, record: AuditRecord) -> None:
        """Append ``record`` in its own transaction, shared with the records other callers
        append meanwhile (group commit); returns once it is committed."""
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._pending.append((record.params(), fut))
        if self._flushing is None or self._flushing.done():
            self._flushing = asyncio.get_running_loop().create_task(self._flush())
        await fut

    async def _flush(self) -> None:
        while self._pending:
            batch, self._pending = self._pending, []
            try:
                await self._store().execute_many("audit_append", [p for p, _ in batch])
            except Exception as exc:
                for _, fut in batch:
                    if not fut.done():
                        fut.set_exception(exc)
                continue
            for _, fut in batch:
                if not fut.done():
                    fut.set_result(None)
            self._committed(True)
            self.checkpointer.note_appended(len(batch) - 1)

    async def close(self) -> None:
        """Wait for background appends, then sign what this process appended."""
        # Tasks of this loop still running; a task left from an earlier event loop (the app
        # opened again under another one) is done already and cannot be awaited here.
        live = [t for t in (*self._background, self._flushing) if t is not None and not t.done()]
        if live:
            await asyncio.gather(*live, return_exceptions=True)
        self._flushing = None
        if "checkpointer" in self.__dict__:
            await self.checkpointer.stop()

    async def _seal(self) -> int:
        """Chain the records that wait to be, now, and return the head's position (records
        in the chain). On PostgreSQL a start's record commits with its run unchained
        (``audit_pending``) and is chained by the next append of any worker, the next
        checkpointer turn (at most ``min(1 s, seconds)`` in a process that wrote one), or
        this; ``verify`` and ``export`` call it first. On SQLite every record is chained as
        it is written."""
        rows = await self._store().fetch("audit_seal", {})
        # No head row (deleted: ``verify`` says so): nothing to chain onto.
        return int(rows[0]["seq"]) if rows and rows[0]["seq"] is not None else 0

    # ---- reading ----------------------------------------------------------------------

    async def checkpoint(self) -> Checkpoint | None:
        """Sign the head now if it moved since the last checkpoint (the local principal
        only: a checkpoint covers, and counts, every tenant's records)."""
        if not current_principal().local:
            raise PermissionDenied(
                "a checkpoint covers every tenant's records: local operator only"
            )
        return await self.checkpointer.checkpoint(force=True)

    async def verify(self, public_key: str | Path | None = None) -> Report:
        """Verify the whole log (the local principal only: it spans every tenant)."""
        if not current_principal().local:
            raise PermissionDenied(
                "verifying the whole audit log spans every tenant; export your tenant's "
                "records (aiosys audit export) and verify the extract"
            )
        await self._seal()  # first: records waiting to be chained count (PostgreSQL)
        key = await self._read_key(public_key)
        return await verify_store(self._store(), key)

    async def export(
        self,
        out: IO[str],
        *,
        since: dt.datetime | None = None,
        until: dt.datetime | None = None,
        tenant: str | None = None,
        public_key: str | Path | None = None,
        upto: int | None = None,
    ) -> dict[str, int]:
        """Write an extract (``audit_export``) to ``out``: the records from ``since`` to
        before ``until`` at positions up to ``upto`` (None: the head). A principal that is
        not the local one needs the role admin (``export_audit``) and exports only its own
        tenant's records (``PermissionDenied`` otherwise). ``InvalidInput`` for a ``since``
        not before ``until`` (an empty window: an extract of nothing). The counts of
        records, stubs and checkpoints written."""
        counts: dict[str, int] = {}
        lines = await self.extract(
            since=since, until=until, tenant=tenant, public_key=public_key, upto=upto, counts=counts
        )
        async for text in lines:
            out.write(text)
        return counts

    async def extract(
        self,
        *,
        since: dt.datetime | None = None,
        until: dt.datetime | None = None,
        tenant: str | None = None,
        public_key: str | Path | None = None,
        upto: int | None = None,
        counts: dict[str, int] | None = None,
    ) -> AsyncIterator[str]:
        """``export``'s extract as text read a page of the log at a time (the HTTP API
        streams it: an extract of any size is never held whole). The caller's rights and
        the window are checked now, raising as ``export`` does; the first piece (header and
        checkpoints) raises what refuses the extract itself (``ConfigError`` for a key that
        does not sign the log)."""
        principal = current_principal()
        if tenant is not None:
            check_identifier("tenant", tenant)
        # As timestamps, as the extract reads them (a naive time and an aware one compare).
        if since is not None and until is not None and not since.timestamp() < until.timestamp():
            raise InvalidInput(
                f"since ({since.isoformat()}) must be before until ({until.isoformat()}): the "
                "window [since, until) would be empty"
            )
        if not principal.local:
            if not allows(principal.roles, "export_audit"):
                has = ", ".join(sorted(principal.roles)) or "none"
                raise PermissionDenied(
                    f"{principal.uid} (roles: {has}) may not export audit records: that takes "
                    "the role admin"
                )
            if tenant is not None and tenant != principal.tenant:
                raise PermissionDenied(f"cannot export the audit records of tenant {tenant!r}")
            tenant = principal.tenant
        await self._seal()  # first: records waiting to be chained count (PostgreSQL)
        key = await self._read_key(public_key)
        return _extract(
            self._store(),
            key,
            since=None if since is None else micros(since.timestamp()),
            until=None if until is None else micros(until.timestamp()),
            tenant=tenant,
            upto=upto,
            counts=counts,
        )


def _fold(
    detail: dict[str, Scalar], decision: Any
) -> tuple[str | None, tuple[str, ...], str | None]:
    """A record's ``decision``, ``policies`` and ``policy_version`` from the policy
    ``decision`` folded into it (None: none), adding its action, resource and whether it
    was cached to ``detail``."""
    if decision is None:
        return None, (), None
    detail["policy_action"] = str(decision.action)
    detail["policy_resource"] = str(decision.resource)
    detail["cached"] = bool(getattr(decision, "cached", False))
    return (
        str(decision.decision),
        tuple(str(p) for p in decision.policies),
        str(decision.policy_version),
    )


def _run_principal(call: EffectCall) -> str:
    """Who an effect acts for: the principal that started its run, else (a direct effect)
    the caller's."""
    ex = call.run_execution
    return current_principal().uid if ex is None else principal_of_run(ex.run).uid


def decision_record(d: Any, now_us: int) -> AuditRecord:
    """An ``AuditRecord`` from a policy decision object (see ``AuditLog.on_decision``)."""

    def get(*names: str) -> Any:
        for name in names:
            value = getattr(d, name, None)
            if value is not None:
                return value
        return None

    principal = get("principal_uid", "principal")
    at = get("time", "at")
    if isinstance(at, dt.datetime):
        at = micros(at.timestamp())
    elif isinstance(at, int | float):
        at = micros(float(at)) if at < 1e11 else int(at)
    else:
        at = now_us
    seq = get("effect_seq", "seq")
    return AuditRecord(
        principal=str(getattr(principal, "uid", principal)),
        tenant=str(get("tenant") or "default"),
        action=str(get("action")),
        resource=str(get("resource")),
        decision=str(get("decision")),
        policies=tuple(str(p) for p in get("policy_ids", "policies") or ()),
        policy_version=None if get("policy_version") is None else str(get("policy_version")),
        run_id=get("run_id"),
        effect_seq=None if seq is None else int(seq),
        at=at,
    )
