"""Model cards kept in the store (table ``model_cards``), so every worker, the console and
the CLI see the same catalog.

A card is stored whole, as the JSON of ``card.model_dump()``, keyed by its id, with the file
it came from. Saving a card that claims an alias another stored card holds moves the alias
(as a model registry's "production" alias moves when a new version is promoted): an alias
always names exactly one card. A card read back is marked ``from_store``: whoever can write
the database can write it, so it may not name code to import (``providers/local.py``).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from pydantic import ValidationError
from pydantic_core import PydanticSerializationError

from ..errors import ConfigError, ModelNotFound
from ..store import Store
from ..store.base import now
from .catalog import ModelCard
from .catalog_files import Declared, check_catalog, summarize, where

CardRecord = Declared  # a card and the file it came from (None: made in code)


@dataclass(frozen=True, slots=True)
class AliasMove:
    """An alias taken from one card by another when the catalog was saved or merged."""

    alias: str
    from_id: str
    to_id: str


def merge_cards(
    base: Sequence[CardRecord], updates: Sequence[CardRecord]
) -> tuple[list[CardRecord], list[AliasMove]]:
    """The catalog ``base`` becomes once ``updates`` are saved over it, sorted by id, and the
    aliases that moved. An update replaces the card of its id and takes its aliases from
    the cards holding them; an alias that is another card's id is an error."""
    check_catalog(updates)
    claimed = {alias: card.id for card, _ in updates for alias in card.aliases}
    update_ids = {card.id: src for card, src in updates}
    merged: dict[str, CardRecord] = {}
    moves: list[AliasMove] = []
    for card, src in base:
        if card.id in update_ids:
            continue
        if card.id in claimed:
            raise ConfigError(
                f"alias {card.id!r} of model {claimed[card.id]!r} is the id of the stored "
                f"model from {where(src)}"
            )
        clash = next((a for a in card.aliases if a in update_ids), None)
        if clash is not None:
            raise ConfigError(
                f"model {clash!r} ({where(update_ids[clash])}) has the name of an alias of "
                f"the stored model {card.id!r} ({where(src)})"
            )
        taken = [a for a in card.aliases if a in claimed]
        if taken:
            kept = [a for a in card.aliases if a not in claimed]
            card = card.model_copy(update={"aliases": kept})
            moves.extend(AliasMove(a, card.id, claimed[a]) for a in taken)
        merged[card.id] = (card, src)
    for card, src in updates:
        merged[card.id] = (card, src)
    return [merged[k] for k in sorted(merged)], moves


def find_card(cards: Iterable[ModelCard], name: str) -> ModelCard:
    """The card whose id, ``id@version`` key or alias is ``name``; else ``ModelNotFound``
    listing the known ids."""
    cards = list(cards)
    for match in (
        lambda c: c.id == name,
        lambda c: c.key == name,
        lambda c: name in c.aliases,
    ):
        found = next((c for c in cards if match(c)), None)
        if found is not None:
            return found
    known = ", ".join(sorted(c.id for c in cards))
    hint = f"known: {known}" if known else "the catalog is empty"
    raise ModelNotFound(f"no model card or alias named {name!r} ({hint})")


async def save_cards(
    store: Store,
    cards_with_sources: Sequence[CardRecord],
    *,
    progress: Callable[[ModelCard], None] | None = None,
) -> list[AliasMove]:
    """Insert or replace cards (one upsert each; ``progress`` is told after each) and move
    the aliases they claim from the stored cards holding them. Returns the moves."""
    merged, moves = merge_cards(await load_records(store), cards_with_sources)
    released = {m.from_id for m in moves}
    t = now()
    # Cards giving up an alias are written first, so no moment has two holders of it.
    writes = [r for r in merged if r[0].id in released] + list(cards_with_sources)
    for card, src in writes:
        params = {
            "id": card.id,
            "version": card.version,
            "card": _to_json(card),
            "source": None if src is None else str(src),
            "now": t,
        }
        await store.execute("upsert_model_card", params)
        if progress is not None and card.id not in released:
            progress(card)
    return moves


async def load_records(store: Store) -> list[CardRecord]:
    """Every stored card with the file it came from, by id."""
    return [_from_row(row) for row in await store.fetch("list_model_cards", {})]


async def load_cards(store: Store) -> list[ModelCard]:
    """Every stored card, by id."""
    return [card for card, _ in await load_records(store)]


async def get_card(store: Store, id_or_alias: str) -> ModelCard:
    """The stored card of that id, ``id@version`` or alias; ``ModelNotFound`` names the
    known ids."""
    rows = await store.fetch("get_model_card", {"id": id_or_alias})
    if rows:
        return _from_row(rows[0])[0]
    return find_card(await load_cards(store), id_or_alias)


async def delete_card(store: Store, id_or_alias: str) -> CardRecord:
    """Remove the stored card of that id, ``id@version`` or alias (its aliases go with
    it); the removed card and its source file. ``ModelNotFound`` names the known ids."""
    card = await get_card(store, id_or_alias)
    record = next(r for r in await load_records(store) if r[0].id == card.id)
    await store.execute("delete_model_card", {"id": card.id})
    return record


def _to_json(card: ModelCard) -> str:
    try:
        data = card.model_dump(mode="json")
    except PydanticSerializationError as exc:
        raise ConfigError(f"model card {card.id!r} cannot be stored as JSON: {exc}") from None
    return json.dumps(data, sort_keys=True, ensure_ascii=False)


def _from_row(row: dict[str, object]) -> CardRecord:
    source = row.get("source")
    src = source if isinstance(source, str) else None
    try:
        return ModelCard.model_validate_json(str(row["card"])).mark_from_store(), src
    except ValidationError as exc:
        raise ConfigError(
            f"stored model card {row['id']!r} (from {where(src)}) is not valid: "
            f"{summarize(exc.errors())}; sync it again from its file"
        ) from None


__all__ = [
    "AliasMove",
    "CardRecord",
    "find_card",
    "get_card",
    "load_cards",
    "load_records",
    "merge_cards",
    "save_cards",
]
