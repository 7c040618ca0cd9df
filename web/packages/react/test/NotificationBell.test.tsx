import { act, cleanup, fireEvent, render, screen, within } from "@testing-library/react";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import type { InboxItem } from "@tour-notify/client";
import DefaultBell, {
  NotificationBell,
  type NotificationBellBaseProps,
} from "../src/NotificationBell";
import { FakeInbox, FakeNotification, makeItem } from "./fakes";

afterEach(() => {
  cleanup();
  vi.unstubAllGlobals();
  vi.restoreAllMocks();
});

function renderBell(inbox: FakeInbox, props: NotificationBellBaseProps = {}) {
  const onNavigate = vi.fn<(url: string) => void>();
  const view = render(
    <NotificationBell inbox={inbox} onNavigate={onNavigate} locale="en-GB" {...props} />,
  );
  return { ...view, onNavigate };
}

function bellButton(): HTMLElement {
  return screen.getByRole("button", { name: /^Notifications/ });
}

function open(): void {
  fireEvent.click(bellButton());
}

function items(): HTMLElement[] {
  return screen.getAllByRole("menuitem");
}

function withUnread(count: number, extra: Partial<InboxItem>[] = []): FakeInbox {
  return new FakeInbox({
    unreadCount: count,
    notifications: extra.map((overrides) => makeItem(overrides)),
  });
}

describe("the button", () => {
  it("shows the unseen count in a badge, not the unread one, and no badge at zero", () => {
    const inbox = new FakeInbox({ unreadCount: 5, unseenCount: 3 });
    const { container } = renderBell(inbox);
    expect(container.querySelector(".tn-bell__badge")?.textContent).toBe("3");
    act(() => {
      inbox.set({ unseenCount: 0 });
    });
    expect(container.querySelector(".tn-bell__badge")).toBeNull();
    // Still unread: the name says so, the badge does not.
    expect(bellButton().getAttribute("aria-label")).toBe("Notifications, 5 unread");
  });

  it("describes the button with the unseen count while there is one", () => {
    const inbox = new FakeInbox({ unreadCount: 5, unseenCount: 2 });
    renderBell(inbox);
    const described = bellButton().getAttribute("aria-describedby");
    expect(document.getElementById(described ?? "")?.textContent).toBe("2 new");
    act(() => {
      inbox.set({ unseenCount: 0 });
    });
    expect(bellButton().getAttribute("aria-describedby")).toBeNull();
  });

  it("caps the badge at 99+", () => {
    const inbox = new FakeInbox({ unseenCount: 99 });
    const { container } = renderBell(inbox);
    expect(container.querySelector(".tn-bell__badge")?.textContent).toBe("99");
    act(() => {
      inbox.set({ unseenCount: 100 });
    });
    expect(container.querySelector(".tn-bell__badge")?.textContent).toBe("99+");
  });

  it("carries the count in its accessible name, uncapped", () => {
    const inbox = withUnread(3);
    renderBell(inbox);
    expect(screen.getByRole("button", { name: "Notifications, 3 unread" })).toBeTruthy();
    act(() => {
      inbox.set({ unreadCount: 250 });
    });
    expect(screen.getByRole("button", { name: "Notifications, 250 unread" })).toBeTruthy();
    act(() => {
      inbox.set({ unreadCount: 0 });
    });
    expect(screen.getByRole("button", { name: "Notifications" })).toBeTruthy();
  });

  it("says what it controls and whether it is expanded", () => {
    renderBell(withUnread(1, [{}]));
    const button = bellButton();
    expect(button.getAttribute("aria-haspopup")).toBe("dialog");
    expect(button.getAttribute("aria-expanded")).toBe("false");
    const panelId = button.getAttribute("aria-controls");
    expect(panelId).toBeTruthy();
    const panel = document.getElementById(panelId ?? "");
    expect(panel?.hidden).toBe(true);
    open();
    expect(button.getAttribute("aria-expanded")).toBe("true");
    expect(panel?.hidden).toBe(false);
    expect(panel?.getAttribute("role")).toBe("dialog");
  });

  it("is also the module's default export", () => {
    expect(DefaultBell).toBe(NotificationBell);
  });
});

