"""Redaction: personal data kept from the models that must not see it, and given back to
the callers allowed to.

A model effect whose request goes to a card that must not see personal data (``applies``)
has each text of that request searched (``pii.Detector``: e-mails, phone numbers, card
numbers, IBANs, national identifiers, names) and every finding replaced:

- ``pseudonymize`` (the default): by a pseudonym stable within the run, ``<PERSON_1>``,
  ``<EMAIL_ADDRESS_1>``, ...: the same value (compared as written, less case and spacing;
  digits only for numbers) gets the same pseudonym in every model call of the run, so a
  model can still tell two people apart and refer to them; the answer's pseudonyms are
  restored for callers allowed to read the data (``restore``);
- ``mask``: by its type alone, ``<PERSON>``; nothing can be restored.

Which calls: ``Redaction.when`` of the task (else the app's default) and the card's own
``redaction``: ``always`` on either redacts; else ``never`` on either does not; else
(``auto``, the default of both) the call is redacted when the card is ``external`` and the
data's classification is ``min_classification`` or stricter (``confidential``: so
confidential and restricted data; an unknown label counts as strict). An on-premises card
gets the text as it is.

What is kept (``redaction_gate``): on the effect, the types and counts of what was replaced,
never a value; the pseudonyms of a run, with what they stand for, in the store's
``pseudonyms`` table, scoped to the run and its tenant (see the README, "Redaction").
"""

from __future__ import annotations

import asyncio
import re
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from ..errors import ConfigError
from .pii import ENTITIES, Detector, Finding
from .policy_entities import CLASSIFICATIONS, UNCLASSIFIED

When = Literal["auto", "always", "never"]
Mode = Literal["pseudonymize", "mask"]
WHEN: tuple[When, ...] = ("auto", "always", "never")
MODES: tuple[Mode, ...] = ("pseudonymize", "mask")


@dataclass(frozen=True, slots=True)
class Redaction:
    """How a task's model calls are redacted (``app.models.task(..., redaction=...)``; the
    app's default otherwise: ``[redaction]`` in aiosys.toml).

    ``when``: ``auto`` (external cards, data of ``min_classification`` or stricter),
    ``always`` (every card, every classification) or ``never``; ``entities``: the types to
    find (``pii.ENTITIES`` names); ``mode``: ``pseudonymize`` or ``mask``. ``ConfigError``
    for an unknown value."""

    when: When = "auto"
    entities: frozenset[str] = frozenset(ENTITIES)
    mode: Mode = "pseudonymize"
    min_classification: str = "confidential"

    def __post_init__(self) -> None:
        if self.when not in WHEN:
            raise ConfigError(
                f"redaction 'when' must be one of {', '.join(WHEN)}, not {self.when!r}"
            )
        if self.mode not in MODES:
            raise ConfigError(
                f"redaction mode must be one of {', '.join(MODES)}, not {self.mode!r}"
            )
        entities = frozenset(self.entities)
        unknown = sorted(entities - set(ENTITIES))
        if unknown:
            raise ConfigError(
                f"unknown entity type(s) to redact: {', '.join(unknown)} "
                f"(known: {', '.join(ENTITIES)})"
            )
        object.__setattr__(self, "entities", entities)
        if self.min_classification not in CLASSIFICATIONS:
            raise ConfigError(
                f"redaction min_classification must be one of {', '.join(CLASSIFICATIONS)}, "
                f"not {self.min_classification!r}"
            )


def applies(rule: Redaction, card_when: str, external: bool, classification: str | None) -> bool:
    """Whether a call under ``rule`` to a card (its ``redaction``, whether it is
    ``external``) of data classified ``classification`` is redacted (module docstring)."""
    if "always" in (rule.when, card_when):
        return True
    if "never" in (rule.when, card_when):
        return False
    return external and strict(classification, rule.min_classification)


def strict(classification: str | None, floor: str) -> bool:
    """``classification`` is ``floor`` or stricter; an unknown label counts as strict (a typo
    must not send data out unredacted), none or ``unclassified`` does not."""
    if classification is None or classification == UNCLASSIFIED:
        return False
    if classification not in CLASSIFICATIONS:
        return True
    return CLASSIFICATIONS.index(classification) >= CLASSIFICATIONS.index(floor)


# ---- pseudonyms ---------------------------------------------------------------------------

#: A pseudonym as it appears in text: ``<PERSON_1>``.
TOKEN = re.compile(r"<([A-Z][A-Z_]*)_([1-9][0-9]*)>")
_NOT_DIGITS = re.compile(r"\D+")
_NOT_ALNUM = re.compile(r"[^0-9A-Za-z]+")
_SPACES = re.compile(r"\s+")


