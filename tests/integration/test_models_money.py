"""Money in the model plane, on both stores: hard budgets reserve a call's worst case before
it is sent (concurrent calls never pass the limit; the output of a request with no
``max_tokens`` is bounded to what is left), and costs price prompt-cache reads and writes
and meter reasoning tokens as each provider reports them (the local wire servers answer
with the real APIs' usage fields).

No test waits on the clock: concurrent calls are held in the model until every one has
either entered it or been refused; expiry uses a clock the test moves.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import time
from typing import Any

import psycopg
import pytest
from psycopg.rows import dict_row
from tests.wire.anthropic_server import THINKING_TOKENS, AnthropicWire
from tests.wire.openai_server import REASONING_TOKENS, OpenAIWire

from aiosys import App
from aiosys.errors import BudgetExceeded
from aiosys.models.catalog import Pricing
from aiosys.models.links.budget import RESERVATION_GRACE, Budget
from aiosys.models.links.metering import spent
from aiosys.models.providers.local import register_callable, unregister_callable
from aiosys.models.tokens import DEFAULT_OUTPUT_TOKENS
from aiosys.models.types import Usage

LONG = " ".join(f"word{i}" for i in range(40))  # a prompt worth caching


def select(store_url: str, sql: str) -> list[dict[str, Any]]:
    """Rows straight from the store's database (what the plane wrote, as it wrote it)."""
    if store_url.startswith("sqlite"):
        with sqlite3.connect(store_url.removeprefix("sqlite:///")) as conn:
            conn.row_factory = sqlite3.Row
            cur = conn.execute(sql)
            return [dict(r) for r in cur.fetchall()] if cur.description else []
    with psycopg.connect(store_url, autocommit=True, row_factory=dict_row) as conn:
        pg = conn.execute(sql.encode())
        return list(pg.fetchall()) if pg.description else []


def usage_rows(store_url: str) -> list[dict[str, Any]]:
    return select(store_url, "SELECT * FROM model_usage ORDER BY id")


async def reservations(app: App) -> int:
    """How many reservations of tenant acme the store holds (live or not)."""
    return len(select(app.store.url, "SELECT id FROM model_reservations WHERE tenant = 'acme'"))


# ---- hard budgets ------------------------------------------------------------------------


class Gate:
    """A local model that holds every call until the test lets them all go."""

    def __init__(self, expected: int) -> None:
        self.expected = expected
        self.entered = 0
        self.refused = 0
        self.open = asyncio.Event()
        self.settled = asyncio.Event()

    def arrived(self) -> None:
        if self.entered + self.refused == self.expected:
            self.settled.set()

    async def model(self, messages: Any) -> str:
        self.entered += 1
        self.arrived()
        await self.open.wait()
        return "ok"

    async def call(self, app: App) -> Any:
        try:
            return await app.models.call("m", "hi", tenant="acme")
        except BudgetExceeded as exc:
            self.refused += 1
            self.arrived()
            return exc


@pytest.fixture
def gate() -> Any:
    found = Gate(20)
    register_callable("money-gate", found.model)
    yield found
    unregister_callable("money-gate")


async def test_twenty_concurrent_calls_never_pass_a_hard_budget(store_url: str, gate: Gate) -> None:
    async with App(store_url) as app:
        app.models.add_card(
            {
                "id": "m",
                "provider": "local",
                "options": {"callable": "money-gate"},
                "pricing": {"per_call": 0.004},
            }
        )
        app.models.budgets.add(Budget("tenant", "acme", 0.010, period="total"))
        calls = asyncio.gather(*(gate.call(app) for _ in range(20)))
        await asyncio.wait_for(gate.settled.wait(), 30)
        gate.open.set()
        out = await calls
        made = [o for o in out if not isinstance(o, Exception)]
        total = await spent(app.store, "acme")
        print(
            f"\n20 concurrent calls, hard limit 0.010, 0.004 each: made={len(made)} "
            f"spent={total:.4f} ({app.store.dialect})"
        )
        assert len(made) == 2 and gate.entered == 2 and gate.refused == 18
        assert total == pytest.approx(0.008) and total <= 0.010
        denied = next(o for o in out if isinstance(o, BudgetExceeded))
        assert "reserved 0.008 by calls in flight" in str(denied)
        await app.models.flush_usage()
        assert await reservations(app) == 0  # both settled by their usage rows


