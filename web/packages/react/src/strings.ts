import type { ConnectionStatus } from "@tour-notify/client";

/** Every text the NotificationBell shows or announces. */
export interface NotificationBellStrings {
  /** The button's accessible name: carries the unread count. */
  buttonLabel: (unreadCount: number) => string;
  /** The button's description when the badge shows a count: the notifications not seen yet. */
  unseenLabel: (unseenCount: number) => string;
  heading: string;
  tabAll: string;
  tabUnread: string;
  tabArchived: string;
  markAllRead: string;
  archive: string;
  unarchive: string;
  archiveAllRead: string;
  emptyArchived: string;
  /** Shown on a notification that arrived during the user's quiet hours. */
  quiet: string;
  /** The preferences panel: its button and heading. */
  preferences: string;
  categoriesLegend: string;
  categoryName: (category: string) => string;
  typeName: (notificationType: string) => string;
  criticalLegend: string;
  /** Beside a type nothing mutes. */
  locked: string;
  typesSummary: string;
  quietHours: string;
  quietHoursEnable: string;
  quietHoursHelp: string;
  quietStart: string;
  quietEnd: string;
  timeZone: string;
  quietSameTimes: string;
  save: string;
  saving: string;
  saved: string;
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

const CATEGORY_NAMES: Readonly<Record<string, string>> = {
  booking: "Bookings",
  payment: "Payments",
  tour: "Tours",
  agent: "Agent program",
  chat: "Chat",
  system: "System",
  ai_agent: "AI assistant",
};

/** "booking_confirmed" as "Booking confirmed". */
const humanize = (name: string): string => {
  const text = name.replace(/_/g, " ");
  return text.charAt(0).toUpperCase() + text.slice(1);
};

export const defaultStrings: NotificationBellStrings = {
  buttonLabel: (count) => (count > 0 ? `Notifications, ${count} unread` : "Notifications"),
  unseenLabel: (count) => `${count} new`,
  heading: "Notifications",
  tabAll: "All",
  tabUnread: "Unread",
  tabArchived: "Archived",
  markAllRead: "Mark all as read",
  archive: "Archive",
  unarchive: "Unarchive",
  archiveAllRead: "Archive all read",
  emptyArchived: "No archived notifications",
  quiet: "Quiet hours",
  preferences: "Preferences",
  categoriesLegend: "Notify me about",
  categoryName: (category) => CATEGORY_NAMES[category] ?? humanize(category),
  typeName: humanize,
  criticalLegend: "Always delivered",
  locked: "Always on",
  typesSummary: "Individual types",
  quietHours: "Quiet hours",
  quietHoursEnable: "Hold notifications during quiet hours",
  quietHoursHelp:
    "What arrives in these hours waits in the inbox, with no desktop notification. Urgent and always-delivered ones still come.",
  quietStart: "From",
  quietEnd: "To",
  timeZone: "Time zone",
  quietSameTimes: "The start and the end must differ.",
  save: "Save",
  saving: "Saving…",
  saved: "Saved",
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
