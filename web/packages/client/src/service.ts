/**
 * The façade the application talks to. It keeps what the frames mean (cursors, dedupe, the
 * server's unread count) the same in every tab; the socket itself is owned by one tab's
 * Transport (tabs.ts elects it), or by this service when tabs are not shared.
 */
import { createRest, type ArchiveBody, type HistoryPage, type HistoryQuery, type Rest } from "./rest";
import { createStreams, type Streams } from "./streams";
import { createTabLink, type ChannelConstructor, type LocksLike, type TabLink, type TabMessage } from "./tabs";
import type { Input, TransportOptions } from "./ports";
import { createTransport, type Transport } from "./transport";
import type {
  ClientAction,
  ConnectionStatus,
  NotificationFrame,
  Preferences,
  PreferencesFrame,
  PreferencesInfo,
  ServiceEvents,
} from "./types";

export interface ServiceOptions extends TransportOptions {
  readonly appVersion?: string;
  /** The REST base; by default the socket's URL with ws→http, wss→https. */
  readonly apiUrl?: string;
  /** Connect when created (default true). */
  readonly autoConnect?: boolean;
  /** One socket for all tabs of the browser (default: when Web Locks and BroadcastChannel exist). */
  readonly shareAcrossTabs?: boolean;
  /** null: no REST (history and counts fail; two closes before open count as a refusal). */
  readonly fetch?: typeof fetch | null;
  readonly locks?: LocksLike;
  readonly BroadcastChannel?: ChannelConstructor;
}

export type ActionName = ClientAction["action"];
export type ActionPayload<A extends ActionName> = Omit<Extract<ClientAction, { action: A }>, "action">;

const g = globalThis as Partial<{
  BroadcastChannel: ChannelConstructor;
  navigator: { locks?: LocksLike; onLine?: boolean };
  fetch: typeof fetch;
}>;

/**
 * The client of one user: `url` is the edge's base (`wss://host`, the client adds
 * `/ws/connect`). Events: see ServiceEvents; each notification id is emitted once.
 */
export class WebSocketService {
  // Private by TypeScript only, declared and set in the constructor: for targets before
  // ES2022, #names and class fields would need helpers that double the class's size.
  /** The connect URL without `since`. */
  private declare readonly url: string;
  private declare readonly o: ServiceOptions;
  private declare readonly rest: Rest | undefined;
  private declare readonly st: Streams;
  private declare active: boolean;
  private declare synced: boolean;
  private declare link: TabLink | undefined;
  /** Set only while this tab owns the socket. */
  private declare transport: Transport | undefined;

  constructor(url: string, userId: string, deviceType = "web", options: ServiceOptions = {}) {
    this.o = options;
    this.st = createStreams();
    this.active = this.synced = false;
    this.link = this.transport = undefined;
    const base = url.replace(/\/+$/, "");
    const q = new URLSearchParams({ user_id: userId, device_type: deviceType });
    if (options.appVersion) q.set("app_version", options.appVersion);
    this.url = `${base}/ws/connect?${q}`;
    const fetchFn = options.fetch === undefined ? g.fetch : options.fetch;
    this.rest = fetchFn
      ? createRest(options.apiUrl ?? base.replace(/^ws/, "http"), userId, fetchFn.bind(globalThis), options.token, (e) => {
          this.st.events.emit("error", e);
        })
      : undefined;
    if (options.autoConnect !== false) this.connect();
  }

