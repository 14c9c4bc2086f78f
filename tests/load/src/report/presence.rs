//! The presence scenario's tables: a subscription with presence against a
//! plain one, the heartbeat and a whole rewrite on Redis, and presence
//! answers on a large topic.

use std::fmt::Write as _;

use super::{Stat, Summary};
use crate::bench::{BenchOptions, Outcome};
use crate::scenario::{CrowdResult, PRESENCE_TOPICS, PresenceResult, RoundsResult};

/// `median (lowest–highest)`, or `—`.
fn spread(values: Vec<f64>, digits: usize) -> String {
    Stat::of(values).map_or("—".to_owned(), |s| {
        if s.min == s.max {
            format!("{:.digits$}", s.median)
        } else {
            format!("{:.digits$} ({:.digits$}–{:.digits$})", s.median, s.min, s.max)
        }
    })
}

impl Summary {
    /// The presence scenario's run, if there was one that did not fail.
    fn presence(&self) -> Option<&PresenceResult> {
        self.runs.iter().find_map(|r| match &r.outcome {
            Outcome::Presence(p) => Some(p.as_ref()),
            _ => None,
        })
    }

    /// The tables of the presence scenario, if it ran.
    pub(super) fn write_presence(&self, out: &mut String, options: &BenchOptions) {
        let Some(r) = self.presence() else { return };
        let p = &options.presence;
        let _ = writeln!(
            out,
            "\n**Topic presence** (switchboard with `presence_topics = [\"{PRESENCE_TOPICS}\"]`. CPU is the time every \
             thread of the process ran (`/proc/<pid>/task/*/schedstat`); medians, and in parentheses the range, over \
             the windows or the calls)\n"
        );
        let _ = writeln!(
            out,
            "Subscribe rounds: {n} sessions, each making `rpc.subscribe` then `rpc.unsubscribe` of one topic with one \
             request in flight, over {t} topics of each kind (`room:0`… with presence, `plain:0`… without), with one \
             more session per node subscribed to all of them throughout; {w} windows of {s:.1} s of each kind, \
             alternating (with presence, plain, plain, with presence, …). The ratio and the difference are taken \
             between the two windows of each pair.\n",
            n = p.round_sessions,
            t = p.round_topics,
            w = p.windows,
            s = p.window.as_secs_f64(),
        );
        let _ = writeln!(
            out,
            "| nodes | CPU µs/round, with presence | plain | with presence / plain | added µs/round | Redis CPU \
             µs/round, with presence | plain | rounds/s, with presence / plain |\n|---|---:|---:|---:|---:|---:|---:|---:|"
        );
        for (name, rounds) in [
            ("one node (local broker)", &r.local_rounds),
            ("two nodes on Redis (both nodes' CPU)", &r.redis_rounds),
        ] {
            write_rounds(out, name, rounds);
        }
        let _ = writeln!(
            out,
            "\nA crowd of {c} idle sessions on one node, each in one of {t} topics with presence (no pings: a ping \
             interval of an hour); CPU per heartbeat period of {hb} ms over {w} windows of {k} periods each: of Redis \
             alone before the node started, of the node before the crowd connected, and with the crowd. On the local \
             broker there is no heartbeat: its rows are the idle node.\n",
            c = p.crowd,
            t = p.crowd_topics,
            hb = p.heartbeat.as_millis(),
            k = p.heartbeats_per_window,
            w = p.idle_windows,
        );
        let _ = writeln!(
            out,
            "| | node CPU µs per heartbeat period | Redis CPU µs per heartbeat period |\n|---|---:|---:|"
        );
        let _ = writeln!(
            out,
            "| Redis alone, no node | — | {} |",
            spread(r.redis_alone.iter().filter_map(|w| w.redis_us()).collect(), 0),
        );
        for (name, crowd) in [("on Redis", &r.redis_crowd), ("local broker", &r.local_crowd)] {
            let _ = writeln!(
                out,
                "| {name}, no session | {} | {} |",
                spread(crowd.empty.iter().map(|w| w.node_us()).collect(), 0),
                spread(crowd.empty.iter().filter_map(|w| w.redis_us()).collect(), 0),
            );
            let _ = writeln!(
                out,
                "| {name}, {} sessions | {} | {} |",
                crowd.sessions,
                spread(crowd.idle.iter().map(|w| w.node_us()).collect(), 0),
                spread(crowd.idle.iter().filter_map(|w| w.redis_us()).collect(), 0),
            );
        }
        write_rewrites(out, &r.redis_crowd);
        let _ = writeln!(
            out,
            "\nThen every session of the crowd joins `room:all` and `POST /api` is timed on one keep-alive \
             connection, one call at a time ({calls} calls after 2 untimed): `presence_stats {{topic}}` and \
             `presence {{topic, limit: {page}}}` (the first page).\n",
            calls = p.calls,
            page = p.page,
        );
        let _ = writeln!(
            out,
            "| | presence_stats p50 / p99 ms | node CPU µs/call | Redis CPU µs/call | page of {page} p50 / p99 ms | \
             node CPU µs/call | Redis CPU µs/call |\n|---|---:|---:|---:|---:|---:|---:|",
            page = p.page,
        );
        for (name, crowd) in [("local broker", &r.local_crowd), ("on Redis", &r.redis_crowd)] {
            let ms = |us: f64| format!("{:.2}", us / 1e3);
            let redis = |v: Option<f64>| v.map_or("—".to_owned(), |v| format!("{v:.0}"));
            let _ = writeln!(
                out,
                "| {name}, {} subscribers | {} / {} | {:.0} | {} | {} / {} | {:.0} | {} |",
                crowd.sessions,
                ms(crowd.stats.latency.p50_us),
                ms(crowd.stats.latency.p99_us),
                crowd.stats.node_us(),
                redis(crowd.stats.redis_us()),
                ms(crowd.page.latency.p50_us),
                ms(crowd.page.latency.p99_us),
                crowd.page.node_us(),
                redis(crowd.page.redis_us()),
            );
        }
    }
}

