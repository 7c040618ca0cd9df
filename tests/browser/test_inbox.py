"""The demo inbox (NotificationBell over the browser client) in Debian's Chromium, against the
real dispatcher and edge: what a person sees and does, and what must never happen."""

from __future__ import annotations

import asyncio
import signal
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.async_api import Browser, BrowserContext, Page, expect

from producers.service import NotificationService
from tests.browser.conftest import DEMO_ENV, screenshot
from tests.support.processes import NotifyProcess, start_edge
from tests.support.tokens import admin_headers

pytestmark = pytest.mark.e2e

WEB = Path(__file__).parents[2] / "web"
SEEN = 10_000  # ms: how long a page may take to show what it must show


def new_user() -> str:
    return f"w-{uuid.uuid4().hex[:10]}"


async def open_demo(context: BrowserContext, port: int, user: str) -> Page:
    page = await context.new_page()
    await page.goto(f"http://127.0.0.1:{port}/demo?user={user}")
    await expect(bell(page)).to_have_attribute("data-status", "connected", timeout=SEEN)
    return page


def bell(page: Page) -> Any:
    return page.locator(".tn-bell__button")


async def unread(page: Page, count: int) -> None:
    label = f"Notifications, {count} unread" if count else "Notifications"
    await expect(bell(page)).to_have_attribute("aria-label", label, timeout=SEEN)


async def notify(service: NotificationService, user: str, title: str, **fields: Any) -> str:
    event_id = await service.notify(
        "system_alert", user_id=user, title=title, message=fields.pop("message", "m"), **fields
    )
    return str(event_id)


async def connections(port: int, user: str) -> int:
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as http:
        answer = await http.get(f"/ws/users/{user}/connections", headers=admin_headers())
    count: int = answer.json()["count"]
    return count


async def test_a_notification_reaches_the_badge_and_a_read_reaches_every_tab(
    context: BrowserContext, demo_edge: tuple[NotifyProcess, int], service: NotificationService
) -> None:
    user = new_user()
    first = await open_demo(context, demo_edge[1], user)
    second = await open_demo(context, demo_edge[1], user)
    sent = time.monotonic()
    await notify(service, user, "Booking confirmed: Masada at sunrise")
    await unread(first, 1)
    latency = time.monotonic() - sent
    await unread(second, 1)
    print(f"badge after {latency * 1000:.0f} ms")
    await bell(first).click()
    item = first.get_by_role("menuitem").first
    await expect(item).to_contain_text("Masada at sunrise")
    await screenshot(first, "inbox-open")
    await item.click()
    await unread(second, 0)
    await unread(first, 0)


async def connection_ids(port: int, user: str) -> list[str]:
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as http:
        answer = await http.get(f"/ws/users/{user}/connections", headers=admin_headers())
    return [c["connection_id"] for c in answer.json()["connections"]]


async def test_ten_tabs_share_one_socket_and_miss_nothing_when_the_leader_closes(
    context: BrowserContext, demo_edge: tuple[NotifyProcess, int], service: NotificationService
) -> None:
    user = new_user()
    port = demo_edge[1]
    pages = [await open_demo(context, port, user) for _ in range(10)]
    (leader,) = await connection_ids(port, user)  # ten tabs, one socket
    before = [f"Before the hand-over #{i}" for i in range(3)]
    for title in before:
        await notify(service, user, title)
    for page in pages:
        await unread(page, 3)
    await pages[0].close()  # the first tab opened holds the socket
    closed = time.monotonic()
    during = [f"During the hand-over #{i}" for i in range(3)]
    for title in during:  # sent while no tab may hold a socket
        await notify(service, user, title)
    while True:
        ids = await connection_ids(port, user)
        if ids and ids != [leader]:
            break
        assert time.monotonic() - closed < 10, ids
        await asyncio.sleep(0.05)  # the edge shows the hand-over only when asked
    print(f"another tab took the socket over after {time.monotonic() - closed:.2f} s")
    assert len(ids) == 1
    for page in pages[1:]:
        await unread(page, 6)
    await bell(pages[1]).click()
    shown = await pages[1].locator(".tn-bell__title").all_inner_texts()
    assert shown == list(reversed(before + during))  # newest first, each once


async def test_a_script_in_a_title_is_shown_as_text(
    context: BrowserContext, demo_edge: tuple[NotifyProcess, int], service: NotificationService
) -> None:
    user = new_user()
    page = await open_demo(context, demo_edge[1], user)
    payload = '<img src=x onerror="window.__xss=1"><script>window.__xss=2</script>'
    await notify(service, user, payload, message=payload)
    await unread(page, 1)
    await bell(page).click()
    item = page.get_by_role("menuitem").first
    await expect(item).to_contain_text("<img src=x onerror=")
    assert await page.evaluate("window.__xss") is None
    assert await page.locator(".tn-bell__panel img, .tn-bell__panel script").count() == 0
    await screenshot(page, "inbox-xss-as-text")


