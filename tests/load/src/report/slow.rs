//! The slow-consumer scenario's table and target: the readers' delivery
//! latency with every subscriber reading and with one that never reads.

use std::fmt::Write as _;

use super::{Metric, Summary, Target};
use crate::bench::BenchOptions;
use crate::flavor::Flavor;
use crate::scenario::SlowConsumerResult;

/// The value of `metric` in one run of the scenario, if it is one of its metrics.
pub(super) fn value(all_read: &SlowConsumerResult, one_stuck: &SlowConsumerResult, metric: Metric) -> Option<f64> {
    match metric {
        Metric::SlowAllReadP50 => Some(all_read.latency.p50_us),
        Metric::SlowAllReadP99 => Some(all_read.latency.p99_us),
        Metric::SlowAllReadP999 => Some(all_read.latency.p999_us),
        Metric::SlowOneStuckP50 => Some(one_stuck.latency.p50_us),
        Metric::SlowOneStuckP99 => Some(one_stuck.latency.p99_us),
        Metric::SlowOneStuckP999 => Some(one_stuck.latency.p999_us),
        Metric::SlowP99Ratio if all_read.latency.p99_us > 0.0 => {
            Some(one_stuck.latency.p99_us / all_read.latency.p99_us)
        }
        Metric::SlowStuckCloses => Some(one_stuck.stuck_closes as f64),
        _ => None,
    }
}

impl Summary {
    /// The table of the slow-consumer scenario, if it ran.
    pub(super) fn write_slow_consumer(&self, out: &mut String, options: &BenchOptions) {
        use Metric::*;
        let server = Flavor::Switchboard;
        let Some(ratio) = self.stat(server, SlowP99Ratio) else {
            return;
        };
        let p = &options.slow_consumer;
        let ms = |metric| {
            self.stat(server, metric).map_or("—".to_owned(), |s| {
                format!("{:.2} ({:.2}–{:.2})", s.median / 1e3, s.min / 1e3, s.max / 1e3)
            })
        };
        let closes = self.stat(server, SlowStuckCloses).map_or("—".to_owned(), |s| {
            format!("{:.0} ({:.0}–{:.0})", s.median, s.min, s.max)
        });
        let reps = self
            .runs
            .iter()
            .filter(|r| r.server == server.into() && super::value(r, SlowP99Ratio).is_some())
            .count();
        let _ = writeln!(
            out,
            "\n**A session that never reads** (switchboard, `limits.max_queue_bytes` = {queue} KiB: {n} sessions \
             subscribed to one topic; one more publishes {rate} publications/s of about 200 bytes for {warmup:.0} s \
             of warm-up and a {window:.0} s window, each carrying the time it was sent; every reading session \
             records the latency of every publication of the window. \"all read\": {n} readers; \"one stuck\": {r1} \
             readers and one session that stops reading once subscribed, opened again each time the server closes \
             it. Each variant on a fresh server, the order alternating; medians over {reps} repetitions, range in \
             parentheses)\n",
            queue = p.max_queue_bytes >> 10,
            n = p.subscribers,
            r1 = p.subscribers.saturating_sub(1),
            rate = p.rate,
            warmup = p.warmup.as_secs_f64(),
            window = p.measure.as_secs_f64(),
        );
        let _ = writeln!(
            out,
            "| subscribers | p50 ms | p99 ms | p99.9 ms | stuck session closed |\n|---|---:|---:|---:|---:|"
        );
        let _ = writeln!(
            out,
            "| all read | {} | {} | {} | — |",
            ms(SlowAllReadP50),
            ms(SlowAllReadP99),
            ms(SlowAllReadP999)
        );
        let _ = writeln!(
            out,
            "| one stuck | {} | {} | {} | {closes} |",
            ms(SlowOneStuckP50),
            ms(SlowOneStuckP99),
            ms(SlowOneStuckP999)
        );
        let _ = writeln!(
            out,
            "\np99 one stuck / all read: {:.2} ({:.2}–{:.2} over the repetitions).",
            ratio.median, ratio.min, ratio.max
        );
    }

    /// The target of the issue: a stuck session costs the readers' p99 at most a fifth.
    pub(super) fn slow_consumer_target(&self) -> Target {
        Target::new(
            "slow consumer: readers' p99 with one stuck session ≤ 1.2 × without",
            self.median(Flavor::Switchboard, Metric::SlowP99Ratio),
            1.2,
        )
    }
}
