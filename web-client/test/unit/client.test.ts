// The client against a scripted server (FakeWebSocket) on fake time: every
// delay is exact, nothing sleeps.

import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { Client, type ClientOptions } from "../../src/client.js";
import { DisconnectedError, RpcError, TimeoutError } from "../../src/errors.js";
import type { State } from "../../src/state.js";
import { FakeWebSocket } from "../helpers/fake-ws.js";

function client(options: ClientOptions = {}): Client {
  return new Client("ws://gateway/ws", { WebSocket: FakeWebSocket, random: () => 0.5, heartbeat: 0, ...options });
}

function states(c: Client): State[] {
  const seen: State[] = [c.state];
  c.events.on("state", ({ state }) => seen.push(state));
  return seen;
}

/** Lets promise callbacks run (fake timers do not advance). */
const tick = () => vi.advanceTimersByTimeAsync(0);

beforeEach(() => {
  vi.useFakeTimers();
  FakeWebSocket.reset();
});
afterEach(() => {
  vi.useRealTimers();
});

describe("connecting", () => {
  it("offers the subprotocol and the token, and is connected at rpc.welcome", async () => {
    const c = client({ token: "abc.def.ghi", autoConnect: false });
    const seen = states(c);
    const connected = vi.fn();
    c.events.on("connected", connected);
    c.connect();
    const ws = FakeWebSocket.last;
    expect(ws.url).toBe("ws://gateway/ws");
    expect(ws.protocols).toEqual(["switchboard.v1", "bearer.abc.def.ghi"]);
    ws.open();
    expect(c.state).toBe("connecting");
    ws.welcome("alice", "s1");
    expect(seen).toEqual(["disconnected", "connecting", "connected"]);
    expect(connected).toHaveBeenCalledWith(expect.objectContaining({ session: "s1", user: "alice" }));
    expect(c.session?.user).toBe("alice");
  });

  it("can carry the token in the query string instead", () => {
    client({ token: "t o", tokenIn: "query" });
    expect(FakeWebSocket.last.url).toBe("ws://gateway/ws?token=t%20o");
    expect(FakeWebSocket.last.protocols).toEqual(["switchboard.v1"]);
  });

  it("subscribes first — personal topic included — then sends what waited", async () => {
    const c = client();
    const early = c.call("echo", ["hi"]);
    const ws = FakeWebSocket.last;
    ws.welcome("alice");
    expect(ws.frames.map((f) => f.method)).toEqual(["rpc.subscribe", "echo"]);
    expect(ws.frames[0]?.params).toEqual({ topics: [{ topic: "user:alice" }] });
    ws.answer("echo", ["hi"]);
    await expect(early).resolves.toEqual(["hi"]);
    expect(c.personal?.topic).toBe("user:alice");
  });

  it("gives up on a socket that never opens, after connectTimeout", async () => {
    const c = client({ connectTimeout: 1000 });
    await vi.advanceTimersByTimeAsync(999);
    expect(c.state).toBe("connecting");
    await vi.advanceTimersByTimeAsync(1);
    expect(c.state).toBe("waiting");
    expect(FakeWebSocket.last.closedWith?.code).toBe(4001);
  });

  it("ready() resolves at the welcome and rejects when the client fails", async () => {
    const c = client();
    const ready = c.ready();
    FakeWebSocket.last.welcome("bob");
    await expect(ready).resolves.toMatchObject({ user: "bob" });
    FakeWebSocket.last.drop(4500, "unauthorized");
    await expect(c.ready()).rejects.toBeInstanceOf(DisconnectedError);
  });
});

