"""``aiosys models list|show|sync|delete`` against real stores and card files in a project
folder."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from tests.unit.clirunner import aiosys, ok, reported_error

from aiosys.models.catalog import ModelCard

REPO_MODELS = Path(__file__).resolve().parents[2] / "models"
CARD_KEYS = set(ModelCard.model_fields)

GPT = """
id = "gpt"
version = "2024-07-18"
provider = "openai"
owner = "ml-platform"
external = true
data_residency = "us"
risk_level = "medium"
aliases = ["production"]
intended_use = ["drafting replies"]
out_of_scope_use = ["legal advice"]
training_data = ["public web data"]
failure_modes = ["hallucination"]
[evaluation]
mmlu = 0.82
[pricing]
input_per_1k = 0.00015
output_per_1k = 0.0006
[limits]
requests_per_minute = 500
"""
SUMMARIZER = "id: summarizer\nkind: summarize\nprovider: summarizer\naliases: [summarize-default]\n"


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, store_url: str) -> str:
    """A project folder with two card files under models/, as the working directory;
    returns the store URL (a fresh SQLite file, then a fresh PostgreSQL database)."""
    monkeypatch.chdir(tmp_path)  # nothing may land in the repository's .aiosys/
    monkeypatch.delenv("AIOSYS_STORE", raising=False)
    (tmp_path / "models").mkdir()
    (tmp_path / "models" / "gpt.toml").write_text(GPT, encoding="utf-8")
    (tmp_path / "models" / "summarizer.yaml").write_text(SUMMARIZER, encoding="utf-8")
    return store_url


def listed(store: str, *args: str) -> list[dict[str, Any]]:
    cards: list[dict[str, Any]] = json.loads(
        ok(aiosys("models", "list", "--json", "--store", store, *args)).stdout
    )
    return cards


def test_list_json_gives_full_card_objects_from_the_files(project: str) -> None:
    cards = listed(project)
    assert [c["id"] for c in cards] == ["gpt", "summarizer"]
    assert all(set(c) == CARD_KEYS for c in cards)
    gpt = cards[0]
    assert gpt["pricing"]["input_per_1k"] == 0.00015 and gpt["external"] is True
    assert gpt["evaluation"] == {"mmlu": 0.82} and gpt["aliases"] == ["production"]
    assert ModelCard.model_validate(gpt).key == "gpt@2024-07-18"
    assert [c["id"] for c in listed(project, "--limit", "1")] == ["gpt"]


def test_list_table_shows_one_row_per_card(project: str) -> None:
    out = ok(aiosys("models", "list", "--store", project)).stdout
    assert "2 models" in out
    for text in ("gpt", "2024-07-18", "openai", "ml-platform", "medium", "yes", "us"):
        assert text in out, text
    assert "production" in out and "0.00015·0.0006" in out
    assert "summarize-default" in out


def test_show_markdown_prints_the_model_card_sections(project: str) -> None:
    md = ok(aiosys("models", "show", "production", "--markdown", "--store", project)).stdout
    assert md.startswith("# Model card: gpt (version 2024-07-18)\n")
    for heading in (
        "## Model details",
        "## Intended use",
        "## Out-of-scope use",
        "## Training data",
        "## Evaluation",
        "## Known failure modes",
        "## Pricing",
        "## Limits",
    ):
        assert f"\n{heading}\n" in md, heading
    assert "- **External:** yes: requests leave the premises" in md

    shown = json.loads(
        ok(aiosys("models", "show", "summarizer", "--json", "--store", project)).stdout
    )
    assert shown["kind"] == "summarize" and set(shown) == CARD_KEYS

    rendered = ok(aiosys("models", "show", "gpt@2024-07-18", "--store", project)).stdout
    assert "Model card: gpt" in rendered and "Known failure modes" in rendered
    assert "##" not in rendered  # rendered for the terminal, not raw Markdown


def test_show_unknown_model_exits_1_naming_the_known_ids(project: str) -> None:
    stderr = reported_error(aiosys("models", "show", "nope", "--store", project))
    assert stderr.strip() == "error: no model card or alias named 'nope' (known: gpt, summarizer)"
    reported_error(aiosys("models", "show", "gpt", "--json", "--markdown"), code=2)


def test_a_bad_card_file_exits_1_naming_the_file_and_field(project: str) -> None:
    Path("models/broken.yaml").write_text("id: broken\nprovider: local\nrisk_level: extreme\n")
    for command in ("list", "sync"):
        stderr = reported_error(aiosys("models", command, "--store", project))
        assert "models/broken.yaml: invalid model card 'broken': risk_level:" in stderr


def test_sync_saves_the_cards_and_list_then_reads_the_store_alone(
    project: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    result = json.loads(ok(aiosys("models", "sync", "--json", "--store", project)).stdout)
    assert result == {
        "synced": [
            {"id": "gpt", "version": "2024-07-18", "source": "models/gpt.toml"},
            {"id": "summarizer", "version": "1", "source": "models/summarizer.yaml"},
        ],
        "moved_aliases": [],
    }
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)  # no models/ folder here: the store is the only source
    assert [c["id"] for c in listed(project)] == ["gpt", "summarizer"]
    shown = ok(aiosys("models", "show", "production", "--json", "--store", project)).stdout
    assert json.loads(shown)["id"] == "gpt"


def test_list_overlays_unsynced_files_on_the_store(
    project: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ok(aiosys("models", "sync", "--store", project))
    newer = GPT.replace('id = "gpt"', 'id = "gpt-next"')
    Path("models/gpt-next.toml").write_text(newer, encoding="utf-8")
    Path("models/gpt.toml").unlink()
    cards = {c["id"]: c for c in listed(project)}
    # the stored gpt stays, but the file's card has taken its alias, as sync will do
    assert (cards["gpt"]["aliases"], cards["gpt-next"]["aliases"]) == ([], ["production"])

    out = ok(aiosys("models", "sync", "--store", project)).stdout
    assert "synced 2 model cards from models into the store" in out
    assert "alias 'production' moved from gpt to gpt-next" in out
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path / "elsewhere")
    assert (
        json.loads(ok(aiosys("models", "show", "production", "--json", "--store", project)).stdout)[
            "id"
        ]
        == "gpt-next"
    )


def test_delete_removes_a_stored_card_by_alias_and_an_unknown_one_exits_1(
    project: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ok(aiosys("models", "sync", "--store", project))
    out = ok(aiosys("models", "delete", "production", "--store", project)).stdout
    assert "deleted model card gpt@2024-07-18 from the store" in out
    assert "its file models/gpt.toml still exists" in out
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path / "elsewhere")  # the store alone
    assert [c["id"] for c in listed(project)] == ["summarizer"]
    deleted = json.loads(
        ok(aiosys("models", "delete", "summarizer", "--json", "--store", project)).stdout
    )
    assert deleted == {
        "deleted": "summarizer",
        "version": "1",
        "aliases": ["summarize-default"],
        "source": "models/summarizer.yaml",
    }
    stderr = reported_error(aiosys("models", "delete", "gpt", "--store", project))
    assert stderr.strip() == "error: no model card or alias named 'gpt' (the catalog is empty)"


def test_an_explicit_dir_must_exist_and_sync_needs_card_files(project: str) -> None:
    stderr = reported_error(aiosys("models", "list", "--dir", "nowhere", "--store", project))
    assert stderr.strip() == "error: model card folder nowhere does not exist"
    Path("empty").mkdir()
    stderr = reported_error(aiosys("models", "sync", "--dir", "empty", "--store", project))
    assert "no model card files (*.toml, *.yaml, *.yml) in empty" in stderr


def test_the_repository_example_cards_list(project: str) -> None:
    ids = {c["id"] for c in listed(project, "--dir", str(REPO_MODELS))}
    assert {"gpt-4o-mini", "claude-haiku", "ocr-tesseract", "minilm-embeddings"} <= ids
