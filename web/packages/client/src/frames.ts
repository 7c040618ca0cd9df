/** Frames and refusal bodies checked at the boundary, and read frames applied to lists. */
import type { ErrorBody, NotificationFrame, ReadFrame, ServerFrame } from "./types";

type Obj = Record<string, unknown>;

const isObj = (x: unknown): x is Obj => typeof x === "object" && x !== null;
const str = (x: unknown): boolean => typeof x === "string";
const num = (x: unknown): boolean => typeof x === "number";

/**
 * The frame a parsed JSON value is, or undefined. What the client reads from a frame is
 * checked, so that a malformed one is dropped here instead of throwing in a handler; frames
 * of types it does not know pass and are ignored.
 */
export function toFrame(x: unknown): ServerFrame | undefined {
  if (!isObj(x)) return undefined;
  const { type: t, data: d } = x;
  const ok =
    t === "notification"
      ? str(x.id) && num(x.seq) && str(x.title) && str(x.message) && str(x.priority)
      : t === "read"
        ? num(x.unread_count)
        : t === "seen"
          ? num(x.up_to_seq) && num(x.unseen_count)
          : t === "archived" || t === "unarchived"
            ? Array.isArray(x.ids) && num(x.unread_count) && num(x.unseen_count)
            : t === "preferences"
              ? isObj(x.preferences) && Array.isArray(x.critical_types)
              : t === "replay_complete"
                ? isObj(d) && num(d.last_seq) && num(d.unread_count)
                : t === "connection_established"
                  ? isObj(d)
                  : str(t);
  return ok ? (x as unknown as ServerFrame) : undefined;
}

/** The `{error, message}` body of an HTTP refusal, or one made up from the status. */
export function errorBody(x: unknown, status: number): ErrorBody {
  return isObj(x) && str(x.error) && str(x.message)
    ? (x as unknown as ErrorBody)
    : { error: `http_${status}`, message: `HTTP ${status}` };
}

export function field(x: unknown, key: string): unknown {
  return isObj(x) ? x[key] : undefined;
}

/** `list` with the notifications a read frame names marked read (the same array if none
 * changed). `up_to_seq` covers the user's stream only: room notifications are not in it. */
export function applyRead<T extends NotificationFrame>(list: readonly T[], f: ReadFrame): readonly T[] {
  const ids = new Set(f.ids);
  const upTo = f.up_to_seq ?? -1;
  const out = list.map((n) =>
    n.read === true || !(ids.has(n.id) || (n.seq <= upTo && n.room === undefined)) ? n : { ...n, read: true },
  );
  return out.some((n, i) => n !== list[i]) ? out : list;
}

/** The greater of two cursors, either possibly unknown. */
export const maxSeq = (a: number | undefined, b: number | undefined): number | undefined =>
  a === undefined ? b : b === undefined ? a : Math.max(a, b);
