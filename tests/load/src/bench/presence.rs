//! The presence scenario's processes: a private Redis for the whole
//! scenario, and fresh switchboard nodes for each part, every one keeping
//! presence for [`PRESENCE_TOPICS`] only.

use std::time::Duration;

use super::{BenchOptions, Outcome, ServerProcess};
use crate::error::LoadError;
use crate::redis::{RedisConnection, RedisProcess};
use crate::scenario::{self, PRESENCE_TOPICS, PresenceResult, Target};
use crate::server::Server;

/// The key prefix of the nodes on the private Redis.
const PREFIX: &str = "sbpresence";

/// A ping interval of an hour: the crowd's idle windows see no traffic but the heartbeat's.
const NO_PINGS_MS: &str = "3600000";

/// Runs the rounds on one node, then on two nodes on a private Redis (its
/// data flushed after), measures that Redis alone in idle windows, then
/// runs the crowd on one node on that Redis beating every
/// `presence.heartbeat`, then the crowd on one node.
pub(super) async fn run(options: &BenchOptions, server: Server) -> Result<Outcome, LoadError> {
    let params = &options.presence;
    let redis = RedisProcess::start(&options.log_dir, options.server_cpus.as_deref()).await?;
    let kept = ("SWITCHBOARD_PRESENCE_TOPICS", format!(r#"["{PRESENCE_TOPICS}"]"#));
    let on_redis = [
        kept.clone(),
        ("SWITCHBOARD_BROKER", "redis".to_owned()),
        ("SWITCHBOARD_REDIS__URL", redis.target.url()),
        ("SWITCHBOARD_REDIS__PREFIX", PREFIX.to_owned()),
    ];
    let quiet = ("SWITCHBOARD_LIMITS__PING_INTERVAL_MS", NO_PINGS_MS.to_owned());
    let target = |process: &ServerProcess| Target {
        addr: process.addr,
        pid: process.pid,
        flavor: server.flavor(),
        sources: options.sources,
    };

    let nodes = start(options, server, 1, std::slice::from_ref(&kept)).await?;
    let local_rounds = scenario::rounds(&[target(&nodes[0])], None, params).await?;
    stop(options, nodes).await?;

    let nodes = start(options, server, 2, &on_redis).await?;
    let targets: Vec<Target> = nodes.iter().map(target).collect();
    let redis_rounds = scenario::rounds(&targets, Some(&redis.target), params).await?;
    stop(options, nodes).await?;
    // The two nodes' keys would otherwise stay until they expire.
    RedisConnection::connect(redis.target.addr)
        .await?
        .command(&["FLUSHALL", "SYNC"])
        .await?;
    let redis_alone = scenario::idle_windows(&[], Some(&redis.target), params).await?;

    let mut env = on_redis.to_vec();
    env.push((
        "SWITCHBOARD_REDIS__HEARTBEAT_MS",
        params.heartbeat.as_millis().to_string(),
    ));
    env.push(quiet.clone());
    let nodes = start(options, server, 1, &env).await?;
    let redis_crowd = scenario::crowd(&target(&nodes[0]), Some(&redis.target), params).await?;
    stop(options, nodes).await?;

    let nodes = start(options, server, 1, &[kept, quiet]).await?;
    let local_crowd = scenario::crowd(&target(&nodes[0]), None, params).await?;
    stop(options, nodes).await?;
    Ok(Outcome::Presence(Box::new(PresenceResult {
        local_rounds,
        redis_rounds,
        redis_crowd,
        local_crowd,
        redis_alone,
    })))
}

/// Starts `count` nodes of `server` with `env` and lets them settle.
async fn start(
    options: &BenchOptions,
    server: Server,
    count: usize,
    env: &[(&str, String)],
) -> Result<Vec<ServerProcess>, LoadError> {
    let mut nodes = Vec::with_capacity(count);
    for _ in 0..count {
        nodes.push(ServerProcess::start(options, server, env).await?);
    }
    tokio::time::sleep(options.startup_settle).await;
    Ok(nodes)
}

/// Fails if a node died during the part; then stops them all and lets the
/// kernel tear down their sockets.
async fn stop(options: &BenchOptions, nodes: Vec<ServerProcess>) -> Result<(), LoadError> {
    for node in &nodes {
        node.check_alive()?;
    }
    drop(nodes);
    tokio::time::sleep(options.startup_settle.max(Duration::from_millis(100))).await;
    Ok(())
}

/// One line for the log.
pub(super) fn summary(r: &PresenceResult) -> String {
    let ratio = |rounds: &scenario::RoundsResult| {
        let ratios: Vec<f64> = rounds.pairs().map(|(k, p)| k.nodes_us() / p.nodes_us()).collect();
        median(ratios)
    };
    let heartbeat = median(r.redis_crowd.idle.iter().filter_map(|w| w.redis_us()).collect());
    format!(
        "subscribe round with presence / plain: {:.2} one node, {:.2} two on Redis; Redis {:.0} µs per heartbeat \
         ({} sessions); presence_stats p50 {:.1} ms local, {:.1} ms Redis",
        ratio(&r.local_rounds),
        ratio(&r.redis_rounds),
        heartbeat,
        r.redis_crowd.sessions,
        r.local_crowd.stats.latency.p50_us / 1e3,
        r.redis_crowd.stats.latency.p50_us / 1e3,
    )
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values.get(values.len() / 2).copied().unwrap_or(f64::NAN)
}
