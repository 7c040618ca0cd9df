import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { getInbox, WebSocketService } from "../src";
import { FakeBrowser, fakeWindow } from "./browser";
import { FakeServer, note, tokenSource } from "./edge";
import { advance, flush, record, URL_, type Recorded } from "./harness";

beforeEach(() => {
  vi.useFakeTimers();
  vi.setSystemTime(new Date("2026-01-15T10:00:00Z"));
});
afterEach(() => {
  vi.useRealTimers();
});


interface Tab {
  id: string;
  service: WebSocketService;
  events: Recorded;
}

function openTab(browser: FakeBrowser, server: FakeServer, id: string): Tab {
  // No shareAcrossTabs option: sharing is on by default when locks and channels exist.
  const service = new WebSocketService(URL_, "alice", "web", {
    ...browser.tab(id),
    WebSocket: server.WebSocket,
    fetch: server.fetch,
    token: tokenSource(),
    random: () => 0.5,
    window: fakeWindow(),
  });
  return { id, service, events: record(service) };
}

async function openTabs(count: number, server = new FakeServer(), browser = new FakeBrowser()) {
  const tabs = Array.from({ length: count }, (_, i) => openTab(browser, server, `t${i}`));
  await flush();
  return { server, browser, tabs };
}

const seqs = (tab: Tab): number[] => tab.events.notifications.map((n) => n.seq);

describe("one socket per browser", () => {
  it("ten tabs open one socket, and every tab sees every event once", async () => {
    const server = new FakeServer();
    server.publish(note(1));
    const { tabs, browser } = await openTabs(10, server);
    expect(server.sockets).toHaveLength(1);
    expect(browser.holder()).toBe("t0");
    server.publish(note(2));
    server.publish(note(3));
    server.markRead(["n1"]);
    await flush();
    for (const tab of tabs) {
      expect(tab.service.status).toBe("connected");
      expect(seqs(tab)).toEqual([1, 2, 3]);
      expect(tab.service.unreadCount).toBe(2);
      expect(tab.service.cursor).toBe(3);
      expect(tab.events.reads).toEqual([{ type: "read", ids: ["n1"], unread_count: 2, unseen_count: 2 }]);
    }
  });

  it("followers' actions are sent by the leader", async () => {
    const { server, tabs } = await openTabs(3);
    server.publish(note(6));
    await flush();
    const follower = tabs[2]?.service;
    if (!follower) throw new Error("no tab");
    follower.subscribe("tour_1");
    follower.send("message", { room: "tour_1", data: { t: 1 } });
    await follower.markRead(["n6"]);
    await follower.markAllRead();
    follower.unsubscribe("tour_1");
    await flush();
    expect(server.sockets).toHaveLength(1);
    expect(server.last.sent).toEqual([
      { action: "subscribe", room: "tour_1", since: 6 },
      { action: "message", room: "tour_1", data: { t: 1 } },
      { action: "mark_read", ids: ["n6"] },
      { action: "mark_all_read", up_to_seq: 6 },
      { action: "unsubscribe", room: "tour_1" },
    ]);
    for (const tab of tabs) {
      expect(tab.service.unreadCount).toBe(0);
      expect(tab.events.reads).toHaveLength(2);
    }
  });

  it("a follower's room cursor follows the leader's frames", async () => {
    const { server, tabs } = await openTabs(2);
    tabs[1]?.service.subscribe("r");
    await flush();
    server.publish(note(4, { room: "r" }));
    await flush();
    expect(tabs[0]?.service.roomCursor("r")).toBe(4);
    expect(tabs[1]?.service.roomCursor("r")).toBe(4);
    expect(seqs(tabs[1] as Tab)).toEqual([4]);
  });

  it("a tab joining late gets the leader's state: recent notifications, counts, cursors", async () => {
    const server = new FakeServer();
    server.publish(note(1));
    server.publish(note(2));
    const browser = new FakeBrowser();
    const { tabs } = await openTabs(1, server, browser);
    server.publish(note(3));
    server.markRead(["n2"]);
    const late = openTab(browser, server, "late");
    const replays: number[] = [];
    late.service.on("replay_complete", (d) => replays.push(d.unread_count));
    const inbox = getInbox(late.service);
    await flush();
    expect(server.sockets).toHaveLength(1);
    expect(seqs(late)).toEqual([1, 2, 3]);
    expect(late.service.unreadCount).toBe(2);
    expect(late.service.cursor).toBe(3);
    expect(late.service.status).toBe("connected");
    expect(replays).toEqual([2]);
    expect(inbox.getSnapshot().notifications.map((n) => [n.seq, n.read])).toEqual([
      [3, false],
      [2, true],
      [1, false],
    ]);
    // The first tab saw nothing twice.
    expect(seqs(tabs[0] as Tab)).toEqual([1, 2, 3]);
  });

  it("holds at most 500 recent notifications for joining tabs, and says older ones exist", async () => {
    const browser = new FakeBrowser();
    const server = new FakeServer();
    const { tabs } = await openTabs(1, server, browser);
    for (let seq = 1; seq <= 501; seq++) server.publish(note(seq));
    const leader = (tabs[0] as Tab).service;
    expect(leader.recent).toHaveLength(500);
    expect(leader.recent[0]?.seq).toBe(2);
    expect(leader.truncated).toBe(true);
    const late = openTab(browser, server, "late");
    const inbox = getInbox(late.service);
    await flush();
    expect(inbox.getSnapshot().notifications).toHaveLength(500);
    expect(inbox.getSnapshot().hasMore).toBe(true);
  });

  it("when a follower leaves, nothing changes for the others", async () => {
    const { server, tabs } = await openTabs(3);
    tabs[1]?.service.disconnect();
    await advance(5000);
    server.publish(note(1));
    await flush();
    expect(server.sockets).toHaveLength(1);
    expect(seqs(tabs[2] as Tab)).toEqual([1]);
    expect(seqs(tabs[1] as Tab)).toEqual([]);
  });
});

