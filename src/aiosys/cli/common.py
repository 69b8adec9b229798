"""What every command shares: locating the app and its store, parsing JSON options, and
turning aiosys errors into one line on stderr and an exit code (never a traceback)."""

from __future__ import annotations

import asyncio
import importlib
import json
import logging
import os
import sys
import tomllib
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, NoReturn, TypeVar

import typer
from rich.console import Console
from rich.markup import escape
from typer._click import exceptions as usage  # typer 0.29 carries its own click

from ..errors import AiosysError, InvalidInput, RunNotFound
from ..store._text import check_identifier
from .group import CommandGroup

if TYPE_CHECKING:
    from ..governance.audit import AuditLog
    from ..kernel import App, Principal
    from ..store import Store
    from ..store.base import EffectRow, RunRow

T = TypeVar("T")

err = Console(stderr=True, highlight=False)

# Off a terminal (a pipe, a CI log, a test) rich would assume 80 columns and fold tables;
# 140 keeps a run id and its row on one line. COLUMNS still wins.
PIPE_WIDTH = 140


def console() -> Console:
    """A console on stdout, made per command so it sees the stdout of this invocation."""
    wide = not sys.stdout.isatty() and "COLUMNS" not in os.environ
    return Console(highlight=False, width=PIPE_WIDTH if wide else None)


AppOption = Annotated[
    str | None,
    typer.Option("--app", help="The app as module:attribute (default: `app` in aiosys.toml)."),
]
StoreOption = Annotated[
    str | None,
    typer.Option("--store", help="Store URL (default: AIOSYS_STORE, aiosys.toml, or SQLite)."),
]
CreateFlag = Annotated[
    bool,
    typer.Option(
        "--create", help="Create the SQLite store's directory if it is missing (else refused)."
    ),
]
JsonFlag = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]

# Exit codes: 1 for an error aiosys reports (unknown workflow, run not found, ...),
# 2 for a malformed command line (typer's own usage errors use 2 as well).
EXIT_ERROR = 1
EXIT_USAGE = 2


def _toml_app() -> str | None:
    if not Path("aiosys.toml").is_file():
        return None
    with Path("aiosys.toml").open("rb") as f:
        try:
            value = tomllib.load(f).get("app")
        except tomllib.TOMLDecodeError as exc:
            raise AiosysError(f"aiosys.toml is not valid TOML: {exc}") from None
    return value if isinstance(value, str) and value else None


def use_store(app: App, store: str | None) -> App:
    """Point ``app`` at ``store`` (a URL from the command line) before it is opened."""
    if store:
        app.use_store(store)
    return app


def load_app(ref: str | None, store: str | None = None) -> App:
    """Import ``module:attribute``; the current directory is importable, as with uvicorn."""
    from ..kernel import App

    ref = ref or _toml_app()
    if not ref:
        raise AiosysError("no app given: pass --app module:attribute or set app = in aiosys.toml")
    module_name, _, attr = ref.partition(":")
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise AiosysError(f"cannot import app module {module_name!r}: {exc}") from None
    except SyntaxError as exc:
        where = f"{exc.filename}:{exc.lineno}" if exc.filename else module_name
        raise AiosysError(f"cannot import app module {module_name!r}: {where}: {exc.msg}") from None
    except Exception as exc:  # the module's own code failed while importing
        raise AiosysError(
            f"cannot import app module {module_name!r}: it raised {type(exc).__name__}: {exc}"
        ) from None
    if not hasattr(module, attr or "app"):
        raise AiosysError(f"module {module_name!r} has no attribute {attr or 'app'!r}")
    app = getattr(module, attr or "app")
    if not isinstance(app, App):
        raise AiosysError(f"{ref!r} is not an aiosys App (found {type(app).__name__})")
    return use_store(app, store)


def store_app(ref: str | None, store: str | None) -> App:
    """The app to reach the store with, for commands that only read or poke runs: the
    configured app when there is one (its store argument counts), else a bare ``App``
    (``aiosys.App``, so that what it does is audited like any app's)."""
    if ref or _toml_app():
        app = load_app(ref, store)
        if hasattr(app, "preload_models"):  # an aiosys.App: no model is called, no SDK import
            setattr(app, "preload_models", False)  # noqa: B010  (the kernel's App has none)
        return app
    from ..app import App as PublicApp  # the composition root: models, audit

    return PublicApp(store=store, preload_models=False)


