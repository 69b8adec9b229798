"""Person names from name lists: a Presidio recognizer that finds ``PERSON`` at a fraction of
a statistical model's cost (``[redaction] name_finder = "lexicon"``, the default).

The lists are Faker's (``faker.providers.person``: the first and last names of its ~80
locales, Latin script only, ~21,000 first names and ~23,000 last names); the places of its
address providers and the calendar's month and day names are what a lone capitalized first
name must not be. Written here because no library finds names this way: Presidio's
``PatternRecognizer`` takes a deny list, but a name is a *sequence* of capitalized words
anchored on a known first name (and later mentions of its parts), which a deny list of
44,000 words cannot say, and spaCy's statistical ``ner`` (``name_finder = "model"``) costs
about 12 ms per KB of text here against this finder's ~0.2 (``bench/redact.py``).

What is a name, in one pass over the words of a line (a name never spans lines):

- a known first name, capitalized, followed by up to three capitalized words (particles
  such as ``van``, ``de``, ``al`` between them allowed): ``Maria Garcia``,
  ``Siobhan O'Connor``, ``Fatima Al-Sayed``, ``Ludwig van Beethoven``;
- a title (``Mr``, ``Mrs``, ``Ms``, ``Dr``, ``Prof``, ...) followed by capitalized words: the
  words after the title (``Mr Petrov``);
- a known first name alone, capitalized, that is not a place, a month or a day: inside a
  sentence (``ask Kwame to``), or at a line's or sentence's start when a comma or a
  possessive follows it (``Mark, can you``, ``John's report``); a possessive ``'s`` is never
  part of the name (``Margaret's desk``: ``Margaret``; ``Garcia's`` after ``Maria Garcia``);
- afterwards, any word that was the first or the last word of a name found in the text
  (``Garcia`` alone, after ``Maria Garcia``).

Its mistakes are on the side of redacting too much: a capitalized first name that is also a
word (``Bill to:``) is taken for a name.
"""

from __future__ import annotations

import calendar
import importlib
import pkgutil
import re
import threading
from collections.abc import Iterator
from typing import Any

from presidio_analyzer import EntityRecognizer, RecognizerResult

#: Presidio's score for a name found this way (spaCy's recognizer gives its names 0.85).
SCORE = 0.85

_TITLES = frozenset(
    {"Mr", "Mrs", "Ms", "Miss", "Mx", "Dr", "Prof", "Sir", "Dame", "Lord", "Lady", "Madam"}
)
_PARTICLES = frozenset(
    {"van", "von", "de", "da", "del", "della", "der", "den", "di", "du", "la", "le", "bin",
     "ibn", "al", "el", "ter", "ten", "dos", "das", "y"}
)  # fmt: skip
#: Words: letters (with ' and - inside them), or any other single character but spaces. A
#: possessive ``'s`` is not part of its word (``John's`` is ``John``, ``'``, ``s``), so the name
#: is found in it; an apostrophe before any other letters is (``O'Connor``, ``D'Souza``).
_WORD = re.compile(
    r"[^\W\d_](?:[^\W\d_]|['\u2019](?!s(?![^\W\d_]))(?=[^\W\d_])|-(?=[^\W\d_]))*|[^\s]"
)
_APOSTROPHES = frozenset({"'", "\u2019"})
_SENTENCE_END = frozenset({".", "!", "?", ":", ";"})


class NameLists:
    """The lists (built once per process, ~0.3 s, on first use)."""

    _lock = threading.Lock()
    _built: NameLists | None = None

    def __init__(self, first: frozenset[str], last: frozenset[str], not_alone: frozenset[str]):
        self.first, self.last, self.not_alone = first, last, not_alone

    @classmethod
    def get(cls) -> NameLists:
        with cls._lock:
            if cls._built is None:
                cls._built = cls._build()
            return cls._built

    @classmethod
    def _build(cls) -> NameLists:
        first: set[str] = set()
        last: set[str] = set()
        places: set[str] = set()
        for attr, values in _provider_lists("faker.providers.person"):
            if attr.startswith(("first_name", "first_romanized")):
                first.update(v for v in values if _latin_word(v))
            elif attr.startswith(("last_name", "last_romanized")):
                last.update(v for v in values if _latin_word(v))
        for attr, values in _provider_lists("faker.providers.address"):
            if any(k in attr for k in ("cit", "countr", "state", "province", "region")):
                places.update(v for v in values if isinstance(v, str))
        calendar_words = {*calendar.month_name, *calendar.day_name} - {""}
        return cls(frozenset(first), frozenset(last), frozenset(places | calendar_words))