async def test_a_call_without_max_tokens_is_sent_one_that_fits_what_is_left(
    store_url: str, openai_server: OpenAIWire
) -> None:
    async with App(store_url) as app:
        app.models.add_card(
            {
                "id": "gpt",
                "provider": "openai",
                "endpoint": openai_server.endpoint,
                "pricing": {"output_per_1k": 1.0},
            }
        )
        # Output at 0.001 a token: the default output (1024 tokens) costs 1.024.
        app.models.budgets.add(Budget("tenant", "acme", 2.0, period="total"))
        await app.models.call("gpt", "one two three", tenant="acme")
        assert openai_server.requests[-1].body["max_tokens"] == DEFAULT_OUTPUT_TOKENS
        app.models.budgets.add(Budget("tenant", "acme", 0.5, period="total"))
        already = await spent(app.store, "acme")
        await app.models.call("gpt", "one two three", tenant="acme")
        sent = openai_server.requests[-1].body["max_tokens"]
        assert sent == int((0.5 - already) * 1000)  # what is left, in output tokens
        # A request that sets max_tokens keeps it (and is refused if it does not fit).
        await app.models.call("gpt", "one two", tenant="acme", max_tokens=5)
        assert openai_server.requests[-1].body["max_tokens"] == 5
        with pytest.raises(BudgetExceeded, match="not sent") as capped:
            await app.models.call("gpt", "one two", tenant="acme", max_tokens=1000)
        # What was estimated, and how: "one two" is 2 tokens and 7 of chat framing.
        assert (
            "estimated 1 for gpt@1 (9 input tokens counted from the request at 0 per 1k, "
            "1000 output tokens at 1 per 1k as its max_tokens) > limit 0.5 USD"
        ) in str(capped.value)
        # Nothing left for even one token: refused, never sent; the estimate said is the one
        # with 1 output token (it said "the least output" of the default 1024 tokens' 1.024).
        already = await spent(app.store, "acme")
        app.models.budgets.add(Budget("tenant", "acme", already, period="total"))
        before = len(openai_server.requests)
        with pytest.raises(BudgetExceeded) as denied:
            await app.models.call("gpt", "one two three", tenant="acme")
        assert (
            "estimated 0.001 for gpt@1 (10 input tokens counted from the request at 0 per 1k, "
            "1 output token at 1 per 1k as the least output: the request sets no max_tokens "
            "and not even 1 token fits) > limit"
        ) in str(denied.value)
        assert len(openai_server.requests) == before
        assert await spent(app.store, "acme") <= 0.5


async def test_a_call_right_after_another_waits_for_its_usage_row_not_refused(
    store_url: str, openai_server: OpenAIWire
) -> None:
    """A finished call's usage row being written still counts its reservation in full (it
    may have landed: never less than the truth). The next call, which would not fit beside
    that reservation, waits for the row to land and is then sent, not refused."""
    from aiosys.models.links.metering import usage_log

    async with App(store_url) as app:
        app.models.add_card(
            {
                "id": "gpt",
                "provider": "openai",
                "endpoint": openai_server.endpoint,
                "pricing": {"output_per_1k": 1.0},
            }
        )
        # The first call reserves 1.024 (the default output) under 2.0; then the limit is
        # 0.5: the second call fits only once the first's reservation is settled.
        app.models.budgets.add(Budget("tenant", "acme", 2.0, period="total"))
        await app.models.call("gpt", "one two three", tenant="acme")
        app.models.budgets.add(Budget("tenant", "acme", 0.5, period="total"))
        gate = asyncio.Event()
        store = app.store
        original = store.execute_many

        async def slow_usage(query: str, rows: Any) -> int:
            if query == "insert_usage":
                await gate.wait()  # the write is in flight until the test lets it land
            return await original(query, rows)

        store.execute_many = slow_usage  # type: ignore[method-assign]
        log = usage_log(store)
        writing = asyncio.create_task(log.flush())
        try:
            async with asyncio.timeout(20):
                while not log.writing:  # noqa: ASYNC110
                    await asyncio.sleep(0)
            second = asyncio.create_task(app.models.call("gpt", "one two three", tenant="acme"))
            for _ in range(50):  # the call runs up to its wait for the row, not refused
                await asyncio.sleep(0)
            assert not second.done(), second
        finally:
            gate.set()  # the row lands (also when the test failed: nothing left hanging)
            await writing
        response = await asyncio.wait_for(second, 20)
        assert response.output == "echo: one two three"
        already = openai_server.requests[-2].body
        sent = openai_server.requests[-1].body["max_tokens"]
        assert already["max_tokens"] == DEFAULT_OUTPUT_TOKENS
        assert 0 < sent < DEFAULT_OUTPUT_TOKENS  # what was left of 0.5, in output tokens


