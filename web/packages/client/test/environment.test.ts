import { describe, expect, expectTypeOf, it } from "vitest";
import type { ChannelConstructor, LocksLike, OnlineTarget, SocketConstructor } from "../src";
import * as client from "../src";

describe("the browser's objects", () => {
  it("fit the shapes the client asks for (checked by tsc)", () => {
    expectTypeOf<typeof WebSocket>().toExtend<SocketConstructor>();
    expectTypeOf<typeof BroadcastChannel>().toExtend<ChannelConstructor>();
    expectTypeOf<LockManager>().toExtend<LocksLike>();
    expectTypeOf<Window>().toExtend<OnlineTarget>();
  });
});

describe("the package", () => {
  it("exports its public API", () => {
    expect(Object.keys(client).sort()).toEqual([
      "HttpError",
      "WebSocketService",
      "backoffDelay",
      "closeAction",
      "createInbox",
      "getInbox",
      "getWebSocketService",
      "renewDelay",
      "retryPlan",
      "tokenExpiry",
    ]);
  });
});
