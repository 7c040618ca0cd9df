import { useEffect, useRef, useSyncExternalStore } from "react";
import type {
  ConnectionStatus,
  Inbox,
  NotificationFrame,
  Priority,
  ReadFrame,
} from "@tour-notify/client";

export type BrowserNotificationPermission = NotificationPermission | "unsupported";

/** What useBrowserNotifications needs of a WebSocketService (which satisfies it). */
export interface NotificationEventSource {
  readonly status: ConnectionStatus;
  on(event: "notification", handler: (notification: NotificationFrame) => void): () => void;
  on(event: "read", handler: (frame: ReadFrame) => void): () => void;
  markRead(ids: readonly string[]): unknown;
}

export interface BrowserNotificationOptions {
  /** `true` unless given: `false` shows nothing (the permission is kept). */
  enabled?: boolean | undefined;
  /** The priorities worth interrupting the user for: `high` and `urgent` unless given. */
  priorities?: readonly Priority[] | undefined;
  icon?: string | undefined;
  /** After a click has focused the window and marked the notification read. */
  onClick?: ((notification: NotificationFrame) => void) | undefined;
}

const DEFAULT_PRIORITIES: readonly Priority[] = ["high", "urgent"];

function supported(): boolean {
  return typeof window !== "undefined" && typeof window.Notification === "function";
}

export function browserNotificationPermission(): BrowserNotificationPermission {
  return supported() ? Notification.permission : "unsupported";
}

// Notification.permission has no change event; the permission's holders are told after a
// request, and by the Permissions API where a browser has it (a change in site settings).
const permissionListeners = new Set<() => void>();
let permissionStatusWatched = false;

function notifyPermission(): void {
  for (const listener of permissionListeners) listener();
}

function watchPermissionStatus(): void {
  if (permissionStatusWatched || typeof navigator === "undefined") return;
  permissionStatusWatched = true;
  const permissions = (navigator as Partial<Navigator>).permissions;
  if (permissions === undefined) return;
  permissions.query({ name: "notifications" }).then(
    (status) => {
      status.addEventListener("change", notifyPermission);
    },
    () => {
      // Some browsers refuse to query this permission; requests still update the store.
    },
  );
}

function subscribePermission(listener: () => void): () => void {
  watchPermissionStatus();
  permissionListeners.add(listener);
  return () => permissionListeners.delete(listener);
}

/**
 * Asks the user for permission to show desktop notifications. Browsers only honour this
 * from a user gesture, and asking unprompted on load is what users learn to deny: call it
 * from a click handler.
 */
export async function requestBrowserNotifications(): Promise<BrowserNotificationPermission> {
  if (!supported()) return "unsupported";
  if (Notification.permission !== "default") return Notification.permission;
  try {
    return await Notification.requestPermission();
  } finally {
    notifyPermission();
  }
}

/** The current permission, re-rendering when a request or the site settings change it. */
export function useBrowserNotificationPermission(): BrowserNotificationPermission {
  return useSyncExternalStore(
    subscribePermission,
    browserNotificationPermission,
    () => "unsupported",
  );
}

function isInbox(source: Inbox | NotificationEventSource): source is Inbox {
  return "getSnapshot" in source;
}

interface Shown {
  readonly seq: number;
  readonly notification: Notification;
}

/**
 * Shows a desktop notification for each `high` or `urgent` notification that arrives live
 * (not replayed) while the page is hidden. It never asks for the permission: see
 * requestBrowserNotifications. Each is tagged with its id, so that browsers show one
 * notification when several tabs of the user receive it.
 */
export function useBrowserNotifications(
  source: Inbox | NotificationEventSource | null | undefined,
  options: BrowserNotificationOptions = {},
): void {
  const optionsRef = useRef(options);
  useEffect(() => {
    optionsRef.current = options;
  });
  const enabled = options.enabled ?? true;

  useEffect(() => {
    if (source == null || !enabled) return;
    const shown = new Map<string, Shown>();
    const markRead = (id: string): void => {
      // Whichever way the source reports failure, the click has done what it can.
      void Promise.resolve(source.markRead([id])).catch(() => undefined);
    };

    const show = (item: NotificationFrame): void => {
      const { priorities = DEFAULT_PRIORITIES, icon, onClick } = optionsRef.current;
      // A quiet one came during the user's quiet hours: it waits in the inbox, silently.
      if (item.quiet === true || !priorities.includes(item.priority)) return;
      if (typeof document === "undefined" || document.visibilityState !== "hidden") return;
      if (browserNotificationPermission() !== "granted") return;
      let notification: Notification;
      try {
        notification = new Notification(item.title, {
          body: item.message,
          tag: item.id,
          requireInteraction: item.priority === "urgent",
          ...(icon !== undefined ? { icon } : {}),
        });
      } catch {
        // Some mobile browsers only show notifications from a service worker.
        return;
      }
      shown.set(item.id, { seq: item.seq, notification });
      notification.addEventListener("close", () => {
        shown.delete(item.id);
      });
      notification.addEventListener("click", (event) => {
        event.preventDefault();
        window.focus();
        notification.close();
        markRead(item.id);
        onClick?.(item);
      });
    };

    // Read on another device, or in this tab: its desktop notification has served its purpose.
    const closeRead = (isRead: (id: string, seq: number) => boolean): void => {
      for (const [id, entry] of shown) {
        if (isRead(id, entry.seq)) entry.notification.close();
      }
    };

    if (isInbox(source)) {
      // An Inbox does not say how an item arrived, so a live one is told apart here: an
      // id not seen before, not replayed, unread, arriving while the connection was already
      // up (a replay completes before the status becomes `connected`), and newer than the
      // oldest item held before the change (history pages are older than everything held).
      const seen = new Set<string>();
      let oldestSeq = Number.POSITIVE_INFINITY;
      const absorb = (items: readonly { id: string; seq: number }[]): void => {
        for (const item of items) {
          seen.add(item.id);
          if (item.seq < oldestSeq) oldestSeq = item.seq;
        }
      };
      absorb(source.getSnapshot().notifications);
      let held = seen.size > 0;
      let wasConnected = source.getSnapshot().status === "connected";
      return source.subscribe(() => {
        const { notifications, status } = source.getSnapshot();
        const live = wasConnected;
        wasConnected = status === "connected";
        const arrived = notifications.filter(
          (item) =>
            live &&
            !seen.has(item.id) &&
            item.replayed !== true &&
            !item.read &&
            (!held || item.seq > oldestSeq),
        );
        absorb(notifications);
        held ||= notifications.length > 0;
        arrived.sort((a, b) => a.seq - b.seq).forEach(show);
        const read = new Set(notifications.filter((item) => item.read).map((item) => item.id));
        closeRead((id) => read.has(id));
      });
    }

    const offNotification = source.on("notification", (notification) => {
      // Not `connected` yet: a replay, or a tab taking over another tab's recent ones.
      if (notification.replayed !== true && source.status === "connected") show(notification);
    });
    const offRead = source.on("read", (frame) => {
      const ids = new Set(frame.ids ?? []);
      const upTo = frame.up_to_seq;
      closeRead((id, seq) => ids.has(id) || (upTo != null && seq <= upTo));
    });
    return () => {
      offNotification();
      offRead();
    };
  }, [source, enabled]);
}
