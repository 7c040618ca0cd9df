import {
  useEffect,
  useId,
  useMemo,
  useRef,
  useState,
  type FocusEvent,
  type KeyboardEvent,
  type ReactNode,
} from "react";
import type { Inbox, InboxItem, TokenProvider } from "@tour-notify/client";
import {
  requestBrowserNotifications,
  useBrowserNotificationPermission,
  useBrowserNotifications,
  type NotificationEventSource,
} from "./browserNotifications";
import { useNow } from "./clock";
import { NotificationBellStyles } from "./NotificationBellStyles";
import { PreferencesPanel } from "./PreferencesPanel";
import { formatRelativeTime } from "./relativeTime";
import { isSameOriginPath } from "./safeUrl";
import {
  resolveStrings,
  type NotificationBellStrings,
  type NotificationBellStringsInput,
} from "./strings";
import { useInbox } from "./useInbox";
import { useWebSocket } from "./useWebSocket";

export interface NotificationRenderContext {
  /** "2 min ago", in the bell's locale. */
  readonly relativeTime: string;
  readonly strings: NotificationBellStrings;
}

export interface NotificationBellBaseProps {
  strings?: NotificationBellStringsInput | undefined;
  /**
   * The content of one item. The bell keeps the item's element, its focus handling and its
   * click: render text and inert elements only.
   */
  renderNotification?:
    | ((item: InboxItem, context: NotificationRenderContext) => ReactNode)
    | undefined;
  /** Follows an item's `action_url` once it has passed the same-origin check. */
  onNavigate?: ((url: string) => void) | undefined;
  /** For relative times; the browser's locale unless given. */
  locale?: string | undefined;
  /** Desktop notifications for high and urgent ones while the page is hidden; on by default. */
  browserNotifications?: boolean | undefined;
  /** Offer the preferences panel (categories, quiet hours); on by default. */
  preferences?: boolean | undefined;
  /** Put the default stylesheet in the document head; on by default. */
  injectStyles?: boolean | undefined;
  styleNonce?: string | undefined;
  className?: string | undefined;
}

/** The bell connects on its own, through useWebSocket. */
export interface NotificationBellConnectionProps {
  userId: string;
  url: string;
  token?: TokenProvider | undefined;
  deviceType?: string | undefined;
  apiUrl?: string | undefined;
  autoConnect?: boolean | undefined;
  inbox?: undefined;
}

/** The bell shows an Inbox it is given: custom setups, tests. */
export interface NotificationBellInboxProps {
  inbox: Inbox;
  /** Live events for desktop notifications; the inbox's changes are used without it. */
  events?: NotificationEventSource | undefined;
  userId?: string | undefined;
  url?: string | undefined;
}

export type NotificationBellProps = NotificationBellBaseProps &
  (NotificationBellConnectionProps | NotificationBellInboxProps);

type Tab = "all" | "unread" | "archived";
const TABS: readonly Tab[] = ["all", "unread", "archived"];
const ignore = (): void => undefined;

export function formatBadgeCount(count: number): string {
  return count > 99 ? "99+" : String(count);
}

export function NotificationBell(props: NotificationBellProps): ReactNode {
  const base: NotificationBellBaseProps = {
    strings: props.strings,
    renderNotification: props.renderNotification,
    onNavigate: props.onNavigate,
    locale: props.locale,
    browserNotifications: props.browserNotifications,
    preferences: props.preferences,
    injectStyles: props.injectStyles,
    styleNonce: props.styleNonce,
    className: props.className,
  };
  if (props.inbox !== undefined) {
    return <BellView {...base} inbox={props.inbox} events={props.events ?? props.inbox} />;
  }
  return (
    <ConnectedBell
      {...base}
      userId={props.userId}
      url={props.url}
      token={props.token}
      deviceType={props.deviceType}
      apiUrl={props.apiUrl}
      autoConnect={props.autoConnect}
    />
  );
}

export default NotificationBell;

function ConnectedBell(
  props: NotificationBellBaseProps & Omit<NotificationBellConnectionProps, "inbox">,
): ReactNode {
  const { userId, url, token, deviceType, apiUrl, autoConnect, ...view } = props;
  const { inbox, service } = useWebSocket(userId, { url, token, deviceType, apiUrl, autoConnect });
  return <BellView {...view} inbox={inbox} events={service} />;
}