describe("calls", () => {
  it("resolve with results and reject with RpcError", async () => {
    const c = client({ personalTopic: false });
    const ws = FakeWebSocket.last;
    ws.welcome();
    const ok = c.call("echo", [1]);
    const bad = c.call("nope");
    const [a, b] = ws.frames;
    expect(a).toEqual({ jsonrpc: "2.0", id: 1, method: "echo", params: [1] });
    expect(b).toEqual({ jsonrpc: "2.0", id: 2, method: "nope" });
    ws.push({ jsonrpc: "2.0", id: 2, error: { code: -32601, message: "Method not found" } });
    ws.push({ jsonrpc: "2.0", id: 1, result: [1] });
    await expect(ok).resolves.toEqual([1]);
    const error = await bad.catch((e: unknown) => e);
    expect(error).toBeInstanceOf(RpcError);
    expect(error).toMatchObject({ code: -32601 });
  });

  it("history() sends rpc.history with the position and limit given, and resolves with its result", async () => {
    const c = client({ personalTopic: false });
    const ws = FakeWebSocket.last;
    ws.welcome();
    const latest = c.history("chat:1");
    const page = c.history("chat:1", { since: { offset: 3, epoch: "e" }, limit: 2 });
    expect(ws.frames).toEqual([
      { jsonrpc: "2.0", id: 1, method: "rpc.history", params: { topic: "chat:1" } },
      { jsonrpc: "2.0", id: 2, method: "rpc.history", params: { topic: "chat:1", since: { offset: 3, epoch: "e" }, limit: 2 } },
    ]);
    const result = { publications: [{ offset: 4, data: { n: 4 } }], offset: 9, epoch: "e", recovered: true };
    ws.answer("rpc.history", result);
    await expect(page).resolves.toEqual(result);
    ws.push({ jsonrpc: "2.0", id: 1, error: { code: -32602, message: "Invalid params", data: { reason: "no history" } } });
    await expect(latest).rejects.toMatchObject({ code: -32602, data: { reason: "no history" } });
  });

  it("time out with TimeoutError and tell the server with rpc.cancel", async () => {
    const c = client({ personalTopic: false, timeout: 5000 });
    const ws = FakeWebSocket.last;
    ws.welcome();
    const call = c.call("demo.sleep", [60000]);
    const rejected = expect(call).rejects.toBeInstanceOf(TimeoutError);
    await vi.advanceTimersByTimeAsync(5000);
    await rejected;
    expect(ws.frames.at(-1)).toEqual({ jsonrpc: "2.0", method: "rpc.cancel", params: { id: 1 } });
  });

  it("abort with the signal: rejected with its reason, cancelled on the server", async () => {
    const c = client({ personalTopic: false });
    const ws = FakeWebSocket.last;
    ws.welcome();
    const controller = new AbortController();
    const call = c.call("slow", [], { signal: controller.signal });
    controller.abort();
    await expect(call).rejects.toMatchObject({ name: "AbortError" });
    expect(ws.frames.at(-1)).toEqual({ jsonrpc: "2.0", method: "rpc.cancel", params: { id: 1 } });
  });

  it("hand their progress to onProgress before they settle, and none after", async () => {
    const c = client({ personalTopic: false });
    const ws = FakeWebSocket.last;
    ws.welcome();
    const seen: unknown[] = [];
    const call = c.call("demo.sleep", { ms: 350 }, { onProgress: (p) => seen.push(p) }).then((result) => {
      seen.push({ result });
      return result;
    });
    const plain = c.call("demo.sleep", { ms: 350 });
    ws.push({ jsonrpc: "2.0", method: "rpc.progress", params: { id: 1, progress: { elapsed_ms: 100 } } });
    ws.push({ jsonrpc: "2.0", method: "rpc.progress", params: { id: 2, progress: "nobody asked" } });
    ws.push({ jsonrpc: "2.0", method: "rpc.progress", params: { id: 1, progress: 2 } });
    expect(seen).toEqual([{ elapsed_ms: 100 }, 2]);
    ws.push({ jsonrpc: "2.0", id: 1, result: 350 });
    // A report after the answer (a misbehaving peer) reaches nobody.
    ws.push({ jsonrpc: "2.0", method: "rpc.progress", params: { id: 1, progress: "late" } });
    await expect(call).resolves.toBe(350);
    expect(seen).toEqual([{ elapsed_ms: 100 }, 2, { result: 350 }]);
    ws.push({ jsonrpc: "2.0", id: 2, result: 350 });
    await expect(plain).resolves.toBe(350);
  });

  it("report an onProgress that throws as an error event, and go on", async () => {
    const c = client({ personalTopic: false });
    const errors: Error[] = [];
    c.events.on("error", (e) => errors.push(e));
    const ws = FakeWebSocket.last;
    ws.welcome();
    const call = c.call("job", [], {
      onProgress: () => {
        throw new Error("listener broke");
      },
    });
    ws.push({ jsonrpc: "2.0", method: "rpc.progress", params: { id: 1, progress: 1 } });
    ws.push({ jsonrpc: "2.0", id: 1, result: "done" });
    await expect(call).resolves.toBe("done");
    expect(errors.map((e) => e.message)).toEqual(["listener broke"]);
  });

  it("sent calls reject with DisconnectedError when the connection drops; queued ones wait for the next", async () => {
    const c = client({ personalTopic: false });
    let ws = FakeWebSocket.last;
    ws.welcome();
    const sent = c.call("echo", [1]);
    ws.drop(1006);
    const error = await sent.catch((e: unknown) => e);
    expect(error).toBeInstanceOf(DisconnectedError);
    expect(error).toMatchObject({ code: 1006 });
    const queued = c.call("echo", [2]);
    await vi.advanceTimersByTimeAsync(750);
    ws = FakeWebSocket.last;
    expect(FakeWebSocket.instances).toHaveLength(2);
    ws.welcome();
    ws.answer("echo", [2]);
    await expect(queued).resolves.toEqual([2]);
  });

  it("notify sends a notification once connected", async () => {
    const c = client({ personalTopic: false });
    const sent = c.notify("hello", { a: 1 });
    FakeWebSocket.last.welcome();
    await expect(sent).resolves.toBeUndefined();
    expect(FakeWebSocket.last.frames).toEqual([{ jsonrpc: "2.0", method: "hello", params: { a: 1 } }]);
  });

  it("a closed client rejects calls at once", async () => {
    const c = client({ autoConnect: false });
    await expect(c.call("echo")).rejects.toBeInstanceOf(DisconnectedError);
  });
});

