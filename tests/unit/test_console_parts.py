"""The console's pure parts: SVG charts (escaping, gaps, stacking), the waterfall's layout,
where a login may send the visitor, the session's contents, the choice checks and the
timeline's approval rows."""

from __future__ import annotations

import re

import pytest

from aiosys import App
from aiosys.errors import InvalidInput
from aiosys.kernel import Principal
from aiosys.ui._charts import bar_chart, hbar_chart, line_chart, meter
from aiosys.ui._console import Console, clip, one_of
from aiosys.ui._login import safe_next
from aiosys.ui._runs import approval_of, waterfall
from aiosys.ui._session import Session, Sessions


def test_chart_text_is_escaped() -> None:
    svg = line_chart("<b>title</b>", ["<i>", "t2"], {"p50 <x>": [1.0, 2.0]}, "s")
    assert "<b>" not in svg and "&lt;b&gt;title&lt;/b&gt;" in svg
    assert "&lt;i&gt;" in svg and "p50 &lt;x&gt;" in svg
    assert "<script" not in hbar_chart("t", [("<script>alert(1)</script>", 1.0)])


def test_a_missing_value_breaks_the_line() -> None:
    svg = line_chart("t", ["a", "b", "c", "d", "e"], {"p50": [1.0, 2.0, None, 3.0, 4.0]})
    assert svg.count("<polyline") == 2
    assert svg.count("<circle") == 4
    empty = line_chart("t", ["a"], {"p50": [None]})
    assert empty.count("<circle") == 0 and "no data in this window" in empty


def test_stacked_bars_add_up_and_skip_zeros() -> None:
    svg = bar_chart("t", ["a", "b"], {"transient": [1.0, 0.0], "permanent": [3.0, None]})
    heights = [
        float(h) for h in re.findall(r'<rect class="bar series-\d"[^>]*height="([\d.]+)"', svg)
    ]
    # Bars of slot a (1 + 3 = the top of the axis), then the legend's two squares.
    plot = 220 - 28 - 28
    assert heights[:2] == pytest.approx([plot / 4, plot * 3 / 4], abs=0.2)
    assert len(heights) == 4


def test_an_empty_bar_list_says_nothing_and_a_meter_clips() -> None:
    assert "nothing" in hbar_chart("t", [])
    assert 'width="200.0"' in meter(1.7, "over") and 'class="fill over"' in meter(1.7, "over")
    assert 'width="0.0"' in meter(None, "none")


def test_waterfall_places_spans_on_the_runs_timeline() -> None:
    def span(sid: str, parent: str | None, start: int, end: int) -> dict[str, object]:
        return {"span_id": sid, "parent_id": parent, "start_ns": start, "end_ns": end}

    rows = waterfall(
        [
            span("r", None, 0, 1_000_000_000),
            span("b", "r", 500_000_000, 500_000_001),  # a nanosecond: still drawn
            span("a", "r", 0, 250_000_000),
            span("a1", "a", 100_000_000, 200_000_000),
        ]
    )
    assert [(r["span"]["span_id"], r["depth"]) for r in rows] == [
        ("r", 0),
        ("a", 1),
        ("a1", 2),
        ("b", 1),
    ]
    assert [(r["x"], r["width"]) for r in rows] == [(0, 100), (0, 25), (10, 10), (50, 0.5)]
    assert rows[3]["offset_ms"] == 500 and waterfall([]) == []


@pytest.mark.parametrize(
    ("prefix", "target", "expected"),
    [
        ("", "/runs?status=dead", "/runs?status=dead"),
        ("", "//evil.example/runs", "/runs"),
        ("", "https://evil.example/", "/runs"),
        ("", "/\\evil.example", "/runs"),
        ("", "", "/runs"),
        ("/console", "/console/tasks", "/console/tasks"),
        ("/console", "/runs", "/console/runs"),
    ],
)
def test_a_login_goes_back_only_to_a_page_of_the_console(
    prefix: str, target: str, expected: str
) -> None:
    app = App("sqlite:///unused.db")
    console = Console(app, Sessions(app, secret="s" * 32), prefix)
    assert safe_next(console, target) == expected


