import { useSyncExternalStore } from "react";

const REFRESH_MS = 30_000;

// One timer for every mounted reader: relative times ("2 min ago") need no finer clock.
let now = 0;
let timer: ReturnType<typeof setInterval> | undefined;
const listeners = new Set<() => void>();

function tick(): void {
  now = Date.now();
  for (const listener of listeners) listener();
}

function subscribe(listener: () => void): () => void {
  if (listeners.size === 0) {
    now = Date.now();
    timer = setInterval(tick, REFRESH_MS);
  }
  listeners.add(listener);
  return () => {
    listeners.delete(listener);
    if (listeners.size === 0) {
      clearInterval(timer);
      timer = undefined;
    }
  };
}

function subscribeNothing(): () => void {
  return () => undefined;
}

function getNow(): number {
  return now;
}

/**
 * The time, in milliseconds, refreshed every 30 seconds while `running`; it stays at its
 * last value while not (nothing that shows it is on screen then).
 */
export function useNow(running: boolean): number {
  return useSyncExternalStore(running ? subscribe : subscribeNothing, getNow, getNow);
}
