"""The built-in demo app (``aiosys demo``): a legal team's document intake on bundled letters.

It shows each kind of effect the kernel records, the model data plane running real offline
models (nothing is downloaded, no key is needed), and a person in the loop:

1. ``read_scan`` is a model task: a letter arrives as a scanned page (``aiosys demo``
   renders one) and Tesseract OCR reads it, through the router, metered, recorded (lineage
   keeps the SHA-256 of the scan's bytes);
2. ``extract`` and ``classify`` are steps; ``classify`` fails transiently on its first
   attempt (a simulated overloaded classifier) and succeeds on the retry its ``Retry``
   policy grants, so the timeline shows attempt 2;
3. ``summarize`` is a model task whose plan tries a local LLM first (an OpenAI-compatible
   server such as Ollama or vLLM, used only when ``AIOSYS_DEMO_LLM_URL`` names one) and
   falls back to the extractive summarizer; the letter is ``confidential``, so no external
   model may see it;
4. ``ctx.human_task("review", role="paralegal", form=Review, sla="2d")`` parks the run until
   a paralegal approves the summary and category, edits them (the edit must fit ``Review``)
   or rejects them (``aiosys demo`` decides as the paralegal ``pat``, from outside the run;
   by hand: ``aiosys tasks list`` and ``aiosys tasks complete TASK_ID --app aiosys.demo:app``);
5. ``file_document`` runs as a child workflow with the reviewed category;
6. ``ctx.sleep(1)`` is a durable timer (the run holds no worker while it waits);
7. ``bill`` invoices the matter (intake fee of its category and the review), once: the
   invoice number comes from the step's idempotency key.

A rejected review ends the run unfiled and unbilled. Run it on its own:
``aiosys run document_intake --app aiosys.demo:app`` (the letter as text) waits for the review.
"""

from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

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

#: The e-mails that arrive beside the scanned letter (as text: no OCR).
EMAILS = (
    """\
From: Jonas Weber <j.weber@example.net>
Date: 2024-03-15
Subject: Complaint about the handling of policy KL-55812

Dear team,

I am disappointed by the delay in handling my car insurance case.
I sent the requested documents on 20 February and have had no answer since.
Two calls to your hotline ended without anyone taking my details.
I find this unacceptable and ask for a written reply within ten days.
If the case cannot be settled, I would like a refund of this year's premium.

Regards,
Jonas Weber
""",
    """\
From: Ana Costa <ana.costa@example.com>
Date: 2024-03-18
Subject: Cancel my home contents policy HC-70344

Hello,

I am moving abroad at the end of April and would like to cancel my home contents policy.
Please terminate the policy with effect from 30 April and confirm the notice in writing.
Any premium paid for the months after that date should be returned to my usual account.

Best regards,
Ana Costa
""",
)

CATEGORY = Literal["claim", "complaint", "cancellation", "inquiry"]
TEAMS = {"claim": "property-claims", "complaint": "customer-care", "cancellation": "retention"}
#: What the intake of a document of each category is billed, and a paralegal's review of it.
FEES: dict[str, float] = {"claim": 120.0, "complaint": 60.0, "cancellation": 40.0}
REVIEW_FEES: dict[str, float] = {"approve": 35.0, "edit": 50.0}


class Review(BaseModel):
    """What the paralegal reviews, and what an edit must fit: the summary (20 to 600
    characters) and the category."""

    model_config = ConfigDict(extra="forbid")

    summary: str = Field(min_length=20, max_length=600)
    category: CATEGORY


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


@app.step
def bill(matter: str, category: str, review: str) -> dict[str, Any]:
    """Invoice the matter: the intake fee of its category and the paralegal's review. The
    invoice number is derived from the step's idempotency key (run id and effect number),
    which a billing system dedupes on: a retry or a replay never bills twice."""
    info = current_step()
    key = info.idempotency_key if info is not None else matter
    lines = [
        {"item": f"{category} intake", "amount": FEES.get(category, 25.0)},
        {"item": f"paralegal review ({review})", "amount": REVIEW_FEES.get(review, 35.0)},
    ]
    return {
        "invoice": "INV-" + hashlib.sha256(key.encode()).hexdigest()[:8].upper(),
        "matter": matter,
        "lines": lines,
        "total": sum(line["amount"] for line in lines),
        "currency": "EUR",
    }


@app.workflow
async def document_intake(
    ctx: Context, text: str | None = None, scan: str | None = None
) -> dict[str, Any]:
    """Read the scan (OCR), extract, classify, summarize, have a paralegal review the
    summary, file, wait a moment and bill. Without ``scan`` or ``text`` it reads the bundled
    letter as text."""
    if scan is not None:
        text = (await ctx.models.run("read_scan", {"document": scan})).text
    text = text or SAMPLE_LETTER
    fields = await extract(text)
    label = await classify(text)
    body = text.split("\n\n", 1)[-1]  # past the header
    summary = (
        await ctx.models.run("summarize", {"text": body}, classification="confidential")
    ).summary
    decision = await ctx.human_task(
        "review",
        role="paralegal",
        data={"summary": summary, "category": label["category"]},
        form=Review,
        sla="2d",
        escalate_to=["senior-paralegal"],
    )
    review = {"action": decision.action, "by": decision.decided_by, "comment": decision.comment}
    result: dict[str, Any] = {
        "sender": fields["sender"],
        "policy": fields["policy"],
        "amount": fields["amount"],
        "confidence": label["confidence"],
        "review": review,
    }
    if not decision.approved:  # rejected: neither filed nor billed
        return {**result, "category": label["category"], "summary": summary}
    reviewed = Review.model_validate(decision.data)  # as the paralegal left it
    filing = await ctx.child(
        "file_document", {"category": reviewed.category, "reference": fields["policy"]}
    )
    await ctx.sleep(1)  # a durable cooling-off period: a restart neither shortens nor loses it
    invoice = await bill(filing["record"], reviewed.category, decision.action)
    return {
        **result,
        "category": reviewed.category,
        "summary": reviewed.summary,
        "filed_as": filing["record"],
        "team": filing["team"],
        "invoice": invoice,
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
