//! The multicall scenario's table: a backend's multicast calls, switchboard
//! beside Socket.IO, and switchboard's `"first"` policy.

use std::fmt::Write as _;

use super::{Metric, Summary};
use crate::bench::BenchOptions;

impl Summary {
    /// The table of the multicall scenario, for the servers that ran it.
    pub(super) fn write_multicall(&self, out: &mut String, options: &BenchOptions) {
        use Metric::*;
        let num = |v: Option<f64>, digits: usize| v.map_or("—".to_owned(), |v| format!("{v:.digits$}"));
        let m = &options.multicall;
        let _ = writeln!(
            out,
            "\n**Multicast calls from a backend** ({n} sessions in one topic or room, every one answering at \
             once; the backend makes one call at a time and waits for all {n} answers: switchboard `POST /api` \
             `call` with `\"policy\": \"all\"`, Socket.IO `io.to(room).timeout(…).emitWithAck(…)`. CPU is the \
             server's per answered target, the backend's request included, and the kernel's part of it (system \
             time). \"first\" (switchboard): one session \
             answers at once and the others {slow} ms later; the time from the fast session's answer to the \
             backend's, median of {first} calls)\n",
            n = m.sessions,
            slow = m.slow_answer.as_millis(),
            first = m.first_calls,
        );
        let _ = writeln!(
            out,
            "| server | CPU/answered target (µs) | of which kernel (µs) | answered targets/s | call p50 ms | \
             \"first\": answer after the fastest session's, p50 µs |"
        );
        let _ = writeln!(out, "|---|---:|---:|---:|---:|---:|");
        for server in options.order(0) {
            let value = |metric| self.median(server, metric);
            if value(CpuPerMulticallTarget).is_none() {
                continue;
            }
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} | {} | {} |",
                server.name(),
                num(value(CpuPerMulticallTarget), 3),
                num(value(SystemPerMulticallTarget), 3),
                num(value(MulticallTargetRate), 0),
                num(value(MulticallP50).map(|us| us / 1e3), 2),
                num(value(MulticallAfterFirstP50), 0),
            );
        }
    }
}
