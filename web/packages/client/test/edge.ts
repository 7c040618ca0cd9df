/**
 * An edge without a network: it speaks the protocol of docs/websocket.md over fake sockets,
 * and its REST API as a fetch, for one user's event log.
 */
import type { SocketConstructor, SocketLike } from "../src";
import type { ClientAction, NotificationFrame, Preferences, ServerFrame } from "../src/types";

export type Handler<T> = ((event: T) => void) | null;

export function note(seq: number, extra: Partial<NotificationFrame> = {}): NotificationFrame {
  return {
    type: "notification",
    id: `n${seq}`,
    seq,
    notification_type: "booking_confirmed",
    priority: "normal",
    title: `Title ${seq}`,
    message: `Message ${seq}`,
    data: {},
    timestamp: "2026-01-15T10:30:00Z",
    read: false,
    ...extra,
  };
}

const b64url = (s: string): string => btoa(s).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");

/** An unsigned JWT with the given `exp` (seconds): the client never verifies signatures. */
export function jwt(expSeconds: number, claims: Record<string, unknown> = {}): string {
  const payload = JSON.stringify({ sub: "alice", exp: expSeconds, ...claims });
  return `${b64url('{"alg":"HS256","typ":"JWT"}')}.${b64url(payload)}.c2ln`;
}

export class FakeSocket implements SocketLike {
  readyState = 0;
  onopen: Handler<unknown> = null;
  onmessage: Handler<{ data: unknown }> = null;
  onclose: Handler<{ code: number; reason: string }> = null;
  readonly sent: ClientAction[] = [];
  readonly since: number | undefined;
  readonly token: string | undefined;
  readonly rooms = new Set<string>();
  /** The close code the client closed with, if it did. */
  closedWith: number | undefined;
  /** Stops answering (a dead network path): no pong, nothing. */
  silent = false;

  constructor(
    readonly server: FakeServer,
    readonly url: string,
    readonly protocols?: string | string[],
  ) {
    const since = new URL(url).searchParams.get("since");
    this.since = since === null ? undefined : Number(since);
    const bearer = [protocols ?? []].flat().find((p) => p.startsWith("bearer."));
    this.token = bearer?.slice("bearer.".length);
    server.sockets.push(this);
    if (server.accept) queueMicrotask(() => { server.handshake(this); });
  }

  get query(): URLSearchParams {
    return new URL(this.url).searchParams;
  }

  send(data: string): void {
    if (this.readyState !== 1) throw new Error("InvalidStateError: not open");
    const action = JSON.parse(data) as ClientAction;
    this.sent.push(action);
    if (!this.silent) this.server.onAction(this, action);
  }

  close(code?: number): void {
    if (this.readyState >= 2) return;
    this.readyState = 3;
    this.closedWith = code ?? 1005;
    // A browser reports the close later, as an event.
    queueMicrotask(() => this.onclose?.({ code: code ?? 1005, reason: "" }));
  }

  open(): void {
    this.readyState = 1;
    this.onopen?.({});
  }

  deliver(frame: ServerFrame | object): void {
    if (this.readyState === 1 && !this.silent) this.onmessage?.({ data: JSON.stringify(frame) });
  }

  /** The server (or the network) ends the connection. */
  drop(code = 1006, reason = ""): void {
    if (this.readyState === 3) return;
    this.readyState = 3;
    this.onclose?.({ code, reason });
  }
}

/** An edge with one user's event log. */
export class FakeServer {
  readonly sockets: FakeSocket[] = [];
  readonly requests: { url: URL; method: string; token: string | undefined; body: unknown }[] = [];
  log: NotificationFrame[] = [];
  highWater = 0;
  replayLimit = 100;
  /** Replays this many notifications at or below `since` again, as after a drop mid-delivery. */
  overlap = 0;
  /** Sockets complete their handshake by themselves. */
  accept = true;
  heartbeat = 30;
  /** The server's clock offset from the client's, for server_time. */
  clockOffsetMs = 0;
  /** REST answers with a network error (the edge cannot be reached). */
  unreachable = false;
  /** The user's seen cursor, archived ids and preferences. */
  seenSeq = 0;
  archived = new Set<string>();
  preferences: Preferences = {};
  critical: readonly string[] = ["system_alert", "payment_failed"];
  /** Leaves seen_up_to_seq and unseen_count out of replay_complete, as an older edge did. */
  legacy = false;
  validToken: (token: string | undefined) => boolean = () => true;
  /** How REST refuses a token validToken rejects. */
  refusal = { status: 401, body: { error: "invalid_token", message: "the token does not verify" } };
  readonly WebSocket: SocketConstructor;

  constructor() {
    // eslint-disable-next-line @typescript-eslint/no-this-alias
    const server = this;
    this.WebSocket = class extends FakeSocket {
      constructor(url: string, protocols?: string | string[]) {
        super(server, url, protocols);
      }
    };
  }

