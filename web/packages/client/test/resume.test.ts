import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { HttpError } from "../src";
import { FakeServer, note } from "./edge";
import { advance, flush, connected } from "./harness";

beforeEach(() => {
  vi.useFakeTimers();
  vi.setSystemTime(new Date("2026-01-15T10:00:00Z"));
});
afterEach(() => {
  vi.useRealTimers();
});


/** Drops the current socket and lets the client reconnect. */
async function reconnect(server: FakeServer, code = 1006): Promise<void> {
  server.last.drop(code);
  await advance(15_000);
}

describe("cursors", () => {
  it("the user's cursor is the greatest seq seen: replay_complete.last_seq, then each notification", async () => {
    const server = new FakeServer();
    server.publish(note(3));
    server.highWater = 10; // later seqs went to other users
    const { service } = await connected({}, server);
    expect(service.cursor).toBe(10);
    server.publish(note(12));
    expect(service.cursor).toBe(12);
    // A room's notification does not move the user's cursor.
    service.subscribe("tour_1");
    server.publish(note(20, { room: "tour_1" }));
    expect(service.cursor).toBe(12);
    expect(service.roomCursor("tour_1")).toBe(20);
  });

  it("reconnects with since = the cursor, and gets exactly what it missed", async () => {
    const { server, service, events } = await connected();
    server.publish(note(1));
    server.publish(note(2));
    server.last.drop(1006);
    server.publish(note(3)); // while disconnected
    await advance(250);
    expect(server.last.since).toBe(2);
    expect(events.notifications.map((n) => n.seq)).toEqual([1, 2, 3]);
    expect(service.cursor).toBe(3);
  });

  it("subscribes with the user's cursor as since, then re-subscribes each room with its own cursor", async () => {
    const { server, service } = await connected();
    server.publish(note(5));
    service.subscribe("tour_1");
    service.subscribe("tour_2");
    expect(server.last.sent).toEqual([
      { action: "subscribe", room: "tour_1", since: 5 },
      { action: "subscribe", room: "tour_2", since: 5 },
    ]);
    // subscribed.last_seq (the server's high-water mark) raises the room's cursor.
    expect(service.roomCursor("tour_1")).toBe(5);
    server.publish(note(8, { room: "tour_1" }));
    server.publish(note(9));
    expect(service.roomCursor("tour_1")).toBe(8);
    server.last.drop(1006);
    server.publish(note(11, { room: "tour_1" }));
    await advance(250);
    expect(server.last.sent).toEqual([
      { action: "subscribe", room: "tour_1", since: 8 },
      { action: "subscribe", room: "tour_2", since: 5 },
    ]);
    expect(service.roomCursor("tour_1")).toBe(11);
    expect(service.roomCursor("tour_2")).toBe(11);
  });

  it("a room subscribed before connecting is subscribed once the replay is done", async () => {
    const server = new FakeServer();
    server.publish(note(4));
    const { service } = await connected({ autoConnect: false }, server);
    service.subscribe("tour_9");
    service.connect();
    await flush();
    expect(server.last.sent).toEqual([{ action: "subscribe", room: "tour_9", since: 4 }]);
  });

  it("an unsubscribed room is not subscribed again after a reconnect", async () => {
    const { server, service } = await connected();
    service.subscribe("tour_1");
    service.unsubscribe("tour_1");
    expect(server.last.sent.at(-1)).toEqual({ action: "unsubscribe", room: "tour_1" });
    await reconnect(server);
    expect(server.last.sent).toEqual([]);
    expect(service.roomCursor("tour_1")).toBeUndefined();
  });
});

describe("dedupe", () => {
  it("emits each notification once across any number of reconnects with overlapping replays", async () => {
    const server = new FakeServer();
    server.overlap = 3; // every replay repeats the last three notifications before since
    const { service, events } = await connected({}, server);
    service.subscribe("tour_1");
    let seq = 0;
    for (let round = 0; round < 8; round++) {
      server.publish(note(++seq));
      server.publish(note(++seq, { room: "tour_1" }));
      server.last.drop(round % 2 ? 1012 : 1006);
      server.publish(note(++seq)); // missed while down
      await advance(15_000);
    }
    const seqs = events.notifications.map((n) => n.seq);
    expect(seqs).toHaveLength(24);
    expect(new Set(seqs).size).toBe(24);
    expect([...seqs].sort((a, b) => a - b)).toEqual(Array.from({ length: 24 }, (_, i) => i + 1));
    expect(server.sockets.length).toBe(9);
  });

  it("a frame repeated on one connection is emitted once", async () => {
    const { server, events } = await connected();
    server.publish(note(1));
    server.last.deliver(note(1));
    expect(events.notifications).toHaveLength(1);
  });

  it("drops malformed frames instead of failing", async () => {
    const { server, service, events } = await connected();
    server.last.onmessage?.({ data: "not json" });
    server.last.deliver({ type: "notification", id: 5 });
    server.last.deliver({ type: "replay_complete" });
    server.last.deliver({ type: "read", ids: ["x"] });
    server.last.deliver({ nothing: true });
    expect(events.notifications).toHaveLength(0);
    expect(events.reads).toHaveLength(0);
    expect(service.status).toBe("connected");
    server.publish(note(1));
    expect(events.notifications).toHaveLength(1);
  });
});

