/** The bell's seen, archive and preferences behaviour, over a FakeInbox. */
import { act, cleanup, fireEvent, render, screen, within } from "@testing-library/react";
import { afterEach, describe, expect, it, vi } from "vitest";
import type { InboxItem, PreferencesInfo } from "@tour-notify/client";
import { NotificationBell, type NotificationBellBaseProps } from "../src/NotificationBell";
import { browserTimeZone } from "../src/PreferencesPanel";
import { FakeInbox, makeItem } from "./fakes";

afterEach(() => {
  cleanup();
  vi.unstubAllGlobals();
  vi.restoreAllMocks();
});

function renderBell(inbox: FakeInbox, props: NotificationBellBaseProps = {}) {
  return render(<NotificationBell inbox={inbox} onNavigate={vi.fn()} locale="en-GB" {...props} />);
}

const bellButton = (): HTMLElement => screen.getByRole("button", { name: /^Notifications/ });
const open = (): void => {
  fireEvent.click(bellButton());
};
const items = (): HTMLElement[] => screen.getAllByRole("menuitem");

function inboxWith(list: Partial<InboxItem>[], extra: Partial<ConstructorParameters<typeof FakeInbox>[0]> = {}) {
  return new FakeInbox({
    notifications: list.map((o) => makeItem(o)),
    unreadCount: list.filter((o) => o.read !== true).length,
    unseenCount: list.filter((o) => o.read !== true).length,
    ...extra,
  });
}

const INFO: PreferencesInfo = {
  preferences: { muted_categories: ["chat"], muted_types: [], quiet_hours: null },
  critical_types: ["system_alert", "payment_failed"],
  categories: ["booking", "payment", "tour", "agent", "chat", "system", "ai_agent"],
  types: [
    { type: "booking_confirmed", category: "booking", critical: false },
    { type: "payment_failed", category: "payment", critical: true },
    { type: "chat_message", category: "chat", critical: false },
    { type: "system_alert", category: "system", critical: true },
  ],
};

describe("seen", () => {
  it("opening the bell marks seen; the list keeps its unread items", () => {
    const inbox = inboxWith([{ title: "a" }, { title: "b" }]);
    const { container } = renderBell(inbox);
    expect(container.querySelector(".tn-bell__badge")?.textContent).toBe("2");
    expect(inbox.markSeen).not.toHaveBeenCalled();
    open();
    expect(inbox.markSeen).toHaveBeenCalledTimes(1);
    act(() => {
      inbox.set({ unseenCount: 0 });
    });
    expect(container.querySelector(".tn-bell__badge")).toBeNull();
    expect(items().map((item) => item.dataset.read)).toEqual(["false", "false"]);
    expect(bellButton().getAttribute("aria-label")).toBe("Notifications, 2 unread");
  });

  it("what arrives while the bell is open is seen too", () => {
    const inbox = inboxWith([{}]);
    renderBell(inbox);
    open();
    const calls = inbox.markSeen.mock.calls.length;
    act(() => {
      inbox.set({ notifications: [makeItem(), ...inbox.getSnapshot().notifications], unseenCount: 1 });
    });
    expect(inbox.markSeen.mock.calls.length).toBeGreaterThan(calls);
  });
});

