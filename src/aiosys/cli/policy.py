"""``aiosys policy check|validate|reload``: ask the Cedar policies without running anything.

The policy directory is ``--dir``, else ``AIOSYS_POLICIES_DIR``, else ``./policies``.
``check`` answers allow or deny for one request and names the deciding policies with their
file, line and text (exit 0 allow, 3 deny); ``validate`` loads the directory as a worker
would (a broken file: its file, line and reason, exit 1; with ``--json``, as
``{"ok": false, "errors": [{"file", "line", "reason"}]}``); ``reload`` validates and then
touches the schema file, so every process polling the directory loads the new set within
its poll interval (2 s).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape

from ..errors import ConfigError, InvalidInput, PolicyDenied
from ..governance.policy_files import SCHEMA_FILE, policies_dir
from ..kernel.principal import LOCAL, PRINCIPAL_KINDS, Principal
from .common import EXIT_USAGE, JsonFlag, console, echo_json, fail, parse_json
from .group import CommandGroup

policy = typer.Typer(
    help="Cedar policies: check a request, validate, reload.",
    no_args_is_help=True,
    cls=CommandGroup,
)

EXIT_DENY = 3

DirOption = Annotated[
    Path | None,
    typer.Option("--dir", help="The policy directory (default: AIOSYS_POLICIES_DIR, ./policies)."),
]
RESOURCE_TYPES = {
    t.lower(): t for t in ("Model", "Workflow", "Run", "Connector", "Dataset", "Task", "HumanTask")
}


def _engine(option: Path | None, json_: bool = False) -> Any:
    """The engine of the policy directory; a set that does not load is one ``error:`` line,
    or with ``json_`` ``{"ok": false, "errors": [{"file", "line", "reason"}]}`` on stdout
    (the first error found; ``line`` 0 when unknown, ``file`` null when there is none),
    exit 1."""
    from ..governance.policy import PolicyEngine
    from ..governance.policy_files import PolicyFileError

    try:
        directory = policies_dir(option)
        if directory is None:
            raise ConfigError(
                "no policy directory: pass --dir, set AIOSYS_POLICIES_DIR or create ./policies"
            )
        return PolicyEngine.from_dir(directory)
    except ConfigError as exc:
        if not json_:
            fail(str(exc))
        if isinstance(exc, PolicyFileError):
            error = {"file": exc.file, "line": exc.line, "reason": exc.reason}
        else:
            error = {"file": None, "line": 0, "reason": str(exc)}
        echo_json({"ok": False, "errors": [error]})
        raise typer.Exit(1) from None


def _principal(text: str, roles: list[str]) -> Principal:
    """``local``, ``tenant/id`` (a user) or ``kind:tenant/id``."""
    if text == "local":
        return LOCAL
    kind, _, rest = text.rpartition(":") if ":" in text else ("user", "", text)
    tenant, _, ident = rest.partition("/")
    if kind not in PRINCIPAL_KINDS or not tenant or not ident:
        fail(
            f"--principal {text!r}: expected local, TENANT/ID or KIND:TENANT/ID "
            f"(KIND one of {', '.join(PRINCIPAL_KINDS)})",
            EXIT_USAGE,
        )
    return Principal(id=ident, tenant=tenant, kind=kind, roles=frozenset(roles))


def _resource(text: str, extra: dict[str, Any], models_dir: Path | None) -> Any:
    from ..governance.policy_entities import model_entity, resource_entity

    kind, _, ident = text.partition(":")
    type_ = RESOURCE_TYPES.get(kind.lower())
    if type_ is None or not ident:
        known = ", ".join(RESOURCE_TYPES)
        fail(f"--resource {text!r}: expected TYPE:ID with TYPE one of {known}", EXIT_USAGE)
    if type_ != "Model":
        return resource_entity(type_, ident, extra)
    from ..models.catalog import ModelCard
    from ..models.catalog_files import load_card_files

    directory = models_dir or Path(os.environ.get("AIOSYS_MODELS_DIR") or "models")
    cards = {c.id: c for c, _ in load_card_files(directory)} if directory.is_dir() else {}
    card = cards.get(ident)
    if card is None:
        if not extra:
            fail(
                f"no model card {ident!r} under {directory}: give its attributes with "
                "--resource-attrs '{\"external\": true, ...}'"
            )
        card = ModelCard(id=ident, provider="unknown")
    fields = {"residency": "data_residency"}
    updates = {fields.get(k, k): v for k, v in extra.items()}
    try:
        card = ModelCard.model_validate({**card.model_dump(), **updates})
    except ValueError as exc:
        fail(f"--resource-attrs: {' '.join(str(exc).split())}", EXIT_USAGE)
    return model_entity(card)


@policy.command()
def check(
    principal: Annotated[
        str, typer.Option("--principal", help="local, TENANT/ID or KIND:TENANT/ID.")
    ],
    action: Annotated[str, typer.Option("--action", help="call_model, start_workflow, ...")],
    resource: Annotated[
        str, typer.Option("--resource", help="TYPE:ID, e.g. model:gpt-4o, workflow:intake.")
    ],
    role: Annotated[
        list[str] | None, typer.Option("--role", help="A role of the principal (repeat).")
    ] = None,
    context: Annotated[
        str | None,
        typer.Option(
            "--context",
            help='JSON: {"classification": "confidential", "tenant": ..., "task": ...}.',
        ),
    ] = None,
    resource_attrs: Annotated[
        str | None,
        typer.Option("--resource-attrs", help="JSON: the resource's attributes (or overrides)."),
    ] = None,
    directory: DirOption = None,
    models_dir: Annotated[
        Path | None,
        typer.Option(
            "--models-dir", help="Model card files (default: AIOSYS_MODELS_DIR, ./models)."
        ),
    ] = None,
    json_: JsonFlag = False,
) -> None:
    """Would the policies allow this request? Names the deciding policies; runs nothing."""
    from ..governance.policy import CLIENT_ACTIONS
    from ..governance.policy_entities import (
        PolicyRequest,
        Ref,
        attrs,
        classification,
        principal_entity,
        resource_entity,
    )

    ctx = parse_json(context, "--context") or {}
    extra = parse_json(resource_attrs, "--resource-attrs") or {}
    for name, value in (("--context", ctx), ("--resource-attrs", extra)):
        if not isinstance(value, dict):
            fail(f"{name} must be a JSON object", EXIT_USAGE)
    engine = _engine(directory)
    who = _principal(principal, role or [])
    target = _resource(resource, extra, models_dir)
    values: dict[str, Any] = {"tenant": who.tenant, **ctx}
    entities: list[Any] = []
    try:
        if action not in CLIENT_ACTIONS:
            values["classification"] = classification(values.get("classification"))
            for key, type_ in (("workflow", "Workflow"), ("task", "Task")):
                named = values.get(key)
                if isinstance(named, dict) and isinstance(named.get("id"), str):
                    # {"id": "intake", "high_risk": true}: the entity, with its attributes
                    rest = {k: v for k, v in named.items() if k != "id"}
                    entities.append(resource_entity(type_, named["id"], rest))
                    named = named["id"]
                if isinstance(named, str):
                    values[key] = Ref(type_, named)
        frozen = attrs(values)
    except (InvalidInput, PolicyDenied, TypeError) as exc:
        fail(f"--context: {exc}", EXIT_USAGE)
    request = PolicyRequest(principal_entity(who), action, target, frozen, tuple(entities))
    explained = engine.explain(request)
    verdict = explained.verdict
    malformed = [e for e in verdict.errors if e.startswith("failed to build request")]
    if malformed:  # not a decision: Cedar could not even pose the question
        fail(f"the request does not fit the policy schema: {malformed[0]}", EXIT_USAGE)
    decision = "allow" if verdict.allowed else "deny"
    if json_:
        echo_json(
            {
                "decision": decision,
                "policy_version": explained.policy_version,
                "policies": [
                    {"id": p.id, "effect": p.effect, "file": p.file, "line": p.line, "text": p.text}
                    for p in explained.policies
                ],
                "errors": list(verdict.errors),
                "approval": None if explained.approval is None else explained.approval.as_dict(),
                "request": explained.request.cedar(),
            }
        )
    else:
        out = console()
        colour = "green" if verdict.allowed else "red"
        out.print(f"[bold {colour}]{decision}[/]  {escape(action)} on {escape(target.uid)}")
        out.print(f"policy set {explained.policy_version} ({len(engine.policies)} policies)")
        if not explained.policies and not verdict.allowed:
            out.print("no policy permits it (Cedar denies by default)")
        approval = explained.approval
        if approval is not None:  # a workflow's effect would wait for it (humans.approval)
            chain = " -> ".join((approval.role, *approval.escalate_to))
            sla = "" if approval.sla is None else f", {approval.sla:g}s each"
            out.print(
                f"until a person approves it: a workflow's effect waits for a {escape(chain)}"
                f"{sla} (@approval; ask again with --context '{{\"approval\": ...}}')"
            )
        for p in explained.policies:
            out.print(f"\n[bold]{escape(p.id)}[/] ({p.effect}, {escape(p.file)}:{p.line})")
            out.print(escape(p.text), highlight=False)
        for e in verdict.errors:
            out.print(f"[yellow]error:[/] {escape(e)}")
    raise typer.Exit(0 if verdict.allowed else EXIT_DENY)


@policy.command()
def validate(directory: DirOption = None, json_: JsonFlag = False) -> None:
    """Load and validate the policies as a worker would; a broken file is named with its
    line and reason."""
    engine = _engine(directory, json_)
    _report(engine, json_, "valid")


@policy.command()
def reload(directory: DirOption = None, json_: JsonFlag = False) -> None:
    """Validate the policies, then make every process that polls them reload.

    It touches the schema file: every process polling the directory loads the set within its
    poll interval. A broken set is refused and nothing is touched."""
    engine = _engine(directory, json_)
    os.utime(engine.policies.directory / SCHEMA_FILE)
    _report(engine, json_, "reloaded")


def _report(engine: Any, json_: bool, what: str) -> None:
    loaded = engine.policies
    if json_:
        echo_json(
            {
                "ok": True,
                "directory": str(loaded.directory),
                "version": loaded.version,
                "policies": [
                    {"id": p.id, "effect": p.effect, "file": p.file, "line": p.line}
                    for p in loaded.policies.values()
                ],
            }
        )
        return
    console().print(
        f"{what}: {len(loaded)} policies in {escape(str(loaded.directory))}, "
        f"version {loaded.version}"
    )
