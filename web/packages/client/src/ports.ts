/**
 * The shapes the client needs of its surroundings (a WebSocket, the window's online state) and
 * what the transport and the service hand each other. Browsers' objects fit them, and so do
 * tests' fakes.
 */
import type { BackoffOptions } from "./backoff";
import type { ClientAction, ConnectionStatus, ErrorBody, ServerFrame, TokenProvider } from "./types";

// Method syntax makes the parameter bivariant, so the DOM's WebSocket and BroadcastChannel
// (whose handlers take richer events) fit these minimal shapes.
export type Listener<T> = { bivariant(event: T): void }["bivariant"];

/** What the client needs of a WebSocket. */
export interface SocketLike {
  readonly readyState: number;
  onopen: Listener<unknown> | null;
  onmessage: Listener<{ readonly data: unknown }> | null;
  onclose: Listener<{ readonly code: number; readonly reason: string }> | null;
  send(data: string): void;
  close(code?: number, reason?: string): void;
}
export type SocketConstructor = new (url: string, protocols?: string | string[]) => SocketLike;

/** Where `online`/`offline` events come from: `window` in a browser. */
export interface OnlineTarget {
  addEventListener(type: "online" | "offline", listener: () => void): void;
  removeEventListener(type: "online" | "offline", listener: () => void): void;
  readonly navigator?: { readonly onLine?: boolean };
}

/** What a transport reports: a frame, a status, or an error of its own (a refusal, a stop).
 * In a shared browser, the leader forwards each one to the other tabs as it is. */
export type Input =
  | { readonly f: ServerFrame }
  | { readonly s: ConnectionStatus }
  | { readonly e: ErrorBody };

export interface TransportHost {
  /** The connect URL, with `since` set to the user stream's cursor. */
  url(): string;
  /** The subscribes to send once a connection has replayed, with each room's `since`. */
  rooms(): readonly ClientAction[];
  input(input: Input): void;
  /** Whether the edge refuses `token` (REST, the same token): its refusal, else undefined.
   * Without it, two closes before `open` in a row count as a refusal. */
  probe?: (token: string | undefined) => Promise<ErrorBody | undefined>;
}

export interface TransportOptions {
  /** Called before every connection attempt (and every REST call): cache in it if minting
   * a token is costly. Without it, no token is sent. */
  readonly token?: TokenProvider;
  readonly backoff?: BackoffOptions;
  /** Default: the global WebSocket. */
  readonly WebSocket?: SocketConstructor;
  /** [0, 1), for the backoff's jitter (default Math.random). */
  readonly random?: () => number;
  /** Milliseconds, for the heartbeat watchdog (default Date.now). */
  readonly now?: () => number;
  /** Where online/offline events come from (default: the global scope, `window`). */
  readonly window?: OnlineTarget;
}
