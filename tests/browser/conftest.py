"""The browser tests: Debian's Chromium, driven by Playwright, against the real pipeline (a
dispatcher and an edge in development mode serving the demo inbox built from web/)."""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from playwright.async_api import Browser, BrowserContext, Page, async_playwright

from tests.support.processes import NotifyProcess, start_edge

SCREENSHOTS = Path(__file__).parent / "screenshots"
DEMO_ENV = {"DEV_MODE": "true", "ALLOWED_ORIGINS": "http://127.0.0.1:*"}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/browser/" in str(item.path):
            item.add_marker(pytest.mark.browser)


@pytest.fixture(scope="session")
async def browser() -> AsyncIterator[Browser]:
    executable = shutil.which("chromium")
    assert executable, "Debian's chromium is needed: apt-get install -y chromium"
    async with async_playwright() as playwright:
        # As root, Chromium runs only without its sandbox.
        launched = await playwright.chromium.launch(
            executable_path=executable, args=["--no-sandbox"]
        )
        yield launched
        await launched.close()


@pytest.fixture
async def demo_edge(
    process_env: dict[str, str], dispatcher_process: NotifyProcess
) -> AsyncIterator[tuple[NotifyProcess, int]]:
    proc, port = await start_edge({**process_env, **DEMO_ENV})
    yield proc, port
    await proc.stop()


@pytest.fixture
async def context(browser: Browser) -> AsyncIterator[BrowserContext]:
    made = await browser.new_context(viewport={"width": 1000, "height": 700})
    yield made
    await made.close()


async def screenshot(page: Page, name: str) -> Path:
    SCREENSHOTS.mkdir(exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    await page.screenshot(path=str(path))
    return path
