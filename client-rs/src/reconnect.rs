//! Reconnect delays: [`backoff`] (a pure function) and [`ReconnectPolicy`].

use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use switchboard_protocol::codes::CloseClass;

/// The delay before reconnect attempt number `attempt` (0 for the first
/// retry), with full jitter: a uniformly random share (`random`, in `0..=1`)
/// of an exponentially growing window, added to `min` and capped at `max`:
///
/// `min(max, min + random × min(max, min × 2^attempt))`
///
/// So every delay is at least `min` (a server that just went down is not
/// hammered), clients that lost the same server spread out over the whole
/// window instead of retrying in lockstep, and no delay exceeds `max`.
///
/// ```
/// use std::time::Duration;
/// use switchboard_client::backoff;
///
/// let (min, max) = (Duration::from_millis(500), Duration::from_secs(20));
/// assert_eq!(backoff(0, min, max, 0.0), min);
/// assert_eq!(backoff(0, min, max, 1.0), Duration::from_secs(1));
/// assert_eq!(backoff(3, min, max, 0.5), Duration::from_millis(2_500));
/// assert_eq!(backoff(30, min, max, 1.0), max);
/// ```
pub fn backoff(attempt: u32, min: Duration, max: Duration, random: f64) -> Duration {
    let random = if random.is_nan() { 0.0 } else { random.clamp(0.0, 1.0) };
    let window = min.saturating_mul(1u32 << attempt.min(31)).min(max);
    min.saturating_add(scale(window, random)).min(max)
}

/// `d × factor` for a factor in `0..=1`, without the panic of `Duration::mul_f64` near `Duration::MAX`.
fn scale(d: Duration, factor: f64) -> Duration {
    Duration::try_from_secs_f64(d.as_secs_f64() * factor).map_or(d, |scaled| scaled.min(d))
}

/// How the client reconnects after it lost its connection.
///
/// The delays come from [`backoff`]. A close with a terminal code
/// (4500–4999) never retries; `1012` (the node is draining) retries at once
/// with a jitter of up to `min`.
#[derive(Debug, Clone, PartialEq)]
pub struct ReconnectPolicy {
    /// Whether to reconnect at all. Default `true`.
    pub enabled: bool,
    /// The shortest delay. Default 0.5 s.
    pub min: Duration,
    /// The longest delay. Default 20 s.
    pub max: Duration,
    /// Give up after this many failed attempts in a row (`None`: never).
    /// Default `None`.
    pub max_attempts: Option<u32>,
}

impl Default for ReconnectPolicy {
    fn default() -> Self {
        Self {
            enabled: true,
            min: Duration::from_millis(500),
            max: Duration::from_secs(20),
            max_attempts: None,
        }
    }
}

impl ReconnectPolicy {
    /// Never reconnect: the first lost connection closes the client.
    pub fn never() -> Self {
        Self {
            enabled: false,
            ..Self::default()
        }
    }

    /// Reconnect with delays between `min` and `max`.
    pub fn between(min: Duration, max: Duration) -> Self {
        Self {
            min,
            max: max.max(min),
            ..Self::default()
        }
    }

    /// The delay before the next attempt, or `None` to stop: after a close
    /// of class `class`, with `failures` attempts failed in a row since the
    /// last connection, and `random` in `0..=1` for the jitter.
    pub(crate) fn next_delay(&self, class: CloseClass, failures: u32, random: f64) -> Option<Duration> {
        let gave_up = self.max_attempts.is_some_and(|max| failures >= max);
        if !self.enabled || gave_up || class == CloseClass::Terminal {
            return None;
        }
        Some(match class {
            // The node is draining: come back at once, spread over `0..=min`.
            CloseClass::ReconnectNow => scale(self.min, random.clamp(0.0, 1.0)),
            _ => backoff(failures, self.min, self.max, random),
        })
    }

    /// [`next_delay`](Self::next_delay) with a fresh random jitter.
    pub(crate) fn delay(&self, class: CloseClass, failures: u32) -> Option<Duration> {
        self.next_delay(class, failures, random_unit())
    }
}

