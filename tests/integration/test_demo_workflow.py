"""The demo's workflow (``aiosys.demo``) on both stores, for the decisions the demo itself
does not take: a rejected review neither files nor bills; an edit that changes the category
files and bills under the reviewed one, with the edit's fee."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from aiosys.demo import EMAILS, FEES, REVIEW_FEES, app
from aiosys.humans import TaskRow
from aiosys.kernel import Principal

pytestmark = pytest.mark.timeout(60)

PAT = Principal(id="pat", tenant="demo", roles=frozenset({"paralegal"}))


async def review_of(run_id: str) -> TaskRow:
    async with asyncio.timeout(30), app.as_principal(PAT):
        while True:
            tasks = await app.list_tasks(run_id=run_id)
            if tasks:
                return tasks[0]
            await asyncio.sleep(0.01)


async def test_a_rejection_ends_unfiled_and_an_edit_files_and_bills_as_reviewed(
    store_url: str, wait_status: Any
) -> None:
    app.use_store(store_url)
    async with app:
        rejected = await app.start("document_intake", {"text": EMAILS[0]}, tenant="demo")
        edited = await app.start("document_intake", {"text": EMAILS[1]}, tenant="demo")
        first, second = await review_of(rejected.id), await review_of(edited.id)
        assert (first.data["category"], second.data["category"]) == ("complaint", "cancellation")
        async with app.as_principal(PAT):
            await app.complete_task(first.id, "reject", comment="not ours")
            edit = {"summary": "A complaint about a cancellation, filed as a complaint.",
                    "category": "complaint"}  # fmt: skip
            await app.complete_task(second.id, "edit", data=edit)
        no = json.loads((await wait_status(app, rejected.id, "succeeded")).result)
        yes = json.loads((await wait_status(app, edited.id, "succeeded")).result)
        kinds = [e.kind for e in await app.effects(rejected.id)]

    assert no["review"] == {"action": "reject", "by": "pat", "comment": "not ours"}
    assert "filed_as" not in no and "invoice" not in no
    assert kinds[-1] == "human_task" and "child_start" not in kinds
    assert yes["category"] == "complaint" and yes["filed_as"] == "COM-HC-70344"
    assert yes["summary"] == edit["summary"] and yes["team"] == "customer-care"
    invoice = yes["invoice"]
    assert invoice["total"] == FEES["complaint"] + REVIEW_FEES["edit"]
    assert invoice["invoice"].startswith("INV-") and invoice["matter"] == "COM-HC-70344"
