//! The side-by-side run: start each server pinned to its core, run each
//! scenario against a fresh process of every server in turn, repeat with the
//! order rotated.

use std::fs::OpenOptions;
use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::error::LoadError;
use crate::flavor::{Flavor, Scenario};
use crate::scenario::{
    self, CallKind, CallsParams, CallsResult, Compression, DeflateParams, DeflateResult, FanoutParams, FanoutResult,
    MemoryParams, MemoryResult, MulticallParams, MulticallResult, PresenceParams, PresenceResult, PushParams,
    PushResult, SlowConsumerParams, SlowConsumerResult, Stuck, Target,
};
use crate::server::Server;

mod presence;

/// Everything a run needs to know.
#[derive(Debug, Clone)]
pub struct BenchOptions {
    /// Where the `switchboard` and `peer-*` binaries are.
    pub bin_dir: PathBuf,
    /// Where the Node peers and their `node_modules` are.
    pub node_dir: PathBuf,
    /// Where server logs go.
    pub log_dir: PathBuf,
    /// The servers to measure.
    pub servers: Vec<Flavor>,
    /// A baseline build of switchboard to measure beside the current one
    /// (see [`BenchOptions::order`]); `None` measures the current one alone.
    pub baseline_bin: Option<PathBuf>,
    /// The scenarios to run.
    pub scenarios: Vec<Scenario>,
    /// Repetitions of the CPU scenarios (calls, fan-out, reverse, multicall).
    pub reps: usize,
    /// Repetitions of the memory scenario.
    pub memory_reps: usize,
    /// Repetitions of the slow-consumer scenario (its two variants alternate
    /// over them, and their ratio needs more than the CPU scenarios' few).
    pub slow_consumer_reps: usize,
    /// CPU list for `taskset -c` of the servers; `None` runs them unpinned.
    pub server_cpus: Option<String>,
    /// Loopback source addresses the load spreads over.
    pub sources: u8,
    /// Quiet time after a server starts listening, before the scenario.
    pub startup_settle: Duration,
    /// The calls scenario.
    pub calls: CallsParams,
    /// The calls scenario with one call in flight per session.
    pub calls_serial: CallsParams,
    /// The reverse-call scenario.
    pub reverse: CallsParams,
    /// The fan-out scenario.
    pub fanout: FanoutParams,
    /// The compressed fan-out scenario.
    pub deflate: DeflateParams,
    /// The backend's multicast call scenario.
    pub multicall: MulticallParams,
    /// The memory scenario.
    pub memory: MemoryParams,
    /// The server-API push scenario.
    pub push: PushParams,
    /// The presence scenario (run once, whatever `reps`: its windows are its repetitions).
    pub presence: PresenceParams,
    /// The slow-consumer scenario.
    pub slow_consumer: SlowConsumerParams,
}

/// The payload of every call: a JSON array of one short string.
pub const CALL_PARAMS: &str = r#"["hello, switchboard 0123456789"]"#;