  get status(): ConnectionStatus {
    return this.st.status;
  }
  /** The server's count of unread notifications, as it last said. */
  get unreadCount(): number {
    return this.st.unread;
  }
  /** The server's count of unread notifications not seen yet, as it last said. */
  get unseenCount(): number {
    return this.st.unseen;
  }
  /** The user's seen cursor, as the server last said (0 before it said). */
  get seenUpToSeq(): number {
    return this.st.seenSeq;
  }
  /** The last `preferences` frame, if one came. */
  get lastPreferences(): PreferencesFrame | undefined {
    return this.st.prefs;
  }
  /** The greatest seq seen on the user's stream: the `since` of the next connection. */
  get cursor(): number | undefined {
    return this.st.cursor;
  }
  /** The greatest seq seen in a subscribed room: its `since` after a reconnect. */
  roomCursor(room: string): number | undefined {
    return this.st.rooms.get(room);
  }
  /** The user stream's recent notifications (at most 500, oldest first), with their read
   * state kept current: what an inbox created after the replay starts from. */
  get recent(): readonly NotificationFrame[] {
    return this.st.recent;
  }
  /** Older notifications were left out of a replay, or of `recent`. */
  get truncated(): boolean {
    return this.st.truncated;
  }

  on<E extends keyof ServiceEvents>(event: E, handler: (payload: ServiceEvents[E]) => void): () => void {
    return this.st.events.on(event, handler);
  }
  off<E extends keyof ServiceEvents>(event: E, handler: (payload: ServiceEvents[E]) => void): void {
    this.st.events.off(event, handler);
  }

  connect(): void {
    if (this.active) {
      // After auth_failed or a stop: start again (in the leader's tab).
      if (this.transport) this.transport.start();
      else this.link?.post({ r: 1 });
      return;
    }
    this.active = true;
    this.st.setStatus("connecting");
    const o = this.o;
    const locks = o.locks ?? g.navigator?.locks;
    const Channel = o.BroadcastChannel ?? g.BroadcastChannel;
    if (o.shareAcrossTabs !== false && locks && Channel) {
      this.link = createTabLink(
        "tour-notify:" + this.url,
        locks,
        Channel,
        (m) => {
          this.tab(m);
        },
        () => {
          this.lead();
        },
      );
      this.link.post({ h: 1 });
    } else {
      this.lead();
    }
  }

  /** Stops this tab. Another tab of the browser, if any, takes the socket over. */
  disconnect(): void {
    if (!this.active) return;
    this.active = this.synced = false;
    if (this.transport) {
      this.transport.stop();
      // The other tabs, if any, wait for the next leader.
      this.link?.post({ s: "reconnecting" });
    }
    this.transport = undefined;
    this.link?.close();
    this.link = undefined;
    this.st.setStatus("disconnected");
  }

  subscribe(room: string): void {
    this.act({ action: "subscribe", room });
  }
  unsubscribe(room: string): void {
    this.act({ action: "unsubscribe", room });
  }
  /** Any client action, e.g. `send("message", { room, data })`; an `error` event when it
   * cannot be sent (no open socket). */
  send<A extends ActionName>(action: A, payload: ActionPayload<A>): void {
    this.act({ ...payload, action } as unknown as ClientAction);
  }

  /** Over the socket when connected, else over REST; the edge takes at most 1,000 ids. */
  async markRead(ids: readonly string[]): Promise<void> {
    if (!ids.length) return;
    if (this.status === "connected") this.act({ action: "mark_read", ids });
    else await this.api().markRead({ ids });
  }

  /** Marks read everything up to `upToSeq` (default: the cursor); nothing when nothing was seen. */
  async markAllRead(upToSeq = this.cursor): Promise<void> {
    if (upToSeq === undefined) return;
    if (this.status === "connected") this.act({ action: "mark_all_read", up_to_seq: upToSeq });
    else await this.api().markRead({ all: true, up_to_seq: upToSeq });
  }

  /** Marks seen every notification up to `upToSeq` (the badge counts what is not seen). */
  async markSeen(upToSeq: number): Promise<void> {
    if (this.status === "connected") this.act({ action: "mark_seen", up_to_seq: upToSeq });
    else await this.api().markSeen(upToSeq);
  }

  /** Archives notifications by id (at most 1,000). */
  async archive(ids: readonly string[]): Promise<void> {
    if (ids.length) await this.archiving({ ids });
  }

  /** Archives every read notification up to `upToSeq` (default: all of them). */
  archiveAllRead(upToSeq?: number): Promise<void> {
    return this.archiving(upToSeq === undefined ? { all_read: true } : { all_read: true, up_to_seq: upToSeq });
  }