def bare_store(ref: str | None, store: str | None) -> Store | None:
    """The store, not yet opened, that commands which only read runs (``runs list``,
    ``runs show``) may read directly, without importing the kernel or the model plane: when
    no app is configured and no credential given, the caller is the local principal with
    every right and a bare ``App`` would check nothing. None otherwise: the read must go
    through the app (``store_app``), its checks and the caller's tenant."""
    if ref or _toml_app() or has_credential():
        return None
    from ..store import open_store

    return open_store(store)


async def with_store(store: Store, fn: Callable[[Store], Awaitable[T]]) -> T:
    """Open ``store``, call ``fn`` with it, close it."""
    await store.open()
    try:
        return await fn(store)
    finally:
        await store.close()


async def get_run(store: Store, run_id: str, tenant: str | None) -> RunRow:
    """The run ``run_id`` (in ``tenant``, or any when None); ``RunNotFound`` as
    ``App.get_run`` raises it."""
    row = await store.get_run(run_id, tenant=tenant)
    if row is None:
        where = "" if tenant is None else f" in tenant {tenant!r}"
        raise RunNotFound(f"no run with id {run_id!r}{where}")
    return row


async def run_and_effects(
    store: Store, run_id: str, tenant: str | None
) -> tuple[RunRow, list[EffectRow]]:
    """A run and its effects, oldest first (``runs show``)."""
    row = await get_run(store, run_id, tenant)
    return row, await store.list_effects(run_id, tenant=tenant)


def progress_bar(*columns: Any, console: Console, show: bool) -> Any:
    """A transient rich ``Progress`` on ``console`` (stderr's) with ``columns`` when ``show``
    and the console is a terminal, else one that draws nothing. Not ``Progress(disable=True)``:
    rich prints a blank line when a progress stops on a console that is not interactive,
    disabled or not, which would come before a command's one ``error:`` line."""
    from rich.progress import Progress

    if show and console.is_interactive:
        return Progress(*columns, console=console, transient=True)
    return _NoProgress()


class _NoProgress:
    """``progress_bar``'s stand-in: the calls a command makes of a ``Progress``, drawing
    nothing."""

    def __enter__(self) -> _NoProgress:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def add_task(self, description: str, total: float | None = None, **fields: Any) -> int:
        return 0

    def advance(self, task: int, advance: float = 1) -> None:
        return None

    def update(self, task: int, **fields: Any) -> None:
        return None


def say(message: str) -> None:
    """One line on stderr, ``error: ...``."""
    err.print(f"[bold red]error:[/] {escape(message)}", soft_wrap=True)


def fail(message: str, code: int = EXIT_ERROR) -> NoReturn:
    """One line on stderr, ``error: ...``, and exit with ``code``."""
    say(message)
    raise typer.Exit(code)


class OneLineErrors(CommandGroup):
    """The root command group: a malformed command line (an unknown option, ``--limit abc``)
    is one ``error:`` line on stderr naming the fix and exit 2, like every other error of
    the command, instead of click's multi-line usage box."""

    def main(self, args: Any = None, standalone_mode: bool = True, **kw: Any) -> Any:  # type: ignore[override]
        if not standalone_mode:
            return super().main(args, standalone_mode=False, **kw)
        try:
            rv = super().main(args, standalone_mode=False, **kw)
        except usage.NoArgsIsHelpError as exc:
            typer.echo(exc.ctx.get_help() if exc.ctx else "")
            sys.exit(EXIT_USAGE)
        except usage.UsageError as exc:
            where = exc.ctx.command_path if exc.ctx else "aiosys"
            say(f"{exc.format_message()} (see {where} --help)")
            sys.exit(EXIT_USAGE)
        except usage.ClickException as exc:
            say(exc.format_message())
            sys.exit(exc.exit_code)
        except typer.Abort:
            say("aborted")
            sys.exit(EXIT_ERROR)
        sys.exit(rv if isinstance(rv, int) else 0)


def tenant_name(value: str | None) -> str | None:
    """The callback of every ``--tenant``: a tenant named empty (an unset shell variable),
    or holding a NUL or a lone surrogate, is a usage error (exit 2), as ``App`` refuses it;
    the local user's reads go to the store alone, where it would list nothing."""
    if value is not None:
        try:
            check_identifier("tenant", value)
        except InvalidInput as exc:
            raise typer.BadParameter(str(exc)) from None
    return value


def a_name(value: str | None) -> str | None:
    """The callback of a filter naming a workflow, model or run (``--workflow``): an empty
    one (an unset shell variable) is a usage error, not a filter that lists nothing."""
    if value is not None and not value:
        raise typer.BadParameter("it is empty: give a name, or leave the option out")
    return value


