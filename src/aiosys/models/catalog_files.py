"""Model cards declared in files: every ``*.toml``, ``*.yaml`` and ``*.yml`` under a folder
(``models/`` of the project by default, searched recursively, hidden entries skipped).

A file holds one card (its top-level table or mapping), or several: a ``[[models]]`` array
of tables in TOML, a ``models:`` list or a top-level list in YAML. Each card is validated by
``ModelCard`` (unknown fields are errors), and the catalog as a whole must be consistent:
ids are unique, and an alias names exactly one card and is not another card's id.

Every problem is a ``ConfigError`` that names the file and the field, never a traceback.
"""

from __future__ import annotations

import tomllib
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from ..errors import ConfigError
from .catalog import ModelCard

DEFAULT_DIR = Path("models")
SUFFIXES = (".toml", ".yaml", ".yml")

CardSource = tuple[ModelCard, Path]
# A card and where it was declared: a file, or None for a card made in code.
Declared = tuple[ModelCard, Path | str | None]


def load_card_files(directory: str | Path = DEFAULT_DIR) -> list[CardSource]:
    """Every card under ``directory`` with the file it came from, in file-name order."""
    found: list[CardSource] = []
    for path in card_paths(directory):
        found.extend((card, path) for card in load_card_file(path))
    check_catalog(found)
    return found


def card_paths(directory: str | Path = DEFAULT_DIR) -> list[Path]:
    """The card files under ``directory``, sorted; hidden files and folders are skipped."""
    root = Path(directory)
    if not root.is_dir():
        what = "is not a folder" if root.exists() else "does not exist"
        raise ConfigError(f"model card folder {root} {what}")
    paths = (
        p
        for p in root.rglob("*")
        if p.suffix.lower() in SUFFIXES
        and p.is_file()
        and not any(part.startswith(".") for part in p.relative_to(root).parts)
    )
    return sorted(paths)


def load_card_file(path: Path) -> list[ModelCard]:
    """The cards of one file, validated."""
    entries = _entries(path, _parse(path))
    cards = []
    for index, entry in enumerate(entries):
        where = f"{path}" if len(entries) == 1 else f"{path} (card {index + 1})"
        cards.append(_validate(entry, where))
    return cards


def check_catalog(cards: Sequence[Declared]) -> None:
    """Ids unique; every alias names one card and is no card's id. Errors name the files."""
    ids: dict[str, str] = {}
    for card, source in cards:
        path = where(source)
        if card.id in ids:
            raise ConfigError(
                f"model card id {card.id!r} is declared twice: in {ids[card.id]} and in {path}"
            )
        ids[card.id] = path
    aliases: dict[str, tuple[ModelCard, str]] = {}
    for card, source in cards:
        path = where(source)
        for alias in dict.fromkeys(card.aliases):  # a card repeating its own alias is harmless
            if alias == card.id:
                continue
            if alias in ids:
                raise ConfigError(
                    f"alias {alias!r} of model {card.id!r} ({path}) is the id of the model "
                    f"declared in {ids[alias]}"
                )
            if alias in aliases:
                other, other_path = aliases[alias]
                raise ConfigError(
                    f"alias {alias!r} is given to two models: {other.id!r} ({other_path}) "
                    f"and {card.id!r} ({path})"
                )
            aliases[alias] = (card, path)


def where(source: Path | str | None) -> str:
    """Where a card was declared, for messages."""
    return "code" if source is None else str(source)


def _parse(path: Path) -> Any:
    try:
        if path.suffix.lower() == ".toml":
            with path.open("rb") as f:
                return tomllib.load(f)
        with path.open(encoding="utf-8") as f:
            return yaml.safe_load(f)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {_one_line(str(exc))}") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not UTF-8 text: {exc}") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror or exc}") from None


def _entries(path: Path, doc: Any) -> list[Any]:
    """The card mappings of a parsed file: one card, a ``models`` list, or a YAML list."""
    if doc is None or doc == {}:
        raise ConfigError(f"{path}: the file is empty: declare a model card in it")
    if isinstance(doc, dict) and "models" in doc:
        extra = sorted(k for k in doc if k != "models")
        if extra:
            raise ConfigError(
                f"{path}: a file holds one card or a `models` list, not both "
                f"(found {', '.join(extra)} beside models)"
            )
        doc = doc["models"]
        if not isinstance(doc, list):
            raise ConfigError(f"{path}: models: expected a list of model cards")
    entries = doc if isinstance(doc, list) else [doc]
    if not entries:
        raise ConfigError(f"{path}: the models list is empty")
    return entries


def _validate(entry: Any, where: str) -> ModelCard:
    if not isinstance(entry, dict):
        raise ConfigError(f"{where}: a model card is a table of fields, not {_kind(entry)}")
    # YAML and TOML read `version: 2` as a number; a version is a label, so take its digits
    # as written. A float (1.10) is left to fail: its digits are already lost.
    if isinstance(entry.get("version"), int) and not isinstance(entry["version"], bool):
        entry = {**entry, "version": str(entry["version"])}
    try:
        return ModelCard.model_validate(entry)
    except ValidationError as exc:
        name = entry.get("id")
        label = f"model card {name!r}" if isinstance(name, str) else "model card"
        raise ConfigError(f"{where}: invalid {label}: {summarize(exc.errors())}") from None


def summarize(errors: Iterable[Any]) -> str:
    """Pydantic errors as ``field.path: message; ...``, one clause per field."""
    clauses = []
    for e in errors:
        field = ".".join(str(p) for p in e["loc"]) or "(card)"
        message = e["msg"]
        if e["type"] == "extra_forbidden":
            message = "unknown field"
        clauses.append(f"{field}: {message}")
    return "; ".join(clauses)


def _kind(value: Any) -> str:
    return {str: "a string", list: "a list", int: "a number", float: "a number"}.get(
        type(value), type(value).__name__
    )


def _one_line(text: str) -> str:
    return " ".join(text.split())


__all__ = [
    "DEFAULT_DIR",
    "CardSource",
    "Declared",
    "card_paths",
    "check_catalog",
    "load_card_file",
    "load_card_files",
    "summarize",
    "where",
]
