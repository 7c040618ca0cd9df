/** A service wired to a fake edge, and what it emitted. */
import { vi } from "vitest";
import { WebSocketService, type ServiceOptions } from "../src";
import type { ConnectionStatus, ErrorBody, ErrorFrame, NotificationFrame, ReadFrame } from "../src/types";
import { fakeWindow } from "./browser";
import { FakeServer, tokenSource } from "./edge";

export interface Recorded {
  statuses: ConnectionStatus[];
  notifications: NotificationFrame[];
  errors: (ErrorFrame | ErrorBody)[];
  reads: ReadFrame[];
  counts: number[];
}

export function record(service: WebSocketService): Recorded {
  const r: Recorded = { statuses: [], notifications: [], errors: [], reads: [], counts: [] };
  service.on("status", (s) => r.statuses.push(s));
  service.on("notification", (n) => r.notifications.push(n));
  service.on("error", (e) => r.errors.push(e));
  service.on("read", (f) => r.reads.push(f));
  service.on("unread_count", (n) => r.counts.push(n));
  return r;
}

export const URL_ = "ws://edge.test";

export async function connected(options: ServiceOptions = {}, server = new FakeServer(), token = tokenSource()) {
  const window = fakeWindow();
  const service = new WebSocketService(URL_, "alice", "web", {
    shareAcrossTabs: false,
    WebSocket: server.WebSocket,
    fetch: server.fetch,
    token,
    random: () => 0.5,
    window,
    ...options,
  });
  const events = record(service);
  await flush();
  return { server, service, events, token, window };
}

/** Advances fake time, letting promises settle between timers. */
export async function advance(ms: number): Promise<void> {
  await vi.advanceTimersByTimeAsync(ms);
}

/** Lets promise callbacks and queued microtasks run. */
export async function flush(): Promise<void> {
  for (let i = 0; i < 30; i++) await Promise.resolve();
}

/** A deterministic random source (mulberry32). */
export function seeded(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
