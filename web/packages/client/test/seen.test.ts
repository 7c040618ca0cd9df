/** Seen versus read, archiving, and preferences: the frames, the actions and the REST calls. */
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { createInbox, getInbox, HttpError, WebSocketService, type Inbox } from "../src";
import { FakeBrowser, fakeWindow } from "./browser";
import { FakeServer, note, tokenSource } from "./edge";
import { connected, flush, URL_ } from "./harness";

beforeEach(() => {
  vi.useFakeTimers();
  vi.setSystemTime(new Date("2026-01-15T10:00:00Z"));
});
afterEach(() => {
  vi.useRealTimers();
});

async function withInbox(server = new FakeServer(), pageSize?: number) {
  const setup = await connected({ autoConnect: false }, server);
  const inbox = pageSize === undefined ? createInbox(setup.service) : createInbox(setup.service, { pageSize });
  setup.service.connect();
  await flush();
  return { ...setup, inbox };
}

const seqs = (inbox: Inbox): number[] => inbox.getSnapshot().notifications.map((n) => n.seq);
const archivedSeqs = (inbox: Inbox): number[] => inbox.getSnapshot().archived.items.map((n) => n.seq);

describe("seen", () => {
  it("takes the unseen count from replay_complete, one more per live unread one, and seen frames", async () => {
    const server = new FakeServer();
    for (const seq of [1, 2, 3]) server.publish(note(seq));
    server.seenSeq = 2;
    const { inbox, service } = await withInbox(server);
    expect(inbox.getSnapshot()).toMatchObject({ unreadCount: 3, unseenCount: 1 });
    expect(service.seenUpToSeq).toBe(2);
    server.publish(note(4));
    expect(inbox.getSnapshot()).toMatchObject({ unreadCount: 4, unseenCount: 2 });
    // Another device opened its bell.
    server.seen(4);
    expect(inbox.getSnapshot()).toMatchObject({ unreadCount: 4, unseenCount: 0 });
    expect(service.seenUpToSeq).toBe(4);
    // Reading changes both counts, as the read frame says.
    server.markRead(["n4"]);
    expect(inbox.getSnapshot()).toMatchObject({ unreadCount: 3, unseenCount: 0 });
  });

  it("markSeen sends mark_seen up to the greatest seq held, once, and not when nothing is unseen", async () => {
    const server = new FakeServer();
    for (const seq of [3, 7]) server.publish(note(seq));
    const { inbox } = await withInbox(server);
    expect(inbox.getSnapshot().unseenCount).toBe(2);
    await inbox.markSeen();
    expect(server.last.sent).toEqual([{ action: "mark_seen", up_to_seq: 7 }]);
    expect(inbox.getSnapshot()).toMatchObject({ unseenCount: 0, unreadCount: 2 });
    // Read state is not touched: the items are still unread.
    expect(inbox.getSnapshot().notifications.every((n) => !n.read)).toBe(true);
    await inbox.markSeen();
    expect(server.last.sent).toHaveLength(1);
    server.publish(note(9));
    await inbox.markSeen();
    expect(server.last.sent.at(-1)).toEqual({ action: "mark_seen", up_to_seq: 9 });
  });

  it("asks once per seq while the answer is on its way", async () => {
    const server = new FakeServer();
    server.publish(note(5));
    const { inbox } = await withInbox(server);
    server.last.silent = true; // the edge takes the action but has not answered yet
    await inbox.markSeen();
    await inbox.markSeen();
    expect(server.last.sent).toEqual([{ action: "mark_seen", up_to_seq: 5 }]);
  });

  it("marks seen over REST while not connected", async () => {
    const server = new FakeServer();
    server.publish(note(2));
    const { service } = await connected({}, server);
    service.disconnect();
    await service.markSeen(2);
    const request = server.requests.at(-1);
    expect(request?.url.pathname).toBe("/api/users/alice/notifications/seen");
    expect([request?.method, request?.body]).toEqual(["POST", { up_to_seq: 2 }]);
    expect(server.seenSeq).toBe(2);
  });

  it("reads the unseen count of the REST count too", async () => {
    const server = new FakeServer();
    server.publish(note(1));
    const { service } = await connected({}, server);
    server.log.push(note(2)); // stored while this client heard nothing of it
    await service.unreadCountFromServer();
    expect([service.unreadCount, service.unseenCount]).toEqual([2, 2]);
  });

  it("an older edge without unseen counts leaves the unseen count to live notifications", async () => {
    const server = new FakeServer();
    server.legacy = true;
    server.publish(note(1));
    const { inbox } = await withInbox(server);
    expect(inbox.getSnapshot()).toMatchObject({ unreadCount: 1, unseenCount: 0 });
    server.publish(note(2));
    expect(inbox.getSnapshot().unseenCount).toBe(1);
  });
});