async def test_an_edge_killed_and_restarted_loses_nothing_and_shows_each_once_in_order(
    context: BrowserContext,
    process_env: dict[str, str],
    demo_edge: tuple[NotifyProcess, int],
    service: NotificationService,
) -> None:
    user = new_user()
    edge, port = demo_edge
    page = await open_demo(context, port, user)
    await edge.stop(signal.SIGKILL)
    await expect(bell(page)).to_have_attribute("data-status", "reconnecting", timeout=SEEN)
    await screenshot(page, "inbox-reconnecting")
    titles = [f"While the edge was away #{i}" for i in range(5)]
    for title in titles:
        await notify(service, user, title)
    restarted, _ = await start_edge({**process_env, **DEMO_ENV}, port=port)
    try:
        await expect(bell(page)).to_have_attribute("data-status", "connected", timeout=30_000)
        await unread(page, 5)
        await bell(page).click()
        shown = await page.locator(".tn-bell__title").all_inner_texts()
        assert shown == list(reversed(titles))  # newest first, each once
    finally:
        await restarted.stop()


async def test_an_urgent_notification_on_a_hidden_page_raises_a_browser_notification(
    context: BrowserContext, demo_edge: tuple[NotifyProcess, int], service: NotificationService
) -> None:
    user = new_user()
    port = demo_edge[1]
    await context.grant_permissions(["notifications"], origin=f"http://127.0.0.1:{port}")
    # The page is told it is hidden, and browser notifications are recorded as they are made.
    await context.add_init_script(
        """
        Object.defineProperty(document, "visibilityState", { get: () => "hidden" });
        Object.defineProperty(document, "hidden", { get: () => true });
        window.__shown = [];
        const Real = window.Notification;
        window.Notification = class extends Real {
          constructor(title, options) { super(title, options); window.__shown.push(title); }
        };
        window.Notification.requestPermission = Real.requestPermission.bind(Real);
        Object.defineProperty(window.Notification, "permission", { get: () => Real.permission });
        """
    )
    page = await open_demo(context, port, user)
    await notify(service, user, "Just a note", priority="low")
    await notify(service, user, "Payment failed", priority="urgent")
    await unread(page, 2)
    await page.wait_for_function("window.__shown.length > 0", timeout=SEEN)
    assert await page.evaluate("window.__shown") == ["Payment failed"]


async def test_the_inbox_is_usable_by_keyboard_alone(
    context: BrowserContext, demo_edge: tuple[NotifyProcess, int], service: NotificationService
) -> None:
    user = new_user()
    page = await open_demo(context, demo_edge[1], user)
    for title in ("First", "Second"):
        await notify(service, user, title)
    await unread(page, 2)
    await bell(page).focus()
    await page.keyboard.press("Enter")
    items = page.get_by_role("menuitem")
    await expect(items).to_have_count(2)
    await page.keyboard.press("ArrowDown")
    focused = await page.evaluate("document.activeElement.textContent")
    assert "Second" in focused or "First" in focused
    await page.keyboard.press("Enter")  # marks the focused item read
    await unread(page, 1)
    if not await page.locator(".tn-bell__panel").is_visible():
        await page.keyboard.press("Enter")
    await page.keyboard.press("Escape")
    await expect(page.locator(".tn-bell__panel")).to_be_hidden()
    assert await page.evaluate("document.activeElement.classList.contains('tn-bell__button')")


async def test_an_accessibility_scan_finds_no_serious_violation(
    browser: Browser, demo_edge: tuple[NotifyProcess, int], service: NotificationService
) -> None:
    user = new_user()
    # The page's Content-Security-Policy refuses injected scripts; axe is let in here only.
    context = await browser.new_context(bypass_csp=True, viewport={"width": 1000, "height": 700})
    page = await open_demo(context, demo_edge[1], user)
    await notify(service, user, "Tour starts in one hour", priority="high")
    await unread(page, 1)
    await bell(page).click()
    await expect(page.get_by_role("menuitem")).to_have_count(1)
    await page.add_script_tag(path=str(WEB / "node_modules" / "axe-core" / "axe.min.js"))
    result = await page.evaluate("axe.run(document).then(r => r.violations)")
    await screenshot(page, "inbox-high-priority")
    await context.close()
    serious = [v for v in result if v["impact"] in ("serious", "critical")]
    assert not serious, [(v["id"], v["help"], [n["target"] for n in v["nodes"]]) for v in serious]