def test_a_session_keeps_the_key_id_never_the_key_and_rotates_its_token() -> None:
    session = Session()
    before = session.csrf
    key = Principal("alice", "A", roles={"admin"}, attrs={"auth": "api_key", "key_id": "0" * 16})
    session.log_in(key, 100.0)
    assert session.csrf != before
    assert session.dump() == {"c": session.csrf, "k": "0" * 16, "t": 100.0}
    token = Principal("sam", "A", roles={"viewer"}, attrs={"auth": "jwt", "claims": {"exp": 9}})
    session.log_in(token, 200.0)
    assert session.dump()["j"] == {"id": "sam", "tenant": "A", "kind": "user", "roles": ["viewer"]}
    assert session.token_expires == 9 and session.key_id is None
    assert Session.load({"c": 1}).changed and Session.load("junk").changed
    session.say("ok", "done")
    assert Session.load(session.dump()).take_flash() == ("ok", "done")


def test_choices_are_checked() -> None:
    assert one_of("", ("", "1h"), "the window") == ""
    with pytest.raises(InvalidInput, match=r"the window is one of empty, 1h, not '2h'"):
        one_of("2h", ("", "1h"), "the window")


def test_a_long_value_is_clipped_saying_how_much_was_left_out() -> None:
    assert clip("abc", 5) == "abc"
    assert clip("x" * 12, 5) == "xxxxx\n… (7 more characters: aiosys runs show --json)"


def effect(kind: str, status: str, output: object = None, meta: object = None) -> dict:
    return {"kind": kind, "status": status, "output": output, "meta": meta or {}}


def test_an_approval_row_is_made_only_for_an_effect_that_waited_for_a_person() -> None:
    decided = {"action": "reject", "decided_by": "amy", "role": "r", "decided_at": 10}
    row = approval_of(effect("human_task", "ok", {**decided, "task_id": "t", "comment": "no"}))
    assert row is not None
    assert (row["outcome"], row["by"], row["role"], row["at"], row["comment"]) == (
        "rejected",
        "amy",
        "r",
        10.0,
        "no",
    )
    waiting = approval_of(effect("human_task", "pending", {"task_id": "t", "due_at": 5}))
    assert waiting is not None and (waiting["outcome"], waiting["due_at"]) == ("waiting", 5.0)
    # A failed human task (its row says why), a plain effect, a record without a task id.
    assert approval_of(effect("human_task", "error", None, {"task_id": "t"})) is None
    assert approval_of(effect("step", "ok", {"action": "approve"})) is None
    assert approval_of(effect("model", "ok", None, {"approval": {"action": "approve"}})) is None
    given = {"task_id": "t", "status": "open", "role": "partner", "policies": ["p"]}
    asked = approval_of(effect("model", "pending", None, {"approval": given}))
    assert asked is not None and (asked["outcome"], asked["kind"]) == ("waiting", "policy approval")
    assert asked["policies"] == ["p"]


def test_a_cards_page_names_no_endpoint_nor_key_variable() -> None:
    # The console's model page (every tenant's users read it) showed the card's endpoint
    # (a host and port inside the network) and its key's variable, which GET /v1/models
    # does not serve ("the operator's") and no error message names.
    from aiosys.models.card_markdown import card_to_markdown
    from aiosys.models.catalog import ModelCard
    from aiosys.ui._catalog import card_html

    card = ModelCard(
        id="chat",
        provider="openai",
        endpoint="http://10.1.2.3:8001/v1",
        api_key_env="VLLM_KEY",
        description="A chat model.",
    )
    page = str(card_html(card))
    assert "10.1.2.3" not in page and "VLLM_KEY" not in page, page
    assert "A chat model." in page and "openai" in page
    # The operator's document (aiosys models show --markdown) keeps them.
    whole = card_to_markdown(card)
    assert "http://10.1.2.3:8001/v1" in whole and "VLLM_KEY" in whole
