import { describe, expect, it } from "vitest";
import { backoff } from "../../src/backoff.js";

/**
 * `[attempt, min ms, max ms, random, delay ms]`. The same table is in
 * `schemas/src/backoff.rs` (`TABLE`): both clients wait alike.
 */
const TABLE: ReadonlyArray<readonly [number, number, number, number, number]> = [
  [0, 500, 20_000, 0.0, 500],
  [0, 500, 20_000, 0.5, 500],
  [1, 500, 20_000, 0.0, 500],
  [1, 500, 20_000, 0.5, 750],
  [1, 500, 20_000, 0.75, 875],
  [3, 500, 20_000, 0.25, 1_375],
  [3, 500, 20_000, 0.5, 2_250],
  [5, 500, 20_000, 0.5, 8_250],
  [6, 500, 20_000, 0.5, 10_250],
  [6, 500, 20_000, 0.75, 15_125],
  [40, 500, 20_000, 0.5, 10_250],
  [4_294_967_295, 500, 20_000, 0.5, 10_250],
  [2, 200, 30_000, 0.125, 275],
  [10, 100, 1_000, 0.5, 550],
  [5, 1_000, 1_000, 0.5, 1_000],
  [2, 0, 20_000, 0.5, 0],
  [2, 2_000, 1_000, 0.5, 1_000],
  [3, 500, 20_000, 1.0, 4_000],
];

describe("backoff", () => {
  it.each(TABLE)("backoff(%d, %d, %d, %d) is %d ms, as in Rust", (attempt, min, max, random, delay) => {
    expect(backoff(attempt, min, max, random)).toBe(delay);
  });

  it("never waits less than min", () => {
    for (const attempt of [0, 1, 2, 7, 64, 200, 4_294_967_295, Infinity, -3, NaN]) {
      expect(backoff(attempt, 500, 20_000, 0)).toBe(500);
      for (const random of [0.25, 0.5, 0.999999, -3, -Infinity, NaN]) {
        expect(backoff(attempt, 500, 20_000, random)).toBeGreaterThanOrEqual(500);
      }
    }
    expect(backoff(3, 0.5, 20_000, 0.5)).toBe(1.5); // 0.5 + ⌊0.5 · (4 − 0.5)⌋
  });

  it("never waits more than max", () => {
    for (const attempt of [0, 1, 5, 6, 31, 32, 127, 128, 1_000, 4_294_967_295, Infinity]) {
      for (const random of [0, 0.5, 0.999999, 1, 7, Infinity]) {
        expect(backoff(attempt, 500, 20_000, random)).toBeLessThanOrEqual(20_000);
      }
    }
    expect(backoff(6, 500, 20_000, 0.999999999999)).toBe(19_999);
    expect(backoff(9, 500, 20_000, 7)).toBe(20_000);
  });

  it("doubles the window with every attempt", () => {
    expect([0, 1, 2, 3, 4, 5, 6, 7].map((a) => backoff(a, 500, 20_000, 1))).toEqual([
      500, 1_000, 2_000, 4_000, 8_000, 16_000, 20_000, 20_000,
    ]);
  });

  it("never lowers the cap as attempts grow", () => {
    const attempts = [...Array(300).keys(), 4_294_967_292, 4_294_967_293, 4_294_967_294, 4_294_967_295];
    for (const [min, max] of [
      [500, 20_000],
      [1, Number.MAX_SAFE_INTEGER],
      [3, 7],
    ] as const) {
      const tops = attempts.map((a) => backoff(a, min, max, 1));
      expect(tops.every((top, i) => i === 0 || tops[i - 1]! <= top)).toBe(true);
      expect(tops.at(-1)).toBe(max);
    }
  });

  it("stays within [min, max] and whole for many random draws", () => {
    let seed = 42;
    const random = () => ((seed = (seed * 16807) % 2147483647) - 1) / 2147483646;
    for (let attempt = 0; attempt < 12; attempt++) {
      const cap = Math.min(20_000, 500 * 2 ** attempt);
      for (let i = 0; i < 200; i++) {
        const d = backoff(attempt, 500, 20_000, random());
        expect(d).toBeGreaterThanOrEqual(500);
        expect(d).toBeLessThanOrEqual(cap);
        expect(Number.isInteger(d)).toBe(true);
      }
    }
  });
});
