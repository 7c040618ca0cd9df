import { useCallback, useMemo, useSyncExternalStore } from "react";
import type { Inbox, InboxState } from "@tour-notify/client";

/** Functions, not methods: they can be passed around and destructured. */
export interface InboxActions {
  markRead: (ids: readonly string[]) => Promise<void>;
  markAllRead: () => Promise<void>;
  loadMore: () => Promise<void>;
  clear: () => void;
}

export type UseInboxResult = InboxState & InboxActions;

/**
 * The headless inbox: the Inbox's current state, re-rendering on each change, with its
 * actions. The state lives in the Inbox, so any number of components can read the same one.
 */
export function useInbox(inbox: Inbox): UseInboxResult {
  // The Inbox may be a class instance: its methods are called on it, never passed bare.
  const subscribe = useCallback((listener: () => void) => inbox.subscribe(listener), [inbox]);
  const getSnapshot = useCallback(() => inbox.getSnapshot(), [inbox]);
  const state = useSyncExternalStore(subscribe, getSnapshot, getSnapshot);
  const actions = useMemo<InboxActions>(
    () => ({
      markRead: (ids) => inbox.markRead(ids),
      markAllRead: () => inbox.markAllRead(),
      loadMore: () => inbox.loadMore(),
      clear: () => {
        inbox.clear();
      },
    }),
    [inbox],
  );
  // One object per snapshot, so that memoised consumers re-render only on a change.
  return useMemo(() => ({ ...state, ...actions }), [state, actions]);
}
