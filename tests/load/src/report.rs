//! Turning runs into the table of BENCHMARKS.md: medians per server, the
//! spread between repetitions, the ratios against the targets, and, when a
//! baseline build was measured too, the ratios current / baseline.

use std::fmt::Write as _;

use crate::bench::{BenchOptions, Outcome, Run};
use crate::flavor::{Flavor, Scenario};
use crate::server::Server;

mod baseline;
mod deflate;
mod multicall;
mod presence;
mod slow;

pub use baseline::{BASELINE_FIGURES, Comparison};

/// The median, lowest and highest of a metric over the repetitions.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Stat {
    /// Median.
    pub median: f64,
    /// Lowest.
    pub min: f64,
    /// Highest.
    pub max: f64,
}

impl Stat {
    fn of(mut values: Vec<f64>) -> Option<Stat> {
        if values.is_empty() {
            return None;
        }
        values.sort_by(f64::total_cmp);
        let n = values.len();
        let median = if n % 2 == 1 {
            values[n / 2]
        } else {
            (values[n / 2 - 1] + values[n / 2]) / 2.0
        };
        Some(Stat {
            median,
            min: values[0],
            max: values[n - 1],
        })
    }

    /// The spread (max − min) as a fraction of the median.
    pub fn spread(&self) -> f64 {
        if self.median == 0.0 {
            0.0
        } else {
            (self.max - self.min) / self.median
        }
    }
}

/// A metric the report knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Metric {
    /// Server CPU µs per call.
    CpuPerCall,
    /// Calls per second.
    CallRate,
    /// Call latency p50, µs.
    CallP50,
    /// Call latency p99, µs.
    CallP99,
    /// Call latency p99.9, µs.
    CallP999,
    /// Server CPU µs per call with one call in flight per session.
    CpuPerSerialCall,
    /// Calls per second with one call in flight per session.
    SerialCallRate,
    /// Latency p50 with one call in flight per session, µs.
    SerialCallP50,
    /// Latency p99 with one call in flight per session, µs.
    SerialCallP99,
    /// Server CPU µs per delivery.
    CpuPerDelivery,
    /// Deliveries per second.
    DeliveryRate,
    /// Time from publishing to the last delivery, p50, µs.
    FanoutP50,
    /// Server CPU µs per callback round (client call + server→client call).
    CpuPerRound,
    /// Callback rounds per second.
    RoundRate,
    /// Callback round latency p50, µs.
    RoundP50,
    /// Callback round latency p99, µs.
    RoundP99,
    /// KiB per idle session, fresh.
    KibFresh,
    /// KiB per idle session after a burst.
    KibAfterBurst,
    /// Server CPU µs per delivery across nodes (the delivering node's).
    ClusterCpuPerDelivery,
    /// Deliveries per second across nodes.
    ClusterDeliveryRate,
    /// Publication to last delivery across nodes, median.
    ClusterP50,
    /// Server CPU µs per push through the server API.
    CpuPerPush,
    /// Pushes through the server API per second.
    PushRate,
    /// POST /api latency, median.
    PushPostP50,
    /// Server CPU µs per answered target of a backend's multicast call.
    CpuPerMulticallTarget,
    /// The kernel's part of `CpuPerMulticallTarget`.
    SystemPerMulticallTarget,
    /// Answered targets of multicast calls per second.
    MulticallTargetRate,
    /// A multicast call answered by every session, backend request to answer, median, µs.
    MulticallP50,
    /// `"policy": "first"`: the backend's answer after the fastest session's, median, µs.
    MulticallAfterFirstP50,
    /// Compressed fan-out, plain subscribers: bytes on the wire per delivery.
    PlainBytesPerDelivery,
    /// Compressed fan-out, subscribers offering permessage-deflate: bytes on the wire per delivery.
    DeflateBytesPerDelivery,
    /// Compressed fan-out, plain subscribers: server CPU µs per delivery.
    PlainCpuPerDelivery,
    /// Compressed fan-out, subscribers offering permessage-deflate: server CPU µs per delivery.
    DeflateCpuPerDelivery,
    /// Compressed fan-out, plain subscribers: deliveries per second.
    PlainDeliveryRate,
    /// Compressed fan-out, subscribers offering permessage-deflate: deliveries per second.
    DeflateDeliveryRate,
    /// Compressed fan-out, plain subscribers: KiB per idle subscribed session.
    PlainKibIdle,
    /// Compressed fan-out, subscribers offering permessage-deflate: KiB per idle subscribed session.
    DeflateKibIdle,
    /// Compressed fan-out, subscribers offering permessage-deflate: KiB per session idle after the fan-out.
    DeflateKibAfter,
    /// Slow consumer, every subscriber reading: delivery latency p50, µs.
    SlowAllReadP50,
    /// Slow consumer, every subscriber reading: delivery latency p99, µs.
    SlowAllReadP99,
    /// Slow consumer, every subscriber reading: delivery latency p99.9, µs.
    SlowAllReadP999,
    /// Slow consumer, one subscriber stuck: the readers' delivery latency p50, µs.
    SlowOneStuckP50,
    /// Slow consumer, one subscriber stuck: the readers' delivery latency p99, µs.
    SlowOneStuckP99,
    /// Slow consumer, one subscriber stuck: the readers' delivery latency p99.9, µs.
    SlowOneStuckP999,
    /// Slow consumer: the readers' p99 with one stuck / with every subscriber reading, per repetition.
    SlowP99Ratio,
    /// Slow consumer: times the server closed the stuck session in one run.
    SlowStuckCloses,
}

