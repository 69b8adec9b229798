"""Model cards saved into and read from the store, on SQLite and PostgreSQL."""

from __future__ import annotations

from pathlib import Path

import pytest

from aiosys.errors import ConfigError, ModelNotFound
from aiosys.models.catalog import Limits, ModelCard, Pricing
from aiosys.models.catalog_store import (
    AliasMove,
    get_card,
    load_cards,
    load_records,
    save_cards,
)
from aiosys.store import Store


def card(id: str, **fields: object) -> ModelCard:
    return ModelCard.model_validate({"id": id, "provider": "local", **fields})


async def test_saved_cards_load_back_whole_with_their_sources(store: Store) -> None:
    gpt = card(
        "gpt",
        version="2024-07-18",
        provider="openai",
        external=True,
        evaluation={"mmlu": 0.82, "note": "vendor"},
        pricing=Pricing(input_per_1k=0.00015, output_per_1k=0.0006),
        limits=Limits(requests_per_minute=500),
        aliases=["production"],
        options={"headers": {"x-team": "ml"}, "seed": 7},
    )
    local = card("local-one")
    seen: list[str] = []
    moves = await save_cards(
        store, [(local, None), (gpt, Path("models/gpt.toml"))], progress=lambda c: seen.append(c.id)
    )
    assert moves == [] and seen == ["local-one", "gpt"]

    assert await load_cards(store) == [gpt, local]  # by id
    assert [src for _, src in await load_records(store)] == ["models/gpt.toml", None]


async def test_get_card_by_id_key_or_alias(store: Store) -> None:
    await save_cards(store, [(card("a", version="3", aliases=["production", "prod"]), None)])
    await save_cards(store, [(card("b"), None)])
    for name in ("a", "a@3", "production", "prod"):
        assert (await get_card(store, name)).id == "a"
    assert (await get_card(store, "b")).id == "b"


async def test_an_unknown_name_raises_model_not_found_listing_the_ids(store: Store) -> None:
    with pytest.raises(ModelNotFound, match=r"'x' \(the catalog is empty\)"):
        await get_card(store, "x")
    await save_cards(store, [(card("b"), None), (card("a", aliases=["canary"]), None)])
    with pytest.raises(ModelNotFound) as caught:
        await get_card(store, "a@2")
    assert str(caught.value) == "no model card or alias named 'a@2' (known: a, b)"


async def test_saving_again_replaces_the_card(store: Store) -> None:
    await save_cards(store, [(card("a", owner="team-1"), "models/a.toml")])
    await save_cards(store, [(card("a", version="2", owner="team-2"), "models/a.yaml")])
    [(stored, src)] = await load_records(store)
    assert (stored.version, stored.owner, src) == ("2", "team-2", "models/a.yaml")


async def test_an_alias_claimed_by_a_new_card_moves_to_it(store: Store) -> None:
    await save_cards(store, [(card("v1", aliases=["production", "stable"]), "models/v1.toml")])
    moves = await save_cards(store, [(card("v2", aliases=["production"]), "models/v2.toml")])
    assert moves == [AliasMove("production", "v1", "v2")]
    assert (await get_card(store, "production")).id == "v2"
    cards = {c.id: c for c in await load_cards(store)}
    assert cards["v1"].aliases == ["stable"]
    records = dict((c.id, src) for c, src in await load_records(store))
    assert records["v1"] == "models/v1.toml"  # the moved-from card keeps its source


async def test_a_conflicting_batch_is_refused_before_anything_is_written(store: Store) -> None:
    batch = [
        (card("a", aliases=["production"]), "a.toml"),
        (card("b", aliases=["production"]), "b.toml"),
    ]
    with pytest.raises(ConfigError, match=r"alias 'production' is given to two models"):
        await save_cards(store, batch)
    await save_cards(store, [(card("stored"), "stored.toml")])
    with pytest.raises(ConfigError, match=r"alias 'stored' of model 'new' is the id of the stored"):
        await save_cards(store, [(card("new", aliases=["stored"]), "new.toml")])
    assert [c.id for c in await load_cards(store)] == ["stored"]


async def test_a_stored_card_that_no_longer_validates_is_a_config_error(store: Store) -> None:
    params = {
        "id": "old",
        "version": "1",
        "card": '{"id": "old", "provider": "local", "colour": 1}',
        "source": "models/old.toml",
        "now": 0.0,
    }
    await store.execute("upsert_model_card", params)
    with pytest.raises(ConfigError) as caught:
        await load_cards(store)
    assert str(caught.value) == (
        "stored model card 'old' (from models/old.toml) is not valid: colour: unknown field; "
        "sync it again from its file"
    )
