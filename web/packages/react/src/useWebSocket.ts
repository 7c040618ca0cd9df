import { useEffect, useMemo, useRef, useState } from "react";
import {
  getInbox,
  getWebSocketService,
  type ArchivedList,
  type ConnectionStatus,
  type Inbox,
  type InboxItem,
  type Preferences,
  type PreferencesInfo,
  type NotificationFrame,
  type TokenProvider,
  type WebSocketService,
} from "@tour-notify/client";
import { useInbox } from "./useInbox";

export interface UseWebSocketOptions {
  /** The edge's base URL, `wss://host` (passed to `getWebSocketService` as it is). */
  url: string;
  token?: TokenProvider | undefined;
  /** `web` unless given. */
  deviceType?: string | undefined;
  /** Connect on mount; `true` unless given. */
  autoConnect?: boolean | undefined;
  /** Every notification the service delivers, live or replayed (see `replayed`). */
  onNotification?: ((notification: NotificationFrame) => void) | undefined;
  /** The REST API's base URL when it is not the socket's host. */
  apiUrl?: string | undefined;
}

export interface UseWebSocketResult {
  isConnected: boolean;
  status: ConnectionStatus;
  notifications: readonly InboxItem[];
  unreadCount: number;
  /** Unread and not seen yet: what a badge shows. */
  unseenCount: number;
  hasMore: boolean;
  loadingMore: boolean;
  error: string | null;
  /** The Archived list (empty until `loadArchived()`). */
  archived: ArchivedList;
  /** The user's preferences, once loaded (`loadPreferences()`) or sent by the server. */
  preferences: PreferencesInfo | null;
  subscribe: (...args: Parameters<WebSocketService["subscribe"]>) => void;
  unsubscribe: (...args: Parameters<WebSocketService["unsubscribe"]>) => void;
  /** Empties the local list; read state is not touched. */
  clearNotifications: () => void;
  markRead: (ids: readonly string[]) => Promise<void>;
  markAllRead: () => Promise<void>;
  loadMore: () => Promise<void>;
  markSeen: (upToSeq?: number) => Promise<void>;
  archive: (ids: readonly string[]) => Promise<void>;
  archiveAllRead: (upToSeq?: number) => Promise<void>;
  unarchive: (ids: readonly string[]) => Promise<void>;
  loadArchived: (more?: boolean) => Promise<void>;
  loadPreferences: () => Promise<void>;
  savePreferences: (preferences: Preferences) => Promise<void>;
  service: WebSocketService;
  inbox: Inbox;
}

class Latest {
  #token: TokenProvider | undefined;

  constructor(token: TokenProvider | undefined) {
    this.#token = token;
  }

  set(token: TokenProvider | undefined): void {
    this.#token = token;
  }

  readonly provider: TokenProvider = () => {
    if (this.#token === undefined) throw new Error("the token provider was removed");
    return this.#token();
  };
}

interface Users {
  count: number;
  /** Whether hooks connected this service, and so are the ones to disconnect it. */
  owned: boolean;
  pendingDisconnect: ReturnType<typeof setTimeout> | undefined;
}

// Services are shared (getWebSocketService returns one per user and URL), so a component
// that unmounts must not close a socket that others still read from.
const users = new WeakMap<WebSocketService, Users>();

function retain(service: WebSocketService, connect: boolean): () => void {
  let entry = users.get(service);
  if (entry === undefined) {
    entry = { count: 0, owned: false, pendingDisconnect: undefined };
    users.set(service, entry);
  }
  if (entry.pendingDisconnect !== undefined) {
    clearTimeout(entry.pendingDisconnect);
    entry.pendingDisconnect = undefined;
  }
  entry.count += 1;
  if (connect) {
    entry.owned = true;
    // A socket that is up, coming up, or waiting to retry is left alone; after a refused
    // token only an explicit connect() should try again.
    if (service.status === "idle" || service.status === "disconnected") service.connect();
  }
  const held = entry;
  let released = false;
  return () => {
    if (released) return;
    released = true;
    held.count -= 1;
    if (held.count > 0 || !held.owned) return;
    // Deferred: StrictMode's unmount-and-remount, and a component replaced by another that
    // uses the same service in the next commit, would otherwise drop and reopen the socket.
    // retain() cancels this timer, so nobody uses the service when it fires.
    held.pendingDisconnect = setTimeout(() => {
      held.pendingDisconnect = undefined;
      held.owned = false;
      users.delete(service);
      service.disconnect();
    }, 0);
  };
}

/** How many mounted hooks use a service (for tests; not exported from the package). */
export function serviceUserCount(service: WebSocketService): number {
  return users.get(service)?.count ?? 0;
}

/**
 * The user's notifications over the shared socket: the seed's hook, on top of the client's
 * WebSocketService and Inbox.
 */
export function useWebSocket(userId: string, options: UseWebSocketOptions): UseWebSocketResult {
  const { url, token, deviceType = "web", autoConnect = true, onNotification, apiUrl } = options;

  // The service keeps the provider it was created with: it is handed a stable function that
  // calls whichever provider the latest render passed, so an inline arrow does not make a
  // new service on every render.
  const [latestToken] = useState(() => new Latest(token));
  const onNotificationRef = useRef(onNotification);
  useEffect(() => {
    latestToken.set(token);
    onNotificationRef.current = onNotification;
  });

  const hasToken = token !== undefined;
  const service = useMemo(
    () =>
      // autoConnect is false because this runs during render; connecting is an effect.
      getWebSocketService(url, userId, deviceType, {
        autoConnect: false,
        ...(hasToken ? { token: latestToken.provider } : {}),
        ...(apiUrl !== undefined ? { apiUrl } : {}),
      }),
    [url, userId, deviceType, hasToken, apiUrl, latestToken],
  );
  const inbox = useMemo(() => getInbox(service), [service]);

  useEffect(() => retain(service, autoConnect), [service, autoConnect]);

  useEffect(
    () =>
      service.on("notification", (notification) => {
        onNotificationRef.current?.(notification);
      }),
    [service],
  );

  const state = useInbox(inbox);
  const actions = useMemo(
    () => ({
      subscribe: (...args: Parameters<WebSocketService["subscribe"]>) => {
        service.subscribe(...args);
      },
      unsubscribe: (...args: Parameters<WebSocketService["unsubscribe"]>) => {
        service.unsubscribe(...args);
      },
    }),
    [service],
  );

  return useMemo(
    () => ({
      isConnected: state.isConnected,
      status: state.status,
      notifications: state.notifications,
      unreadCount: state.unreadCount,
      unseenCount: state.unseenCount,
      hasMore: state.hasMore,
      loadingMore: state.loadingMore,
      error: state.error,
      archived: state.archived,
      preferences: state.preferences,
      subscribe: actions.subscribe,
      unsubscribe: actions.unsubscribe,
      clearNotifications: state.clear,
      markRead: state.markRead,
      markAllRead: state.markAllRead,
      loadMore: state.loadMore,
      markSeen: state.markSeen,
      archive: state.archive,
      archiveAllRead: state.archiveAllRead,
      unarchive: state.unarchive,
      loadArchived: state.loadArchived,
      loadPreferences: state.loadPreferences,
      savePreferences: state.savePreferences,
      service,
      inbox,
    }),
    [state, actions, service, inbox],
  );
}
