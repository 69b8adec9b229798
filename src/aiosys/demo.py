"""The built-in demo app (``aiosys demo``): a document-intake workflow on a bundled letter.

It shows each kind of effect the kernel records, and the model data plane running real
offline models (nothing is downloaded, no key is needed):

1. ``read_scan`` is a model task: the letter arrives as a scanned page (``aiosys demo``
   renders one) and Tesseract OCR reads it, through the router, metered, recorded;
2. ``extract`` and ``classify`` are steps; ``classify`` fails transiently on its first
   attempt (a simulated overloaded classifier) and succeeds on the retry its ``Retry``
   policy grants, so the timeline shows attempt 2;
3. ``summarize`` is a model task whose plan tries a local LLM first (an OpenAI-compatible
   server such as Ollama or vLLM, used only when ``AIOSYS_DEMO_LLM_URL`` names one) and
   falls back to the extractive summarizer; the letter is ``confidential``, so no external
   model may see it;
4. ``file_document`` runs as a child workflow;
5. ``ctx.sleep(1)`` is a durable timer (the run holds no worker while it waits);
6. ``ctx.wait_for("approve")`` parks the run until someone sends the signal
   (``aiosys demo`` sends it itself; by hand: ``aiosys runs signal RUN_ID approve``).

Run it on its own: ``aiosys run document_intake --app aiosys.demo:app`` (the letter as
text) waits for the signal.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from .app import App
from .errors import TransientError
from .kernel import Context, Retry, current_step
from .models.contracts import Candidate, RouteContext, RoutingPlan
from .models.types import Message, ModelRequest

app = App()

# The models the demo uses, declared here so that ``aiosys demo`` works from any folder (the
# richer cards of a project's models/ folder replace them when it has them).
LLM_URL = os.environ.get("AIOSYS_DEMO_LLM_URL")  # e.g. http://127.0.0.1:11434/v1 (Ollama)
app.models.add_card({"id": "ocr-tesseract", "version": "5", "kind": "ocr", "provider": "tesseract"})
app.models.add_card(
    {
        "id": "summarizer-extractive",
        "version": "1",
        "kind": "summarize",
        "provider": "summarizer",
        "options": {"sentences": 2},
    }
)
app.models.add_card(
    {
        "id": "demo-llm",
        "kind": "chat",
        "provider": "openai",
        "endpoint": LLM_URL or "http://127.0.0.1:11434/v1",
        "provider_model": os.environ.get("AIOSYS_DEMO_LLM_MODEL", "llama3.2"),
        "external": False,
        "timeout": 30.0,
    }
)


class Scan(BaseModel):
    document: str  # path of an image or PDF


class Text(BaseModel):
    text: str


class Letter(BaseModel):
    text: str


class Summary(BaseModel):
    summary: str


app.models.task(
    "read_scan",
    input=Scan,
    output=Text,
    build=lambda scan: ModelRequest(kind="ocr", document=scan.document),
    parse=lambda r: {"text": r.output},
    plan=RoutingPlan(["ocr-tesseract"]),
)


def _llm_configured(_: RouteContext) -> bool:
    return LLM_URL is not None


app.models.task(
    "summarize",
    input=Letter,
    output=Summary,
    build=lambda letter: ModelRequest(
        messages=[
            Message(role="system", content="Summarize the letter in two sentences."),
            Message(role="user", content=letter.text),
        ],
        params={"max_tokens": 120},
    ),
    parse=lambda r: {"summary": str(r.output).strip()},
    plan=RoutingPlan(
        [
            Candidate("demo-llm", when=_llm_configured, retries=0),
            Candidate(
                "summarizer-extractive",
                build=lambda letter: ModelRequest(kind="summarize", text=letter.text),
            ),
        ]
    ),
    slo_p95_ms=5000,
)

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
    ctx: Context,
    text: str | None = None,
    scan: str | None = None,
    approval_timeout: float = 120.0,
) -> dict[str, Any]:
    """Read the scan (OCR), extract, classify, summarize, file, wait a moment, and wait for
    a reviewer. Without ``scan`` or ``text`` it reads the bundled letter as text."""
    if scan is not None:
        text = (await ctx.models.run("read_scan", {"document": scan})).text
    text = text or SAMPLE_LETTER
    fields = await extract(text)
    label = await classify(text)
    body = text.split("\n\n", 1)[-1]  # past the header
    summary = (
        await ctx.models.run("summarize", {"text": body}, classification="confidential")
    ).summary
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


def render_scan(path: Path, text: str = SAMPLE_LETTER) -> Path:
    """Render ``text`` as a scanned page (PNG, black on white) for the OCR task to read."""
    from PIL import Image, ImageDraw, ImageFont  # the offline extra

    lines = text.splitlines()
    font: ImageFont.FreeTypeFont | ImageFont.ImageFont
    try:  # a serif face where the system has one: Tesseract reads its capital I as I
        font = ImageFont.truetype("DejaVuSerif.ttf", 28)
    except OSError:  # Pillow >= 10.1 bundles a scalable sans face (its I reads as |)
        font = ImageFont.load_default(size=28)
    width = int(max(font.getlength(line) for line in lines)) + 120
    page = Image.new("L", (width, 100 + 40 * len(lines)), 255)
    draw = ImageDraw.Draw(page)
    for i, line in enumerate(lines):
        draw.text((60, 50 + i * 40), line, fill=0, font=font)
    page.save(path)
    return path
