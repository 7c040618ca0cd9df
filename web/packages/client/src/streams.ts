/**
 * What the frames mean, kept the same in every tab: the cursors of the user's stream and of
 * each room, the ids already emitted, the server's unread count, the recent notifications.
 * Each tab applies the same frames (the leader's, forwarded), so each emits the same events.
 */
import { createEmitter, type Emitter } from "./emitter";
import { applyRead, maxSeq } from "./frames";
import type { SyncState } from "./tabs";
import type {
  ClientAction,
  ConnectionStatus,
  NotificationFrame,
  PreferencesFrame,
  ServerFrame,
  ServiceEvents,
} from "./types";

const RECENT_MAX = 500;
const SEEN_MAX = 5000;

export interface Streams {
  readonly events: Emitter<ServiceEvents>;
  readonly status: ConnectionStatus;
  readonly unread: number;
  /** The server's count of unread notifications not seen yet. */
  readonly unseen: number;
  /** The user's seen cursor, as the server last said. */
  readonly seenSeq: number;
  /** The last preferences frame. */
  readonly prefs: PreferencesFrame | undefined;
  /** The user stream's cursor. */
  readonly cursor: number | undefined;
  /** Subscribed rooms, with each one's cursor. */
  readonly rooms: ReadonlyMap<string, number | undefined>;
  /** The user stream's recent notifications, oldest first, read flags kept current. */
  readonly recent: readonly NotificationFrame[];
  /** Older notifications were left out of a replay, or of `recent`. */
  readonly truncated: boolean;
  frame(f: ServerFrame): void;
  count(n: number): void;
  countUnseen(n: number | undefined): void;
  setStatus(s: ConnectionStatus): void;
  /** Keeps the room set in step with an action of this tab. */
  track(a: ClientAction): void;
  /** A room's subscribe, with its cursor as `since`, else the user's: seqs are positions in
   * one log, so the user's cursor is a point in the room's stream too. */
  subscribeAction(room: string): ClientAction;
  state(): SyncState;
  /** Takes a leader's state on joining it; to the application it looks like a replay. */
  sync(y: SyncState): void;
}

export function createStreams(): Streams {
  const events = createEmitter<ServiceEvents>();
  const rooms = new Map<string, number | undefined>();
  // The most recent ids, bounded: what comes again after a reconnect is recognised, and
  // memory stays bounded however long the client runs.
  const seen = new Set<string>();
  let status: ConnectionStatus = "idle";
  let unread = 0;
  let unseen = 0;
  let seenSeq = 0;
  let prefs: PreferencesFrame | undefined;
  let cursor: number | undefined;
  let recent: readonly NotificationFrame[] = [];
  let truncated = false;

  const raise = (room: string, seq: number | undefined): void => {
    rooms.set(room, maxSeq(rooms.get(room), seq));
  };

  const count = (n: number): void => {
    if (n === unread) return;
    unread = n;
    events.emit("unread_count", n);
  };

  const countUnseen = (n: number | undefined): void => {
    if (n === undefined || n === unseen) return;
    unseen = n;
    events.emit("unseen_count", n);
  };

  const setStatus = (s: ConnectionStatus): void => {
    if (s === status) return;
    status = s;
    events.emit("status", s);
  };

  const frame = (f: ServerFrame): void => {
    switch (f.type) {
      case "notification":
        if (f.room === undefined) cursor = maxSeq(cursor, f.seq);
        else if (rooms.has(f.room)) raise(f.room, f.seq);
        if (seen.has(f.id)) return;
        seen.add(f.id);
        // A Set iterates in insertion order: the first id is the oldest.
        if (seen.size > SEEN_MAX) seen.delete(seen.values().next().value as string);
        if (f.room === undefined) {
          const full = recent.length >= RECENT_MAX;
          recent = [...recent.slice(full ? 1 : 0), f];
          truncated ||= full;
        }
        events.emit("notification", f);
        // A live, unread notification of the user's own stream is one more unread on the
        // server too (a replayed one is in replay_complete's count already). Each id counts
        // once, and the next replay_complete or read frame sets the server's figure again.
        if (f.room === undefined && f.replayed !== true && f.read !== true) {
          count(unread + 1);
          // Not seen yet, unless some device saw past it already.
          if (f.seq > seenSeq) countUnseen(unseen + 1);
        }
        return;
      case "replay_complete":
        cursor = maxSeq(cursor, f.data.last_seq);
        seenSeq = Math.max(seenSeq, f.data.seen_up_to_seq ?? 0);
        truncated ||= f.data.truncated;
        events.emit("replay_complete", f.data);
        count(f.data.unread_count);
        countUnseen(f.data.unseen_count);
        return;
      case "connection_established":
        events.emit("connection_established", f.data);
        return;
      case "pong":
        return;
      case "read":
        recent = applyRead(recent, f);
        break;
      case "seen":
        seenSeq = Math.max(seenSeq, f.up_to_seq);
        break;
      case "archived": {
        // An archived notification is no longer in the inbox a joining tab starts from.
        const ids = new Set(f.ids);
        recent = recent.filter((n) => !ids.has(n.id));
        break;
      }
      case "preferences":
        prefs = f;
        break;
      case "subscribed":
        raise(f.room, f.last_seq);
        break;
      case "unsubscribed":
        rooms.delete(f.room);
    }
    events.emit(f.type, f);
    if ("unread_count" in f) count(f.unread_count);
    if ("unseen_count" in f) countUnseen(f.unseen_count);
  };

  return {
    events,
    rooms,
    get status() {
      return status;
    },
    get unread() {
      return unread;
    },
    get unseen() {
      return unseen;
    },
    get seenSeq() {
      return seenSeq;
    },
    get prefs() {
      return prefs;
    },
    get cursor() {
      return cursor;
    },
    get recent() {
      return recent;
    },
    get truncated() {
      return truncated;
    },
    frame,
    count,
    countUnseen,
    setStatus,
    track(a) {
      if (a.action === "subscribe") raise(a.room, undefined);
      else if (a.action === "unsubscribe") rooms.delete(a.room);
    },
    subscribeAction(room) {
      const since = rooms.get(room) ?? cursor;
      return since === undefined ? { action: "subscribe", room } : { action: "subscribe", room, since };
    },
    state() {
      return { s: status, c: cursor, r: [...rooms], u: unread, v: unseen, w: seenSeq, p: prefs, n: recent, t: truncated };
    },
    sync(y) {
      cursor = maxSeq(cursor, y.c);
      for (const [room, c] of y.r) raise(room, c);
      for (const n of y.n) frame(n);
      truncated ||= y.t;
      seenSeq = Math.max(seenSeq, y.w);
      events.emit("replay_complete", {
        count: y.n.length,
        unread_count: y.u,
        last_seq: cursor ?? 0,
        truncated: y.t,
        unseen_count: y.v,
        seen_up_to_seq: seenSeq,
      });
      count(y.u);
      countUnseen(y.v);
      if (y.p) frame(y.p);
      setStatus(y.s);
    },
  };
}