/// The value of `metric` in one run, if the run measured it.
fn value(run: &Run, metric: Metric) -> Option<f64> {
    match (&run.outcome, metric) {
        (Outcome::Calls(r), Metric::CpuPerCall) => Some(r.cpu_us_per_call()),
        (Outcome::Calls(r), Metric::CallRate) => Some(r.rate()),
        (Outcome::Calls(r), Metric::CallP50) => Some(r.latency.p50_us),
        (Outcome::Calls(r), Metric::CallP99) => Some(r.latency.p99_us),
        (Outcome::Calls(r), Metric::CallP999) => Some(r.latency.p999_us),
        (Outcome::CallsSerial(r), Metric::CpuPerSerialCall) => Some(r.cpu_us_per_call()),
        (Outcome::CallsSerial(r), Metric::SerialCallRate) => Some(r.rate()),
        (Outcome::CallsSerial(r), Metric::SerialCallP50) => Some(r.latency.p50_us),
        (Outcome::CallsSerial(r), Metric::SerialCallP99) => Some(r.latency.p99_us),
        (Outcome::Fanout(r), Metric::CpuPerDelivery) => Some(r.cpu_us_per_delivery()),
        (Outcome::Fanout(r), Metric::DeliveryRate) => Some(r.rate()),
        (Outcome::Fanout(r), Metric::FanoutP50) => Some(r.completion.p50_us),
        (Outcome::Reverse(r), Metric::CpuPerRound) => Some(r.cpu_us_per_call()),
        (Outcome::Reverse(r), Metric::RoundRate) => Some(r.rate()),
        (Outcome::Reverse(r), Metric::RoundP50) => Some(r.latency.p50_us),
        (Outcome::Reverse(r), Metric::RoundP99) => Some(r.latency.p99_us),
        (Outcome::FanoutRedis(r), Metric::ClusterCpuPerDelivery) => Some(r.cpu_us_per_delivery()),
        (Outcome::FanoutRedis(r), Metric::ClusterDeliveryRate) => Some(r.rate()),
        (Outcome::FanoutRedis(r), Metric::ClusterP50) => Some(r.completion.p50_us),
        (Outcome::ApiPush(r), Metric::CpuPerPush) => Some(r.cpu_us_per_push()),
        (Outcome::ApiPush(r), Metric::PushRate) => Some(r.rate()),
        (Outcome::ApiPush(r), Metric::PushPostP50) => Some(r.post_latency.p50_us),
        (Outcome::Multicall(r), Metric::CpuPerMulticallTarget) => Some(r.cpu_us_per_target()),
        (Outcome::Multicall(r), Metric::SystemPerMulticallTarget) => Some(r.system_us_per_target()),
        (Outcome::Multicall(r), Metric::MulticallTargetRate) => Some(r.rate()),
        (Outcome::Multicall(r), Metric::MulticallP50) => Some(r.latency.p50_us),
        (Outcome::Multicall(r), Metric::MulticallAfterFirstP50) => r.after_first.map(|p| p.p50_us),
        (Outcome::Memory(r), Metric::KibFresh) => Some(r.kib_per_session()),
        (Outcome::Memory(r), Metric::KibAfterBurst) => Some(r.kib_per_session_after_burst()),
        (Outcome::FanoutDeflate { plain, .. }, Metric::PlainBytesPerDelivery) => Some(plain.bytes_per_delivery()),
        (Outcome::FanoutDeflate { deflate, .. }, Metric::DeflateBytesPerDelivery) => Some(deflate.bytes_per_delivery()),
        (Outcome::FanoutDeflate { plain, .. }, Metric::PlainCpuPerDelivery) => Some(plain.fanout.cpu_us_per_delivery()),
        (Outcome::FanoutDeflate { deflate, .. }, Metric::DeflateCpuPerDelivery) => {
            Some(deflate.fanout.cpu_us_per_delivery())
        }
        (Outcome::FanoutDeflate { plain, .. }, Metric::PlainDeliveryRate) => Some(plain.fanout.rate()),
        (Outcome::FanoutDeflate { deflate, .. }, Metric::DeflateDeliveryRate) => Some(deflate.fanout.rate()),
        (Outcome::FanoutDeflate { plain, .. }, Metric::PlainKibIdle) => Some(plain.kib_per_session()),
        (Outcome::FanoutDeflate { deflate, .. }, Metric::DeflateKibIdle) => Some(deflate.kib_per_session()),
        (Outcome::FanoutDeflate { deflate, .. }, Metric::DeflateKibAfter) => Some(deflate.kib_per_session_after()),
        (Outcome::SlowConsumer { all_read, one_stuck }, metric) => slow::value(all_read, one_stuck, metric),
        _ => None,
    }
}

