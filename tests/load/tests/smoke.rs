//! The load tool's smoke run inside `tests/run`: every scenario against an
//! in-process switchboard and each Rust peer, with every answer checked.
//! Nothing here looks at timings; the benchmark itself is `tests/load/run`.

use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use switchboard_load::bench::BenchOptions;
use switchboard_load::flavor::{Flavor, Scenario};
use switchboard_load::peers;
use switchboard_load::redis::RedisProcess;
use switchboard_load::scenario::{self, PRESENCE_TOPICS, Target};
use switchboard_server::config::{BrokerKind, TopicPattern};
use switchboard_server::{Config, Gateway};

/// Runs every scenario `flavor` supports against the server at `addr`, in
/// this process (its CPU and RSS are read from this process too).
async fn smoke(flavor: Flavor, addr: SocketAddr) {
    let options = BenchOptions::smoke("unused".into(), "unused".into());
    let target = Target {
        addr,
        pid: std::process::id(),
        flavor,
        sources: options.sources,
    };
    let run = async {
        if flavor.supports(Scenario::Calls) {
            let r = scenario::calls(&target, &options.calls).await.expect("calls");
            assert!(r.calls > 0, "{flavor}: no call was answered in the window");
        }
        if flavor.supports(Scenario::Fanout) {
            let r = scenario::fanout(&target, &options.fanout).await.expect("fan-out");
            assert_eq!(
                r.deliveries,
                r.publications * options.fanout.subscribers as u64,
                "{flavor}: every subscriber gets every publication"
            );
        }
        if flavor.supports(Scenario::FanoutDeflate) {
            let expected = options.deflate.fanout.subscribers as u64;
            let mut bytes = Vec::new();
            for compression in scenario::Compression::BOTH {
                let r = scenario::deflate_fanout(&target, &options.deflate, compression)
                    .await
                    .expect("compressed fan-out");
                assert_eq!(
                    r.fanout.deliveries,
                    r.fanout.publications * expected,
                    "{flavor} {}: every subscriber gets every publication",
                    compression.name()
                );
                bytes.push(r.bytes_per_delivery());
            }
            // The fixture shrinks to about half; subscribers that negotiated read that.
            assert!(
                bytes[1] < bytes[0] * 0.75,
                "{flavor}: deflate subscribers read {:.0} B per delivery, plain ones {:.0}",
                bytes[1],
                bytes[0]
            );
        }
        if flavor.supports(Scenario::Reverse) {
            let r = scenario::calls(&target, &options.reverse).await.expect("reverse calls");
            assert!(r.calls > 0, "{flavor}: no callback round was answered in the window");
        }
        if flavor.supports(Scenario::Memory) {
            let r = scenario::memory(&target, &options.memory).await.expect("memory");
            assert_eq!(r.sessions, options.memory.sessions);
        }
        if flavor.supports(Scenario::Multicall) {
            let r = scenario::multicall(&target, &options.multicall)
                .await
                .expect("multicast calls");
            assert!(r.calls > 0, "{flavor}: no multicast call completed in the window");
            assert_eq!(
                r.targets,
                r.calls * options.multicall.sessions as u64,
                "{flavor}: every session answers every multicast call"
            );
            if flavor == Flavor::Switchboard {
                let first = r.after_first.expect("switchboard times \"first\" calls");
                assert_eq!(first.samples, options.multicall.first_calls);
            }
        }
        if flavor.supports(Scenario::ApiPush) {
            let r = scenario::push(&target, &options.push)
                .await
                .expect("pushes through /api");
            assert!(r.pushes > 0, "{flavor}: no push reached a session in the window");
        }
    };
    within(run).await;
}

/// The cross-node scenario: two in-process nodes on one Redis, the
/// publisher on the first, the subscribers on the second.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn switchboard_across_two_nodes_on_redis() {
    let url = std::env::var("SWITCHBOARD_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned());
    let prefix = format!("sbloadsmoke{}", std::process::id());
    let options = BenchOptions::smoke("unused".into(), "unused".into());
    let mut nodes = Vec::new();
    for _ in 0..2 {
        let mut config = Config::default();
        config.broker = switchboard_server::config::BrokerKind::Redis;
        config.redis.url = url.clone();
        config.redis.prefix = prefix.clone();
        let gateway = Gateway::builder(config).build().unwrap();
        let (listener, addr) = local_listener().await;
        tokio::spawn(gateway.serve(listener, std::future::pending()));
        nodes.push(Target {
            addr,
            pid: std::process::id(),
            flavor: Flavor::Switchboard,
            sources: options.sources,
        });
    }
    within(async {
        let r = scenario::fanout_from(&nodes[1], Some(&nodes[0]), &options.fanout)
            .await
            .expect("fan-out across nodes");
        assert_eq!(
            r.deliveries,
            r.publications * options.fanout.subscribers as u64,
            "every subscriber on the other node gets every publication"
        );
    })
    .await;
}