async def test_no_budget_no_max_tokens_added(store_url: str, openai_server: OpenAIWire) -> None:
    async with App(store_url) as app:
        app.models.add_card(
            {
                "id": "gpt",
                "provider": "openai",
                "endpoint": openai_server.endpoint,
                "pricing": {"output_per_1k": 1.0},
            }
        )
        await app.models.call("gpt", "hello", tenant="acme")
        assert "max_tokens" not in openai_server.requests[-1].body


async def test_a_crashed_callers_reservation_holds_until_it_expires(store_url: str) -> None:
    register_callable("money-ok", _ok)
    try:
        async with App(store_url) as app:
            app.models.add_card(
                {
                    "id": "m",
                    "provider": "local",
                    "options": {"callable": "money-ok"},
                    "pricing": {"per_call": 0.004},
                    "timeout": 10,
                }
            )
            app.models.budgets.add(Budget("tenant", "acme", 0.010, period="total"))
            # What a process that died mid-call leaves: a reservation nobody settles, made
            # for the card's timeout and the grace.
            now = time.time()
            dead = {
                "id": "dead-1",
                "tenant": "acme",
                "workflow": None,
                "amount": 0.008,
                "at": now,
                "expires_at": now + 10 + RESERVATION_GRACE,
                "budgets": "[]",
            }
            assert await app.store.fetch("reserve_budget", dead) == [{"id": "dead-1"}]
            with pytest.raises(BudgetExceeded, match=r"reserved 0\.008 by calls in flight"):
                await app.models.call("m", "hi", tenant="acme")
            # Its time passes (moved in the row, not waited for): the room is back.
            select(store_url, f"UPDATE model_reservations SET expires_at = {now - 1}")
            response = await app.models.call("m", "hi", tenant="acme")
            assert response.cost == pytest.approx(0.004)
            assert await spent(app.store, "acme") == pytest.approx(0.004)
    finally:
        unregister_callable("money-ok")


async def test_a_cancelled_call_gives_its_reservation_back(store_url: str) -> None:
    entered = asyncio.Event()

    async def hang(messages: Any) -> str:
        entered.set()
        await asyncio.Event().wait()
        return "never"

    register_callable("money-hang", hang)
    try:
        async with App(store_url) as app:
            app.models.add_card(
                {
                    "id": "m",
                    "provider": "local",
                    "options": {"callable": "money-hang"},
                    "pricing": {"per_call": 0.004},
                }
            )
            app.models.budgets.add(Budget("tenant", "acme", 0.010, period="total"))
            task = asyncio.create_task(app.models.call("m", "hi", tenant="acme"))
            await asyncio.wait_for(entered.wait(), 10)
            assert await reservations(app) == 1
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            async with asyncio.timeout(10):  # the release is written behind the cancellation
                while await reservations(app) != 0:  # noqa: ASYNC110 - a row in the store
                    await asyncio.sleep(0.01)
    finally:
        unregister_callable("money-hang")


async def _ok(messages: Any) -> str:
    return "ok"


# ---- costs: cache and reasoning tokens ---------------------------------------------------


