//! What topic presence (`presence_topics`) costs, switchboard only:
//!
//! * [`rounds`]: sessions subscribe to a topic and unsubscribe again, round
//!   after round, in windows that alternate between topics whose presence
//!   the nodes keep (`room:…`) and topics whose they do not (`plain:…`);
//!   the nodes' CPU (and Redis's) per round in each;
//! * [`crowd`]: many idle sessions in topics with presence: the CPU of one
//!   heartbeat period with no session and with all of them (on Redis the
//!   heartbeat extends every presence key), on Redis the cost of writing
//!   presence again whole after `FLUSHALL`, then every session joins one
//!   topic and `presence_stats` and a page of `presence` on it are timed.
//!
//! CPU here is [`procfs::cpu_ns`], the time every thread ran, precise to
//! far below a clock tick: a heartbeat costs well under one.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt, TryStreamExt};
use tokio_tungstenite::tungstenite::Message;

use super::http::{Answer, Backend};
use super::{Percentiles, Target, stop_all, wait_response};
use crate::client::Ws;
use crate::error::LoadError;
use crate::flavor::Flavor;
use crate::procfs;
use crate::redis::{RedisConnection, RedisTarget};

const SCENARIO: &str = "presence";

/// The topics whose presence the nodes keep: give the nodes
/// `presence_topics = [PRESENCE_TOPICS]`. Every other topic is plain.
pub const PRESENCE_TOPICS: &str = "room:*";

/// The prefix of the topics with presence, and of those without.
const KEPT: &str = "room";
const PLAIN: &str = "plain";

/// The topic every session of the crowd joins before presence is asked about.
const CROWD_TOPIC: &str = "room:all";

/// A little more than switchboard's default `limits.personal_hold_ms`.
const PERSONAL_HOLD: Duration = Duration::from_millis(1500);

/// How long presence may take to be complete (written to Redis) before the run fails.
const PRESENCE_TIMEOUT: Duration = Duration::from_secs(30);

/// What to run.
#[derive(Debug, Clone)]
pub struct PresenceParams {
    /// Sessions making subscribe + unsubscribe rounds, spread over the nodes.
    pub round_sessions: usize,
    /// Topics of each kind the rounds spread over (`room:0`…, `plain:0`…).
    /// One more session per node stays subscribed to all of them, so that
    /// no topic comes and goes with the rounds.
    pub round_topics: usize,
    /// Measured windows of each kind.
    pub windows: usize,
    /// Length of one window.
    pub window: Duration,
    /// Time between switching the kind of topic and the window.
    pub settle: Duration,
    /// Idle sessions of the crowd.
    pub crowd: usize,
    /// Topics with presence the crowd is spread over (`room:h0`…), before it joins one more.
    pub crowd_topics: usize,
    /// The crowd's node's heartbeat period (`redis.heartbeat_ms`); idle
    /// windows are a whole number of them on every broker.
    pub heartbeat: Duration,
    /// Idle windows before the crowd connects, and again with it connected.
    pub idle_windows: usize,
    /// Heartbeat periods in one idle window.
    pub heartbeats_per_window: u32,
    /// Times presence is written again whole after `FLUSHALL` (on Redis).
    pub rewrites: usize,
    /// Timed calls of `presence_stats`, and of `presence` with a limit.
    pub calls: usize,
    /// The `limit` of the timed `presence` calls.
    pub page: usize,
    /// Check every answer in full.
    pub verify: bool,
}

/// CPU seconds of the nodes and, when there is one, of Redis.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Cpu {
    /// The nodes', together.
    pub nodes: f64,
    /// Redis's.
    pub redis: Option<f64>,
}

/// One measured window of rounds.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct RoundsWindow {
    /// Whether the rounds were on topics with presence.
    pub kept: bool,
    /// Rounds (a subscribe and an unsubscribe, each answered) completed in it.
    pub rounds: u64,
    /// Its length in seconds.
    pub seconds: f64,
    /// CPU spent in it.
    pub cpu: Cpu,
}