/// Medians and spreads of every run.
#[derive(Debug, Clone)]
pub struct Summary {
    runs: Vec<Run>,
}

impl Summary {
    /// Summarises `runs`.
    pub fn new(runs: Vec<Run>) -> Self {
        Self { runs }
    }

    /// The statistic of `metric` for `server` over its repetitions.
    pub fn stat(&self, server: impl Into<Server>, metric: Metric) -> Option<Stat> {
        let server = server.into();
        Stat::of(
            self.runs
                .iter()
                .filter(|r| r.server == server)
                .filter_map(|r| value(r, metric))
                .collect(),
        )
    }

    /// The median of `metric` for `server`.
    pub fn median(&self, server: impl Into<Server>, metric: Metric) -> Option<f64> {
        self.stat(server, metric).map(|s| s.median)
    }

    /// Server CPU µs of one server→client call: a callback round less a
    /// client→server call of the same server (an upper bound: the round's
    /// client call runs an asynchronous handler, which costs more than `echo`).
    pub fn reverse_call(&self, server: impl Into<Server>) -> Option<f64> {
        let server = server.into();
        Some(self.median(server, Metric::CpuPerRound)? - self.median(server, Metric::CpuPerCall)?)
    }

    /// Runs that failed: server, scenario, repetition, why.
    pub fn failures(&self) -> Vec<(Server, Scenario, usize, String)> {
        self.runs
            .iter()
            .filter_map(|r| match &r.outcome {
                Outcome::Failed(e) => Some((r.server, r.scenario, r.rep, e.clone())),
                _ => None,
            })
            .collect()
    }