fn write_rounds(out: &mut String, name: &str, rounds: &RoundsResult) {
    let kind = |kept: bool| rounds.windows.iter().filter(move |w| w.kept == kept);
    let redis = |kept: bool| {
        let values: Vec<f64> = kind(kept).filter_map(|w| w.redis_us()).collect();
        spread(values, 2)
    };
    let rate = |kept: bool| {
        let values: Vec<f64> = kind(kept)
            .map(|w| w.rounds as f64 / w.seconds.max(f64::EPSILON))
            .collect();
        Stat::of(values).map_or("—".to_owned(), |s| format!("{:.0}", s.median))
    };
    let _ = writeln!(
        out,
        "| {name} | {} | {} | {} | {} | {} | {} | {} / {} |",
        spread(kind(true).map(|w| w.nodes_us()).collect(), 2),
        spread(kind(false).map(|w| w.nodes_us()).collect(), 2),
        spread(rounds.pairs().map(|(k, p)| k.nodes_us() / p.nodes_us()).collect(), 3),
        spread(rounds.pairs().map(|(k, p)| k.nodes_us() - p.nodes_us()).collect(), 2),
        redis(true),
        redis(false),
        rate(true),
        rate(false),
    );
}

fn write_rewrites(out: &mut String, crowd: &CrowdResult) {
    if crowd.rewrites.is_empty() {
        return;
    }
    let keys = crowd.rewrites[0].keys;
    let _ = writeln!(
        out,
        "\nPresence written again whole after `FLUSHALL SYNC` on Redis ({n} times, {keys} keys: the node's \
         sessions, its {t} topics, its figures and the set of nodes), with the crowd connected: the time from \
         `FLUSHALL`'s answer until Redis holds as many keys as before (`DBSIZE` polled every 5 ms: mostly the wait \
         for the next heartbeat), and the CPU over that time plus 20 ms (it includes that heartbeat's usual work and \
         the polls).\n",
        n = crowd.rewrites.len(),
        t = keys.saturating_sub(3),
    );
    let _ = writeln!(
        out,
        "| FLUSHALL → every key again, ms | Redis CPU ms | node CPU ms |\n|---:|---:|---:|\n| {} | {} | {} |",
        spread(crowd.rewrites.iter().map(|r| r.millis).collect(), 1),
        spread(
            crowd
                .rewrites
                .iter()
                .filter_map(|r| r.cpu.redis)
                .map(|s| s * 1e3)
                .collect(),
            2
        ),
        spread(crowd.rewrites.iter().map(|r| r.cpu.nodes * 1e3).collect(), 2),
    );
}
