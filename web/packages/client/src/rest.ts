/** The edge's REST API for one user (docs/websocket.md, "REST"), with the socket's token. */
import { errorBody, field, toFrame } from "./frames";
import type { ErrorBody, NotificationFrame, Preferences, PreferencesInfo, TokenProvider } from "./types";

/** A refusal of a REST call: the HTTP status and the edge's `{error, message}` body. */
export class HttpError extends Error {
  // Declared, not defined: see WebSocketService.
  declare readonly status: number;
  declare readonly body: ErrorBody;

  constructor(status: number, body: ErrorBody) {
    super(body.message);
    this.status = status;
    this.body = body;
  }
}

export interface HistoryQuery {
  /** `all` (the default) is every notification not archived; `unseen` the unread ones not seen
   * yet; `archived` the archived ones. */
  readonly status?: "unread" | "read" | "unseen" | "archived" | "all";
  readonly limit?: number;
  readonly beforeSeq?: number;
}

export interface HistoryPage {
  /** Newest first. */
  readonly notifications: readonly NotificationFrame[];
  readonly unread_count: number;
  readonly unseen_count?: number;
  readonly next_before_seq: number | null;
}

/** A body of `POST .../archive`. */
export type ArchiveBody =
  | { readonly ids: readonly string[] }
  | { readonly all_read: true; readonly up_to_seq?: number };

/** The counts of `GET .../unread-count`. */
export interface Counts {
  readonly unread_count: number;
  readonly unseen_count?: number;
}

export interface Rest {
  history(query?: HistoryQuery): Promise<HistoryPage>;
  counts(): Promise<Counts>;
  markRead(body: { readonly ids: readonly string[] } | { readonly all: true; readonly up_to_seq: number }): Promise<void>;
  markSeen(upToSeq: number): Promise<void>;
  archive(body: ArchiveBody): Promise<void>;
  unarchive(ids: readonly string[]): Promise<void>;
  preferences(): Promise<PreferencesInfo>;
  /** The preferences as the edge stored them. */
  savePreferences(preferences: Preferences): Promise<Preferences>;
  /** The edge's refusal of `token` (401 or 403 with its body), or undefined when the token
   * is accepted or the edge cannot be reached (then the socket failed for another reason). */
  probe(token: string | undefined): Promise<ErrorBody | undefined>;
}

export function createRest(
  base: string,
  userId: string,
  fetchFn: typeof fetch,
  tokens: TokenProvider | undefined,
  onError: (error: ErrorBody) => void,
): Rest {
  const user = `${base}/api/users/${encodeURIComponent(userId)}`;
  const root = user + "/notifications";

  const call = async (url: string, body?: unknown, token?: string, method = "POST"): Promise<Response> => {
    token ??= await tokens?.();
    const headers: Record<string, string> = body === undefined ? {} : { "Content-Type": "application/json" };
    if (token) headers.Authorization = "Bearer " + token;
    return fetchFn(url, {
      method: body === undefined ? "GET" : method,
      headers,
      body: body === undefined ? null : JSON.stringify(body),
    });
  };

  /** The JSON answer of a call; on a non-2xx, emits the refusal as an `error` and throws it. */
  const json = async (path: string, body?: unknown, method?: string, at = root): Promise<unknown> => {
    const res = await call(at + path, body, undefined, method);
    const value: unknown = await res.json().catch(() => null);
    if (res.ok) return value;
    const refusal = errorBody(value, res.status);
    onError(refusal);
    throw new HttpError(res.status, refusal);
  };

  return {
    async history({ status = "all", limit = 50, beforeSeq } = {}) {
      const q = new URLSearchParams({ status, limit: String(limit) });
      if (beforeSeq !== undefined) q.set("before_seq", String(beforeSeq));
      const page = await json("?" + q.toString());
      const list = field(page, "notifications");
      // The counts are the edge's as they come; the notifications are checked one by one.
      return {
        ...(page as HistoryPage),
        notifications: (Array.isArray(list) ? list : [])
          .map(toFrame)
          .filter((f): f is NotificationFrame => f?.type === "notification"),
      };
    },
    async counts() {
      const c = await json("/unread-count");
      const unseen = field(c, "unseen_count");
      return {
        unread_count: Number(field(c, "unread_count")) || 0,
        ...(typeof unseen === "number" && { unseen_count: unseen }),
      };
    },
    async markRead(body) {
      await json("/read", body);
    },
    async markSeen(upToSeq) {
      await json("/seen", { up_to_seq: upToSeq });
    },
    async archive(body) {
      await json("/archive", body);
    },
    async unarchive(ids) {
      await json("/unarchive", { ids });
    },
    async preferences() {
      const p = await json("/preferences", undefined, undefined, user);
      return { preferences: {}, critical_types: [], categories: [], types: [], ...(p as Partial<PreferencesInfo>) };
    },
    async savePreferences(preferences) {
      const answer = field(await json("/preferences", preferences, "PUT", user), "preferences");
      return (answer as Preferences | undefined) ?? preferences;
    },
    async probe(token) {
      try {
        const res = await call(root + "/unread-count", undefined, token ?? "");
        if (res.status === 401 || res.status === 403) return errorBody(await res.json().catch(() => null), res.status);
      } catch {
        // Unreachable: not a refusal.
      }
      return undefined;
    },
  };
}
