import { useCallback, useMemo, useSyncExternalStore } from "react";
import type { Inbox, InboxState, Preferences } from "@tour-notify/client";

/** Functions, not methods: they can be passed around and destructured. */
export interface InboxActions {
  markRead: (ids: readonly string[]) => Promise<void>;
  markAllRead: () => Promise<void>;
  loadMore: () => Promise<void>;
  /** Marks seen up to `upToSeq`, by default the greatest seq held: the badge's count goes. */
  markSeen: (upToSeq?: number) => Promise<void>;
  archive: (ids: readonly string[]) => Promise<void>;
  archiveAllRead: (upToSeq?: number) => Promise<void>;
  unarchive: (ids: readonly string[]) => Promise<void>;
  loadArchived: (more?: boolean) => Promise<void>;
  loadPreferences: () => Promise<void>;
  savePreferences: (preferences: Preferences) => Promise<void>;
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
      markSeen: (upToSeq) => inbox.markSeen(upToSeq),
      archive: (ids) => inbox.archive(ids),
      archiveAllRead: (upToSeq) => inbox.archiveAllRead(upToSeq),
      unarchive: (ids) => inbox.unarchive(ids),
      loadArchived: (more) => inbox.loadArchived(more),
      loadPreferences: () => inbox.loadPreferences(),
      savePreferences: (preferences) => inbox.savePreferences(preferences),
      clear: () => {
        inbox.clear();
      },
    }),
    [inbox],
  );
  // One object per snapshot, so that memoised consumers re-render only on a change.
  return useMemo(() => ({ ...state, ...actions }), [state, actions]);
}