describe("reconnecting", () => {
  it("waits full-jitter backoff between attempts and starts over after a welcome", async () => {
    const c = client({ personalTopic: false, minReconnectDelay: 500, maxReconnectDelay: 4000 });
    const delays: Array<number | undefined> = [];
    c.events.on("disconnected", (d) => delays.push(d.delay));
    FakeWebSocket.last.drop(1006);
    for (let i = 0; i < 5; i++) {
      await vi.advanceTimersByTimeAsync(delays.at(-1) ?? 0);
      FakeWebSocket.last.drop(1006);
    }
    // random() = 0.5: half-way from 500 to 1000, 2000, 4000, then capped at 4000.
    expect(delays).toEqual([750, 1250, 2250, 2250, 2250, 2250]);
    await vi.advanceTimersByTimeAsync(2250);
    FakeWebSocket.last.welcome();
    FakeWebSocket.last.drop(4000, "slow consumer");
    expect(delays.at(-1)).toBe(750);
  });

  it("does not open a socket before the delay is over", async () => {
    client({ personalTopic: false });
    FakeWebSocket.last.drop(1006);
    await vi.advanceTimersByTimeAsync(749);
    expect(FakeWebSocket.instances).toHaveLength(1);
    await vi.advanceTimersByTimeAsync(1);
    expect(FakeWebSocket.instances).toHaveLength(2);
  });

  it("reconnects at once (with a little jitter) on 1012", async () => {
    const c = client({ personalTopic: false, minReconnectDelay: 500 });
    FakeWebSocket.last.welcome();
    FakeWebSocket.last.drop(1006);
    await vi.advanceTimersByTimeAsync(750);
    FakeWebSocket.last.drop(1006); // the next attempt would wait 1250
    const d = vi.fn();
    c.events.on("disconnected", d);
    await vi.advanceTimersByTimeAsync(1250);
    FakeWebSocket.last.drop(1012, "node draining, reconnect");
    expect(d).toHaveBeenLastCalledWith(expect.objectContaining({ code: 1012, reconnect: true, delay: 250 }));
  });

  it("stops on a terminal close code, rejecting what waits; connect() starts again", async () => {
    const c = client({ personalTopic: false });
    const seen = states(c);
    FakeWebSocket.last.welcome();
    FakeWebSocket.last.drop(4500, "unauthorized");
    expect(c.state).toBe("failed");
    await expect(c.call("echo")).rejects.toBeInstanceOf(DisconnectedError);
    await vi.advanceTimersByTimeAsync(60_000);
    expect(FakeWebSocket.instances).toHaveLength(1);
    c.connect();
    expect(FakeWebSocket.instances).toHaveLength(2);
    expect(seen).toEqual(["connecting", "connected", "failed", "connecting"]);
  });

  it("stops when rpc.disconnect said not to reconnect", () => {
    const c = client({ personalTopic: false });
    const ws = FakeWebSocket.last;
    ws.welcome();
    ws.push({ jsonrpc: "2.0", method: "rpc.disconnect", params: { code: 4003, reason: "bye", reconnect: false } });
    ws.drop(4003, "bye");
    expect(c.state).toBe("failed");
  });

  it("close() stops everything and rejects what waits", async () => {
    const c = client({ personalTopic: false });
    const queued = c.call("echo");
    c.close();
    await expect(queued).rejects.toBeInstanceOf(DisconnectedError);
    expect(c.state).toBe("disconnected");
    expect(FakeWebSocket.last.closedWith?.code).toBe(1000);
    await vi.advanceTimersByTimeAsync(60_000);
    expect(FakeWebSocket.instances).toHaveLength(1);
    expect(vi.getTimerCount()).toBe(0);
  });

  it("ignores a late close event from an old socket", async () => {
    const c = client({ personalTopic: false });
    const old = FakeWebSocket.last;
    old.welcome();
    old.drop(1006);
    await vi.advanceTimersByTimeAsync(750);
    FakeWebSocket.last.welcome();
    old.onclose?.({ code: 1006, reason: "" }); // detached: a no-op
    old.push({ jsonrpc: "2.0", method: "late" });
    expect(c.state).toBe("connected");
  });

  it("asks getToken again for every attempt", async () => {
    let n = 0;
    const getToken = vi.fn(async () => `token-${++n}`);
    client({ getToken, personalTopic: false });
    await tick();
    expect(FakeWebSocket.last.protocols).toEqual(["switchboard.v1", "bearer.token-1"]);
    FakeWebSocket.last.welcome();
    FakeWebSocket.last.drop(4002, "token expired");
    await vi.advanceTimersByTimeAsync(750);
    expect(getToken).toHaveBeenCalledTimes(2);
    expect(FakeWebSocket.last.protocols).toEqual(["switchboard.v1", "bearer.token-2"]);
  });

  it("a failing getToken is retried with backoff", async () => {
    let fail = true;
    const c = client({
      getToken: () => {
        if (fail) throw new Error("auth server down");
        return "t";
      },
      personalTopic: false,
    });
    const errors: Error[] = [];
    c.events.on("error", (e) => errors.push(e));
    await tick();
    expect(c.state).toBe("waiting");
    expect(FakeWebSocket.instances).toHaveLength(0);
    fail = false;
    await vi.advanceTimersByTimeAsync(750);
    expect(FakeWebSocket.instances).toHaveLength(1);
  });
});

