//! Prometheus metrics. One recorder per process, installed on first use, so
//! several gateways in one process (as in tests) share it.
//!
//! Handles used on hot paths (a frame in or out, a call answered) are looked
//! up once and kept: a method's latency histogram beside the method in the
//! table, an upstream route's beside the route, the rest in [`Hot`]. Using a
//! handle is an atomic operation, with no lock and no lookup by name.

use std::sync::OnceLock;
use std::time::{Duration, Instant};

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use switchboard_protocol::Target;

static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();

/// Buckets of every `*_seconds` histogram: 100 µs to 10 s.
const SECONDS_BUCKETS: &[f64] = &[
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// How often recorded samples are folded into the histograms between scrapes,
/// so that a gateway nobody scrapes does not keep every sample.
const UPKEEP_EVERY: Duration = Duration::from_secs(5);

/// Installs the recorder if no other recorder is installed yet.
pub(crate) fn install() {
    HANDLE.get_or_init(|| {
        let builder = PrometheusBuilder::new()
            .set_buckets_for_metric(Matcher::Suffix("_seconds".to_owned()), SECONDS_BUCKETS)
            .unwrap_or_else(|_| PrometheusBuilder::new());
        let recorder = builder.build_recorder();
        let handle = recorder.handle();
        metrics::set_global_recorder(recorder).ok()?;
        let upkeep = handle.clone();
        let spawned = std::thread::Builder::new()
            .name("metrics-upkeep".to_owned())
            .spawn(move || {
                loop {
                    std::thread::sleep(UPKEEP_EVERY);
                    upkeep.run_upkeep();
                }
            });
        if let Err(e) = spawned {
            tracing::warn!(error = %e, "could not start the metrics upkeep thread; histograms are folded at each scrape only");
        }
        Some(handle)
    });
}

/// The metrics in Prometheus text format (empty if another recorder owns the process).
pub(crate) fn render() -> String {
    install();
    HANDLE
        .get()
        .and_then(|h| h.as_ref())
        .map(PrometheusHandle::render)
        .unwrap_or_default()
}

/// The latency histogram of the client→server calls of one method (for an
/// upstream route, its prefix and `*`). Registered once, when the method is
/// added: only methods the gateway serves get a label.
pub(crate) fn call_duration(method: &str) -> metrics::Histogram {
    install();
    metrics::histogram!("switchboard_call_duration_seconds", "method" => method.to_owned())
}

/// Records the time from its start to its drop: a request's, from dispatch
/// until its answer is handed to the session (or it is dropped unanswered,
/// when its session ends).
pub(crate) struct Timer {
    started: Instant,
    histogram: metrics::Histogram,
}

impl Timer {
    pub(crate) fn start(histogram: &metrics::Histogram) -> Self {
        Self {
            started: Instant::now(),
            histogram: histogram.clone(),
        }
    }
}

impl Drop for Timer {
    fn drop(&mut self) {
        self.histogram.record(self.started.elapsed());
    }
}

/// Metrics on hot paths, looked up once instead of by name on every use.
pub(crate) struct Hot {
    pub(crate) messages_in: metrics::Counter,
    pub(crate) messages_out: metrics::Counter,
    /// Server→client call outcomes: ok, error, timeout, session_gone, refused.
    pub(crate) calls: [metrics::Counter; 5],
    /// Server→client call latency by target kind, in [`target_index`] order.
    pub(crate) client_call_duration: [metrics::Histogram; 5],
    /// Messages deflated (each once, however many sessions it reached).
    pub(crate) compressed: metrics::Counter,
    /// Their bytes before deflating.
    pub(crate) compressed_bytes_in: metrics::Counter,
    /// Their bytes after deflating.
    pub(crate) compressed_bytes_out: metrics::Counter,
    /// Messages over the threshold that deflating would not have made smaller.
    pub(crate) incompressible: metrics::Counter,
    /// Sessions closed as slow consumers (close 4000).
    pub(crate) slow_consumer_closes: metrics::Counter,
    /// Client requests stopped by the client's `rpc.cancel` while running.
    pub(crate) requests_cancelled: metrics::Counter,
    /// `rpc.cancel` notifications sent to clients for calls no longer wanted.
    pub(crate) client_calls_cancelled: metrics::Counter,
    /// How long the broker takes to accept a publication (or any broadcast).
    pub(crate) broker_publish: metrics::Histogram,
    /// Broker operations that failed.
    pub(crate) broker_errors: metrics::Counter,
}

/// The hot-path metrics (registered with the recorder on first use).
pub(crate) fn hot() -> &'static Hot {
    static HOT: OnceLock<Hot> = OnceLock::new();
    HOT.get_or_init(|| {
        install();
        let outcome = |o: &'static str| metrics::counter!("switchboard_server_calls_total", "outcome" => o);
        let target = |t: &'static str| metrics::histogram!("switchboard_client_call_duration_seconds", "target" => t);
        Hot {
            messages_in: metrics::counter!("switchboard_messages_in_total"),
            messages_out: metrics::counter!("switchboard_messages_out_total"),
            calls: [
                outcome("ok"),
                outcome("error"),
                outcome("timeout"),
                outcome("session_gone"),
                outcome("refused"),
            ],
            client_call_duration: [
                target("session"),
                target("user"),
                target("users"),
                target("topic"),
                target("all"),
            ],
            compressed: metrics::counter!("switchboard_messages_compressed_total"),
            compressed_bytes_in: metrics::counter!("switchboard_compression_bytes_in_total"),
            compressed_bytes_out: metrics::counter!("switchboard_compression_bytes_out_total"),
            incompressible: metrics::counter!("switchboard_messages_incompressible_total"),
            slow_consumer_closes: metrics::counter!("switchboard_slow_consumer_closes_total"),
            requests_cancelled: metrics::counter!("switchboard_requests_cancelled_total"),
            client_calls_cancelled: metrics::counter!("switchboard_client_calls_cancelled_total"),
            broker_publish: metrics::histogram!("switchboard_broker_publish_duration_seconds"),
            broker_errors: metrics::counter!("switchboard_broker_errors_total"),
        }
    })
}

/// Where the histogram of calls to one session is in [`Hot::client_call_duration`].
pub(crate) const SESSION_TARGET: usize = 0;

/// Where a target's histogram is in [`Hot::client_call_duration`].
pub(crate) fn target_index(target: &Target) -> usize {
    match target {
        Target::Session(_) => SESSION_TARGET,
        Target::User(_) => 1,
        Target::Users(_) => 2,
        Target::Topic(_) => 3,
        Target::All => 4,
    }
}
