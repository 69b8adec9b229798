"""The built-in demo app (``aiosys demo``): a document-intake workflow on a bundled letter.

It shows each kind of effect the kernel records, in plain Python with no model or service:

1. ``extract``, ``classify`` and ``summarize`` are steps; ``classify`` fails transiently on its
   first attempt (a simulated overloaded classifier) and succeeds on the retry its ``Retry``
   policy grants, so the timeline shows attempt 2;
2. ``file_document`` runs as a child workflow;
3. ``ctx.sleep(1)`` is a durable timer (the run holds no worker while it waits);
4. ``ctx.wait_for("approve")`` parks the run until someone sends the signal
   (``aiosys demo`` sends it itself; by hand: ``aiosys runs signal RUN_ID approve``).

Run it on its own: ``aiosys run document_intake --app aiosys.demo:app`` waits for the signal.
"""

from __future__ import annotations

import re
from collections import Counter
from typing import Any

from .errors import TransientError
from .kernel import App, Context, Retry, current_step

app = App()

SAMPLE_LETTER = """\
From: Maria Keller <maria.keller@example.org>
Date: 2024-03-14
Subject: Claim for water damage, policy HX-20931

Dear claims team,

On 9 March a pipe burst in the kitchen of my flat while I was away for the weekend.
The water damaged the wooden floor, the lower kitchen cabinets and the wall of the hallway.
A plumber repaired the pipe the next morning and his invoice is attached.
A flooring company inspected the damage on 12 March and estimated the repair at EUR 4,850.
I would like to claim the cost of the repair of the floor and the cabinets under my policy.
Photos of the damage taken on 10 March are attached to this letter.
Please let me know whether an assessor needs to visit before the repair can start.

Kind regards,
Maria Keller
"""

CATEGORIES: dict[str, tuple[str, ...]] = {
    "claim": ("claim", "damage", "repair", "policy", "invoice", "assessor"),
    "complaint": ("complaint", "unacceptable", "disappointed", "refund", "delay"),
    "cancellation": ("cancel", "terminate", "notice", "end my policy"),
    "inquiry": ("question", "wonder", "information", "how do", "could you"),
}

TEAMS = {"claim": "property-claims", "complaint": "customer-care", "cancellation": "retention"}

STOPWORDS = frozenset(
    "a an and are as at be by for from has i in is it its me my of on or the this to was "
    "were while whether with his her he she we our you your can would like please let know "
    "before after".split()
)


@app.step
def extract(text: str) -> dict[str, Any]:
    """Pull the letter's header fields and the amount it mentions."""

    def find(pattern: str) -> str | None:
        m = re.search(pattern, text, re.MULTILINE | re.IGNORECASE)
        return m.group(1).strip() if m else None

    amount = find(r"(EUR|USD|GBP)\s?[\d,.]+")
    value = find(r"(?:EUR|USD|GBP)\s?([\d,.]+)")
    return {
        "sender": find(r"^From:\s*([^<\n]+)"),
        "email": find(r"<([^>]+@[^>]+)>"),
        "date": find(r"^Date:\s*(.+)$"),
        "subject": find(r"^Subject:\s*(.+)$"),
        "policy": find(r"\b([A-Z]{2}-\d{4,})\b"),
        "amount": None if value is None else float(value.replace(",", "")),
        "currency": amount,
        "words": len(text.split()),
    }


@app.step(retry=Retry(attempts=3, backoff=0.2, jitter=0.0))
def classify(text: str) -> dict[str, Any]:
    """Score the letter against keyword lists. The first attempt of every run fails with a
    ``TransientError`` to show a retry in the timeline."""
    info = current_step()
    if info is not None and info.attempt == 1:
        raise TransientError("classifier overloaded (simulated); try again")
    lowered = text.lower()
    scores = {c: sum(lowered.count(w) for w in words) for c, words in CATEGORIES.items()}
    best = max(scores, key=lambda c: scores[c])
    total = sum(scores.values()) or 1
    return {"category": best, "confidence": round(scores[best] / total, 2), "scores": scores}


@app.step
def summarize(text: str, sentences: int = 2) -> str:
    """An extractive summary: the body's sentences with the most frequent content words."""
    body = text.split("\n\n", 1)[-1]
    candidates = [
        s.strip().replace("\n", " ") for s in re.split(r"(?<=[.!?])\s+", body) if len(s.split()) > 5
    ]
    words = re.findall(r"[a-z]+", body.lower())
    freq = Counter(w for w in words if w not in STOPWORDS and len(w) > 2)

    def score(sentence: str) -> float:
        tokens = re.findall(r"[a-z]+", sentence.lower())
        return sum(freq[t] for t in tokens) / (len(tokens) or 1)

    top = sorted(sorted(candidates, key=score, reverse=True)[:sentences], key=candidates.index)
    return " ".join(top)


@app.step
def assign_team(category: str) -> str:
    return TEAMS.get(category, "general-intake")


@app.workflow
async def file_document(
    ctx: Context, category: str, reference: str | None = None
) -> dict[str, Any]:
    """File the document with the team that handles its category (a child workflow)."""
    team = await assign_team(category)
    record = f"{category[:3].upper()}-{(reference or ctx.uuid()[:8]).upper()}"
    return {"team": team, "record": record}


@app.workflow
async def document_intake(
    ctx: Context, text: str = SAMPLE_LETTER, approval_timeout: float = 120.0
) -> dict[str, Any]:
    """Extract, classify, summarize, file, wait a moment, and wait for a reviewer."""
    fields = await extract(text)
    label = await classify(text)
    summary = await summarize(text)
    filing = await ctx.child(
        "file_document", {"category": label["category"], "reference": fields["policy"]}
    )
    await ctx.sleep(1)  # a durable cooling-off period: a restart neither shortens nor loses it
    approval = await ctx.wait_for("approve", timeout=approval_timeout)
    return {
        "sender": fields["sender"],
        "policy": fields["policy"],
        "amount": fields["amount"],
        "category": label["category"],
        "confidence": label["confidence"],
        "summary": summary,
        "filed_as": filing["record"],
        "team": filing["team"],
        "approval": approval,
    }
