import { act, cleanup, render } from "@testing-library/react";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import type { NotificationFrame } from "@tour-notify/client";
import {
  requestBrowserNotifications,
  useBrowserNotifications,
  type BrowserNotificationOptions,
  type NotificationEventSource,
} from "../src/browserNotifications";
import type { Inbox } from "@tour-notify/client";
import { FakeInbox, FakeNotification, FakeService, makeItem, setVisibility } from "./fakes";

function Probe(props: {
  source: Inbox | NotificationEventSource;
  options?: BrowserNotificationOptions;
}): null {
  useBrowserNotifications(props.source, props.options);
  return null;
}

function frame(overrides: Partial<NotificationFrame> = {}): NotificationFrame {
  return { ...makeItem(), read: false, priority: "high", ...overrides };
}

beforeEach(() => {
  FakeNotification.install("granted");
  setVisibility("hidden");
});

afterEach(() => {
  cleanup();
  vi.unstubAllGlobals();
  vi.restoreAllMocks();
  setVisibility("visible");
});

describe("from a service", () => {
  function mount(options?: BrowserNotificationOptions): FakeService {
    const service = new FakeService();
    service.status = "connected";
    render(<Probe source={service} {...(options ? { options } : {})} />);
    return service;
  }

  it("shows a live high notification while the page is hidden, as text, tagged with its id", () => {
    const service = mount();
    service.emit("notification", frame({ id: "n1", title: "<b>Title</b>", message: "Body" }));
    expect(FakeNotification.shown).toHaveLength(1);
    const [shown] = FakeNotification.shown;
    expect(shown?.title).toBe("<b>Title</b>");
    expect(shown?.options.body).toBe("Body");
    expect(shown?.options.tag).toBe("n1");
    expect(shown?.options.requireInteraction).toBe(false);
  });

  it("shows urgent ones, and keeps them until the user acts", () => {
    const service = mount();
    service.emit("notification", frame({ priority: "urgent" }));
    expect(FakeNotification.shown[0]?.options.requireInteraction).toBe(true);
  });

  it.each(["normal", "low"] as const)("does not show %s notifications", (priority) => {
    const service = mount();
    service.emit("notification", frame({ priority }));
    expect(FakeNotification.shown).toHaveLength(0);
  });

  it("does not show anything while the page is visible", () => {
    setVisibility("visible");
    const service = mount();
    service.emit("notification", frame({ priority: "urgent" }));
    expect(FakeNotification.shown).toHaveLength(0);
  });

  it("does not show replayed notifications", () => {
    const service = mount();
    service.emit("notification", frame({ replayed: true }));
    expect(FakeNotification.shown).toHaveLength(0);
  });

  it("does not show a notification held back by quiet hours, however urgent", () => {
    const service = mount();
    service.emit("notification", frame({ priority: "urgent", quiet: true }));
    expect(FakeNotification.shown).toHaveLength(0);
  });

  it("does not show what arrives before the connection is up", () => {
    const service = mount();
    service.status = "connecting";
    service.emit("notification", frame({ priority: "urgent" }));
    expect(FakeNotification.shown).toHaveLength(0);
    service.status = "connected";
    service.emit("notification", frame({ priority: "urgent" }));
    expect(FakeNotification.shown).toHaveLength(1);
  });

  it.each(["default", "denied"] as const)(
    "shows nothing with the permission %s, and never asks for it",
    (permission) => {
      FakeNotification.install(permission);
      const service = mount();
      service.emit("notification", frame());
      expect(FakeNotification.shown).toHaveLength(0);
      expect(FakeNotification.requestPermission).not.toHaveBeenCalled();
    },
  );

  it("follows the priorities and enabled options", () => {
    const service = new FakeService();
    service.status = "connected";
    const { rerender } = render(<Probe source={service} options={{ priorities: ["normal"] }} />);
    service.emit("notification", frame({ priority: "high" }));
    service.emit("notification", frame({ priority: "normal" }));
    expect(FakeNotification.shown.map((n) => n.options.tag)).toHaveLength(1);
    rerender(<Probe source={service} options={{ enabled: false }} />);
    expect(service.handlerCount("notification")).toBe(0);
    service.emit("notification", frame());
    expect(FakeNotification.shown).toHaveLength(1);
  });

  it("on a click focuses the window, marks the notification read and closes it", () => {
    const onClick = vi.fn();
    const focus = vi.spyOn(window, "focus").mockImplementation(() => undefined);
    const service = mount({ onClick });
    service.emit("notification", frame({ id: "n9" }));
    const [shown] = FakeNotification.shown;
    shown?.dispatchEvent(new Event("click", { cancelable: true }));
    expect(focus).toHaveBeenCalledTimes(1);
    expect(service.markRead).toHaveBeenCalledWith(["n9"]);
    expect(shown?.close).toHaveBeenCalledTimes(1);
    expect(onClick).toHaveBeenCalledWith(expect.objectContaining({ id: "n9" }));
  });

  it("closes a shown notification once it is read elsewhere", () => {
    const service = mount();
    service.emit("notification", frame({ id: "a", seq: 10 }));
    service.emit("notification", frame({ id: "b", seq: 11 }));
    service.emit("notification", frame({ id: "c", seq: 12 }));
    const [a, b, c] = FakeNotification.shown;
    service.emit("read", { type: "read", ids: ["a"], unread_count: 2 });
    expect(a?.close).toHaveBeenCalled();
    expect(b?.close).not.toHaveBeenCalled();
    service.emit("read", { type: "read", up_to_seq: 11, unread_count: 1 });
    expect(b?.close).toHaveBeenCalled();
    expect(c?.close).not.toHaveBeenCalled();
  });

  it("stops listening on unmount", () => {
    const service = new FakeService();
    const { unmount } = render(<Probe source={service} />);
    expect(service.handlerCount("notification")).toBe(1);
    unmount();
    expect(service.handlerCount("notification")).toBe(0);
    expect(service.handlerCount("read")).toBe(0);
  });
});