  get open(): FakeSocket[] {
    return this.sockets.filter((s) => s.readyState === 1);
  }

  get last(): FakeSocket {
    const s = this.sockets.at(-1);
    if (!s) throw new Error("no socket");
    return s;
  }

  /** The user stream's notifications in the inbox (not archived). */
  get inbox(): NotificationFrame[] {
    return this.log.filter((n) => n.room === undefined && !this.archived.has(n.id));
  }

  get unread(): number {
    return this.inbox.filter((n) => n.read !== true).length;
  }

  get unseen(): number {
    return this.inbox.filter((n) => n.read !== true && n.seq > this.seenSeq).length;
  }

  get counts(): { unread_count: number; unseen_count: number } {
    return { unread_count: this.unread, unseen_count: this.unseen };
  }

  private all(frame: object): void {
    for (const ws of this.open) ws.deliver(frame);
  }

  seen(upToSeq: number): void {
    this.seenSeq = Math.max(this.seenSeq, upToSeq);
    this.all({ type: "seen", up_to_seq: this.seenSeq, unseen_count: this.unseen });
  }

  archive(ids: readonly string[] | "all_read", upToSeq = this.highWater): void {
    const marked = this.inbox
      .filter((n) => (ids === "all_read" ? n.read === true && n.seq <= upToSeq : ids.includes(n.id)))
      .map((n) => n.id);
    for (const id of marked) this.archived.add(id);
    this.all({ type: "archived", ids: marked, ...this.counts });
  }

  unarchive(ids: readonly string[]): void {
    const marked = ids.filter((id) => this.archived.delete(id));
    this.all({ type: "unarchived", ids: marked, ...this.counts });
  }

  setPreferences(preferences: Preferences): void {
    this.preferences = preferences;
    this.all({ type: "preferences", preferences, critical_types: this.critical });
  }

  handshake(ws: FakeSocket): void {
    if (ws.readyState !== 0) return;
    // A refused or failed handshake: all a browser sees is a close with 1006 before open.
    if (this.unreachable || !this.validToken(ws.token)) {
      ws.drop(1006);
      return;
    }
    ws.open();
    ws.deliver({
      type: "connection_established",
      data: {
        connection_id: `c${this.sockets.length}`,
        user_id: "alice",
        heartbeat_interval: this.heartbeat,
        server_time: new Date(Date.now() + this.clockOffsetMs).toISOString(),
      },
    });
    const user = this.inbox;
    const since = ws.since;
    let replay =
      since === undefined
        ? user.filter((n) => n.read !== true)
        : [...user.filter((n) => n.seq <= since).slice(this.overlap ? -this.overlap : user.length), ...user.filter((n) => n.seq > since)];
    const truncated = replay.length > this.replayLimit;
    replay = replay.slice(-this.replayLimit);
    for (const n of replay) ws.deliver({ ...n, replayed: true });
    ws.deliver({
      type: "replay_complete",
      data: {
        count: replay.length,
        unread_count: this.unread,
        last_seq: this.highWater,
        truncated,
        ...(this.legacy ? {} : { unseen_count: this.unseen, seen_up_to_seq: this.seenSeq }),
      },
    });
  }

  /** Stores a notification and delivers it live to the sockets that should get it. */
  publish(n: NotificationFrame): void {
    this.log.push(n);
    this.highWater = Math.max(this.highWater, n.seq);
    for (const ws of this.open) {
      if (n.room === undefined || ws.rooms.has(n.room)) ws.deliver(n);
    }
  }

  markRead(ids: readonly string[], upToSeq?: number): void {
    this.log = this.log.map((n) =>
      ids.includes(n.id) || (upToSeq !== undefined && n.room === undefined && n.seq <= upToSeq) ? { ...n, read: true } : n,
    );
    const frame = {
      type: "read",
      ids,
      unread_count: this.unread,
      ...(this.legacy ? {} : { unseen_count: this.unseen }),
      ...(upToSeq === undefined ? {} : { up_to_seq: upToSeq }),
    };
    for (const ws of this.open) ws.deliver(frame);
  }

