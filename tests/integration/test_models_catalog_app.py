"""The app's catalog comes from the store and the project's card files when it opens."""

from __future__ import annotations

from pathlib import Path

import pytest

from aiosys import App
from aiosys.errors import ConfigError, ModelNotFound


def write_card(folder: Path, name: str, body: str) -> None:
    folder.mkdir(exist_ok=True)
    (folder / name).write_text(body)


async def test_an_opening_app_loads_card_files_over_cards_kept_in_the_store(
    store_url: str, tmp_path: Path
) -> None:
    first = App(store=store_url, models_dir="")
    first.models.add_card(
        {"id": "summ", "provider": "summarizer", "kind": "summarize", "owner": "stored"}
    )
    first.models.add_card({"id": "only-stored", "provider": "local"})
    async with first:
        await first.models.save_to_store()

    cards = tmp_path / "models"
    write_card(
        cards,
        "summ.toml",
        'id = "summ"\nprovider = "summarizer"\nkind = "summarize"\n'
        'owner = "from-file"\naliases = ["summarize-default"]\n',
    )
    second = App(store=store_url, models_dir=cards)
    async with second:
        assert second.models.card("summ").owner == "from-file"
        assert second.models.card("summarize-default").id == "summ"
        assert second.models.card("only-stored").provider == "local"
        with pytest.raises(ModelNotFound, match="only-stored"):
            second.models.card("missing")


async def test_a_bad_card_file_stops_the_app_opening_with_the_file_and_field_named(
    store_url: str, tmp_path: Path
) -> None:
    cards = tmp_path / "models"
    write_card(cards, "bad.toml", 'id = "x"\nprovider = "local"\nrisk_level = "extreme"\n')
    app = App(store=store_url, models_dir=cards)
    with pytest.raises(ConfigError, match=r"bad\.toml.*risk_level"):
        await app.open()
    await app.close()
