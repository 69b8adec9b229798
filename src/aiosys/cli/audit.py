"""``aiosys audit verify|export|checkpoint``: check and extract the tamper-evident audit log.

``verify`` prints one line and exits 0 when the log (or an extract, ``--file``) is intact,
1 when it is not, naming the first bad record, and 3 when an extract is consistent but was
checked only against the key its own header declares (no ``--public-key``, no configured
key): that proves nothing, since a forger re-signs with a key of their own. ``--json`` prints
that line as a JSON object (``status``: ``intact``, ``empty``, ``broken`` or ``unpinned``).

``export --format ai-act`` writes the AI Act evidence of a workflow's uses over a period into
a directory (``aiosys.governance.ai_act``); a bad request (no such workflow, a period that
ends before it starts, a date that is not one, a missing option) is exit 2.
"""

from __future__ import annotations

import datetime as dt
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.markup import escape

from .common import (
    EXIT_USAGE,
    AppOption,
    JsonFlag,
    StoreOption,
    audit_log,
    err,
    fail,
    run_async,
    store_app,
    tenant_name,
    with_opened,
)
from .group import CommandGroup

if TYPE_CHECKING:  # imported by the commands when they run: `aiosys runs list` stays light
    from ..governance.ai_act import Evidence
    from ..governance.ai_act_verify import AiActReport
    from ..governance.audit_verify import Report
    from ..kernel import App

EXIT_UNPINNED = 3  # an extract consistent only with the key it declares itself
FORMATS = ("audit", "ai-act")

audit = typer.Typer(
    help="The tamper-evident audit log: verify, export, checkpoint.", cls=CommandGroup
)

PublicKeyOption = Annotated[
    Path | None,
    typer.Option(
        "--public-key",
        help="PEM file of the key checkpoints are checked with (default: the configured "
        "audit key's public half). For --file without either, the extract is checked "
        "against the key it carries and, consistent, is reported unpinned (exit 3), not "
        "intact.",
    ),
]


def _when(text: str | None, option: str) -> dt.datetime | None:
    """An ISO 8601 date or time; UTC when it names no zone."""
    if text is None:
        return None
    try:
        value = dt.datetime.fromisoformat(text)
    except ValueError:
        fail(f"{option} {text!r} is not an ISO 8601 date or time (e.g. 2025-01-31T12:00)", 2)
    return value if value.tzinfo else value.replace(tzinfo=dt.UTC)


def _read(file: Path) -> str:
    try:
        return file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        fail(f"cannot read {file}: {reason}")


def _print(report: Report | AiActReport, json_: bool) -> None:
    typer.echo(json.dumps(report.as_dict()) if json_ else report.line())
    if report.problem is not None:
        raise typer.Exit(1)
    if not report.pinned:
        raise typer.Exit(EXIT_UNPINNED)


@audit.command("verify")
def verify(
    file: Annotated[
        Path | None, typer.Option("--file", help="Verify this extract (aiosys audit export).")
    ] = None,
    public_key: PublicKeyOption = None,
    json_: JsonFlag = False,
    app: AppOption = None,
    store: StoreOption = None,
) -> None:
    """Check the chain and the signed checkpoints; name the first bad record.

    --file takes an audit extract, or an AI Act extract (ai-act-extract.jsonl, with the audit
    extract beside it): its cited checkpoint, records and persons' decisions are checked
    against the signed audit records."""
    if file is not None:
        lines = _read(file).splitlines()

        async def check_file() -> Report | AiActReport:
            log = audit_log(store_app(app, store))
            key = None  # none pinned: the key the extract carries, reported unpinned
            if public_key is not None or log.settings.key or log.key_path().exists():
                key = log.verify_key(public_key)
            from ..governance.ai_act_verify import audit_file, is_ai_act_extract, verify_ai_act

            if lines and is_ai_act_extract(lines[0]):  # its audit extract lies beside it
                beside = file.parent / audit_file(lines[0])
                return verify_ai_act(lines, _read(beside), key)
            from ..governance.audit_export import verify_extract

            return verify_extract(lines, key)

        _print(run_async(check_file), json_)
        return

    async def body(a: App) -> Report:
        return await audit_log(a).verify(public_key)

    _print(run_async(lambda: with_opened(store_app(app, store), body)), json_)