describe("keyboard", () => {
  it("opens with Enter, moves with the arrows, Home and End, and closes with Escape", () => {
    renderBell(withUnread(3, [{ title: "first" }, { title: "second" }, { title: "third" }]));
    const button = bellButton();
    button.focus();
    fireEvent.keyDown(button, { key: "Enter" });
    const [first, second, third] = items();
    expect(document.activeElement).toBe(first);
    expect(items().map((item) => item.tabIndex)).toEqual([0, -1, -1]);

    fireEvent.keyDown(document.activeElement ?? document.body, { key: "ArrowDown" });
    expect(document.activeElement).toBe(second);
    expect(items().map((item) => item.tabIndex)).toEqual([-1, 0, -1]);
    fireEvent.keyDown(document.activeElement ?? document.body, { key: "End" });
    expect(document.activeElement).toBe(third);
    fireEvent.keyDown(document.activeElement ?? document.body, { key: "ArrowDown" });
    expect(document.activeElement).toBe(first);
    fireEvent.keyDown(document.activeElement ?? document.body, { key: "ArrowUp" });
    expect(document.activeElement).toBe(third);
    fireEvent.keyDown(document.activeElement ?? document.body, { key: "Home" });
    expect(document.activeElement).toBe(first);

    fireEvent.keyDown(document.activeElement ?? document.body, { key: "Escape" });
    expect(button.getAttribute("aria-expanded")).toBe("false");
    expect(document.activeElement).toBe(button);
  });

  it("opens on the last item with ArrowUp and toggles with Space", () => {
    renderBell(withUnread(2, [{ title: "first" }, { title: "last" }]));
    const button = bellButton();
    button.focus();
    fireEvent.keyDown(button, { key: "ArrowUp" });
    expect(document.activeElement).toBe(items()[1]);
    fireEvent.keyDown(document.activeElement ?? document.body, { key: "Escape" });
    fireEvent.keyDown(button, { key: " " });
    expect(button.getAttribute("aria-expanded")).toBe("true");
    button.focus();
    fireEvent.keyDown(button, { key: " " });
    expect(button.getAttribute("aria-expanded")).toBe("false");
  });

  it("activates the focused item with Enter and with Space", () => {
    const inbox = withUnread(2, [
      { id: "a", action_url: "/bookings/a" },
      { id: "b", action_url: null },
    ]);
    const { onNavigate } = renderBell(inbox);
    fireEvent.keyDown(bellButton(), { key: "Enter" });
    fireEvent.keyDown(document.activeElement ?? document.body, { key: "ArrowDown" });
    fireEvent.keyDown(document.activeElement ?? document.body, { key: " " });
    expect(inbox.markRead).toHaveBeenLastCalledWith(["b"]);
    fireEvent.keyDown(document.activeElement ?? document.body, { key: "ArrowUp" });
    fireEvent.keyDown(document.activeElement ?? document.body, { key: "Enter" });
    expect(inbox.markRead).toHaveBeenLastCalledWith(["a"]);
    expect(onNavigate).toHaveBeenCalledWith("/bookings/a");
    expect(document.activeElement).toBe(bellButton());
  });

  it("moves between the tabs with the arrow keys", () => {
    renderBell(withUnread(1, [{ read: true, title: "old" }, { title: "new" }]));
    open();
    const all = screen.getByRole("tab", { name: "All" });
    all.focus();
    fireEvent.keyDown(all, { key: "ArrowRight" });
    const unread = screen.getByRole("tab", { name: "Unread" });
    expect(unread.getAttribute("aria-selected")).toBe("true");
    expect(document.activeElement).toBe(unread);
    expect(unread.tabIndex).toBe(0);
    expect(all.tabIndex).toBe(-1);
    expect(items().map((item) => item.textContent)).toEqual([expect.stringContaining("new")]);
  });

  it("keeps the list one tab stop: only the active item is tabbable", () => {
    renderBell(withUnread(3, [{}, {}, {}]));
    open();
    expect(items().filter((item) => item.tabIndex === 0)).toHaveLength(1);
  });

  it("closes when focus moves to an element outside, and on a pointer down outside", () => {
    const outside = document.createElement("button");
    document.body.append(outside);
    renderBell(withUnread(1, [{}]));
    open();
    const [item] = items();
    fireEvent.blur(item ?? document.body, { relatedTarget: outside });
    expect(bellButton().getAttribute("aria-expanded")).toBe("false");
    open();
    fireEvent.pointerDown(outside);
    expect(bellButton().getAttribute("aria-expanded")).toBe("false");
    outside.remove();
  });

  it("keeps focus in the panel when the focused item leaves the Unread tab", () => {
    const inbox = withUnread(2, [{ id: "a" }, { id: "b", title: "next" }]);
    renderBell(inbox);
    open();
    fireEvent.click(screen.getByRole("tab", { name: "Unread" }));
    const [first] = items();
    first?.focus();
    act(() => {
      const [a, b] = inbox.getSnapshot().notifications;
      if (a === undefined || b === undefined) throw new Error("fixture");
      inbox.set({ notifications: [{ ...a, read: true }, b], unreadCount: 1 });
    });
    const remaining = items();
    expect(remaining).toHaveLength(1);
    expect(remaining[0]?.textContent).toContain("next");
    expect(document.activeElement).toBe(remaining[0]);
  });
});

