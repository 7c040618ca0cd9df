export type * from "./types";
export { backoffDelay, closeAction, retryPlan, type BackoffOptions, type CloseAction } from "./backoff";
export { renewDelay, tokenExpiry } from "./token";
export { HttpError, type ArchiveBody, type Counts, type HistoryPage, type HistoryQuery } from "./rest";
export {
  getWebSocketService,
  WebSocketService,
  type ActionName,
  type ActionPayload,
  type ServiceOptions,
} from "./service";
export type { OnlineTarget, SocketConstructor, SocketLike, TransportOptions } from "./ports";
export type { ChannelConstructor, ChannelLike, LocksLike } from "./tabs";
export { createInbox, getInbox, type InboxOptions } from "./inbox";
