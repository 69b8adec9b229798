"""The Presidio pieces of ``pii.Detector`` (imported when a detector loads: Presidio and
spaCy take a second or two to import).

- ``OfflineEmailRecognizer``: the e-mail recognizer, its domain checked against the Public
  Suffix List that ships with tldextract (never fetched, no cache file written);
- ``DigitRunPhoneRecognizer``: the phone recognizer, run only over the stretches of text
  around runs of digits;
- ``SpacyTokens``: the ``NlpEngine``: spaCy's English tokenizer for context words, and, when
  a name model is given, its ``ner`` over windows around capitalized words.
"""

from __future__ import annotations

import re
from bisect import bisect_right
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

import phonenumbers
import spacy
import tldextract
from presidio_analyzer import EntityRecognizer, RecognizerRegistry, RecognizerResult
from presidio_analyzer.context_aware_enhancers import LemmaContextAwareEnhancer
from presidio_analyzer.nlp_engine import NlpArtifacts, NlpEngine
from presidio_analyzer.predefined_recognizers import (
    CreditCardRecognizer,
    EmailRecognizer,
    IbanRecognizer,
    PhoneRecognizer,
    SpacyRecognizer,
    UkNinoRecognizer,
    UsSsnRecognizer,
)
from spacy.tokens import Doc, Span

from ._names import LexiconNameRecognizer

_LANGUAGE = "en"
_SUFFIXES = tldextract.TLDExtract(suffix_list_urls=(), cache_dir=None)


class OfflineEmailRecognizer(EmailRecognizer):
    """Presidio's e-mail recognizer; the domain must end in a public suffix (offline list)."""

    def validate_result(self, pattern_text: str) -> bool:
        return bool(_SUFFIXES(pattern_text).fqdn)


# A run of digits as phone numbers are written: at least 6 digits, with the separators,
# brackets and + that phone numbers use between them.
_DIGIT_RUN = re.compile(r"\+?\(?\d[\d\s().\-/]{4,}\d")
_MARGIN = 16  # characters of each side a stretch keeps (the matcher reads some context)


class DigitRunPhoneRecognizer(PhoneRecognizer):
    """Presidio's phone recognizer over the stretches of text that hold a run of digits
    (plus ``_MARGIN`` characters each side), not over the whole text once per region: the
    same matches, for a fraction of the cost on prose."""

    def analyze(
        self, text: str, entities: list[str], nlp_artifacts: NlpArtifacts | None = None
    ) -> list[RecognizerResult]:
        results: list[RecognizerResult] = []
        for start, end in _stretches(text):
            part = text[start:end]
            for region in self.supported_regions:
                matches = phonenumbers.PhoneNumberMatcher(part, region, leniency=self.leniency or 0)
                for match in matches:
                    try:
                        number = phonenumbers.parse(part[match.start : match.end])
                        where = phonenumbers.region_code_for_number(number)
                    except phonenumbers.NumberParseException:
                        where = region
                    match.start += start  # PhoneNumberMatch's offsets are plain attributes
                    match.end += start
                    found = self._get_recognizer_result(  # type: ignore[no-untyped-call]
                        match, text, where, nlp_artifacts
                    )
                    results.append(found)
        deduped: list[RecognizerResult] = EntityRecognizer.remove_duplicates(results)
        return deduped


def _stretches(text: str) -> Iterator[tuple[int, int]]:
    """The ``(start, end)`` of each stretch around digit runs, merged where they touch."""
    n = len(text)
    runs = (
        (max(0, m.start() - _MARGIN), min(n, m.end() + _MARGIN)) for m in _DIGIT_RUN.finditer(text)
    )
    return _merged(runs)


def _merged(ranges: Iterable[tuple[int, int]]) -> Iterator[tuple[int, int]]:
    """Ranges (in order of their starts) merged where they overlap or touch."""
    start = end = -1
    for a, b in ranges:
        if a <= end:
            end = max(end, b)
            continue
        if end >= 0:
            yield start, end
        start, end = a, b
    if end >= 0:
        yield start, end


class TokenTexts(list[str]):
    """A text's tokens as Presidio's context enhancer reads them, with their end offsets."""

    ends: list[int]


class BisectContextEnhancer(LemmaContextAwareEnhancer):
    """Presidio's context enhancer, finding a match's token by bisection (Presidio walks
    every token of the text for every match: most of the pattern path's cost on long
    texts)."""

    @staticmethod
    def _find_index_of_match_token(
        word: str, start: int, tokens: TokenTexts, tokens_indices: list[int]
    ) -> int:
        # The first token that ends after ``start``: Presidio's own rule.
        i = bisect_right(tokens.ends, start)
        if i >= len(tokens):
            raise ValueError(f"no token of the text holds the match at {start}")
        return i


