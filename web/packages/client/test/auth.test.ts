import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { FakeServer, jwt, note, tokenSource } from "./edge";
import { advance, connected, flush } from "./harness";

beforeEach(() => {
  vi.useFakeTimers();
  vi.setSystemTime(new Date("2026-01-15T10:00:00Z"));
});
afterEach(() => {
  vi.useRealTimers();
});

describe("tokens", () => {
  it("asks the provider before every connection attempt", async () => {
    const { server, token } = await connected();
    expect(token.issued).toHaveLength(1);
    server.last.drop(1006);
    await advance(250);
    expect(token.issued).toHaveLength(2);
    expect(server.last.token).toBe(token.issued[1]);
  });

  it("1008: asks for a fresh token and reconnects at once; a second 1008 stops with auth_failed", async () => {
    const { server, service, events, token } = await connected();
    server.publish(note(3));
    server.last.drop(1008, "token expired");
    await flush();
    expect(server.sockets).toHaveLength(2);
    expect(token.issued).toHaveLength(2);
    expect(server.last.token).toBe(token.issued[1]);
    expect(server.last.since).toBe(3);
    expect(service.status).toBe("connected");
    server.last.drop(1008, "token expired");
    await flush();
    expect(service.status).toBe("auth_failed");
    expect(events.errors).toEqual([{ error: "policy_violation", message: "token expired" }]);
    await advance(600_000);
    expect(server.sockets).toHaveLength(2);
    expect(token.issued).toHaveLength(2);
  });

  it("a connection ending otherwise starts the refusal count again", async () => {
    const { server, service } = await connected();
    server.last.drop(1008);
    await flush();
    server.last.drop(1006);
    await advance(250);
    server.last.drop(1008);
    await flush();
    expect(service.status).toBe("connected");
  });

  it("handshakes refused twice in a row: the REST probe tells a refusal, one fresh token, then auth_failed", async () => {
    const server = new FakeServer();
    server.validToken = () => false;
    const { service, events, token } = await connected({}, server);
    // First failure before open: an ordinary retry, no probe yet.
    expect(server.sockets).toHaveLength(1);
    expect(server.requests).toHaveLength(0);
    await advance(250);
    // Second one: the probe (same token) answers 401, so a fresh token is asked for at once;
    // it is refused too (the probe says so again): no more attempts.
    expect(server.requests.map((r) => r.token)).toEqual([token.issued[1], token.issued[2]]);
    expect(server.requests[0]?.url.pathname).toBe("/api/users/alice/notifications/unread-count");
    expect(server.sockets).toHaveLength(3);
    expect(server.last.token).toBe(token.issued[2]);
    expect(service.status).toBe("auth_failed");
    expect(events.errors).toEqual([{ error: "invalid_token", message: "the token does not verify" }]);
    await advance(600_000);
    expect(server.sockets).toHaveLength(3);
    expect(token.issued).toHaveLength(3);
  });

  it("a 403 from the probe (wrong_user, forbidden_origin) is a refusal too", async () => {
    const server = new FakeServer();
    server.validToken = () => false;
    server.refusal = { status: 403, body: { error: "wrong_user", message: "the token is not the path's user's" } };
    const { service, events } = await connected({}, server);
    await advance(250);
    expect(service.status).toBe("auth_failed");
    expect(events.errors).toEqual([{ error: "wrong_user", message: "the token is not the path's user's" }]);
  });

  it("an opened connection starts the count of closes before open again", async () => {
    const { server, service } = await connected();
    server.unreachable = true;
    server.last.drop(1006);
    await advance(250); // one failure before open
    server.unreachable = false;
    await advance(500);
    expect(service.status).toBe("connected");
    server.unreachable = true;
    server.last.drop(1006);
    await advance(250); // one failure before open again: no probe
    expect(server.requests).toHaveLength(0);
    await advance(1000); // the second in a row: probed (and unreachable: not a refusal)
    expect(server.requests).toHaveLength(1);
    expect(service.status).toBe("reconnecting");
  });

  it("a refused token is replaced by a good one: connected", async () => {
    const server = new FakeServer();
    const token = tokenSource();
    server.validToken = (t) => t !== undefined && t !== token.issued[0] && t !== token.issued[1];
    const { service } = await connected({}, server, token);
    await advance(250);
    expect(server.sockets).toHaveLength(3);
    expect(service.status).toBe("connected");
  });

  it("an unreachable edge is not a refusal: it keeps retrying with backoff", async () => {
    const server = new FakeServer();
    server.unreachable = true;
    const { service, events } = await connected({}, server);
    await advance(120_000);
    expect(server.sockets.length).toBeGreaterThan(8);
    expect(service.status).toBe("reconnecting");
    expect(events.errors).toEqual([]);
    server.unreachable = false;
    await advance(15_000);
    expect(service.status).toBe("connected");
  });

  it("without REST, two closes before open count as a refusal", async () => {
    const server = new FakeServer();
    server.unreachable = true;
    const { service, events } = await connected({ fetch: null }, server);
    await advance(250);
    expect(server.sockets).toHaveLength(3);
    expect(service.status).toBe("auth_failed");
    expect(events.errors).toHaveLength(1);
  });

  it("connect() after auth_failed tries again", async () => {
    const server = new FakeServer();
    server.validToken = () => false;
    const { service } = await connected({}, server);
    await advance(250);
    expect(service.status).toBe("auth_failed");
    server.validToken = () => true;
    service.connect();
    await flush();
    expect(service.status).toBe("connected");
  });

  it("a failing provider is retried with backoff", async () => {
    let calls = 0;
    const token = (): Promise<string> => (++calls === 1 ? Promise.reject(new Error("auth server down")) : Promise.resolve(jwt(2e9)));
    const { server, service, events } = await connected({ token });
    expect(server.sockets).toHaveLength(0);
    expect(events.errors).toEqual([{ error: "token_unavailable", message: "Error: auth server down" }]);
    await advance(250);
    expect(service.status).toBe("connected");
  });

  it("renews the socket a fifth of the token's lifetime before exp, with since, without a status change", async () => {
    const { server, service, events, token } = await connected({}, new FakeServer(), tokenSource(100));
    server.publish(note(5));
    await advance(79_999);
    expect(server.sockets).toHaveLength(1);
    await advance(1);
    await flush();
    expect(server.sockets).toHaveLength(2);
    expect(server.sockets[0]?.closedWith).toBe(1000);
    expect(server.last.token).toBe(token.issued[1]);
    expect(server.last.since).toBe(5);
    expect(service.status).toBe("connected");
    // Only the first connection's status: the renewal shows no reconnect.
    expect(events.statuses).toEqual(["connected"]);
    // And again for the new token.
    await advance(80_000);
    expect(server.sockets).toHaveLength(3);
  });

  it("renews at most a minute before a long token's exp", async () => {
    const { server } = await connected({}, new FakeServer(), tokenSource(3600));
    await advance(3_539_000);
    expect(server.sockets).toHaveLength(1);
    await advance(1000);
    expect(server.sockets).toHaveLength(2);
  });

  it("measures the token's lifetime on the server's clock", async () => {
    const server = new FakeServer();
    server.clockOffsetMs = 30_000; // the server is 30 s ahead: the token has 30 s less
    await connected({}, server, tokenSource(3600));
    // 3570 s left by the server's clock: renewed 60 s before, at 3510 s instead of 3540 s.
    await advance(3_509_000);
    expect(server.sockets).toHaveLength(1);
    await advance(1000);
    expect(server.sockets).toHaveLength(2);
  });
});