describe("archive", () => {
  it("an item's Archive button archives it without opening it", () => {
    const inbox = inboxWith([{ id: "a", action_url: "/x" }, { id: "b" }]);
    renderBell(inbox);
    open();
    const [first] = items();
    fireEvent.click(within(first ?? document.body).getByRole("button", { name: "Archive" }));
    expect(inbox.archive).toHaveBeenCalledWith(["a"]);
    expect(inbox.markRead).not.toHaveBeenCalled();
    expect(bellButton().getAttribute("aria-expanded")).toBe("true");
  });

  it("Delete archives the focused item, and the menu stays one tab stop", () => {
    const inbox = inboxWith([{ id: "a" }, { id: "b" }]);
    renderBell(inbox);
    fireEvent.keyDown(bellButton(), { key: "Enter" });
    fireEvent.keyDown(document.activeElement ?? document.body, { key: "ArrowDown" });
    fireEvent.keyDown(document.activeElement ?? document.body, { key: "Delete" });
    expect(inbox.archive).toHaveBeenCalledWith(["b"]);
    expect(items()[0]?.getAttribute("aria-keyshortcuts")).toBe("Delete");
    for (const button of screen.getAllByRole("button", { name: "Archive" })) expect(button.tabIndex).toBe(-1);
  });

  it("Archive all read archives the read ones, and is disabled with none read", () => {
    const inbox = inboxWith([{ read: true }, {}]);
    renderBell(inbox);
    open();
    const button = screen.getByRole("button", { name: "Archive all read" });
    fireEvent.click(button);
    expect(inbox.archiveAllRead).toHaveBeenCalledTimes(1);
    act(() => {
      inbox.set({ notifications: inbox.getSnapshot().notifications.filter((n) => !n.read) });
    });
    expect(button.getAttribute("aria-disabled")).toBe("true");
    fireEvent.click(button);
    expect(inbox.archiveAllRead).toHaveBeenCalledTimes(1);
  });

  it("the Archived tab fetches the archived list, shows it, and unarchives", () => {
    const inbox = inboxWith([{ title: "in the inbox" }]);
    renderBell(inbox);
    open();
    expect(inbox.loadArchived).not.toHaveBeenCalled();
    fireEvent.click(screen.getByRole("tab", { name: "Archived" }));
    expect(inbox.loadArchived).toHaveBeenCalledTimes(1);
    expect(screen.getByText("No archived notifications")).toBeTruthy();
    act(() => {
      inbox.set({
        archived: { items: [makeItem({ id: "old", title: "put away" })], hasMore: false, loading: false, loaded: true },
      });
    });
    expect(items().map((item) => item.textContent)).toEqual([expect.stringContaining("put away")]);
    expect(screen.queryByRole("button", { name: "Archive all read" })).toBeNull();
    fireEvent.click(screen.getByRole("button", { name: "Unarchive" }));
    expect(inbox.unarchive).toHaveBeenCalledWith(["old"]);
    expect(screen.getByRole("menu", { name: "Archived" })).toBeTruthy();
  });

  it("pages the archived list with Load older", () => {
    const inbox = inboxWith([]);
    inbox.set({ archived: { items: [makeItem()], hasMore: true, loading: false, loaded: true } });
    renderBell(inbox);
    open();
    fireEvent.click(screen.getByRole("tab", { name: "Archived" }));
    fireEvent.click(screen.getByRole("button", { name: "Load older" }));
    expect(inbox.loadArchived).toHaveBeenLastCalledWith(true);
    expect(inbox.loadMore).not.toHaveBeenCalled();
  });
});

describe("quiet", () => {
  it("marks an item that arrived during quiet hours", () => {
    renderBell(inboxWith([{ quiet: true, title: "hushed" }, { title: "loud" }]));
    open();
    const [hushed, loud] = items();
    expect(hushed?.dataset.quiet).toBe("true");
    expect(hushed?.textContent).toContain("Quiet hours");
    expect(loud?.dataset.quiet).toBeUndefined();
  });
});

