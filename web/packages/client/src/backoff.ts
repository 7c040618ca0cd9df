/** Reconnect timing, and what each close code of the edge leads to (docs/websocket.md). */

export interface BackoffOptions {
  /** The ceiling of the first wait (default 500 ms); it doubles with every failed attempt. */
  readonly minMs?: number;
  /** No wait is ever longer (default 15,000 ms). */
  readonly maxMs?: number;
}

/**
 * The wait before reconnect attempt `attempt` (counted from 0): "full jitter", uniform in
 * [0, min(maxMs, minMs * 2^attempt)). It is bounded by maxMs (15 s by default) however many
 * attempts failed, and spreading each wait over the whole range keeps the clients a restart
 * dropped at once from coming back in step. `random` returns a number in [0, 1).
 */
export function backoffDelay(
  attempt: number,
  random: () => number = Math.random,
  { minMs = 500, maxMs = 15_000 }: BackoffOptions = {},
): number {
  // The exponent is capped so that 2 ** attempt stays finite for absurd attempt counts.
  return random() * Math.min(maxMs, minMs * 2 ** Math.min(attempt, 30));
}

/**
 * What a close leads to:
 * - `retry`: reconnect with backoff and `since` (1000, 1001, 1006, 1011, and codes the edge
 *   does not document: retrying with backoff is safe for all of them);
 * - `soon`: the server is restarting (1012), another process will take the socket: the first
 *   retry waits at most minMs;
 * - `slow`: try again later (1013): the edge is at its connection limit or we read too
 *   slowly, so the attempt count starts at 3 at least;
 * - `auth`: the token was refused (1008): one more attempt with a fresh token;
 * - `stop`: the client sent what it must not send again (1007 invalid data, 1009 a frame
 *   over 64 KiB); reconnecting would repeat it.
 */
export type CloseAction = "retry" | "soon" | "slow" | "auth" | "stop";

const ACTIONS: Partial<Record<number, CloseAction>> = {
  1007: "stop",
  1008: "auth",
  1009: "stop",
  1012: "soon",
  1013: "slow",
};

export function closeAction(code: number): CloseAction {
  return ACTIONS[code] ?? "retry";
}

/** The wait before the next attempt after a close retried with `action`, and the attempt
 * count to keep for the one after it. */
export function retryPlan(
  action: "retry" | "soon" | "slow",
  attempt: number,
  random: () => number = Math.random,
  options: BackoffOptions = {},
): readonly [delay: number, next: number] {
  const n = action === "slow" ? Math.max(attempt, 3) : attempt;
  const delay = backoffDelay(n, random, options);
  return [action === "soon" ? Math.min(delay, options.minMs ?? 500) : delay, n + 1];
}