impl BenchOptions {
    /// The full benchmark: every server, every scenario, three repetitions
    /// (two of memory); about ten minutes.
    pub fn full(bin_dir: PathBuf, node_dir: PathBuf) -> Self {
        let calls = CallsParams {
            kind: CallKind::Echo,
            connections: 64,
            in_flight: 8,
            warmup: Duration::from_secs(1),
            measure: Duration::from_secs(4),
            calls_per_connection: None,
            params: CALL_PARAMS.to_owned(),
            verify: false,
        };
        // The same fan-out with plain subscribers, and again with compressing ones in `deflate`.
        let fanout = FanoutParams {
            subscribers: 2000,
            warmup_publications: 5,
            measure: Duration::from_secs(4),
            min_publications: 20,
            max_publications: 100_000,
            verify: false,
        };
        Self {
            log_dir: bin_dir.join("load-logs"),
            bin_dir,
            node_dir,
            servers: Flavor::ALL.to_vec(),
            baseline_bin: None,
            scenarios: Scenario::ALL.to_vec(),
            reps: 3,
            memory_reps: 2,
            slow_consumer_reps: 5,
            server_cpus: Some("1".to_owned()),
            sources: 16,
            startup_settle: Duration::from_millis(300),
            calls_serial: CallsParams {
                connections: 128,
                in_flight: 1,
                ..calls.clone()
            },
            reverse: CallsParams {
                kind: CallKind::Callback,
                ..calls.clone()
            },
            calls,
            deflate: DeflateParams {
                fanout: fanout.clone(),
                settle: Duration::from_secs(2),
            },
            fanout,
            multicall: MulticallParams {
                sessions: 2000,
                warmup_calls: 3,
                measure: Duration::from_secs(4),
                min_calls: 10,
                max_calls: 100_000,
                first_calls: 21,
                slow_answer: Duration::from_millis(200),
                verify: false,
            },
            memory: MemoryParams {
                sessions: 15_000,
                concurrency: 128,
                burst_calls: 8,
                burst_bytes: 1024,
                settle: Duration::from_secs(2),
            },
            push: PushParams {
                users: 2000,
                posters: 4,
                batch: 50,
                warmup: Duration::from_secs(1),
                measure: Duration::from_secs(4),
            },
            presence: PresenceParams {
                round_sessions: 2000,
                round_topics: 20,
                windows: 10,
                window: Duration::from_millis(1200),
                settle: Duration::from_millis(300),
                crowd: 10_000,
                crowd_topics: 100,
                heartbeat: Duration::from_millis(200),
                idle_windows: 5,
                heartbeats_per_window: 10,
                rewrites: 5,
                calls: 50,
                page: 1000,
                verify: false,
            },
            // 100 publications/s of ~200 bytes to 1,000 readers is 100,000
            // deliveries/s, well under what the server and the load's one core
            // manage (~250,000/s in `fanout`), so that latency is not queueing
            // behind a saturated core. A queue limit of 64 KiB (default 4 MiB)
            // lets a stuck session fill its socket and its queue and be closed
            // within ten seconds or so, so that a 20 s window sees its whole
            // life, not only the first minutes of it.
            slow_consumer: SlowConsumerParams {
                subscribers: 1000,
                rate: 100,
                warmup: Duration::from_secs(2),
                measure: Duration::from_secs(20),
                max_queue_bytes: 64 << 10,
                probe: Duration::from_millis(100),
                verify: false,
            },
        }
    }

    /// The servers in the order of repetition `rep` (0-based): rotated by
    /// one place each repetition, so that no server always runs first or
    /// last, with the baseline (if any) right after the current switchboard.
    /// The two then run back to back in every scenario, current first, and
    /// their measurements alternate over the repetitions (current, baseline,
    /// current, baseline, …), so that a change in the machine's load between
    /// repetitions falls on both alike.
    pub fn order(&self, rep: usize) -> Vec<Server> {
        let mut flavors = self.servers.clone();
        let n = flavors.len().max(1);
        flavors.rotate_left(rep % n);
        let mut order = Vec::with_capacity(flavors.len() + 1);
        for flavor in flavors {
            order.push(Server::Current(flavor));
            if flavor == Flavor::Switchboard && self.baseline_bin.is_some() {
                order.push(Server::Baseline);
            }
        }
        order
    }