  onAction(ws: FakeSocket, a: ClientAction): void {
    switch (a.action) {
      case "ping":
        ws.deliver({ type: "pong" });
        return;
      case "subscribe": {
        ws.rooms.add(a.room);
        const since = a.since;
        if (since === undefined) {
          ws.deliver({ type: "subscribed", room: a.room });
          return;
        }
        const replay = this.log.filter((n) => n.room === a.room && n.seq > since);
        for (const n of replay) ws.deliver({ ...n, replayed: true });
        ws.deliver({ type: "subscribed", room: a.room, replayed: replay.length, last_seq: this.highWater, truncated: false });
        return;
      }
      case "unsubscribe":
        ws.rooms.delete(a.room);
        ws.deliver({ type: "unsubscribed", room: a.room });
        return;
      case "message":
        for (const other of this.open) {
          if (other !== ws && other.rooms.has(a.room)) other.deliver({ type: "message", room: a.room, from: "alice", data: a.data });
        }
        return;
      case "mark_read":
        this.markRead(a.ids);
        return;
      case "mark_all_read":
        this.markRead([], a.up_to_seq ?? this.highWater);
        return;
      case "mark_seen":
        this.seen(a.up_to_seq);
        return;
      case "archive":
        if ("ids" in a) this.archive(a.ids);
        else this.archive("all_read", a.up_to_seq);
        return;
      case "unarchive":
        this.unarchive(a.ids);
    }
  }

  /** The REST API of the edge. */
  readonly fetch = (input: string | URL | Request, init?: RequestInit): Promise<Response> => {
    const url = new URL(typeof input === "string" ? input : input instanceof URL ? input.href : input.url);
    const auth = new Headers(init?.headers).get("Authorization");
    const token = auth?.startsWith("Bearer ") ? auth.slice(7) : undefined;
    const body: unknown = typeof init?.body === "string" ? JSON.parse(init.body) : undefined;
    this.requests.push({ url, method: init?.method ?? "GET", token, body });
    if (this.unreachable) return Promise.reject(new TypeError("Failed to fetch"));
    const json = (status: number, value: unknown): Promise<Response> =>
      Promise.resolve(new Response(JSON.stringify(value), { status, headers: { "Content-Type": "application/json" } }));
    if (!this.validToken(token)) return json(this.refusal.status, this.refusal.body);
    if (url.pathname.endsWith("/unread-count")) return json(200, { user_id: "alice", ...this.counts });
    if (url.pathname.endsWith("/preferences")) {
      if (init?.method === "PUT") {
        const p = body as Preferences;
        if (p.muted_types?.some((t) => this.critical.includes(t))) {
          return json(422, { error: "invalid_request", message: "muted_types: system_alert cannot be muted" });
        }
        this.setPreferences(p);
        return json(202, { success: true, event_id: "e2", preferences: p });
      }
      return json(200, {
        user_id: "alice",
        preferences: this.preferences,
        critical_types: this.critical,
        categories: ["booking", "payment", "system"],
        types: [
          { type: "booking_confirmed", category: "booking", critical: false },
          { type: "payment_failed", category: "payment", critical: true },
          { type: "system_alert", category: "system", critical: true },
        ],
      });
    }
    if (url.pathname.endsWith("/seen")) {
      this.seen((body as { up_to_seq: number }).up_to_seq);
      return json(202, { success: true, event_id: "e3" });
    }
    if (url.pathname.endsWith("/archive")) {
      const b = body as { ids?: string[]; all_read?: boolean; up_to_seq?: number };
      this.archive(b.all_read ? "all_read" : (b.ids ?? []), b.up_to_seq);
      return json(202, { success: true, event_id: "e4" });
    }
    if (url.pathname.endsWith("/unarchive")) {
      this.unarchive((body as { ids: string[] }).ids);
      return json(202, { success: true, event_id: "e5" });
    }
    if (url.pathname.endsWith("/read")) {
      const b = body as { ids?: string[]; all?: boolean; up_to_seq?: number };
      if (b.all) this.markRead([], b.up_to_seq ?? this.highWater);
      else this.markRead(b.ids ?? []);
      return json(202, { success: true, event_id: "e1" });
    }
    const status = url.searchParams.get("status") ?? "all";
    const limit = Number(url.searchParams.get("limit") ?? 50);
    const before = Number(url.searchParams.get("before_seq") ?? Number.MAX_SAFE_INTEGER);
    if (limit > 200) return json(422, { error: "invalid_request", message: "query.limit: too large" });
    const page = this.log
      .filter((n) => n.room === undefined && n.seq < before)
      .filter((n) => (status === "archived") === this.archived.has(n.id))
      .filter((n) => status === "all" || status === "archived" || (status === "read") === (n.read === true))
      .sort((a, b) => b.seq - a.seq)
      .slice(0, limit);
    return json(200, {
      user_id: "alice",
      status,
      notifications: page,
      unread_count: this.unread,
      next_before_seq: page.length === limit ? (page.at(-1)?.seq ?? null) : null,
    });
  };
}

/** A token provider handing out a new token, valid `ttlSeconds`, on every call. */
export function tokenSource(ttlSeconds = 3600): { (): string; issued: string[] } {
  const issued: string[] = [];
  const provider = (): string => {
    const t = jwt(Math.floor(Date.now() / 1000) + ttlSeconds, { jti: issued.length });
    issued.push(t);
    return t;
  };
  return Object.assign(provider, { issued });
}
