/**
 * The clock a {@link Client} uses. Injected so that tests can drive time
 * exactly (vitest's fake timers, or a hand-written scheduler).
 */
export interface Timers {
  setTimeout(callback: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
  /** Milliseconds since some fixed point (only differences matter). */
  now(): number;
}

/** The platform's timers, looked up at each call so fake timers installed later still apply. */
export const defaultTimers: Timers = {
  setTimeout: (callback, ms) => globalThis.setTimeout(callback, ms),
  clearTimeout: (handle) => globalThis.clearTimeout(handle as ReturnType<typeof setTimeout>),
  now: () => Date.now(),
};