describe("the leader going away", () => {
  async function scenario(end: (leader: Tab, browser: FakeBrowser) => void) {
    const server = new FakeServer();
    server.overlap = 2; // the new leader's replay repeats frames the tabs already have
    const { tabs, browser } = await openTabs(4, server);
    tabs[3]?.service.subscribe("tour_1");
    await flush();
    server.publish(note(1));
    server.publish(note(2, { room: "tour_1" }));
    server.publish(note(3));
    await flush();
    const [leader, ...others] = tabs as [Tab, ...Tab[]];
    end(leader, browser);
    // Published while no tab holds a socket.
    server.publish(note(4));
    server.publish(note(5, { room: "tour_1" }));
    await advance(2000);
    return { server, browser, leader, others };
  }

  it("a crashed leader: the next tab takes over within 2 s, with since, and nothing is missed or repeated", async () => {
    const { server, browser, others } = await scenario((leader, browser) => {
      browser.crash(leader.id);
      leader.service.disconnect();
    });
    expect(browser.holder()).toBe("t1");
    expect(server.sockets).toHaveLength(2);
    expect(server.open).toHaveLength(1);
    expect(server.last.since).toBe(3);
    expect(server.last.sent).toContainEqual({ action: "subscribe", room: "tour_1", since: 2 });
    for (const tab of others) {
      expect(tab.service.status).toBe("connected");
      expect([...seqs(tab)].sort((a, b) => a - b)).toEqual([1, 2, 3, 4, 5]);
      expect(tab.service.cursor).toBe(5); // replay_complete.last_seq: the high-water mark
    }
    server.publish(note(6));
    await flush();
    for (const tab of others) expect(seqs(tab).at(-1)).toBe(6);
  });

  it("a leader that disconnects hands over the same way", async () => {
    const { server, browser, others } = await scenario((leader) => {
      leader.service.disconnect();
    });
    expect(browser.holder()).toBe("t1");
    expect(server.open).toHaveLength(1);
    expect(server.last.since).toBe(3);
    for (const tab of others) {
      expect([...seqs(tab)].sort((a, b) => a - b)).toEqual([1, 2, 3, 4, 5]);
      expect(tab.events.statuses.filter((s) => s === "connected").length).toBeGreaterThanOrEqual(2);
    }
  });

  it("a leader that disconnects tells the others to wait for the next one", async () => {
    const { tabs, browser } = await openTabs(3);
    browser.pauseLocks();
    tabs[0]?.service.disconnect();
    await flush();
    expect(tabs[1]?.service.status).toBe("reconnecting");
    expect(tabs[2]?.service.status).toBe("reconnecting");
    browser.resumeLocks();
    await flush();
    expect(tabs[2]?.service.status).toBe("connected");
  });

  it("takes over again and again: one socket at a time, every event once", async () => {
    const server = new FakeServer();
    const { tabs, browser } = await openTabs(5, server);
    for (let i = 0; i < 4; i++) {
      server.publish(note(i * 2 + 1));
      await flush();
      const leader = tabs[i] as Tab;
      browser.crash(leader.id);
      leader.service.disconnect();
      server.publish(note(i * 2 + 2));
      await advance(2000);
      expect(server.open).toHaveLength(1);
    }
    const last = tabs[4] as Tab;
    expect(seqs(last)).toEqual([1, 2, 3, 4, 5, 6, 7, 8]);
  });

  it("a room subscribed while no tab leads is subscribed by the next leader", async () => {
    const { server, tabs, browser } = await openTabs(3);
    const [leader, next, other] = tabs as [Tab, Tab, Tab];
    browser.pauseLocks();
    browser.crash(leader.id);
    leader.service.disconnect();
    other.service.subscribe("late_room");
    await flush();
    expect(server.open).toHaveLength(0);
    browser.resumeLocks();
    await flush();
    expect(browser.holder()).toBe(next.id);
    expect(server.last.sent).toContainEqual({ action: "subscribe", room: "late_room", since: 0 });
    expect(next.service.roomCursor("late_room")).toBe(0);
  });

  it("auth_failed in the leader shows in every tab; connect() in a follower starts the leader again", async () => {
    const server = new FakeServer();
    const { tabs } = await openTabs(3, server);
    server.last.drop(1008);
    await flush();
    server.last.drop(1008);
    await flush();
    for (const tab of tabs) expect(tab.service.status).toBe("auth_failed");
    for (const tab of tabs) expect(tab.events.errors).toHaveLength(1);
    tabs[2]?.service.connect();
    await flush();
    expect(server.sockets).toHaveLength(3);
    for (const tab of tabs) expect(tab.service.status).toBe("connected");
  });
});