    /// The smoke run: tiny numbers, every answer checked, a few seconds.
    pub fn smoke(bin_dir: PathBuf, node_dir: PathBuf) -> Self {
        let calls = CallsParams {
            kind: CallKind::Echo,
            connections: 4,
            in_flight: 2,
            warmup: Duration::ZERO,
            measure: Duration::from_millis(200),
            calls_per_connection: Some(100),
            params: CALL_PARAMS.to_owned(),
            verify: true,
        };
        let fanout = FanoutParams {
            subscribers: 20,
            warmup_publications: 1,
            measure: Duration::from_millis(100),
            min_publications: 3,
            max_publications: 10,
            verify: true,
        };
        let full = Self::full(bin_dir, node_dir);
        Self {
            reps: 1,
            memory_reps: 1,
            slow_consumer_reps: 1,
            server_cpus: None,
            sources: 2,
            startup_settle: Duration::from_millis(20),
            calls_serial: CallsParams {
                in_flight: 1,
                ..calls.clone()
            },
            reverse: CallsParams {
                kind: CallKind::Callback,
                ..calls.clone()
            },
            calls,
            deflate: DeflateParams {
                fanout: fanout.clone(),
                settle: Duration::from_millis(20),
            },
            fanout,
            multicall: MulticallParams {
                sessions: 20,
                warmup_calls: 1,
                measure: Duration::from_millis(100),
                min_calls: 3,
                max_calls: 10,
                first_calls: 3,
                slow_answer: Duration::from_millis(50),
                verify: true,
            },
            memory: MemoryParams {
                sessions: 50,
                concurrency: 16,
                burst_calls: 2,
                burst_bytes: 256,
                settle: Duration::from_millis(100),
            },
            push: PushParams {
                users: 20,
                posters: 1,
                batch: 5,
                warmup: Duration::from_millis(50),
                measure: Duration::from_millis(200),
            },
            presence: PresenceParams {
                round_sessions: 20,
                round_topics: 4,
                windows: 1,
                window: Duration::from_millis(100),
                settle: Duration::from_millis(20),
                crowd: 50,
                crowd_topics: 5,
                heartbeat: Duration::from_millis(100),
                idle_windows: 1,
                heartbeats_per_window: 2,
                rewrites: 1,
                calls: 3,
                page: 10,
                verify: true,
            },
            slow_consumer: SlowConsumerParams {
                subscribers: 20,
                rate: 200,
                warmup: Duration::from_millis(100),
                measure: Duration::from_millis(500),
                max_queue_bytes: 16 << 10,
                probe: Duration::from_millis(20),
                verify: true,
            },
            ..full
        }
    }
}

/// The outcome of one scenario against one fresh server process.
#[derive(Debug, Clone)]
pub enum Outcome {
    /// Client→server calls.
    Calls(CallsResult),
    /// Client→server calls, one in flight per session.
    CallsSerial(CallsResult),
    /// Calls whose handler calls the client back.
    Reverse(CallsResult),
    /// Fan-out.
    Fanout(FanoutResult),
    /// Fan-out across two nodes joined by Redis.
    FanoutRedis(FanoutResult),
    /// Fan-out to subscribers that do not offer compression, then to
    /// subscribers that offer it, each on a fresh server process.
    FanoutDeflate {
        /// Plain subscribers.
        plain: DeflateResult,
        /// Subscribers offering permessage-deflate.
        deflate: DeflateResult,
    },
    /// Pushes to users through the server API.
    ApiPush(PushResult),
    /// A backend's multicast calls to every session of a topic.
    Multicall(MulticallResult),
    /// Memory.
    Memory(MemoryResult),
    /// What topic presence costs.
    Presence(Box<PresenceResult>),
    /// The readers' delivery latency with every subscriber reading, and
    /// with one stuck, each on a fresh server process.
    SlowConsumer {
        /// Every subscriber reads.
        all_read: SlowConsumerResult,
        /// One subscriber never reads.
        one_stuck: SlowConsumerResult,
    },
    /// The scenario failed; why.
    Failed(String),
}

/// One measurement.
#[derive(Debug, Clone)]
pub struct Run {
    /// The server.
    pub server: Server,
    /// The scenario.
    pub scenario: Scenario,
    /// The repetition (0-based).
    pub rep: usize,
    /// What came of it.
    pub outcome: Outcome,
}

