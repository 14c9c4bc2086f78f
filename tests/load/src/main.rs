//! `switchboard-load`: runs switchboard and its peers side by side and
//! prints the table of BENCHMARKS.md. `tests/load/run` builds everything and
//! calls it; `--smoke` is a few-second correctness run; `--baseline-bin`
//! adds another build of switchboard to compare the current one with.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use switchboard_load::bench::{self, BenchOptions};
use switchboard_load::flavor::{Flavor, Scenario};
use switchboard_load::report::{self, Summary};

/// Measures switchboard against its peers: server CPU per call, per
/// delivery and per server→client call, and RSS per idle session.
#[derive(Parser)]
#[command(about)]
struct Cli {
    /// Tiny numbers, every answer checked, no pinning: a correctness run of a few seconds.
    #[arg(long)]
    smoke: bool,
    /// Where the `switchboard` and `peer-*` binaries are (default: next to this one).
    #[arg(long)]
    bin_dir: Option<PathBuf>,
    /// Where the Node peers are, with their node_modules (default: tests/load/peers/node).
    #[arg(long)]
    node_dir: Option<PathBuf>,
    /// Servers to measure, comma-separated (default: all; the Node ones only if installed).
    #[arg(long, value_delimiter = ',')]
    servers: Vec<String>,
    /// Also measure this switchboard binary, a baseline build such as `tests/load/baseline`
    /// makes of a fixed commit: in calls, calls-k1, fanout, reverse and memory it runs right
    /// after the current switchboard in every repetition (current, baseline, current, …), and
    /// the report gives current / baseline for each figure with its range over the
    /// repetitions (ask for at least 5 with --reps and --memory-reps). Needs switchboard
    /// among --servers.
    #[arg(long, value_name = "PATH", conflicts_with = "addr")]
    baseline_bin: Option<PathBuf>,
    /// Scenarios to run, comma-separated: calls, calls-k1, fanout, fanout-deflate, fanout-redis,
    /// api-push, reverse, multicall, memory, presence, slow-consumer (default: all). presence runs once
    /// whatever --reps (its measured windows alternate within the run) and starts its own redis-server;
    /// slow-consumer runs 5 times unless --reps says otherwise.
    #[arg(long, value_delimiter = ',')]
    scenarios: Vec<String>,
    /// Repetitions of the CPU scenarios and of slow-consumer.
    #[arg(long)]
    reps: Option<usize>,
    /// Repetitions of the memory scenario.
    #[arg(long)]
    memory_reps: Option<usize>,
    /// Idle sessions in the memory scenario.
    #[arg(long)]
    sessions: Option<usize>,
    /// Subscribers in the fan-out scenarios (fanout, fanout-deflate, fanout-redis).
    #[arg(long)]
    subscribers: Option<usize>,
    /// Sessions called at once in the multicall scenario.
    #[arg(long)]
    multicall_sessions: Option<usize>,
    /// Seconds of each measured window.
    #[arg(long)]
    seconds: Option<u64>,
    /// CPU list the servers are pinned to with `taskset -c` (default 1; the load should run on 0).
    #[arg(long)]
    server_cpus: Option<String>,
    /// Run the servers unpinned.
    #[arg(long)]
    no_pin: bool,
    /// Measure a server that is already running at this address (with `--pid` and one
    /// `--servers` name) instead of starting each one: for profiling under load.
    #[arg(long, requires = "pid")]
    addr: Option<std::net::SocketAddr>,
    /// The process id of the server at `--addr`.
    #[arg(long, requires = "addr")]
    pid: Option<u32>,
    /// Write the results into this Markdown file, between `<!-- results:begin -->` and `<!-- results:end -->`.
    #[arg(long)]
    write: Option<PathBuf>,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("switchboard-load: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("switchboard-load: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> Result<ExitCode, Box<dyn std::error::Error>> {
    let bin_dir = match cli.bin_dir {
        Some(dir) => dir,
        None => std::env::current_exe()?
            .parent()
            .map(PathBuf::from)
            .ok_or("cannot find the binaries' directory")?,
    };
    let node_dir = cli
        .node_dir
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("peers/node"));
    let mut options = if cli.smoke {
        BenchOptions::smoke(bin_dir, node_dir)
    } else {
        BenchOptions::full(bin_dir, node_dir)
    };
    if cli.servers.is_empty() {
        if !options.node_dir.join("node_modules").exists() {
            eprintln!(
                "switchboard-load: {} has no node_modules (run `npm ci` there): skipping the Node peers",
                options.node_dir.display()
            );
            options
                .servers
                .retain(|f| !matches!(f, Flavor::RpcWebsockets | Flavor::SocketIo | Flavor::WsDeflate));
        }
    } else {
        options.servers = cli
            .servers
            .iter()
            .map(|s| Flavor::from_name(s).ok_or_else(|| format!("unknown server {s}")))
            .collect::<Result<_, _>>()?;
    }
    if let Some(path) = cli.baseline_bin {
        if !options.servers.contains(&Flavor::Switchboard) {
            return Err("--baseline-bin needs switchboard among --servers: it is compared with it".into());
        }
        options.baseline_bin = Some(path);
    }
    if !cli.scenarios.is_empty() {
        options.scenarios = cli
            .scenarios
            .iter()
            .map(|s| {
                Scenario::ALL
                    .into_iter()
                    .find(|x| x.name() == s)
                    .ok_or_else(|| format!("unknown scenario {s}"))
            })
            .collect::<Result<_, _>>()?;
    }
    if let Some(reps) = cli.reps {
        options.reps = reps;
        options.slow_consumer_reps = reps;
    }
    if let Some(reps) = cli.memory_reps {
        options.memory_reps = reps;
    }
    if let Some(n) = cli.sessions {
        options.memory.sessions = n;
    }
    if let Some(n) = cli.subscribers {
        options.fanout.subscribers = n;
        options.deflate.fanout.subscribers = n;
    }
    if let Some(n) = cli.multicall_sessions {
        options.multicall.sessions = n;
    }
    if let Some(s) = cli.seconds {
        let window = std::time::Duration::from_secs(s);
        options.calls.measure = window;
        options.calls_serial.measure = window;
        options.reverse.measure = window;
        options.fanout.measure = window;
        options.deflate.fanout.measure = window;
        options.multicall.measure = window;
        options.slow_consumer.measure = window;
    }
    if let Some(cpus) = cli.server_cpus {
        options.server_cpus = Some(cpus);
    }
    if cli.no_pin {
        options.server_cpus = None;
    }
    if let (Some(addr), Some(pid)) = (cli.addr, cli.pid) {
        let [flavor] = options.servers[..] else {
            return Err("--addr needs exactly one --servers name".into());
        };
        let target = switchboard_load::scenario::Target {
            addr,
            pid,
            flavor,
            sources: options.sources,
        };
        for line in bench::run_external(&options, &target).await {
            eprintln!("{line}");
        }
        return Ok(ExitCode::SUCCESS);
    }
    let missing = bench::missing_programs(&options);
    if !missing.is_empty() {
        return Err(format!("missing: {} (tests/load/run builds them)", missing.join(", ")).into());
    }

    let runs = bench::run(&options, |line| eprintln!("{line}")).await;
    let summary = Summary::new(runs);
    let markdown = summary.markdown(&options, &report::machine_description());
    std::io::stdout().write_all(markdown.as_bytes())?;
    if let Some(path) = cli.write {
        let document = std::fs::read_to_string(&path).unwrap_or_default();
        std::fs::write(&path, report::splice_results(&document, &markdown))?;
        eprintln!("switchboard-load: results written to {}", path.display());
    }
    let failed = summary.failures();
    if cli.smoke {
        if failed.is_empty() {
            eprintln!("switchboard-load: smoke run passed");
        } else {
            eprintln!("switchboard-load: smoke run FAILED");
            return Ok(ExitCode::FAILURE);
        }
    }
    Ok(if failed.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
