//! [`ReconnectPolicy`]: whether and when the client reconnects. The delays
//! come from [`backoff`], the formula every part of switchboard retries by.

use std::time::Duration;

use switchboard_protocol::backoff::backoff;
use switchboard_protocol::codes::CloseClass;

/// How the client reconnects after it lost its connection.
///
/// The delays come from [`backoff`]: full jitter with a floor. The first
/// retry after a lost connection waits between `min` and 2·`min`, and every
/// failed attempt in a row doubles the upper end of that range, up to `max`;
/// no delay is shorter than `min` or longer than `max`. A close with a terminal code
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
            // Counted from 1, because attempt 0 of `backoff` has an empty window:
            // clients that lost the same server spread out from their first retry.
            _ => backoff(failures.saturating_add(1), self.min, self.max, random),
        })
    }

    /// [`next_delay`](Self::next_delay) with a fresh random jitter.
    pub(crate) fn delay(&self, class: CloseClass, failures: u32) -> Option<Duration> {
        self.next_delay(class, failures, fastrand::f64())
    }
}

/// `d × factor` for a factor in `0..=1`, without the panic of `Duration::mul_f64` near `Duration::MAX`.
fn scale(d: Duration, factor: f64) -> Duration {
    Duration::try_from_secs_f64(d.as_secs_f64() * factor).map_or(d, |scaled| scaled.min(d))
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: Duration = Duration::from_millis(500);
    const MAX: Duration = Duration::from_secs(20);

    #[test]
    fn random_delays_stay_between_the_floor_and_the_cap() {
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
            policy.next_delay(CloseClass::Reconnect, 0, 0.5),
            Some(Duration::from_millis(750)),
            "the first retry is spread over min..2·min"
        );
        assert_eq!(
            policy.next_delay(CloseClass::Reconnect, 3, 1.0),
            Some(Duration::from_millis(8_000)),
            "consecutive failures grow the window"
        );
        assert_eq!(policy.next_delay(CloseClass::Reconnect, u32::MAX, 1.0), Some(MAX));
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
