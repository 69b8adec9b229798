"""``aiosys keys create|list|revoke``: API keys of tenants' principals.

A key is printed once, when it is created; the store keeps only its keyed hash (see
``aiosys.governance.identity_keys``). Without ``AIOSYS_API_KEY`` these commands act as the
local operator (every tenant); with one, as its principal: an ``admin`` of its own tenant.
"""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich import box
from rich.table import Table

from ..errors import InvalidInput
from ..governance.identity import Identity
from ..governance.identity_keys import KeyInfo
from ..kernel.principal import PRINCIPAL_KINDS
from .common import (
    EXIT_USAGE,
    AppOption,
    JsonFlag,
    StoreOption,
    audit_log,
    console,
    echo_json,
    err,
    fail,
    run_async,
    store_app,
    tenant_name,
    with_opened,
)
from .group import CommandGroup

if TYPE_CHECKING:
    from ..kernel import App

keys = typer.Typer(help="API keys: create (shown once), list, revoke.", cls=CommandGroup)


def _lifetime(text: str) -> float | None:
    """Seconds a key lives: ``90d``, ``12h``, ``30m``, ``2w``, ``45s``; ``never``: None."""
    if text == "never":
        return None
    from ..durations import TooLong, parse_duration

    try:
        seconds = parse_duration(text)
    except TooLong as exc:
        fail(f"--expires {exc}", 2)
    except ValueError:
        seconds = 0.0
    if seconds <= 0:
        fail(f"--expires {text!r}: use a positive duration such as 90d, 12h, 2w, or never", 2)
    return seconds


def _when(t: float | None) -> str:
    if t is None:
        return "-"
    return dt.datetime.fromtimestamp(t, dt.UTC).strftime("%Y-%m-%d %H:%M")


def _info_dict(info: KeyInfo, now: float) -> dict[str, Any]:
    return {
        "id": info.id,
        "tenant": info.tenant,
        "principal": info.principal,
        "kind": info.kind,
        "roles": list(info.roles),
        "created_at": info.created_at,
        "expires_at": info.expires_at,
        "revoked_at": info.revoked_at,
        "status": info.status(now),
    }


@keys.command("create")
def create(
    tenant: Annotated[str, typer.Option("--tenant", help="The key's tenant.")],
    principal: Annotated[str, typer.Option("--principal", help="Its principal's id.")],
    kind: Annotated[
        str, typer.Option("--kind", help=f"The principal's kind: {', '.join(PRINCIPAL_KINDS)}.")
    ] = "user",
    role: Annotated[
        list[str] | None,
        typer.Option(
            "--role",
            help="Grant this role in the tenant (repeatable): admin, operator, runner, viewer.",
        ),
    ] = None,
    expires: Annotated[
        str, typer.Option("--expires", help="Lifetime: 90d, 12h, 2w, ... or never.")
    ] = "90d",
    json_: JsonFlag = False,
    app: AppOption = None,
    store: StoreOption = None,
) -> None:
    """Create an API key for a principal of a tenant; print it ONCE (it cannot be shown
    again: the store keeps only its keyed hash)."""
    if kind not in PRINCIPAL_KINDS:
        fail(f"--kind must be one of {', '.join(PRINCIPAL_KINDS)}, not {kind!r}", EXIT_USAGE)
    lifetime = _lifetime(expires)

    async def body(a: App) -> Any:
        try:  # a bad --tenant or --principal (empty, outer spaces) is a usage error
            await a.authorize("manage_keys", tenant=tenant)
            ids = Identity(a.store, jwt=False, audit=audit_log(a).key_action)
            return await ids.keys.create(
                tenant, principal, kind=kind, roles=role or (), expires_in=lifetime
            )
        except InvalidInput as exc:
            fail(str(exc), EXIT_USAGE)

    new = run_async(lambda: with_opened(store_app(app, store), body))
    info = new.info
    if json_:
        echo_json({"key": new.key, **_info_dict(info, info.created_at)})
        return
    typer.echo(new.key)
    err.print(
        f"key {info.id} for {info.kind} {info.principal!r} of tenant {info.tenant!r} "
        f"(roles: {', '.join(info.roles)}; expires: {_when(info.expires_at)} UTC). "
        "It is shown this once: store it now.",
        markup=False,
        soft_wrap=True,
    )


@keys.command("list")
def list_keys(
    tenant: Annotated[
        str | None,
        typer.Option(
            "--tenant",
            callback=tenant_name,
            help="Only this tenant's (default: all, or the API key's).",
        ),
    ] = None,
    json_: JsonFlag = False,
    app: AppOption = None,
    store: StoreOption = None,
) -> None:
    """List API keys (never their secret), oldest first."""

    async def body(a: App) -> tuple[list[KeyInfo], float]:
        whose = await a.authorize("manage_keys", tenant=tenant)
        ids = Identity(a.store, jwt=False, audit=audit_log(a).key_action)
        return await ids.keys.list(whose), ids.keys.clock()

    infos, now = run_async(lambda: with_opened(store_app(app, store), body))
    if json_:
        echo_json([_info_dict(i, now) for i in infos])
        return
    t = Table(box=box.SIMPLE_HEAD)
    for col in ("id", "tenant", "principal", "kind", "roles", "created", "expires", "status"):
        t.add_column(col)
    for i in infos:
        t.add_row(
            i.id,
            i.tenant,
            i.principal,
            i.kind,
            ", ".join(i.roles),
            _when(i.created_at),
            _when(i.expires_at),
            i.status(now),
        )
    console().print(t)


@keys.command("revoke")
def revoke(
    key_id: Annotated[str, typer.Argument(help="The key's id (as `aiosys keys list` shows).")],
    json_: JsonFlag = False,
    app: AppOption = None,
    store: StoreOption = None,
) -> None:
    """Revoke an API key: it is refused from now on."""

    async def body(a: App) -> tuple[KeyInfo, float, bool]:
        whose = await a.authorize("manage_keys")
        ids = Identity(a.store, jwt=False, audit=audit_log(a).key_action)
        before = await ids.keys.get(key_id)
        already = before is not None and before.revoked_at is not None
        return await ids.keys.revoke(key_id, tenant=whose), ids.keys.clock(), already

    info, now, already = run_async(lambda: with_opened(store_app(app, store), body))
    if json_:
        echo_json(_info_dict(info, now))
        return
    if already and info.revoked_at is not None:  # revoking again keeps the first time
        when = dt.datetime.fromtimestamp(info.revoked_at, dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
        said = f"key {info.id} of tenant {info.tenant!r} was revoked already, at {when}"
    else:
        said = f"key {info.id} of tenant {info.tenant!r} revoked"
    console().print(said, markup=False)