interface BellViewProps extends NotificationBellBaseProps {
  inbox: Inbox;
  events: Inbox | NotificationEventSource;
}

interface Active {
  readonly id: string | null;
  readonly index: number;
}

function BellView(props: BellViewProps): ReactNode {
  const {
    inbox,
    events,
    renderNotification,
    onNavigate,
    locale,
    browserNotifications = true,
    preferences: offerPreferences = true,
    injectStyles = true,
    styleNonce,
    className,
  } = props;
  const strings = useMemo(() => resolveStrings(props.strings), [props.strings]);
  const state = useInbox(inbox);
  const permission = useBrowserNotificationPermission();
  useBrowserNotifications(events, { enabled: browserNotifications });

  const [open, setOpen] = useState(false);
  const [tab, setTab] = useState<Tab>("all");
  const [view, setView] = useState<"list" | "preferences">("list");
  const [active, setActive] = useState<Active>({ id: null, index: 0 });
  const now = useNow(open);

  const id = useId();
  const buttonId = `${id}-button`;
  const panelId = `${id}-panel`;
  const headingId = `${id}-heading`;
  const tabpanelId = `${id}-tabpanel`;
  const unseenId = `${id}-unseen`;
  const prefsId = `${id}-prefs`;
  const tabId = (which: Tab): string => `${id}-tab-${which}`;

  const rootRef = useRef<HTMLDivElement>(null);
  const buttonRef = useRef<HTMLButtonElement>(null);
  const panelRef = useRef<HTMLDivElement>(null);
  const scrollRef = useRef<HTMLDivElement>(null);
  const menuRef = useRef<HTMLDivElement>(null);
  const sentinelRef = useRef<HTMLDivElement>(null);
  const focusOnOpen = useRef<"first" | "last" | null>(null);
  const focusInside = useRef(false);

  const { notifications, unreadCount, unseenCount, status, error, archived } = state;
  const { markRead, markAllRead, markSeen, archive, archiveAllRead, unarchive, loadArchived } = state;
  const { loadPreferences, savePreferences } = state;
  const inArchive = tab === "archived";
  // The list shown, and its paging: the inbox's history, or the Archived list's.
  const hasMore = inArchive ? archived.hasMore : state.hasMore;
  const loadingMore = inArchive ? archived.loading : state.loadingMore;
  const loadMore = inArchive ? loadArchived : state.loadMore;
  const visible = useMemo(
    () =>
      tab === "archived"
        ? archived.items
        : tab === "unread"
          ? notifications.filter((item) => !item.read)
          : notifications,
    [tab, notifications, archived.items],
  );
  // The active item is tracked by id so that arrivals at the top do not move focus; when it
  // leaves the list (read under the Unread tab) its place is taken by the next one.
  let activeIndex = visible.findIndex((item) => item.id === active.id);
  if (activeIndex < 0) activeIndex = Math.min(active.index, visible.length - 1);
  const nothingUnread = unreadCount === 0 && !notifications.some((item) => !item.read);
  const nothingRead = !notifications.some((item) => item.read);
  const newest = notifications[0]?.seq;

  const focusCurrent = (): void => {
    const item = menuRef.current?.querySelector<HTMLElement>('[role="menuitem"][tabindex="0"]');
    (item ?? panelRef.current)?.focus();
  };

  const moveTo = (index: number): void => {
    const item = visible[index];
    if (item === undefined) return;
    setActive({ id: item.id, index });
    menuRef.current?.querySelectorAll<HTMLElement>('[role="menuitem"]')[index]?.focus();
  };

  const openPanel = (focus: "first" | "last"): void => {
    if (open) {
      moveTo(focus === "first" ? 0 : visible.length - 1);
      return;
    }
    const index = focus === "first" ? 0 : Math.max(0, visible.length - 1);
    setActive({ id: visible[index]?.id ?? null, index });
    focusOnOpen.current = focus;
    setView("list");
    setOpen(true);
  };

  const closePanel = (returnFocus: boolean): void => {
    setOpen(false);
    if (returnFocus) buttonRef.current?.focus();
  };

  // Open, the inbox is seen: everything it holds, and what arrives while it stays open.
  useEffect(() => {
    if (open) markSeen().catch(ignore);
  }, [open, newest, unseenCount, markSeen]);

  // The Archived list is fetched each time it is shown: archiving happens on other devices too.
  useEffect(() => {
    if (open && inArchive && view === "list") loadArchived().catch(ignore);
  }, [open, inArchive, view, loadArchived]);

  useEffect(() => {
    if (open && view === "preferences") loadPreferences().catch(ignore);
  }, [open, view, loadPreferences]);

  useEffect(() => {
    if (!open || focusOnOpen.current === null) return;
    focusOnOpen.current = null;
    focusCurrent();
  }, [open]);

  // Focus that was in the panel must not fall to the body when its element goes away (an
  // item read under the Unread tab, the permission button once answered).
  useEffect(() => {
    if (!open || !focusInside.current) return;
    const current = document.activeElement;
    if (current !== null && current !== document.body) return;
    focusCurrent();
  });

  useEffect(() => {
    if (!open) return;
    const onPointerDown = (event: Event): void => {
      if (event.target instanceof Node && rootRef.current?.contains(event.target)) return;
      setOpen(false);
    };
    document.addEventListener("pointerdown", onPointerDown);
    return () => {
      document.removeEventListener("pointerdown", onPointerDown);
    };
  }, [open]);

  useEffect(() => {
    const sentinel = sentinelRef.current;
    if (!open || !hasMore || loadingMore || sentinel === null) return;
    if (typeof IntersectionObserver === "undefined") return;
    // One page per observer: the next observer, made once loadingMore is false again,
    // fires at once if the sentinel is still in view, until the panel is full.
    const observer = new IntersectionObserver(
      (entries) => {
        if (!entries.some((entry) => entry.isIntersecting)) return;
        observer.disconnect();
        loadMore(true).catch(ignore);
      },
      { root: scrollRef.current, rootMargin: "0px 0px 120px 0px" },
    );
    observer.observe(sentinel);
    return () => {
      observer.disconnect();
    };
  }, [open, hasMore, loadingMore, loadMore]);

  const activate = (item: InboxItem): void => {
    if (!item.read) markRead([item.id]).catch(ignore);
    const url = item.action_url;
    if (url == null || !isSameOriginPath(url)) return;
    closePanel(true);
    if (onNavigate !== undefined) onNavigate(url);
    else window.location.assign(url);
  };

  /** Archives an item, or brings it back from the Archived list. */
  const toggleArchive = (item: InboxItem): void => {
    (inArchive ? unarchive : archive)([item.id]).catch(ignore);
  };

  const selectTab = (which: Tab, focus: boolean): void => {
    setTab(which);
    setActive({ id: null, index: 0 });
    if (focus) document.getElementById(tabId(which))?.focus();
  };

  const onButtonKeyDown = (event: KeyboardEvent<HTMLButtonElement>): void => {
    switch (event.key) {
      case "Enter":
      case " ":
        // Handled here rather than left to the click the browser would synthesise, so that
        // focus moves into the panel as it opens.
        event.preventDefault();
        if (open) closePanel(true);
        else openPanel("first");
        break;
      case "ArrowDown":
        event.preventDefault();
        openPanel("first");
        break;
      case "ArrowUp":
        event.preventDefault();
        openPanel("last");
        break;
      default:
    }
  };

  const onRootKeyDown = (event: KeyboardEvent<HTMLDivElement>): void => {
    if (event.key !== "Escape" || !open) return;
    event.preventDefault();
    event.stopPropagation();
    closePanel(true);
  };

  const onRootFocus = (): void => {
    focusInside.current = true;
  };

  const onRootBlur = (event: FocusEvent<HTMLDivElement>): void => {
    const next = event.relatedTarget;
    // A null target is focus going nowhere (a removed element, another window): the
    // effect above puts it back. Only a move to an element outside closes.
    if (!(next instanceof Node) || rootRef.current?.contains(next) === true) return;
    focusInside.current = false;
    if (open) setOpen(false);
  };

  const onMenuKeyDown = (event: KeyboardEvent<HTMLDivElement>): void => {
    if (!(event.target instanceof HTMLElement) || !event.target.matches('[role="menuitem"]')) {
      return;
    }
    const count = visible.length;
    const current = Math.max(0, activeIndex);
    switch (event.key) {
      case "ArrowDown":
        moveTo((current + 1) % count);
        break;
      case "ArrowUp":
        moveTo((current - 1 + count) % count);
        break;
      case "Home":
        moveTo(0);
        break;
      case "End":
        moveTo(count - 1);
        break;
      case "Enter":
      case " ": {
        const item = visible[current];
        if (item !== undefined) activate(item);
        break;
      }
      case "Delete": {
        const item = visible[current];
        if (item !== undefined) toggleArchive(item);
        break;
      }
      default:
        return;
    }
    event.preventDefault();
  };

  const onTabsKeyDown = (event: KeyboardEvent<HTMLDivElement>): void => {
    const index = TABS.indexOf(tab);
    let next: Tab | undefined;
    switch (event.key) {
      case "ArrowRight":
        next = TABS[(index + 1) % TABS.length];
        break;
      case "ArrowLeft":
        next = TABS[(index - 1 + TABS.length) % TABS.length];
        break;
      case "Home":
        next = TABS[0];
        break;
      case "End":
        next = TABS[TABS.length - 1];
        break;
      default:
        return;
    }
    event.preventDefault();
    if (next !== undefined) selectTab(next, true);
  };

  const tabLabel = (which: Tab): string =>
    which === "all" ? strings.tabAll : which === "unread" ? strings.tabUnread : strings.tabArchived;
  const emptyText =
    tab === "unread" ? strings.emptyUnread : inArchive ? strings.emptyArchived : strings.empty;
  const inList = view === "list";
  const waiting = status === "connecting" || status === "idle";

  return (
    <div
      ref={rootRef}
      className={className === undefined ? "tn-bell" : `tn-bell ${className}`}
      onKeyDown={onRootKeyDown}
      onFocus={onRootFocus}
      onBlur={onRootBlur}
    >
      {injectStyles && <NotificationBellStyles nonce={styleNonce} />}
      <button
        ref={buttonRef}
        id={buttonId}
        type="button"
        className="tn-bell__button"
        aria-label={strings.buttonLabel(unreadCount)}
        aria-describedby={unseenCount > 0 ? unseenId : undefined}
        aria-haspopup="dialog"
        aria-expanded={open}
        aria-controls={panelId}
        data-status={status}
        onClick={() => {
          if (open) closePanel(false);
          else openPanel("first");
        }}
        onKeyDown={onButtonKeyDown}
        onKeyUp={(event) => {
          // Firefox clicks a button on the Space key's release; the press already toggled.
          if (event.key === " ") event.preventDefault();
        }}
      >
        <BellIcon />
        {unseenCount > 0 && (
          <span className="tn-bell__badge" aria-hidden="true">
            {formatBadgeCount(unseenCount)}
          </span>
        )}
      </button>
      {unseenCount > 0 && (
        <span id={unseenId} className="tn-visually-hidden">
          {strings.unseenLabel(unseenCount)}
        </span>
      )}
      <div
        ref={panelRef}
        id={panelId}
        role="dialog"
        aria-labelledby={headingId}
        className="tn-bell__panel"
        hidden={!open}
        tabIndex={-1}
      >
        {open && (
          <>
            <div className="tn-bell__header">
              <div id={headingId} className="tn-bell__heading">
                {inList ? strings.heading : strings.preferences}
              </div>
              <span className="tn-bell__status" data-status={status} role="status">
                {strings.status[status]}
              </span>
              {offerPreferences && (
                <button
                  type="button"
                  className="tn-bell__prefs-button"
                  aria-label={strings.preferences}
                  title={strings.preferences}
                  aria-expanded={!inList}
                  aria-controls={inList ? undefined : prefsId}
                  onClick={() => {
                    setView(inList ? "preferences" : "list");
                  }}
                >
                  <GearIcon />
                </button>
              )}
              {inList && (
                <div className="tn-bell__toolbar">
                  <div
                    role="tablist"
                    aria-label={strings.heading}
                    className="tn-bell__tabs"
                    onKeyDown={onTabsKeyDown}
                  >
                    {TABS.map((which) => (
                      <button
                        key={which}
                        id={tabId(which)}
                        type="button"
                        role="tab"
                        className="tn-bell__tab"
                        aria-selected={tab === which}
                        aria-controls={tabpanelId}
                        tabIndex={tab === which ? 0 : -1}
                        onClick={() => {
                          selectTab(which, false);
                        }}
                      >
                        {tabLabel(which)}
                      </button>
                    ))}
                  </div>
                  <button
                    type="button"
                    className="tn-bell__action"
                    aria-disabled={nothingUnread}
                    onClick={() => {
                      if (!nothingUnread) markAllRead().catch(ignore);
                    }}
                  >
                    {strings.markAllRead}
                  </button>
                </div>
              )}
            </div>
            {error !== null && (
              <p className="tn-bell__error" role="alert">
                {strings.error(error)}
              </p>
            )}
            {!inList ? (
              <div className="tn-bell__scroll">
                <PreferencesPanel
                  id={prefsId}
                  info={state.preferences}
                  strings={strings}
                  onSave={savePreferences}
                />
              </div>
            ) : (
              <>
                <div
                  ref={scrollRef}
                  id={tabpanelId}
                  role="tabpanel"
                  aria-labelledby={tabId(tab)}
                  className="tn-bell__scroll"
                >
                  {visible.length > 0 ? (
                    <div
                      ref={menuRef}
                      role="menu"
                      aria-label={tabLabel(tab)}
                      className="tn-bell__menu"
                      onKeyDown={onMenuKeyDown}
                    >
                      {visible.map((item, index) => (
                        <BellItem
                          key={item.id}
                          item={item}
                          active={index === activeIndex}
                          relativeTime={formatRelativeTime(item.timestamp, now, locale)}
                          strings={strings}
                          archived={inArchive}
                          renderNotification={renderNotification}
                          onActivate={() => {
                            setActive({ id: item.id, index });
                            activate(item);
                          }}
                          onFocus={() => {
                            if (active.id !== item.id) setActive({ id: item.id, index });
                          }}
                          onArchive={() => {
                            toggleArchive(item);
                          }}
                        />
                      ))}
                    </div>
                  ) : (
                    !loadingMore && (
                      <p className="tn-bell__note">{waiting ? strings.loading : emptyText}</p>
                    )
                  )}
                  {hasMore && (
                    <div ref={sentinelRef} className="tn-bell__sentinel" aria-hidden="true" />
                  )}
                  {loadingMore && (
                    <p className="tn-bell__note" role="status">
                      {strings.loading}
                    </p>
                  )}
                </div>
                <div className="tn-bell__footer">
                  {hasMore && (
                    <button
                      type="button"
                      className="tn-bell__action"
                      aria-disabled={loadingMore}
                      onClick={() => {
                        if (!loadingMore) loadMore(true).catch(ignore);
                      }}
                    >
                      {strings.loadOlder}
                    </button>
                  )}
                  {!inArchive && (
                    <button
                      type="button"
                      className="tn-bell__action"
                      aria-disabled={nothingRead}
                      onClick={() => {
                        if (!nothingRead) archiveAllRead().catch(ignore);
                      }}
                    >
                      {strings.archiveAllRead}
                    </button>
                  )}
                  {browserNotifications && permission === "default" && (
                    <button
                      type="button"
                      className="tn-bell__action"
                      onClick={() => {
                        requestBrowserNotifications().catch(ignore);
                      }}
                    >
                      {strings.enableDesktopNotifications}
                    </button>
                  )}
                </div>
              </>
            )}
          </>
        )}
      </div>
    </div>
  );
}

