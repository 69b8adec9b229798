"""An extractive summarizer that needs no download: the ``summarizer`` provider.

It picks the sentences closest to what the whole text is about and returns them in their
original order. The method is the centroid summarizer (Radev et al., 2004): each sentence
becomes a TF-IDF vector (scikit-learn's ``TfidfVectorizer``, English stop words dropped,
rows L2-normalized); the text's topic is the mean of those vectors; a sentence's score is
its cosine similarity to that centroid. Sentences repeating the main topic's terms win over
asides, and the ranking is deterministic (ties go to the earlier sentence).

The number of sentences is ``request.params["sentences"]``, else the card's
``options["sentences"]``, else 3. A text with no more sentences than that is returned
whole (its sentences joined by single spaces).
"""

from __future__ import annotations

import asyncio
import re
import time
from typing import Any

from ...errors import AiosysError, ConfigError, ProviderRejected
from ..catalog import ModelCard
from ..tokens import count_tokens
from ..types import Kind, ModelRequest, ProviderResult, Usage

DEFAULT_SENTENCES = 3

# Sentence splitting is a regular expression on purpose: nltk's punkt, the usual library,
# downloads its trained data at run time (nltk.download), which aiosys must never need. A
# sentence ends at ., ! or ? (and any closing quotes or brackets) followed by whitespace and
# an opening quote, bracket, capital letter or digit; a blank line ends one too.
_BOUNDARY = re.compile(
    r"(?:(?<=[.!?])|(?<=[.!?][\"'\u201d\u2019)\]]))"  # the end, maybe a closing quote
    r"\s+(?=[\"'\u201c\u2018(\[]?[A-Z0-9])"  # space, then what opens a sentence
    r"|\n\s*\n"  # or a blank line
)
# Words whose period does not end a sentence: "Dr. Smith", "e.g. This", "J. Doe".
# ("etc." is not one: before a capital letter it usually does end the sentence.)
_ABBREVIATION = re.compile(
    r"(?:\b(?i:Mr|Mrs|Ms|Dr|Prof|Sr|Jr|St|Mt|No|vs|Inc|Ltd|Co|Corp|Fig|Eq|approx|"
    r"Jan|Feb|Mar|Apr|Jun|Jul|Aug|Sep|Sept|Oct|Nov|Dec|e\.g|i\.e|a\.m|p\.m)"
    r"|(?<![\w.])[A-Z])\.$"
)


def split_sentences(text: str) -> list[str]:
    """The sentences of ``text``, whitespace inside each collapsed to single spaces."""
    pieces = [" ".join(piece.split()) for piece in _BOUNDARY.split(text)]
    sentences: list[str] = []
    for piece in pieces:
        if not piece:
            continue
        if sentences and _ABBREVIATION.search(sentences[-1]):
            sentences[-1] = f"{sentences[-1]} {piece}"
        else:
            sentences.append(piece)
    return sentences


class ExtractiveSummarizer:
    """Centroid TF-IDF sentence extraction; the scoring runs in a worker thread."""

    name = "summarizer"
    kinds: frozenset[Kind] = frozenset({"summarize"})

    async def invoke(self, card: ModelCard, request: ModelRequest) -> ProviderResult:
        if request.kind != "summarize":
            raise ProviderRejected(
                f"{card.key}: the summarizer provider serves summarize, not {request.kind}"
            )
        text = request.text
        if text is None or not text.strip():
            raise ProviderRejected(f"{card.key}: a summarize request needs a non-empty text")
        count = _sentence_count(card, request)
        started = time.perf_counter()
        summary = await asyncio.to_thread(_summarize, card, text, count)
        return ProviderResult(
            output=summary,
            usage=Usage(
                input_tokens=count_tokens(text),
                output_tokens=count_tokens(summary),
                seconds=time.perf_counter() - started,
            ),
            provider_model="centroid-tfidf",
        )

    async def close(self) -> None:
        return None


def _sentence_count(card: ModelCard, request: ModelRequest) -> int:
    error: type[AiosysError]
    if "sentences" in request.params:
        value, where, error = request.params["sentences"], "params", ProviderRejected
    else:
        value = card.options.get("sentences", DEFAULT_SENTENCES)
        where, error = "options", ConfigError
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise error(f"{card.key}: {where}.sentences must be a positive integer, got {value!r}")
    return value


def _summarize(card: ModelCard, text: str, count: int) -> str:
    sentences = split_sentences(text)
    if len(sentences) <= count:
        return " ".join(sentences)
    chosen = sorted(_rank(card, sentences)[:count])
    return " ".join(sentences[i] for i in chosen)


def _rank(card: ModelCard, sentences: list[str]) -> list[int]:
    """Sentence indexes, best first."""
    try:
        import numpy as np
        from sklearn.feature_extraction.text import TfidfVectorizer
    except ImportError as exc:
        raise ConfigError(
            f"{card.key}: scikit-learn is not installed: pip install 'aiosys[offline]'"
        ) from exc
    try:
        matrix: Any = TfidfVectorizer(stop_words="english").fit_transform(sentences)
    except ValueError:  # nothing but stop words and punctuation: keep the opening sentences
        return list(range(len(sentences)))
    centroid = np.asarray(matrix.mean(axis=0)).ravel()
    scores = matrix @ centroid  # rows are L2-normalized: proportional to cosine similarity
    # Stable sort on the negated score: equal scores keep their original order.
    return [int(i) for i in np.argsort(-scores, kind="stable")]
