/** A browser's Web Locks, BroadcastChannels and window, shared by the "tabs" of one test. */
import type { ChannelConstructor, ChannelLike, LocksLike } from "../src";
import type { Handler } from "./edge";

interface LockRequest {
  readonly tab: string;
  readonly callback: () => Promise<void>;
}

/** One browser: its tabs share Web Locks and BroadcastChannels. */
export class FakeBrowser {
  readonly #holders = new Map<string, LockRequest>();
  readonly #queues = new Map<string, LockRequest[]>();
  readonly #channels = new Set<FakeChannel>();
  readonly crashed = new Set<string>();
  posted = 0;
  /** While true, locks are not handed to waiting tabs (a browser slow to notice a closed tab). */
  #paused = false;

  pauseLocks(): void {
    this.#paused = true;
  }

  resumeLocks(): void {
    this.#paused = false;
    for (const name of this.#queues.keys()) this.#grant(name);
  }

  /** What one tab's service is given. */
  tab(tab: string): { locks: LocksLike; BroadcastChannel: ChannelConstructor } {
    // eslint-disable-next-line @typescript-eslint/no-this-alias
    const browser = this;
    return {
      locks: { request: (name, options, callback) => this.#request(tab, name, options.signal, callback) },
      BroadcastChannel: class extends FakeChannel {
        constructor(name: string) {
          super(browser, tab, name);
        }
      },
    };
  }

  holder(name?: string): string | undefined {
    const [first] = name === undefined ? [...this.#holders.values()] : [this.#holders.get(name)];
    return first?.tab;
  }

  /** The tab is gone without a word: its lock is released, nothing it posts arrives. */
  crash(tab: string): void {
    this.crashed.add(tab);
    for (const [name, holder] of this.#holders) {
      if (holder.tab === tab) {
        this.#holders.delete(name);
        this.#grant(name);
      }
    }
    for (const [name, queue] of this.#queues) this.#queues.set(name, queue.filter((r) => r.tab !== tab));
  }

  register(c: FakeChannel): void {
    this.#channels.add(c);
  }

  post(from: FakeChannel, message: unknown): void {
    if (this.crashed.has(from.tab)) return;
    this.posted++;
    for (const c of this.#channels) {
      if (c === from || c.name !== from.name || c.closed || this.crashed.has(c.tab)) continue;
      // Each receiver gets its own structured clone, later, as from a real channel.
      const data = structuredClone(message);
      queueMicrotask(() => {
        if (!c.closed) c.onmessage?.({ data });
      });
    }
  }

  #request(tab: string, name: string, signal: AbortSignal, callback: () => Promise<void>): Promise<unknown> {
    return new Promise((resolve, reject) => {
      const request: LockRequest = {
        tab,
        callback: () => callback().then(resolve, reject),
      };
      const abort = (): void => {
        const queue = this.#queues.get(name) ?? [];
        const i = queue.indexOf(request);
        if (i >= 0) {
          queue.splice(i, 1);
          reject(new DOMException("aborted", "AbortError"));
        }
      };
      if (signal.aborted) {
        reject(new DOMException("aborted", "AbortError"));
        return;
      }
      signal.addEventListener("abort", abort);
      this.#queues.set(name, [...(this.#queues.get(name) ?? []), request]);
      this.#grant(name);
    });
  }

  #grant(name: string): void {
    if (this.#paused || this.#holders.has(name)) return;
    const queue = this.#queues.get(name) ?? [];
    const next = queue.shift();
    if (!next) return;
    this.#holders.set(name, next);
    queueMicrotask(() => {
      void next.callback().finally(() => {
        if (this.#holders.get(name) === next) {
          this.#holders.delete(name);
          this.#grant(name);
        }
      });
    });
  }
}

export class FakeChannel implements ChannelLike {
  onmessage: Handler<{ data: unknown }> = null;
  closed = false;

  constructor(
    readonly browser: FakeBrowser,
    readonly tab: string,
    readonly name: string,
  ) {
    browser.register(this);
  }

  postMessage(message: unknown): void {
    if (this.closed) throw new Error("InvalidStateError: closed");
    this.browser.post(this, message);
  }

  close(): void {
    this.closed = true;
  }
}

/** A window with online/offline events. */
export function fakeWindow(onLine = true): EventTarget & { navigator: { onLine: boolean } } {
  return Object.assign(new EventTarget(), { navigator: { onLine } });
}
