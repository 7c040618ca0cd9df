import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { getWebSocketService, WebSocketService } from "../src";
import { FakeServer, note } from "./edge";
import { advance, flush, connected, record, URL_ } from "./harness";

beforeEach(() => {
  vi.useFakeTimers();
  vi.setSystemTime(new Date("2026-01-15T10:00:00Z"));
});
afterEach(() => {
  vi.useRealTimers();
});


describe("connecting", () => {
  it("opens one socket with the token as a subprotocol and the handshake's parameters", async () => {
    const { server, service, token } = await connected({ appVersion: "1.4.0" });
    expect(server.sockets).toHaveLength(1);
    const ws = server.last;
    expect(ws.protocols).toEqual(["notify.v1", `bearer.${token.issued[0] ?? ""}`]);
    expect(new URL(ws.url).pathname).toBe("/ws/connect");
    expect(ws.query.get("user_id")).toBe("alice");
    expect(ws.query.get("device_type")).toBe("web");
    expect(ws.query.get("app_version")).toBe("1.4.0");
    expect(ws.query.has("since")).toBe(false);
    expect(service.status).toBe("connected");
  });

  it("goes idle → connecting → connected, and disconnected on disconnect()", async () => {
    const server = new FakeServer();
    const service = new WebSocketService(URL_, "alice", "web", {
      shareAcrossTabs: false,
      autoConnect: false,
      WebSocket: server.WebSocket,
      fetch: server.fetch,
    });
    const events = record(service);
    expect(service.status).toBe("idle");
    service.connect();
    await flush();
    service.disconnect();
    expect(events.statuses).toEqual(["connecting", "connected", "disconnected"]);
    expect(server.last.closedWith).toBe(1000);
    await advance(60_000);
    expect(server.sockets).toHaveLength(1);
  });

  it("without a token provider, offers no subprotocol", async () => {
    const server = new FakeServer();
    const service = new WebSocketService(URL_, "alice", "web", { shareAcrossTabs: false, WebSocket: server.WebSocket });
    await flush();
    expect(server.last.protocols).toBeUndefined();
    expect(service.status).toBe("connected");
  });

  it("getWebSocketService keeps one instance per url and user", () => {
    const server = new FakeServer();
    const options = { autoConnect: false, shareAcrossTabs: false, WebSocket: server.WebSocket };
    const a = getWebSocketService("ws://one.test", "alice", "web", options);
    expect(getWebSocketService("ws://one.test", "alice", "mobile", options)).toBe(a);
    expect(getWebSocketService("ws://one.test", "bob", "web", options)).not.toBe(a);
    expect(getWebSocketService("ws://two.test", "alice", "web", options)).not.toBe(a);
  });

  it("on() returns an unsubscribe; off() removes a handler; a throwing handler does not stop others", async () => {
    const { server, service } = await connected();
    const seen: number[] = [];
    const off = service.on("notification", (n) => seen.push(n.seq));
    const other = (): void => {
      seen.push(-1);
    };
    service.on("notification", other);
    service.on("notification", () => {
      throw new Error("boom");
    });
    const after: number[] = [];
    service.on("notification", (n) => after.push(n.seq));
    server.publish(note(1));
    off();
    service.off("notification", other);
    server.publish(note(2));
    expect(seen).toEqual([1, -1]);
    expect(after).toEqual([1, 2]);
    // The handler's error is reported outside the socket's callback.
    expect(() => vi.runOnlyPendingTimers()).toThrow("boom");
  });
});

describe("close codes", () => {
  it.each([1000, 1001, 1006, 1011])("%i: reconnects after the backoff, with since", async (code) => {
    const { server, service, events } = await connected();
    server.publish(note(7));
    server.last.drop(code);
    expect(service.status).toBe("reconnecting");
    // random() = 0.5 and attempt 0: 250 ms.
    await advance(249);
    expect(server.sockets).toHaveLength(1);
    await advance(1);
    expect(server.sockets).toHaveLength(2);
    expect(server.last.since).toBe(7);
    expect(service.status).toBe("connected");
    expect(events.statuses).toEqual(["connected", "reconnecting", "connected"]);
  });

  it("backs off exponentially while attempts keep failing, and starts over after a replay", async () => {
    const { server } = await connected({ random: () => 0.999 });
    server.accept = false;
    server.last.drop(1006);
    const times: number[] = [];
    const start = Date.now();
    for (let i = 0; i < 6; i++) {
      const n = server.sockets.length;
      while (server.sockets.length === n) await advance(10);
      times.push(Date.now() - start);
      server.last.open();
      server.last.drop(1011);
    }
    const gaps = times.map((t, i) => t - (times[i - 1] ?? 0));
    // Ceilings 0.5, 1, 2, 4, 8, 15 s, drawn at 0.999 of each (to the 10 ms step).
    expect(gaps).toEqual([500, 1000, 2000, 4000, 8000, 14990]);
    server.accept = true;
    await advance(15_000);
    expect(server.last.readyState).toBe(1);
    const n = server.sockets.length;
    server.last.drop(1006);
    await advance(400);
    expect(server.sockets.length).toBe(n);
    await advance(100);
    expect(server.sockets.length).toBe(n + 1);
  });

  it("1012: the first retry comes within minMs even after many failed attempts", async () => {
    const { server } = await connected({ random: () => 0.999 });
    server.accept = false;
    server.last.drop(1006);
    for (let i = 0; i < 5; i++) {
      const n = server.sockets.length;
      while (server.sockets.length === n) await advance(10);
      server.last.open(); // open, but no replay yet: the attempt count is not reset
      if (i < 4) server.last.drop(1006);
    }
    const n = server.sockets.length;
    server.last.drop(1012);
    await advance(500);
    expect(server.sockets.length).toBe(n + 1);
  });

  it("1013: waits as for the fourth attempt at least", async () => {
    const { server } = await connected({ random: () => 0.99 });
    server.last.drop(1013);
    await advance(3900);
    expect(server.sockets).toHaveLength(1);
    await advance(60);
    expect(server.sockets).toHaveLength(2);
  });

  it.each([1009, 1007])("%i: stops with disconnected and an error, and does not reconnect", async (code) => {
    const { server, service, events } = await connected();
    server.last.drop(code, "too big");
    expect(service.status).toBe("disconnected");
    expect(events.errors).toEqual([{ error: code === 1009 ? "message_too_big" : "invalid_payload", message: "too big" }]);
    await advance(120_000);
    expect(server.sockets).toHaveLength(1);
    // connect() starts again.
    service.connect();
    await flush();
    expect(server.sockets).toHaveLength(2);
    expect(service.status).toBe("connected");
  });
});