/// The presence scenario: a node on the local broker, two and then one on a
/// private redis-server (which `tests/run` installs), each keeping presence
/// for `room:*` only, as `switchboard-load` starts them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn switchboard_presence() {
    let options = BenchOptions::smoke("unused".into(), "unused".into());
    let p = &options.presence;
    let scratch = std::env::temp_dir().join(format!("sbload-presence-{}", std::process::id()));
    let redis = RedisProcess::start(&scratch, None)
        .await
        .expect("a private redis-server (apt-get install redis-server)");
    let node = async |redis_url: Option<&str>, prefix: &str| {
        let mut config = Config {
            presence_topics: Some(vec![TopicPattern::new(PRESENCE_TOPICS)]),
            ..Config::default()
        };
        // As in the benchmark (SWITCHBOARD_ENV): the rounds go as fast as the
        // machine allows, which a default rate limit would refuse on a fast one.
        config.limits.rate_per_second = 100_000_000;
        config.limits.rate_burst = 100_000_000;
        if let Some(url) = redis_url {
            config.broker = BrokerKind::Redis;
            config.redis.url = url.to_owned();
            config.redis.prefix = prefix.to_owned();
            config.redis.heartbeat_ms = p.heartbeat.as_millis() as u64;
        }
        let gateway = Gateway::builder(config).build().unwrap();
        let (listener, addr) = local_listener().await;
        tokio::spawn(gateway.serve(listener, std::future::pending()));
        Target {
            addr,
            pid: std::process::id(),
            flavor: Flavor::Switchboard,
            sources: options.sources,
        }
    };
    let url = redis.target.url();
    within(async {
        let local = node(None, "").await;
        let rounds = scenario::rounds(&[local], None, p).await.expect("rounds on one node");
        assert_eq!(rounds.windows.len(), 2 * p.windows);
        assert_eq!(rounds.pairs().count(), p.windows, "one window of each kind per pair");
        let pair = [node(Some(&url), "rounds").await, node(Some(&url), "rounds").await];
        let rounds = scenario::rounds(&pair, Some(&redis.target), p)
            .await
            .expect("rounds on two nodes on Redis");
        assert!(rounds.windows.iter().all(|w| w.cpu.redis.is_some()));

        let crowd = scenario::crowd(&node(Some(&url), "crowd").await, Some(&redis.target), p)
            .await
            .expect("the crowd on Redis");
        assert_eq!(crowd.rewrites.len(), p.rewrites);
        assert!(crowd.rewrites.iter().all(|r| r.keys > 0));
        assert_eq!((crowd.stats.calls, crowd.page.calls), (p.calls, p.calls));
        let crowd = scenario::crowd(&node(None, "").await, None, p)
            .await
            .expect("the crowd on one node");
        assert!(crowd.rewrites.is_empty(), "no Redis to flush");
    })
    .await;
    drop(redis);
    let _ = std::fs::remove_dir_all(&scratch);
}

async fn within(f: impl Future<Output = ()>) {
    tokio::time::timeout(Duration::from_secs(60), f)
        .await
        .expect("the smoke run took more than 60 s");
}

async fn local_listener() -> (tokio::net::TcpListener, SocketAddr) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    (listener, addr)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn switchboard() {
    let gateway = Gateway::builder(Config::default()).build().unwrap();
    let (listener, addr) = local_listener().await;
    tokio::spawn(gateway.serve(listener, std::future::pending()));
    smoke(Flavor::Switchboard, addr).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn axum_minimal_peer() {
    let (listener, addr) = local_listener().await;
    tokio::spawn(peers::axum_min::serve(listener));
    smoke(Flavor::Axum, addr).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jsonrpsee_peer() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let _handle = peers::jsonrpsee_peer::start(listener).unwrap();
    smoke(Flavor::Jsonrpsee, addr).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tungstenite_echo_peer() {
    let (listener, addr) = local_listener().await;
    tokio::spawn(peers::echo::serve(listener));
    smoke(Flavor::Echo, addr).await;
}

/// The slow-consumer scenario, both variants, on a switchboard with the
/// scenario's queue limit: every reader gets every publication of the window
/// whether or not one session is stuck.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn switchboard_with_a_session_that_never_reads() {
    let options = BenchOptions::smoke("unused".into(), "unused".into());
    let params = &options.slow_consumer;
    let mut config = Config::default();
    config.limits.max_queue_bytes = params.max_queue_bytes;
    let gateway = Gateway::builder(config).build().unwrap();
    let (listener, addr) = local_listener().await;
    tokio::spawn(gateway.serve(listener, std::future::pending()));
    let target = Target {
        addr,
        pid: std::process::id(),
        flavor: Flavor::Switchboard,
        sources: options.sources,
    };
    within(async {
        for stuck in [scenario::Stuck::None, scenario::Stuck::One] {
            let r = scenario::slow_consumer(&target, params, stuck)
                .await
                .expect("slow consumer");
            let readers = match stuck {
                scenario::Stuck::None => params.subscribers,
                scenario::Stuck::One => params.subscribers - 1,
            };
            assert_eq!(r.readers, readers, "{}", stuck.name());
            assert!(r.publications > 0, "{}: nothing was published", stuck.name());
            assert_eq!(
                r.deliveries,
                r.publications * readers as u64,
                "{}: every reader gets every publication of the window",
                stuck.name()
            );
            assert_eq!(r.latency.samples as u64, r.deliveries);
        }
    })
    .await;
}