describe("items", () => {
  it("marks an unread item read on click, and not one already read", () => {
    const inbox = withUnread(1, [{ id: "u" }, { id: "r", read: true }]);
    renderBell(inbox);
    open();
    const [unread, read] = items();
    fireEvent.click(unread ?? document.body);
    expect(inbox.markRead).toHaveBeenCalledWith(["u"]);
    fireEvent.click(read ?? document.body);
    expect(inbox.markRead).toHaveBeenCalledTimes(1);
  });

  it("navigates to a same-origin path", () => {
    const inbox = withUnread(1, [{ action_url: "/bookings/b1?tab=1#x" }]);
    const { onNavigate } = renderBell(inbox);
    open();
    fireEvent.click(items()[0] ?? document.body);
    expect(onNavigate).toHaveBeenCalledWith("/bookings/b1?tab=1#x");
    expect(bellButton().getAttribute("aria-expanded")).toBe("false");
  });

  it.each([
    "https://evil.example/phish",
    "//evil.example/phish",
    "/\\evil.example/phish",
    "/\t/evil.example",
    "/\n/evil.example",
    "javascript:alert(1)",
    "bookings/relative",
    "",
  ])("does not follow %j, but still marks the item read", (url) => {
    const inbox = withUnread(1, [{ id: "x", action_url: url }]);
    const { onNavigate } = renderBell(inbox);
    open();
    fireEvent.click(items()[0] ?? document.body);
    expect(inbox.markRead).toHaveBeenCalledWith(["x"]);
    expect(onNavigate).not.toHaveBeenCalled();
  });

  it("renders an HTML payload in the title and message as text", () => {
    const title = '<img src="x" onerror="globalThis.pwned = 1">';
    const message = "<script>globalThis.pwned = 2</script><b>bold</b><a href='javascript:1'>x</a>";
    const { container } = renderBell(withUnread(1, [{ title, message }]));
    open();
    const item = items()[0];
    expect(item?.textContent).toContain(title);
    expect(item?.textContent).toContain(message);
    for (const tag of ["img", "script", "b", "a"]) {
      expect(container.querySelector(tag)).toBeNull();
    }
    expect("pwned" in globalThis).toBe(false);
  });

  it("marks priorities: urgent and high get a label and a data-priority", () => {
    renderBell(
      withUnread(3, [
        { priority: "urgent", title: "u" },
        { priority: "high", title: "h" },
        { priority: "normal", title: "n" },
      ]),
    );
    open();
    const [urgent, high, normal] = items();
    expect(urgent?.dataset.priority).toBe("urgent");
    expect(urgent?.querySelector(".tn-bell__priority")?.textContent).toBe("Urgent");
    expect(high?.dataset.priority).toBe("high");
    expect(high?.querySelector(".tn-bell__priority")?.textContent).toBe("High");
    expect(normal?.dataset.priority).toBe("normal");
    expect(normal?.querySelector(".tn-bell__priority")).toBeNull();
  });

  it("shows relative times and says which items are unread", () => {
    renderBell(
      withUnread(1, [
        { title: "recent", timestamp: new Date(Date.now() - 2 * 60_000).toISOString() },
        { title: "older", read: true, timestamp: new Date(Date.now() - 3 * 3_600_000).toISOString() },
      ]),
    );
    open();
    const [recent, older] = items();
    expect(recent?.querySelector("time")?.textContent).toBe("2 min ago");
    expect(older?.querySelector("time")?.textContent).toBe("3 hr ago");
    expect(recent?.textContent).toMatch(/^Unread: /);
    expect(older?.textContent).not.toContain("Unread");
  });

  it("uses renderNotification for an item's content", () => {
    const inbox = withUnread(1, [{ id: "c", title: "Custom" }]);
    renderBell(inbox, {
      renderNotification: (item, { relativeTime }) => (
        <span className="custom">{`${item.title.toUpperCase()} (${relativeTime})`}</span>
      ),
    });
    open();
    const item = items()[0];
    expect(item?.querySelector(".custom")?.textContent).toBe("CUSTOM (2 min ago)");
    expect(item?.querySelector(".tn-bell__title")).toBeNull();
    fireEvent.click(item ?? document.body);
    expect(inbox.markRead).toHaveBeenCalledWith(["c"]);
  });
});