impl RoundsWindow {
    /// The nodes' CPU µs per round.
    pub fn nodes_us(&self) -> f64 {
        self.cpu.nodes * 1e6 / self.rounds.max(1) as f64
    }

    /// Redis's CPU µs per round.
    pub fn redis_us(&self) -> Option<f64> {
        self.cpu.redis.map(|s| s * 1e6 / self.rounds.max(1) as f64)
    }
}

/// The windows of [`rounds`], in the order they ran: pairs of one window of
/// each kind, presence first in every other pair.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RoundsResult {
    /// Nodes the sessions were spread over.
    pub nodes: usize,
    /// Every window.
    pub windows: Vec<RoundsWindow>,
}

impl RoundsResult {
    /// The pairs of windows measured next to each other, as (with presence, plain).
    pub fn pairs(&self) -> impl Iterator<Item = (&RoundsWindow, &RoundsWindow)> {
        self.windows
            .chunks_exact(2)
            .map(|p| if p[0].kept { (&p[0], &p[1]) } else { (&p[1], &p[0]) })
    }
}

/// CPU over one idle window.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct IdleWindow {
    /// Heartbeat periods it lasted.
    pub heartbeats: u32,
    /// CPU spent in it.
    pub cpu: Cpu,
}

impl IdleWindow {
    /// The node's CPU µs per heartbeat period.
    pub fn node_us(&self) -> f64 {
        self.cpu.nodes * 1e6 / f64::from(self.heartbeats.max(1))
    }

    /// Redis's CPU µs per heartbeat period.
    pub fn redis_us(&self) -> Option<f64> {
        self.cpu.redis.map(|s| s * 1e6 / f64::from(self.heartbeats.max(1)))
    }
}

/// Presence written again whole after `FLUSHALL`.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Rewrite {
    /// Keys Redis held before the flush and holds again after.
    pub keys: u64,
    /// From `FLUSHALL`'s answer until Redis holds them all again, ms.
    pub millis: f64,
    /// CPU over that time (and 20 ms more, for the last keys' expiry).
    pub cpu: Cpu,
}

/// Timed server API calls.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Timed {
    /// From sending the request to reading the whole answer.
    pub latency: Percentiles,
    /// Calls made.
    pub calls: usize,
    /// CPU over the calls.
    pub cpu: Cpu,
}

impl Timed {
    /// The node's CPU µs per call.
    pub fn node_us(&self) -> f64 {
        self.cpu.nodes * 1e6 / self.calls.max(1) as f64
    }

    /// Redis's CPU µs per call.
    pub fn redis_us(&self) -> Option<f64> {
        self.cpu.redis.map(|s| s * 1e6 / self.calls.max(1) as f64)
    }
}

/// What [`crowd`] measured.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CrowdResult {
    /// Sessions of the crowd.
    pub sessions: usize,
    /// Idle windows before the first session connected.
    pub empty: Vec<IdleWindow>,
    /// Idle windows with every session connected and in its topic.
    pub idle: Vec<IdleWindow>,
    /// Presence written again whole after `FLUSHALL` (Redis only).
    pub rewrites: Vec<Rewrite>,
    /// `presence_stats {topic}` on the topic every session is in.
    pub stats: Timed,
    /// `presence {topic, limit}` on it: its first page.
    pub page: Timed,
}

/// The whole scenario, as `switchboard-load` runs it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PresenceResult {
    /// [`rounds`] on one node (the local broker).
    pub local_rounds: RoundsResult,
    /// [`rounds`] on two nodes on Redis.
    pub redis_rounds: RoundsResult,
    /// [`crowd`] on one node on Redis.
    pub redis_crowd: CrowdResult,
    /// [`crowd`] on one node (the local broker).
    pub local_crowd: CrowdResult,
    /// [`idle_windows`] of Redis with no node, before the crowd's node started.
    pub redis_alone: Vec<IdleWindow>,
}

/// The CPU time of `nodes` and `redis` now, in ns.
struct Reading {
    nodes: u64,
    redis: Option<u64>,
}

