"""``aiosys models list|show|sync|delete|usage|shadows``: the model catalog, what it cost,
and what shadow models answered.

Where the cards come from: the store (what every worker sees, written by ``models sync``),
overlaid with the card files under ``--dir`` (default ``./models`` when that folder exists).
A file's card replaces the stored card of the same id and takes the aliases it claims, so
``list`` and ``show`` print the catalog as it will be once the files are synced; with no
card folder they print the store alone. Bad card files are errors, even for ``list``.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich import box
from rich.table import Table
from rich.text import Text

from .common import (
    EXIT_USAGE,
    AppOption,
    JsonFlag,
    StoreOption,
    console,
    echo_json,
    err,
    fail,
    progress_bar,
    run_async,
    store_app,
    tenant_name,
    with_opened,
)
from .group import CommandGroup

# The model plane (pydantic, the catalog) is imported by the commands that use it, not
# when the ``aiosys`` command starts: ``aiosys runs list`` never pays for it.
if TYPE_CHECKING:
    from ..kernel import App
    from ..models.catalog import ModelCard
    from ..models.catalog_files import CardSource
    from ..models.catalog_store import AliasMove, CardRecord

models = typer.Typer(
    help="The model catalog: list, show, sync and delete model cards; usage, cost, shadows.",
    cls=CommandGroup,
)

DirOption = Annotated[
    Path | None,
    typer.Option("--dir", help="Folder of model card files (default: ./models if it exists)."),
]
# Progress bars only pay off past a handful of files, and only on a terminal.
PROGRESS_FROM = 10

RISK_STYLE = {
    "minimal": "green",
    "low": "green",
    "medium": "yellow",
    "high": "red",
    "unacceptable": "bold red",
}


def _files(directory: Path | None) -> list[CardSource]:
    """The cards of ``--dir``; without it, of ./models if it exists, else none."""
    from ..models.catalog_files import DEFAULT_DIR, load_card_files

    if directory is None:
        if not DEFAULT_DIR.is_dir():
            return []
        directory = DEFAULT_DIR
    return load_card_files(directory)


async def _catalog(a: App, directory: Path | None) -> list[CardRecord]:
    from ..models.catalog_store import load_records, merge_cards

    files = _files(directory)  # first: a bad file is reported before the store is read
    merged, _ = merge_cards(await load_records(a.store), files)
    return merged


@models.command("list")
def list_models(
    directory: DirOption = None,
    limit: Annotated[int, typer.Option("--limit", min=1, help="At most this many cards.")] = 100,
    json_: JsonFlag = False,
    app: AppOption = None,
    store: StoreOption = None,
) -> None:
    """List the model cards, by id: the store's, overlaid with the card files.

    The store holds what `aiosys models sync` saved, which every worker sees. A card file
    under --dir (default ./models, if it exists) replaces the stored card of its id and
    takes the aliases it claims: the list is the catalog as it will be after a sync."""
    records = run_async(
        lambda: with_opened(store_app(app, store), lambda a: _catalog(a, directory))
    )
    cards = [card for card, _ in records][:limit]
    if json_:
        echo_json([card.model_dump(mode="json") for card in cards])
    else:
        console().print(_table(cards, len(records)))


@models.command("show")
def show(
    name: Annotated[str, typer.Argument(help="The model's id, id@version, or an alias.")],
    json_: JsonFlag = False,
    markdown: Annotated[
        bool, typer.Option("--markdown", help="Print the model card as Markdown.")
    ] = False,
    directory: DirOption = None,
    app: AppOption = None,
    store: StoreOption = None,
) -> None:
    """Show one model card (rendered), or print it as JSON or Markdown.

    The card is looked up by id, id@version or alias among the stored cards overlaid with
    the card files, as `aiosys models list` shows them."""
    if json_ and markdown:
        fail("--json and --markdown cannot be used together", EXIT_USAGE)

    from ..models.card_markdown import card_to_markdown
    from ..models.catalog_store import find_card

    async def body(a: App) -> ModelCard:
        return find_card([card for card, _ in await _catalog(a, directory)], name)

    card = run_async(lambda: with_opened(store_app(app, store), body))
    if json_:
        echo_json(card.model_dump(mode="json"))
    elif markdown:
        typer.echo(card_to_markdown(card), nl=False)
    else:
        from rich.markdown import Markdown

        console().print(Markdown(card_to_markdown(card)))


@models.command("sync")
def sync(
    directory: DirOption = None,
    json_: JsonFlag = False,
    app: AppOption = None,
    store: StoreOption = None,
) -> None:
    """Load the card files under --dir and save them into the store.

    A saved card replaces the stored card of its id; an alias it claims is taken from the
    stored card holding it. Stored cards without a file are kept."""
    from rich.progress import BarColumn, MofNCompleteColumn, TextColumn

    from ..errors import ConfigError
    from ..models.catalog_files import DEFAULT_DIR, card_paths, check_catalog, load_card_file
    from ..models.catalog_store import save_cards

    folder = directory or DEFAULT_DIR

    async def body(a: App) -> tuple[list[CardSource], list[AliasMove]]:
        await a.authorize("manage_catalog")
        paths = card_paths(folder)
        if not paths:
            raise ConfigError(f"no model card files (*.toml, *.yaml, *.yml) in {folder}")
        with progress_bar(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            console=err,
            show=len(paths) >= PROGRESS_FROM,
        ) as progress:
            reading = progress.add_task("reading card files", total=len(paths))
            cards: list[CardSource] = []
            for path in paths:
                cards.extend((card, path) for card in load_card_file(path))
                progress.advance(reading)
            check_catalog(cards)
            saving = progress.add_task("saving into the store", total=len(cards))
            moves = await save_cards(a.store, cards, progress=lambda _: progress.advance(saving))
        return cards, moves

    cards, moves = run_async(lambda: with_opened(store_app(app, store), body))
    if json_:
        echo_json(
            {
                "synced": [{"id": c.id, "version": c.version, "source": str(p)} for c, p in cards],
                "moved_aliases": [
                    {"alias": m.alias, "from": m.from_id, "to": m.to_id} for m in moves
                ],
            }
        )
        return
    out = console()
    plural = "s" if len(cards) != 1 else ""
    out.print(f"synced {len(cards)} model card{plural} from {folder} into the store", markup=False)
    for m in moves:
        out.print(f"alias {m.alias!r} moved from {m.from_id} to {m.to_id}", markup=False)


@models.command("delete")
def delete(
    name: Annotated[str, typer.Argument(help="The model's id, id@version, or an alias.")],
    json_: JsonFlag = False,
    app: AppOption = None,
    store: StoreOption = None,
) -> None:
    """Remove a model card from the store.

    Workers stop routing to it when they next load the catalog. A card file still under
    models/ brings it back at the next sync."""
    from ..models.catalog_store import delete_card

    async def body(a: App) -> CardRecord:
        await a.authorize("manage_catalog")
        return await delete_card(a.store, name)

    card, source = run_async(lambda: with_opened(store_app(app, store), body))
    if json_:
        echo_json(
            {
                "deleted": card.id,
                "version": card.version,
                "aliases": card.aliases,
                "source": None if source is None else str(source),
            }
        )
        return
    out = console()
    out.print(f"deleted model card {card.key} from the store", markup=False)
    if source is not None and Path(source).exists():
        hint = f"its file {source} still exists: `aiosys models sync` adds it back"
        out.print(hint, markup=False)


@models.command("usage")
def usage(
    tenant: Annotated[
        str | None,
        typer.Option(
            "--tenant",
            callback=tenant_name,
            help="Whose calls (default: the API key's, else 'default').",
        ),
    ] = None,
    since: Annotated[
        str | None,
        typer.Option(
            "--since",
            help="From when: a duration back from now (30m, 24h, 7d) or a UTC date or time "
            "(2026-11-01, 2026-11-01T08:00). Default: the start of this UTC month.",
        ),
    ] = None,
    by: Annotated[
        str, typer.Option("--by", help="One row per 'model' or per 'workflow'.")
    ] = "model",
    json_: JsonFlag = False,
    app: AppOption = None,
    store: StoreOption = None,
) -> None:
    """Model calls, tokens and cost of a tenant, per model or per workflow.

    Every attempt counts (fallbacks, errors, cache hits, budget denials); cost and tokens
    are what was metered. Rows for calls made outside any workflow have workflow `-`."""
    if by not in ("model", "workflow"):
        fail(f"--by must be 'model' or 'workflow', not {by!r}", EXIT_USAGE)
    from ..models.links.metering import usage_by_model, usage_by_workflow

    start = _since(since)
    read = usage_by_model if by == "model" else usage_by_workflow

    async def body(a: App) -> tuple[str, list[dict[str, Any]]]:
        whose = await a.authorize("read_usage", tenant=tenant) or "default"
        return whose, await read(a.store, whose, start)

    whose, rows = run_async(lambda: with_opened(store_app(app, store), body))
    if json_:
        echo_json(rows)
        return
    console().print(_usage_table(rows, by, whose, start))


@models.command("shadows")
def shadows(
    task: Annotated[str | None, typer.Argument(help="Only this task's (default: all).")] = None,
    tenant: Annotated[
        str | None,
        typer.Option(
            "--tenant",
            callback=tenant_name,
            help="Whose calls (default: the API key's, else 'default').",
        ),
    ] = None,
    limit: Annotated[int, typer.Option("--limit", min=1, help="At most this many.")] = 50,
    json_: JsonFlag = False,
    app: AppOption = None,
    store: StoreOption = None,
) -> None:
    """What shadow models answered beside the model that served the caller, newest first.

    A routing plan's `shadow` model gets a copy of each request after the caller has its
    answer; its output, parsed as the task parses, is kept here beside the caller's."""
    from ..models.shadows import shadow_results

    async def body(a: App) -> tuple[str, list[dict[str, Any]]]:
        whose = await a.authorize("read_usage", tenant=tenant) or "default"
        return whose, await shadow_results(a.store, task, tenant=whose, limit=limit)

    whose, rows = run_async(lambda: with_opened(store_app(app, store), body))
    if json_:
        echo_json(rows)
        return
    agree = sum(r["same"] for r in rows)
    title = f"shadow outcomes of tenant {whose!r}" + (f", task {task!r}" if task else "")
    t = Table(title=f"{title}: {agree} of {len(rows)} the same", box=box.SIMPLE_HEAD)
    for col in ("at (UTC)", "task", "serving", "shadow", "same", "latency ms", "cost"):
        t.add_column(col, justify="right" if col in ("latency ms", "cost") else "left")
    t.add_column("shadow output or error", overflow="fold")
    for r in rows:
        at = dt.datetime.fromtimestamp(r["at"], dt.UTC).strftime("%Y-%m-%d %H:%M:%S")
        shown = r["error"] or json.dumps(r["output"])
        t.add_row(
            at,
            r["task"] or "-",
            r["primary_model"],
            r["shadow_model"],
            Text("yes", style="green") if r["same"] else Text("no", style="yellow"),
            "-" if r["latency_ms"] is None else f"{r['latency_ms']:.1f}",
            "-" if r["cost"] is None else f"{r['cost']:.6f}",
            Text(shown[:200], style="red" if r["error"] else ""),
        )
    console().print(t)