interface BellItemProps {
  item: InboxItem;
  active: boolean;
  relativeTime: string;
  strings: NotificationBellStrings;
  /** Shown in the Archived list: its action brings the item back. */
  archived: boolean;
  renderNotification: NotificationBellBaseProps["renderNotification"];
  onActivate: () => void;
  onFocus: () => void;
  onArchive: () => void;
}

function BellItem(props: BellItemProps): ReactNode {
  const { item, active, relativeTime, strings, archived, renderNotification } = props;
  const { onActivate, onFocus, onArchive } = props;
  const action = archived ? strings.unarchive : strings.archive;
  return (
    <div
      role="menuitem"
      className="tn-bell__item"
      tabIndex={active ? 0 : -1}
      data-priority={item.priority}
      data-read={item.read}
      data-quiet={item.quiet === true || undefined}
      aria-keyshortcuts="Delete"
      onClick={onActivate}
      onFocus={onFocus}
    >
      {!item.read && <span className="tn-visually-hidden">{`${strings.unread}: `}</span>}
      {renderNotification !== undefined ? (
        renderNotification(item, { relativeTime, strings })
      ) : (
        <ItemContent item={item} relativeTime={relativeTime} strings={strings} />
      )}
      {/* Out of the tab order, as the menu is one tab stop: Delete does the same by keyboard. */}
      <button
        type="button"
        className="tn-bell__archive"
        tabIndex={-1}
        aria-label={action}
        title={action}
        data-action={archived ? "unarchive" : "archive"}
        onClick={(event) => {
          event.stopPropagation();
          onArchive();
        }}
      >
        {archived ? <UnarchiveIcon /> : <ArchiveIcon />}
      </button>
    </div>
  );
}