def _provider_lists(package: str) -> Iterator[tuple[str, Any]]:
    """``(attribute, values)`` of every list, tuple, set or dict attribute of the ``Provider``
    class of each locale module under ``package``."""
    root = importlib.import_module(package)
    for info in pkgutil.iter_modules(root.__path__):
        try:
            module = importlib.import_module(f"{package}.{info.name}")
        except ImportError:  # pragma: no cover - a locale Faker itself cannot import
            continue
        provider = getattr(module, "Provider", None)
        if provider is None:
            continue
        for attr, values in vars(provider).items():
            if isinstance(values, list | tuple | set | frozenset | dict):
                yield attr, values


def _latin_word(value: Any) -> bool:
    return (
        isinstance(value, str)
        and len(value) > 1
        and all(c in "-' " or (c.isalpha() and ord(c) < 0x250) for c in value)
    )


def _capitalized(word: str) -> bool:
    return len(word) > 1 and word[0].isupper() and any(c.islower() for c in word[1:])


def find_names(text: str, lists: NameLists) -> list[tuple[int, int]]:
    """The ``(start, end)`` of each name in ``text`` (module docstring), in order."""
    found: list[tuple[int, int]] = []
    parts: set[str] = set()  # first and last words of the names found
    for line_start, line in _lines(text):
        words = [(m.group(), m.start() + line_start, m.end() + line_start)
                 for m in _WORD.finditer(line)]  # fmt: skip
        i, n = 0, len(words)
        while i < n:
            word, start, end = words[i]
            if word in _TITLES:
                j = i + 1 + (i + 1 < n and words[i + 1][0] == ".")
                k = _run_end(words, j, anchored=False)
                if k >= j:
                    found.append((words[j][1], words[k][2]))
                    parts.add(words[k][0])
                    i = k + 1
                    continue
            elif _capitalized(word) and word in lists.first:
                k = _run_end(words, i + 1, anchored=True)
                if k > i:
                    found.append((start, words[k][2]))
                    parts.update((word, words[k][0]))
                    i = k + 1
                    continue
                if word not in lists.not_alone and _alone_ok(words, i):
                    found.append((start, end))
            i += 1
    if parts:
        spans = sorted(found)
        for m in _WORD.finditer(text):
            if m.group() in parts and not _inside(spans, m.start()):
                found.append((m.start(), m.end()))
    return sorted(found)


def _lines(text: str) -> Iterator[tuple[int, str]]:
    at = 0
    for line in text.splitlines(keepends=True):
        yield at, line
        at += len(line)


def _run_end(words: list[tuple[str, int, int]], j: int, *, anchored: bool) -> int:
    """The index of the last word of the run of (up to three) capitalized words starting at
    ``j``, or ``j - 1`` if there is none. Particles may stand between them, and before the
    first if the run continues a name (``anchored``: ``Ludwig van Beethoven``)."""
    k, n = j - 1, len(words)
    while k + 1 < n and k + 1 - j < 3:
        nxt = words[k + 1][0]
        if _capitalized(nxt):
            k += 1
        elif (
            nxt in _PARTICLES
            and k + 2 < n
            and _capitalized(words[k + 2][0])
            and (anchored or k >= j)
        ):
            k += 2
        else:
            break
    return k


def _alone_ok(words: list[tuple[str, int, int]], i: int) -> bool:
    """A lone first name: inside a sentence, or first with a comma or a possessive after it
    (``Mark, can you``, ``John's report``)."""
    starts = i == 0 or words[i - 1][0] in _SENTENCE_END
    after = [w for w, _, _ in words[i + 1 : i + 3]]
    return (
        not starts
        or after[:1] == [","]
        or (after[:1] != [] and after[0] in _APOSTROPHES and after[1:] == ["s"])
    )


def _inside(spans: list[tuple[int, int]], at: int) -> bool:
    return any(a <= at < b for a, b in spans)


class LexiconNameRecognizer(EntityRecognizer):
    """Presidio's ``PERSON`` from name lists (module docstring)."""

    def __init__(self) -> None:
        super().__init__(supported_entities=["PERSON"], name="LexiconNameRecognizer")

    def load(self) -> None:
        NameLists.get()

    def analyze(
        self, text: str, entities: list[str], nlp_artifacts: Any = None
    ) -> list[RecognizerResult]:
        if "PERSON" not in entities:
            return []
        lists = NameLists.get()
        return [
            RecognizerResult("PERSON", start, end, SCORE) for start, end in find_names(text, lists)
        ]
