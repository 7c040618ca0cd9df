import { act, cleanup, render, renderHook } from "@testing-library/react";
import { StrictMode, type ReactNode } from "react";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import type { WebSocketService } from "@tour-notify/client";
import { FakeInbox, FakeService, makeItem } from "./fakes";

const client = vi.hoisted(() => ({
  services: new Map<string, unknown>(),
  inboxes: new Map<unknown, unknown>(),
}));

vi.mock("@tour-notify/client", async () => {
  const { FakeInbox: Inbox, FakeService: Service } = await import("./fakes");
  return {
    getWebSocketService: vi.fn((url: string, userId: string, deviceType = "web") => {
      const key = `${url}|${userId}|${deviceType}`;
      let service = client.services.get(key);
      if (service === undefined) {
        service = new Service();
        client.services.set(key, service);
      }
      return service;
    }),
    getInbox: vi.fn((service: unknown) => {
      let inbox = client.inboxes.get(service);
      if (inbox === undefined) {
        inbox = new Inbox();
        client.inboxes.set(service, inbox);
      }
      return inbox;
    }),
  };
});

const { getWebSocketService } = await import("@tour-notify/client");
const { useWebSocket, serviceUserCount } = await import("../src/useWebSocket");
const { NotificationBell } = await import("../src/NotificationBell");

const URL = "wss://edge.example";

function serviceOf(userId: string, deviceType = "web"): FakeService {
  const service = client.services.get(`${URL}|${userId}|${deviceType}`);
  if (!(service instanceof FakeService)) throw new Error(`no service for ${userId}`);
  return service;
}

function asService(fake: FakeService): WebSocketService {
  return fake as unknown as WebSocketService;
}

function inboxOf(service: FakeService): FakeInbox {
  const inbox = client.inboxes.get(service);
  if (!(inbox instanceof FakeInbox)) throw new Error("no inbox");
  return inbox;
}

function User(props: { userId: string; autoConnect?: boolean }): ReactNode {
  const { status } = useWebSocket(props.userId, {
    url: URL,
    ...(props.autoConnect === undefined ? {} : { autoConnect: props.autoConnect }),
  });
  return <span>{status}</span>;
}

async function settle(): Promise<void> {
  // The last user's disconnect waits one macrotask, for StrictMode's remount.
  await act(() => new Promise((resolve) => setTimeout(resolve, 5)));
}

beforeEach(() => {
  client.services.clear();
  client.inboxes.clear();
  vi.mocked(getWebSocketService).mockClear();
});

afterEach(() => {
  cleanup();
});

describe("reference counting", () => {
  it("connects once for several users of a service, and disconnects after the last", async () => {
    const first = render(<User userId="alice" />);
    const second = render(<User userId="alice" />);
    const service = serviceOf("alice");
    expect(service.connect).toHaveBeenCalledTimes(1);
    expect(serviceUserCount(asService(service))).toBe(2);

    first.unmount();
    await settle();
    expect(service.disconnect).not.toHaveBeenCalled();
    expect(serviceUserCount(asService(service))).toBe(1);

    second.unmount();
    await settle();
    expect(service.disconnect).toHaveBeenCalledTimes(1);
  });

  it("keeps separate users' services apart", async () => {
    const alice = render(<User userId="alice" />);
    const bob = render(<User userId="bob" />);
    bob.unmount();
    await settle();
    expect(serviceOf("bob").disconnect).toHaveBeenCalledTimes(1);
    expect(serviceOf("alice").disconnect).not.toHaveBeenCalled();
    alice.unmount();
  });

  it("survives StrictMode's unmount and remount without dropping the socket", async () => {
    const view = render(
      <StrictMode>
        <User userId="carol" />
      </StrictMode>,
    );
    await settle();
    const service = serviceOf("carol");
    expect(service.connect).toHaveBeenCalledTimes(1);
    expect(service.disconnect).not.toHaveBeenCalled();
    view.unmount();
    await settle();
    expect(service.disconnect).toHaveBeenCalledTimes(1);
  });

  it("reconnects for a new user after the last one left", async () => {
    const first = render(<User userId="dave" />);
    first.unmount();
    await settle();
    const service = serviceOf("dave");
    expect(service.status).toBe("disconnected");
    render(<User userId="dave" />);
    expect(service.connect).toHaveBeenCalledTimes(2);
  });

  it("neither connects nor disconnects with autoConnect false", async () => {
    const view = render(<User userId="erin" autoConnect={false} />);
    const service = serviceOf("erin");
    expect(service.connect).not.toHaveBeenCalled();
    service.status = "connected";
    view.unmount();
    await settle();
    expect(service.disconnect).not.toHaveBeenCalled();
  });

  it("leaves a socket that is already up or retrying alone", () => {
    render(<User userId="frank" autoConnect={false} />);
    const service = serviceOf("frank");
    service.status = "reconnecting";
    render(<User userId="frank" />);
    expect(service.connect).not.toHaveBeenCalled();
  });
});