/// Runs every scenario against every server, `reps` times, in the
/// [order](BenchOptions::order) of each repetition. Within a repetition each
/// scenario runs against every server before the next scenario starts, so
/// that the figures a ratio divides are measured minutes apart at most.
/// `log` hears about each step.
pub async fn run(options: &BenchOptions, mut log: impl FnMut(&str)) -> Vec<Run> {
    let mut runs = Vec::new();
    let reps = options
        .reps
        .max(options.memory_reps)
        .max(if options.scenarios.contains(&Scenario::SlowConsumer) {
            options.slow_consumer_reps
        } else {
            0
        });
    for rep in 0..reps {
        let order = options.order(rep);
        for &scenario in &options.scenarios {
            let wanted = match scenario {
                Scenario::Memory => options.memory_reps,
                Scenario::Presence => 1,
                Scenario::SlowConsumer => options.slow_consumer_reps,
                _ => options.reps,
            };
            if rep >= wanted {
                continue;
            }
            for &server in order.iter().filter(|s| s.supports(scenario)) {
                let started = Instant::now();
                let outcome = match run_one(options, server, scenario, rep).await {
                    Ok(outcome) => outcome,
                    Err(e) => Outcome::Failed(e.to_string()),
                };
                log(&format!(
                    "rep {} {:<20} {:<8} {:>5.1}s  {}",
                    rep + 1,
                    server.name(),
                    scenario.name(),
                    started.elapsed().as_secs_f64(),
                    summary(&outcome)
                ));
                runs.push(Run {
                    server,
                    scenario,
                    rep,
                    outcome,
                });
            }
        }
    }
    runs
}

fn summary(outcome: &Outcome) -> String {
    match outcome {
        Outcome::Calls(r) | Outcome::CallsSerial(r) | Outcome::Reverse(r) => format!(
            "{:.2} µs CPU/call, {:.0} calls/s, p50 {:.0} µs, p99 {:.0} µs",
            r.cpu_us_per_call(),
            r.rate(),
            r.latency.p50_us,
            r.latency.p99_us
        ),
        Outcome::Fanout(r) | Outcome::FanoutRedis(r) => format!(
            "{:.2} µs CPU/delivery, {:.0} deliveries/s, {} publications",
            r.cpu_us_per_delivery(),
            r.rate(),
            r.publications
        ),
        Outcome::FanoutDeflate { plain, deflate } => format!(
            "plain {:.0} B/delivery, {:.2} µs CPU/delivery, {:.2} KiB/session; deflate {:.0} B/delivery, {:.2} µs \
             CPU/delivery, {:.2} KiB/session",
            plain.bytes_per_delivery(),
            plain.fanout.cpu_us_per_delivery(),
            plain.kib_per_session(),
            deflate.bytes_per_delivery(),
            deflate.fanout.cpu_us_per_delivery(),
            deflate.kib_per_session(),
        ),
        Outcome::ApiPush(r) => format!(
            "{:.2} µs CPU/push, {:.0} pushes/s, POST p50 {:.0} µs",
            r.cpu_us_per_push(),
            r.rate(),
            r.post_latency.p50_us
        ),
        Outcome::Multicall(r) => {
            let first = r.after_first.map_or(String::new(), |p| {
                format!(
                    ", \"first\" answered {:.0} µs after the fastest session (p50)",
                    p.p50_us
                )
            });
            format!(
                "{:.2} µs CPU/target ({:.2} kernel), {:.0} targets/s, {} calls, call p50 {:.1} ms{first}",
                r.cpu_us_per_target(),
                r.system_us_per_target(),
                r.rate(),
                r.calls,
                r.latency.p50_us / 1e3
            )
        }
        Outcome::Memory(r) => format!(
            "{:.2} KiB/session fresh, {:.2} after burst ({} sessions, {} KiB before)",
            r.kib_per_session(),
            r.kib_per_session_after_burst(),
            r.sessions,
            r.rss_before_kib
        ),
        Outcome::Presence(r) => presence::summary(r),
        Outcome::SlowConsumer { all_read, one_stuck } => format!(
            "all read p50/p99/p99.9 {:.0}/{:.0}/{:.0} µs; one stuck {:.0}/{:.0}/{:.0} µs ({} closes); p99 ratio {:.2}",
            all_read.latency.p50_us,
            all_read.latency.p99_us,
            all_read.latency.p999_us,
            one_stuck.latency.p50_us,
            one_stuck.latency.p99_us,
            one_stuck.latency.p999_us,
            one_stuck.stuck_closes,
            one_stuck.latency.p99_us / all_read.latency.p99_us.max(f64::EPSILON),
        ),
        Outcome::Failed(e) => format!("FAILED: {e}"),
    }
}

