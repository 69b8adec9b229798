"""Model cards: what each model is, who owns it, what it may be used for, and what it costs.

Cards are declared in TOML or YAML files under ``models/`` of a project (or registered in
code) and kept in the store, so every worker and the console see the same catalog.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr

from .types import Kind, Usage

# What a provider charges for prompt-cache tokens, as a multiple of the input price, when a
# card states no cache price: OpenAI bills cached input at half the input price (and cache
# writes as ordinary input); Anthropic bills cache reads at 0.1x and (5-minute) cache
# writes at 1.25x the input price. Other providers: the input price.
CACHE_PRICE_RATIOS: dict[str, tuple[float, float]] = {
    "openai": (0.5, 1.0),
    "anthropic": (0.1, 1.25),
}


class Pricing(BaseModel):
    """Price of a call, in ``currency`` units: per 1k input and output tokens, per call,
    and per second of processing (for models billed by time, such as OCR).

    ``cache_read_per_1k`` and ``cache_write_per_1k`` price input tokens read from and
    written to the provider's prompt cache; unset, they follow the provider's published
    ratio to ``input_per_1k`` (``CACHE_PRICE_RATIOS``: set them on a card whose model is
    priced otherwise)."""

    model_config = ConfigDict(extra="forbid")

    input_per_1k: float = 0.0
    output_per_1k: float = 0.0
    per_call: float = 0.0
    per_second: float = 0.0
    cache_read_per_1k: float | None = None
    cache_write_per_1k: float | None = None
    currency: str = "USD"

    def cost(
        self,
        input_tokens: int,
        output_tokens: int,
        seconds: float = 0.0,
        *,
        cache_read_tokens: int = 0,
        cache_write_tokens: int = 0,
        provider: str | None = None,
    ) -> float:
        """The price of a call: ``input_tokens`` counts every input token, the cache's
        included (``cache_read_tokens`` and ``cache_write_tokens`` are parts of it, priced
        at the cache prices; ``provider`` picks the default ratios); ``seconds`` of
        processing at ``per_second``.

        Worked in decimal from the prices as written (each float's shortest form: ``0.1``,
        not its binary value) and rounded to a float once at the end, so a cost is the float
        nearest the exact price and shows as it (``0.0055``): summing the products in floats
        gave ``0.0055000000000000005``, which a cost header or listing showed as it is."""
        read_ratio, write_ratio = CACHE_PRICE_RATIOS.get(provider or "", (1.0, 1.0))
        read_price = _decimal(self.input_per_1k) * _decimal(read_ratio)
        if self.cache_read_per_1k is not None:
            read_price = _decimal(self.cache_read_per_1k)
        write_price = _decimal(self.input_per_1k) * _decimal(write_ratio)
        if self.cache_write_per_1k is not None:
            write_price = _decimal(self.cache_write_per_1k)
        plain = max(0, input_tokens - cache_read_tokens - cache_write_tokens)
        per_1k = (
            _decimal(plain) * _decimal(self.input_per_1k)
            + _decimal(cache_read_tokens) * read_price
            + _decimal(cache_write_tokens) * write_price
            + _decimal(output_tokens) * _decimal(self.output_per_1k)
        )
        exact = (
            per_1k.scaleb(-3)
            + _decimal(self.per_call)
            + _decimal(seconds) * _decimal(self.per_second)
        )
        return float(exact)


def _decimal(number: float) -> Decimal:
    """``number`` as the decimal it was written as: an integer exactly, a float by its
    shortest round-tripping form (``0.1``)."""
    return Decimal(number) if isinstance(number, int) else Decimal(repr(float(number)))


class Limits(BaseModel):
    """Rate limits of the deployment, shared across workers: requests and tokens a minute.

    ``shared`` names counters that several cards use together, such as one provider
    account's quota over all its models (``shared = "openai-org"`` on each): every card
    naming it counts in the same windows, each checking them against its own numbers (so
    give them the same). Without it the counters are the card's alone."""

    model_config = ConfigDict(extra="forbid")

    requests_per_minute: int | None = None
    tokens_per_minute: int | None = None
    shared: str | None = None


class ModelCard(BaseModel):
    """One model deployment and everything a reviewer needs to know about it."""

    model_config = ConfigDict(extra="forbid")

    id: str
    version: str = "1"
    kind: Kind = "chat"
    provider: str  # openai, anthropic, local, tesseract, embeddings, summarizer
    provider_model: str | None = None  # the model's name at the provider (default: id)
    endpoint: str | None = None  # base URL for HTTP providers
    api_key_env: str | None = None  # environment variable holding the API key
    timeout: float = 60.0
    owner: str = "unknown"
    description: str = ""
    intended_use: list[str] = Field(default_factory=list)
    out_of_scope_use: list[str] = Field(default_factory=list)
    training_data: list[str] = Field(default_factory=list)
    evaluation: dict[str, float | str] = Field(default_factory=dict)
    failure_modes: list[str] = Field(default_factory=list)
    risk_level: Literal["minimal", "low", "medium", "high", "unacceptable"] = "low"
    data_residency: str = "local"
    external: bool = False  # data leaves the premises
    # Personal data in requests to this card (aiosys.governance.redaction): "auto" (redacted
    # when the card is external and the data confidential or stricter), "always", "never".
    redaction: Literal["auto", "always", "never"] = "auto"
    context_window: int | None = None
    pricing: Pricing = Field(default_factory=Pricing)
    limits: Limits = Field(default_factory=Limits)
    aliases: list[str] = Field(default_factory=list)  # e.g. production, canary
    options: dict[str, Any] = Field(default_factory=dict)  # provider-specific settings
    # Read from the store (never stored itself): anyone who can write the database wrote it,
    # so its options may name only what the app registered in code, never code to import.
    _from_store: bool = PrivateAttr(default=False)

    @property
    def from_store(self) -> bool:
        """The card was read from the store (``catalog_store``), not made in code or read
        from a card file the operator owns."""
        return self._from_store

    def __eq__(self, other: object) -> bool:
        """Cards are equal by content: where one was read from is not part of it."""
        if not isinstance(other, ModelCard):
            return NotImplemented
        return type(self) is type(other) and self.__dict__ == other.__dict__

    def mark_from_store(self) -> ModelCard:
        """This card, marked as read from the store (see ``from_store``)."""
        self._from_store = True
        return self

    @property
    def key(self) -> str:
        return f"{self.id}@{self.version}"

    @property
    def upstream_model(self) -> str:
        return self.provider_model or self.id

    def cost(self, usage: Usage) -> float:
        """What a call with this usage costs, by this card's pricing (the provider's cache
        price ratios where the card states no cache price)."""
        return self.pricing.cost(
            usage.input_tokens,
            usage.output_tokens,
            usage.seconds,
            cache_read_tokens=usage.cache_read_tokens,
            cache_write_tokens=usage.cache_write_tokens,
            provider=self.provider,
        )
