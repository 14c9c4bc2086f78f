import { describe, expect, it } from "vitest";
import { closeClass, transition, type State, type StateEvent } from "../../src/state.js";
import { CLOSE_CODES } from "../../src/protocol.js";

const STATES: State[] = ["disconnected", "connecting", "connected", "waiting", "failed"];
const EVENTS: StateEvent[] = [
  { type: "connect" },
  { type: "welcome" },
  { type: "lost", retry: "Reconnect" },
  { type: "lost", retry: "ReconnectNow" },
  { type: "lost", retry: "Terminal" },
  { type: "retry" },
  { type: "close" },
];

describe("state machine", () => {
  it("follows the documented table, and nothing else", () => {
    const table: Record<string, string> = {};
    for (const s of STATES) {
      for (const e of EVENTS) {
        const next = transition(s, e);
        if (next !== undefined) table[`${s} ${e.type}${"retry" in e ? ":" + e.retry : ""}`] = next;
      }
    }
    expect(table).toEqual({
      "disconnected connect": "connecting",
      "disconnected close": "disconnected",
      "connecting welcome": "connected",
      "connecting lost:Reconnect": "waiting",
      "connecting lost:ReconnectNow": "waiting",
      "connecting lost:Terminal": "failed",
      "connecting close": "disconnected",
      "connected lost:Reconnect": "waiting",
      "connected lost:ReconnectNow": "waiting",
      "connected lost:Terminal": "failed",
      "connected close": "disconnected",
      "waiting connect": "connecting",
      "waiting retry": "connecting",
      "waiting close": "disconnected",
      "failed connect": "connecting",
      "failed close": "disconnected",
    });
  });

  it("ignores stale events: a timer firing after close, a second welcome", () => {
    expect(transition("disconnected", { type: "retry" })).toBeUndefined();
    expect(transition("connected", { type: "welcome" })).toBeUndefined();
    expect(transition("connected", { type: "connect" })).toBeUndefined();
    expect(transition("failed", { type: "retry" })).toBeUndefined();
  });

  it("classifies close codes by range", () => {
    expect(closeClass(1000)).toBe("Reconnect");
    expect(closeClass(1001)).toBe("Reconnect");
    expect(closeClass(1006)).toBe("Reconnect");
    expect(closeClass(1012)).toBe("ReconnectNow");
    expect(closeClass(4000)).toBe("Reconnect");
    expect(closeClass(4499)).toBe("Reconnect");
    expect(closeClass(4500)).toBe("Terminal");
    expect(closeClass(4777)).toBe("Terminal");
    expect(closeClass(4999)).toBe("Terminal");
    expect(closeClass(5000)).toBe("Reconnect");
  });

  it("agrees with the gateway's table of close codes", () => {
    for (const c of CLOSE_CODES) expect([c.code, closeClass(c.code)]).toEqual([c.code, c.class]);
  });
});
