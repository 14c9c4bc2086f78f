/**
 * Full-jitter exponential backoff: a delay drawn uniformly from
 * `[0, min(max, min · 2^attempt))`.
 *
 * Full jitter spreads the reconnects of many clients after a server restart
 * over the whole window instead of bunching them at its edges. The function
 * is pure: `random` is the only source of randomness, so tests are exact.
 *
 * @param attempt - How many attempts failed before this one (0 for the first retry).
 * @param min - The first window, in milliseconds (must be > 0).
 * @param max - The largest window, in milliseconds.
 * @param random - A uniform random number in `[0, 1)`.
 * @returns The delay in milliseconds, an integer.
 */
export function backoff(attempt: number, min: number, max: number, random: () => number): number {
  const exponent = Math.min(Math.max(0, Math.floor(attempt)), 52);
  const window = Math.min(max, min * 2 ** exponent);
  const r = Math.min(Math.max(random(), 0), 1);
  return Math.floor(r * window);
}
