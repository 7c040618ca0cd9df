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
  };
}

export interface ReadFrame {
  readonly type: "read";
  readonly ids?: readonly string[];
  readonly up_to_seq?: number | null;
  readonly unread_count: number;
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
  | { readonly action: "mark_all_read"; readonly up_to_seq?: number };

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

/** An immutable snapshot: a new object whenever anything in it changes, else the same one. */
export interface InboxState {
  readonly status: ConnectionStatus;
  readonly isConnected: boolean;
  /** Newest first (greatest `seq` first), each `id` once. */
  readonly notifications: readonly InboxItem[];
  /** From the server only: replay_complete, read frames, the REST count. */
  readonly unreadCount: number;
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
  /** Empties the local list (the seed's clearNotifications); read state is not touched. */
  clear(): void;
}