describe("the panel", () => {
  it("marks all as read, and is disabled with nothing unread", () => {
    const inbox = withUnread(2, [{}, {}]);
    renderBell(inbox);
    open();
    const markAll = screen.getByRole("button", { name: "Mark all as read" });
    expect(markAll.getAttribute("aria-disabled")).toBe("false");
    fireEvent.click(markAll);
    expect(inbox.markAllRead).toHaveBeenCalledTimes(1);
    act(() => {
      inbox.set({
        unreadCount: 0,
        notifications: inbox.getSnapshot().notifications.map((item) => ({ ...item, read: true })),
      });
    });
    expect(markAll.getAttribute("aria-disabled")).toBe("true");
    fireEvent.click(markAll);
    expect(inbox.markAllRead).toHaveBeenCalledTimes(1);
  });

  it("filters to unread items under the Unread tab, with its own empty text", () => {
    renderBell(withUnread(0, [{ read: true, title: "seen" }]));
    open();
    expect(items()).toHaveLength(1);
    fireEvent.click(screen.getByRole("tab", { name: "Unread" }));
    expect(screen.queryAllByRole("menuitem")).toHaveLength(0);
    expect(screen.getByText("No unread notifications")).toBeTruthy();
    fireEvent.click(screen.getByRole("tab", { name: "All" }));
    expect(items()).toHaveLength(1);
  });

  it("shows an empty state, and a loading one while connecting", () => {
    const inbox = new FakeInbox({ status: "connecting", isConnected: false });
    renderBell(inbox);
    open();
    expect(screen.getByText("Loading…")).toBeTruthy();
    act(() => {
      inbox.set({ status: "connected", isConnected: true });
    });
    expect(screen.getByText("No notifications yet")).toBeTruthy();
    expect(screen.queryByRole("menu")).toBeNull();
  });

  it("shows the inbox's error as an alert, as text", () => {
    const inbox = new FakeInbox();
    renderBell(inbox);
    open();
    expect(screen.queryByRole("alert")).toBeNull();
    act(() => {
      inbox.set({ error: "<i>history unavailable</i>" });
    });
    const alert = screen.getByRole("alert");
    expect(alert.textContent).toBe("Something went wrong: <i>history unavailable</i>");
    expect(alert.querySelector("i")).toBeNull();
  });

  it.each([
    ["connected", "Connected"],
    ["reconnecting", "Reconnecting…"],
    ["offline", "Offline"],
    ["auth_failed", "Sign-in expired: reload the page"],
  ] as const)("shows the %s status", (status, text) => {
    renderBell(new FakeInbox({ status, isConnected: status === "connected" }));
    open();
    const indicator = screen.getByRole("status");
    expect(indicator.textContent).toBe(text);
    expect(indicator.dataset.status).toBe(status);
    expect(bellButton().dataset.status).toBe(status);
  });

  it("takes its strings from the strings prop", () => {
    renderBell(withUnread(2, [{ priority: "urgent" }]), {
      strings: {
        buttonLabel: (count) => `Benachrichtigungen, ${count} ungelesen`,
        tabAll: "Alle",
        markAllRead: "Alle als gelesen markieren",
        priorityUrgent: "Dringend",
        status: { connected: "Verbunden" },
      },
    });
    const button = screen.getByRole("button", { name: "Benachrichtigungen, 2 ungelesen" });
    fireEvent.click(button);
    expect(screen.getByRole("tab", { name: "Alle" })).toBeTruthy();
    expect(screen.getByRole("tab", { name: "Unread" })).toBeTruthy();
    expect(screen.getByRole("button", { name: "Alle als gelesen markieren" })).toBeTruthy();
    expect(screen.getByRole("status").textContent).toBe("Verbunden");
    expect(items()[0]?.querySelector(".tn-bell__priority")?.textContent).toBe("Dringend");
  });
});

