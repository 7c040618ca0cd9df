export { useInbox, type InboxActions, type UseInboxResult } from "./useInbox";
export {
  useWebSocket,
  type UseWebSocketOptions,
  type UseWebSocketResult,
} from "./useWebSocket";
export {
  useBrowserNotifications,
  useBrowserNotificationPermission,
  requestBrowserNotifications,
  browserNotificationPermission,
  type BrowserNotificationOptions,
  type BrowserNotificationPermission,
  type NotificationEventSource,
} from "./browserNotifications";
export {
  NotificationBell,
  formatBadgeCount,
  type NotificationBellProps,
  type NotificationBellBaseProps,
  type NotificationBellConnectionProps,
  type NotificationBellInboxProps,
  type NotificationRenderContext,
} from "./NotificationBell";
export { NotificationBellStyles, type NotificationBellStylesProps } from "./NotificationBellStyles";
export {
  defaultStrings,
  type NotificationBellStrings,
  type NotificationBellStringsInput,
} from "./strings";
export { notificationBellCss } from "./styles";
export { isSameOriginPath } from "./safeUrl";
export { formatRelativeTime } from "./relativeTime";