describe("useWebSocket", () => {
  it("gets the service with the defaults, and without connecting during render", () => {
    renderHook(() => useWebSocket("gina", { url: URL, apiUrl: "https://api.example" }));
    expect(getWebSocketService).toHaveBeenCalledWith(URL, "gina", "web", {
      autoConnect: false,
      apiUrl: "https://api.example",
    });
  });

  it("hands the service a stable token provider that calls the latest one", async () => {
    const { rerender } = renderHook(
      ({ token }: { token: () => string }) => useWebSocket("hana", { url: URL, token }),
      { initialProps: { token: () => "first" } },
    );
    rerender({ token: () => "second" });
    expect(getWebSocketService).toHaveBeenCalledTimes(1);
    const options = vi.mocked(getWebSocketService).mock.calls[0]?.[3];
    const provider = options?.token;
    expect(provider).toBeTypeOf("function");
    await expect(Promise.resolve(provider?.())).resolves.toBe("second");
  });

  it("returns the inbox's state and delegates its actions", () => {
    const { result } = renderHook(() => useWebSocket("ivan", { url: URL }));
    const service = serviceOf("ivan");
    const inbox = inboxOf(service);
    const item = makeItem({ id: "i1" });
    act(() => {
      inbox.set({ notifications: [item], unreadCount: 1, status: "connected", isConnected: true });
    });
    expect(result.current.isConnected).toBe(true);
    expect(result.current.status).toBe("connected");
    expect(result.current.notifications).toEqual([item]);
    expect(result.current.unreadCount).toBe(1);
    expect(result.current.service).toBe(service);
    expect(result.current.inbox).toBe(inbox);

    void result.current.markRead(["i1"]);
    void result.current.markAllRead();
    void result.current.loadMore();
    result.current.subscribe("tour_42");
    result.current.unsubscribe("tour_42");
    act(() => {
      result.current.clearNotifications();
    });
    expect(inbox.markRead).toHaveBeenCalledWith(["i1"]);
    expect(inbox.markAllRead).toHaveBeenCalledTimes(1);
    expect(inbox.loadMore).toHaveBeenCalledTimes(1);
    expect(service.subscribe).toHaveBeenCalledWith("tour_42");
    expect(service.unsubscribe).toHaveBeenCalledWith("tour_42");
    expect(inbox.clear).toHaveBeenCalledTimes(1);
    expect(result.current.notifications).toEqual([]);
  });

  it("calls the latest onNotification for each notification", () => {
    const calls: string[] = [];
    const { rerender } = renderHook(
      ({ tag }: { tag: string }) =>
        useWebSocket("jo", {
          url: URL,
          onNotification: (n) => calls.push(`${tag}:${n.id}`),
        }),
      { initialProps: { tag: "a" } },
    );
    const service = serviceOf("jo");
    service.emit("notification", makeItem({ id: "x" }));
    rerender({ tag: "b" });
    service.emit("notification", makeItem({ id: "y" }));
    expect(calls).toEqual(["a:x", "b:y"]);
    expect(service.handlerCount("notification")).toBe(1);
  });
});

describe("NotificationBell without an inbox", () => {
  it("connects through useWebSocket and shows that user's inbox", () => {
    const view = render(<NotificationBell userId="kim" url={URL} deviceType="kiosk" />);
    const service = serviceOf("kim", "kiosk");
    expect(service.connect).toHaveBeenCalledTimes(1);
    act(() => {
      inboxOf(service).set({ unreadCount: 4 });
    });
    expect(view.getByRole("button", { name: "Notifications, 4 unread" })).toBeTruthy();
  });
});