def same_value_key(entity: str, value: str) -> str:
    """What makes two findings the same value: a name or an e-mail address less case and
    spacing, a phone number's digits, a card number's or identifier's letters and digits."""
    if entity == "PHONE_NUMBER":
        return _NOT_DIGITS.sub("", value)
    if entity in ("CREDIT_CARD", "IBAN_CODE", "US_SSN", "UK_NINO"):
        return _NOT_ALNUM.sub("", value).upper()
    return _SPACES.sub(" ", value).strip().casefold()


@dataclass(frozen=True, slots=True)
class Pseudonym:
    """``token`` (``<PERSON_1>``) stands for ``value``, of type ``entity``."""

    token: str
    entity: str
    value: str


class Pseudonyms:
    """The pseudonyms of one run (or of one call outside a run): each value of a type gets
    the next number of that type, in the order values are met, and keeps it. Tokens are
    numbered past every token already known, so a run recovered after a crash never reuses
    a number an earlier execution committed."""

    def __init__(self, known: Iterable[Pseudonym] = ()) -> None:
        self._by_key: dict[tuple[str, str], Pseudonym] = {}
        self._by_token: dict[str, Pseudonym] = {}
        self._next: dict[str, int] = {}
        for p in known:
            self._keep(p)

    def _keep(self, p: Pseudonym) -> None:
        self._by_token[p.token] = p
        self._by_key.setdefault((p.entity, same_value_key(p.entity, p.value)), p)
        m = TOKEN.fullmatch(p.token)
        if m is not None and m.group(1) == p.entity:
            self._next[p.entity] = max(self._next.get(p.entity, 1), int(m.group(2)) + 1)

    def __len__(self) -> int:
        return len(self._by_token)

    def pseudonym(self, entity: str, value: str) -> Pseudonym:
        """The pseudonym of ``value`` (of type ``entity``): the one it has, else a new one."""
        key = (entity, same_value_key(entity, value))
        found = self._by_key.get(key)
        if found is None:
            n = self._next.get(entity, 1)
            found = Pseudonym(f"<{entity}_{n}>", entity, value)
            self._keep(found)
        return found

    def get(self, token: str) -> Pseudonym | None:
        return self._by_token.get(token)

    def restore(self, text: str, entities: Iterable[str]) -> str:
        """``text`` with the pseudonyms of the types in ``entities`` replaced by their
        values (tokens of other types, and tokens this table does not know, stay)."""
        if "<" not in text:
            return text
        allowed = set(entities)

        def value(m: re.Match[str]) -> str:
            p = self._by_token.get(m.group(0))
            return p.value if p is not None and p.entity in allowed else m.group(0)

        return TOKEN.sub(value, text)


# The tail of a text that may be the start of a pseudonym cut by the end of a piece.
_PARTIAL = re.compile(r"<[A-Z0-9_]{0,62}\Z")


class StreamRestorer:
    """Restores pseudonyms in a text that arrives in pieces (a streamed answer): a piece's
    tail that may be the start of one (``<EMAIL_AD``) is held back until the next piece
    shows whether it is; ``flush`` gives what is held at the end."""

    __slots__ = ("_held", "entities", "table")

    def __init__(self, table: Pseudonyms, entities: Iterable[str]) -> None:
        self.table = table
        self.entities = frozenset(entities)
        self._held = ""

    def feed(self, text: str) -> str:
        buffered = self._held + text
        partial = _PARTIAL.search(buffered)
        cut = len(buffered) if partial is None else partial.start()
        self._held = buffered[cut:]
        return self.table.restore(buffered[:cut], self.entities)

    def flush(self) -> str:
        held, self._held = self._held, ""
        return self.table.restore(held, self.entities)


def restore_value(value: Any, table: Pseudonyms, entities: Iterable[str]) -> Any:
    """``value`` (text, a list, a dict, a pydantic model of them) with the pseudonyms of
    ``entities`` in its texts restored; a pydantic model is validated again (should the
    restored model not validate, as a length limit may refuse it, the value with the
    pseudonyms is returned)."""
    allowed = frozenset(entities)
    if not allowed or not len(table):
        return value
    dump = getattr(value, "model_dump", None)
    if callable(dump):
        data = dump(mode="python")
        restored = _walk(data, table, allowed)
        if restored == data:
            return value
        try:
            return type(value).model_validate(restored)
        except ValueError:
            return value
    return _walk(value, table, allowed)