async fn run_one(options: &BenchOptions, server: Server, scenario: Scenario, rep: usize) -> Result<Outcome, LoadError> {
    if scenario == Scenario::FanoutRedis {
        return run_cluster(options, server).await;
    }
    if scenario == Scenario::Presence {
        return presence::run(options, server).await;
    }
    if scenario == Scenario::FanoutDeflate {
        // Each kind of subscriber on a server of its own, so that each RSS reading starts from a fresh process.
        let deflate = &options.deflate;
        return Ok(Outcome::FanoutDeflate {
            plain: on_fresh_server(options, server, async |t| {
                scenario::deflate_fanout(t, deflate, Compression::Off).await
            })
            .await?,
            deflate: on_fresh_server(options, server, async |t| {
                scenario::deflate_fanout(t, deflate, Compression::Offered).await
            })
            .await?,
        });
    }
    if scenario == Scenario::SlowConsumer {
        return run_slow_consumer(options, server, rep).await;
    }
    on_fresh_server(options, server, async |t| measure(options, t, scenario).await).await
}

/// Both variants of the slow-consumer scenario, each on a fresh server with
/// the scenario's queue limit; which one runs first alternates with the
/// repetition, so that a drift in the machine's load falls on both alike.
async fn run_slow_consumer(options: &BenchOptions, server: Server, rep: usize) -> Result<Outcome, LoadError> {
    let params = &options.slow_consumer;
    let env = [(
        "SWITCHBOARD_LIMITS__MAX_QUEUE_BYTES",
        params.max_queue_bytes.to_string(),
    )];
    let mut order = [Stuck::None, Stuck::One];
    if rep % 2 == 1 {
        order.reverse();
    }
    let (mut all_read, mut one_stuck) = (None, None);
    for stuck in order {
        let result = on_fresh_server_with(options, server, &env, async |t| {
            scenario::slow_consumer(t, params, stuck).await
        })
        .await?;
        match stuck {
            Stuck::None => all_read = Some(result),
            Stuck::One => one_stuck = Some(result),
        }
    }
    Ok(Outcome::SlowConsumer {
        all_read: all_read.unwrap_or_default(),
        one_stuck: one_stuck.unwrap_or_default(),
    })
}

/// Starts a fresh process of `server`, lets it settle, runs `f` against it,
/// checks that it is still alive, and stops it.
async fn on_fresh_server<T>(
    options: &BenchOptions,
    server: Server,
    f: impl AsyncFnOnce(&Target) -> Result<T, LoadError>,
) -> Result<T, LoadError> {
    on_fresh_server_with(options, server, &[], f).await
}

/// [`on_fresh_server`] with extra environment variables for the server.
async fn on_fresh_server_with<T>(
    options: &BenchOptions,
    server: Server,
    env: &[(&str, String)],
    f: impl AsyncFnOnce(&Target) -> Result<T, LoadError>,
) -> Result<T, LoadError> {
    let process = ServerProcess::start(options, server, env).await?;
    // Let the process finish starting (JIT, lazy statics) before the first reading.
    tokio::time::sleep(options.startup_settle).await;
    let target = Target {
        addr: process.addr,
        pid: process.pid,
        flavor: server.flavor(),
        sources: options.sources,
    };
    let outcome = f(&target).await?;
    process.check_alive()?;
    drop(process);
    // Give the kernel a moment to tear down thousands of sockets.
    tokio::time::sleep(options.startup_settle).await;
    Ok(outcome)
}

