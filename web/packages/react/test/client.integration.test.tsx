/**
 * The bell over the real client (WebSocketService and its Inbox), with a scripted socket in
 * place of the edge: the contract between the two packages, end to end in one tab.
 */
import { act, cleanup, fireEvent, render, screen } from "@testing-library/react";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import {
  WebSocketService,
  createInbox,
  type ClientAction,
  type NotificationFrame,
  type SocketLike,
} from "@tour-notify/client";
import { NotificationBell } from "../src/NotificationBell";
import { FakeNotification, setVisibility } from "./fakes";

class ScriptedSocket implements SocketLike {
  static current: ScriptedSocket | undefined;
  readyState = 0;
  onopen: SocketLike["onopen"] = null;
  onmessage: SocketLike["onmessage"] = null;
  onclose: SocketLike["onclose"] = null;
  readonly sent: ClientAction[] = [];

  constructor(readonly url: string) {
    ScriptedSocket.current = this;
  }

  send(data: string): void {
    this.sent.push(JSON.parse(data) as ClientAction);
  }

  close(): void {
    this.readyState = 3;
  }

  open(): void {
    this.readyState = 1;
    this.onopen?.({});
  }

  receive(frame: object): void {
    this.onmessage?.({ data: JSON.stringify(frame) });
  }
}

function note(seq: number, extra: Partial<NotificationFrame> = {}): NotificationFrame {
  return {
    type: "notification",
    id: `n${seq}`,
    seq,
    notification_type: "booking_confirmed",
    priority: "high",
    title: `Title ${seq}`,
    message: `Message ${seq}`,
    data: {},
    action_url: `/bookings/${seq}`,
    timestamp: new Date(Date.now() - 60_000).toISOString(),
    read: false,
    ...extra,
  };
}

async function flush(): Promise<void> {
  await act(async () => {
    for (let i = 0; i < 20; i += 1) await Promise.resolve();
  });
}

let service: WebSocketService;

beforeEach(() => {
  FakeNotification.install("granted");
  setVisibility("hidden");
  service = new WebSocketService("ws://edge.test", "alice", "web", {
    autoConnect: false,
    shareAcrossTabs: false,
    fetch: null,
    WebSocket: ScriptedSocket,
  });
});

afterEach(() => {
  service.disconnect();
  cleanup();
  vi.unstubAllGlobals();
  setVisibility("visible");
});

describe("NotificationBell over the client", () => {
  it("shows the replay, raises a desktop notification for a live one only, and marks read", async () => {
    const onNavigate = vi.fn<(url: string) => void>();
    render(
      <NotificationBell
        inbox={createInbox(service)}
        events={service}
        onNavigate={onNavigate}
        locale="en-GB"
      />,
    );
    service.connect();
    await flush();
    const socket = ScriptedSocket.current;
    if (socket === undefined) throw new Error("no socket");
    act(() => {
      socket.open();
      socket.receive({
        type: "connection_established",
        data: { connection_id: "c", user_id: "alice", heartbeat_interval: 30, server_time: "" },
      });
      socket.receive({ ...note(5), replayed: true });
      socket.receive({
        type: "replay_complete",
        data: { count: 1, unread_count: 1, last_seq: 5, truncated: false },
      });
    });
    expect(screen.getByRole("button", { name: "Notifications, 1 unread" })).toBeTruthy();
    expect(FakeNotification.shown).toHaveLength(0);

    act(() => {
      socket.receive(note(6, { priority: "urgent", title: "Live" }));
    });
    expect(FakeNotification.shown.map((n) => [n.title, n.options.tag])).toEqual([["Live", "n6"]]);

    fireEvent.click(screen.getByRole("button", { name: /^Notifications/ }));
    expect(screen.getByRole("status").textContent).toBe("Connected");
    const items = screen.getAllByRole("menuitem");
    expect(items.map((item) => item.dataset.priority)).toEqual(["urgent", "high"]);
    fireEvent.click(items[1] ?? document.body);
    await flush();
    expect(socket.sent).toContainEqual({ action: "mark_read", ids: ["n5"] });
    expect(onNavigate).toHaveBeenCalledWith("/bookings/5");

    act(() => {
      socket.receive({ type: "read", ids: ["n5"], unread_count: 0 });
    });
    expect(screen.getByRole("button", { name: "Notifications" })).toBeTruthy();
    fireEvent.click(screen.getByRole("button", { name: "Notifications" }));
    expect(screen.getAllByRole("menuitem")[1]?.dataset.read).toBe("true");

    fireEvent.click(screen.getByRole("button", { name: "Mark all as read" }));
    await flush();
    expect(socket.sent).toContainEqual({ action: "mark_all_read", up_to_seq: 6 });
  });

  it("badges the unseen count, marks seen on opening, and follows archive frames", async () => {
    const { container } = render(<NotificationBell inbox={createInbox(service)} events={service} locale="en-GB" />);
    service.connect();
    await flush();
    const socket = ScriptedSocket.current;
    if (socket === undefined) throw new Error("no socket");
    act(() => {
      socket.open();
      socket.receive({
        type: "connection_established",
        data: { connection_id: "c", user_id: "alice", heartbeat_interval: 30, server_time: "" },
      });
      socket.receive({ ...note(3), replayed: true });
      socket.receive({ ...note(4), replayed: true, quiet: true });
      socket.receive({
        type: "replay_complete",
        data: { count: 2, unread_count: 2, last_seq: 4, truncated: false, unseen_count: 1, seen_up_to_seq: 3 },
      });
    });
    expect(container.querySelector(".tn-bell__badge")?.textContent).toBe("1");
    fireEvent.click(screen.getByRole("button", { name: /^Notifications/ }));
    await flush();
    expect(socket.sent).toContainEqual({ action: "mark_seen", up_to_seq: 4 });
    act(() => {
      socket.receive({ type: "seen", up_to_seq: 4, unseen_count: 0 });
    });
    expect(container.querySelector(".tn-bell__badge")).toBeNull();
    expect(screen.getAllByRole("menuitem").map((item) => item.dataset.read)).toEqual(["false", "false"]);
    fireEvent.click(screen.getAllByRole("button", { name: "Archive" })[1] ?? document.body);
    await flush();
    expect(socket.sent).toContainEqual({ action: "archive", ids: ["n3"] });
    act(() => {
      socket.receive({ type: "archived", ids: ["n3"], unread_count: 1, unseen_count: 0 });
    });
    expect(screen.getAllByRole("menuitem")).toHaveLength(1);
    expect(screen.getByRole("button", { name: "Notifications, 1 unread" })).toBeTruthy();
    expect(FakeNotification.shown).toHaveLength(0);
  });
});
