/** When to replace a bearer token: from its `exp` claim, read without verifying it (the edge
 * verifies; the client only needs to know when the token stops working). */
import { field } from "./frames";

const RENEW_MARGIN_MAX = 60_000;
const RENEW_AFTER_MIN = 1_000;
// setTimeout fires at once for delays over 2^31 - 1 ms: longer ones are clamped.
const TIMER_MAX = 2 ** 31 - 1;

/** The token's `exp` in milliseconds, or undefined when it is not a JWT with a numeric exp. */
export function tokenExpiry(token: string): number | undefined {
  try {
    const payload = token.split(".")[1] ?? "";
    const claims: unknown = JSON.parse(atob(payload.replace(/-/g, "+").replace(/_/g, "/")));
    const exp = field(claims, "exp");
    return typeof exp === "number" && exp > 0 ? exp * 1000 : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Milliseconds from `nowMs` until a token expiring at `expMs` should be replaced: a fifth of
 * its remaining lifetime before `exp`, at most a minute before, so the edge never has to close
 * the socket with 1008. Never under a second, so that a provider handing out tokens about to
 * expire cannot make the client reconnect in a tight loop.
 */
export function renewDelay(expMs: number, nowMs: number): number {
  const left = expMs - nowMs;
  return Math.min(TIMER_MAX, Math.max(RENEW_AFTER_MIN, left - Math.min(RENEW_MARGIN_MAX, left / 5)));
}