/// A random number in `0..1`, from the standard library's randomly keyed
/// hasher: good enough to spread reconnects, and no dependency.
fn random_unit() -> f64 {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
    (hasher.finish() >> 11) as f64 / (1u64 << 53) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: Duration = Duration::from_millis(500);
    const MAX: Duration = Duration::from_secs(20);

    #[test]
    fn grows_exponentially_until_the_cap() {
        let top: Vec<_> = (0..8).map(|a| backoff(a, MIN, MAX, 1.0)).collect();
        let ms: Vec<_> = top.iter().map(Duration::as_millis).collect();
        assert_eq!(ms, [1_000, 1_500, 2_500, 4_500, 8_500, 16_500, 20_000, 20_000]);
    }

    #[test]
    fn never_below_min_nor_above_max() {
        for attempt in [0, 1, 5, 31, 32, 1_000, u32::MAX] {
            for random in [0.0, 0.25, 0.5, 0.999, 1.0, -3.0, 7.0, f64::NAN] {
                let d = backoff(attempt, MIN, MAX, random);
                assert!(d >= MIN && d <= MAX, "attempt {attempt}, random {random}: {d:?}");
            }
        }
        assert_eq!(backoff(0, MIN, MAX, -1.0), MIN);
        assert_eq!(backoff(0, MIN, MAX, f64::NAN), MIN);
    }

    #[test]
    fn the_jitter_is_spread_over_the_whole_window() {
        assert_eq!(backoff(2, MIN, MAX, 0.0), MIN);
        assert_eq!(backoff(2, MIN, MAX, 0.5), Duration::from_millis(1_500));
        assert_eq!(backoff(2, MIN, MAX, 1.0), Duration::from_millis(2_500));
    }

    #[test]
    fn degenerate_bounds() {
        assert_eq!(backoff(4, Duration::ZERO, MAX, 1.0), Duration::ZERO);
        assert_eq!(backoff(4, MAX, MIN, 0.5), MIN, "max wins when the bounds are reversed");
        assert_eq!(backoff(40, Duration::MAX, Duration::MAX, 1.0), Duration::MAX);
    }

    #[test]
    fn random_numbers_are_in_range_and_vary() {
        let values: Vec<f64> = (0..64).map(|_| random_unit()).collect();
        assert!(values.iter().all(|v| (0.0..1.0).contains(v)));
        assert!(values.windows(2).any(|w| w[0] != w[1]));
        let policy = ReconnectPolicy::default();
        for failures in 0..10 {
            let d = policy.delay(CloseClass::Reconnect, failures).expect("retries");
            assert!(d >= policy.min && d <= policy.max);
        }
    }

    #[test]
    fn what_comes_after_each_kind_of_close() {
        let policy = ReconnectPolicy::default();
        assert_eq!(policy.next_delay(CloseClass::Terminal, 0, 0.5), None);
        assert_eq!(policy.next_delay(CloseClass::Reconnect, 0, 0.0), Some(MIN));
        assert_eq!(
            policy.next_delay(CloseClass::Reconnect, 3, 1.0),
            Some(Duration::from_millis(4_500)),
            "consecutive failures grow the window"
        );
        assert_eq!(
            policy.next_delay(CloseClass::ReconnectNow, 9, 0.0),
            Some(Duration::ZERO)
        );
        assert_eq!(policy.next_delay(CloseClass::ReconnectNow, 9, 0.5), Some(MIN / 2));
        assert_eq!(policy.next_delay(CloseClass::ReconnectNow, 9, 1.0), Some(MIN));
        let never = ReconnectPolicy::never();
        assert_eq!(never.next_delay(CloseClass::Reconnect, 0, 0.5), None);
        assert_eq!(never.next_delay(CloseClass::ReconnectNow, 0, 0.5), None);
        let limited = ReconnectPolicy {
            max_attempts: Some(2),
            ..ReconnectPolicy::default()
        };
        assert!(limited.next_delay(CloseClass::Reconnect, 1, 0.5).is_some());
        assert_eq!(limited.next_delay(CloseClass::Reconnect, 2, 0.5), None);
    }
}