interface ItemContentProps {
  item: InboxItem;
  relativeTime: string;
  strings: NotificationBellStrings;
}

function ItemContent({ item, relativeTime, strings }: ItemContentProps): ReactNode {
  const priority =
    item.priority === "urgent"
      ? strings.priorityUrgent
      : item.priority === "high"
        ? strings.priorityHigh
        : null;
  return (
    <>
      <span className="tn-bell__dot" aria-hidden="true" />
      <span className="tn-bell__body">
        <span className="tn-bell__title">{item.title}</span>
        <span className="tn-bell__message">{item.message}</span>
        <span className="tn-bell__meta">
          {priority !== null && (
            <span className="tn-bell__priority" data-priority={item.priority}>
              {priority}
            </span>
          )}
          {item.quiet === true && <span className="tn-bell__quiet-tag">{strings.quiet}</span>}
          <time dateTime={item.timestamp}>{relativeTime}</time>
        </span>
      </span>
    </>
  );
}

function BellIcon(): ReactNode {
  return (
    <svg
      className="tn-bell__icon"
      viewBox="0 0 24 24"
      aria-hidden="true"
      focusable="false"
      fill="none"
      stroke="currentColor"
      strokeWidth="2"
      strokeLinecap="round"
      strokeLinejoin="round"
    >
      <path d="M18 8a6 6 0 0 0-12 0c0 7-3 9-3 9h18s-3-2-3-9" />
      <path d="M13.73 21a2 2 0 0 1-3.46 0" />
    </svg>
  );
}