describe("preferences", () => {
  function openPreferences(inbox: FakeInbox): void {
    renderBell(inbox);
    open();
    fireEvent.click(screen.getByRole("button", { name: "Preferences" }));
  }

  it("opens from the panel's header, loads, and says it is loading until it has them", () => {
    const inbox = new FakeInbox();
    openPreferences(inbox);
    expect(inbox.loadPreferences).toHaveBeenCalledTimes(1);
    expect(screen.getByRole("button", { name: "Preferences" }).getAttribute("aria-expanded")).toBe("true");
    expect(screen.getByText("Loading…")).toBeTruthy();
    expect(screen.queryByRole("menu")).toBeNull();
    act(() => {
      inbox.set({ preferences: INFO });
    });
    expect(screen.getByRole("form", { name: "Preferences" })).toBeTruthy();
    fireEvent.click(screen.getByRole("button", { name: "Preferences" }));
    expect(screen.queryByRole("form")).toBeNull();
    expect(screen.getByRole("tablist")).toBeTruthy();
  });

  it("a checkbox per category, checked unless muted; the critical types locked", () => {
    openPreferences(new FakeInbox({ preferences: INFO }));
    const categories = within(screen.getByRole("group", { name: "Notify me about" }));
    const boxes = categories.getAllByRole("checkbox");
    expect(boxes.map((box) => [box.getAttribute("value"), (box as HTMLInputElement).checked])).toEqual([
      ["booking", true],
      ["payment", true],
      ["tour", true],
      ["agent", true],
      ["chat", false],
      ["system", true],
      ["ai_agent", true],
    ]);
    expect(categories.getByRole("checkbox", { name: "AI assistant" })).toBeTruthy();
    const critical = within(screen.getByRole("group", { name: "Always delivered" }));
    for (const name of [/System alert/, /Payment failed/]) {
      const box = critical.getByRole<HTMLInputElement>("checkbox", { name });
      expect([box.checked, box.disabled]).toEqual([true, true]);
      expect(box.closest("label")?.textContent).toContain("Always on");
    }
  });

  it("saves the categories, a type's mute and quiet hours in the browser's time zone", async () => {
    const inbox = new FakeInbox({ preferences: INFO });
    openPreferences(inbox);
    fireEvent.click(screen.getByRole("checkbox", { name: "Chat" }));
    fireEvent.click(screen.getByRole("checkbox", { name: "Tours" }));
    fireEvent.click(screen.getByRole("checkbox", { name: "Booking confirmed" }));
    fireEvent.click(screen.getByRole("checkbox", { name: "Hold notifications during quiet hours" }));
    expect(screen.getByRole<HTMLSelectElement>("combobox", { name: "Time zone" }).value).toBe(browserTimeZone());
    fireEvent.change(screen.getByLabelText("From"), { target: { value: "21:30" } });
    fireEvent.change(screen.getByRole("combobox", { name: "Time zone" }), { target: { value: "Asia/Jerusalem" } });
    await act(async () => {
      fireEvent.click(screen.getByRole("button", { name: "Save" }));
      await Promise.resolve();
    });
    expect(inbox.savePreferences).toHaveBeenCalledWith({
      muted_categories: ["tour"],
      muted_types: ["booking_confirmed"],
      quiet_hours: { start: "21:30", end: "07:00", time_zone: "Asia/Jerusalem" },
    });
    expect(screen.getByText("Saved")).toBeTruthy();
  });

  it("a type of a muted category, and a critical type, cannot be toggled on its own", () => {
    openPreferences(new FakeInbox({ preferences: INFO }));
    const chat = screen.getByRole<HTMLInputElement>("checkbox", { name: "Chat message" });
    expect([chat.checked, chat.disabled]).toEqual([false, true]);
    const alert = screen.getAllByRole("checkbox", { name: /System alert/ });
    for (const box of alert) expect((box as HTMLInputElement).disabled).toBe(true);
  });

  it("refuses to save quiet hours that start when they end", () => {
    const inbox = new FakeInbox({
      preferences: { ...INFO, preferences: { quiet_hours: { start: "22:00", end: "07:00", time_zone: "UTC" } } },
    });
    openPreferences(inbox);
    fireEvent.change(screen.getByLabelText("To"), { target: { value: "22:00" } });
    expect(screen.getByRole("alert").textContent).toBe("The start and the end must differ.");
    fireEvent.click(screen.getByRole("button", { name: "Save" }));
    expect(inbox.savePreferences).not.toHaveBeenCalled();
  });

  it("follows preferences saved on another device while it holds no change of its own", () => {
    const inbox = new FakeInbox({ preferences: INFO });
    openPreferences(inbox);
    const chat = (): HTMLInputElement => screen.getByRole("checkbox", { name: "Chat" });
    expect(chat().checked).toBe(false);
    act(() => {
      inbox.set({ preferences: { ...INFO, preferences: { muted_categories: ["payment"] } } });
    });
    expect(chat().checked).toBe(true);
    expect(screen.getByRole<HTMLInputElement>("checkbox", { name: "Payments" }).checked).toBe(false);
    // With a change of its own, the form keeps it.
    fireEvent.click(screen.getByRole("checkbox", { name: "Bookings" }));
    act(() => {
      inbox.set({ preferences: { ...INFO, preferences: {} } });
    });
    expect(screen.getByRole<HTMLInputElement>("checkbox", { name: "Bookings" }).checked).toBe(false);
  });

  it("a refused save keeps the changes, and the inbox shows the refusal", async () => {
    const inbox = new FakeInbox({ preferences: INFO });
    inbox.savePreferences.mockImplementation(() => {
      inbox.set({ error: "quiet_hours.time_zone: unknown" });
      return Promise.reject(new Error("refused"));
    });
    openPreferences(inbox);
    fireEvent.click(screen.getByRole("checkbox", { name: "Tours" }));
    await act(async () => {
      fireEvent.click(screen.getByRole("button", { name: "Save" }));
      await Promise.resolve();
    });
    expect(screen.getByRole("alert").textContent).toContain("quiet_hours.time_zone: unknown");
    expect(screen.getByRole<HTMLInputElement>("checkbox", { name: "Tours" }).checked).toBe(false);
    expect(screen.queryByText("Saved")).toBeNull();
  });

  it("is not offered with preferences={false}", () => {
    renderBell(new FakeInbox(), { preferences: false });
    open();
    expect(screen.queryByRole("button", { name: "Preferences" })).toBeNull();
  });
});
