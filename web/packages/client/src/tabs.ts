/**
 * The tabs of one browser sharing one socket: the tab holding a Web Lock is the leader and
 * owns the transport; all tabs talk over a BroadcastChannel. The browser releases the lock
 * when the leader's tab closes or crashes, and hands it to the next tab waiting for it.
 */
import type { Input, Listener } from "./ports";
import type { ClientAction, ConnectionStatus, NotificationFrame, PreferencesFrame } from "./types";

/** What the service needs of `navigator.locks`. */
export interface LocksLike {
  request(name: string, options: { signal: AbortSignal }, callback: () => Promise<void>): Promise<unknown>;
}

export interface ChannelLike {
  onmessage: Listener<{ readonly data: unknown }> | null;
  postMessage(message: unknown): void;
  close(): void;
}
export type ChannelConstructor = new (name: string) => ChannelLike;

/** The leader's state, for a tab that joins (or a leader taking over): cursors, rooms, the
 * server's unread and unseen counts, the seen cursor, the last preferences frame and the
 * recent notifications of the user's stream. */
export interface SyncState {
  readonly s: ConnectionStatus;
  readonly c: number | undefined;
  readonly r: readonly (readonly [string, number | undefined])[];
  readonly u: number;
  readonly v: number;
  readonly w: number;
  readonly p: PreferencesFrame | undefined;
  readonly n: readonly NotificationFrame[];
  readonly t: boolean;
}

export type TabMessage =
  | Input
  /** A follower's action, for the leader to send. */
  | { readonly a: ClientAction }
  /** A tab joined: the leader answers with its state. */
  | { readonly h: 1 }
  /** A follower called connect() after the leader stopped (auth_failed, disconnected). */
  | { readonly r: 1 }
  | { readonly y: SyncState };

export interface TabLink {
  post(message: TabMessage): void;
  /** Leaves: lets go of the lock (the next tab leads) or of the wait for it. */
  close(): void;
}

export function createTabLink(
  name: string,
  locks: LocksLike,
  Channel: ChannelConstructor,
  onMessage: (message: TabMessage) => void,
  onLead: () => void,
): TabLink {
  const channel = new Channel(name);
  const abort = new AbortController();
  let release: (() => void) | undefined;
  channel.onmessage = (e) => {
    if (typeof e.data === "object" && e.data !== null) onMessage(e.data as TabMessage);
  };
  // Held for the leader's whole life: the promise settles only when this tab lets go. A
  // request still waiting when the tab leaves is aborted, and never granted.
  locks
    .request(
      name,
      { signal: abort.signal },
      () =>
        new Promise<void>((resolve) => {
          release = resolve;
          onLead();
        }),
    )
    .catch(() => undefined);
  return {
    post(message) {
      channel.postMessage(message);
    },
    close() {
      abort.abort();
      release?.();
      channel.close();
    },
  };
}
