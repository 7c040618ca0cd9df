/**
 * Whether a notification's `action_url` may be followed: only a path on this origin.
 *
 * The string is checked before the URL parser sees it because the parser is lenient in
 * ways that turn a path into another host: `//evil.example` and `/\evil.example` are
 * protocol-relative, and tabs and newlines are dropped anywhere, so `/\t/evil.example`
 * becomes `//evil.example`. Resolving against the origin afterwards catches whatever else a
 * parser might reinterpret.
 */
export function isSameOriginPath(url: unknown, origin: string = currentOrigin()): url is string {
  if (typeof url !== "string" || url.length === 0 || url.length > 2048) return false;
  if (!url.startsWith("/")) return false;
  const second = url.charAt(1);
  if (second === "/" || second === "\\") return false;
  // URL parsers strip or reject C0 controls and DEL; none belongs in a link a server meant
  // to send, and stripping them can change which host the link points to.
  for (let i = 0; i < url.length; i += 1) {
    const code = url.charCodeAt(i);
    if (code < 0x20 || code === 0x7f) return false;
  }
  try {
    return new URL(url, origin).origin === new URL(origin).origin;
  } catch {
    return false;
  }
}

function currentOrigin(): string {
  // Outside a browser (server rendering) any fixed origin will do: only the path matters.
  return typeof location === "undefined" ? "http://localhost" : location.origin;
}
