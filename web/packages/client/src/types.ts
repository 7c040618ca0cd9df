/**
 * The wire contract of the socket edge (docs/websocket.md), as TypeScript types, and the
 * public types of the client. Nothing here runs.
 */

export type Priority = "low" | "normal" | "high" | "urgent";

/** A notification frame: stored in the event log, at position `seq`. */
export interface NotificationFrame {
  readonly type: "notification";
  readonly id: string;
  readonly seq: number;
  readonly notification_type: string;
  readonly priority: Priority;
  readonly title: string;
  readonly message: string;
  readonly data: Readonly<Record<string, unknown>>;
  readonly action_url?: string | null;
  readonly timestamp: string;
  readonly read?: boolean;
  readonly replayed?: boolean;
  /** Present on a room's notifications: they belong to that room's stream. */
  readonly room?: string;
  /** Kept from the user's sockets by their quiet hours, and replayed later: counted unread,
   * but never worth interrupting them for (no browser notification). */
  readonly quiet?: boolean;
  /** On a history page of archived notifications. */
  readonly archived?: boolean;
}

export interface ConnectionEstablishedFrame {
  readonly type: "connection_established";
  readonly data: {
    readonly connection_id: string;
    readonly user_id: string;
    readonly heartbeat_interval: number;
    readonly server_time: string;
  };
}

export interface ReplayCompleteFrame {
  readonly type: "replay_complete";
  readonly data: {
    readonly count: number;
    readonly unread_count: number;
    readonly last_seq: number;
    readonly truncated: boolean;
    /** Unread notifications the user has not seen (with seq above `seen_up_to_seq`). */
    readonly unseen_count?: number;
    /** The user's seen cursor: every notification up to it has been seen. */
    readonly seen_up_to_seq?: number;
  };
}

export interface ReadFrame {
  readonly type: "read";
  readonly ids?: readonly string[];
  readonly up_to_seq?: number | null;
  readonly unread_count: number;
  readonly unseen_count?: number;
}

/** Some device of the user marked everything up to `up_to_seq` seen (the bell was opened). */
export interface SeenFrame {
  readonly type: "seen";
  readonly up_to_seq: number;
  readonly unseen_count: number;
}

/** Some device of the user archived (`archived`) or brought back (`unarchived`) notifications. */
export interface ArchiveFrame {
  readonly type: "archived" | "unarchived";
  readonly ids: readonly string[];
  readonly unread_count: number;
  readonly unseen_count: number;
}

export interface QuietHours {
  /** "HH:MM", 24 h, local wall-clock time of `time_zone`; start after end crosses midnight. */
  readonly start: string;
  readonly end: string;
  /** An IANA zone, e.g. "Europe/Berlin". */
  readonly time_zone: string;
}

/** What a user lets reach them (replaced whole on every save). */
export interface Preferences {
  readonly muted_categories?: readonly string[];
  readonly muted_types?: readonly string[];
  readonly quiet_hours?: QuietHours | null;
}

/** The user's preferences changed (saved on some device). */
export interface PreferencesFrame {
  readonly type: "preferences";
  readonly preferences: Preferences;
  /** Types nothing mutes: the operator marks them critical. */
  readonly critical_types: readonly string[];
}

/** A notification type of the catalog, as `GET .../preferences` lists it. */
export interface TypeInfo {
  readonly type: string;
  readonly category: string;
  readonly critical: boolean;
}

/** The user's preferences with what they may choose from (`GET /api/users/{id}/preferences`;
 * `categories` and `types` are empty until that answer came, when only a frame did). */
export interface PreferencesInfo {
  readonly preferences: Preferences;
  readonly critical_types: readonly string[];
  readonly categories: readonly string[];
  readonly types: readonly TypeInfo[];
}

export interface SubscribedFrame {
  readonly type: "subscribed";
  readonly room: string;
  readonly replayed?: number;
  readonly last_seq?: number;
  readonly truncated?: boolean;
}

export interface UnsubscribedFrame {
  readonly type: "unsubscribed";
  readonly room: string;
}

export interface RoomMessageFrame {
  readonly type: "message";
  readonly room: string;
  readonly from: string;
  readonly data: Readonly<Record<string, unknown>>;
}

export interface ErrorFrame {
  readonly type: "error";
  readonly code: string;
  readonly message: string;
}

export interface PongFrame {
  readonly type: "pong";
}

export type ServerFrame =
  | NotificationFrame
  | ConnectionEstablishedFrame
  | ReplayCompleteFrame
  | ReadFrame
  | SeenFrame
  | ArchiveFrame
  | PreferencesFrame
  | SubscribedFrame
  | UnsubscribedFrame
  | RoomMessageFrame
  | ErrorFrame
  | PongFrame;

/** What the client may send (docs/websocket.md, "What the client may send"). */
export type ClientAction =
  | { readonly action: "ping" }
  | { readonly action: "subscribe"; readonly room: string; readonly since?: number }
  | { readonly action: "unsubscribe"; readonly room: string }
  | {
      readonly action: "message";
      readonly room: string;
      readonly data: Readonly<Record<string, unknown>>;
    }
  | { readonly action: "mark_read"; readonly ids: readonly string[] }
  | { readonly action: "mark_all_read"; readonly up_to_seq?: number }
  | { readonly action: "mark_seen"; readonly up_to_seq: number }
  | { readonly action: "archive"; readonly ids: readonly string[] }
  | { readonly action: "archive"; readonly all_read: true; readonly up_to_seq?: number }
  | { readonly action: "unarchive"; readonly ids: readonly string[] };

