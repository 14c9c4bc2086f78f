//! The current switchboard against a baseline build of it, measured in the
//! same run (`--baseline-bin`): one ratio current / baseline per figure.

use std::fmt::Write as _;
use std::path::Path;

use super::{Metric, Stat, Summary, value};
use crate::bench::BenchOptions;
use crate::flavor::Flavor;
use crate::server::Server;

/// The figures the current switchboard is compared on with the baseline build.
pub const BASELINE_FIGURES: [Metric; 6] = [
    Metric::CpuPerCall,
    Metric::CpuPerSerialCall,
    Metric::CpuPerDelivery,
    Metric::CpuPerRound,
    Metric::KibFresh,
    Metric::KibAfterBurst,
];

/// One figure of the current switchboard against the baseline build's.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Comparison {
    /// The figure.
    pub metric: Metric,
    /// The current build's figure over its repetitions.
    pub current: Option<Stat>,
    /// The baseline build's figure over its repetitions.
    pub baseline: Option<Stat>,
    /// current / baseline, one ratio per repetition in which both were measured.
    pub ratio: Option<Stat>,
    /// How many repetitions the ratio comes from.
    pub pairs: usize,
}

impl Summary {
    /// The current switchboard against the baseline build, figure by figure
    /// ([`BASELINE_FIGURES`]). The ratio is taken per repetition, between the
    /// two measurements made back to back, so that what the machine's load
    /// does between repetitions cancels out of it.
    pub fn against_baseline(&self) -> Vec<Comparison> {
        let current = Server::Current(Flavor::Switchboard);
        BASELINE_FIGURES
            .into_iter()
            .map(|metric| {
                let ratios: Vec<f64> = self
                    .runs
                    .iter()
                    .filter(|r| r.server == current)
                    .filter_map(|r| {
                        let ours = value(r, metric)?;
                        let theirs = self
                            .runs
                            .iter()
                            .filter(|b| b.server == Server::Baseline && b.rep == r.rep)
                            .find_map(|b| value(b, metric))?;
                        (theirs > 0.0).then(|| ours / theirs)
                    })
                    .collect();
                Comparison {
                    metric,
                    current: self.stat(current, metric),
                    baseline: self.stat(Server::Baseline, metric),
                    pairs: ratios.len(),
                    ratio: Stat::of(ratios),
                }
            })
            .collect()
    }

    /// The table of [`Summary::against_baseline`].
    pub(super) fn write_against_baseline(&self, out: &mut String, options: &BenchOptions, baseline: &Path) {
        let _ = writeln!(
            out,
            "\n**switchboard against the baseline** (`{}`), measured back to back in each repetition, current \
             first: the median of the repetitions' ratios current / baseline, and their range (below 1: the \
             current build needs less)\n",
            baseline.display()
        );
        let _ = writeln!(
            out,
            "| figure | current | baseline | current / baseline | range of the ratios (repetitions) |"
        );
        let _ = writeln!(out, "|---|---:|---:|---:|---:|");
        let num = |s: Option<Stat>| s.map_or("—".to_owned(), |s| format!("{:.2}", s.median));
        for c in self.against_baseline() {
            let figure = match c.metric {
                Metric::CpuPerCall => format!(
                    "CPU µs per call ({}×{})",
                    options.calls.in_flight, options.calls.connections
                ),
                Metric::CpuPerSerialCall => format!("CPU µs per call (1×{})", options.calls_serial.connections),
                Metric::CpuPerDelivery => "CPU µs per delivery".to_owned(),
                Metric::CpuPerRound => "CPU µs per callback round".to_owned(),
                Metric::KibFresh => "KiB per idle session, fresh".to_owned(),
                Metric::KibAfterBurst => "KiB per idle session, after the burst".to_owned(),
                other => format!("{other:?}"),
            };
            let (ratio, range) = match c.ratio {
                Some(r) => (
                    format!("{:.3}", r.median),
                    format!("{:.3}–{:.3} ({})", r.min, r.max, c.pairs),
                ),
                None => ("—".to_owned(), "—".to_owned()),
            };
            let _ = writeln!(
                out,
                "| {figure} | {} | {} | {ratio} | {range} |",
                num(c.current),
                num(c.baseline)
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bench::{Outcome, Run};
    use crate::flavor::Scenario;

    fn calls(server: Server, rep: usize, cpu_us_per_call: f64) -> Run {
        Run {
            server,
            scenario: Scenario::Calls,
            rep,
            outcome: Outcome::Calls(crate::scenario::CallsResult {
                calls: 1_000_000,
                seconds: 1.0,
                cpu_seconds: cpu_us_per_call,
                latency: Default::default(),
            }),
        }
    }

    #[test]
    fn the_baseline_is_compared_repetition_by_repetition() {
        let current = Server::Current(Flavor::Switchboard);
        let summary = Summary::new(vec![
            calls(current, 0, 1.0),
            calls(Server::Baseline, 0, 2.0),
            calls(current, 1, 3.0),
            calls(Server::Baseline, 1, 4.0),
            // A repetition without a baseline figure (its run failed) gives no ratio.
            calls(current, 2, 9.0),
        ]);
        let comparisons = summary.against_baseline();
        let per_call = comparisons.iter().find(|c| c.metric == Metric::CpuPerCall).unwrap();
        let ratio = per_call.ratio.unwrap();
        assert_eq!(per_call.pairs, 2);
        assert!((ratio.min - 0.5).abs() < 1e-9 && (ratio.max - 0.75).abs() < 1e-9);
        assert!((ratio.median - 0.625).abs() < 1e-9);
        assert_eq!(per_call.baseline.unwrap().median, 3.0);
        let per_delivery = comparisons.iter().find(|c| c.metric == Metric::CpuPerDelivery).unwrap();
        assert_eq!((per_delivery.ratio, per_delivery.pairs), (None, 0));
    }
}
