// Type-level tests of the public API: checked by `tsc --noEmit` (part of
// `npm test`); at run time they only make sure the file loads.

import { describe, expectTypeOf, it } from "vitest";
import {
  Client,
  DisconnectedError,
  RpcError,
  ServerApi,
  Subscription,
  TimeoutError,
  type CallEntry,
  type CallOutcomes,
  type ClientEvents,
  type HistoryResult,
  type Publication,
  type State,
  type Stats,
  type SubscribeResult,
  type Subscribed,
  type Welcome,
} from "../../src/index.js";

// Never called: the body exists for the type checker.
function checks(client: Client, api: ServerApi): void {
  {
    // The built-in methods, typed from the OpenRPC document.
    expectTypeOf(client.call("rpc.ping")).toEqualTypeOf<Promise<"pong">>();
    expectTypeOf(client.call("rpc.subscribe", { topics: [{ topic: "a" }] })).toEqualTypeOf<Promise<SubscribeResult>>();
    expectTypeOf(client.call<number>("demo.sleep", [5])).toEqualTypeOf<Promise<number>>();
    expectTypeOf(client.call("anything")).toEqualTypeOf<Promise<unknown>>();
    // @ts-expect-error rpc.subscribe needs its topics
    void client.call("rpc.subscribe", {});
    expectTypeOf(client.history("a", { since: { offset: 1, epoch: "e" }, limit: 5 })).toEqualTypeOf<Promise<HistoryResult>>();
    // @ts-expect-error a position needs its epoch
    void client.history("a", { since: { offset: 1 } });
    expectTypeOf(api.call("history", { topic: "a" })).toEqualTypeOf<Promise<HistoryResult>>();
    // Progress: any JSON value, to a callback of the call.
    void client.call("demo.sleep", { ms: 350 }, { onProgress: (p) => expectTypeOf(p).toEqualTypeOf<unknown>() });
    // @ts-expect-error onProgress takes a function
    void client.call("demo.sleep", { ms: 350 }, { onProgress: 1 });
  }

  {
    // Handlers: their context reports progress and carries the cancellation signal.
    client.handle("job.run", (_params, context) => {
      expectTypeOf(context.progress).toEqualTypeOf<(progress: unknown) => boolean>();
      expectTypeOf(context.signal).toEqualTypeOf<AbortSignal>();
      return null;
    });
  }

  {
    // The server API, typed from its OpenRPC document.
    expectTypeOf(api.call("stats")).toEqualTypeOf<Promise<Stats>>();
    expectTypeOf(api.call("call", { target: { user: "a" }, method: "m" })).toEqualTypeOf<Promise<CallEntry[] | CallOutcomes>>();
    // @ts-expect-error notify needs a target
    void api.call("notify", { method: "m" });
  }

  {
    // Events, subscriptions and errors.
    expectTypeOf(client.state).toEqualTypeOf<State>();
    expectTypeOf<ClientEvents["connected"]>().toEqualTypeOf<Welcome>();
    client.events.on("state", (e) => expectTypeOf(e.state).toEqualTypeOf<State>());
    // @ts-expect-error no such event
    client.events.on("nope-not-an-event", () => {});
    const sub = client.subscribe("news");
    expectTypeOf(sub).toEqualTypeOf<Subscription>();
    expectTypeOf(sub).toMatchTypeOf<AsyncIterable<Publication>>();
    expectTypeOf(sub.ready()).toEqualTypeOf<Promise<Subscribed>>();
    expectTypeOf<RpcError["code"]>().toEqualTypeOf<number>();
    expectTypeOf<TimeoutError>().toMatchTypeOf<Error>();
    expectTypeOf<DisconnectedError["code"]>().toEqualTypeOf<number | undefined>();
  }
}

describe("public types", () => {
  it("are checked by tsc", () => {
    expectTypeOf(checks).toBeFunction();
  });
});