function Icon({ children }: { children: ReactNode }): ReactNode {
  return (
    <svg
      className="tn-bell__small-icon"
      viewBox="0 0 24 24"
      aria-hidden="true"
      focusable="false"
      fill="none"
      stroke="currentColor"
      strokeWidth="2"
      strokeLinecap="round"
      strokeLinejoin="round"
    >
      {children}
    </svg>
  );
}

function ArchiveIcon(): ReactNode {
  return (
    <Icon>
      <rect x="3" y="4" width="18" height="5" rx="1" />
      <path d="M5 9v10a1 1 0 0 0 1 1h12a1 1 0 0 0 1-1V9M10 13h4" />
    </Icon>
  );
}

function UnarchiveIcon(): ReactNode {
  return (
    <Icon>
      <path d="M3 10h11a5 5 0 0 1 0 10h-3" />
      <path d="M7 6l-4 4 4 4" />
    </Icon>
  );
}

function GearIcon(): ReactNode {
  return (
    <Icon>
      <circle cx="12" cy="12" r="3" />
      <path d="M19.4 15a1.7 1.7 0 0 0 .3 1.8l.1.1a2 2 0 1 1-2.8 2.8l-.1-.1a1.7 1.7 0 0 0-1.8-.3 1.7 1.7 0 0 0-1 1.5V21a2 2 0 1 1-4 0v-.1a1.7 1.7 0 0 0-1.1-1.5 1.7 1.7 0 0 0-1.8.3l-.1.1a2 2 0 1 1-2.8-2.8l.1-.1a1.7 1.7 0 0 0 .3-1.8 1.7 1.7 0 0 0-1.5-1H3a2 2 0 1 1 0-4h.1a1.7 1.7 0 0 0 1.5-1.1 1.7 1.7 0 0 0-.3-1.8l-.1-.1a2 2 0 1 1 2.8-2.8l.1.1a1.7 1.7 0 0 0 1.8.3H9a1.7 1.7 0 0 0 1-1.5V3a2 2 0 1 1 4 0v.1a1.7 1.7 0 0 0 1 1.5 1.7 1.7 0 0 0 1.8-.3l.1-.1a2 2 0 1 1 2.8 2.8l-.1.1a1.7 1.7 0 0 0-.3 1.8V9a1.7 1.7 0 0 0 1.5 1H21a2 2 0 1 1 0 4h-.1a1.7 1.7 0 0 0-1.5 1z" />
    </Icon>
  );
}