/**
 * Where the client stands:
 * - `idle`: created, `connect()` not called yet;
 * - `connecting`: the first attempt of a `connect()`;
 * - `connected`: the socket is open and its replay complete;
 * - `reconnecting`: a connection was lost, or refused for a reason worth retrying, and the
 *   next attempt is scheduled;
 * - `offline`: the browser says it is offline; the next attempt waits for `online`;
 * - `auth_failed`: the token was refused twice in a row; no more attempts until `connect()`;
 * - `disconnected`: `disconnect()` was called.
 */
export type ConnectionStatus =
  | "idle"
  | "connecting"
  | "connected"
  | "reconnecting"
  | "offline"
  | "auth_failed"
  | "disconnected";

/** Gives a token: called before every connection, and again before the token's `exp`. */
export type TokenProvider = () => string | Promise<string>;

/** The HTTP refusal body the edge sends for every refusal (docs/websocket.md, "Errors"). */
export interface ErrorBody {
  readonly error: string;
  readonly message: string;
}

/** The events of a `WebSocketService`, with what each handler receives. */
export interface ServiceEvents {
  /** Every change of `status`. */
  status: ConnectionStatus;
  /** A notification, live or replayed, of the user's stream or of a room: each `id` once. */
  notification: NotificationFrame;
  /** Some device of the user marked notifications read. */
  read: ReadFrame;
  /** The server's unread count changed (replay_complete, read frames, the REST count). */
  unread_count: number;
  /** The server's count of unread notifications not seen yet changed. */
  unseen_count: number;
  /** Some device of the user marked notifications seen. */
  seen: SeenFrame;
  /** Some device of the user archived notifications, or brought them back. */
  archived: ArchiveFrame;
  unarchived: ArchiveFrame;
  /** The user's preferences were saved (on any device). */
  preferences: PreferencesFrame;
  connection_established: ConnectionEstablishedFrame["data"];
  replay_complete: ReplayCompleteFrame["data"];
  /** A room member's message (not stored). */
  message: RoomMessageFrame;
  subscribed: SubscribedFrame;
  unsubscribed: UnsubscribedFrame;
  /** An error frame, or an HTTP refusal of a handshake or a REST call. */
  error: ErrorFrame | ErrorBody;
}

export type ServiceEvent = keyof ServiceEvents;
export type Handler<E extends ServiceEvent> = (payload: ServiceEvents[E]) => void;

/** A notification in an inbox, with its read state as the server last told it. */
export interface InboxItem extends NotificationFrame {
  readonly read: boolean;
}

/** The Archived list: the notifications the user archived, paged in over REST. */
export interface ArchivedList {
  /** Newest first; empty until `loadArchived()`. */
  readonly items: readonly InboxItem[];
  /** More archived notifications can be paged in. */
  readonly hasMore: boolean;
  readonly loading: boolean;
  /** A first page was loaded. */
  readonly loaded: boolean;
}

/** An immutable snapshot: a new object whenever anything in it changes, else the same one. */
export interface InboxState {
  readonly status: ConnectionStatus;
  readonly isConnected: boolean;
  /** Newest first (greatest `seq` first), each `id` once. */
  readonly notifications: readonly InboxItem[];
  /** From the server only: replay_complete, read frames, the REST count. */
  readonly unreadCount: number;
  /** Unread and not seen yet (newer than the last time any device opened the inbox): the
   * badge's figure. From the server only, like `unreadCount`. */
  readonly unseenCount: number;
  /** Archived notifications, fetched from the REST history (`status=archived`). */
  readonly archived: ArchivedList;
  /** The user's preferences, once loaded or sent by the server; null before. */
  readonly preferences: PreferencesInfo | null;
  /** Older notifications can be loaded from the REST history. */
  readonly hasMore: boolean;
  readonly loadingMore: boolean;
  /** The last error worth showing (a refused token, a failed history page), or null. */
  readonly error: string | null;
}

/** The inbox of one user: framework-free state with `subscribe`/`getSnapshot`, for
 * `useSyncExternalStore` and any other UI. */
export interface Inbox {
  subscribe(listener: () => void): () => void;
  getSnapshot(): InboxState;
  /** Loads the next page of older notifications (REST `before_seq` paging). */
  loadMore(): Promise<void>;
  markRead(ids: readonly string[]): Promise<void>;
  /** Marks read everything up to the greatest seq this client has seen (`up_to_seq`). */
  markAllRead(): Promise<void>;
  /** Marks seen everything up to `upToSeq` (default: the greatest seq the inbox holds);
   * nothing when that is seen already. */
  markSeen(upToSeq?: number): Promise<void>;
  archive(ids: readonly string[]): Promise<void>;
  /** Archives every read notification up to `upToSeq` (default: the greatest seq held). */
  archiveAllRead(upToSeq?: number): Promise<void>;
  unarchive(ids: readonly string[]): Promise<void>;
  /** The first page of archived notifications again, or (`more`) the next one. */
  loadArchived(more?: boolean): Promise<void>;
  /** Fetches the preferences and what may be chosen (`GET .../preferences`). */
  loadPreferences(): Promise<void>;
  /** Replaces the preferences (`PUT`); rejects with an HttpError (422) when refused. */
  savePreferences(preferences: Preferences): Promise<void>;
  /** Empties the local list (the seed's clearNotifications); read state is not touched. */
  clear(): void;
}
