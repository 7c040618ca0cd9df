/** The inbox of one user over a service: framework-free state for any UI (React's
 * useSyncExternalStore included). Read, seen and archived state, the counts and the
 * preferences come from the server only: an action changes them when its frame comes back. */
import { applyRead, maxSeq } from "./frames";
import type { WebSocketService } from "./service";
import type {
  ArchivedList,
  Inbox,
  InboxItem,
  InboxState,
  NotificationFrame,
  PreferencesFrame,
  PreferencesInfo,
} from "./types";

export interface InboxOptions {
  /** Notifications per history page (default 20). */
  readonly pageSize?: number;
}

const message = (err: unknown): string => (err instanceof Error ? err.message : String(err));

/** `held` with the notifications of `list` it does not hold yet, newest first (the same
 * array when there is none). */
function merge(held: readonly InboxItem[], list: readonly NotificationFrame[]): readonly InboxItem[] {
  const ids = new Set(held.map((n) => n.id));
  const fresh: InboxItem[] = [];
  for (const n of list) {
    if (ids.has(n.id)) continue;
    ids.add(n.id);
    fresh.push({ ...n, read: n.read === true });
  }
  return fresh.length ? [...held, ...fresh].sort((a, b) => b.seq - a.seq) : held;
}

/** Splits `list` into the items `ids` names and the others. */
function split(list: readonly InboxItem[], ids: readonly string[]): [InboxItem[], InboxItem[]] {
  const named = new Set(ids);
  return [list.filter((n) => named.has(n.id)), list.filter((n) => !named.has(n.id))];
}

export function createInbox(service: WebSocketService, { pageSize = 20 }: InboxOptions = {}): Inbox {
  const listeners = new Set<() => void>();
  const status = service.status;
  const prefsOf = (f: PreferencesFrame, known: PreferencesInfo | null): PreferencesInfo => ({
    categories: [],
    types: [],
    ...known,
    preferences: f.preferences,
    critical_types: f.critical_types,
  });
  const last = service.lastPreferences;
  let state: InboxState = {
    status,
    isConnected: status === "connected",
    notifications: [],
    unreadCount: service.unreadCount,
    unseenCount: service.unseenCount,
    // Unknown until a history page comes back short: the replay holds unread notifications
    // only, and the read ones before them are in the history.
    hasMore: true,
    loadingMore: false,
    error: null,
    archived: { items: [], hasMore: false, loading: false, loaded: false },
    preferences: last ? prefsOf(last, null) : null,
  };
  // The smallest seq received since the current connection was established.
  let connectionMin = Infinity;
  // The greatest seq markSeen asked for on this connection: asked once.
  let seenAsked = 0;

  /** A new snapshot only when something in it changed. */
  const set = (patch: Partial<InboxState>): void => {
    const keys = Object.keys(patch) as (keyof InboxState)[];
    if (keys.every((k) => patch[k] === state[k])) return;
    state = { ...state, ...patch };
    for (const listener of [...listeners]) listener();
  };
  const setArchived = (patch: Partial<ArchivedList>): void => {
    set({ archived: { ...state.archived, ...patch } });
  };

  /** Adds notifications of the user's stream (room ones are filtered out before). */
  const add = (list: readonly NotificationFrame[]): void => {
    set({ notifications: merge(state.notifications, list) });
  };

  const attempt = async (p: Promise<void>): Promise<void> => {
    try {
      await p;
    } catch (err) {
      set({ error: message(err) });
    }
  };

  /** The greatest seq held, or the cursor if greater: what "everything" means for an action. */
  const top = (): number | undefined => maxSeq(service.cursor, state.notifications[0]?.seq);

  add(service.recent);
  service.on("notification", (n) => {
    if (n.room !== undefined) return;
    connectionMin = Math.min(connectionMin, n.seq);
    add([n]);
  });
  service.on("read", (f) => {
    const items = applyRead(state.archived.items, f);
    set({ notifications: applyRead(state.notifications, f) });
    if (items !== state.archived.items) setArchived({ items });
  });
  service.on("unread_count", (unreadCount) => {
    set({ unreadCount });
  });
  service.on("unseen_count", (unseenCount) => {
    set({ unseenCount });
  });
  service.on("archived", (f) => {
    // Out of the inbox, into the Archived list.
    const [moved, kept] = split(state.notifications, f.ids);
    if (!moved.length) return;
    set({ notifications: kept });
    setArchived({ items: merge(state.archived.items, moved) });
  });
  service.on("unarchived", (f) => {
    // Back from the Archived list; one not held there comes with the next history page.
    const [moved, kept] = split(state.archived.items, f.ids);
    if (!moved.length) return;
    setArchived({ items: kept });
    add(moved);
  });
  service.on("preferences", (f) => {
    set({ preferences: prefsOf(f, state.preferences) });
  });
  service.on("status", (s) => {
    const isConnected = s === "connected";
    set(isConnected ? { status: s, isConnected, error: null } : { status: s, isConnected });
  });
  service.on("connection_established", () => {
    connectionMin = Infinity;
    seenAsked = 0;
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
    markAllRead: () => attempt(service.markAllRead(top())),
    markSeen(upToSeq = state.notifications[0]?.seq) {
      // Nothing to do when every unread one is seen, or the server saw past it already.
      if (upToSeq === undefined || !state.unseenCount || upToSeq <= Math.max(seenAsked, service.seenUpToSeq)) {
        return Promise.resolve();
      }
      seenAsked = upToSeq;
      return attempt(service.markSeen(upToSeq));
    },
    archive: (ids) => attempt(service.archive(ids)),
    archiveAllRead: (upToSeq = top()) => attempt(service.archiveAllRead(upToSeq)),
    unarchive: (ids) => attempt(service.unarchive(ids)),
    async loadArchived(more = false) {
      const { loading, hasMore, items } = state.archived;
      if (loading || (more && !hasMore)) return;
      setArchived({ loading: true });
      const oldest = more ? items.at(-1)?.seq : undefined;
      try {
        const page = await service.history({
          status: "archived",
          limit: pageSize,
          ...(oldest === undefined ? {} : { beforeSeq: oldest }),
        });
        setArchived({
          items: merge(more ? state.archived.items : [], page.notifications),
          hasMore: page.notifications.length >= pageSize,
          loading: false,
          loaded: true,
        });
        set({ error: null });
      } catch (err) {
        setArchived({ loading: false });
        set({ error: message(err) });
      }
    },
    async loadPreferences() {
      try {
        set({ preferences: await service.preferences() });
      } catch (err) {
        set({ error: message(err) });
      }
    },
    async savePreferences(preferences) {
      const saved = await service.savePreferences(preferences);
      const known = state.preferences;
      set({
        error: null,
        preferences: { categories: [], types: [], critical_types: [], ...known, preferences: saved },
      });
    },
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
