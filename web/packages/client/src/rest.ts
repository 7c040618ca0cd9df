/** The edge's REST API for one user (docs/websocket.md, "REST"), with the socket's token. */
import { errorBody, field, toFrame } from "./frames";
import type { ErrorBody, NotificationFrame, TokenProvider } from "./types";

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
  readonly status?: "unread" | "read" | "all";
  readonly limit?: number;
  readonly beforeSeq?: number;
}

export interface HistoryPage {
  /** Newest first. */
  readonly notifications: readonly NotificationFrame[];
  readonly unread_count: number;
  readonly next_before_seq: number | null;
}

export interface Rest {
  history(query?: HistoryQuery): Promise<HistoryPage>;
  unreadCount(): Promise<number>;
  markRead(body: { readonly ids: readonly string[] } | { readonly all: true; readonly up_to_seq: number }): Promise<void>;
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
  const root = `${base}/api/users/${encodeURIComponent(userId)}/notifications`;

  const call = async (path: string, body?: unknown, token?: string): Promise<Response> => {
    token ??= await tokens?.();
    const headers: Record<string, string> = body === undefined ? {} : { "Content-Type": "application/json" };
    if (token) headers.Authorization = "Bearer " + token;
    return fetchFn(root + path, {
      method: body === undefined ? "GET" : "POST",
      headers,
      body: body === undefined ? null : JSON.stringify(body),
    });
  };

  /** The JSON answer of a call; on a non-2xx, emits the refusal as an `error` and throws it. */
  const json = async (path: string, body?: unknown): Promise<unknown> => {
    const res = await call(path, body);
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
    async unreadCount() {
      return Number(field(await json("/unread-count"), "unread_count")) || 0;
    },
    async markRead(body) {
      await json("/read", body);
    },
    async probe(token) {
      try {
        const res = await call("/unread-count", undefined, token ?? "");
        if (res.status === 401 || res.status === 403) return errorBody(await res.json().catch(() => null), res.status);
      } catch {
        // Unreachable: not a refusal.
      }
      return undefined;
    },
  };
}