describe("history", () => {
  let observers: { callback: IntersectionObserverCallback; targets: Element[] }[];

  beforeEach(() => {
    observers = [];
    class FakeObserver {
      readonly targets: Element[] = [];
      constructor(readonly callback: IntersectionObserverCallback) {
        observers.push(this);
      }
      observe(target: Element): void {
        this.targets.push(target);
      }
      disconnect(): void {
        const index = observers.indexOf(this);
        if (index >= 0) observers.splice(index, 1);
      }
    }
    vi.stubGlobal("IntersectionObserver", FakeObserver);
  });

  function intersect(): void {
    for (const observer of [...observers]) {
      const entries = observer.targets.map(
        (target) => ({ isIntersecting: true, target }) as unknown as IntersectionObserverEntry,
      );
      act(() => {
        observer.callback(entries, observer as unknown as IntersectionObserver);
      });
    }
  }

  it("loads older notifications when the end of the list scrolls into view", () => {
    const inbox = new FakeInbox({ notifications: [makeItem()], hasMore: true });
    renderBell(inbox);
    expect(observers).toHaveLength(0);
    open();
    expect(observers).toHaveLength(1);
    expect(observers[0]?.targets[0]?.classList.contains("tn-bell__sentinel")).toBe(true);
    intersect();
    expect(inbox.loadMore).toHaveBeenCalledTimes(1);
    act(() => {
      inbox.set({ loadingMore: true });
    });
    expect(observers).toHaveLength(0);
    act(() => {
      inbox.set({ loadingMore: false, hasMore: false });
    });
    expect(observers).toHaveLength(0);
  });

  it("offers a Load older button while there is more", () => {
    const inbox = new FakeInbox({ notifications: [makeItem()], hasMore: true });
    renderBell(inbox);
    open();
    const button = screen.getByRole("button", { name: "Load older" });
    fireEvent.click(button);
    expect(inbox.loadMore).toHaveBeenCalledTimes(1);
    act(() => {
      inbox.set({ loadingMore: true });
    });
    fireEvent.click(button);
    expect(inbox.loadMore).toHaveBeenCalledTimes(1);
    act(() => {
      inbox.set({ loadingMore: false, hasMore: false });
    });
    expect(screen.queryByRole("button", { name: "Load older" })).toBeNull();
  });
});

describe("desktop notifications control", () => {
  it("is offered while the permission is undecided, and asks only when used", async () => {
    FakeNotification.install("default");
    renderBell(withUnread(1, [{}]));
    open();
    expect(FakeNotification.requestPermission).not.toHaveBeenCalled();
    const enable = screen.getByRole("button", { name: "Enable desktop notifications" });
    FakeNotification.requestPermission.mockImplementation(() => {
      FakeNotification.permission = "granted";
      return Promise.resolve("granted");
    });
    await act(async () => {
      fireEvent.click(enable);
      await Promise.resolve();
    });
    expect(FakeNotification.requestPermission).toHaveBeenCalledTimes(1);
    expect(screen.queryByRole("button", { name: "Enable desktop notifications" })).toBeNull();
  });

  it.each(["granted", "denied"] as const)("is not offered when %s", (permission) => {
    FakeNotification.install(permission);
    renderBell(withUnread(1, [{}]));
    open();
    expect(screen.queryByRole("button", { name: "Enable desktop notifications" })).toBeNull();
  });

  it("is not offered when the bell's desktop notifications are off", () => {
    FakeNotification.install("default");
    renderBell(withUnread(1, [{}]), { browserNotifications: false });
    open();
    expect(screen.queryByRole("button", { name: "Enable desktop notifications" })).toBeNull();
  });
});

describe("styles", () => {
  it("puts one stylesheet in the head, as text, and removes it with the last bell", () => {
    const first = renderBell(withUnread(0));
    const second = renderBell(withUnread(0));
    const sheets = document.head.querySelectorAll("style[data-tour-notify-bell]");
    expect(sheets).toHaveLength(1);
    expect(sheets[0]?.textContent).toContain(".tn-bell");
    first.unmount();
    expect(document.head.querySelectorAll("style[data-tour-notify-bell]")).toHaveLength(1);
    second.unmount();
    expect(document.head.querySelectorAll("style[data-tour-notify-bell]")).toHaveLength(0);
  });

  it("injects nothing with injectStyles={false}", () => {
    renderBell(withUnread(0), { injectStyles: false });
    expect(document.head.querySelector("style[data-tour-notify-bell]")).toBeNull();
  });
});

describe("within the panel", () => {
  it("labels the list with the tab it shows", () => {
    renderBell(withUnread(1, [{}]));
    open();
    const menu = screen.getByRole("menu", { name: "All" });
    expect(within(menu).getAllByRole("menuitem")).toHaveLength(1);
  });
});