@audit.command("export")
def export(
    from_: Annotated[
        str | None, typer.Option("--from", help="Records at or after this time (ISO 8601).")
    ] = None,
    to: Annotated[
        str | None, typer.Option("--to", help="Records before this time (ISO 8601).")
    ] = None,
    tenant: Annotated[
        str | None, typer.Option("--tenant", callback=tenant_name, help="Only this tenant's.")
    ] = None,
    output: Annotated[
        Path | None,
        typer.Option(
            "--output",
            "-o",
            help="Write to this file (default: stdout); with --format ai-act, the directory "
            "to write the evidence into (made if missing).",
        ),
    ] = None,
    public_key: PublicKeyOption = None,
    format_: Annotated[
        str,
        typer.Option(
            "--format",
            help="audit: the audit log's records (JSON Lines); ai-act: the AI Act evidence of "
            "--workflow from --from to --to, written into the directory --output (the "
            "Article 12 extract, its audit extract and an Annex IV draft).",
        ),
    ] = "audit",
    workflow: Annotated[
        str | None,
        typer.Option("--workflow", help="With --format ai-act: the workflow whose uses to list."),
    ] = None,
    app: AppOption = None,
    store: StoreOption = None,
) -> None:
    """Write records as JSON Lines with the checkpoints that verify them, or AI Act evidence.

    --format ai-act writes the AI Act evidence of a workflow's uses over a period into the
    directory --output: the Article 12 extract, its audit extract and an Annex IV draft."""
    if format_ not in FORMATS:
        fail(f"--format must be one of {', '.join(FORMATS)}, not {format_!r}", EXIT_USAGE)
    since, until = _when(from_, "--from"), _when(to, "--to")
    if since is not None and until is not None and since >= until:
        fail("--from must be before --to", EXIT_USAGE)
    if format_ == "ai-act":
        _export_ai_act(workflow, since, until, tenant, output, public_key, app, store)
        return
    if workflow is not None:
        fail("--workflow is for --format ai-act", EXIT_USAGE)

    async def body(a: App) -> dict[str, Any]:
        log = audit_log(a)
        if output is None:
            return await log.export(
                sys.stdout, since=since, until=until, tenant=tenant, public_key=public_key
            )
        try:
            with output.open("w", encoding="utf-8") as out:
                return await log.export(
                    out, since=since, until=until, tenant=tenant, public_key=public_key
                )
        except OSError as exc:
            fail(f"cannot write {output}: {exc.strerror or exc}")

    counts = run_async(lambda: with_opened(store_app(app, store), body))
    if output is not None:
        err.print(
            f"exported {counts['records']} records, {counts['stubs']} stubs and "
            f"{counts['checkpoints']} checkpoints to {output}",
            soft_wrap=True,
        )


def _export_ai_act(
    workflow: str | None,
    since: dt.datetime | None,
    until: dt.datetime | None,
    tenant: str | None,
    output: Path | None,
    public_key: Path | None,
    app: str | None,
    store: str | None,
) -> None:
    missing = [
        name
        for name, value in (
            ("--workflow", workflow),
            ("--from", since),
            ("--to", until),
            ("--output (a directory)", output),
        )
        if value is None
    ]
    if missing:
        fail(f"--format ai-act needs {', '.join(missing)}", EXIT_USAGE)
    assert workflow is not None and since is not None and until is not None
    assert output is not None
    if output.exists() and not output.is_dir():
        fail(f"--output {output} is a file: --format ai-act writes a directory", EXIT_USAGE)

    async def body(a: App) -> Evidence:
        from ..errors import InvalidInput, UnknownWorkflow
        from ..governance.ai_act import AiAct

        found = getattr(a, "ai_act", None)
        evidence = found if isinstance(found, AiAct) else AiAct(a)  # a kernel-only app
        try:
            return await evidence.export(
                workflow, since=since, until=until, tenant=tenant, public_key=public_key
            )
        except (UnknownWorkflow, InvalidInput) as exc:
            fail(str(exc), EXIT_USAGE)

    found = run_async(lambda: with_opened(store_app(app, store), body))
    try:
        paths = found.write(output)
    except OSError as exc:
        fail(f"cannot write {output}: {exc.strerror or exc}")
    h, cp = found.header, found.checkpoint
    err.print(
        f"exported the AI Act evidence of {workflow}: {h['uses']} uses, "
        f"{len(h['persons'])} persons, under audit checkpoint {cp.n} (records 1 to {cp.seq}); "
        + ", ".join(escape(str(p)) for p in paths.values()),
        soft_wrap=True,
    )


@audit.command("checkpoint")
def checkpoint(app: AppOption = None, store: StoreOption = None) -> None:
    """Sign the chain's head now (workers also do it every N records or T seconds)."""

    async def body(a: App) -> str:
        cp = await audit_log(a).checkpoint()
        if cp is None:
            return "nothing to sign: the last checkpoint covers every record"
        return f"checkpoint {cp.n}: {cp.seq} records, head {cp.hash[:16]}..., key {cp.key}"

    typer.echo(run_async(lambda: with_opened(store_app(app, store), body)))