    /// Every target: what it says, the measured value, the limit, and whether it holds.
    pub fn targets(&self) -> Vec<Target> {
        use Flavor::*;
        use Metric::*;
        let ratio = |a: Option<f64>, b: Option<f64>| match (a, b) {
            (Some(a), Some(b)) if b > 0.0 => Some(a / b),
            _ => None,
        };
        let sb = |m| self.median(Switchboard, m);
        let mut targets = vec![
            Target::new(
                "calls: CPU/call ≤ 1.3 × axum-minimal",
                ratio(sb(CpuPerCall), self.median(Axum, CpuPerCall)),
                1.3,
            ),
            Target::new(
                "calls: CPU/call ≤ 0.8 × jsonrpsee",
                ratio(sb(CpuPerCall), self.median(Jsonrpsee, CpuPerCall)),
                0.8,
            ),
            Target::new(
                "calls, 1 in flight: CPU/call ≤ 1.3 × axum-minimal",
                ratio(sb(CpuPerSerialCall), self.median(Axum, CpuPerSerialCall)),
                1.3,
            ),
            Target::new(
                "calls, 1 in flight: CPU/call ≤ 0.8 × jsonrpsee",
                ratio(sb(CpuPerSerialCall), self.median(Jsonrpsee, CpuPerSerialCall)),
                0.8,
            ),
            Target::new(
                "fan-out: CPU/delivery ≤ 1.0 × axum-minimal",
                ratio(sb(CpuPerDelivery), self.median(Axum, CpuPerDelivery)),
                1.0,
            ),
            Target::new(
                "fan-out: CPU/delivery ≤ 0.7 × jsonrpsee",
                ratio(sb(CpuPerDelivery), self.median(Jsonrpsee, CpuPerDelivery)),
                0.7,
            ),
        ];
        let sessions_note = "KiB/session";
        targets.push(Target::absolute(
            format!("memory: fresh idle subscribed session ≤ 6 {sessions_note}"),
            sb(KibFresh),
            6.0,
        ));
        targets.push(Target::absolute(
            format!("memory: after a burst ≤ 9 {sessions_note} (1.5 × 6)"),
            sb(KibAfterBurst),
            9.0,
        ));
        targets.push(Target::new(
            "memory: after a burst ≤ 1.5 × fresh",
            ratio(sb(KibAfterBurst), sb(KibFresh)),
            1.5,
        ));
        targets.push(Target::new(
            "callback round: CPU/round ≤ 1.1 × axum-minimal's",
            ratio(sb(CpuPerRound), self.median(Axum, CpuPerRound)),
            1.1,
        ));
        targets.push(Target::new(
            "server→client call: CPU ≤ 0.4 × Socket.IO's",
            ratio(self.reverse_call(Switchboard), self.reverse_call(SocketIo)),
            0.4,
        ));
        targets.push(Target::new(
            "multicall CPU per target: switchboard / Socket.IO",
            ratio(sb(CpuPerMulticallTarget), self.median(SocketIo, CpuPerMulticallTarget)),
            0.3,
        ));
        targets.extend(self.deflate_targets());
        targets.push(self.slow_consumer_target());
        targets.push(Target::at_least(
            "cross-node push (Redis): deliveries/s ≥ 0.5 × local",
            ratio(sb(ClusterDeliveryRate), sb(DeliveryRate)),
            0.5,
        ));
        targets
    }

