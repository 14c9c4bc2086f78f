// Type-level tests of a client typed with a generated contract (contract.ts,
// generated from fixture-openrpc.json): checked by `tsc --noEmit`, never run.
// Every `@ts-expect-error` line must really be an error: tsc fails when one is not.

import { expectTypeOf } from "vitest";
import { Client, type PublishResult } from "../../src/index.js";
import type { Contract, Note } from "./contract.js";

export function typedUsage(client: Client<Contract>): void {
  // Server methods: names, params and results from the contract.
  expectTypeOf(client.call("add", [1, 2])).toEqualTypeOf<Promise<number>>();
  expectTypeOf(client.call("greet", ["ada"])).toEqualTypeOf<Promise<string>>();
  expectTypeOf(client.call("greet", ["ada", true], { timeout: 5 })).toEqualTypeOf<Promise<string>>();
  expectTypeOf(client.call("notes.create", { title: "t", body: null })).toEqualTypeOf<Promise<Note>>();
  expectTypeOf(client.call("notes.list")).toEqualTypeOf<Promise<Note[]>>();
  expectTypeOf(client.call("notes.list", undefined, { timeout: 1 })).toEqualTypeOf<Promise<Note[]>>();
  // An untyped method: any structured params, or none; an unknown result.
  expectTypeOf(client.call("echo", { any: "thing" })).toEqualTypeOf<Promise<unknown>>();
  expectTypeOf(client.call("echo")).toEqualTypeOf<Promise<unknown>>();
  // The built-in methods stay typed.
  expectTypeOf(client.call("rpc.ping")).toEqualTypeOf<Promise<"pong">>();
  expectTypeOf(client.publish("news", 1)).toEqualTypeOf<Promise<PublishResult>>();
  void client.notify("add", [1, 2]);
  void client.notify("notes.list");

  // Client methods: the handler's params and result from the contract.
  client.handle("ui.confirm", ([question], context) => {
    expectTypeOf(question).toEqualTypeOf<string>();
    expectTypeOf(context.signal).toEqualTypeOf<AbortSignal>();
    return question.length > 0;
  });
  client.handle("ui.confirm", async () => true);

  // Pushes: the listener's params from the contract.
  client.on("chat.message", ({ from, text }) => expectTypeOf(`${from}${text}`).toEqualTypeOf<string>());
  client.on("notes.changed", ({ note }) => expectTypeOf(note.status).toEqualTypeOf<"draft" | "published">());
}

export function typedMistakes(client: Client<Contract>): void {
  // @ts-expect-error an unknown method name
  void client.call("notes.delete", { id: "1" });
  // @ts-expect-error wrong params type
  void client.call("add", ["1", 2]);
  // @ts-expect-error a missing required param
  void client.call("notes.create", { body: "no title" });
  // @ts-expect-error params are required
  void client.call("add");
  // @ts-expect-error an extra tuple element
  void client.call("greet", ["ada", true, 3]);
  // @ts-expect-error by-name params given by position
  void client.call("notes.create", ["t"]);
  async (): Promise<void> => {
    // @ts-expect-error the wrong result type, assigned from the promise
    const sum: string = await client.call("add", [1, 2]);
    void sum;
  };
  // @ts-expect-error a handler returning the wrong type
  client.handle("ui.confirm", () => "yes");
  // @ts-expect-error a handler returning a promise of the wrong type
  client.handle("ui.confirm", async () => 1);
  // @ts-expect-error a handler for a method the client does not serve
  client.handle("add", () => 3);
  // @ts-expect-error on for an unknown push
  client.on("chat.dm", () => {});
  // @ts-expect-error a listener expecting other params
  client.on("chat.message", (params: { note: Note }) => void params);
  // @ts-expect-error the untyped call<R> form is not available with a contract
  void client.call<number>("add", [1, 2]);
  // @ts-expect-error nor for a name the contract does not list
  void client.call<number>("anything");
  // @ts-expect-error notify with wrong params
  void client.notify("add", [1]);
  // @ts-expect-error notify of an unknown method
  void client.notify("nope");
}

export function untypedUsage(client: Client): void {
  // Without a contract: any name, params of any structure, results as the caller says.
  expectTypeOf(client.call<number>("add", [1, 2])).toEqualTypeOf<Promise<number>>();
  expectTypeOf(client.call("anything")).toEqualTypeOf<Promise<unknown>>();
  client.handle("ui.confirm", (params) => expectTypeOf(params).toEqualTypeOf<unknown[] | { [key: string]: unknown } | undefined>());
  client.on("chat.message", (params) => expectTypeOf(params).toEqualTypeOf<unknown[] | { [key: string]: unknown } | undefined>());
  void client.notify("anything", { a: 1 });
}
