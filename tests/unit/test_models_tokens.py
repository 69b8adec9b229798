"""Token estimates (aiosys.models.tokens): close to the BPE counts, cheap, stable."""

from __future__ import annotations

import pytest

from aiosys.errors import InvalidInput
from aiosys.models.catalog import ModelCard, Pricing
from aiosys.models.tokens import (
    DEFAULT_OUTPUT_TOKENS,
    count_tokens,
    estimate_cost,
    estimate_output_tokens,
    estimate_request_tokens,
)
from aiosys.models.types import Message, ModelRequest

PROSE = (
    "Large language models are trained on vast amounts of text data and can generate "
    "human-like responses to a wide variety of prompts. However, they sometimes produce "
    "incorrect or misleading information, which is why careful evaluation and monitoring "
    "are essential when deploying them in production systems."
)


@pytest.mark.parametrize(
    ("text", "cl100k"),
    [
        ("The quick brown fox jumps over the lazy dog.", 10),
        ("Hello, world!", 4),
        ("1234567", 3),  # numbers go three digits at a time
        ("don't", 2),
        ("", 0),
    ],
)
def test_short_plain_text_counts_like_cl100k(text: str, cl100k: int) -> None:
    assert count_tokens(text) == cl100k


def test_english_prose_is_about_four_tokens_for_three_words() -> None:
    words = len(PROSE.split())
    assert 1.1 * words <= count_tokens(PROSE) <= 1.5 * words


def test_long_rare_words_and_other_scripts_cost_more_than_one_token() -> None:
    assert count_tokens("internationalization") > 1
    assert count_tokens("日本語のテキスト") >= 8  # BPE spends at least a token a CJK character
    assert count_tokens("word " * 100) == 100


def test_chat_request_counts_openai_message_framing() -> None:
    one = ModelRequest(messages=[Message(role="user", content="Hello, world!")])
    two = ModelRequest(
        messages=[
            Message(role="system", content="Be brief."),
            Message(role="user", content="Hello, world!"),
        ]
    )
    assert estimate_request_tokens(one) == 3 + 4 + 4  # reply priming, framing+role, content
    assert estimate_request_tokens(two) == 3 + (4 + 3) + (4 + 4)


def test_embed_and_summarize_requests_count_their_texts() -> None:
    embed = ModelRequest(kind="embed", texts=["Hello, world!", "The quick brown fox."])
    assert estimate_request_tokens(embed) == 4 + 5
    assert estimate_output_tokens(embed) == 0
    summarize = ModelRequest(kind="summarize", text=PROSE)
    assert estimate_request_tokens(summarize) == count_tokens(PROSE)
    assert estimate_request_tokens(ModelRequest(kind="ocr", document="a.png")) == 0


def test_output_estimate_is_max_tokens_or_the_default() -> None:
    assert estimate_output_tokens(ModelRequest()) == DEFAULT_OUTPUT_TOKENS
    assert estimate_output_tokens(ModelRequest(params={"max_tokens": 40})) == 40
    assert estimate_output_tokens(ModelRequest(params={"max_completion_tokens": 7})) == 7


@pytest.mark.parametrize("bad", [-1, "100", 1.5, True])
def test_bad_max_tokens_is_a_precise_error(bad: object) -> None:
    with pytest.raises(InvalidInput, match="max_tokens must be a non-negative integer"):
        estimate_output_tokens(ModelRequest(params={"max_tokens": bad}))


def test_cost_estimate_prices_input_and_output_allowance() -> None:
    card = ModelCard(
        id="m",
        provider="local",
        pricing=Pricing(input_per_1k=1.0, output_per_1k=2.0, per_call=0.5),
    )
    request = ModelRequest(
        messages=[Message(role="user", content="Hello, world!")], params={"max_tokens": 100}
    )
    assert estimate_cost(card, request) == pytest.approx(11 / 1000 * 1.0 + 0.2 + 0.5)


def test_a_cost_is_its_exact_decimal_rounded_once_not_a_float_sum() -> None:
    # Summed in floats: 0.0070999999999999995; and 3 tokens read from Anthropic's cache at its
    # 0.1 ratio of 0.3 per 1k were 8.999999999999999e-05.
    pricing = Pricing(input_per_1k=0.1, output_per_1k=1.7)
    assert repr(pricing.cost(3, 4)) == "0.0071"
    cached = Pricing(input_per_1k=0.3)
    assert repr(cached.cost(3, 0, cache_read_tokens=3, provider="anthropic")) == "9e-05"