describe("tokens and liveness", () => {
  it("refreshes the token when the gateway warns it expires", async () => {
    let n = 0;
    client({ getToken: () => `t${++n}`, personalTopic: false });
    await tick();
    const ws = FakeWebSocket.last;
    ws.welcome();
    ws.push({ jsonrpc: "2.0", method: "rpc.expiring", params: { expires_at_ms: 1 } });
    await tick();
    expect(ws.requests("rpc.refresh").map((r) => r.params)).toEqual([{ token: "t2" }]);
    ws.answer("rpc.refresh", { expires_at_ms: 2 });
    await tick();
    expect(FakeWebSocket.instances).toHaveLength(1);
  });

  it("reconnects with a fresh token when the refresh is refused", async () => {
    const c = client({ getToken: () => "t", personalTopic: false });
    await tick();
    const ws = FakeWebSocket.last;
    ws.welcome();
    ws.push({ jsonrpc: "2.0", method: "rpc.expiring", params: {} });
    await tick();
    const request = ws.requests("rpc.refresh")[0];
    ws.push({ jsonrpc: "2.0", id: request?.id, error: { code: -32008, message: "Token expired" } });
    await tick();
    expect(c.state).toBe("waiting");
    expect(ws.closedWith?.code).toBe(4002);
  });

  it("pings after silence and reconnects when the ping gets no answer", async () => {
    const c = client({ personalTopic: false, heartbeat: 1000 });
    const ws = FakeWebSocket.last;
    ws.welcome();
    await vi.advanceTimersByTimeAsync(1000);
    expect(ws.requests("rpc.ping")).toHaveLength(1);
    ws.answer("rpc.ping", "pong");
    await vi.advanceTimersByTimeAsync(1000);
    expect(ws.requests("rpc.ping")).toHaveLength(2);
    await vi.advanceTimersByTimeAsync(1000);
    expect(c.state).toBe("waiting");
    expect(ws.closedWith?.code).toBe(4001);
  });

  it("does not ping a chatty connection", async () => {
    client({ personalTopic: false, heartbeat: 1000 });
    const ws = FakeWebSocket.last;
    ws.welcome();
    for (let i = 0; i < 10; i++) {
      await vi.advanceTimersByTimeAsync(500);
      ws.push({ jsonrpc: "2.0", method: "tick" });
    }
    expect(ws.requests("rpc.ping")).toHaveLength(0);
  });
});

