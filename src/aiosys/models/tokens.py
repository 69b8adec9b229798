"""Token counts for models that report none (local callables) and for estimates before a call.

Hand-written on purpose: ``tiktoken``, the obvious library, downloads its BPE tables from the
network the first time an encoding is used, and aiosys must work offline. Budgets, rate
limits and local models need a count that is close, cheap and stable, not exact, so this is
an approximation of the ``cl100k``/``o200k`` byte-pair encodings, built the way they split
text before merging:

- text is cut into pieces like tiktoken's pre-tokenizer does: English contractions
  (``'s``, ``'ll``, ...), runs of letters, runs of at most three digits, runs of punctuation,
  runs of newlines (other whitespace joins the next piece, as BPE's leading space does);
- a piece of ASCII letters is one token up to 9 characters and one more for every 9 after
  (common words are single tokens; long rare words split into a few sub-words);
- letters outside ASCII cost one token per two bytes of UTF-8 (about 1.5 tokens per CJK
  character, one per accented letter), which is where BPE vocabularies trained mostly on
  English spend more.

On English prose this gives about 1.3 tokens a word, OpenAI's published rule of thumb
(100 tokens ≈ 75 words), and matches cl100k exactly on short plain sentences.
Providers that report usage (OpenAI, Anthropic) are always metered by what they report.
"""

from __future__ import annotations

import re

from ..errors import InvalidInput
from .catalog import ModelCard
from .types import ModelRequest

# The output of a request that sets no max_tokens, for every provider: what estimates
# (budgets, rate limits) assume, what Anthropic's Messages API (which requires one) is sent,
# and the most a call under a hard budget may produce (links/budget.py).
DEFAULT_OUTPUT_TOKENS = 1024

# OpenAI's chat format wraps each message in <|start|>{role}<|message|>{content}<|end|>:
# three tokens of framing, one for the role; every reply is primed with three more
# (openai-cookbook, "How to count tokens with tiktoken").
TOKENS_PER_MESSAGE = 4
TOKENS_PER_REPLY = 3

_PIECE = re.compile(
    r"'(?:s|t|re|ve|m|ll|d)(?![^\W\d_])"  # contractions, as tiktoken splits them
    r"|[^\W\d_]+"  # a run of letters (any script)
    r"|\d{1,3}"  # numbers, three digits at a time
    r"|[^\w\s]+"  # a run of punctuation and symbols
    r"|_+"
    r"|\n+",  # newlines are tokens of their own
    re.IGNORECASE,
)


def _piece_tokens(piece: str) -> int:
    if piece.isascii():
        return 1 + (len(piece) - 1) // 9
    ascii_chars = sum(1 for ch in piece if ch.isascii())
    other_bytes = len(piece.encode()) - ascii_chars
    return max(1, (ascii_chars + 8) // 9 + (other_bytes + 1) // 2)


def count_tokens(text: str) -> int:
    """An estimate of how many BPE tokens ``text`` is (see the module's docstring)."""
    return sum(_piece_tokens(p) for p in _PIECE.findall(text))


def estimate_request_tokens(request: ModelRequest) -> int:
    """Input tokens of a request: chat messages with OpenAI's per-message framing, the
    texts of an embedding request, the text to summarize. OCR input is an image: 0."""
    tokens = 0
    if request.messages:
        tokens += TOKENS_PER_REPLY
        tokens += sum(TOKENS_PER_MESSAGE + count_tokens(m.content) for m in request.messages)
    tokens += sum(count_tokens(t) for t in request.texts)
    if request.text is not None:
        tokens += count_tokens(request.text)
    return tokens


def estimate_output_tokens(request: ModelRequest) -> int:
    """The most the reply can cost: ``params["max_tokens"]`` (or ``max_completion_tokens``),
    ``DEFAULT_OUTPUT_TOKENS`` when neither is set; embeddings produce no output tokens."""
    if request.kind == "embed":
        return 0
    for name in ("max_tokens", "max_completion_tokens"):
        if name in request.params:
            value = request.params[name]
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise InvalidInput(
                    f"request params {name} must be a non-negative integer, got {value!r}"
                )
            return value
    return DEFAULT_OUTPUT_TOKENS


def estimate_cost(card: ModelCard, request: ModelRequest) -> float:
    """What the call would cost at most, in ``card.pricing.currency`` units: estimated input
    tokens and the output estimate, priced by the card (time-billed models: per call only,
    since their duration is not known before the call)."""
    return card.pricing.cost(estimate_request_tokens(request), estimate_output_tokens(request))