def build_registry(
    phone_regions: Sequence[str], *, names: bool, lists: bool = False
) -> RecognizerRegistry:
    """The recognizers: e-mail, phone (``phone_regions``), card (Luhn), IBAN, US SSN, UK
    NINO, and ``PERSON`` with the spaCy recognizer (``names``: the NLP engine runs the
    name model) and/or from name lists (``lists``: ``_names``)."""
    registry = RecognizerRegistry(supported_languages=[_LANGUAGE])
    recognizers: list[EntityRecognizer] = [
        OfflineEmailRecognizer(),
        DigitRunPhoneRecognizer(supported_regions=tuple(phone_regions)),
        CreditCardRecognizer(),
        IbanRecognizer(),
        UsSsnRecognizer(),
        UkNinoRecognizer(),
    ]
    if names:
        recognizers.append(SpacyRecognizer(supported_entities=["PERSON"]))
    if lists:
        recognizers.append(LexiconNameRecognizer())
    for recognizer in recognizers:
        registry.add_recognizer(recognizer)
    return registry


def spacy_tokens(ner: Any, window: int) -> SpacyTokens:
    return SpacyTokens(ner, window)


class SpacyTokens(NlpEngine):
    """Words for context (spaCy's English tokenizer) and, with a name model, its ``ner``
    over windows of ``window`` tokens each side of every capitalized word that is not a
    stop word; overlapping windows are merged, and all of a batch's windows go through the
    model together."""

    engine_name = "aiosys-spacy-windows"
    is_available = True

    def __init__(self, ner: Any, window: int) -> None:
        self.ner = ner
        self.window = window
        self.nlp = ner if ner is not None else spacy.blank(_LANGUAGE)
        self.vocab = self.nlp.vocab

    # ---- NlpEngine ----------------------------------------------------------------------

    def load(self) -> None:
        pass

    def is_loaded(self) -> bool:
        return True

    def process_text(self, text: str, language: str) -> NlpArtifacts:
        return self.artifacts([text], names=self.ner is not None)[0]

    def process_batch(
        self,
        texts: Iterable[str],
        language: str,
        batch_size: int = 1,
        n_process: int = 1,
        **kwargs: Any,
    ) -> Iterator[tuple[str, NlpArtifacts]]:
        for text in texts:
            yield text, self.process_text(str(text), language)

    def is_stopword(self, word: str, language: str) -> bool:
        return bool(self.vocab[word].is_stop)

    def is_punct(self, word: str, language: str) -> bool:
        return bool(self.vocab[word].is_punct)

    def get_supported_entities(self) -> list[str]:
        return ["PERSON"] if self.ner is not None else []

    def get_supported_languages(self) -> list[str]:
        return [_LANGUAGE]

    # ---- the work -----------------------------------------------------------------------

    def artifacts(self, texts: Sequence[str], *, names: bool) -> list[NlpArtifacts]:
        """Presidio's NLP artifacts of each text: its tokens, their lower-case form as
        lemmas, and (``names``) the ``PERSON`` entities the windows gave."""
        docs = [self.nlp.make_doc(text) for text in texts]
        found: list[list[Span]] = [[] for _ in docs]
        if names and self.ner is not None:
            windows = [(i, a, b) for i, doc in enumerate(docs) for a, b in self._windows(doc)]
            parts = (docs[i][a:b].as_doc() for i, a, b in windows)
            ner: Any = self.nlp.get_pipe("ner")
            for (i, a, _), part in zip(windows, ner.pipe(parts), strict=True):
                doc = docs[i]
                for ent in part.ents:
                    if ent.label_ == "PERSON":
                        found[i].append(Span(doc, a + ent.start, a + ent.end, label="PERSON"))
        return [self._artifact(doc, ents) for doc, ents in zip(docs, found, strict=True)]

    def _artifact(self, doc: Doc, entities: list[Span]) -> NlpArtifacts:
        tokens, indices, ends, lemmas = TokenTexts(), [], [], []
        for t in doc:  # one pass: each step of a Doc's iteration makes a Token
            text, idx = t.text, t.idx
            tokens.append(text)
            indices.append(idx)
            ends.append(idx + len(text))
            lemmas.append(t.lower_)
        tokens.ends = ends
        return NlpArtifacts(
            entities=entities,
            tokens=tokens,  # type: ignore[arg-type]  # texts: all the enhancer reads of them
            tokens_indices=indices,
            lemmas=lemmas,
            nlp_engine=self,
            language=_LANGUAGE,
        )

    def _windows(self, doc: Doc) -> Iterator[tuple[int, int]]:
        """Token ranges to read for names, merged where they overlap."""
        w, n = self.window, len(doc)
        around = (
            (max(0, tok.i - w), min(n, tok.i + w + 1))
            for tok in doc
            if _capitalized(tok.text) and not tok.is_stop
        )
        return _merged(around)


def _capitalized(word: str) -> bool:
    """A word as names are written: a capital, then letters with a lower-case one among
    them (``Garcia``, ``O'Connor``, ``McKay``; not ``IBAN``, ``K00BS123`` or ``I``)."""
    return (
        len(word) > 1
        and word[0].isupper()
        and any(c.islower() for c in word)
        and not any(c.isdigit() for c in word)
    )