describe("server → client", () => {
  it("routes notifications to on() handlers", () => {
    const c = client({ personalTopic: false });
    const got = vi.fn();
    const off = c.on("chat.message", got);
    FakeWebSocket.last.welcome();
    FakeWebSocket.last.push({ jsonrpc: "2.0", method: "chat.message", params: { from: "bob", text: "hi" } });
    off();
    FakeWebSocket.last.push({ jsonrpc: "2.0", method: "chat.message", params: { from: "bob", text: "again" } });
    expect(got).toHaveBeenCalledTimes(1);
    expect(got).toHaveBeenCalledWith({ from: "bob", text: "hi" });
  });

  it("answers calls with the handler's value, its RpcError, -32603 or -32601", async () => {
    const c = client({ personalTopic: false });
    c.handle("add", (params) => (params as number[]).reduce((a, b) => a + b, 0));
    c.handle("later", async () => ({ ok: true }));
    c.handle("refuse", () => {
      throw new RpcError(4001, "no thanks", { why: "busy" });
    });
    c.handle("crash", () => {
      throw new Error("boom");
    });
    const ws = FakeWebSocket.last;
    ws.welcome();
    ws.push({ jsonrpc: "2.0", id: 1, method: "add", params: [1, 2, 3] });
    ws.push({ jsonrpc: "2.0", id: 2, method: "later" });
    ws.push({ jsonrpc: "2.0", id: 3, method: "refuse" });
    ws.push({ jsonrpc: "2.0", id: 4, method: "crash" });
    ws.push({ jsonrpc: "2.0", id: 5, method: "missing" });
    await tick();
    expect(ws.frames.sort((a, b) => (a.id ?? 0) - (b.id ?? 0))).toEqual([
      { jsonrpc: "2.0", id: 1, result: 6 },
      { jsonrpc: "2.0", id: 2, result: { ok: true } },
      { jsonrpc: "2.0", id: 3, error: { code: 4001, message: "no thanks", data: { why: "busy" } } },
      { jsonrpc: "2.0", id: 4, error: { code: -32603, message: "Internal error", data: { reason: "boom" } } },
      { jsonrpc: "2.0", id: 5, error: { code: -32601, message: "Method not found" } },
    ]);
  });

  it("answers rpc.cancel with -32011 exactly once and aborts the handler", async () => {
    const c = client({ personalTopic: false });
    let signal: AbortSignal | undefined;
    let report: ((p: unknown) => boolean) | undefined;
    c.handle("ui.confirm", (_p, ctx) => {
      signal = ctx.signal;
      report = ctx.progress;
      return new Promise((resolve) => ctx.signal.addEventListener("abort", () => resolve("too late")));
    });
    const ws = FakeWebSocket.last;
    ws.welcome();
    ws.push({ jsonrpc: "2.0", id: 7, method: "ui.confirm", params: ["?"] });
    ws.push({ jsonrpc: "2.0", method: "rpc.cancel", params: { id: 7 } });
    await tick();
    expect(signal?.aborted).toBe(true);
    expect(ws.sent).toEqual(['{"jsonrpc":"2.0","id":7,"error":{"code":-32011,"message":"Cancelled"}}']);
    // The handler's late value, a second cancel and a late report send nothing.
    ws.push({ jsonrpc: "2.0", method: "rpc.cancel", params: { id: 7 } });
    expect(report?.("late")).toBe(false);
    await tick();
    expect(ws.sent).toHaveLength(1);
  });

  it("matches rpc.cancel by the id's JSON value and answers with the server's spelling", async () => {
    const c = client({ personalTopic: false });
    c.handle("slow", () => new Promise(() => {}));
    const ws = FakeWebSocket.last;
    ws.welcome();
    ws.push('{"jsonrpc":"2.0","id":"\\u0061b","method":"slow"}');
    ws.push({ jsonrpc: "2.0", method: "rpc.cancel", params: { id: "ab" } });
    expect(ws.sent).toEqual(['{"jsonrpc":"2.0","id":"\\u0061b","error":{"code":-32011,"message":"Cancelled"}}']);
  });

  it("ignores rpc.cancel once the handler has answered", async () => {
    const c = client({ personalTopic: false });
    c.handle("quick", () => "fast");
    const ws = FakeWebSocket.last;
    ws.welcome();
    ws.push({ jsonrpc: "2.0", id: 8, method: "quick" });
    await tick();
    ws.push({ jsonrpc: "2.0", method: "rpc.cancel", params: { id: 8 } });
    await tick();
    expect(ws.frames).toEqual([{ jsonrpc: "2.0", id: 8, result: "fast" }]);
  });

  it("sends a handler's progress before its answer and none after", async () => {
    const c = client({ personalTopic: false });
    let finish: (value: unknown) => void = () => {};
    let report: ((p: unknown) => boolean) | undefined;
    c.handle("job.run", (_p, ctx) => {
      report = ctx.progress;
      expect(ctx.progress({ step: 1 })).toBe(true);
      return new Promise((resolve) => {
        finish = resolve;
      });
    });
    const ws = FakeWebSocket.last;
    ws.welcome();
    ws.push({ jsonrpc: "2.0", id: "j", method: "job.run" });
    await tick();
    expect(report?.({ step: 2 })).toBe(true);
    finish("done");
    await tick();
    expect(report?.({ step: 3 })).toBe(false);
    expect(ws.sent).toEqual([
      '{"jsonrpc":"2.0","method":"rpc.progress","params":{"id":"j","progress":{"step":1}}}',
      '{"jsonrpc":"2.0","method":"rpc.progress","params":{"id":"j","progress":{"step":2}}}',
      '{"jsonrpc":"2.0","id":"j","result":"done"}',
    ]);
  });

  it("stops a handler's progress when the connection drops", async () => {
    const c = client({ personalTopic: false });
    let report: ((p: unknown) => boolean) | undefined;
    let signal: AbortSignal | undefined;
    c.handle("job.run", (_p, ctx) => {
      report = ctx.progress;
      signal = ctx.signal;
      return new Promise(() => {});
    });
    const ws = FakeWebSocket.last;
    ws.welcome();
    ws.push({ jsonrpc: "2.0", id: 1, method: "job.run" });
    ws.drop(1006);
    expect(signal?.aborted).toBe(true);
    expect(report?.(1)).toBe(false);
    expect(ws.sent).toEqual([]);
  });

  it("echoes the server's id exactly and answers an invalid request with -32600", async () => {
    const c = client({ personalTopic: false });
    c.handle("x", () => 1);
    const ws = FakeWebSocket.last;
    ws.welcome();
    ws.push('{"jsonrpc":"2.0","id":9007199254740993,"method":"x"}');
    ws.push('{"jsonrpc":"2.0","id":3,"method":"x","params":5}');
    await tick();
    expect(ws.sent).toEqual([
      '{"jsonrpc":"2.0","id":3,"error":{"code":-32600,"message":"Invalid request"}}',
      '{"jsonrpc":"2.0","id":9007199254740993,"result":1}',
    ]);
  });

  it("refuses to handle the gateway's own names", () => {
    const c = client({ autoConnect: false });
    expect(() => c.handle("rpc.ping", () => 1)).toThrow(TypeError);
  });
});

