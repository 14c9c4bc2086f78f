import { describe, expect, it } from "vitest";
import { backoff } from "../../src/backoff.js";

describe("backoff", () => {
  it("draws from a window that doubles from min up to max", () => {
    const top = () => 0.999999;
    expect([0, 1, 2, 3, 4, 5, 6, 7].map((a) => backoff(a, 500, 20_000, top))).toEqual([
      499, 999, 1999, 3999, 7999, 15999, 19999, 19999,
    ]);
  });

  it("is full jitter: zero randomness waits zero, a half waits half the window", () => {
    expect(backoff(3, 500, 20_000, () => 0)).toBe(0);
    expect(backoff(3, 500, 20_000, () => 0.5)).toBe(2000);
  });

  it("is pure: the same inputs give the same delay", () => {
    const r = () => 0.3;
    expect(backoff(4, 100, 10_000, r)).toBe(backoff(4, 100, 10_000, r));
  });

  it("survives huge and odd attempts and out-of-range randomness", () => {
    expect(backoff(10_000, 500, 20_000, () => 0.5)).toBe(10_000);
    expect(backoff(-3, 500, 20_000, () => 0.5)).toBe(250);
    expect(backoff(1, 500, 20_000, () => 7)).toBe(1000);
    expect(backoff(1, 500, 20_000, () => -1)).toBe(0);
  });

  it("stays within [0, window) for many random draws", () => {
    let seed = 42;
    const random = () => ((seed = (seed * 16807) % 2147483647) - 1) / 2147483646;
    for (let attempt = 0; attempt < 12; attempt++) {
      const window = Math.min(20_000, 500 * 2 ** attempt);
      for (let i = 0; i < 200; i++) {
        const d = backoff(attempt, 500, 20_000, random);
        expect(d).toBeGreaterThanOrEqual(0);
        expect(d).toBeLessThan(window);
        expect(Number.isInteger(d)).toBe(true);
      }
    }
  });
});
