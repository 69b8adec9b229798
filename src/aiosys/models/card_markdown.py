"""A model card as a Markdown document, for reviewers and for publishing beside the model.

The sections follow "Model Cards for Model Reporting" (Mitchell et al., 2019) as Hugging
Face model cards lay them out: details, intended and out-of-scope uses, training data,
evaluation, known failure modes (the paper's "caveats and recommendations"), then what an
operator needs: pricing and limits. A section with nothing to say is left out.
"""

from __future__ import annotations

from .catalog import ModelCard

RISK_NOTE = {
    "minimal": "minimal",
    "low": "low",
    "medium": "medium",
    "high": "high: a human review is expected before its outputs are acted on",
    "unacceptable": "unacceptable: must not be deployed",
}


def card_to_markdown(card: ModelCard, *, deployment: bool = True) -> str:
    """The card as one Markdown document, ending with a newline. ``deployment`` False
    leaves out where and how it is deployed (its endpoint and its key's variable: the
    operator's, as ``GET /v1/models`` leaves them out), for a page every tenant reads."""
    blocks = [f"# Model card: {card.id} (version {card.version})"]
    if card.description.strip():
        blocks.append(card.description.strip())
    blocks.append(_section("Model details", _bullets(_details(card, deployment))))
    for title, items in (
        ("Intended use", card.intended_use),
        ("Out-of-scope use", card.out_of_scope_use),
        ("Training data", card.training_data),
    ):
        if items:
            blocks.append(_section(title, _bullets(items)))
    if card.evaluation:
        rows = [(name, _value(value)) for name, value in card.evaluation.items()]
        blocks.append(_section("Evaluation", _table(("Metric", "Value"), rows)))
    if card.failure_modes:
        blocks.append(_section("Known failure modes", _bullets(card.failure_modes)))
    pricing = _pricing(card)
    if pricing:
        blocks.append(
            _section("Pricing", _table(("Item", f"Price ({card.pricing.currency})"), pricing))
        )
    limits = _limits(card)
    if limits:
        blocks.append(_section("Limits", _bullets(limits)))
    return "\n\n".join(blocks) + "\n"


def _details(card: ModelCard, deployment: bool) -> list[str]:
    external = "yes: requests leave the premises" if card.external else "no: runs on the premises"
    lines = [
        f"**Provider:** {card.provider}",
        f"**Provider model:** `{card.upstream_model}`",
    ]
    if card.endpoint and deployment:
        lines.append(f"**Endpoint:** <{card.endpoint}>")
    if card.api_key_env and deployment:
        lines.append(f"**API key from:** environment variable `{card.api_key_env}`")
    lines += [
        f"**Owner:** {card.owner}",
        f"**Kind:** {card.kind}",
    ]
    if card.context_window is not None:
        lines.append(f"**Context window:** {card.context_window:,} tokens")
    lines += [
        f"**Data residency:** {card.data_residency}",
        f"**External:** {external}",
        f"**Risk level:** {RISK_NOTE[card.risk_level]}",
    ]
    if card.aliases:
        lines.append("**Aliases:** " + ", ".join(f"`{a}`" for a in card.aliases))
    return lines


def _pricing(card: ModelCard) -> list[tuple[str, str]]:
    p = card.pricing
    rows = [
        ("Input, per 1k tokens", p.input_per_1k),
        ("Output, per 1k tokens", p.output_per_1k),
        ("Per call", p.per_call),
        ("Per second of processing", p.per_second),
    ]
    return [(name, _value(price)) for name, price in rows if price]


def _limits(card: ModelCard) -> list[str]:
    lines = []
    if card.limits.requests_per_minute is not None:
        lines.append(f"**Requests per minute:** {card.limits.requests_per_minute:,}")
    if card.limits.tokens_per_minute is not None:
        lines.append(f"**Tokens per minute:** {card.limits.tokens_per_minute:,}")
    if lines and card.limits.shared:
        lines.append(f"**Shared with:** every card whose limits name `{card.limits.shared}`")
    if lines:  # the timeout matters to an operator only next to the other limits
        lines.append(f"**Timeout:** {_value(card.timeout)} s per call")
    return lines


def _section(title: str, body: str) -> str:
    return f"## {title}\n\n{body}"


def _bullets(items: list[str]) -> str:
    # A multi-line entry stays one list item: its later lines are indented under the bullet.
    return "\n".join("- " + "\n  ".join(item.strip().splitlines()) for item in items)


def _table(header: tuple[str, str], rows: list[tuple[str, str]]) -> str:
    lines = [f"| {header[0]} | {header[1]} |", "| --- | ---: |"]
    lines += [f"| {_cell(a)} | {_cell(b)} |" for a, b in rows]
    return "\n".join(lines)


def _cell(text: str) -> str:
    """Table cells hold one line, and a ``|`` would end the cell."""
    return " ".join(text.split()).replace("|", "\\|")


def _value(value: float | str) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, int) or float(value).is_integer():
        return f"{int(value):,}"
    return f"{value:.10g}"


__all__ = ["card_to_markdown"]
