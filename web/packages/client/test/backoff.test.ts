import { describe, expect, it } from "vitest";
import { backoffDelay, closeAction, renewDelay, retryPlan, tokenExpiry } from "../src";
import { jwt } from "./edge";
import { seeded } from "./harness";

describe("backoffDelay", () => {
  it("stays within [0, min(maxMs, minMs * 2^attempt)) for every attempt and many seeds", () => {
    for (let seed = 1; seed <= 200; seed++) {
      const random = seeded(seed);
      for (let attempt = 0; attempt <= 40; attempt++) {
        const d = backoffDelay(attempt, random);
        expect(d).toBeGreaterThanOrEqual(0);
        expect(d).toBeLessThan(Math.min(15_000, 500 * 2 ** attempt));
      }
    }
  });

  it("is random() times the ceiling: full jitter", () => {
    expect(backoffDelay(0, () => 0)).toBe(0);
    expect(backoffDelay(0, () => 0.5)).toBe(250);
    expect(backoffDelay(3, () => 0.5)).toBe(2000);
    expect(backoffDelay(5, () => 0.5)).toBe(7500);
    expect(backoffDelay(30, () => 0.999)).toBeCloseTo(14_985);
  });

  it("spreads the waits over the whole range", () => {
    const random = seeded(42);
    const waits = Array.from({ length: 2000 }, () => backoffDelay(6, random));
    // The ceiling is 15 s at attempt 6: the waits cover it from near 0 to near 15 s.
    expect(Math.min(...waits)).toBeLessThan(150);
    expect(Math.max(...waits)).toBeGreaterThan(14_850);
    const mean = waits.reduce((a, b) => a + b, 0) / waits.length;
    expect(mean).toBeGreaterThan(7000);
    expect(mean).toBeLessThan(8000);
    // Not two clients in step: few equal waits.
    expect(new Set(waits).size).toBeGreaterThan(1990);
  });

  it("is bounded by maxMs however many attempts failed, and honours the options", () => {
    expect(backoffDelay(1e9, () => 0.999_999)).toBeLessThanOrEqual(15_000);
    expect(Number.isFinite(backoffDelay(Number.MAX_SAFE_INTEGER, () => 0.5))).toBe(true);
    expect(backoffDelay(0, () => 0.5, { minMs: 100 })).toBe(50);
    expect(backoffDelay(10, () => 0.5, { minMs: 100, maxMs: 1000 })).toBe(500);
  });
});

describe("closeAction", () => {
  it.each([
    [1000, "retry"],
    [1001, "retry"],
    [1006, "retry"],
    [1011, "retry"],
    [4000, "retry"],
    [1012, "soon"],
    [1013, "slow"],
    [1008, "auth"],
    [1007, "stop"],
    [1009, "stop"],
  ] as const)("close code %i leads to %s", (code, action) => {
    expect(closeAction(code)).toBe(action);
  });
});

describe("retryPlan", () => {
  it("counts attempts up", () => {
    expect(retryPlan("retry", 0, () => 0.5)).toEqual([250, 1]);
    expect(retryPlan("retry", 4, () => 0.5)).toEqual([4000, 5]);
  });

  it("1012: the first retry waits at most minMs, whatever the attempt count", () => {
    for (const attempt of [0, 3, 8, 20]) {
      const [delay] = retryPlan("soon", attempt, () => 0.99);
      expect(delay).toBeLessThanOrEqual(500);
    }
    expect(retryPlan("soon", 8, () => 0.99, { minMs: 200 })[0]).toBeLessThanOrEqual(200);
  });

  it("1013: starts the attempt count at 3 at least", () => {
    expect(retryPlan("slow", 0, () => 0.5)).toEqual([2000, 4]);
    expect(retryPlan("slow", 5, () => 0.5)).toEqual([7500, 6]);
  });
});

describe("token renewal", () => {
  it("reads exp from a JWT without verifying it", () => {
    expect(tokenExpiry(jwt(1_800_000_000))).toBe(1_800_000_000_000);
    // base64url characters in the payload (- and _) are decoded too.
    expect(tokenExpiry(jwt(1_800_000_000, { x: "??>>~~" }))).toBe(1_800_000_000_000);
    expect(tokenExpiry("not-a-jwt")).toBeUndefined();
    expect(tokenExpiry("a.b.c")).toBeUndefined();
    expect(tokenExpiry(`x.${btoa('{"sub":"a"}')}.y`)).toBeUndefined();
  });

  it("renews a fifth of the lifetime before exp, at most a minute before", () => {
    expect(renewDelay(100_000, 0)).toBe(80_000);
    expect(renewDelay(3_600_000, 0)).toBe(3_540_000);
    expect(renewDelay(1_000_000 + 250_000, 1_000_000)).toBe(200_000);
  });

  it("never renews sooner than a second, nor later than a timer can wait", () => {
    expect(renewDelay(500, 0)).toBe(1000);
    expect(renewDelay(0, 5000)).toBe(1000);
    expect(renewDelay(1e15, 0)).toBe(2 ** 31 - 1);
  });
});
