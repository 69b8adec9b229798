"""The name lists' finder (aiosys.governance._names): what it takes for a name, and what it
does not; its setting."""

from __future__ import annotations

import pytest

from aiosys.errors import ConfigError
from aiosys.governance._names import NameLists, find_names
from aiosys.governance.pii import DetectorSettings, detector


def names(text: str) -> list[str]:
    return [text[a:b] for a, b in find_names(text, NameLists.get())]


@pytest.mark.parametrize(
    ("text", "want"),
    [
        ("Maria Garcia signed it.", ["Maria Garcia"]),
        ("cc: Siobhan O'Connor and Fatima Al-Sayed", ["Siobhan O'Connor", "Fatima Al-Sayed"]),
        ("Ludwig van Beethoven wrote to Mr. Smith and Dr Jane Foster.",
         ["Ludwig van Beethoven", "Smith", "Jane Foster"]),
        ("Please ask John to call. Thanks, Mary", ["John", "Mary"]),
        ("Hi Sarah,\nthe file is attached.", ["Sarah"]),
        ("Peter Olsen called. Olsen will send it; Peter agreed.",
         ["Peter Olsen", "Olsen", "Peter"]),
        ("Hiroshi Tanaka and Priya Natarajan met Kwame Mensah.",
         ["Hiroshi Tanaka", "Priya Natarajan", "Kwame Mensah"]),
        # A possessive is not part of the name, which is found in it (they were missed):
        # inside a sentence, at its start, and as a later mention of a name's last word.
        ("The file from Margaret's desk is missing.", ["Margaret"]),
        ("John\u2019s report was late. We reviewed John's notes.", ["John", "John"]),
        ("Maria Garcia's lease ended; Garcia's deposit is due.",
         ["Maria Garcia", "Garcia"]),
        ("Siobhan O'Sullivan's claim and Ravi D'Souza's reply.",
         ["Siobhan O'Sullivan", "Ravi D'Souza"]),
    ],
)  # fmt: skip
def test_names_found(text: str, want: list[str]) -> None:
    assert names(text) == want


@pytest.mark.parametrize(
    "text",
    [
        "Due on 14 May, paid in June, reviewed on Monday.",
        "The Court held that the Claimant's Invoice was late.",
        "payment due; interest accrues at 8% per annum",
        "IBAN GB82 WEST 1234 5698 7654 32",
    ],
)
def test_not_names(text: str) -> None:
    assert names(text) == []


def test_a_name_does_not_run_across_lines() -> None:
    assert names("Bill to: Aisha Bello\nDesign Ltd") == ["Aisha Bello"]


def test_the_setting_and_a_bad_value() -> None:
    assert DetectorSettings().name_finder == "lexicon"
    assert DetectorSettings().name_lists and not DetectorSettings().name_model
    assert DetectorSettings(name_finder="both").name_model
    assert not DetectorSettings(names=False).name_lists
    with pytest.raises(ConfigError, match="name_finder must be one of lexicon, model, both"):
        DetectorSettings(name_finder="spacy")


def test_the_detector_finds_names_with_the_lists_alone() -> None:
    text = "Send it to Grace Liu at once."
    found = detector(DetectorSettings()).find([text], ["PERSON"])
    assert [(f.type, text[f.start : f.end]) for f in found[0]] == [("PERSON", "Grace Liu")]