def _since(text: str | None) -> float:
    """Epoch seconds from ``--since`` (see ``usage``)."""
    from ..durations import parse_before
    from ..models.links.budget import period_start

    now = dt.datetime.now(dt.UTC).timestamp()
    if text is None:
        return period_start("month", now)
    try:
        return parse_before(text, now)
    except ValueError as exc:
        fail(f"--since {exc}", EXIT_USAGE)


def _usage_table(rows: list[dict[str, Any]], by: str, tenant: str, since: float) -> Table:
    when = dt.datetime.fromtimestamp(since, dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    t = Table(title=f"model usage of tenant {tenant!r} since {when}", box=box.SIMPLE_HEAD)
    t.add_column(by)
    for col in ("calls", "ok", "cached", "errors", "denied", "tokens in", "tokens out", "cost"):
        t.add_column(col, justify="right")
    t.add_column("mean latency ms", justify="right")
    for r in rows:
        mean = r["mean_latency_ms"]
        t.add_row(
            r[by] or "-",
            *(str(r[k]) for k in ("calls", "ok", "cached", "errors", "denied")),
            f"{r['input_tokens']:,}",
            f"{r['output_tokens']:,}",
            f"{r['cost']:.6f}",
            "-" if mean is None else f"{mean:.1f}",
        )
    if rows:
        t.add_section()
        t.add_row(
            "total",
            *(str(sum(r[k] for r in rows)) for k in ("calls", "ok", "cached", "errors", "denied")),
            f"{sum(r['input_tokens'] for r in rows):,}",
            f"{sum(r['output_tokens'] for r in rows):,}",
            f"{sum(r['cost'] for r in rows):.6f}",
            "",
        )
    return t


def _table(cards: list[ModelCard], total: int) -> Table:
    shown = f"{len(cards)} of {total}" if len(cards) < total else f"{total}"
    # Ten columns fit 140 characters only without cell borders; values wrap, never elide.
    table = Table(
        title=f"{shown} model{'s' if total != 1 else ''}",
        title_justify="left",
        box=box.SIMPLE_HEAD,
        show_edge=False,
        pad_edge=False,
        collapse_padding=True,
    )
    table.add_column("id", style="bold", no_wrap=True)
    table.add_column("version", no_wrap=True)
    for name in ("kind", "provider", "owner", "risk", "external", "residency"):
        table.add_column(name, overflow="fold")
    table.add_column("aliases", no_wrap=True)
    table.add_column("price /1k\nin·out", justify="right", no_wrap=True)
    for c in cards:
        table.add_row(
            Text(c.id),
            Text(c.version),
            c.kind,
            Text(c.provider),
            Text(c.owner),
            Text(c.risk_level, style=RISK_STYLE[c.risk_level]),
            Text("yes", style="yellow") if c.external else Text("no"),
            Text(c.data_residency),
            Text(", ".join(c.aliases)),
            Text(_price(c)),
        )
    return table


def _price(card: ModelCard) -> str:
    """Per-1k token prices, then any per-call or per-second price, in the card's currency
    (named unless USD); empty when free."""
    p = card.pricing
    parts: list[str] = []
    if p.input_per_1k or p.output_per_1k:
        parts.append(f"{_num(p.input_per_1k)}·{_num(p.output_per_1k)}")
    if p.per_call:
        parts.append(f"{_num(p.per_call)}/call")
    if p.per_second:
        parts.append(f"{_num(p.per_second)}/s")
    text = " + ".join(parts)
    return f"{text} {p.currency}" if parts and p.currency != "USD" else text


def _num(x: float) -> str:
    return f"{x:.6g}"