describe("heartbeat", () => {
  it("pings every interval, and stays while frames come", async () => {
    const { server } = await connected();
    const ws = server.last;
    await advance(30_000);
    expect(ws.sent).toEqual([{ action: "ping" }]);
    await advance(30_000 * 5);
    expect(ws.sent.filter((a) => a.action === "ping")).toHaveLength(6);
    expect(server.sockets).toHaveLength(1);
  });

  it("a background tab's late timers do not drop a socket whose pings are answered", async () => {
    // The browser fires this tab's timers late: each tick sees 35 s more than the interval.
    let late = 0;
    const { server } = await connected({ now: () => Date.now() + late });
    for (let i = 0; i < 5; i++) {
      late += 35_000;
      await advance(30_000);
    }
    expect(server.sockets).toHaveLength(1);
    expect(server.last.sent.filter((a) => a.action === "ping")).toHaveLength(5);
  });

  it("uses the server's heartbeat_interval", async () => {
    const server = new FakeServer();
    server.heartbeat = 5;
    await connected({}, server);
    await advance(5000);
    expect(server.last.sent).toEqual([{ action: "ping" }]);
  });

  it("reconnects when no frame at all came within two intervals", async () => {
    const { server, service } = await connected();
    server.publish(note(9));
    server.last.silent = true;
    await advance(59_999);
    expect(server.sockets).toHaveLength(1);
    await advance(1);
    expect(service.status).toBe("reconnecting");
    expect(server.sockets[0]?.closedWith).toBe(1000);
    await advance(250);
    expect(server.sockets).toHaveLength(2);
    expect(server.last.since).toBe(9);
    expect(service.status).toBe("connected");
  });

  it("gives up on a handshake that hangs", async () => {
    const server = new FakeServer();
    server.accept = false;
    const { service } = await connected({}, server);
    await advance(59_999);
    expect(server.sockets).toHaveLength(1);
    await advance(1);
    expect(service.status).toBe("reconnecting");
    await advance(250);
    expect(server.sockets).toHaveLength(2);
  });
});

describe("online and offline", () => {
  it("goes offline at once, waits, and reconnects with since at once when online", async () => {
    const { server, service, window } = await connected();
    server.publish(note(4));
    window.navigator.onLine = false;
    window.dispatchEvent(new Event("offline"));
    expect(service.status).toBe("offline");
    expect(server.last.closedWith).toBe(1000);
    await advance(300_000);
    expect(server.sockets).toHaveLength(1);
    window.navigator.onLine = true;
    window.dispatchEvent(new Event("online"));
    await flush();
    expect(server.sockets).toHaveLength(2);
    expect(server.last.since).toBe(4);
    expect(service.status).toBe("connected");
  });

  it("does not try while the browser says it is offline", async () => {
    const server = new FakeServer();
    const window = Object.assign(new EventTarget(), { navigator: { onLine: false } });
    const { service } = await connected({ window }, server);
    expect(service.status).toBe("offline");
    expect(server.sockets).toHaveLength(0);
    window.navigator.onLine = true;
    window.dispatchEvent(new Event("online"));
    await flush();
    expect(service.status).toBe("connected");
  });

  it("an online event cuts a pending backoff short; a spurious one does nothing", async () => {
    const { server, window } = await connected({ random: () => 0.99 });
    window.dispatchEvent(new Event("online"));
    await flush();
    expect(server.sockets).toHaveLength(1);
    server.last.drop(1013);
    window.dispatchEvent(new Event("online"));
    await flush();
    expect(server.sockets).toHaveLength(2);
  });
});