def _walk(value: Any, table: Pseudonyms, allowed: frozenset[str]) -> Any:
    if isinstance(value, str):
        return table.restore(value, allowed)
    if isinstance(value, list | tuple):
        return type(value)(_walk(v, table, allowed) for v in value)
    if isinstance(value, dict):
        return {k: _walk(v, table, allowed) for k, v in value.items()}
    return value


# ---- one effect's redaction ---------------------------------------------------------------


@dataclass(slots=True)
class Redactor:
    """The redaction of one model effect, shared by its attempts (the router's candidates,
    retries, a shadow): the links ask ``applies`` for each card and ``redact`` the texts of
    the requests that go to one; ``counts`` are what was replaced (each distinct text
    counted once), ``sent`` the deployments that got a redacted request.

    ``table`` gives the run's pseudonyms (loaded once, on first use). Detection runs in a
    worker thread; pseudonyms are given out on the event loop's thread, after it, so
    concurrent calls of one run number values without a race. ``may_read(type)`` says
    whether the effect's caller may have values of that type back (None: it may)."""

    detector: Detector
    table: Callable[[], Awaitable[Pseudonyms]]
    rule: Redaction
    classification: str | None
    may_read: Callable[[str], bool] | None = None
    counts: Counter[str] = field(default_factory=Counter)
    used: set[str] = field(default_factory=set)  # tokens this effect put in its requests
    sent: list[str] = field(default_factory=list)  # deployments that got a redacted request
    request: Any = None  # the first redacted request (what a span may show as the input)
    _done: dict[tuple[str, ...], list[str]] = field(default_factory=dict)

    def applies(self, card_when: str, external: bool) -> bool:
        """Whether requests to this card are redacted (``redaction.applies``)."""
        return applies(self.rule, card_when, external, self.classification)

    async def redact(self, texts: Sequence[str], deployment: str) -> list[str]:
        """``texts`` with their personal data replaced (``rule.mode``), for ``deployment``."""
        if deployment not in self.sent:
            self.sent.append(deployment)
        key = (self.rule.mode, *sorted(self.rule.entities), "\x00", *texts)
        done = self._done.get(key)
        if done is not None:
            return list(done)
        found = await asyncio.to_thread(self.detector.find, list(texts), self.rule.entities)
        table = await self.table()
        out = [
            self._replace(text, kept(findings), table)
            for text, findings in zip(texts, found, strict=True)
        ]
        self._done[key] = out
        return list(out)

    def _replace(self, text: str, findings: list[Finding], table: Pseudonyms) -> str:
        if not findings:
            return text
        from ._anonymize import splice

        tokens: list[str] = []
        for f in findings:
            self.counts[f.type] += 1
            if self.rule.mode == "mask":
                tokens.append(f"<{f.type}>")
                continue
            token = table.pseudonym(f.type, text[f.start : f.end]).token
            self.used.add(token)
            tokens.append(token)
        return splice(text, findings, tokens)

    async def restorer(self) -> StreamRestorer | None:
        """For a streamed answer to a request this effect redacted: what restores, as the
        pieces arrive, the pseudonyms of the types its caller may read (None: none to
        restore, or ``mask`` mode). The whole answer is restored the same way when the
        effect ends (``redaction_gate``)."""
        if self.rule.mode == "mask":
            return None
        may_read = self.may_read
        types = [t for t in self.counts if may_read is None or may_read(t)]
        if not types:
            return None
        return StreamRestorer(await self.table(), types)

    def summary(self) -> dict[str, Any]:
        """What the effect's record keeps: ``entities`` (type -> count), ``mode`` and the
        deployments that got the redacted request (``sent``). Never a value."""
        return {
            "entities": dict(sorted(self.counts.items())),
            "mode": self.rule.mode,
            "sent": list(self.sent),
        }


def kept(findings: list[Finding]) -> list[Finding]:
    """Findings that do not overlap, by position: where two overlap the one with the higher
    score wins, then the longer, then the earlier."""
    chosen: list[Finding] = []
    for f in sorted(findings, key=lambda f: (-f.score, -(f.end - f.start), f.start)):
        if all(f.end <= c.start or c.end <= f.start for c in chosen):
            chosen.append(f)
    return sorted(chosen, key=lambda f: f.start)


def counts_text(counts: dict[str, int]) -> str:
    """Counts by type as one line for an audit record: ``EMAIL_ADDRESS:1,PERSON:2``."""
    return ",".join(f"{k}:{v}" for k, v in sorted(counts.items()))


__all__ = [
    "MODES",
    "TOKEN",
    "WHEN",
    "Pseudonym",
    "Pseudonyms",
    "Redaction",
    "Redactor",
    "applies",
    "counts_text",
    "restore_value",
    "same_value_key",
    "strict",
]
