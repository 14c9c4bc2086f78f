//! How long to wait before trying again: [`backoff`], full jitter with a floor.
//!
//! Every part of switchboard that retries uses this one formula, so that
//! they all behave alike and are tested once: the Rust client's reconnects,
//! and the server's webhook deliveries and Redis reconnects. The TypeScript
//! client (`web-client/src/backoff.ts`) implements the same formula, and its
//! unit tests check the same table of inputs and delays as the tests here.

use std::time::Duration;

const NANOS_PER_SEC: u128 = 1_000_000_000;

/// The delay before retry number `attempt`: full jitter with a floor.
///
/// The window starts at `min` and doubles with every attempt, up to `max`:
/// `cap = min(max, min · 2^attempt)`. The delay is drawn from the whole
/// window, and never falls below the floor `min`:
///
/// `delay = min + unit · (cap − min)`
///
/// `unit` is the randomness, a uniform number in `[0, 1)`, passed in so that
/// the function is pure and its tests are exact. Retries of many parties
/// that failed together then spread over the whole window instead of coming
/// back in lockstep, none comes back sooner than `min`, and none waits
/// longer than `max`.
///
/// Edges:
///
/// - `attempt` 0 has an empty window: the delay is exactly `min`. A caller
///   that wants its first retry spread out counts that retry as attempt 1.
/// - The window saturates at `max`: any `attempt`, up to `u32::MAX`, is fine.
/// - A `unit` outside `[0, 1]` is clamped, and NaN counts as 0, so a broken
///   source of randomness cannot push the delay outside `[min, max]`.
/// - When `max` is below `min`, `max` wins: the delay is `max`.
/// - The result is rounded down to a whole nanosecond.
///
/// ```
/// use std::time::Duration;
/// use switchboard_protocol::backoff::backoff;
///
/// let (min, max) = (Duration::from_millis(500), Duration::from_secs(20));
/// // The window of attempt 3 is 500 ms … 4 s; half-way into it is 2.25 s.
/// assert_eq!(backoff(3, min, max, 0.5), Duration::from_millis(2_250));
/// // Never below the floor, never above the cap.
/// assert_eq!(backoff(3, min, max, 0.0), min);
/// assert_eq!(backoff(u32::MAX, min, max, 0.999_999_999_999), Duration::from_nanos(19_999_999_999));
/// ```
pub fn backoff(attempt: u32, min: Duration, max: Duration, unit: f64) -> Duration {
    let max = max.as_nanos();
    let floor = min.as_nanos().min(max);
    let cap = doubled(floor, attempt).min(max);
    let unit = if unit.is_nan() { 0.0 } else { unit.clamp(0.0, 1.0) };
    let window = cap - floor;
    // The float product may round up past the window; the window bounds it.
    let jitter = ((window as f64 * unit) as u128).min(window);
    from_nanos(floor + jitter)
}

/// `nanos · 2^attempt`, saturating at `u128::MAX` instead of losing bits.
fn doubled(nanos: u128, attempt: u32) -> u128 {
    if nanos == 0 {
        0
    } else if attempt >= nanos.leading_zeros() {
        u128::MAX
    } else {
        nanos << attempt
    }
}

/// A duration of `nanos` nanoseconds. The callers only pass values that came
/// from a `Duration`, so the seconds always fit in a `u64`.
fn from_nanos(nanos: u128) -> Duration {
    let secs = u64::try_from(nanos / NANOS_PER_SEC).unwrap_or(u64::MAX);
    // The remainder is below 10⁹, which always fits in a `u32`.
    Duration::new(secs, (nanos % NANOS_PER_SEC) as u32)
}

#[cfg(test)]
mod tests {
    use super::*;

    const fn ms(millis: u64) -> Duration {
        Duration::from_millis(millis)
    }

