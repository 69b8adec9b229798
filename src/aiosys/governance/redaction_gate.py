"""``redact``: the gate's interceptor that keeps personal data from the models that must not
see it, and the presenter that gives it back to the callers allowed to read it.

The interceptor sits right inside ``authorize`` (DESIGN.md: authorize, then redact, then
budget, cache, ...) and outside retry. For every ``model`` effect it puts a ``Redactor``
(``redaction.py``) in ``call.meta["redactor"]``; the model plane's ``redact`` link asks it,
for each deployment an attempt goes to, whether that card's requests are redacted, and has
their texts redacted there (so an on-premises candidate of the same plan gets the text as
it is). Nothing is detected unless a request goes to such a card.

When the effect ends, what was redacted is kept on it, never a value:

- ``meta["record"]["redaction"]``: ``entities`` (type -> count), ``mode``, ``sent`` (the
  deployments that got a redacted request), and ``restore``: the types whose pseudonyms the
  caller may read back (decided now, so the same on every replay);
- ``meta["record"]["redacted"]``: the counts as one line (``EMAIL_ADDRESS:1,PERSON:2``),
  which the effect's audit record keeps in its ``detail``, and the span's
  ``aiosys.redaction.entities`` attribute;
- the run's pseudonyms that the effect used, in the store's ``pseudonyms`` table (run and
  tenant, token, type, value), committed with the effect's record and only while the run is
  still held under the claim that made them (``pseudonym_put``).

Restoring: the caller is the principal the effect acts for (the run's starter; for a call
outside a run the principal bound around it; a streamed call's pieces are restored as they
arrive, ``Redactor.restorer``). It may read a type's values back when the
policies allow ``read_data`` on ``Dataset::"pii/<TYPE>"`` (attributes ``classification``:
the call's, and ``tenant``), in the effect's context; with no policies installed, every
caller may. The presenter (``Gate.present``) restores those types in what the workflow
receives, on the first execution and on replay alike, from the run's pseudonyms (read from
the store once per execution); the record keeps the pseudonyms.
"""

from __future__ import annotations

import asyncio
import os
import tomllib
import weakref
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import ConfigError
from ..kernel.gate import EffectCall, Next
from ..store import Store
from ..store.base import now
from .pii import ENTITIES, NAME_FINDERS, DetectorSettings, detector
from .redaction import MODES, WHEN, Pseudonym, Pseudonyms, Redaction, Redactor, counts_text
from .redaction import restore_value as _restore_value

if TYPE_CHECKING:
    from ..kernel.runtime import Execution

#: ``call.meta`` keys: the effect's ``Redactor`` (the model plane's links use it), and the
#: first request it redacted (a span shows it as the call's input when content is on).
REDACTOR = "redactor"
SENT = "redacted_request"
RECORD_KEY, SUMMARY_KEY = "redaction", "redacted"
_TRUE, _FALSE = {"1", "true", "on", "yes"}, {"0", "false", "off", "no"}

#: ``may_read(call, entity_type)``: whether the effect's principal may read that type back.
MayRead = Callable[[EffectCall, str], bool]


@dataclass(frozen=True, slots=True)
class RedactionSettings:
    """``enabled`` (on by default): the interceptor is installed; ``rule``: the default
    ``Redaction`` of tasks that set none and of direct calls; ``detector``: how personal
    data is found (``pii.DetectorSettings``).

    ``resolve`` takes them from the argument (a ``RedactionSettings``, or a bool for
    ``enabled``), else ``AIOSYS_REDACTION`` (on/off) for ``enabled``, else ``[redaction]`` in
    ./aiosys.toml: ``enabled``, ``when`` (auto/always/never), ``entities`` (a list of types),
    ``mode`` (pseudonymize/mask), ``min_classification``, ``phone_regions`` (a list of
    ISO 3166 codes), ``names`` (find person names), ``name_finder`` (lexicon/model/both:
    ``pii.DetectorSettings``), ``score_threshold``.
    ``ConfigError`` for a value it cannot read."""

    enabled: bool = True
    rule: Redaction = field(default_factory=Redaction)
    detector: DetectorSettings = field(default_factory=DetectorSettings)

    @classmethod
    def resolve(cls, arg: RedactionSettings | bool | None = None) -> RedactionSettings:
        if isinstance(arg, RedactionSettings):
            return arg
        table = _toml_redaction()
        on: Any = arg
        if on is None:
            on = os.environ.get("AIOSYS_REDACTION") or table.get("enabled")
        enabled = True if on is None else _flag("enabled", on)
        rule = Redaction(
            when=_choice(table, "when", "auto", WHEN),
            entities=frozenset(_texts(table, "entities", ENTITIES)),
            mode=_choice(table, "mode", "pseudonymize", MODES),
            min_classification=str(table.get("min_classification", "confidential")),
        )
        defaults = DetectorSettings()
        threshold = table.get("score_threshold", defaults.score_threshold)
        if not isinstance(threshold, int | float) or isinstance(threshold, bool):
            raise ConfigError(f"[redaction] score_threshold must be a number, not {threshold!r}")
        found = DetectorSettings(
            phone_regions=tuple(
                r.upper() for r in _texts(table, "phone_regions", defaults.phone_regions)
            ),
            names=_flag("names", table.get("names", defaults.names)),
            score_threshold=float(threshold),
            name_finder=_choice(table, "name_finder", defaults.name_finder, NAME_FINDERS),
        )
        return cls(enabled=enabled, rule=rule, detector=found)


