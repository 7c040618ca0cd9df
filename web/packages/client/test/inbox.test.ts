import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { createInbox, getInbox, type Inbox } from "../src";
import { FakeServer, note } from "./edge";
import { advance, flush, connected } from "./harness";

beforeEach(() => {
  vi.useFakeTimers();
  vi.setSystemTime(new Date("2026-01-15T10:00:00Z"));
});
afterEach(() => {
  vi.useRealTimers();
});

const list = (inbox: Inbox): [number, boolean][] => inbox.getSnapshot().notifications.map((n) => [n.seq, n.read]);

async function withInbox(server = new FakeServer(), pageSize?: number) {
  const setup = await connected({ autoConnect: false }, server);
  const inbox = pageSize === undefined ? createInbox(setup.service) : createInbox(setup.service, { pageSize });
  setup.service.connect();
  await flush();
  return { ...setup, inbox };
}

describe("inbox", () => {
  it("holds notifications newest first, each id once, room notifications left out", async () => {
    const server = new FakeServer();
    server.publish(note(2));
    server.publish(note(5));
    const { inbox, service } = await withInbox(server);
    service.subscribe("r");
    server.publish(note(9));
    server.publish(note(10, { room: "r" }));
    // Out of order and repeated: a replayed frame after a reconnect, a late one.
    server.last.deliver(note(7));
    server.last.deliver(note(5));
    expect(list(inbox).map(([seq]) => seq)).toEqual([9, 7, 5, 2]);
  });

  it("updates read flags from read frames: by ids, and by up_to_seq", async () => {
    const server = new FakeServer();
    for (const seq of [1, 2, 3, 4]) server.publish(note(seq));
    const { inbox } = await withInbox(server);
    server.markRead(["n3"]);
    expect(list(inbox)).toEqual([
      [4, false],
      [3, true],
      [2, false],
      [1, false],
    ]);
    server.markRead([], 2);
    expect(list(inbox)).toEqual([
      [4, false],
      [3, true],
      [2, true],
      [1, true],
    ]);
  });

  it("takes the unread count from the server only", async () => {
    const server = new FakeServer();
    server.publish(note(1));
    const { inbox, service } = await withInbox(server);
    expect(inbox.getSnapshot().unreadCount).toBe(1);
    server.publish(note(2));
    // A live unread notification is one more unread on the server too.
    expect(inbox.getSnapshot().unreadCount).toBe(2);
    server.last.deliver(note(2)); // the same one again counts once
    expect(inbox.getSnapshot().unreadCount).toBe(2);
    server.last.deliver({ type: "read", ids: ["other"], unread_count: 7 });
    expect(inbox.getSnapshot().unreadCount).toBe(7);
    await service.unreadCountFromServer();
    expect(inbox.getSnapshot().unreadCount).toBe(2);
  });

  it("marks read through the service: markRead by ids, markAllRead up to the greatest seq seen", async () => {
    const server = new FakeServer();
    server.publish(note(1));
    server.publish(note(3));
    const { inbox } = await withInbox(server);
    await inbox.markRead(["n1"]);
    expect(server.last.sent.at(-1)).toEqual({ action: "mark_read", ids: ["n1"] });
    await inbox.markAllRead();
    expect(server.last.sent.at(-1)).toEqual({ action: "mark_all_read", up_to_seq: 3 });
    expect(list(inbox)).toEqual([
      [3, true],
      [1, true],
    ]);
    expect(inbox.getSnapshot().unreadCount).toBe(0);
  });

  it("pages older notifications with before_seq while pages come back full", async () => {
    const server = new FakeServer();
    server.replayLimit = 3;
    for (let seq = 1; seq <= 10; seq++) server.publish(note(seq));
    const { inbox } = await withInbox(server, 3);
    expect(list(inbox).map(([seq]) => seq)).toEqual([10, 9, 8]);
    expect(inbox.getSnapshot().hasMore).toBe(true);
    const loading = inbox.loadMore();
    expect(inbox.getSnapshot().loadingMore).toBe(true);
    // A second call while one is in flight asks for nothing more.
    await inbox.loadMore();
    await loading;
    expect(server.requests.map((r) => r.url.searchParams.get("before_seq"))).toEqual(["8"]);
    expect(server.requests[0]?.url.searchParams.get("limit")).toBe("3");
    expect(list(inbox).map(([seq]) => seq)).toEqual([10, 9, 8, 7, 6, 5]);
    expect(inbox.getSnapshot()).toMatchObject({ hasMore: true, loadingMore: false });
    await inbox.loadMore();
    await inbox.loadMore();
    // The last page held one: no more.
    expect(list(inbox).map(([seq]) => seq)).toEqual([10, 9, 8, 7, 6, 5, 4, 3, 2, 1]);
    expect(inbox.getSnapshot().hasMore).toBe(false);
    await inbox.loadMore();
    expect(server.requests).toHaveLength(3);
  });

  it("after a complete replay, pages the read history until a page comes back short", async () => {
    const server = new FakeServer();
    server.publish(note(1));
    const { inbox } = await withInbox(server);
    // The replay holds unread notifications only: older, read ones are in the history.
    expect(inbox.getSnapshot().hasMore).toBe(true);
    await inbox.loadMore();
    expect(server.requests).toHaveLength(1);
    expect(inbox.getSnapshot().hasMore).toBe(false);
    await inbox.loadMore();
    expect(server.requests).toHaveLength(1);
  });

  it("a truncated replay after a reconnect drops what is below the gap, and paging fills it", async () => {
    const server = new FakeServer();
    server.replayLimit = 3;
    server.publish(note(1));
    server.publish(note(2));
    const { inbox } = await withInbox(server, 20);
    expect(list(inbox).map(([seq]) => seq)).toEqual([2, 1]);
    server.last.drop(1006);
    for (let seq = 3; seq <= 8; seq++) server.publish(note(seq));
    await advance(250);
    // The replay held 6, 7, 8: 3 to 5 are missing, so 1 and 2 are not shown above a gap.
    expect(list(inbox).map(([seq]) => seq)).toEqual([8, 7, 6]);
    expect(inbox.getSnapshot().hasMore).toBe(true);
    await inbox.loadMore();
    expect(list(inbox).map(([seq]) => seq)).toEqual([8, 7, 6, 5, 4, 3, 2, 1]);
  });

  it("keeps the same snapshot until something changes", async () => {
    const server = new FakeServer();
    server.publish(note(1));
    const { inbox } = await withInbox(server);
    let calls = 0;
    const unsubscribe = inbox.subscribe(() => calls++);
    const first = inbox.getSnapshot();
    expect(inbox.getSnapshot()).toBe(first);
    // Nothing changes: a pong, a repeated frame, a read frame naming nothing new.
    server.last.deliver({ type: "pong" });
    server.last.deliver(note(1));
    server.last.deliver({ type: "read", ids: ["zzz"], unread_count: 1 });
    expect(inbox.getSnapshot()).toBe(first);
    expect(calls).toBe(0);
    server.publish(note(2));
    const second = inbox.getSnapshot();
    expect(second).not.toBe(first);
    expect(first.notifications.map((n) => n.seq)).toEqual([1]);
    const changes = calls; // the list and the unread count: one snapshot each
    expect(changes).toBeGreaterThanOrEqual(1);
    unsubscribe();
    server.publish(note(3));
    expect(calls).toBe(changes);
  });

  it("follows the connection status", async () => {
    const { inbox, server } = await withInbox();
    expect(inbox.getSnapshot()).toMatchObject({ status: "connected", isConnected: true });
    server.last.drop(1006);
    expect(inbox.getSnapshot()).toMatchObject({ status: "reconnecting", isConnected: false });
  });

  it("clear() empties the list and leaves read state alone", async () => {
    const server = new FakeServer();
    server.publish(note(1));
    server.publish(note(2));
    const { inbox } = await withInbox(server);
    inbox.clear();
    expect(inbox.getSnapshot().notifications).toEqual([]);
    expect(inbox.getSnapshot().unreadCount).toBe(2);
    expect(server.last.sent).toEqual([]);
    server.publish(note(3));
    expect(list(inbox)).toEqual([[3, false]]);
  });

  it("shows a failed page, and a refused token, as its error", async () => {
    const server = new FakeServer();
    server.replayLimit = 1;
    server.publish(note(1));
    server.publish(note(2));
    const { inbox, service } = await withInbox(server);
    server.unreachable = true;
    await inbox.loadMore();
    expect(inbox.getSnapshot()).toMatchObject({ error: "Failed to fetch", loadingMore: false, hasMore: true });
    server.unreachable = false;
    server.validToken = () => false;
    server.last.drop(1008);
    await flush();
    expect(inbox.getSnapshot()).toMatchObject({ status: "auth_failed", error: "the token does not verify" });
    // Connected again: the error is over.
    server.validToken = () => true;
    service.connect();
    await flush();
    expect(inbox.getSnapshot()).toMatchObject({ status: "connected", error: null });
  });

  it("an inbox made after the replay starts from the service's recent notifications", async () => {
    const server = new FakeServer();
    server.replayLimit = 2;
    for (const seq of [1, 2, 3]) server.publish(note(seq));
    const { service } = await connected({}, server);
    server.markRead(["n3"]);
    const inbox = getInbox(service);
    expect(getInbox(service)).toBe(inbox);
    expect(list(inbox)).toEqual([
      [3, true],
      [2, false],
    ]);
    expect(inbox.getSnapshot()).toMatchObject({ unreadCount: 2, hasMore: true, status: "connected" });
  });
});
