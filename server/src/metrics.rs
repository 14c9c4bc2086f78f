//! Prometheus metrics. One recorder per process, installed on first use, so
//! several gateways in one process (as in tests) share it.

use std::sync::OnceLock;

use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};

static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();

/// Installs the recorder if no other recorder is installed yet.
pub(crate) fn install() {
    HANDLE.get_or_init(|| {
        let recorder = PrometheusBuilder::new().build_recorder();
        let handle = recorder.handle();
        metrics::set_global_recorder(recorder).ok().map(|()| handle)
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

/// Counters on hot paths, looked up once instead of by name on every use.
pub(crate) struct Hot {
    pub(crate) messages_in: metrics::Counter,
    pub(crate) messages_out: metrics::Counter,
    /// Server→client call outcomes: ok, error, timeout, session_gone, refused.
    pub(crate) calls: [metrics::Counter; 5],
    /// Messages deflated (each once, however many sessions it reached).
    pub(crate) compressed: metrics::Counter,
    /// Their bytes before deflating.
    pub(crate) compressed_bytes_in: metrics::Counter,
    /// Their bytes after deflating.
    pub(crate) compressed_bytes_out: metrics::Counter,
    /// Messages over the threshold that deflating would not have made smaller.
    pub(crate) incompressible: metrics::Counter,
}

/// The hot-path counters (registered with the recorder on first use).
pub(crate) fn hot() -> &'static Hot {
    static HOT: OnceLock<Hot> = OnceLock::new();
    HOT.get_or_init(|| {
        install();
        let outcome = |o: &'static str| metrics::counter!("switchboard_server_calls_total", "outcome" => o);
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
            compressed: metrics::counter!("switchboard_messages_compressed_total"),
            compressed_bytes_in: metrics::counter!("switchboard_compression_bytes_in_total"),
            compressed_bytes_out: metrics::counter!("switchboard_compression_bytes_out_total"),
            incompressible: metrics::counter!("switchboard_messages_incompressible_total"),
        }
    })
}
