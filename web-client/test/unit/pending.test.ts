import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { DisconnectedError, RpcError, TimeoutError } from "../../src/errors.js";
import { PendingCalls } from "../../src/pending.js";
import { defaultTimers } from "../../src/timers.js";

describe("pending calls", () => {
  let cancelled: number[];
  let table: PendingCalls;

  beforeEach(() => {
    vi.useFakeTimers();
    cancelled = [];
    table = new PendingCalls(defaultTimers, { cancelled: (id) => cancelled.push(id) }, 3);
  });
  afterEach(() => {
    vi.useRealTimers();
  });

  const send = () => {
    for (const e of table.unsent()) table.markSent(e);
  };

  it("resolves with the result and rejects with RpcError", async () => {
    const a = table.add(1, "a", "{}", { timeout: 1000 });
    const b = table.add(2, "b", "{}", { timeout: 1000 });
    send();
    expect(table.settle(1, { result: 42 })).toBe(true);
    expect(table.settle(2, { error: { code: -32601, message: "Method not found" } })).toBe(true);
    await expect(a).resolves.toBe(42);
    const error = await b.catch((e: unknown) => e);
    expect(error).toBeInstanceOf(RpcError);
    expect(error).toMatchObject({ code: -32601, message: "Method not found" });
    expect(table.size).toBe(0);
  });

  it("times out exactly at the timeout, cancels a sent call, and ignores the late answer", async () => {
    const call = table.add(1, "slow", "{}", { timeout: 1000 });
    const settled = vi.fn();
    call.catch(settled);
    send();
    await vi.advanceTimersByTimeAsync(999);
    expect(settled).not.toHaveBeenCalled();
    await vi.advanceTimersByTimeAsync(1);
    const error = await call.catch((e: unknown) => e);
    expect(error).toBeInstanceOf(TimeoutError);
    expect(error).toMatchObject({ method: "slow", timeout: 1000 });
    expect(cancelled).toEqual([1]);
    expect(table.settle(1, { result: "late" })).toBe(false);
  });

  it("does not cancel what was never sent", async () => {
    const call = table.add(1, "queued", "{}", { timeout: 50 });
    const rejected = expect(call).rejects.toBeInstanceOf(TimeoutError);
    await vi.advanceTimersByTimeAsync(50);
    await rejected;
    expect(cancelled).toEqual([]);
  });

  it("an abort rejects with the signal's reason and cancels", async () => {
    const controller = new AbortController();
    const call = table.add(1, "a", "{}", { timeout: 0, signal: controller.signal });
    send();
    controller.abort(new Error("user gave up"));
    await expect(call).rejects.toThrow("user gave up");
    expect(cancelled).toEqual([1]);
    const pre = table.add(2, "b", "{}", { signal: AbortSignal.abort() });
    await expect(pre).rejects.toMatchObject({ name: "AbortError" });
  });

  it("a disconnect fails what was sent and keeps what was queued", async () => {
    const sent = table.add(1, "a", "{}", {});
    send();
    const queued = table.add(2, "b", "{}", {});
    table.failSent(new DisconnectedError("gone", 1006));
    await expect(sent).rejects.toBeInstanceOf(DisconnectedError);
    expect(table.unsent().map((e) => e.id)).toEqual([2]);
    table.failAll(new DisconnectedError("closed"));
    await expect(queued).rejects.toBeInstanceOf(DisconnectedError);
    expect(table.size).toBe(0);
  });

  it("answers only a sent call: an early answer to a queued id is stray", () => {
    void table.add(1, "a", "{}", {});
    expect(table.settle(1, { result: 1 })).toBe(false);
  });

  it("notifications resolve once sent", async () => {
    const n = table.add(undefined, "n", "{}", {});
    expect(table.size).toBe(1);
    send();
    await expect(n).resolves.toBeUndefined();
    expect(table.size).toBe(0);
  });

  it("is bounded", async () => {
    void table.add(1, "a", "{}", {});
    void table.add(2, "a", "{}", {});
    void table.add(3, "a", "{}", {});
    await expect(table.add(4, "a", "{}", {})).rejects.toMatchObject({ code: -32010 });
  });

  it("clears its timers when calls settle", () => {
    void table.add(1, "a", "{}", { timeout: 1000 });
    send();
    expect(vi.getTimerCount()).toBe(1);
    table.settle(1, { result: null });
    expect(vi.getTimerCount()).toBe(0);
  });
});
