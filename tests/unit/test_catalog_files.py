"""Model cards read from TOML and YAML files, and the errors a bad catalog gives."""

from __future__ import annotations

from pathlib import Path

import pytest

from aiosys.errors import ConfigError
from aiosys.models.catalog_files import load_card_files

REPO_MODELS = Path(__file__).resolve().parents[2] / "models"


def write(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def error_of(folder: Path) -> str:
    with pytest.raises(ConfigError) as caught:
        load_card_files(folder)
    return str(caught.value)


def test_a_toml_card_is_loaded_with_its_nested_tables(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "gpt.toml",
        """
id = "gpt"
provider = "openai"
external = true
aliases = ["production"]
intended_use = ["drafting replies"]
[pricing]
input_per_1k = 0.00015
output_per_1k = 0.0006
[limits]
requests_per_minute = 500
[evaluation]
mmlu = 0.82
""",
    )
    [(card, source)] = load_card_files(tmp_path)
    assert source == path
    assert (card.id, card.version, card.provider, card.external) == ("gpt", "1", "openai", True)
    assert card.pricing.cost(1000, 1000) == pytest.approx(0.00075)
    assert card.limits.requests_per_minute == 500
    assert card.evaluation == {"mmlu": 0.82}
    assert card.aliases == ["production"]


def test_a_yaml_card_is_loaded_and_a_numeric_version_is_read_as_written(tmp_path: Path) -> None:
    write(
        tmp_path,
        "ocr.yaml",
        """
id: ocr
version: 5
kind: ocr
provider: tesseract
pricing: {per_second: 0.0002}
failure_modes:
  - skewed scans
""",
    )
    [(card, _)] = load_card_files(tmp_path)
    assert (card.id, card.version, card.kind) == ("ocr", "5", "ocr")
    assert card.pricing.per_second == 0.0002
    assert card.failure_modes == ["skewed scans"]


def test_files_may_hold_lists_of_cards(tmp_path: Path) -> None:
    write(
        tmp_path,
        "a.toml",
        """
[[models]]
id = "a1"
provider = "local"
[[models]]
id = "a2"
provider = "local"
""",
    )
    write(tmp_path, "b.yml", "- {id: b1, provider: local}\n- {id: b2, provider: local}\n")
    write(tmp_path, "sub/c.yaml", "models:\n  - {id: c1, provider: summarizer}\n")
    found = load_card_files(tmp_path)
    assert [(c.id, p.name) for c, p in found] == [
        ("a1", "a.toml"),
        ("a2", "a.toml"),
        ("b1", "b.yml"),
        ("b2", "b.yml"),
        ("c1", "c.yaml"),
    ]


def test_other_files_and_hidden_files_are_ignored(tmp_path: Path) -> None:
    write(tmp_path, "a.toml", 'id = "a"\nprovider = "local"\n')
    write(tmp_path, "README.md", "# not a card\n")
    write(tmp_path, ".draft.toml", "this is not TOML at all")
    write(tmp_path, ".cache/x.yaml", ": not yaml :")
    assert [c.id for c, _ in load_card_files(tmp_path)] == ["a"]


def test_a_bad_field_names_the_file_and_the_field(tmp_path: Path) -> None:
    write(tmp_path, "good.toml", 'id = "good"\nprovider = "local"\n')
    write(
        tmp_path,
        "bad.toml",
        'id = "bad"\nprovider = "local"\nrisk_level = "extreme"\n'
        '[pricing]\ninput_per_1k = "cheap"\n',
    )
    message = error_of(tmp_path)
    assert message.startswith(f"{tmp_path / 'bad.toml'}: invalid model card 'bad': ")
    assert "risk_level: Input should be 'minimal', 'low'" in message
    assert "pricing.input_per_1k: Input should be a valid number" in message
    assert "Traceback" not in message and "pydantic" not in message


def test_an_unknown_or_missing_field_is_named(tmp_path: Path) -> None:
    write(tmp_path, "x.yaml", "id: x\nprovider: local\ncolour: blue\n")
    assert (
        error_of(tmp_path)
        == f"{tmp_path / 'x.yaml'}: invalid model card 'x': colour: unknown field"
    )

    (tmp_path / "x.yaml").unlink()
    write(
        tmp_path, "list.toml", '[[models]]\nid = "ok"\nprovider = "local"\n[[models]]\nid = "y"\n'
    )
    assert error_of(tmp_path) == (
        f"{tmp_path / 'list.toml'} (card 2): invalid model card 'y': provider: Field required"
    )


def test_syntax_errors_and_odd_shapes_name_the_file(tmp_path: Path) -> None:
    path = write(tmp_path, "broken.toml", 'id = "x\nprovider = "local"\n')
    assert error_of(tmp_path).startswith(f"{path}: not valid TOML: ")
    path.unlink()

    path = write(tmp_path, "broken.yaml", "id: [x\n")
    message = error_of(tmp_path)
    assert message.startswith(f"{path}: not valid YAML: ") and "\n" not in message
    path.unlink()

    path = write(tmp_path, "empty.yaml", "# nothing yet\n")
    assert error_of(tmp_path) == f"{path}: the file is empty: declare a model card in it"
    path.unlink()

    path = write(tmp_path, "scalar.yaml", "- just a string\n")
    assert error_of(tmp_path) == f"{path}: a model card is a table of fields, not a string"
    path.unlink()

    path = write(tmp_path, "mixed.toml", 'owner = "me"\n[[models]]\nid = "a"\nprovider = "x"\n')
    assert "not both (found owner beside models)" in error_of(tmp_path)


def test_a_missing_folder_is_an_error(tmp_path: Path) -> None:
    assert error_of(tmp_path / "nope") == f"model card folder {tmp_path / 'nope'} does not exist"


def test_a_duplicate_id_names_both_files(tmp_path: Path) -> None:
    first = write(tmp_path, "a.toml", 'id = "same"\nprovider = "local"\n')
    second = write(tmp_path, "b.yaml", "id: same\nprovider: openai\n")
    assert error_of(tmp_path) == (
        f"model card id 'same' is declared twice: in {first} and in {second}"
    )


def test_an_alias_given_to_two_cards_names_both(tmp_path: Path) -> None:
    first = write(tmp_path, "a.toml", 'id = "a"\nprovider = "local"\naliases = ["production"]\n')
    second = write(tmp_path, "b.yaml", "id: b\nprovider: local\naliases: [canary, production]\n")
    assert error_of(tmp_path) == (
        f"alias 'production' is given to two models: 'a' ({first}) and 'b' ({second})"
    )


def test_an_alias_may_not_be_another_cards_id(tmp_path: Path) -> None:
    write(tmp_path, "a.toml", 'id = "a"\nprovider = "local"\naliases = ["a", "b"]\n')
    b = write(tmp_path, "b.toml", 'id = "b"\nprovider = "local"\n')
    message = error_of(tmp_path)
    assert message == (
        f"alias 'b' of model 'a' ({tmp_path / 'a.toml'}) is the id of the model declared in {b}"
    )


def test_the_shipped_example_cards_load_with_their_governance_fields() -> None:
    cards = {card.id: card for card, _ in load_card_files(REPO_MODELS)}
    assert set(cards) >= {
        "summarizer-extractive",
        "ocr-tesseract",
        "minilm-embeddings",
        "gpt-4o-mini",
        "claude-haiku",
    }
    for card in cards.values():
        assert card.intended_use and card.out_of_scope_use and card.failure_modes, card.id
        assert card.training_data and card.owner != "unknown", card.id
    gpt = cards["gpt-4o-mini"]
    assert (gpt.provider, gpt.external, gpt.data_residency) == ("openai", True, "us")
    assert gpt.api_key_env == "OPENAI_API_KEY"
    assert gpt.pricing.input_per_1k > 0 and gpt.pricing.output_per_1k > gpt.pricing.input_per_1k
    assert cards["claude-haiku"].provider == "anthropic" and cards["claude-haiku"].external
    assert cards["ocr-tesseract"].pricing.per_second > 0
    assert cards["summarizer-extractive"].pricing.cost(1000, 1000) == 0
    assert not any(c.external for c in cards.values() if c.provider in {"summarizer", "tesseract"})
