/** The inbox of one user over a service: framework-free state for any UI (React's
 * useSyncExternalStore included). Read state and the unread count come from the server only. */
import { applyRead, maxSeq } from "./frames";
import type { WebSocketService } from "./service";
import type { Inbox, InboxItem, InboxState, NotificationFrame } from "./types";

export interface InboxOptions {
  /** Notifications per history page (default 20). */
  readonly pageSize?: number;
}

const message = (err: unknown): string => (err instanceof Error ? err.message : String(err));

export function createInbox(service: WebSocketService, { pageSize = 20 }: InboxOptions = {}): Inbox {
  const listeners = new Set<() => void>();
  const status = service.status;
  let state: InboxState = {
    status,
    isConnected: status === "connected",
    notifications: [],
    unreadCount: service.unreadCount,
    // Unknown until a history page comes back short: the replay holds unread notifications
    // only, and the read ones before them are in the history.
    hasMore: true,
    loadingMore: false,
    error: null,
  };
  // The smallest seq received since the current connection was established.
  let connectionMin = Infinity;

  /** A new snapshot only when something in it changed. */
  const set = (patch: Partial<InboxState>): void => {
    const keys = Object.keys(patch) as (keyof InboxState)[];
    if (keys.every((k) => patch[k] === state[k])) return;
    state = { ...state, ...patch };
    for (const listener of [...listeners]) listener();
  };

  /** Adds notifications of the user's stream (room ones are filtered out before). */
  const add = (list: readonly NotificationFrame[]): void => {
    const held = new Set(state.notifications.map((n) => n.id));
    const fresh: InboxItem[] = [];
    for (const n of list) {
      if (held.has(n.id)) continue;
      held.add(n.id);
      fresh.push({ ...n, read: n.read === true });
    }
    if (fresh.length) set({ notifications: [...state.notifications, ...fresh].sort((a, b) => b.seq - a.seq) });
  };

  const attempt = async (p: Promise<void>): Promise<void> => {
    try {
      await p;
    } catch (err) {
      set({ error: message(err) });
    }
  };

  add(service.recent);
  service.on("notification", (n) => {
    if (n.room !== undefined) return;
    connectionMin = Math.min(connectionMin, n.seq);
    add([n]);
  });
  service.on("read", (f) => {
    set({ notifications: applyRead(state.notifications, f) });
  });
  service.on("unread_count", (unreadCount) => {
    set({ unreadCount });
  });
  service.on("status", (s) => {
    const isConnected = s === "connected";
    set(isConnected ? { status: s, isConnected, error: null } : { status: s, isConnected });
  });
  service.on("connection_established", () => {
    connectionMin = Infinity;
  });
  service.on("replay_complete", (d) => {
    if (!d.truncated) return;
    // A truncated replay left out notifications older than its oldest one, also after a
    // reconnect with `since`: what is held below it may have a gap, so it goes, and paging
    // from the oldest one held brings the gap back in order.
    const min = connectionMin;
    set({ hasMore: true, notifications: state.notifications.filter((n) => n.seq >= min) });
  });
  service.on("error", (e) => {
    // Refusals (a token, a REST call) are worth showing; a refused frame is the caller's.
    if ("error" in e) set({ error: e.message });
  });

  return {
    subscribe(listener) {
      listeners.add(listener);
      return () => {
        listeners.delete(listener);
      };
    },
    getSnapshot: () => state,
    async loadMore() {
      const { loadingMore, hasMore, notifications } = state;
      if (loadingMore || !hasMore) return;
      set({ loadingMore: true });
      const oldest = notifications.at(-1)?.seq;
      try {
        const page = await service.history({
          status: "all",
          limit: pageSize,
          ...(oldest === undefined ? {} : { beforeSeq: oldest }),
        });
        add(page.notifications);
        set({ loadingMore: false, hasMore: page.notifications.length >= pageSize, error: null });
      } catch (err) {
        set({ loadingMore: false, error: message(err) });
      }
    },
    markRead: (ids) => attempt(service.markRead(ids)),
    // Notifications paged in over REST count as seen too.
    markAllRead: () => attempt(service.markAllRead(maxSeq(service.cursor, state.notifications[0]?.seq))),
    clear() {
      set({ notifications: [] });
    },
  };
}

const inboxes = new WeakMap<WebSocketService, Inbox>();

/** One inbox per service. */
export function getInbox(service: WebSocketService): Inbox {
  let inbox = inboxes.get(service);
  if (!inbox) inboxes.set(service, (inbox = createInbox(service)));
  return inbox;
}
