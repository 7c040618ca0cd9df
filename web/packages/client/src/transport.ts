/**
 * The owner of the socket: one connection at a time, reconnection with backoff, the token's
 * renewal, refusals, the heartbeat watchdog and the browser's online state. What the frames
 * mean, and who else sees them, is the host's business (the service).
 */
import { closeAction, retryPlan, type CloseAction } from "./backoff";
import { toFrame } from "./frames";
import type { OnlineTarget, SocketConstructor, SocketLike, TransportHost, TransportOptions } from "./ports";
import { renewDelay, tokenExpiry } from "./token";
import type { ClientAction, ConnectionStatus, ErrorBody, ServerFrame } from "./types";

const OPEN = 1;
const HEARTBEAT_DEFAULT = 30_000;
type Timer = ReturnType<typeof setTimeout>;

export interface Transport {
  /** Starts connecting, unless already started; after a stop, the counts start again. */
  start(status?: ConnectionStatus): void;
  stop(): void;
  /** Sends on the open socket; false when there is none. */
  send(action: ClientAction): boolean;
}

export function createTransport(o: TransportOptions, host: TransportHost): Transport {
  const g = globalThis as Partial<OnlineTarget>;
  const now = o.now ?? Date.now;
  const win = o.window ?? (g.addEventListener ? (g as OnlineTarget) : undefined);
  let active = false;
  // Bumped whenever the current attempt is abandoned: async work of an older one stops.
  let run = 0;
  let ws: SocketLike | undefined;
  let opened = false;
  let token: string | undefined;
  let last = 0;
  let attempt = 0;
  let refusals = 0;
  let failsBeforeOpen = 0;
  let retryTimer: Timer | undefined;
  let beatTimer: Timer | undefined;
  let renewTimer: Timer | undefined;

  const status = (s: ConnectionStatus): void => {
    host.input({ s });
  };
  const error = (e: ErrorBody): void => {
    host.input({ e });
  };

  const send = (action: ClientAction): boolean => {
    if (ws?.readyState !== OPEN) return false;
    ws.send(JSON.stringify(action));
    return true;
  };

  /** Closes the current socket, if any, and cancels its timers and any scheduled attempt. */
  const drop = (): void => {
    run++;
    clearTimeout(retryTimer);
    clearInterval(beatTimer);
    clearTimeout(renewTimer);
    const old = ws;
    ws = undefined;
    if (old && old.readyState <= OPEN) old.close(1000);
  };

  const open = async (s: ConnectionStatus | null): Promise<void> => {
    drop();
    const mine = run;
    if (win?.navigator?.onLine === false) {
      status("offline");
      return;
    }
    if (s) status(s);
    let t: string | undefined;
    try {
      // Asked before every attempt: a provider that mints or refreshes always hands out a
      // token with most of its lifetime left.
      t = await o.token?.();
    } catch (err) {
      if (mine !== run) return;
      error({ error: "token_unavailable", message: String(err) });
      retry("retry");
      return;
    }
    if (mine !== run || !active) return;
    const Socket: SocketConstructor = o.WebSocket ?? WebSocket;
    // Browsers cannot set an Authorization header on a WebSocket: the token rides as a
    // subprotocol, which the edge accepts beside `notify.v1`.
    const socket = new Socket(host.url(), t ? ["notify.v1", "bearer." + t] : undefined);
    ws = socket;
    token = t;
    opened = false;
    last = now();
    // Armed before `open` too: a handshake that hangs is abandoned after two intervals.
    beat(HEARTBEAT_DEFAULT);
    socket.onopen = () => {
      if (socket === ws) opened = true;
    };
    socket.onmessage = (e) => {
      if (socket === ws) message(e.data);
    };
    socket.onclose = (e) => {
      if (socket === ws) void closed(e.code, e.reason);
    };
  };

  const message = (data: unknown): void => {
    last = now();
    let frame: ServerFrame | undefined;
    try {
      frame = toFrame(JSON.parse(String(data)));
    } catch {
      return;
    }
    if (!frame) return;
    const socket = ws;
    host.input({ f: frame });
    // A handler may have stopped the client, or gone offline.
    if (socket !== ws) return;
    if (frame.type === "connection_established") {
      const ms = frame.data.heartbeat_interval * 1000;
      // A tiny interval would only keep the tab busy: the edge's own pings need no answer from here.
      beat(ms >= 1000 ? ms : HEARTBEAT_DEFAULT);
      const exp = token === undefined ? undefined : tokenExpiry(token);
      if (exp !== undefined) {
        // The server's clock decides when the token expires: measuring from it keeps a
        // client whose clock is off from being closed with 1008 before it renews.
        const serverNow = Date.parse(frame.data.server_time);
        clearTimeout(renewTimer);
        renewTimer = setTimeout(renew, renewDelay(exp, Number.isNaN(serverNow) ? now() : serverNow));
      }
    } else if (frame.type === "replay_complete") {
      attempt = 0;
      status("connected");
      for (const action of host.rooms()) send(action);
    }
  };

  /**
   * Sends a ping every interval; drops the socket when no frame at all came in two intervals
   * and the last ping went unanswered. The second condition keeps a background tab, whose
   * timers the browser may fire only once a minute, from dropping a healthy socket.
   */
  const beat = (ms: number): void => {
    clearInterval(beatTimer);
    let pingAt = -Infinity;
    beatTimer = setInterval(() => {
      const t = now();
      if (t - last >= 2 * ms && last < pingAt) void closed(1006, "");
      else {
        send({ action: "ping" });
        pingAt = t;
      }
    }, ms);
  };

  const closed = async (code: number, reason: string): Promise<void> => {
    const wasOpen = opened;
    const t = token;
    drop();
    const mine = run;
    if (!active) return;
    let action: CloseAction = wasOpen ? closeAction(code) : "retry";
    let refusal: ErrorBody | undefined;
    if (wasOpen) failsBeforeOpen = 0;
    else if (++failsBeforeOpen >= 2 || refusals > 0) {
      // A browser does not say why a handshake failed (401 and an unreachable server both
      // look like 1006 before open); the REST call with the same token tells them apart.
      refusal = host.probe ? await host.probe(t) : { error: "connection_refused", message: "closed before open" };
      if (mine !== run) return;
      if (refusal) action = "auth";
    }
    const why = reason || `closed with ${code}`;
    if (action === "stop") {
      stop();
      error({ error: code === 1009 ? "message_too_big" : "invalid_payload", message: why });
      status("disconnected");
    } else if (action === "auth") {
      if (++refusals >= 2) {
        stop();
        error(refusal ?? { error: "policy_violation", message: why });
        status("auth_failed");
      } else {
        // At once: the next attempt asks the provider for a fresh token.
        void open("reconnecting");
      }
    } else {
      refusals = 0;
      retry(action);
    }
  };

  const retry = (action: "retry" | "soon" | "slow"): void => {
    const [delay, next] = retryPlan(action, attempt, o.random, o.backoff);
    attempt = next;
    status("reconnecting");
    retryTimer = setTimeout(() => void open(null), delay);
  };

  const renew = (): void => {
    // A renewal is a connection ending for a reason other than a refusal.
    refusals = 0;
    void open(null);
  };

  const offline = (): void => {
    drop();
    status("offline");
  };

  const online = (): void => {
    if (active && !ws) {
      attempt = 0;
      void open("reconnecting");
    }
  };

  const stop = (): void => {
    active = false;
    drop();
    win?.removeEventListener("offline", offline);
    win?.removeEventListener("online", online);
  };

  return {
    start(s = "connecting") {
      if (active) return;
      active = true;
      attempt = refusals = failsBeforeOpen = 0;
      win?.addEventListener("offline", offline);
      win?.addEventListener("online", online);
      void open(s);
    },
    stop,
    send,
  };
}
