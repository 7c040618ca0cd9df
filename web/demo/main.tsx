/**
 * The demo page: `?user=alice` (and optionally `&rooms=tour_42,tour_7`) gets a token from the
 * edge's development-mode endpoint and shows that user's NotificationBell, against the edge
 * that served the page.
 */
import { StrictMode, useEffect, type ReactNode } from "react";
import { createRoot } from "react-dom/client";
import type { TokenProvider } from "@tour-notify/client";
import { NotificationBell, useWebSocket } from "@tour-notify/react";

// The edge's own rule for user ids (docs/websocket.md, "Connecting"), checked here to say
// what is wrong before any request.
const USER_ID = /^[A-Za-z0-9_.:@-]{1,128}$/u;

interface Params {
  readonly user: string;
  readonly rooms: readonly string[];
}

function readParams(search: string): Params | string {
  const query = new URLSearchParams(search);
  const user = query.get("user");
  if (user === null || user === "") return "Add ?user=alice to the address to pick a user.";
  if (!USER_ID.test(user)) return "A user id is 1 to 128 of A-Z a-z 0-9 _ . : @ -.";
  const rooms = (query.get("rooms") ?? "")
    .split(",")
    .map((room) => room.trim())
    .filter((room) => room !== "");
  return { user, rooms };
}

async function fetchToken({ user, rooms }: Params): Promise<string> {
  const query = new URLSearchParams({ user });
  if (rooms.length > 0) query.set("rooms", rooms.join(","));
  const response = await fetch(`/demo/token?${query.toString()}`, {
    headers: { Accept: "application/json" },
    cache: "no-store",
  });
  if (!response.ok) {
    throw new Error(
      response.status === 404
        ? "GET /demo/token is not served: start the edge in development mode (notify up --dev)."
        : `GET /demo/token answered ${response.status}.`,
    );
  }
  const body: unknown = await response.json();
  if (typeof body !== "object" || body === null || !("token" in body)) {
    throw new Error("GET /demo/token answered without a token.");
  }
  const { token } = body;
  if (typeof token !== "string" || token === "") {
    throw new Error("GET /demo/token answered without a token.");
  }
  return token;
}

/** Hands out the token fetched at load once, then a fresh one for each later connection. */
function tokenProvider(params: Params, first: string): TokenProvider {
  let unused: string | undefined = first;
  return () => {
    if (unused !== undefined) {
      const token = unused;
      unused = undefined;
      return token;
    }
    return fetchToken(params);
  };
}

function RoomSubscriptions(props: {
  user: string;
  url: string;
  token: TokenProvider;
  rooms: readonly string[];
}): null {
  // The same service as the bell's (one socket per user): this only adds the rooms.
  const { isConnected, subscribe } = useWebSocket(props.user, {
    url: props.url,
    token: props.token,
  });
  const { rooms } = props;
  useEffect(() => {
    if (!isConnected) return;
    for (const room of rooms) subscribe(room);
  }, [isConnected, subscribe, rooms]);
  return null;
}

function Page(props: { params: Params; token: TokenProvider }): ReactNode {
  const { params, token } = props;
  const scheme = location.protocol === "https:" ? "wss" : "ws";
  const url = `${scheme}://${location.host}`;
  return (
    <>
      <header className="demo-header">
        <span className="demo-title">Tour Notify</span>
        <span className="demo-user">{params.user}</span>
        <NotificationBell userId={params.user} url={url} token={token} />
      </header>
      {params.rooms.length > 0 && (
        <RoomSubscriptions user={params.user} url={url} token={token} rooms={params.rooms} />
      )}
      <main className="demo-main">
        <p>
          Send {params.user} a notification from a terminal, and it appears under the bell:
        </p>
        <pre>
          <code>{`notify send --user ${params.user} --type booking_confirmed -d booking_id=b1 -d tour_name="Jerusalem Day Tour"`}</code>
        </pre>
        {params.rooms.length > 0 && <p>{`Rooms: ${params.rooms.join(", ")}`}</p>}
      </main>
    </>
  );
}

function Message(props: { text: string }): ReactNode {
  return (
    <main className="demo-main">
      <p role="alert">{props.text}</p>
    </main>
  );
}

async function start(container: HTMLElement): Promise<void> {
  const root = createRoot(container);
  const params = readParams(location.search);
  if (typeof params === "string") {
    root.render(<Message text={params} />);
    return;
  }
  try {
    const first = await fetchToken(params);
    root.render(
      <StrictMode>
        <Page params={params} token={tokenProvider(params, first)} />
      </StrictMode>,
    );
  } catch (error) {
    root.render(<Message text={error instanceof Error ? error.message : String(error)} />);
  }
}

const container = document.getElementById("root");
if (container !== null) void start(container);
