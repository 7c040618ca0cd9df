const formatters = new Map<string, Intl.RelativeTimeFormat>();

function formatter(locale: string | undefined): Intl.RelativeTimeFormat {
  const key = locale ?? "";
  let cached = formatters.get(key);
  if (cached === undefined) {
    cached = new Intl.RelativeTimeFormat(locale, { numeric: "auto", style: "short" });
    formatters.set(key, cached);
  }
  return cached;
}

const MINUTE = 60;
const HOUR = 60 * MINUTE;
const DAY = 24 * HOUR;

/**
 * "2 min ago", "yesterday", in the given locale (the browser's when undefined). An
 * unparseable timestamp gives "" rather than "NaN years ago".
 */
export function formatRelativeTime(
  timestamp: string,
  now: number,
  locale?: string,
): string {
  const time = Date.parse(timestamp);
  if (Number.isNaN(time)) return "";
  const seconds = (time - now) / 1000;
  const abs = Math.abs(seconds);
  const sign = seconds < 0 ? -1 : 1;
  const f = formatter(locale);
  // Under a minute, and small clock skew into the future, read better as "now" than as
  // a count of seconds that changes on every render.
  if (abs < 45) return f.format(0, "second");
  if (abs < HOUR) return f.format(sign * Math.max(1, Math.round(abs / MINUTE)), "minute");
  if (abs < DAY) return f.format(sign * Math.round(abs / HOUR), "hour");
  if (abs < 7 * DAY) return f.format(sign * Math.round(abs / DAY), "day");
  if (abs < 30 * DAY) return f.format(sign * Math.round(abs / (7 * DAY)), "week");
  if (abs < 365 * DAY) return f.format(sign * Math.round(abs / (30 * DAY)), "month");
  return f.format(sign * Math.round(abs / (365 * DAY)), "year");
}
