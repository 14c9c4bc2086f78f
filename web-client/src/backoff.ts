/**
 * Exponential backoff with full jitter and a floor: the delay before retry
 * number `attempt`, drawn from `[min, cap]` where
 * `cap = min(max, min · 2^attempt)`:
 *
 * `delay = min + random · (cap − min)`
 *
 * This is the formula of `switchboard_protocol::backoff::backoff` in Rust,
 * with the same parameters; both test suites check the same table. Full
 * jitter spreads the reconnects of many clients after a server restart over
 * the whole window instead of bunching them, the floor keeps every one of
 * them at least `min` away, and none waits longer than `max`. The function
 * is pure: `random` is the only randomness, so tests are exact.
 *
 * Attempt 0 has an empty window (the delay is exactly `min`): a caller that
 * wants its first retry spread out counts it as attempt 1. A `random`
 * outside `[0, 1]` is clamped (NaN counts as 0), any `attempt` is safe, and
 * when `max` is below `min`, `max` wins.
 *
 * @param attempt - The retry's number; the window doubles with each one.
 * @param min - The shortest delay, in milliseconds.
 * @param max - The longest delay, in milliseconds.
 * @param random - A uniform random number in `[0, 1)`.
 * @returns The delay in milliseconds: `min` plus the jitter rounded down to a whole millisecond.
 */
export function backoff(attempt: number, min: number, max: number, random: number): number {
  const top = Math.max(0, max);
  const floor = Math.min(Math.max(0, min), top);
  const exponent = attempt > 0 ? Math.floor(attempt) : 0;
  // A zero floor never grows, and `0 · 2^Infinity` would be NaN.
  const cap = floor === 0 ? 0 : Math.min(top, floor * 2 ** exponent);
  const unit = random > 0 ? Math.min(random, 1) : 0;
  const jitter = unit * (cap - floor);
  // Rounding only the jitter keeps a fractional `min` as the floor. A NaN
  // jitter (0 · Infinity, when `max` is infinite) counts as none.
  return floor + (jitter > 0 ? Math.floor(jitter) : 0);
}