def parse_json(text: str | None, option: str) -> Any:
    """The value of a JSON option: the text itself, ``@path`` for a file's content, or ``-``
    for standard input; exit 2 naming the option (and the file) when it cannot be read or
    is not JSON."""
    if text is None:
        return None
    source = ""
    if text == "-":
        source, text = " (from stdin)", sys.stdin.read()
    elif text.startswith("@"):
        path = Path(text[1:])
        try:
            source, text = f" (from {path})", path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
            fail(f"{option} @{path}: cannot read {path}: {reason}", EXIT_USAGE)
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        shown = text if len(text) <= 200 else text[:199] + "…"
        fail(f"{option}{source} is not valid JSON ({exc}): {shown!r}", EXIT_USAGE)


def create_store_dir(app: App) -> None:
    """``--create``: make the directory of the app's SQLite store file if it is missing
    (without it, a store URL naming a missing directory is refused as a likely typo)."""
    from ..store.sqlite import create_parent

    url = getattr(app.store, "url", None)
    if isinstance(url, str):
        create_parent(url)


def run_async(fn: Callable[[], Awaitable[T]]) -> T:
    """Run a coroutine; an ``AiosysError`` (or an ``OSError``: a store file that cannot be
    created, a socket refused) becomes ``error: ...`` on stderr and exit 1."""

    async def main() -> T:
        return await fn()

    try:
        return asyncio.run(main())
    except BrokenPipeError:
        raise  # the reader left (`| head`): click ends quietly, no error line
    except (AiosysError, OSError) as exc:
        fail(str(exc))


# The credential every command acts with (``--api-key`` / ``AIOSYS_API_KEY``), set by the
# root command for each invocation; None: the local principal, with every right.
_credential: dict[str, str | None] = {"value": None}

ApiKeyOption = Annotated[
    str | None,
    typer.Option(
        "--api-key",
        envvar="AIOSYS_API_KEY",
        show_envvar=True,
        help="Act as this API key's (or bearer token's) principal, in its tenant with its "
        "roles. Default: the local principal, with every right.",
    ),
]


def set_credential(value: str | None) -> None:
    """The credential of this invocation. An empty one (``--api-key ""``, a script's unset
    variable) is refused: falling back to the local principal would grant every right."""
    if value is not None and not value.strip():
        fail(
            "--api-key is empty: give an API key or bearer token, or leave the option out "
            "to act as the local principal",
            EXIT_USAGE,
        )
    _credential["value"] = value


def has_credential() -> bool:
    return _credential["value"] is not None


async def caller(app: App) -> Principal | None:
    """The principal the command acts as, authenticated against ``app``'s (open) store;
    None for the local principal. ``AuthenticationFailed`` for a refused credential."""
    credential = _credential["value"]
    if credential is None:
        return None
    from ..governance.identity import Identity

    return await Identity(app.store).authenticate(credential)


@asynccontextmanager
async def as_caller(app: App) -> AsyncIterator[Principal | None]:
    """Bind the command's principal (``caller``) around the block; nothing without one."""
    principal = await caller(app)
    if principal is None:
        yield None
        return
    from ..kernel import bind_principal

    if "roles" not in app.checks.names:  # a bare kernel App (no app configured)
        from ..governance.roles import check_roles

        app.add_check("roles", check_roles, local=False)
    with bind_principal(principal):
        yield principal


async def with_opened(app: App, fn: Callable[[App], Awaitable[T]]) -> T:
    """Open the app's store (no worker), call ``fn`` as the command's principal, close it."""
    await app.open()
    try:
        async with as_caller(app):
            return await fn(app)
    finally:
        await app.close()


def echo_json(value: Any) -> None:
    """JSON on stdout, unwrapped and uncoloured so that it pipes into ``jq``."""
    typer.echo(json.dumps(value, indent=2, ensure_ascii=False, default=str))


def audit_log(a: App) -> AuditLog:
    """The app's audit log, or for a kernel-only app (no governance layer composed) one
    over its store with the configured settings."""
    from ..governance.audit import AuditLog, AuditSettings

    found = getattr(a, "audit", None)
    if isinstance(found, AuditLog):
        return found
    return AuditLog(lambda: a.store, AuditSettings.resolve())


def exit_past_step_threads(log: logging.Logger, who: str) -> None:
    """After a drain: if sync steps still run on pool threads, exit 0 now. A thread cannot
    be stopped, and Python waits for pool threads at exit; their runs were given back
    already, and what they do now is not recorded."""
    from ..kernel.step_threads import running_on_threads

    threads = running_on_threads()
    if threads:
        log.warning(
            "%s: %d sync step(s) still running on threads; exiting without waiting for "
            "them (their runs were given back)",
            who,
            threads,
        )
        logging.shutdown()
        os._exit(0)
