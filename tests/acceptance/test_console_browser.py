"""The console end to end in a real browser: Playwright drives Debian's Chromium against a
real uvicorn process serving ``tests.consoleapp`` (its worker in the same process, the
embedded default) on a SQLite file.

A person logs in with an API key, starts a workflow that waits on a human task, sees it
waiting, approves the task in the inbox (another tab), and sees the run succeed with its
effect timeline and trace waterfall in the first tab, never reloaded: htmx polls its
status. Screenshots of each step are
saved under ``tests/artifacts/console/`` (ignored by git; ``AIOSYS_TEST_ARTIFACTS`` names
another folder). The browser may reach the server only: a request anywhere else fails the
test, and so does a Content-Security-Policy violation.

Needs ``playwright`` (the dev extra) and Debian's ``chromium`` (``./run`` installs it):
without them the test skips saying so, except under ``CI=true`` where it fails.
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from aiosys import App

pytestmark = pytest.mark.timeout(180)

REPO = Path(__file__).resolve().parents[2]
CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]


def _need(what: str) -> None:
    message = f"{what}: ./run installs it (apt-get install chromium; pip install -e .[dev])"
    if os.environ.get("CI") == "true":
        pytest.fail(message)
    pytest.skip(message)


@pytest.fixture
def artifacts() -> Path:
    folder = Path(os.environ.get("AIOSYS_TEST_ARTIFACTS") or REPO / "tests" / "artifacts")
    out = folder / "console"
    out.mkdir(parents=True, exist_ok=True)
    for old in out.glob("*.png"):
        old.unlink()
    return out


@dataclass
class Server:
    url: str
    key: str


async def _new_key(store: str) -> str:
    app = App(store=store, models_dir="", preload_models=False)
    async with app:  # opened without a worker: migrated, the key created
        return (await app.identity.keys.create("acme", "alice", roles=["admin", "reviewer"])).key


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    """``uvicorn --factory tests.consoleapp:create`` on a socket bound here (port 0: no race
    for a free port), on a fresh SQLite store holding one API key (tenant acme, roles admin
    and reviewer)."""
    store = f"sqlite:///{tmp_path}/console.db"
    key = asyncio.run(_new_key(store))
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    sock.listen(64)
    url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    env = {
        **os.environ,
        "AIOSYS_STORE": store,
        "AIOSYS_MODELS_DIR": "",
        "PYTHONPATH": os.pathsep.join([str(REPO / "src"), str(REPO)]),
        "PYTHONUNBUFFERED": "1",
    }
    log = tmp_path / "uvicorn.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "uvicorn",
                "--factory",
                "tests.consoleapp:create",
                "--fd",
                str(sock.fileno()),
                "--log-level",
                "warning",
            ],
            cwd=tmp_path,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            pass_fds=[sock.fileno()],
        )
    sock.close()
    try:
        deadline = time.monotonic() + 60
        while True:  # until the server answers (its app opened in its lifespan)
            if proc.poll() is not None:
                raise AssertionError(f"uvicorn exited: {log.read_text(errors='replace')}")
            try:
                if httpx.get(f"{url}/login").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "uvicorn did not answer in 60 s"
            time.sleep(0.1)
        yield Server(url, key)
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture
def chromium() -> str:
    """Debian's Chromium, with Playwright to drive it (else the test skips, or fails in CI)."""
    try:
        import playwright.async_api  # noqa: F401
    except ImportError:
        _need("Playwright is not installed")
    if shutil.which(CHROMIUM) is None:
        _need(f"Debian's Chromium is not installed ({CHROMIUM})")
    return CHROMIUM