describe("subscriptions", () => {
  it("subscribe, track positions, drop duplicates, resume with since after a reconnect", async () => {
    const c = client();
    let ws = FakeWebSocket.last;
    const news = c.subscribe("news");
    const got: unknown[] = [];
    news.on("message", (p) => got.push(p.data));
    const reports = vi.fn();
    news.on("subscribed", reports);
    ws.welcome("alice");
    expect(ws.frames[0]).toMatchObject({ method: "rpc.subscribe", params: { topics: [{ topic: "news" }, { topic: "user:alice" }] } });
    ws.answer("rpc.subscribe", {
      topics: [
        { topic: "news", recovered: true, offset: 5, epoch: "e1" },
        { topic: "user:alice", recovered: true, offset: 0, epoch: "u1" },
      ],
    });
    await tick();
    expect(news.state).toBe("subscribed");
    expect(news.position).toEqual({ offset: 5, epoch: "e1" });
    for (const offset of [6, 7, 7, 5]) {
      ws.push({ jsonrpc: "2.0", method: "rpc.message", params: { topic: "news", data: offset, offset, epoch: "e1" } });
    }
    expect(got).toEqual([6, 7]);
    expect(news.position).toEqual({ offset: 7, epoch: "e1" });

    ws.drop(1006);
    expect(news.state).toBe("pending");
    await vi.advanceTimersByTimeAsync(750);
    ws = FakeWebSocket.last;
    ws.welcome("alice");
    expect(ws.frames[0]).toMatchObject({
      method: "rpc.subscribe",
      params: {
        topics: [
          { topic: "news", since: { offset: 7, epoch: "e1" } },
          { topic: "user:alice", since: { offset: 0, epoch: "u1" } },
        ],
      },
    });
    ws.answer("rpc.subscribe", {
      topics: [
        { topic: "news", recovered: true, offset: 9, epoch: "e1" },
        { topic: "user:alice", recovered: false, offset: 3, epoch: "u2", gap: "epoch_changed" },
      ],
    });
    await tick();
    // The replay follows the answer and advances the position.
    ws.push({ jsonrpc: "2.0", method: "rpc.message", params: { topic: "news", data: 8, offset: 8, epoch: "e1" } });
    ws.push({ jsonrpc: "2.0", method: "rpc.message", params: { topic: "news", data: 9, offset: 9, epoch: "e1" } });
    expect(got).toEqual([6, 7, 8, 9]);
    expect(reports).toHaveBeenLastCalledWith({
      topic: "news",
      resumed: true,
      since: { offset: 7, epoch: "e1" },
      recovered: true,
      gap: undefined,
      position: { offset: 9, epoch: "e1" },
    });
    expect(c.personal?.position).toEqual({ offset: 3, epoch: "u2" });
  });

  it("iterates publications with for await, until unsubscribed", async () => {
    const c = client({ personalTopic: false });
    const ws = FakeWebSocket.last;
    ws.welcome();
    const sub = c.subscribe("t");
    ws.answer("rpc.subscribe", { topics: [{ topic: "t", recovered: true }] });
    const seen: unknown[] = [];
    const loop = (async () => {
      for await (const p of sub) seen.push(p.data);
    })();
    ws.push({ jsonrpc: "2.0", method: "rpc.message", params: { topic: "t", data: "a" } });
    ws.push({ jsonrpc: "2.0", method: "rpc.message", params: { topic: "t", data: "b" } });
    const left = sub.unsubscribe();
    ws.answer("rpc.unsubscribe", {});
    await left;
    await loop;
    expect(seen).toEqual(["a", "b"]);
    expect(ws.requests("rpc.unsubscribe")[0]?.params).toEqual({ topics: ["t"] });
    expect(c.subscriptions.has("t")).toBe(false);
  });

  it("ends an iterator whose reader falls too far behind", async () => {
    const c = client({ personalTopic: false });
    const ws = FakeWebSocket.last;
    ws.welcome();
    const it = c.subscribe("t", { bufferSize: 2 })[Symbol.asyncIterator]();
    for (const data of [1, 2, 3]) ws.push({ jsonrpc: "2.0", method: "rpc.message", params: { topic: "t", data } });
    await expect(it.next()).resolves.toMatchObject({ value: { data: 1 } });
    await expect(it.next()).resolves.toMatchObject({ value: { data: 2 } });
    await expect(it.next()).rejects.toBeInstanceOf(RangeError);
  });

  it("a refused topic fails alone; the others subscribe", async () => {
    const c = client({ personalTopic: false });
    const good = c.subscribe("good");
    const bad = c.subscribe("user:mallory");
    const failed = expect(bad.ready()).rejects.toMatchObject({ code: -32001 });
    const ws = FakeWebSocket.last;
    ws.welcome();
    ws.push({ jsonrpc: "2.0", id: ws.requests("rpc.subscribe")[0]?.id, error: { code: -32001, message: "Forbidden" } });
    await tick();
    const [one, two] = ws.requests("rpc.subscribe").slice(1);
    expect([one?.params, two?.params]).toEqual([{ topics: [{ topic: "good" }] }, { topics: [{ topic: "user:mallory" }] }]);
    ws.push({ jsonrpc: "2.0", id: one?.id, result: { topics: [{ topic: "good", recovered: true }] } });
    ws.push({ jsonrpc: "2.0", id: two?.id, error: { code: -32001, message: "Forbidden" } });
    await tick();
    await failed;
    expect(good.state).toBe("subscribed");
    expect(bad.state).toBe("unsubscribed");
    expect([...c.subscriptions.keys()]).toEqual(["good"]);
  });

  it("subscribing twice gives the same subscription", () => {
    const c = client({ autoConnect: false });
    expect(c.subscribe("a")).toBe(c.subscribe("a"));
  });
});

