import { act, cleanup, renderHook } from "@testing-library/react";
import { afterEach, describe, expect, it } from "vitest";
import { useInbox } from "../src/useInbox";
import { FakeInbox, makeItem } from "./fakes";

afterEach(() => {
  cleanup();
});

describe("useInbox", () => {
  it("follows the inbox's state", () => {
    const inbox = new FakeInbox({ status: "connecting", isConnected: false });
    const { result } = renderHook(() => useInbox(inbox));
    expect(result.current.status).toBe("connecting");
    const item = makeItem();
    act(() => {
      inbox.set({ status: "connected", isConnected: true, notifications: [item], unreadCount: 1 });
    });
    expect(result.current.status).toBe("connected");
    expect(result.current.notifications).toEqual([item]);
    expect(result.current.unreadCount).toBe(1);
  });

  it("returns the same object until the state changes", () => {
    const inbox = new FakeInbox();
    const { result, rerender } = renderHook(() => useInbox(inbox));
    const first = result.current;
    rerender();
    expect(result.current).toBe(first);
    act(() => {
      inbox.set({ unreadCount: 2 });
    });
    expect(result.current).not.toBe(first);
  });

  it("delegates its actions to the inbox", async () => {
    const inbox = new FakeInbox();
    const { result } = renderHook(() => useInbox(inbox));
    const { markRead, markAllRead, loadMore, clear } = result.current;
    await markRead(["a", "b"]);
    await markAllRead();
    await loadMore();
    act(() => {
      clear();
    });
    expect(inbox.markRead).toHaveBeenCalledWith(["a", "b"]);
    expect(inbox.markAllRead).toHaveBeenCalledTimes(1);
    expect(inbox.loadMore).toHaveBeenCalledTimes(1);
    expect(inbox.clear).toHaveBeenCalledTimes(1);
  });

  it("moves to another inbox and lets go of the first", () => {
    const one = new FakeInbox({ unreadCount: 1 });
    const two = new FakeInbox({ unreadCount: 2 });
    const { result, rerender, unmount } = renderHook(({ inbox }) => useInbox(inbox), {
      initialProps: { inbox: one },
    });
    rerender({ inbox: two });
    expect(result.current.unreadCount).toBe(2);
    expect(one.listenerCount()).toBe(0);
    unmount();
    expect(two.listenerCount()).toBe(0);
  });
});