def test_cache_prices_default_to_each_providers_ratio_and_cards_can_set_them() -> None:
    plain = Pricing(input_per_1k=1.0)
    # The hardening case's numbers: 10000 prompt tokens, 9000 of them cached.
    assert plain.cost(10000, 0, cache_read_tokens=9000, provider="openai") == pytest.approx(5.5)
    assert plain.cost(10000, 0, cache_read_tokens=9000, provider="anthropic") == pytest.approx(1.9)
    assert plain.cost(10000, 0, cache_write_tokens=10000, provider="anthropic") == pytest.approx(
        12.5
    )
    assert plain.cost(10000, 0, cache_read_tokens=9000, provider="local") == pytest.approx(10.0)
    priced = Pricing(input_per_1k=1.0, cache_read_per_1k=0.25, cache_write_per_1k=2.0)
    assert priced.cost(
        10000, 0, cache_read_tokens=4000, cache_write_tokens=1000, provider="openai"
    ) == pytest.approx(5.0 + 1.0 + 2.0)


async def test_openai_cached_and_reasoning_tokens_are_metered_and_priced(
    store_url: str, openai_server: OpenAIWire
) -> None:
    openai_server.cache_min_tokens = 10
    async with App(store_url) as app:
        app.models.add_card(
            {
                "id": "gpt",
                "provider": "openai",
                "endpoint": openai_server.endpoint,
                "pricing": {"input_per_1k": 1.0, "output_per_1k": 2.0, "cache_read_per_1k": 0.1},
            }
        )
        first = await app.models.call("gpt", LONG)
        second = await app.models.call("gpt", LONG + " more", reasoning_effort="high")
    assert first.usage.cache_read_tokens == 0
    assert (second.usage.input_tokens, second.usage.cache_read_tokens) == (41, 40)
    reasoning = REASONING_TOKENS["high"]
    assert second.usage.reasoning_tokens == reasoning
    out = second.usage.output_tokens
    assert out == len(("echo: " + LONG + " more").split()) + reasoning
    assert second.cost == pytest.approx(1 * 1.0 / 1000 + 40 * 0.1 / 1000 + out * 2.0 / 1000)
    rows = usage_rows(store_url)
    assert [(r["cache_read_tokens"], r["reasoning_tokens"]) for r in rows] == [
        (0, 0),
        (40, reasoning),
    ]
    assert rows[1]["cost"] == pytest.approx(second.cost)


async def test_anthropic_cache_writes_reads_and_thinking_are_metered_and_priced(
    store_url: str, anthropic_server: AnthropicWire
) -> None:
    async with App(store_url) as app:
        app.models.add_card(
            {
                "id": "claude",
                "provider": "anthropic",
                "endpoint": anthropic_server.endpoint,
                "pricing": {"input_per_1k": 1.0},
            }
        )
        cache = {"type": "ephemeral"}
        plain = await app.models.call("claude", LONG)
        wrote = await app.models.call("claude", LONG, cache_control=cache)
        read = await app.models.call(
            "claude",
            LONG + " more",
            cache_control=cache,
            thinking={"type": "enabled", "budget_tokens": 1024},
        )
    assert plain.usage.model_dump(include={"input_tokens", "cache_read_tokens"}) == {
        "input_tokens": 40,
        "cache_read_tokens": 0,
    }
    assert plain.cost == pytest.approx(0.040)
    # Usage counts every input token; the cache's are parts of it, priced at 1.25x and 0.1x.
    assert (wrote.usage.input_tokens, wrote.usage.cache_write_tokens) == (40, 40)
    assert wrote.cost == pytest.approx(0.040 * 1.25)
    assert read.usage.input_tokens == 41
    assert (read.usage.cache_read_tokens, read.usage.cache_write_tokens) == (40, 1)
    assert read.usage.reasoning_tokens == THINKING_TOKENS
    assert read.cost == pytest.approx(0.040 * 0.1 + 0.001 * 1.25)
    rows = usage_rows(store_url)
    assert [
        (r["cache_read_tokens"], r["cache_write_tokens"], r["reasoning_tokens"]) for r in rows
    ] == [
        (0, 0, 0),
        (0, 40, 0),
        (40, 1, THINKING_TOKENS),
    ]
    assert [r["cost"] for r in rows] == pytest.approx([plain.cost, wrote.cost, read.cost])


def test_usage_without_cache_fields_reads_as_before() -> None:
    # A response recorded before these fields existed decodes with zeros.
    usage = Usage.model_validate(json.loads('{"input_tokens": 3, "output_tokens": 4}'))
    assert (usage.cache_read_tokens, usage.cache_write_tokens, usage.reasoning_tokens) == (0, 0, 0)