/// The Redis the cross-node scenario uses: `SWITCHBOARD_LOAD_REDIS_URL`, or
/// the one on the default port.
pub fn redis_url() -> String {
    std::env::var("SWITCHBOARD_LOAD_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned())
}

/// Two switchboard nodes on one Redis (under a key prefix of their own):
/// the publisher on the first, the subscribers on the second, whose CPU is
/// measured. Both nodes are pinned to the servers' CPUs.
async fn run_cluster(options: &BenchOptions, server: Server) -> Result<Outcome, LoadError> {
    let prefix = format!("sbload{}", std::process::id());
    let env = [
        ("SWITCHBOARD_BROKER", "redis".to_owned()),
        ("SWITCHBOARD_REDIS__URL", redis_url()),
        ("SWITCHBOARD_REDIS__PREFIX", prefix),
    ];
    let publishing = ServerProcess::start(options, server, &env).await?;
    let delivering = ServerProcess::start(options, server, &env).await?;
    tokio::time::sleep(options.startup_settle).await;
    let node = |process: &ServerProcess| Target {
        addr: process.addr,
        pid: process.pid,
        flavor: server.flavor(),
        sources: options.sources,
    };
    let result = scenario::fanout_from(&node(&delivering), Some(&node(&publishing)), &options.fanout).await?;
    publishing.check_alive()?;
    delivering.check_alive()?;
    drop((publishing, delivering));
    tokio::time::sleep(options.startup_settle).await;
    Ok(Outcome::FanoutRedis(result))
}

/// Runs one scenario against a server that is already running (for
/// profiling it under load: `--addr` and `--pid`).
pub async fn measure(options: &BenchOptions, target: &Target, scenario: Scenario) -> Result<Outcome, LoadError> {
    Ok(match scenario {
        Scenario::Calls => Outcome::Calls(scenario::calls(target, &options.calls).await?),
        Scenario::CallsSerial => Outcome::CallsSerial(scenario::calls(target, &options.calls_serial).await?),
        Scenario::Reverse => Outcome::Reverse(scenario::calls(target, &options.reverse).await?),
        Scenario::Fanout => Outcome::Fanout(scenario::fanout(target, &options.fanout).await?),
        Scenario::FanoutDeflate => Outcome::FanoutDeflate {
            plain: scenario::deflate_fanout(target, &options.deflate, Compression::Off).await?,
            deflate: scenario::deflate_fanout(target, &options.deflate, Compression::Offered).await?,
        },
        Scenario::FanoutRedis | Scenario::Presence => {
            return Err(LoadError::Unexpected {
                scenario: scenario.name(),
                detail: "starts its own nodes; it cannot run against --addr".to_owned(),
            });
        }
        Scenario::Memory => Outcome::Memory(scenario::memory(target, &options.memory).await?),
        Scenario::ApiPush => Outcome::ApiPush(scenario::push(target, &options.push).await?),
        Scenario::Multicall => Outcome::Multicall(scenario::multicall(target, &options.multicall).await?),
        // Against a running server, whose queue limit is its own.
        Scenario::SlowConsumer => Outcome::SlowConsumer {
            all_read: scenario::slow_consumer(target, &options.slow_consumer, Stuck::None).await?,
            one_stuck: scenario::slow_consumer(target, &options.slow_consumer, Stuck::One).await?,
        },
    })
}

/// Runs the scenarios once against a running server and returns one line per scenario.
pub async fn run_external(options: &BenchOptions, target: &Target) -> Vec<String> {
    let mut lines = Vec::new();
    for &scenario in &options.scenarios {
        if !target.flavor.supports(scenario) {
            continue;
        }
        let outcome = match measure(options, target, scenario).await {
            Ok(outcome) => outcome,
            Err(e) => Outcome::Failed(e.to_string()),
        };
        lines.push(format!("{} {}: {}", target.flavor, scenario.name(), summary(&outcome)));
    }
    lines
}

/// A server under test, killed when dropped.
pub struct ServerProcess {
    child: Child,
    name: &'static str,
    log: PathBuf,
    /// Where it listens.
    pub addr: SocketAddr,
    /// Its process id (`taskset` execs the server, so it is the server's).
    pub pid: u32,
}

/// The environment switchboard runs with in the benchmark: defaults, except
/// that the per-session rate limits and the per-IP upgrade limit, which
/// protect a real deployment from a few abusive clients, are raised so the
/// load's few source addresses and busy sessions are not refused.
pub const SWITCHBOARD_ENV: &[(&str, &str)] = &[
    ("SWITCHBOARD_LIMITS__RATE_PER_SECOND", "100000000"),
    ("SWITCHBOARD_LIMITS__RATE_BURST", "100000000"),
    ("SWITCHBOARD_LIMITS__UPGRADES_PER_IP_PER_MINUTE", "100000000"),
    ("RUST_LOG", "warn"),
];

/// What runs a server: a binary that takes `--listen ADDR`, or a Node
/// peer's script, which `node` runs with the port as its argument.
enum Program {
    Binary(PathBuf),
    Node(PathBuf),
}

impl Program {
    fn of(options: &BenchOptions, server: Server) -> Program {
        let binary = |name: &str| Program::Binary(options.bin_dir.join(name));
        let script = |name: &str| Program::Node(options.node_dir.join(name));
        match server {
            Server::Current(Flavor::Switchboard) => binary("switchboard"),
            Server::Current(Flavor::Axum) => binary("peer-axum"),
            Server::Current(Flavor::Jsonrpsee) => binary("peer-jsonrpsee"),
            Server::Current(Flavor::Echo) => binary("peer-echo"),
            Server::Current(Flavor::RpcWebsockets) => script("rpc-websockets.js"),
            Server::Current(Flavor::SocketIo) => script("socketio.js"),
            Server::Current(Flavor::WsDeflate) => script("ws-deflate.js"),
            // `order` puts the baseline in a run only when it has a binary; an
            // empty path would fail to start with the server's name in the error.
            Server::Baseline => Program::Binary(options.baseline_bin.clone().unwrap_or_default()),
        }
    }

    /// What must exist before a run: the binary, or the Node peers' `node_modules`.
    fn requirement(&self, options: &BenchOptions) -> PathBuf {
        match self {
            Program::Binary(path) => path.clone(),
            Program::Node(_) => options.node_dir.join("node_modules"),
        }
    }

    /// The program to execute and its arguments, to listen on `addr`.
    fn command_line(self, addr: SocketAddr) -> (PathBuf, Vec<String>) {
        match self {
            Program::Binary(path) => (path, vec!["--listen".to_owned(), addr.to_string()]),
            Program::Node(script) => (
                PathBuf::from("node"),
                vec![script.to_string_lossy().into_owned(), addr.port().to_string()],
            ),
        }
    }
}

impl ServerProcess {
    /// Starts `server` on a free loopback port and waits until it accepts connections.
    pub async fn start(options: &BenchOptions, server: Server, env: &[(&str, String)]) -> Result<Self, LoadError> {
        let port = free_port()?;
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let (program, args) = Program::of(options, server).command_line(addr);
        let mut command = match &options.server_cpus {
            Some(cpus) => {
                let mut c = Command::new("taskset");
                c.arg("-c").arg(cpus).arg(&program);
                c
            }
            None => Command::new(&program),
        };
        command.args(&args);
        for (key, _) in std::env::vars() {
            if key.starts_with("SWITCHBOARD_") {
                command.env_remove(key);
            }
        }
        if server.flavor() == Flavor::Switchboard {
            command.envs(SWITCHBOARD_ENV.iter().copied());
        }
        command.envs(env.iter().map(|(k, v)| (*k, v.as_str())));
        std::fs::create_dir_all(&options.log_dir)?;
        let log = options.log_dir.join(format!("{}.log", server.name()));
        let mut log_file = OpenOptions::new().create(true).append(true).open(&log)?;
        writeln!(log_file, "--- {} {}", program.display(), args.join(" "))?;
        let child = command
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::from(log_file))
            .spawn()
            .map_err(|e| LoadError::ServerStart {
                server: server.name().to_owned(),
                detail: format!("{}: {e}", program.display()),
            })?;
        let pid = child.id();
        let process = Self {
            child,
            name: server.name(),
            log,
            addr,
            pid,
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            process.check_alive()?;
            if tokio::net::TcpStream::connect(addr).await.is_ok() {
                return Ok(process);
            }
            if Instant::now() > deadline {
                return Err(process.failure("it did not listen within 20 s"));
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    /// Fails if the process has exited.
    pub fn check_alive(&self) -> Result<(), LoadError> {
        // `try_wait` needs `&mut`; a readable /proc entry means it still runs (or is a zombie).
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.pid)).unwrap_or_default();
        let state = stat.rfind(')').and_then(|i| stat[i + 1..].split_whitespace().next());
        match state {
            Some("Z") | Some("X") | None => Err(self.failure("it exited")),
            Some(_) => Ok(()),
        }
    }

    fn failure(&self, why: &str) -> LoadError {
        let log = std::fs::read_to_string(&self.log).unwrap_or_default();
        let tail: Vec<&str> = log.lines().rev().take(8).collect();
        let tail: Vec<&str> = tail.into_iter().rev().collect();
        LoadError::ServerStart {
            server: self.name.to_owned(),
            detail: format!("{why}; log {}:\n{}", self.log.display(), tail.join("\n")),
        }
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> std::io::Result<u16> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    Ok(listener.local_addr()?.port())
}

/// What a run needs and does not find (binaries, the Node peers'
/// `node_modules`, `taskset`), for a clear message before a long run.
pub fn missing_programs(options: &BenchOptions) -> Vec<String> {
    let mut missing = Vec::new();
    for server in options.order(0) {
        let path = Program::of(options, server).requirement(options);
        if !Path::new(&path).exists() {
            missing.push(format!("{server}: {}", path.display()));
        }
    }
    if options.server_cpus.is_some() && Command::new("taskset").arg("-V").output().is_err() {
        missing.push("taskset (util-linux)".to_owned());
    }
    let presence = options.scenarios.contains(&Scenario::Presence) && options.servers.contains(&Flavor::Switchboard);
    if presence && Command::new("redis-server").arg("--version").output().is_err() {
        missing.push("redis-server (the presence scenario starts its own)".to_owned());
    }
    missing
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_baseline_runs_right_after_the_current_switchboard_in_every_repetition() {
        let mut options = BenchOptions::smoke("bin".into(), "node".into());
        options.servers = vec![Flavor::Axum, Flavor::Switchboard, Flavor::Jsonrpsee];
        let current = Server::Current(Flavor::Switchboard);
        assert_eq!(options.order(0).len(), 3);
        options.baseline_bin = Some("baseline/switchboard".into());
        for rep in 0..4 {
            let order = options.order(rep);
            assert_eq!(order.len(), 4);
            let at = order.iter().position(|&s| s == current).unwrap();
            assert_eq!(
                order.get(at + 1),
                Some(&Server::Baseline),
                "repetition {rep}: {order:?}"
            );
        }
        assert_ne!(options.order(0)[0], options.order(1)[0], "the order rotates");
    }
}
