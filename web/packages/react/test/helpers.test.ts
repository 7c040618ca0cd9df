import { describe, expect, it } from "vitest";
import { formatBadgeCount } from "../src/NotificationBell";
import { formatRelativeTime } from "../src/relativeTime";
import { isSameOriginPath } from "../src/safeUrl";

const ORIGIN = "https://app.example";

describe("isSameOriginPath", () => {
  it.each(["/", "/bookings/b1", "/a?b=c#d", "/tours/%2F%2Fevil", "/a//b", "/a\\b"])(
    "accepts %j",
    (url) => {
      expect(isSameOriginPath(url, ORIGIN)).toBe(true);
    },
  );

  it.each([
    "",
    "bookings/b1",
    "//evil.example",
    "/\\evil.example",
    "/\t/evil.example",
    "/\r\n/evil.example",
    "/\u0000/x",
    "https://app.example/x",
    "https://evil.example/x",
    "javascript:alert(1)",
    "data:text/html,x",
    " /x",
    `/${"a".repeat(3000)}`,
    null,
    42,
  ])("refuses %j", (url) => {
    expect(isSameOriginPath(url, ORIGIN)).toBe(false);
  });
});

describe("formatRelativeTime", () => {
  const now = Date.parse("2026-01-15T10:30:00Z");
  it.each([
    ["2026-01-15T10:29:50Z", "now"],
    ["2026-01-15T10:28:00Z", "2 min ago"],
    ["2026-01-15T07:30:00Z", "3 hr ago"],
    ["2026-01-14T10:30:00Z", "yesterday"],
    ["2026-01-01T10:30:00Z", "2 wk ago"],
    ["2025-01-15T10:30:00Z", "last yr"],
    ["2026-01-15T10:35:00Z", "in 5 min"],
    ["not a date", ""],
  ])("%s is %j", (timestamp, expected) => {
    expect(formatRelativeTime(timestamp, now, "en-GB")).toBe(expected);
  });
});

describe("formatBadgeCount", () => {
  it.each([
    [1, "1"],
    [99, "99"],
    [100, "99+"],
    [12345, "99+"],
  ])("%i is %j", (count, text) => {
    expect(formatBadgeCount(count)).toBe(text);
  });
});