    /// The Markdown results: the table, the targets, the spread, the failures.
    pub fn markdown(&self, options: &BenchOptions, machine: &str) -> String {
        use Metric::*;
        let mut out = String::new();
        let _ = writeln!(out, "{machine}\n");
        let _ = writeln!(
            out,
            "Medians of {} repetitions ({} for memory); CPU is the server's user + system time in the measured \
             window divided by the operations in it.\n",
            options.reps, options.memory_reps
        );
        let num = |v: Option<f64>, digits: usize| v.map_or("—".to_owned(), |v| format!("{v:.digits$}"));
        let ms = |v: Option<f64>| v.map_or("—".to_owned(), |v| format!("{:.2}", v / 1e3));
        let _ = writeln!(
            out,
            "**Server CPU per operation (µs) and memory per idle session (KiB)**\n"
        );
        let _ = writeln!(
            out,
            "| server | per call ({k}×{c}) | per call (1×{c1}) | per delivery | per callback round | \
             → per server→client call | KiB/session fresh | KiB/session after burst |",
            k = options.calls.in_flight,
            c = options.calls.connections,
            c1 = options.calls_serial.connections,
        );
        let _ = writeln!(out, "|---|---:|---:|---:|---:|---:|---:|---:|");
        for server in options.order(0) {
            let m = |metric| self.median(server, metric);
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} | {} | {} | {} | {} |",
                server.name(),
                num(m(CpuPerCall), 2),
                num(m(CpuPerSerialCall), 2),
                num(m(CpuPerDelivery), 2),
                num(m(CpuPerRound), 2),
                num(self.reverse_call(server), 2),
                num(m(KibFresh), 2),
                num(m(KibAfterBurst), 2),
            );
        }
        if let Some(baseline) = &options.baseline_bin {
            self.write_against_baseline(&mut out, options, baseline);
        }
        let _ = writeln!(
            out,
            "\n**Throughput and latency** (limited by the one-core load as much as by the server)\n"
        );
        let _ = writeln!(
            out,
            "| server | calls/s ({k}×{c}) | p50 / p99 / p99.9 ms | calls/s (1×{c1}) | p50 / p99 ms | \
             deliveries/s ({n} subscribers) | publication → last delivery p50 ms | callback rounds/s | p50 / p99 ms |",
            k = options.calls.in_flight,
            c = options.calls.connections,
            c1 = options.calls_serial.connections,
            n = options.fanout.subscribers,
        );
        let _ = writeln!(out, "|---|---:|---:|---:|---:|---:|---:|---:|---:|");
        for server in options.order(0) {
            let m = |metric| self.median(server, metric);
            let _ = writeln!(
                out,
                "| {} | {} | {} / {} / {} | {} | {} / {} | {} | {} | {} | {} / {} |",
                server.name(),
                num(m(CallRate), 0),
                ms(m(CallP50)),
                ms(m(CallP99)),
                ms(m(CallP999)),
                num(m(SerialCallRate), 0),
                ms(m(SerialCallP50)),
                ms(m(SerialCallP99)),
                num(m(DeliveryRate), 0),
                ms(m(FanoutP50)),
                num(m(RoundRate), 0),
                ms(m(RoundP50)),
                ms(m(RoundP99)),
            );
        }
        if self.median(Flavor::Switchboard, ClusterDeliveryRate).is_some() {
            let m = |metric| self.median(Flavor::Switchboard, metric);
            let _ = writeln!(
                out,
                "\n**Cross-node fan-out** (switchboard, two nodes on one Redis: the publisher on one, the {n} \
                 subscribers on the other; CPU is the delivering node's)\n",
                n = options.fanout.subscribers,
            );
            let _ = writeln!(
                out,
                "| | deliveries/s | publication → last delivery p50 ms | CPU/delivery (µs) |\n|---|---:|---:|---:|"
            );
            let _ = writeln!(
                out,
                "| one node | {} | {} | {} |",
                num(m(DeliveryRate), 0),
                ms(m(FanoutP50)),
                num(m(CpuPerDelivery), 2)
            );
            let _ = writeln!(
                out,
                "| across nodes | {} | {} | {} |",
                num(m(ClusterDeliveryRate), 0),
                ms(m(ClusterP50)),
                num(m(ClusterCpuPerDelivery), 2)
            );
        }
        if self.median(Flavor::Switchboard, PushRate).is_some() {
            let m = |metric| self.median(Flavor::Switchboard, metric);
            let _ = writeln!(
                out,
                "\n**Pushes to users through the server API** (switchboard: {u} sessions of {u} users; {p} HTTP \
                 connections each posting batches of {b} `notify` to one user each)\n",
                u = options.push.users,
                p = options.push.posters,
                b = options.push.batch,
            );
            let _ = writeln!(
                out,
                "| pushes/s | CPU/push (µs, HTTP share included) | POST /api p50 ms |\n|---:|---:|---:|\n| {} | {} | {} |",
                num(m(PushRate), 0),
                num(m(CpuPerPush), 2),
                ms(m(PushPostP50)),
            );
        }
        if options
            .order(0)
            .into_iter()
            .any(|server| self.median(server, CpuPerMulticallTarget).is_some())
        {
            self.write_multicall(&mut out, options);
        }
        self.write_deflate(&mut out, options);
        self.write_presence(&mut out, options);
        self.write_slow_consumer(&mut out, options);
        let _ = writeln!(out, "\n| target | measured | limit | holds |");
        let _ = writeln!(out, "|---|---:|---:|:---:|");
        for t in self.targets() {
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} |",
                t.what,
                t.measured.map_or("—".to_owned(), |v| format!("{v:.3}")),
                t.limit_text(),
                match t.holds() {
                    Some(true) => "yes",
                    Some(false) => "**no**",
                    None => "not measured",
                }
            );
        }
        let _ = writeln!(
            out,
            "\nNoise: the spread (max − min) / median of the headline figures over the repetitions.\n"
        );
        let _ = writeln!(
            out,
            "| server | CPU/call | CPU/call (1 in flight) | CPU/delivery | CPU/callback round | CPU/multicall target | \
             KiB fresh | KiB after burst |"
        );
        let _ = writeln!(out, "|---|---:|---:|---:|---:|---:|---:|---:|");
        for server in options.order(0) {
            let s = |metric| {
                self.stat(server, metric).map_or("—".to_owned(), |s| {
                    format!("{:.0}% ({:.2}–{:.2})", s.spread() * 100.0, s.min, s.max)
                })
            };
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} | {} | {} | {} | {} |",
                server.name(),
                s(CpuPerCall),
                s(CpuPerSerialCall),
                s(CpuPerDelivery),
                s(CpuPerRound),
                s(CpuPerMulticallTarget),
                s(KibFresh),
                s(KibAfterBurst)
            );
        }
        let failures = self.failures();
        if !failures.is_empty() {
            let _ = writeln!(out, "\nFailed runs (not in the medians):\n");
            for (server, scenario, rep, why) in failures {
                let why = why.replace('\n', " ");
                let _ = writeln!(out, "- {server} {} rep {}: {why}", scenario.name(), rep + 1);
            }
        }
        out
    }
}

