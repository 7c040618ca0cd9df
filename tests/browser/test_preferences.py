"""Seen versus read, archiving and preferences in the demo inbox, in Debian's Chromium against the
real dispatcher and edge: the badge counts what is new, opening the bell clears it and leaves
the list unread; archived notifications leave the list for the Archived tab and come back; a
muted category stays away while others arrive, and the critical types cannot be muted."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.async_api import Browser, BrowserContext, Page, expect

from producers.service import NotificationService
from tests.browser.conftest import screenshot
from tests.support.processes import NotifyProcess
from tests.support.tokens import admin_headers

pytestmark = pytest.mark.e2e

WEB = Path(__file__).parents[2] / "web"
SEEN = 10_000  # ms: how long a page may take to show what it must show
ZONE = "Europe/Berlin"


def new_user() -> str:
    return f"p-{uuid.uuid4().hex[:10]}"


async def device(browser: Browser, **options: Any) -> BrowserContext:
    """Another browser: its own socket, as a second device of the user has."""
    return await browser.new_context(
        viewport={"width": 1000, "height": 760}, timezone_id=ZONE, **options
    )


async def open_demo(context: BrowserContext, port: int, user: str) -> Page:
    page = await context.new_page()
    await page.goto(f"http://127.0.0.1:{port}/demo?user={user}")
    await expect(bell(page)).to_have_attribute("data-status", "connected", timeout=SEEN)
    return page


def bell(page: Page) -> Any:
    return page.locator(".tn-bell__button")


def badge(page: Page) -> Any:
    return page.locator(".tn-bell__badge")


def items(page: Page) -> Any:
    return page.get_by_role("menuitem")


def item(page: Page, title: str) -> Any:
    return items(page).filter(has_text=title)


async def unread(page: Page, count: int) -> None:
    label = f"Notifications, {count} unread" if count else "Notifications"
    await expect(bell(page)).to_have_attribute("aria-label", label, timeout=SEEN)


async def alert(service: NotificationService, user: str, title: str) -> None:
    await service.notify("system_alert", user_id=user, title=title, message="m")


async def booking(service: NotificationService, user: str, title: str) -> None:
    data = {"booking_id": "b-1", "tour_name": "Masada at sunrise"}
    await service.notify("booking_confirmed", user_id=user, title=title, message="m", data=data)


async def chat(service: NotificationService, user: str, title: str) -> None:
    data = {"conversation_id": "c-1", "sender_id": "guide-1", "preview": "See you at 8"}
    await service.notify("chat_message", user_id=user, title=title, message="m", data=data)


async def open_preferences(page: Page) -> Any:
    if await bell(page).get_attribute("aria-expanded") != "true":
        await bell(page).click()
    await page.get_by_role("button", name="Preferences").click()
    form = page.get_by_role("form", name="Preferences")
    await expect(form).to_be_visible(timeout=SEEN)
    return form


async def test_the_badge_counts_unseen_and_opening_the_bell_clears_it_on_every_device(
    browser: Browser, demo_edge: tuple[NotifyProcess, int], service: NotificationService
) -> None:
    user = new_user()
    port = demo_edge[1]
    laptop, phone = await device(browser), await device(browser)
    try:
        page = await open_demo(laptop, port, user)
        other = await open_demo(phone, port, user)
        for title in ("Tour moved to 9:00", "Bring water"):
            await alert(service, user, title)
        await unread(page, 2)
        await expect(badge(page)).to_have_text("2", timeout=SEEN)
        await expect(badge(other)).to_have_text("2", timeout=SEEN)
        await screenshot(page, "badge-unseen")

        await bell(page).click()  # opening the bell: both seen, neither read
        await expect(badge(page)).to_have_count(0, timeout=SEEN)
        await expect(badge(other)).to_have_count(0, timeout=SEEN)  # the seen frame
        await expect(items(page)).to_have_count(2)
        for row in await items(page).all():
            await expect(row).to_have_attribute("data-read", "false")
        await unread(page, 2)
        await unread(other, 2)
        await screenshot(page, "badge-opened-still-unread")

        await page.keyboard.press("Escape")
        await alert(service, user, "Pickup at the hotel")
        await expect(badge(page)).to_have_text("1", timeout=SEEN)
        await unread(page, 3)
        await page.reload()  # the server remembers what was seen
        await expect(bell(page)).to_have_attribute("data-status", "connected", timeout=SEEN)
        await expect(badge(page)).to_have_text("1", timeout=SEEN)
        await unread(page, 3)
    finally:
        await laptop.close()
        await phone.close()


async def test_archive_the_archived_tab_and_unarchive(
    context: BrowserContext, demo_edge: tuple[NotifyProcess, int], service: NotificationService
) -> None:
    user = new_user()
    port = demo_edge[1]
    page = await open_demo(context, port, user)
    tab = await open_demo(context, port, user)  # a second tab of the same browser
    for title in ("First", "Second", "Third"):
        await alert(service, user, title)
    await unread(page, 3)
    await bell(page).click()
    await expect(items(page)).to_have_count(3)

    await item(page, "Second").get_by_role("button", name="Archive").click()
    await expect(items(page)).to_have_count(2, timeout=SEEN)
    await unread(page, 2)  # an archived notification is not counted unread
    await unread(tab, 2)
    assert await page.locator(".tn-bell__title").all_inner_texts() == ["Third", "First"]

    await page.get_by_role("tab", name="Archived").click()
    await expect(items(page)).to_have_count(1, timeout=SEEN)
    await expect(items(page).first).to_contain_text("Second")
    await screenshot(page, "archived-tab")

    await items(page).first.get_by_role("button", name="Unarchive").click()
    await expect(page.get_by_text("No archived notifications")).to_be_visible(timeout=SEEN)
    await unread(page, 3)
    await page.get_by_role("tab", name="All").click()
    await expect(items(page)).to_have_count(3)
    assert await page.locator(".tn-bell__title").all_inner_texts() == ["Third", "Second", "First"]

    # Read one, then "Archive all read": only the read one goes.
    await item(page, "First").click()
    await expect(item(page, "First")).to_have_attribute("data-read", "true", timeout=SEEN)
    await page.get_by_role("button", name="Archive all read").click()
    await expect(items(page)).to_have_count(2, timeout=SEEN)
    await page.get_by_role("tab", name="Archived").click()
    await expect(items(page)).to_have_count(1, timeout=SEEN)
    await expect(items(page).first).to_contain_text("First")

    # By keyboard: Delete on the focused item brings it back.
    await items(page).first.focus()
    await page.keyboard.press("Delete")
    await expect(page.get_by_text("No archived notifications")).to_be_visible(timeout=SEEN)


async def test_a_muted_category_stays_away_while_others_arrive_and_critical_types_are_locked(
    browser: Browser, demo_edge: tuple[NotifyProcess, int], service: NotificationService
) -> None:
    user = new_user()
    port = demo_edge[1]
    laptop, phone = await device(browser), await device(browser)
    try:
        page = await open_demo(laptop, port, user)
        other = await open_demo(phone, port, user)
        form = await open_preferences(page)
        other_form = await open_preferences(other)

        categories = form.get_by_role("group", name="Notify me about").get_by_role("checkbox")
        await expect(categories).to_have_count(7)
        for box in await categories.all():
            await expect(box).to_be_checked()
        locked = form.get_by_role("group", name="Always delivered")
        for name in ("System alert", "Payment failed"):
            box = locked.get_by_role("checkbox", name=name)
            await expect(box).to_be_disabled()
            await expect(box).to_be_checked()
        await expect(locked).to_contain_text("Always on")
        # Quiet hours default to the browser's time zone (not saved here: the test would
        # depend on the time of day).
        await form.get_by_role("checkbox", name="Hold notifications during quiet hours").check()
        await expect(form.get_by_role("combobox", name="Time zone")).to_have_value(ZONE)
        await screenshot(page, "preferences-panel")
        await form.get_by_role("checkbox", name="Hold notifications during quiet hours").uncheck()

        await form.get_by_role("checkbox", name="Chat").uncheck()
        await form.get_by_role("button", name="Save").click()
        await expect(form.get_by_role("status")).to_have_text("Saved", timeout=SEEN)
        # The other device's panel follows the preferences frame: once there, the
        # preferences are in force.
        await expect(other_form.get_by_role("checkbox", name="Chat")).not_to_be_checked(
            timeout=SEEN
        )
        await expect(other_form.get_by_role("checkbox", name="Bookings")).to_be_checked()
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as http:
            answer = await http.get(f"/api/users/{user}/preferences", headers=admin_headers())
        assert answer.json()["preferences"]["muted_categories"] == ["chat"]

        await chat(service, user, "Muted chat message")
        await booking(service, user, "Booking arrives")
        await unread(page, 1)
        await page.get_by_role("button", name="Preferences").click()  # back to the list
        await expect(item(page, "Booking arrives")).to_have_count(1, timeout=SEEN)
        await expect(item(page, "Muted chat message")).to_have_count(0)
        await screenshot(page, "preferences-muted-chat")
        # Not in the history either.
        await page.reload()
        await expect(bell(page)).to_have_attribute("data-status", "connected", timeout=SEEN)
        await bell(page).click()
        await expect(item(page, "Booking arrives")).to_have_count(1, timeout=SEEN)
        await expect(item(page, "Muted chat message")).to_have_count(0)
    finally:
        await laptop.close()
        await phone.close()


async def test_the_preferences_panel_and_archived_tab_pass_an_accessibility_scan(
    browser: Browser, demo_edge: tuple[NotifyProcess, int], service: NotificationService
) -> None:
    user = new_user()
    # The page's Content-Security-Policy refuses injected scripts; axe is let in here only.
    context = await device(browser, bypass_csp=True)
    try:
        page = await open_demo(context, demo_edge[1], user)
        await alert(service, user, "Put away later")
        await unread(page, 1)
        await bell(page).click()
        await item(page, "Put away later").get_by_role("button", name="Archive").click()
        await page.get_by_role("tab", name="Archived").click()
        await expect(items(page)).to_have_count(1, timeout=SEEN)
        await page.add_script_tag(path=str(WEB / "node_modules" / "axe-core" / "axe.min.js"))
        violations = [await page.evaluate("axe.run(document).then(r => r.violations)")]
        form = await open_preferences(page)
        await form.get_by_role("checkbox", name="Hold notifications during quiet hours").check()
        await form.locator("details summary").click()
        violations.append(await page.evaluate("axe.run(document).then(r => r.violations)"))
        await screenshot(page, "preferences-types")
    finally:
        await context.close()
    serious = [v for found in violations for v in found if v["impact"] in ("serious", "critical")]
    assert not serious, [(v["id"], v["help"], [n["target"] for n in v["nodes"]]) for v in serious]
