import type { ConnectionStatus } from "@tour-notify/client";

/** Every text the NotificationBell shows or announces. */
export interface NotificationBellStrings {
  /** The button's accessible name: carries the unread count. */
  buttonLabel: (unreadCount: number) => string;
  heading: string;
  tabAll: string;
  tabUnread: string;
  markAllRead: string;
  loadOlder: string;
  loading: string;
  empty: string;
  emptyUnread: string;
  /** Read out before an unread item's text. */
  unread: string;
  priorityUrgent: string;
  priorityHigh: string;
  enableDesktopNotifications: string;
  /** The error from the inbox (a refused token, a failed history page), as shown. */
  error: (message: string) => string;
  status: Readonly<Record<ConnectionStatus, string>>;
}

/** Overrides: any subset, `status` included key by key. */
export type NotificationBellStringsInput = Partial<Omit<NotificationBellStrings, "status">> & {
  status?: Partial<Record<ConnectionStatus, string>> | undefined;
};

export const defaultStrings: NotificationBellStrings = {
  buttonLabel: (count) => (count > 0 ? `Notifications, ${count} unread` : "Notifications"),
  heading: "Notifications",
  tabAll: "All",
  tabUnread: "Unread",
  markAllRead: "Mark all as read",
  loadOlder: "Load older",
  loading: "Loading…",
  empty: "No notifications yet",
  emptyUnread: "No unread notifications",
  unread: "Unread",
  priorityUrgent: "Urgent",
  priorityHigh: "High",
  enableDesktopNotifications: "Enable desktop notifications",
  error: (message) => `Something went wrong: ${message}`,
  status: {
    idle: "Not connected",
    connecting: "Connecting…",
    connected: "Connected",
    reconnecting: "Reconnecting…",
    offline: "Offline",
    auth_failed: "Sign-in expired: reload the page",
    disconnected: "Disconnected",
  },
};

export function resolveStrings(
  overrides: NotificationBellStringsInput | undefined,
): NotificationBellStrings {
  if (overrides === undefined) return defaultStrings;
  const { status, ...rest } = overrides;
  return { ...defaultStrings, ...rest, status: { ...defaultStrings.status, ...status } };
}
