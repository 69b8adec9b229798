"""Recall of the default detector on the shipped synthetic documents (tests/data/pii, see
tests/pii_corpus.py), per entity type; its shortcuts (phone numbers only around digits, the
name model only around capitalized words) find what Presidio's plain way finds there."""

from __future__ import annotations

import pytest
from presidio_analyzer.predefined_recognizers import PhoneRecognizer
from tests.pii_corpus import Doc, load, recall

from aiosys.governance._presidio import DigitRunPhoneRecognizer
from aiosys.governance.pii import ENTITIES, DetectorSettings, detector

# What the shipped set measured when this test was written (bench/redact.py prints it):
# every type 100% with the default name lists; names 55 of 57 with the spaCy model. A
# change that loses any of them fails here.
FLOOR = {e: 1.0 for e in ENTITIES}
MODEL_FLOOR = FLOOR | {"PERSON": 55 / 57}


@pytest.fixture(scope="module")
def docs() -> list[Doc]:
    return load()


def test_recall_per_type_on_the_shipped_documents_and_no_decoy_flagged(docs: list[Doc]) -> None:
    found = detector(DetectorSettings()).find([d.text for d in docs], ENTITIES)
    measured = recall(docs, found)
    assert len(docs) == 20 and sum(measured.total.values()) >= 100
    assert set(measured.total) == set(ENTITIES)
    for entity in ENTITIES:
        assert measured.ratio(entity) >= FLOOR[entity], (entity, measured.missed)
    assert measured.decoys_flagged == []  # Luhn-invalid card numbers are not personal data


def test_the_name_model_alone_and_with_the_lists(docs: list[Doc]) -> None:
    texts = [d.text for d in docs]
    model = recall(docs, detector(DetectorSettings(name_finder="model")).find(texts, ENTITIES))
    both = recall(docs, detector(DetectorSettings(name_finder="both")).find(texts, ENTITIES))
    for entity in ENTITIES:
        assert model.ratio(entity) >= MODEL_FLOOR[entity], (entity, model.missed)
        assert both.ratio(entity) >= max(FLOOR[entity], model.ratio(entity)), entity
    assert model.decoys_flagged == [] and both.decoys_flagged == []


def test_without_names_every_other_type_is_still_found(docs: list[Doc]) -> None:
    found = detector(DetectorSettings(names=False)).find([d.text for d in docs], ENTITIES)
    measured = recall(docs, found)
    assert measured.found.get("PERSON", 0) == 0
    for entity in set(ENTITIES) - {"PERSON"}:
        assert measured.ratio(entity) == 1.0, (entity, measured.missed)


def test_names_read_in_windows_are_the_names_read_in_whole_documents(docs: list[Doc]) -> None:
    texts = [d.text for d in docs]
    windows = detector(DetectorSettings(name_finder="model")).find(texts, ["PERSON"])
    whole = detector(DetectorSettings(name_finder="model", window=1_000_000)).find(
        texts, ["PERSON"]
    )
    assert windows == whole


def test_phone_numbers_around_digits_are_presidios_own(docs: list[Doc]) -> None:
    ours = DigitRunPhoneRecognizer(supported_regions=("US", "GB", "DE"))
    theirs = PhoneRecognizer(supported_regions=("US", "GB", "DE"))
    for doc in docs:
        got = sorted((r.start, r.end, r.score) for r in ours.analyze(doc.text, ["PHONE_NUMBER"]))
        want = sorted((r.start, r.end, r.score) for r in theirs.analyze(doc.text, ["PHONE_NUMBER"]))
        assert got == want, doc.name