describe("archive", () => {
  it("an archived frame moves items out of the inbox into the Archived list; unarchived moves them back", async () => {
    const server = new FakeServer();
    for (const seq of [1, 2, 3]) server.publish(note(seq));
    const { inbox } = await withInbox(server);
    await inbox.archive(["n2"]);
    expect(server.last.sent.at(-1)).toEqual({ action: "archive", ids: ["n2"] });
    expect(seqs(inbox)).toEqual([3, 1]);
    expect(archivedSeqs(inbox)).toEqual([2]);
    expect(inbox.getSnapshot()).toMatchObject({ unreadCount: 2, unseenCount: 2 });
    await inbox.unarchive(["n2"]);
    expect(server.last.sent.at(-1)).toEqual({ action: "unarchive", ids: ["n2"] });
    expect(seqs(inbox)).toEqual([3, 2, 1]);
    expect(archivedSeqs(inbox)).toEqual([]);
    expect(inbox.getSnapshot().unreadCount).toBe(3);
  });

  it("archiveAllRead archives the read ones up to the greatest seq held", async () => {
    const server = new FakeServer();
    for (const seq of [1, 2, 3, 4]) server.publish(note(seq));
    const { inbox } = await withInbox(server);
    server.markRead(["n1", "n3"]);
    await inbox.archiveAllRead();
    expect(server.last.sent.at(-1)).toEqual({ action: "archive", all_read: true, up_to_seq: 4 });
    expect(seqs(inbox)).toEqual([4, 2]);
    expect(archivedSeqs(inbox)).toEqual([3, 1]);
  });

  it("a device's archive reaches the others, and what they archive leaves the recent list", async () => {
    const server = new FakeServer();
    for (const seq of [1, 2]) server.publish(note(seq));
    const { inbox, service } = await withInbox(server);
    server.archive(["n1"]); // done on a phone
    expect(seqs(inbox)).toEqual([2]);
    expect(service.recent.map((n) => n.seq)).toEqual([2]);
    // An inbox made later starts without it.
    expect(createInbox(service).getSnapshot().notifications.map((n) => n.seq)).toEqual([2]);
  });

  it("loadArchived pages the history with status=archived; read frames reach the list", async () => {
    const server = new FakeServer();
    for (let seq = 1; seq <= 5; seq++) server.publish(note(seq));
    server.archive(["n1", "n2", "n3"]);
    const { inbox } = await withInbox(server, 2);
    expect(inbox.getSnapshot().archived).toMatchObject({ loaded: false, items: [] });
    await inbox.loadArchived();
    expect(server.requests.at(-1)?.url.searchParams.get("status")).toBe("archived");
    expect(archivedSeqs(inbox)).toEqual([3, 2]);
    expect(inbox.getSnapshot().archived).toMatchObject({ loaded: true, hasMore: true, loading: false });
    await inbox.loadArchived(true);
    expect(server.requests.at(-1)?.url.searchParams.get("before_seq")).toBe("2");
    expect(archivedSeqs(inbox)).toEqual([3, 2, 1]);
    expect(inbox.getSnapshot().archived.hasMore).toBe(false);
    server.markRead(["n2"]);
    expect(inbox.getSnapshot().archived.items.find((n) => n.id === "n2")?.read).toBe(true);
    // The first page again, from scratch.
    await inbox.loadArchived();
    expect(archivedSeqs(inbox)).toEqual([3, 2]);
  });

  it("archives and unarchives over REST while not connected", async () => {
    const server = new FakeServer();
    for (const seq of [1, 2]) server.publish(note(seq));
    const { service } = await connected({}, server);
    service.disconnect();
    await service.archive(["n1"]);
    await service.archiveAllRead(2);
    await service.unarchive(["n1"]);
    await service.archive([]);
    expect(server.requests.map((r) => [r.url.pathname.split("/").at(-1), r.body])).toEqual([
      ["archive", { ids: ["n1"] }],
      ["archive", { all_read: true, up_to_seq: 2 }],
      ["unarchive", { ids: ["n1"] }],
    ]);
  });

  it("keeps the quiet flag of a notification held back by quiet hours", async () => {
    const server = new FakeServer();
    server.publish(note(1, { quiet: true }));
    const { inbox } = await withInbox(server);
    expect(inbox.getSnapshot().notifications[0]?.quiet).toBe(true);
  });

  it("drops malformed seen, archived and preferences frames", async () => {
    const { server, inbox } = await withInbox();
    const first = inbox.getSnapshot();
    server.last.deliver({ type: "seen", up_to_seq: "7" });
    server.last.deliver({ type: "archived", ids: "n1", unread_count: 0, unseen_count: 0 });
    server.last.deliver({ type: "unarchived", ids: [], unread_count: 0 });
    server.last.deliver({ type: "preferences", preferences: null, critical_types: [] });
    expect(inbox.getSnapshot()).toBe(first);
  });
});