describe("read state", () => {
  it("the unread count is the server's: replay_complete, read frames, the REST count, one more per live unread notification", async () => {
    const server = new FakeServer();
    server.publish(note(1));
    server.publish(note(2));
    const { service, events } = await connected({}, server);
    expect(service.unreadCount).toBe(2);
    server.publish(note(3));
    // A live unread notification of the user's stream is one more unread on the server.
    expect(service.unreadCount).toBe(3);
    void service.markRead(["n1"]);
    expect(server.last.sent.at(-1)).toEqual({ action: "mark_read", ids: ["n1"] });
    expect(events.reads.at(-1)).toEqual({ type: "read", ids: ["n1"], unread_count: 2, unseen_count: 2 });
    expect(service.unreadCount).toBe(2);
    server.log = server.log.map((n) => ({ ...n, read: false }));
    await expect(service.unreadCountFromServer()).resolves.toBe(3);
    expect(service.unreadCount).toBe(3);
    expect(events.counts).toEqual([2, 3, 2, 3]);
  });

  it("markAllRead sends up_to_seq = the user stream's cursor", async () => {
    const { server, service } = await connected();
    server.publish(note(4));
    service.subscribe("r");
    server.publish(note(9, { room: "r" }));
    await service.markAllRead();
    expect(server.last.sent.at(-1)).toEqual({ action: "mark_all_read", up_to_seq: 4 });
    expect(service.unreadCount).toBe(0);
  });

  it("marks read over REST while not connected", async () => {
    const server = new FakeServer();
    server.publish(note(1));
    const { service } = await connected({ autoConnect: false }, server);
    await service.markRead(["n1"]);
    await service.markAllRead(7);
    expect(server.requests.map((r) => [r.method, r.url.pathname, r.body])).toEqual([
      ["POST", "/api/users/alice/notifications/read", { ids: ["n1"] }],
      ["POST", "/api/users/alice/notifications/read", { all: true, up_to_seq: 7 }],
    ]);
    // Nothing seen, nothing to mark.
    await service.markAllRead();
    expect(server.requests).toHaveLength(2);
  });

  it("an action that needs a socket reports an error when there is none", async () => {
    const { service, events } = await connected({ autoConnect: false });
    service.send("message", { room: "r", data: { a: 1 } });
    expect(events.errors).toEqual([{ error: "not_connected", message: "message: not connected" }]);
  });

  it("send() relays a room message, and error frames are emitted", async () => {
    const { server, service, events } = await connected();
    service.subscribe("r");
    service.send("message", { room: "r", data: { text: "hi" } });
    expect(server.last.sent.at(-1)).toEqual({ action: "message", room: "r", data: { text: "hi" } });
    server.last.deliver({ type: "error", code: "forbidden_room", message: "no" });
    expect(events.errors).toEqual([{ type: "error", code: "forbidden_room", message: "no" }]);
  });
});

describe("REST", () => {
  it("history: the query and the bearer token", async () => {
    const server = new FakeServer();
    for (let i = 1; i <= 5; i++) server.publish(note(i));
    const { service, token } = await connected({ apiUrl: "https://api.test/base" }, server);
    const page = await service.history({ status: "all", limit: 2, beforeSeq: 5 });
    expect(page.notifications.map((n) => n.seq)).toEqual([4, 3]);
    expect(page.next_before_seq).toBe(3);
    const req = server.requests[0];
    expect(req?.url.href).toBe("https://api.test/base/api/users/alice/notifications?status=all&limit=2&before_seq=5");
    expect(req?.token).toBe(token.issued[1]);
  });

  it("the REST base defaults to the socket's URL with ws→http, wss→https", async () => {
    const a = await connected();
    await a.service.unreadCountFromServer();
    expect(a.server.requests[0]?.url.origin).toBe("http://edge.test");
    const server = new FakeServer();
    const { WebSocketService } = await import("../src");
    const s = new WebSocketService("wss://secure.test/", "a b", "web", { autoConnect: false, fetch: server.fetch });
    await s.unreadCountFromServer();
    expect(server.requests[0]?.url.href).toBe("https://secure.test/api/users/a%20b/notifications/unread-count");
  });

  it("a non-2xx emits the error body and throws it", async () => {
    const { server, service, events } = await connected();
    const error = await service.history({ limit: 500 }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(HttpError);
    expect((error as HttpError).status).toBe(422);
    expect((error as HttpError).body).toEqual({ error: "invalid_request", message: "query.limit: too large" });
    expect(events.errors).toEqual([{ error: "invalid_request", message: "query.limit: too large" }]);
    server.validToken = () => false;
    await expect(service.unreadCountFromServer()).rejects.toThrow("the token does not verify");
    expect(events.errors.at(-1)).toEqual({ error: "invalid_token", message: "the token does not verify" });
  });
});