describe("from an inbox", () => {
  it("shows items that arrive while connected, not those it found or that were replayed", () => {
    const inbox = new FakeInbox({ notifications: [makeItem({ priority: "urgent", seq: 50 })] });
    render(<Probe source={inbox} />);
    expect(FakeNotification.shown).toHaveLength(0);
    const live = makeItem({ priority: "high", seq: 60, title: "live" });
    const replayed = makeItem({ priority: "high", seq: 61, replayed: true });
    act(() => {
      inbox.set({ notifications: [replayed, live, ...inbox.getSnapshot().notifications] });
    });
    expect(FakeNotification.shown.map((n) => n.title)).toEqual(["live"]);
  });

  it("does not show what arrives while (re)connecting: that is a replay", () => {
    const inbox = new FakeInbox({ status: "reconnecting", isConnected: false });
    render(<Probe source={inbox} />);
    act(() => {
      inbox.set({ notifications: [makeItem({ priority: "urgent" })] });
    });
    act(() => {
      inbox.set({ status: "connected", isConnected: true });
    });
    expect(FakeNotification.shown).toHaveLength(0);
    act(() => {
      inbox.set({ notifications: [makeItem({ priority: "urgent" }), ...inbox.getSnapshot().notifications] });
    });
    expect(FakeNotification.shown).toHaveLength(1);
  });

  it("does not show a page of history, nor read items", () => {
    const inbox = new FakeInbox({ notifications: [makeItem({ seq: 500 })] });
    render(<Probe source={inbox} />);
    act(() => {
      inbox.set({
        notifications: [
          makeItem({ priority: "urgent", seq: 501, read: true }),
          ...inbox.getSnapshot().notifications,
          makeItem({ priority: "urgent", seq: 400 }),
        ],
      });
    });
    expect(FakeNotification.shown).toHaveLength(0);
  });

  it("marks read through the inbox on a click, and closes what the inbox says is read", () => {
    vi.spyOn(window, "focus").mockImplementation(() => undefined);
    const inbox = new FakeInbox();
    render(<Probe source={inbox} />);
    const live = makeItem({ id: "x", priority: "high" });
    act(() => {
      inbox.set({ notifications: [live] });
    });
    const [shown] = FakeNotification.shown;
    shown?.dispatchEvent(new Event("click", { cancelable: true }));
    expect(inbox.markRead).toHaveBeenCalledWith(["x"]);

    const other = makeItem({ id: "y", priority: "high" });
    act(() => {
      inbox.set({ notifications: [other, live] });
    });
    const second = FakeNotification.shown[1];
    expect(second?.close).not.toHaveBeenCalled();
    act(() => {
      inbox.set({ notifications: [{ ...other, read: true }, live] });
    });
    expect(second?.close).toHaveBeenCalled();
  });
});

describe("requestBrowserNotifications", () => {
  it("asks when the permission is undecided", async () => {
    FakeNotification.install("default");
    FakeNotification.requestPermission.mockResolvedValue("granted");
    await expect(requestBrowserNotifications()).resolves.toBe("granted");
    expect(FakeNotification.requestPermission).toHaveBeenCalledTimes(1);
  });

  it.each(["granted", "denied"] as const)("does not ask again when %s", async (permission) => {
    FakeNotification.install(permission);
    await expect(requestBrowserNotifications()).resolves.toBe(permission);
    expect(FakeNotification.requestPermission).not.toHaveBeenCalled();
  });

  it("says when the browser has no notifications", async () => {
    vi.stubGlobal("Notification", undefined);
    await expect(requestBrowserNotifications()).resolves.toBe("unsupported");
  });
});