    /// `(attempt, min ms, max ms, unit) → delay ms`. The same table is in
    /// `web-client/test/unit/backoff.test.ts`: both clients wait alike.
    const TABLE: [(u32, u64, u64, f64, u64); 18] = [
        (0, 500, 20_000, 0.0, 500),
        (0, 500, 20_000, 0.5, 500),
        (1, 500, 20_000, 0.0, 500),
        (1, 500, 20_000, 0.5, 750),
        (1, 500, 20_000, 0.75, 875),
        (3, 500, 20_000, 0.25, 1_375),
        (3, 500, 20_000, 0.5, 2_250),
        (5, 500, 20_000, 0.5, 8_250),
        (6, 500, 20_000, 0.5, 10_250),
        (6, 500, 20_000, 0.75, 15_125),
        (40, 500, 20_000, 0.5, 10_250),
        (u32::MAX, 500, 20_000, 0.5, 10_250),
        (2, 200, 30_000, 0.125, 275),
        (10, 100, 1_000, 0.5, 550),
        (5, 1_000, 1_000, 0.5, 1_000),
        (2, 0, 20_000, 0.5, 0),
        (2, 2_000, 1_000, 0.5, 1_000),
        (3, 500, 20_000, 1.0, 4_000),
    ];

    #[test]
    fn the_table_shared_with_the_typescript_client() {
        for (attempt, min, max, unit, delay) in TABLE {
            assert_eq!(
                backoff(attempt, ms(min), ms(max), unit),
                ms(delay),
                "backoff({attempt}, {min}, {max}, {unit})"
            );
        }
    }

    #[test]
    fn never_below_the_floor() {
        let (min, max) = (ms(500), ms(20_000));
        for attempt in [0, 1, 2, 7, 64, 200, u32::MAX] {
            assert_eq!(backoff(attempt, min, max, 0.0), min, "attempt {attempt}");
            for unit in [0.0, 0.25, 0.5, 0.999_999, -3.0, f64::NEG_INFINITY, f64::NAN] {
                assert!(
                    backoff(attempt, min, max, unit) >= min,
                    "attempt {attempt}, unit {unit}"
                );
            }
        }
    }

    #[test]
    fn never_above_the_cap() {
        let (min, max) = (ms(500), ms(20_000));
        for attempt in [0, 1, 5, 6, 31, 32, 127, 128, 1_000, u32::MAX] {
            for unit in [0.0, 0.5, 0.999_999, 1.0, 7.0, f64::INFINITY] {
                assert!(
                    backoff(attempt, min, max, unit) <= max,
                    "attempt {attempt}, unit {unit}"
                );
            }
        }
        assert_eq!(
            backoff(6, min, max, 0.999_999_999_999),
            ms(20_000) - Duration::from_nanos(1)
        );
        assert_eq!(backoff(9, min, max, 7.0), max, "a unit above 1 is clamped");
    }

    #[test]
    fn the_window_doubles_with_every_attempt() {
        let top: Vec<u128> = (0..8)
            .map(|a| backoff(a, ms(500), ms(20_000), 1.0).as_millis())
            .collect();
        assert_eq!(top, [500, 1_000, 2_000, 4_000, 8_000, 16_000, 20_000, 20_000]);
    }

    #[test]
    fn saturates_instead_of_overflowing() {
        let nano = Duration::from_nanos(1);
        assert_eq!(backoff(126, nano, Duration::MAX, 0.0), nano);
        assert_eq!(backoff(127, nano, Duration::MAX, 1.0), Duration::MAX);
        assert_eq!(backoff(u32::MAX, nano, Duration::MAX, 1.0), Duration::MAX);
        assert_eq!(backoff(u32::MAX, Duration::MAX, Duration::MAX, 0.5), Duration::MAX);
        assert_eq!(backoff(u32::MAX, Duration::ZERO, Duration::MAX, 0.5), Duration::ZERO);
        let near_max = backoff(u32::MAX, nano, Duration::MAX, 0.5);
        assert!(near_max > Duration::MAX / 3 && near_max < Duration::MAX, "{near_max:?}");
    }

    #[test]
    fn the_cap_never_shrinks_as_attempts_grow() {
        let attempts = (0..300).chain(u32::MAX - 3..=u32::MAX);
        for (min, max) in [
            (ms(500), ms(20_000)),
            (ms(1), Duration::MAX),
            (Duration::from_nanos(3), ms(7)),
        ] {
            let tops: Vec<Duration> = attempts.clone().map(|a| backoff(a, min, max, 1.0)).collect();
            assert!(tops.windows(2).all(|w| w[0] <= w[1]), "{min:?}..{max:?}");
            assert_eq!(tops.last(), Some(&max));
        }
    }
}
