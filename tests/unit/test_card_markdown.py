"""Model cards exported as Markdown documents."""

from __future__ import annotations

from aiosys.models.card_markdown import card_to_markdown
from aiosys.models.catalog import Limits, ModelCard, Pricing


def headings(markdown: str) -> list[str]:
    return [line for line in markdown.splitlines() if line.startswith("#")]


def test_a_full_card_has_every_section_in_order() -> None:
    card = ModelCard(
        id="gpt-4o-mini",
        version="2024-07-18",
        provider="openai",
        provider_model="gpt-4o-mini-2024-07-18",
        endpoint="https://api.openai.com/v1",
        owner="ml-platform",
        description="Small chat model.",
        intended_use=["drafting replies"],
        out_of_scope_use=["medical advice"],
        training_data=["public web data"],
        evaluation={"MMLU": 0.82, "notes | caveats": "vendor\nreported"},
        failure_modes=["hallucination"],
        risk_level="medium",
        data_residency="us",
        external=True,
        context_window=128000,
        pricing=Pricing(input_per_1k=0.00015, output_per_1k=0.0006),
        limits=Limits(requests_per_minute=500, tokens_per_minute=200000, shared="openai-org"),
        aliases=["production", "canary"],
    )
    md = card_to_markdown(card)
    assert headings(md) == [
        "# Model card: gpt-4o-mini (version 2024-07-18)",
        "## Model details",
        "## Intended use",
        "## Out-of-scope use",
        "## Training data",
        "## Evaluation",
        "## Known failure modes",
        "## Pricing",
        "## Limits",
    ]
    for line in (
        "- **Provider:** openai",
        "- **Provider model:** `gpt-4o-mini-2024-07-18`",
        "- **Endpoint:** <https://api.openai.com/v1>",
        "- **Owner:** ml-platform",
        "- **Kind:** chat",
        "- **Context window:** 128,000 tokens",
        "- **Data residency:** us",
        "- **External:** yes: requests leave the premises",
        "- **Risk level:** medium",
        "- **Aliases:** `production`, `canary`",
        "- drafting replies",
        "| MMLU | 0.82 |",
        "| notes \\| caveats | vendor reported |",  # one line per row, pipes escaped
        "| Input, per 1k tokens | 0.00015 |",
        "| Output, per 1k tokens | 0.0006 |",
        "- **Requests per minute:** 500",
        "- **Tokens per minute:** 200,000",
        "- **Shared with:** every card whose limits name `openai-org`",
    ):
        assert line in md.splitlines(), line
    assert "| Item | Price (USD) |" in md and "Per call" not in md
    assert md.endswith("\n") and "\n\n\n" not in md


def test_empty_sections_are_left_out() -> None:
    md = card_to_markdown(ModelCard(id="tiny", provider="local"))
    assert headings(md) == ["# Model card: tiny (version 1)", "## Model details"]
    assert "- **External:** no: runs on the premises" in md
    assert "Aliases" not in md and "Endpoint" not in md and "Context window" not in md
    assert md.endswith("- **Risk level:** low\n")


def test_time_priced_model_shows_its_per_second_price() -> None:
    card = ModelCard(id="ocr", kind="ocr", provider="tesseract", pricing=Pricing(per_second=0.0002))
    md = card_to_markdown(card)
    assert "| Per second of processing | 0.0002 |" in md
    assert "per 1k tokens" not in md


def test_multi_line_entries_stay_one_list_item() -> None:
    card = ModelCard(id="m", provider="local", failure_modes=["first line\nsecond line"])
    assert "- first line\n  second line" in card_to_markdown(card)
