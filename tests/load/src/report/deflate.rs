//! The compressed fan-out's table and targets: switchboard's compress-once
//! fan-out beside its plain fan-out and beside `ws`, which compresses for each
//! connection.

use std::fmt::Write as _;

use super::{Metric, Summary, Target};
use crate::bench::BenchOptions;
use crate::flavor::Flavor;
use crate::scenario::FIXTURE;

impl Summary {
    /// The table of the fanout-deflate scenario, for the servers that ran it.
    pub(super) fn write_deflate(&self, out: &mut String, options: &BenchOptions) {
        use Metric::*;
        let servers: Vec<_> = options
            .order(0)
            .into_iter()
            .filter(|&server| self.median(server, DeflateBytesPerDelivery).is_some())
            .collect();
        if servers.is_empty() {
            return;
        }
        let num = |v: Option<f64>, digits: usize| v.map_or("—".to_owned(), |v| format!("{v:.digits$}"));
        let compact = serde_json::from_str::<serde_json::Value>(FIXTURE).map_or(0, |v| v.to_string().len());
        let _ = writeln!(
            out,
            "\n**Compressed fan-out** ({n} subscribers of one topic; one publication at a time of a chat message \
             event, `tests/load/fixtures/chat-message.json`, {compact} bytes of compact JSON, each publication with \
             its own ids, time, author and text. \"plain\": the subscribers offer no extension; \"deflate\": they \
             offer `permessage-deflate`. Bytes are what the subscribers read from their sockets per delivery, \
             frame headers included; CPU is the server's per delivery, the publisher's call included; KiB per \
             session is RSS growth over the subscribed sessions, idle before the first publication and again \
             {settle:.0} s after the last. ws-deflate is the `ws` package with permessage-deflate at its defaults \
             (zlib level 6, context takeover kept per connection, 10 compressions at once) and the threshold set \
             to switchboard's 256 bytes)\n",
            n = options.deflate.fanout.subscribers,
            settle = options.deflate.settle.as_secs_f64(),
        );
        let _ = writeln!(
            out,
            "| server | subscribers | bytes/delivery | CPU/delivery (µs) | deliveries/s | KiB/session idle | \
             KiB/session after |"
        );
        let _ = writeln!(out, "|---|---|---:|---:|---:|---:|---:|");
        for server in servers {
            let value = |metric| self.median(server, metric);
            let _ = writeln!(
                out,
                "| {} | plain | {} | {} | {} | {} | — |",
                server.name(),
                num(value(PlainBytesPerDelivery), 0),
                num(value(PlainCpuPerDelivery), 2),
                num(value(PlainDeliveryRate), 0),
                num(value(PlainKibIdle), 2),
            );
            let _ = writeln!(
                out,
                "| {} | deflate | {} | {} | {} | {} | {} |",
                server.name(),
                num(value(DeflateBytesPerDelivery), 0),
                num(value(DeflateCpuPerDelivery), 2),
                num(value(DeflateDeliveryRate), 0),
                num(value(DeflateKibIdle), 2),
                num(value(DeflateKibAfter), 2),
            );
        }
    }

    /// The compression targets.
    pub(super) fn deflate_targets(&self) -> Vec<Target> {
        use Metric::*;
        let sb = |m| self.median(Flavor::Switchboard, m);
        let ratio = |a: Option<f64>, b: Option<f64>| match (a, b) {
            (Some(a), Some(b)) if b > 0.0 => Some(a / b),
            _ => None,
        };
        vec![
            Target::at_least(
                "compressed fan-out: bytes/delivery plain / deflate ≥ 3",
                ratio(sb(PlainBytesPerDelivery), sb(DeflateBytesPerDelivery)),
                3.0,
            ),
            Target::new(
                "compressed fan-out: CPU/delivery ≤ 1.3 × switchboard plain",
                ratio(sb(DeflateCpuPerDelivery), sb(PlainCpuPerDelivery)),
                1.3,
            ),
            Target::new(
                "compressed fan-out: CPU/delivery ≤ 0.5 × ws-deflate's",
                ratio(
                    sb(DeflateCpuPerDelivery),
                    self.median(Flavor::WsDeflate, DeflateCpuPerDelivery),
                ),
                0.5,
            ),
            Target::absolute(
                "compressed fan-out: idle KiB/session, deflate − plain ≤ 0.2",
                sb(DeflateKibIdle).zip(sb(PlainKibIdle)).map(|(d, p)| d - p),
                0.2,
            ),
        ]
    }
}