impl Reading {
    fn now(nodes: &[Target], redis: Option<&RedisTarget>) -> Result<Self, LoadError> {
        let mut total = 0;
        for node in nodes {
            total += procfs::cpu_ns(node.pid)?;
        }
        Ok(Self {
            nodes: total,
            redis: redis.map(|r| procfs::cpu_ns(r.pid)).transpose()?,
        })
    }

    fn since(&self, earlier: &Reading) -> Cpu {
        let seconds = |a: u64, b: u64| a.saturating_sub(b) as f64 / 1e9;
        Cpu {
            nodes: seconds(self.nodes, earlier.nodes),
            redis: self.redis.zip(earlier.redis).map(|(a, b)| seconds(a, b)),
        }
    }
}

/// What the round sessions share with the windows.
#[derive(Default)]
struct Rounds {
    kept: AtomicBool,
    done: AtomicU64,
}

/// Spreads `params.round_sessions` sessions over `nodes` (one more per node
/// stays in every topic), then measures windows of subscribe + unsubscribe
/// rounds, alternating between topics with presence and plain ones (with
/// presence, plain, plain, with presence, …). Each session has one request
/// in flight; its topic is shared with the sessions of the same number
/// modulo `round_topics`, on every node.
pub async fn rounds(
    nodes: &[Target],
    redis: Option<&RedisTarget>,
    params: &PresenceParams,
) -> Result<RoundsResult, LoadError> {
    let every_topic: Vec<String> = [KEPT, PLAIN]
        .into_iter()
        .flat_map(|kind| (0..params.round_topics).map(move |i| format!("{kind}:{i}")))
        .collect();
    let mut tasks = Vec::new();
    for (i, node) in nodes.iter().enumerate() {
        let mut anchor = node.connector().connect(params.round_sessions + i).await?;
        subscribe_to(&mut anchor, 1, &every_topic).await?;
        tasks.push(tokio::spawn(idle(anchor)));
    }
    let connectors: Vec<_> = nodes.iter().map(Target::connector).collect();
    let sessions: Vec<(usize, Ws)> = futures_util::stream::iter(0..params.round_sessions)
        .map(|n| {
            let connector = &connectors[n % nodes.len()];
            async move { Ok::<_, LoadError>((n, connector.connect(n).await?)) }
        })
        .buffer_unordered(64)
        .try_collect()
        .await?;
    let shared = Arc::new(Rounds::default());
    for (n, ws) in sessions {
        let topic = (n / nodes.len()) % params.round_topics.max(1);
        tasks.push(tokio::spawn(round_trips(ws, topic, shared.clone())));
    }
    let mut windows = Vec::with_capacity(params.windows * 2);
    let measured = async {
        for w in 0..params.windows * 2 {
            let kept = matches!(w % 4, 0 | 3);
            shared.kept.store(kept, Ordering::Relaxed);
            tokio::time::sleep(params.settle).await;
            let done = shared.done.load(Ordering::Relaxed);
            let before = Reading::now(nodes, redis)?;
            let started = Instant::now();
            tokio::time::sleep(params.window).await;
            let after = Reading::now(nodes, redis)?;
            windows.push(RoundsWindow {
                kept,
                rounds: shared.done.load(Ordering::Relaxed) - done,
                seconds: started.elapsed().as_secs_f64(),
                cpu: after.since(&before),
            });
        }
        Ok::<_, LoadError>(())
    }
    .await;
    // A session that failed is the likelier cause of a failed window: its error goes first.
    stop_all(tasks).await?;
    measured?;
    if windows.iter().any(|w| w.rounds == 0) {
        return Err(unexpected("a window completed no round".to_owned()));
    }
    Ok(RoundsResult {
        nodes: nodes.len(),
        windows,
    })
}