/// One target and how it fared.
#[derive(Debug, Clone, PartialEq)]
pub struct Target {
    /// What it says.
    pub what: String,
    /// The measured ratio or value.
    pub measured: Option<f64>,
    /// The limit it must not exceed.
    pub limit: f64,
    /// Whether the limit is an absolute value rather than a ratio.
    pub absolute: bool,
    /// Whether the measured value must reach the limit rather than stay under it.
    pub at_least: bool,
}

impl Target {
    fn new(what: impl Into<String>, measured: Option<f64>, limit: f64) -> Self {
        Self {
            what: what.into(),
            measured,
            limit,
            absolute: false,
            at_least: false,
        }
    }

    fn at_least(what: impl Into<String>, measured: Option<f64>, limit: f64) -> Self {
        Self {
            at_least: true,
            ..Self::new(what, measured, limit)
        }
    }

    fn absolute(what: impl Into<String>, measured: Option<f64>, limit: f64) -> Self {
        Self {
            absolute: true,
            ..Self::new(what, measured, limit)
        }
    }

    /// Whether it holds; `None` when it was not measured.
    pub fn holds(&self) -> Option<bool> {
        self.measured.map(|m| {
            if self.at_least {
                m >= self.limit
            } else {
                m <= self.limit
            }
        })
    }

    fn limit_text(&self) -> String {
        let bound = if self.absolute {
            format!("{:.2}", self.limit)
        } else {
            format!("{:.2}×", self.limit)
        };
        if self.at_least { format!("≥ {bound}") } else { bound }
    }
}

/// A description of the machine: cores, CPU model, kernel, memory, load, date.
pub fn machine_description() -> String {
    let run = |cmd: &str, args: &[&str]| {
        std::process::Command::new(cmd)
            .args(args)
            .output()
            .ok()
            .and_then(|o| String::from_utf8(o.stdout).ok())
            .map(|s| s.trim().to_owned())
            .unwrap_or_else(|| "?".to_owned())
    };
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find_map(|l| {
            l.strip_prefix("model name")
                .and_then(|r| r.split_once(':'))
                .map(|(_, m)| m.trim())
        })
        .unwrap_or("?")
        .to_owned();
    let memory = std::fs::read_to_string("/proc/meminfo")
        .unwrap_or_default()
        .lines()
        .next()
        .and_then(|l| l.split_whitespace().nth(1).and_then(|kb| kb.parse::<u64>().ok()))
        .map_or("?".to_owned(), |kb| format!("{:.0} GiB", kb as f64 / 1024.0 / 1024.0));
    format!(
        "Machine: {} cores (`nproc`), {model}, {memory} RAM, kernel {}; run on {}; load average at the end: {}.",
        run("nproc", &["--all"]),
        run("uname", &["-r"]),
        run("date", &["-u", "+%Y-%m-%d %H:%M UTC"]),
        std::fs::read_to_string("/proc/loadavg")
            .unwrap_or_default()
            .split_whitespace()
            .take(3)
            .collect::<Vec<_>>()
            .join(" ")
    )
}

/// Replaces the text between `<!-- results:begin -->` and `<!-- results:end -->`
/// in `document` with `results`; appends the markers when they are missing.
pub fn splice_results(document: &str, results: &str) -> String {
    const BEGIN: &str = "<!-- results:begin -->";
    const END: &str = "<!-- results:end -->";
    match (document.find(BEGIN), document.find(END)) {
        (Some(b), Some(e)) if b < e => {
            format!("{}{BEGIN}\n{results}{}", &document[..b], &document[e..])
        }
        _ => format!("{document}\n{BEGIN}\n{results}{END}\n"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn results_are_spliced_between_markers() {
        let doc = "a\n<!-- results:begin -->\nold\n<!-- results:end -->\nb\n";
        assert_eq!(
            splice_results(doc, "new\n"),
            "a\n<!-- results:begin -->\nnew\n<!-- results:end -->\nb\n"
        );
        assert!(splice_results("x", "new\n").contains("<!-- results:begin -->\nnew\n<!-- results:end -->"));
    }

    #[test]
    fn medians() {
        let s = Stat::of(vec![3.0, 1.0, 2.0]).unwrap();
        assert_eq!((s.median, s.min, s.max), (2.0, 1.0, 3.0));
        assert_eq!(Stat::of(vec![1.0, 2.0]).unwrap().median, 1.5);
    }
}
