//! The side-by-side run: start each server pinned to its core, run each
//! scenario against a fresh process, repeat with the order rotated.

use std::fs::OpenOptions;
use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::error::LoadError;
use crate::flavor::{Flavor, Scenario};
use crate::scenario::{
    self, CallKind, CallsParams, CallsResult, FanoutParams, FanoutResult, MemoryParams, MemoryResult, PushParams,
    PushResult, Target,
};

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
    /// The scenarios to run.
    pub scenarios: Vec<Scenario>,
    /// Repetitions of the CPU scenarios (calls, fan-out, reverse).
    pub reps: usize,
    /// Repetitions of the memory scenario.
    pub memory_reps: usize,
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
    /// The memory scenario.
    pub memory: MemoryParams,
    /// The server-API push scenario.
    pub push: PushParams,
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
        Self {
            log_dir: bin_dir.join("load-logs"),
            bin_dir,
            node_dir,
            servers: Flavor::ALL.to_vec(),
            scenarios: Scenario::ALL.to_vec(),
            reps: 3,
            memory_reps: 2,
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
            fanout: FanoutParams {
                subscribers: 2000,
                warmup_publications: 5,
                measure: Duration::from_secs(4),
                min_publications: 20,
                max_publications: 100_000,
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
        }
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
        let full = Self::full(bin_dir, node_dir);
        Self {
            reps: 1,
            memory_reps: 1,
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
            fanout: FanoutParams {
                subscribers: 20,
                warmup_publications: 1,
                measure: Duration::from_millis(100),
                min_publications: 3,
                max_publications: 10,
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
    /// Pushes to users through the server API.
    ApiPush(PushResult),
    /// Memory.
    Memory(MemoryResult),
    /// The scenario failed; why.
    Failed(String),
}

/// One measurement.
#[derive(Debug, Clone)]
pub struct Run {
    /// The server.
    pub flavor: Flavor,
    /// The scenario.
    pub scenario: Scenario,
    /// The repetition (0-based).
    pub rep: usize,
    /// What came of it.
    pub outcome: Outcome,
}

/// Runs every scenario against every server, `reps` times, rotating the
/// order of the servers each repetition. `log` hears about each step.
pub async fn run(options: &BenchOptions, mut log: impl FnMut(&str)) -> Vec<Run> {
    let mut runs = Vec::new();
    let reps = options.reps.max(options.memory_reps);
    for rep in 0..reps {
        let mut order = options.servers.clone();
        let n = order.len().max(1);
        order.rotate_left(rep % n);
        for &flavor in &order {
            for &scenario in &options.scenarios {
                let wanted = if scenario == Scenario::Memory {
                    options.memory_reps
                } else {
                    options.reps
                };
                if rep >= wanted || !flavor.supports(scenario) {
                    continue;
                }
                let started = Instant::now();
                let outcome = match run_one(options, flavor, scenario).await {
                    Ok(outcome) => outcome,
                    Err(e) => Outcome::Failed(e.to_string()),
                };
                log(&format!(
                    "rep {} {:<16} {:<8} {:>5.1}s  {}",
                    rep + 1,
                    flavor.name(),
                    scenario.name(),
                    started.elapsed().as_secs_f64(),
                    summary(&outcome)
                ));
                runs.push(Run {
                    flavor,
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
        Outcome::ApiPush(r) => format!(
            "{:.2} µs CPU/push, {:.0} pushes/s, POST p50 {:.0} µs",
            r.cpu_us_per_push(),
            r.rate(),
            r.post_latency.p50_us
        ),
        Outcome::Memory(r) => format!(
            "{:.2} KiB/session fresh, {:.2} after burst ({} sessions, {} KiB before)",
            r.kib_per_session(),
            r.kib_per_session_after_burst(),
            r.sessions,
            r.rss_before_kib
        ),
        Outcome::Failed(e) => format!("FAILED: {e}"),
    }
}

async fn run_one(options: &BenchOptions, flavor: Flavor, scenario: Scenario) -> Result<Outcome, LoadError> {
    if scenario == Scenario::FanoutRedis {
        return run_cluster(options, flavor).await;
    }
    let server = ServerProcess::start(options, flavor, &[]).await?;
    // Let the process finish starting (JIT, lazy statics) before the first reading.
    tokio::time::sleep(options.startup_settle).await;
    let target = Target {
        addr: server.addr,
        pid: server.pid,
        flavor,
        sources: options.sources,
    };
    let outcome = measure(options, &target, scenario).await?;
    server.check_alive()?;
    drop(server);
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
async fn run_cluster(options: &BenchOptions, flavor: Flavor) -> Result<Outcome, LoadError> {
    let prefix = format!("sbload{}", std::process::id());
    let env = [
        ("SWITCHBOARD_BROKER", "redis".to_owned()),
        ("SWITCHBOARD_REDIS__URL", redis_url()),
        ("SWITCHBOARD_REDIS__PREFIX", prefix),
    ];
    let publishing = ServerProcess::start(options, flavor, &env).await?;
    let delivering = ServerProcess::start(options, flavor, &env).await?;
    tokio::time::sleep(options.startup_settle).await;
    let node = |server: &ServerProcess| Target {
        addr: server.addr,
        pid: server.pid,
        flavor,
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
        Scenario::FanoutRedis => {
            return Err(LoadError::Unexpected {
                scenario: "fanout-redis",
                detail: "starts its own two nodes; it cannot run against --addr".to_owned(),
            });
        }
        Scenario::Memory => Outcome::Memory(scenario::memory(target, &options.memory).await?),
        Scenario::ApiPush => Outcome::ApiPush(scenario::push(target, &options.push).await?),
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

impl ServerProcess {
    /// Starts `flavor` on a free loopback port and waits until it accepts connections.
    pub async fn start(options: &BenchOptions, flavor: Flavor, env: &[(&str, String)]) -> Result<Self, LoadError> {
        let port = free_port()?;
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let listen = addr.to_string();
        let node_script = |script: &str| {
            (
                PathBuf::from("node"),
                vec![
                    options.node_dir.join(script).to_string_lossy().into_owned(),
                    port.to_string(),
                ],
            )
        };
        let (program, args) = match flavor {
            Flavor::Switchboard => (options.bin_dir.join("switchboard"), vec!["--listen".to_owned(), listen]),
            Flavor::Axum => (options.bin_dir.join("peer-axum"), vec!["--listen".to_owned(), listen]),
            Flavor::Jsonrpsee => (
                options.bin_dir.join("peer-jsonrpsee"),
                vec!["--listen".to_owned(), listen],
            ),
            Flavor::Echo => (options.bin_dir.join("peer-echo"), vec!["--listen".to_owned(), listen]),
            Flavor::RpcWebsockets => node_script("rpc-websockets.js"),
            Flavor::SocketIo => node_script("socketio.js"),
        };
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
        if flavor == Flavor::Switchboard {
            command.envs(SWITCHBOARD_ENV.iter().copied());
        }
        command.envs(env.iter().map(|(k, v)| (*k, v.as_str())));
        std::fs::create_dir_all(&options.log_dir)?;
        let log = options.log_dir.join(format!("{}.log", flavor.name()));
        let mut log_file = OpenOptions::new().create(true).append(true).open(&log)?;
        writeln!(log_file, "--- {} {}", program.display(), args.join(" "))?;
        let child = command
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::from(log_file))
            .spawn()
            .map_err(|e| LoadError::ServerStart {
                server: flavor.name().to_owned(),
                detail: format!("{}: {e}", program.display()),
            })?;
        let pid = child.id();
        let server = Self {
            child,
            name: flavor.name(),
            log,
            addr,
            pid,
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            server.check_alive()?;
            if tokio::net::TcpStream::connect(addr).await.is_ok() {
                return Ok(server);
            }
            if Instant::now() > deadline {
                return Err(server.failure("it did not listen within 20 s"));
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

/// Whether `path` exists and can be run, for a clear message before a long run.
pub fn missing_programs(options: &BenchOptions) -> Vec<String> {
    let mut missing = Vec::new();
    for flavor in &options.servers {
        let path: Option<PathBuf> = match flavor {
            Flavor::Switchboard => Some(options.bin_dir.join("switchboard")),
            Flavor::Axum => Some(options.bin_dir.join("peer-axum")),
            Flavor::Jsonrpsee => Some(options.bin_dir.join("peer-jsonrpsee")),
            Flavor::Echo => Some(options.bin_dir.join("peer-echo")),
            Flavor::RpcWebsockets | Flavor::SocketIo => Some(options.node_dir.join("node_modules")),
        };
        if let Some(path) = path
            && !Path::new(&path).exists()
        {
            missing.push(format!("{flavor}: {}", path.display()));
        }
    }
    if options.server_cpus.is_some() && Command::new("taskset").arg("-V").output().is_err() {
        missing.push("taskset (util-linux)".to_owned());
    }
    missing
}