describe("robustness", () => {
  it("ready() on a confirmed subscription resolves at once with the latest report", async () => {
    const c = client({ personalTopic: false });
    const ws = FakeWebSocket.last;
    ws.welcome();
    const sub = c.subscribe("t");
    ws.answer("rpc.subscribe", { topics: [{ topic: "t", recovered: true }] });
    await expect(sub.ready()).resolves.toMatchObject({ topic: "t", recovered: true });
    await expect(sub.ready()).resolves.toMatchObject({ topic: "t", resumed: false });
  });

  it("a throwing listener neither stops the others nor loops through the error event", () => {
    const c = client({ personalTopic: false });
    const errors: Error[] = [];
    c.events.on("error", (e) => {
      errors.push(e);
      throw new Error("the error listener fails too");
    });
    const after = vi.fn();
    c.on("x", () => {
      throw new Error("listener failed");
    });
    c.on("x", after);
    FakeWebSocket.last.welcome();
    FakeWebSocket.last.push({ jsonrpc: "2.0", method: "x" });
    expect(after).toHaveBeenCalledTimes(1);
    expect(errors.map((e) => e.message)).toEqual(["listener failed"]);
  });

  it("an unawaited notify that fails is not an unhandled rejection", async () => {
    const c = client({ personalTopic: false });
    void c.notify("fire", ["and forget"]);
    c.close();
    await tick();
  });

  it("reports frames it cannot read and answers them like a JSON-RPC peer", () => {
    const c = client({ personalTopic: false });
    const errors: string[] = [];
    c.events.on("error", (e) => errors.push(e.message));
    const ws = FakeWebSocket.last;
    ws.welcome();
    ws.push("{not json");
    expect(ws.frames).toEqual([{ jsonrpc: "2.0", id: null, error: { code: -32700, message: "Parse error" } }]);
    expect(errors).toEqual(["unreadable frame from the server (parse_error)"]);
  });
});