class Redact:
    """The interceptor and the presenter (module docstring). ``settings`` is read on first
    use; ``store`` gives the app's store; ``may_read`` decides restoring (None: every
    caller may)."""

    def __init__(
        self,
        settings: Callable[[], RedactionSettings],
        store: Callable[[], Store],
        may_read: MayRead | None = None,
    ) -> None:
        self._settings = settings
        self._store = store
        self.may_read = may_read
        self._tables: weakref.WeakKeyDictionary[Execution, asyncio.Future[Pseudonyms]] = (
            weakref.WeakKeyDictionary()
        )

    @property
    def settings(self) -> RedactionSettings:
        return self._settings()

    def load(self) -> None:
        """Load the detector now (blocking: Presidio, spaCy and the name model, once per
        process), so that no call pays for it."""
        detector(self.settings.detector).load()

    async def __call__(self, call: EffectCall, next: Next) -> Any:
        if call.kind != "model":
            return await next(call)
        settings = self.settings
        if not settings.enabled:
            return await next(call)
        redactor = Redactor(
            detector(settings.detector),
            lambda: self._table(call),
            settings.rule,
            call.params.get("classification"),
            lambda entity: self._may_read(call, entity),
        )
        call.meta[REDACTOR] = redactor
        try:
            out = await next(call)
        except Exception:
            if redactor.sent:
                await self._done(call, redactor, served=False)
            raise
        if redactor.sent:
            await self._done(call, redactor, served=True)
        return out

    async def _done(self, call: EffectCall, redactor: Redactor, *, served: bool) -> None:
        """Keep what was redacted on the effect; its pseudonyms with its record."""
        summary = redactor.summary()
        record = call.meta.get("record")
        if not isinstance(record, dict):
            record = call.meta["record"] = {}
        restore: list[str] = []
        if served and record.get("deployment") in redactor.sent and summary["mode"] != "mask":
            restore = [t for t in summary["entities"] if self._may_read(call, t)]
        summary["restore"] = restore
        record[RECORD_KEY] = summary
        record[SUMMARY_KEY] = counts_text(summary["entities"]) or "none"
        if redactor.request is not None:
            call.meta[SENT] = redactor.request
        if redactor.used and call.run_execution is not None:
            table = await self._table(call)
            ex = call.execution
            run, at = ex.run, now()
            for token in sorted(redactor.used):
                p = table.get(token)
                if p is None:
                    continue
                row: dict[str, Any] = {"run_id": run.id, "token": p.token, "tenant": run.tenant}
                row |= {"entity": p.entity, "value": p.value, "now": at, "epoch": ex.epoch}
                call.also_write("pseudonym_put", row)

    def _may_read(self, call: EffectCall, entity: str) -> bool:
        return True if self.may_read is None else self.may_read(call, entity)

    async def present(self, call: EffectCall, output: Any, meta: dict[str, Any] | None) -> Any:
        """``Gate.present`` for ``model`` effects: ``output`` with the pseudonyms of the
        types the effect's record allows restored (module docstring)."""
        summary = meta.get(RECORD_KEY) if isinstance(meta, dict) else None
        if not isinstance(summary, dict) or not summary.get("restore"):
            return output
        table = await self._table(call)
        return _restore_value(output, table, summary["restore"])

    async def _table(self, call: EffectCall) -> Pseudonyms:
        """The pseudonyms of the call's run, read from the store once per execution (a call
        outside a run has a table of its own)."""
        ex = call.run_execution
        if ex is None:
            table = call.meta.get("pseudonyms")
            if table is None:
                table = call.meta["pseudonyms"] = Pseudonyms()
            assert isinstance(table, Pseudonyms)
            return table
        found = self._tables.get(ex)
        if found is None or (found.done() and found.exception() is not None):
            found = asyncio.ensure_future(self._load(ex))
            self._tables[ex] = found
        return await asyncio.shield(found)

    async def _load(self, ex: Execution) -> Pseudonyms:
        run = ex.run
        rows = await self._store().fetch(
            "pseudonyms_of_run", {"run_id": run.id, "tenant": run.tenant}
        )
        return Pseudonyms(Pseudonym(r["token"], r["entity"], r["value"]) for r in rows)


# ---- settings ---------------------------------------------------------------------------


def _toml_redaction() -> dict[str, Any]:
    path = Path("aiosys.toml")
    if not path.is_file():
        return {}
    try:
        with path.open("rb") as f:
            table = tomllib.load(f).get("redaction", {})
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"aiosys.toml is not valid TOML: {exc}") from None
    if not isinstance(table, dict):
        raise ConfigError("aiosys.toml: [redaction] must be a table")
    return table


def _flag(name: str, value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in _TRUE | _FALSE:
        return value.lower() in _TRUE
    raise ConfigError(f"redaction {name} must be on or off, not {value!r}")


def _choice(table: dict[str, Any], name: str, default: str, allowed: tuple[str, ...]) -> Any:
    value = table.get(name, default)
    if value not in allowed:
        raise ConfigError(f"[redaction] {name} must be one of {', '.join(allowed)}, not {value!r}")
    return value


def _texts(table: dict[str, Any], name: str, default: tuple[str, ...]) -> tuple[str, ...]:
    value = table.get(name, list(default))
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ConfigError(f"[redaction] {name} must be a list of strings, not {value!r}")
    return tuple(value)


__all__ = ["REDACTOR", "SENT", "MayRead", "Redact", "RedactionSettings"]