describe("preferences", () => {
  it("loads the preferences with the categories and types to choose from", async () => {
    const server = new FakeServer();
    server.preferences = { muted_categories: ["chat"] };
    const { inbox } = await withInbox(server);
    expect(inbox.getSnapshot().preferences).toBeNull();
    await inbox.loadPreferences();
    expect(server.requests.at(-1)?.url.pathname).toBe("/api/users/alice/preferences");
    expect(inbox.getSnapshot().preferences).toMatchObject({
      preferences: { muted_categories: ["chat"] },
      critical_types: ["system_alert", "payment_failed"],
      categories: ["booking", "payment", "system"],
    });
    expect(inbox.getSnapshot().preferences?.types).toHaveLength(3);
  });

  it("saves with PUT, and every device gets the preferences frame", async () => {
    const server = new FakeServer();
    const { inbox } = await withInbox(server);
    await inbox.loadPreferences();
    const preferences = {
      muted_categories: ["booking"],
      muted_types: [],
      quiet_hours: { start: "22:00", end: "07:00", time_zone: "Europe/Berlin" },
    };
    await inbox.savePreferences(preferences);
    const request = server.requests.at(-1);
    expect([request?.method, request?.url.pathname, request?.body]).toEqual([
      "PUT",
      "/api/users/alice/preferences",
      preferences,
    ]);
    expect(inbox.getSnapshot().preferences?.preferences).toEqual(preferences);
    // Kept: what the GET said could be chosen.
    expect(inbox.getSnapshot().preferences?.categories).toEqual(["booking", "payment", "system"]);
  });

  it("a refusal rejects with the edge's message, shown as the inbox's error", async () => {
    const server = new FakeServer();
    const { inbox } = await withInbox(server);
    const refused = inbox.savePreferences({ muted_types: ["system_alert"] });
    await expect(refused).rejects.toBeInstanceOf(HttpError);
    await expect(refused).rejects.toMatchObject({ status: 422 });
    expect(inbox.getSnapshot().error).toBe("muted_types: system_alert cannot be muted");
    expect(inbox.getSnapshot().preferences).toBeNull();
  });

  it("follows preferences saved on another device", async () => {
    const server = new FakeServer();
    const { inbox } = await withInbox(server);
    await inbox.loadPreferences();
    server.setPreferences({ muted_categories: ["payment"] });
    expect(inbox.getSnapshot().preferences).toMatchObject({
      preferences: { muted_categories: ["payment"] },
      categories: ["booking", "payment", "system"],
    });
  });
});

describe("across tabs", () => {
  function openTab(browser: FakeBrowser, server: FakeServer, id: string): WebSocketService {
    return new WebSocketService(URL_, "alice", "web", {
      ...browser.tab(id),
      WebSocket: server.WebSocket,
      fetch: server.fetch,
      token: tokenSource(),
      random: () => 0.5,
      window: fakeWindow(),
    });
  }

  it("a follower's mark_seen, archive and unarchive are sent by the leader, and every tab follows", async () => {
    const server = new FakeServer();
    for (const seq of [1, 2]) server.publish(note(seq));
    const browser = new FakeBrowser();
    const tabs = ["t0", "t1", "t2"].map((id) => openTab(browser, server, id));
    await flush();
    const inboxes = tabs.map((t) => getInbox(t));
    const follower = inboxes[2] as Inbox;
    await follower.markSeen();
    await follower.archive(["n1"]);
    await flush();
    await follower.unarchive(["n1"]);
    await follower.archiveAllRead();
    await flush();
    expect(server.sockets).toHaveLength(1);
    expect(server.last.sent).toEqual([
      { action: "mark_seen", up_to_seq: 2 },
      { action: "archive", ids: ["n1"] },
      { action: "unarchive", ids: ["n1"] },
      { action: "archive", all_read: true, up_to_seq: 2 },
    ]);
    for (const inbox of inboxes) {
      expect(inbox.getSnapshot()).toMatchObject({ unseenCount: 0, unreadCount: 2 });
      expect(seqs(inbox)).toEqual([2, 1]);
    }
  });

  it("a tab joining late gets the unseen count, the seen cursor and the last preferences", async () => {
    const server = new FakeServer();
    for (const seq of [1, 2, 3]) server.publish(note(seq));
    server.seenSeq = 1;
    const browser = new FakeBrowser();
    openTab(browser, server, "t0");
    await flush();
    server.setPreferences({ muted_categories: ["chat"] });
    server.archive(["n3"]);
    const late = openTab(browser, server, "late");
    const inbox = getInbox(late);
    await flush();
    expect(server.sockets).toHaveLength(1);
    expect(late.seenUpToSeq).toBe(1);
    expect(inbox.getSnapshot()).toMatchObject({
      unreadCount: 2,
      unseenCount: 1,
      preferences: { preferences: { muted_categories: ["chat"] }, critical_types: ["system_alert", "payment_failed"] },
    });
    expect(seqs(inbox)).toEqual([2, 1]);
  });
});