async def test_log_in_start_wait_approve_and_see_the_run_succeed(
    chromium: str, server: Server, artifacts: Path
) -> None:
    from playwright.async_api import async_playwright, expect

    elsewhere: list[str] = []
    csp: list[str] = []
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=chromium, args=ARGS)
        try:
            tabs = await browser.new_context(viewport={"width": 1400, "height": 1000})
            tabs.on(
                "request",
                lambda r: None if r.url.startswith(server.url) else elsewhere.append(r.url),
            )
            tabs.on(
                "console",
                lambda m: csp.append(m.text) if "Content Security Policy" in m.text else None,
            )
            expect.set_options(timeout=20_000)
            page = await tabs.new_page()

            # Log in: the console sends a visitor without a session to the login page.
            await page.goto(f"{server.url}/runs")
            await expect(page).to_have_url(f"{server.url}/login?next=%2Fruns")
            await page.fill("#api_key", server.key)
            await page.screenshot(path=artifacts / "1-login.png")
            await page.click("button:has-text('Log in')")
            await expect(page).to_have_url(f"{server.url}/runs")
            await expect(page.locator(".flash")).to_contain_text("logged in as user:acme/alice")

            # Start a workflow that waits on a human task.
            start = page.locator("details.start")
            if await start.get_attribute("open") is None:  # open when there is no run yet
                await start.locator("summary").click()
            await page.select_option("#start-workflow", "review")
            await page.fill("#start-input", '{"doc": "a lease for the new office"}')
            await page.click("form[action='/runs'] button:has-text('Start')")
            await expect(page).to_have_url(
                re.compile(rf"{re.escape(server.url)}/runs/[0-9a-f-]{{36}}$")
            )
            run_url = page.url
            status = page.locator("#run-live h1 .status")
            await expect(status).to_have_text("waiting")
            await expect(page.locator("#timeline")).to_contain_text("approve-summary")
            await page.screenshot(path=artifacts / "2-run-waiting.png", full_page=True)
            await page.evaluate("window.notReloaded = true")  # gone if the page is reloaded

            # The inbox, in another tab: the task with its SLA counting down; approve it.
            inbox = await tabs.new_page()
            await inbox.goto(f"{server.url}/runs")
            await inbox.click("nav a:has-text('Inbox')")
            row = inbox.locator("#tasks tbody tr", has_text="approve-summary")
            await expect(row).to_have_count(1)
            await expect(row.locator(".sla")).to_contain_text("due in 0h 5")
            await inbox.screenshot(path=artifacts / "3-inbox.png", full_page=True)
            await row.locator("button:has-text('Approve')").click()
            await expect(inbox).to_have_url(run_url)  # a decision shows the run it resumed
            await expect(inbox.locator(".flash")).to_contain_text("approved: the run resumes")

            # The first tab, never reloaded, sees the run succeed (htmx polls its status),
            # with its timeline and waterfall.
            await expect(status).to_have_text("succeeded")
            assert await page.evaluate("window.notReloaded") is True
            timeline = page.locator("#timeline")
            await expect(timeline).to_contain_text("human_task")
            await expect(timeline).to_contain_text("retried")  # the step's failed attempt
            effect = timeline.locator("tr:not(.approval)", has_text="approve-summary")
            await expect(effect).to_contain_text("ok")
            # Beside it, the decision: who approved it, as what, when.
            decision = timeline.locator("tr.approval", has_text="approve-summary")
            await expect(decision).to_contain_text("approved by")
            waterfall = page.locator("#waterfall tbody tr")
            await expect(waterfall.first).to_contain_text("run review")
            assert await waterfall.count() >= 4  # the run, the step, the model call, the task
            await expect(page.locator("#run-result")).to_contain_text('"decision": "approve"')
            await page.screenshot(path=artifacts / "4-run-succeeded.png", full_page=True)
        finally:
            await browser.close()

    assert elsewhere == [], f"the page reached beyond the server: {elsewhere}"
    assert csp == [], f"Content-Security-Policy violations: {csp}"
    shots = await asyncio.to_thread(lambda: sorted(p.name for p in artifacts.glob("*.png")))
    assert shots == [
        "1-login.png",
        "2-run-waiting.png",
        "3-inbox.png",
        "4-run-succeeded.png",
    ]
