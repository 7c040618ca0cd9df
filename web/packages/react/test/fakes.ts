import { vi } from "vitest";
import type {
  ConnectionStatus,
  Handler,
  Inbox,
  InboxItem,
  InboxState,
  Preferences,
  ServiceEvent,
  ServiceEvents,
} from "@tour-notify/client";

export function emptyState(overrides: Partial<InboxState> = {}): InboxState {
  return {
    status: "connected",
    isConnected: true,
    notifications: [],
    unreadCount: 0,
    unseenCount: 0,
    hasMore: false,
    loadingMore: false,
    error: null,
    archived: { items: [], hasMore: false, loading: false, loaded: false },
    preferences: null,
    ...overrides,
  };
}

let nextSeq = 100;

export function makeItem(overrides: Partial<InboxItem> = {}): InboxItem {
  nextSeq += 1;
  return {
    type: "notification",
    id: `n${nextSeq}`,
    seq: nextSeq,
    notification_type: "booking_confirmed",
    priority: "normal",
    title: `Title ${nextSeq}`,
    message: `Message ${nextSeq}`,
    data: {},
    action_url: null,
    timestamp: new Date(Date.now() - 2 * 60_000).toISOString(),
    read: false,
    ...overrides,
  };
}

/** An Inbox whose state the test sets, and whose actions are spies. */
export class FakeInbox implements Inbox {
  private state: InboxState;
  private readonly listeners = new Set<() => void>();
  readonly markRead = vi.fn<(ids: readonly string[]) => Promise<void>>(() => Promise.resolve());
  readonly markAllRead = vi.fn(() => Promise.resolve());
  readonly loadMore = vi.fn(() => Promise.resolve());
  readonly markSeen = vi.fn<(upToSeq?: number) => Promise<void>>(() => Promise.resolve());
  readonly archive = vi.fn<(ids: readonly string[]) => Promise<void>>(() => Promise.resolve());
  readonly archiveAllRead = vi.fn<(upToSeq?: number) => Promise<void>>(() => Promise.resolve());
  readonly unarchive = vi.fn<(ids: readonly string[]) => Promise<void>>(() => Promise.resolve());
  readonly loadArchived = vi.fn<(more?: boolean) => Promise<void>>(() => Promise.resolve());
  readonly loadPreferences = vi.fn(() => Promise.resolve());
  readonly savePreferences = vi.fn<(preferences: Preferences) => Promise<void>>(() => Promise.resolve());
  readonly clear = vi.fn(() => {
    this.set({ notifications: [] });
  });

  constructor(overrides: Partial<InboxState> = {}) {
    this.state = emptyState(overrides);
  }

  subscribe(listener: () => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  getSnapshot(): InboxState {
    return this.state;
  }

  listenerCount(): number {
    return this.listeners.size;
  }

  set(overrides: Partial<InboxState>): void {
    this.state = { ...this.state, ...overrides };
    for (const listener of this.listeners) listener();
  }
}

type AnyHandler = (payload: ServiceEvents[ServiceEvent]) => void;

/** The parts of a WebSocketService the React bindings use. */
export class FakeService {
  status: ConnectionStatus = "idle";
  private readonly handlers = new Map<ServiceEvent, Set<AnyHandler>>();
  readonly connect = vi.fn(() => {
    this.status = "connecting";
  });
  readonly disconnect = vi.fn(() => {
    this.status = "disconnected";
  });
  readonly subscribe = vi.fn<(room: string) => void>();
  readonly unsubscribe = vi.fn<(room: string) => void>();
  readonly markRead = vi.fn<(ids: readonly string[]) => Promise<void>>(() => Promise.resolve());
  readonly markAllRead = vi.fn(() => Promise.resolve());

  on<E extends ServiceEvent>(event: E, handler: Handler<E>): () => void {
    let set = this.handlers.get(event);
    if (set === undefined) {
      set = new Set();
      this.handlers.set(event, set);
    }
    const stored = handler as AnyHandler;
    set.add(stored);
    return () => set.delete(stored);
  }

  emit<E extends ServiceEvent>(event: E, payload: ServiceEvents[E]): void {
    for (const handler of this.handlers.get(event) ?? []) handler(payload);
  }

  handlerCount(event: ServiceEvent): number {
    return this.handlers.get(event)?.size ?? 0;
  }
}

/** A stand-in for the browser's Notification, recording what would have been shown. */
export class FakeNotification extends EventTarget {
  static permission: NotificationPermission = "default";
  static readonly requestPermission = vi.fn(() => Promise.resolve(FakeNotification.permission));
  static readonly shown: FakeNotification[] = [];

  readonly close = vi.fn(() => {
    this.dispatchEvent(new Event("close"));
  });

  constructor(
    readonly title: string,
    readonly options: NotificationOptions = {},
  ) {
    super();
    FakeNotification.shown.push(this);
  }

  static install(permission: NotificationPermission): void {
    FakeNotification.permission = permission;
    FakeNotification.shown.length = 0;
    FakeNotification.requestPermission.mockReset();
    FakeNotification.requestPermission.mockImplementation(() =>
      Promise.resolve(FakeNotification.permission),
    );
    vi.stubGlobal("Notification", FakeNotification);
  }
}

export function setVisibility(state: DocumentVisibilityState): void {
  Object.defineProperty(document, "visibilityState", { configurable: true, get: () => state });
}