/// One session's rounds: subscribe to its topic of the current kind, wait
/// for the answer, unsubscribe, wait for the answer, count, again.
async fn round_trips(mut ws: Ws, topic: usize, shared: Arc<Rounds>) -> Result<(), LoadError> {
    let mut id = 10;
    loop {
        let kind = if shared.kept.load(Ordering::Relaxed) {
            KEPT
        } else {
            PLAIN
        };
        let topic = format!("{kind}:{topic}");
        id += 1;
        ws.send(Message::text(Flavor::Switchboard.subscribe_frame(id, &topic)))
            .await?;
        wait_response(&mut ws, Flavor::Switchboard, id, "a subscription").await?;
        id += 1;
        ws.send(Message::text(unsubscribe_frame(id, &topic))).await?;
        wait_response(&mut ws, Flavor::Switchboard, id, "an unsubscription").await?;
        shared.done.fetch_add(1, Ordering::Relaxed);
    }
}

/// A session that only keeps its subscriptions: reads (so that pings are
/// answered) until the run ends.
async fn idle(mut ws: Ws) -> Result<(), LoadError> {
    while let Some(message) = ws.next().await {
        message?;
    }
    Err(LoadError::Closed(SCENARIO))
}

/// Measures idle windows of whole heartbeat periods on `node`, opens
/// `params.crowd` sessions to it, each in one of `params.crowd_topics`
/// topics with presence, and measures idle windows again; on
/// Redis, writes presence again whole after `FLUSHALL` `params.rewrites`
/// times; then every session joins one more topic and `presence_stats` and
/// a page of `presence` on it are timed through `POST /api`. `node` must keep
/// presence for [`PRESENCE_TOPICS`] and, on Redis, beat every
/// `params.heartbeat`.
pub async fn crowd(
    node: &Target,
    redis: Option<&RedisTarget>,
    params: &PresenceParams,
) -> Result<CrowdResult, LoadError> {
    let nodes = std::slice::from_ref(node);
    let empty = idle_windows(nodes, redis, params).await?;
    let connector = node.connector();
    let mut sessions: Vec<Ws> = futures_util::stream::iter(0..params.crowd)
        .map(|n| {
            let connector = &connector;
            async move {
                let mut ws = connector.connect(n).await?;
                let topic = format!("{KEPT}:h{}", n % params.crowd_topics.max(1));
                subscribe_to(&mut ws, 1, &[topic]).await?;
                Ok::<_, LoadError>(ws)
            }
        })
        .buffer_unordered(64)
        .try_collect()
        .await?;
    wait_for_presence(node, None, params.crowd).await?;
    // The windows see heartbeats only: every key has been extended once, and
    // every session's personal-topic hold (`limits.personal_hold_ms`, which a
    // first `rpc.subscribe` does not end) has run out.
    tokio::time::sleep(params.heartbeat * 2 + PERSONAL_HOLD).await;
    let idle = idle_windows(nodes, redis, params).await?;
    let mut rewrites = Vec::new();
    if let Some(redis) = redis {
        let mut con = RedisConnection::connect(redis.addr).await?;
        for _ in 0..params.rewrites {
            rewrites.push(rewrite(node, redis, &mut con, params).await?);
            if params.verify {
                wait_for_presence(node, None, params.crowd).await?;
            }
            // The next flush falls elsewhere in the heartbeat period.
            tokio::time::sleep(params.heartbeat.mul_f64(1.37)).await;
        }
    }
    futures_util::stream::iter(sessions.iter_mut())
        .map(Ok)
        .try_for_each_concurrent(
            64,
            |ws| async move { subscribe_to(ws, 2, &[CROWD_TOPIC.to_owned()]).await },
        )
        .await?;
    wait_for_presence(node, Some(CROWD_TOPIC), params.crowd).await?;
    // A fresh connection: the server closes one that stays idle (`limits.handshake_timeout_ms`).
    let mut backend = Backend::connect(node.addr).await?;
    let stats = format!(r#"{{"jsonrpc":"2.0","id":1,"method":"presence_stats","params":{{"topic":"{CROWD_TOPIC}"}}}}"#);
    let expected = params.crowd;
    let stats = timed(
        &mut backend,
        &stats,
        nodes,
        redis,
        params,
        |answer| match sessions_counted(answer) {
            Some(n) if n == expected => Ok(()),
            _ => Err(unexpected(format!(
                "presence_stats did not count {expected} sessions: {}",
                answer.excerpt()
            ))),
        },
    )
    .await?;
    let page = format!(
        r#"{{"jsonrpc":"2.0","id":1,"method":"presence","params":{{"topic":"{CROWD_TOPIC}","limit":{}}}}}"#,
        params.page
    );
    let wanted = params.page.min(params.crowd);
    let page = timed(&mut backend, &page, nodes, redis, params, |answer| {
        check_page(answer, wanted, params.verify)
    })
    .await?;
    drop(sessions);
    Ok(CrowdResult {
        sessions: params.crowd,
        empty,
        idle,
        rewrites,
        stats,
        page,
    })
}

/// CPU over `params.idle_windows` windows of `params.heartbeats_per_window`
/// heartbeat periods with no traffic.
pub async fn idle_windows(
    nodes: &[Target],
    redis: Option<&RedisTarget>,
    params: &PresenceParams,
) -> Result<Vec<IdleWindow>, LoadError> {
    let mut windows = Vec::with_capacity(params.idle_windows);
    for _ in 0..params.idle_windows {
        let before = Reading::now(nodes, redis)?;
        tokio::time::sleep(params.heartbeat * params.heartbeats_per_window).await;
        let after = Reading::now(nodes, redis)?;
        windows.push(IdleWindow {
            heartbeats: params.heartbeats_per_window,
            cpu: after.since(&before),
        });
    }
    Ok(windows)
}

/// Flushes Redis and measures the time and CPU until it holds as many keys
/// as before again (the node writes every key it finds lost at its next
/// heartbeat), polling `DBSIZE` every 5 ms.
async fn rewrite(
    node: &Target,
    redis: &RedisTarget,
    con: &mut RedisConnection,
    params: &PresenceParams,
) -> Result<Rewrite, LoadError> {
    let keys = con.integer(&["DBSIZE"]).await?;
    con.command(&["FLUSHALL", "SYNC"]).await?;
    let flushed = Instant::now();
    let nodes = std::slice::from_ref(node);
    let before = Reading::now(nodes, Some(redis))?;
    let deadline = flushed + params.heartbeat * 10 + PRESENCE_TIMEOUT;
    loop {
        tokio::time::sleep(Duration::from_millis(5)).await;
        if con.integer(&["DBSIZE"]).await? >= keys {
            break;
        }
        if Instant::now() > deadline {
            return Err(LoadError::Timeout("presence to be written again after FLUSHALL"));
        }
    }
    let millis = flushed.elapsed().as_secs_f64() * 1e3;
    tokio::time::sleep(Duration::from_millis(20)).await;
    let after = Reading::now(nodes, Some(redis))?;
    Ok(Rewrite {
        keys: keys as u64,
        millis,
        cpu: after.since(&before),
    })
}

/// Times `params.calls` posts of `body` to `/api` (after two untimed ones),
/// each answer checked by `check`.
async fn timed(
    backend: &mut Backend,
    body: &str,
    nodes: &[Target],
    redis: Option<&RedisTarget>,
    params: &PresenceParams,
    check: impl Fn(&Answer) -> Result<(), LoadError>,
) -> Result<Timed, LoadError> {
    for _ in 0..2 {
        check(&backend.post("/api", body).await?)?;
    }
    let mut latencies = Vec::with_capacity(params.calls);
    let before = Reading::now(nodes, redis)?;
    for _ in 0..params.calls {
        let sent = Instant::now();
        let answer = backend.post("/api", body).await?;
        latencies.push(sent.elapsed().as_micros().min(u128::from(u32::MAX)) as u32);
        check(&answer)?;
    }
    let after = Reading::now(nodes, redis)?;
    Ok(Timed {
        latency: Percentiles::from_samples(latencies),
        calls: params.calls,
        cpu: after.since(&before),
    })
}

/// Waits until `presence_stats` (of `topic`, or of everyone) counts `sessions`.
async fn wait_for_presence(node: &Target, topic: Option<&str>, sessions: usize) -> Result<(), LoadError> {
    let mut backend = Backend::connect(node.addr).await?;
    let params = topic.map_or("{}".to_owned(), |t| format!(r#"{{"topic":"{t}"}}"#));
    let body = format!(r#"{{"jsonrpc":"2.0","id":1,"method":"presence_stats","params":{params}}}"#);
    let deadline = Instant::now() + PRESENCE_TIMEOUT;
    loop {
        if sessions_counted(&backend.post("/api", &body).await?) == Some(sessions) {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(LoadError::Timeout("presence to count every session"));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The `sessions` of a `presence_stats` answer.
fn sessions_counted(answer: &Answer) -> Option<usize> {
    let result = crate::flavor::member(&answer.body, r#""result":"#)?;
    crate::flavor::member(result, r#""sessions":"#)?.parse().ok()
}

/// Checks a page of `presence`: `wanted` entries (counted in full when
/// `verify`, otherwise only its shape).
fn check_page(answer: &Answer, wanted: usize, verify: bool) -> Result<(), LoadError> {
    let wrong = || unexpected(format!("not a page of {wanted} entries: {}", answer.excerpt()));
    if answer.status != 200 || !answer.body.contains(r#""result":{"entries":["#) {
        return Err(wrong());
    }
    if verify {
        let value: serde_json::Value = serde_json::from_str(&answer.body).map_err(|_| wrong())?;
        if value["result"]["entries"].as_array().map(Vec::len) != Some(wanted) {
            return Err(wrong());
        }
    }
    Ok(())
}

/// Subscribes `ws` to `topics` with request id `id` and waits for the answer.
async fn subscribe_to(ws: &mut Ws, id: u64, topics: &[String]) -> Result<(), LoadError> {
    let topics: Vec<String> = topics.iter().map(|t| format!(r#"{{"topic":"{t}"}}"#)).collect();
    let frame = format!(
        r#"{{"jsonrpc":"2.0","id":{id},"method":"rpc.subscribe","params":{{"topics":[{}]}}}}"#,
        topics.join(",")
    );
    ws.send(Message::text(frame)).await?;
    wait_response(ws, Flavor::Switchboard, id, "a subscription").await
}

fn unsubscribe_frame(id: u64, topic: &str) -> String {
    format!(r#"{{"jsonrpc":"2.0","id":{id},"method":"rpc.unsubscribe","params":{{"topics":["{topic}"]}}}}"#)
}

fn unexpected(detail: String) -> LoadError {
    LoadError::Unexpected {
        scenario: SCENARIO,
        detail,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_pair_up_whichever_kind_ran_first() {
        let window = |kept, rounds| RoundsWindow {
            kept,
            rounds,
            ..RoundsWindow::default()
        };
        let result = RoundsResult {
            nodes: 1,
            windows: vec![window(true, 1), window(false, 2), window(false, 3), window(true, 4)],
        };
        let pairs: Vec<(u64, u64)> = result.pairs().map(|(k, p)| (k.rounds, p.rounds)).collect();
        assert_eq!(pairs, [(1, 2), (4, 3)]);
    }

    #[test]
    fn stats_answers_are_read() {
        let answer = Answer {
            status: 200,
            body: r#"{"jsonrpc":"2.0","id":1,"result":{"sessions":10000,"users":10000}}"#.to_owned(),
        };
        assert_eq!(sessions_counted(&answer), Some(10_000));
        let page = Answer {
            status: 200,
            body: r#"{"jsonrpc":"2.0","id":1,"result":{"entries":[{"session":"n.1","user":"u1","node":"n"}],"next":null}}"#
                .to_owned(),
        };
        check_page(&page, 1, true).unwrap();
        assert!(check_page(&page, 2, true).is_err());
    }
}