  async unarchive(ids: readonly string[]): Promise<void> {
    if (!ids.length) return;
    if (this.status === "connected") this.act({ action: "unarchive", ids });
    else await this.api().unarchive(ids);
  }

  history(query?: HistoryQuery): Promise<HistoryPage> {
    return this.api().history(query);
  }

  /** The user's preferences, the critical types, and the categories and types to choose from. */
  preferences(): Promise<PreferencesInfo> {
    return this.api().preferences();
  }

  /** Replaces the user's preferences; every device gets a `preferences` frame. */
  savePreferences(preferences: Preferences): Promise<Preferences> {
    return this.api().savePreferences(preferences);
  }

  async unreadCountFromServer(): Promise<number> {
    const c = await this.api().counts();
    this.st.count(c.unread_count);
    this.st.countUnseen(c.unseen_count);
    return c.unread_count;
  }

  private async archiving(body: ArchiveBody): Promise<void> {
    if (this.status === "connected") this.act({ action: "archive", ...body });
    else await this.api().archive(body);
  }

  private api(): Rest {
    if (!this.rest) throw new Error("no fetch");
    return this.rest;
  }

  private lead(): void {
    const rest = this.rest;
    const st = this.st;
    this.transport = createTransport(this.o, {
      url: () => this.url + (st.cursor === undefined ? "" : `&since=${st.cursor}`),
      rooms: () => [...st.rooms.keys()].map((room) => st.subscribeAction(room)),
      input: (input) => {
        this.input(input);
      },
      ...(rest && { probe: (t: string | undefined) => rest.probe(t) }),
    });
    // A tab taking over from a leader continues its connection: the user sees a reconnect.
    this.transport.start(this.synced ? "reconnecting" : "connecting");
    this.synced = true;
    this.link?.post({ y: st.state() });
  }

  /** What the leader's transport reports: forwarded to the other tabs, applied here. */
  private input(input: Input): void {
    this.link?.post(input);
    this.apply(input);
  }

  private apply(input: Input): void {
    if ("s" in input) this.st.setStatus(input.s);
    else if ("e" in input) this.st.events.emit("error", input.e);
    else this.st.frame(input.f);
  }

  private tab(m: TabMessage): void {
    const t = this.transport;
    if ("a" in m) {
      if (t) {
        this.st.track(m.a);
        this.perform(m.a);
      }
    } else if ("h" in m) {
      if (t) this.link?.post({ y: this.st.state() });
    } else if ("r" in m) {
      t?.start();
    } else if ("y" in m) {
      if (t) return;
      // Rooms this tab asked for while no leader was there to hear it.
      for (const room of this.st.rooms.keys()) {
        if (!m.y.r.some(([r]) => r === room)) this.link?.post({ a: { action: "subscribe", room } });
      }
      if (!this.synced) this.st.sync(m.y);
      this.synced = true;
    } else if (!t) {
      this.apply(m);
    }
  }

  private act(a: ClientAction): void {
    this.st.track(a);
    if (this.link && !this.transport) this.link.post({ a });
    else this.perform(a);
  }

  /** The leader (or an unshared service) sends an action. */
  private perform(a: ClientAction): void {
    if (a.action === "subscribe") a = this.st.subscribeAction(a.room);
    const sent = this.transport?.send(a) ?? false;
    // Subscriptions are sent again after each replay; other actions need an open socket.
    if (!sent && a.action !== "subscribe" && a.action !== "unsubscribe") {
      this.input({ e: { error: "not_connected", message: `${a.action}: not connected` } });
    }
  }
}

const services = new Map<string, WebSocketService>();

/** One service per url and user (later calls return the first one, whatever their options). */
export function getWebSocketService(url: string, userId: string, deviceType = "web", options?: ServiceOptions): WebSocketService {
  const key = url + "\n" + userId;
  let s = services.get(key);
  if (!s) services.set(key, (s = new WebSocketService(url, userId, deviceType, options)));
  return s;
}
