//! Executes the recipes of `README.md` and `docs/*.md` against the real
//! `switchboard` binary, so that they never rot, and checks the tables of
//! `docs/` against the code.
//!
//! # How the documents mark what is checked
//!
//! An HTML comment right before a fenced block says what the block is:
//!
//! * `<!-- recipe: banner -->`: what the binary prints on stderr at start.
//! * `<!-- recipe: curl -->`: a shell command, run with `sh -c`. The block
//!   marked `<!-- expect -->` right after it is its output: a `json` block is
//!   compared as a JSON value, any other block as trimmed text.
//! * `<!-- recipe: wscat -->`: a wscat session. `>` lines are sent, `<` lines
//!   are the frames expected back, in order, compared as JSON values. The
//!   real `wscat` (pinned in `tests/recipes/package.json`) is driven through
//!   its standard input and output.
//! * `<!-- recipe: config -->`: a TOML file that must load.
//! * `<!-- recipe: tls -->`, `<!-- recipe: cluster -->`: shell commands run
//!   in order (a `\` ends a line that goes on); a command that starts
//!   `target/release/switchboard` (after `KEY=value` variables) starts the
//!   binary instead, on an ephemeral port. The TLS recipe's last command's
//!   output is its `<!-- expect -->` block; the cluster's nodes share a
//!   private Redis (never the machine's) and must deliver across each other.
//! * `<!-- recipe: library -->`: Rust code that must appear verbatim in this
//!   file (between the `README library example` markers), where it is
//!   compiled and run.
//! * `<!-- table: config -->`, `<!-- table: errors -->`, `<!-- table: close -->`
//!   before a table: compared with the configuration defaults and the
//!   protocol crate's code tables.
//!
//! In expected JSON the string `"…"` matches any value (session ids, epochs).
//! `127.0.0.1:8080` in a recipe stands for wherever the binary listens: it is
//! started with `--listen 127.0.0.1:0` and announces its real address on
//! stderr.
//!
//! The binary is not built here. `tests/run` builds it first; by hand, run
//! `cargo build --workspace --bins` before this test.

// README library example: begin
use std::time::Duration;

use jsonrpsee::RpcModule;
use serde_json::json;
use switchboard_server::{Caller, Config, Gateway, Hub, HubError, Target};

/// A gateway with two methods: `add`, answered at once, and `delete`, that
/// asks the caller's own client to confirm before it answers.
fn gateway() -> Result<Gateway, switchboard_server::Error> {
    let mut module = RpcModule::new(());
    module.register_async_method("delete", |_params, _ctx, ext| async move {
        // Who called: their session, their user, and the hub.
        let caller = ext.get::<Caller>().expect("set by the gateway").clone();
        // Call the client back; give up after 10 seconds.
        let confirmed: bool = caller
            .call("ui.confirm", &["Delete it?"], Duration::from_secs(10))
            .await
            .unwrap_or(false);
        if confirmed { "deleted" } else { "kept" }
    })?;
    Gateway::builder(Config::default())
        .module(module)?
        .method("add", |req| {
            let (a, b): (i64, i64) = req.params()?;
            Ok(a + b)
        })?
        .build()
}

/// Pushes `news` to every session of alice: all her tabs and devices.
async fn tell_alice(hub: &Hub, title: &str) -> Result<(), HubError> {
    hub.notify(Target::User("alice".into()), "news", &json!({ "title": title }))
        .await
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let gateway = gateway()?;
    let hub = gateway.hub().clone();
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(Duration::from_secs(60)).await;
            let _ = tell_alice(&hub, "one more minute").await;
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:8080").await?;
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    gateway.serve(listener, ctrl_c).await?;
    Ok(())
}
// README library example: end

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Instant;

use serde_json::Value;
use switchboard_server::protocol::codes::{self, CloseClass, close};
use switchboard_server::{ApiKey, StreamConfig, TlsConfig, UpstreamConfig, WebhookConfig};
use switchboard_tests::{TestServer, WAIT, http_get_blocking, within};

/// The address the README's recipes use.
const README_ADDR: &str = "127.0.0.1:8080";

/// In expected JSON, matches any value.
const ANY: &str = "…";

/// The line the binary starts its announcement with.
const LISTENING: &str = "switchboard listening on http://";
const LISTENING_TLS: &str = "switchboard listening on https://";

// ---------------------------------------------------------------------------
// Reading the documents

/// A fenced block of a document with the marker before it.
#[derive(Debug, Clone)]
struct Block {
    /// `recipe: curl`, `expect`, `table: config`, …
    marker: String,
    /// The fence's language (`sh`, `json`, …); empty for tables.
    lang: String,
    /// The block's text (for tables, the table's lines).
    body: String,
    /// Where the marker is.
    line: Loc,
    /// The 1-based line of the block's first line of text.
    start: usize,
}

/// A line of one of the documents.
#[derive(Debug, Clone, Copy)]
struct Loc {
    file: &'static str,
    line: usize,
}

impl std::fmt::Display for Loc {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} line {}", self.file, self.line)
    }
}

impl Block {
    /// Line `line` of the block's document.
    fn loc(&self, line: usize) -> Loc {
        Loc {
            file: self.line.file,
            line,
        }
    }
}

/// The documents whose marked blocks are checked: the README and docs/.
const DOCUMENTS: [&str; 6] = [
    "README.md",
    "docs/server-api.md",
    "docs/embedding.md",
    "docs/configuration.md",
    "docs/operations.md",
    "docs/protocol.md",
];

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ lives in the workspace")
        .to_path_buf()
}

fn document(file: &str) -> String {
    let path = workspace().join(file);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
}

/// Every marked block of every document, in order.
fn all_blocks() -> Vec<Block> {
    DOCUMENTS
        .iter()
        .flat_map(|file| marked_blocks(file, &document(file)))
        .collect()
}

/// Every marked block of a document, in order.
fn marked_blocks(file: &'static str, text: &str) -> Vec<Block> {
    let lines: Vec<&str> = text.lines().collect();
    let mut blocks = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        let line = lines[i].trim();
        if line.starts_with("```") {
            // An unmarked code block: skip it whole, so its text is never read as a marker.
            i += 1;
            while i < lines.len() && !lines[i].trim_start().starts_with("```") {
                i += 1;
            }
            i += 1;
            continue;
        }
        let Some(marker) = line.strip_prefix("<!--").and_then(|m| m.strip_suffix("-->")) else {
            i += 1;
            continue;
        };
        let marker = marker.trim().to_owned();
        let at = Loc { file, line: i + 1 };
        i += 1;
        while i < lines.len() && lines[i].trim().is_empty() {
            i += 1;
        }
        let start = lines.get(i).map(|l| l.trim()).unwrap_or_default();
        if marker.starts_with("table:") {
            assert!(start.starts_with('|'), "{at}: `{marker}` must be followed by a table");
            let start = i + 1;
            let mut body = String::new();
            while i < lines.len() && lines[i].trim().starts_with('|') {
                body.push_str(lines[i]);
                body.push('\n');
                i += 1;
            }
            blocks.push(Block {
                marker,
                lang: String::new(),
                body,
                line: at,
                start,
            });
            continue;
        }
        let Some(lang) = start.strip_prefix("```") else {
            panic!("{at}: `{marker}` must be followed by a fenced block");
        };
        let lang = lang.trim().to_owned();
        i += 1;
        let start = i + 1;
        let mut body = String::new();
        while i < lines.len() && !lines[i].trim_start().starts_with("```") {
            body.push_str(lines[i]);
            body.push('\n');
            i += 1;
        }
        assert!(i < lines.len(), "{at}: the fenced block is not closed");
        i += 1;
        blocks.push(Block {
            marker,
            lang,
            body,
            line: at,
            start,
        });
    }
    blocks
}

/// A recipe and the expected output that follows it, if any.
struct Recipe {
    block: Block,
    expect: Option<Block>,
}

fn recipes(kind: &str) -> Vec<Recipe> {
    let blocks = all_blocks();
    let marker = format!("recipe: {kind}");
    let mut out = Vec::new();
    for (n, block) in blocks.iter().enumerate() {
        if block.marker == marker {
            let expect = blocks.get(n + 1).filter(|b| b.marker == "expect").cloned();
            out.push(Recipe {
                block: block.clone(),
                expect,
            });
        }
    }
    assert!(
        !out.is_empty(),
        "neither the README nor docs/ has a `<!-- {marker} -->` block"
    );
    out
}

fn table(name: &str) -> Block {
    let marker = format!("table: {name}");
    all_blocks()
        .into_iter()
        .find(|b| b.marker == marker)
        .unwrap_or_else(|| panic!("neither the README nor docs/ has a `<!-- {marker} -->` table"))
}

/// The cells of each data row of a table (the header and the `|---|` line skipped).
fn rows(table: &Block) -> Vec<Vec<String>> {
    table
        .body
        .lines()
        .skip(2)
        .map(|line| {
            let line = line.trim().trim_start_matches('|').trim_end_matches('|');
            line.split(" | ").map(|c| c.trim().to_owned()).collect()
        })
        .collect()
}

/// The text of the first `code span` of a cell.
fn code(cell: &str) -> Option<&str> {
    let start = cell.find('`')? + 1;
    let len = cell[start..].find('`')?;
    Some(&cell[start..start + len])
}

/// Whether `actual` is `expected`, where the string `"…"` matches anything.
fn matches(expected: &Value, actual: &Value) -> bool {
    match (expected, actual) {
        (Value::String(s), _) if s == ANY => true,
        (Value::Array(e), Value::Array(a)) => e.len() == a.len() && e.iter().zip(a).all(|(e, a)| matches(e, a)),
        (Value::Object(e), Value::Object(a)) => {
            e.len() == a.len() && e.iter().all(|(k, v)| a.get(k).is_some_and(|a| matches(v, a)))
        }
        _ => expected == actual,
    }
}

fn json_line(text: &str, line: Loc) -> Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("{line}: not JSON ({e}): {text}"))
}

// ---------------------------------------------------------------------------
// Running the binary

/// Where `cargo build` put the `switchboard` binary: next to the `deps/`
/// directory this test runs from.
fn binary() -> PathBuf {
    let exe = std::env::current_exe().expect("the test knows where it runs from");
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("the test runs from target/<profile>/deps/");
    let binary = profile_dir.join(format!("switchboard{}", std::env::consts::EXE_SUFFIX));
    assert!(
        binary.is_file(),
        "{} is missing: build it first with `cargo build --workspace --bins` (tests/run does)",
        binary.display()
    );
    binary
}

/// A running `switchboard` process.
struct Binary {
    child: Child,
    /// The address it listens on.
    addr: String,
    /// Everything it wrote on stderr so far.
    stderr: Arc<Mutex<String>>,
    reader: Option<JoinHandle<()>>,
}

impl Binary {
    /// Starts the binary on an ephemeral port, with `args` besides, and waits
    /// for its announcement.
    fn start(args: &[&Path]) -> Self {
        Self::start_with(args, &[], None)
    }

    /// Like [`start`](Self::start), with these `SWITCHBOARD_*` variables and
    /// in `dir` (when given), as a recipe's command line says.
    fn start_with<A: AsRef<std::ffi::OsStr>>(args: &[A], env: &[(String, String)], dir: Option<&Path>) -> Self {
        let path = binary();
        let mut command = Command::new(&path);
        command
            .args(["--listen", "127.0.0.1:0"])
            .args(args)
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        // The recipes describe the defaults: no configuration from the environment but their own.
        for (key, _) in std::env::vars_os() {
            if key.to_string_lossy().starts_with("SWITCHBOARD_") {
                command.env_remove(key);
            }
        }
        command.envs(env.iter().map(|(k, v)| (k, v)));
        if let Some(dir) = dir {
            command.current_dir(dir);
        }
        let mut child = command
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", path.display()));
        let pipe = child.stderr.take().expect("stderr is piped");
        let stderr = Arc::new(Mutex::new(String::new()));
        let (tx, rx) = mpsc::channel();
        let sink = stderr.clone();
        let reader = std::thread::spawn(move || {
            let mut pipe = BufReader::new(pipe);
            let mut line = String::new();
            while pipe.read_line(&mut line).is_ok_and(|n| n > 0) {
                if let Some(rest) = line.strip_prefix(LISTENING) {
                    let _ = tx.send((false, rest.split_whitespace().next().unwrap_or_default().to_owned()));
                } else if let Some(rest) = line.strip_prefix(LISTENING_TLS) {
                    let _ = tx.send((true, rest.split_whitespace().next().unwrap_or_default().to_owned()));
                }
                sink.lock().expect("stderr lock").push_str(&line);
                line.clear();
            }
        });
        let mut binary = Self {
            child,
            addr: String::new(),
            stderr,
            reader: Some(reader),
        };
        let tls = match rx.recv_timeout(WAIT) {
            Ok((tls, addr)) => {
                binary.addr = addr;
                tls
            }
            Err(_) => panic!(
                "{} did not announce `{LISTENING}…` within {WAIT:?}; its stderr:\n{}",
                path.display(),
                binary.stderr.lock().expect("stderr lock")
            ),
        };
        // Over TLS the recipe's own request is the check.
        if !tls {
            let health = http_get_blocking(&format!("http://{}/healthz", binary.addr));
            assert_eq!(health.status, 200, "GET /healthz answered:\n{health:?}");
        }
        binary.wait_for_sigterm_handler();
        binary
    }

    /// Waits until the process catches SIGTERM. The binary announces its
    /// address before its shutdown future is first polled, and that poll is
    /// what installs the handler: a SIGTERM sent in between would kill it
    /// with the default action. Linux shows caught signals in
    /// `/proc/<pid>/status` (`SigCgt`, bit 14 for signal 15); elsewhere this
    /// returns at once.
    fn wait_for_sigterm_handler(&self) {
        let status = format!("/proc/{}/status", self.child.id());
        let deadline = Instant::now() + WAIT;
        loop {
            let Ok(text) = std::fs::read_to_string(&status) else {
                return;
            };
            let caught = text
                .lines()
                .find_map(|l| l.strip_prefix("SigCgt:"))
                .and_then(|mask| u64::from_str_radix(mask.trim(), 16).ok())
                .is_some_and(|mask| mask & (1 << 14) != 0);
            if caught {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "the binary does not catch SIGTERM {WAIT:?} after it started"
            );
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    /// Replaces the README's address with the real one.
    fn localise(&self, text: &str) -> String {
        text.replace(README_ADDR, &self.addr)
    }

    /// Sends SIGTERM, asserts that the binary exits successfully in time, and
    /// returns everything it wrote on stderr.
    fn stop(mut self) -> String {
        let pid = self.child.id().to_string();
        let status = Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .expect("`kill` runs");
        assert!(status.success(), "kill -TERM {pid} failed");
        let deadline = Instant::now() + WAIT;
        let exit = loop {
            if let Some(exit) = self.child.try_wait().expect("waiting for the binary") {
                break exit;
            }
            assert!(
                Instant::now() < deadline,
                "the binary did not exit within {WAIT:?} of SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(10));
        };
        if let Some(reader) = self.reader.take() {
            reader.join().expect("the stderr reader ends with the pipe");
        }
        let stderr = self.stderr.lock().expect("stderr lock").clone();
        assert!(
            exit.success(),
            "the binary exited with {exit} after SIGTERM; stderr:\n{stderr}"
        );
        stderr
    }
}

impl Drop for Binary {
    fn drop(&mut self) {
        // Only when a test failed before `stop`: do not leave the process behind.
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Runs `sh -c script` and returns its output, failing after `WAIT`.
fn run_shell(script: &str) -> Output {
    let child = Command::new("sh")
        .arg("-c")
        .arg(script)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("sh runs");
    let pid = child.id().to_string();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    match rx.recv_timeout(WAIT) {
        Ok(output) => output.expect("the recipe's output"),
        Err(_) => {
            let _ = Command::new("kill").args(["-KILL", &pid]).status();
            panic!("the recipe did not finish within {WAIT:?}:\n{script}");
        }
    }
}

// ---------------------------------------------------------------------------
// The recipes

#[test]
fn banner_and_curl_recipes_print_what_the_readme_shows() {
    let curl = Command::new("curl").arg("--version").output();
    assert!(
        curl.is_ok_and(|o| o.status.success()),
        "curl is needed to run the README's curl recipes"
    );
    let server = Binary::start(&[]);
    for recipe in recipes("curl") {
        let line = recipe.block.line;
        let expect = recipe
            .expect
            .unwrap_or_else(|| panic!("{line}: a curl recipe needs an `<!-- expect -->` block after it"));
        let script = server.localise(&recipe.block.body);
        let output = run_shell(&script);
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert!(
            output.status.success(),
            "{line}: the recipe failed ({}):\n{script}\nstderr: {}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        );
        if expect.lang == "json" {
            let expected = json_line(&expect.body, expect.loc(expect.start));
            let actual: Value = serde_json::from_str(stdout.trim())
                .unwrap_or_else(|e| panic!("{line}: the recipe printed no JSON ({e}):\n{stdout}"));
            assert!(
                matches(&expected, &actual),
                "{line}: the recipe printed\n{actual}\nbut the README expects\n{expected}"
            );
        } else {
            assert_eq!(
                stdout.trim(),
                expect.body.trim(),
                "{line}: the recipe's output differs from the README"
            );
        }
    }
    let stderr = server.stop();

    let banner = &recipes("banner")[0].block;
    let printed: Vec<&str> = stderr.lines().map(str::trim_end).collect();
    let expected: Vec<String> = banner
        .body
        .lines()
        .map(|l| l.replace(README_ADDR, &addr_of(&stderr)).trim_end().to_owned())
        .collect();
    assert_eq!(
        printed.join("\n").trim(),
        expected.join("\n").trim(),
        "{}: the banner differs from what the binary prints",
        banner.line
    );
}

/// The address in the binary's announcement.
fn addr_of(stderr: &str) -> String {
    stderr
        .lines()
        .find_map(|l| l.strip_prefix(LISTENING))
        .and_then(|rest| rest.split_whitespace().next())
        .expect("the binary announced its address")
        .to_owned()
}

/// The commands of a shell recipe: lines joined where one ends with `\\`,
/// empty lines dropped.
fn commands(body: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut current = String::new();
    for line in body.lines() {
        let line = line.trim();
        if let Some(head) = line.strip_suffix('\\') {
            current.push_str(head);
            current.push(' ');
            continue;
        }
        current.push_str(line);
        if !current.trim().is_empty() {
            out.push(current.trim().to_owned());
        }
        current.clear();
    }
    out
}

/// `KEY=value` pairs from a command line.
type Variables = Vec<(String, String)>;

/// A command that starts the binary: its `KEY=value` variables and its
/// arguments, without `--listen` (every recipe's binary takes an ephemeral
/// port) and without a trailing `&`.
fn binary_command(command: &str) -> Option<(Variables, Vec<String>)> {
    let mut words = command.split_whitespace().peekable();
    let mut env = Vec::new();
    while let Some((key, value)) = words.peek().and_then(|w| w.split_once('=')) {
        env.push((key.to_owned(), value.to_owned()));
        words.next();
    }
    if words.next() != Some("target/release/switchboard") {
        return None;
    }
    let mut args = Vec::new();
    while let Some(word) = words.next() {
        match word {
            "--listen" => {
                words.next();
            }
            "&" => {}
            other => args.push(other.to_owned()),
        }
    }
    Some((env, args))
}

#[test]
fn tls_recipe_serves_https() {
    let openssl = Command::new("openssl").arg("version").output();
    assert!(
        openssl.is_ok_and(|o| o.status.success()),
        "openssl is needed to run the README's TLS recipe"
    );
    let recipe = &recipes("tls")[0];
    let line = recipe.block.line;
    let expect = recipe
        .expect
        .as_ref()
        .unwrap_or_else(|| panic!("{line}: the TLS recipe needs an `<!-- expect -->` block"));
    let dir = std::env::temp_dir().join(format!("sb-readme-tls-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let mut server: Option<Binary> = None;
    let mut last = None;
    for command in commands(&recipe.block.body) {
        if let Some((env, args)) = binary_command(&command) {
            server = Some(Binary::start_with(&args, &env, Some(&dir)));
            continue;
        }
        let command = server
            .as_ref()
            .map_or_else(|| command.clone(), |s| s.localise(&command));
        let output = run_shell(&format!("cd '{}' && {command}", dir.display()));
        assert!(
            output.status.success(),
            "{line}: `{command}` failed:\n{}",
            String::from_utf8_lossy(&output.stderr)
        );
        last = Some(output);
    }
    let server = server.unwrap_or_else(|| panic!("{line}: the TLS recipe starts no binary"));
    let printed = last
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default();
    let actual: Value = serde_json::from_str(printed.trim())
        .unwrap_or_else(|e| panic!("{line}: the last command printed no JSON ({e}):\n{printed}"));
    let expected = json_line(&expect.body, expect.loc(expect.start));
    assert!(
        matches(&expected, &actual),
        "{line}: the recipe printed\n{actual}\nbut the README expects\n{expected}"
    );
    server.stop();
    std::fs::remove_dir_all(&dir).ok();
}

#[tokio::test]
async fn cluster_recipe_nodes_deliver_across_each_other() {
    let redis = switchboard_tests::PrivateRedis::on_a_free_port(false);
    let recipe = &recipes("cluster")[0];
    let line = recipe.block.line;
    let mut nodes = Vec::new();
    for command in commands(&recipe.block.body) {
        // tests/run has built the binary; every recipe runs the debug build.
        if command.starts_with("cargo build") {
            continue;
        }
        let (mut env, args) = binary_command(&command)
            .unwrap_or_else(|| panic!("{line}: a cluster command builds or starts a node: {command}"));
        // The recipe's Redis is the machine's; the test's is its own.
        env.push(("SWITCHBOARD_REDIS__URL".to_owned(), redis.url()));
        nodes.push(Binary::start_with(&args, &env, None));
    }
    assert_eq!(nodes.len(), 2, "{line}: the recipe starts two nodes");
    within(WAIT, async {
        let mut alice = switchboard_tests::WsClient::connect(&format!("ws://{}/ws?user=alice", nodes[0].addr)).await;
        alice.welcome().await;
        let subscribed = alice.call(1, "rpc.subscribe", json!({"topics": [{"topic": "news"}]})).await;
        assert!(subscribed.get("result").is_some(), "{subscribed}");
        // Published through the other node's server API until it arrives.
        let publish = json!({"jsonrpc": "2.0", "id": 1, "method": "publish", "params": {"topic": "news", "data": {"text": "across"}}});
        let message = loop {
            let answer = switchboard_tests::http_post(&format!("http://{}/api", nodes[1].addr), &publish.to_string(), &[]).await;
            assert_eq!(answer.status, 200, "{answer:?}");
            if let Some(frame) = alice.try_recv(Duration::from_millis(200)).await {
                break frame;
            }
        };
        assert_eq!(message["method"], "rpc.message", "{message}");
        assert_eq!(message["params"]["data"]["text"], "across", "{message}");
    })
    .await;
    for node in nodes {
        node.stop();
    }
}

/// The real `wscat` from npm, installed by `npm ci` in `tests/recipes/` (tests/run does).
fn wscat() -> PathBuf {
    let path = workspace().join("tests/recipes/node_modules/wscat/bin/wscat");
    assert!(
        path.exists(),
        "{} is missing: run `npm ci` in tests/recipes first (tests/run does)",
        path.display()
    );
    path
}

#[tokio::test]
async fn wscat_recipe_is_what_wscat_shows() {
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt};
    let server = Binary::start(&[]);
    for recipe in recipes("wscat") {
        let transcript = &recipe.block;
        let mut lines = transcript.body.lines();
        let command = lines.next().unwrap_or_default();
        let url = command
            .split('\'')
            .nth(1)
            .unwrap_or_else(|| panic!("{}: expected `$ npx wscat -c 'URL'`", transcript.line));
        let url = server.localise(url);
        // wscat on pipes: each line read is sent as a frame, each frame received printed on a line.
        let mut child = tokio::process::Command::new("node")
            .arg(wscat())
            .args(["-c", &url])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .expect("node runs wscat");
        let mut typed = child.stdin.take().expect("stdin is piped");
        let mut shown = tokio::io::BufReader::new(child.stdout.take().expect("stdout is piped")).lines();
        within(WAIT, async {
            for (n, line) in lines.enumerate() {
                let at = transcript.loc(transcript.start + 1 + n);
                if let Some(frame) = line.strip_prefix("> ") {
                    typed
                        .write_all(format!("{frame}\n").as_bytes())
                        .await
                        .expect("wscat reads");
                } else if let Some(frame) = line.strip_prefix("< ") {
                    let expected = json_line(frame, at);
                    let printed = shown
                        .next_line()
                        .await
                        .expect("wscat's output")
                        .unwrap_or_else(|| panic!("{at}: wscat ended before showing a frame"));
                    // On a pipe wscat still writes readline's `> ` prompt before what it shows next.
                    let printed = printed.trim_start_matches("> ");
                    let actual: Value = serde_json::from_str(printed)
                        .unwrap_or_else(|e| panic!("{at}: wscat showed a line that is not JSON ({e}): {printed}"));
                    assert!(
                        matches(&expected, &actual),
                        "{at}: wscat showed\n{actual}\nbut the README shows\n{expected}"
                    );
                } else {
                    assert!(
                        line.starts_with("Connected") || line.trim().is_empty(),
                        "{at}: a wscat line starts with `> ` or `< `: {line}"
                    );
                }
            }
            let extra = tokio::time::timeout(Duration::from_millis(200), shown.next_line()).await;
            assert!(
                !matches!(extra, Ok(Ok(Some(_)))),
                "wscat showed a frame the README does not: {extra:?}"
            );
            // End of input: wscat closes the connection and exits.
            drop(typed);
            let status = child.wait().await.expect("wscat exits");
            assert!(status.success(), "wscat failed: {status}");
        })
        .await;
    }
    server.stop();
}

#[test]
fn library_example_is_this_file_verbatim() {
    let source = include_str!("readme.rs");
    let begin = "// README library example: begin\n";
    let start = source.find(begin).expect("begin marker") + begin.len();
    let len = source[start..]
        .find("// README library example: end")
        .expect("end marker");
    let example = &recipes("library")[0].block;
    assert_eq!(
        example.body,
        &source[start..start + len],
        "{}: the library example must be the code between the markers in tests/tests/readme.rs",
        example.line
    );
}

#[tokio::test]
async fn library_example_calls_the_client_back_and_pushes() {
    within(WAIT, async {
        let server = TestServer::serve(gateway().expect("the example gateway builds")).await;
        let mut alice = server.connect("alice").await;
        alice.send(r#"{"jsonrpc":"2.0","id":1,"method":"delete"}"#).await;
        let ask = alice.recv().await;
        assert_eq!(ask["method"], "ui.confirm", "the server calls the client back: {ask}");
        assert_eq!(ask["params"], json!(["Delete it?"]));
        alice
            .send_json(&json!({"jsonrpc": "2.0", "id": ask["id"], "result": true}))
            .await;
        assert_eq!(
            alice.recv().await,
            json!({"jsonrpc": "2.0", "id": 1, "result": "deleted"})
        );

        alice
            .send(r#"{"jsonrpc":"2.0","id":2,"method":"add","params":[2,40]}"#)
            .await;
        assert_eq!(alice.recv().await, json!({"jsonrpc": "2.0", "id": 2, "result": 42}));

        tell_alice(server.gateway.hub(), "hi").await.expect("the push goes out");
        assert_eq!(
            alice.recv().await,
            json!({"jsonrpc": "2.0", "method": "news", "params": {"title": "hi"}})
        );
        // Gone before the gateway stops, so that it does not wait for a close handshake.
        drop(alice);
        server.stop().await;
    })
    .await;
}

#[test]
fn config_recipe_starts_the_binary() {
    let recipe = &recipes("config")[0].block;
    let dir = std::env::temp_dir().join(format!("switchboard-readme-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let file = dir.join("config.toml");
    std::fs::write(&file, &recipe.body).expect("write the example");
    // The binary loads it exactly as a user's would (`Config::load` in this
    // process would also read the test runner's SWITCHBOARD_* variables).
    let server = Binary::start(&[Path::new("--config"), &file]);
    let stderr = server.stop();
    let _ = std::fs::remove_dir_all(&dir);
    assert!(
        stderr.contains(LISTENING),
        "{}: the example configuration does not start the binary:\n{stderr}",
        recipe.line
    );
}

// ---------------------------------------------------------------------------
// The tables

/// A part of the configuration that is absent by default (an optional section)
/// or repeated (a list): its fields are not in the serialised defaults.
struct Section {
    /// `auth`, `streams[]`, `auth.jwt[]`, …
    prefix: &'static str,
    /// The fields without a default, with any value.
    required: Value,
    /// The section with its required fields as given and every other at its default.
    defaults: Value,
}

fn section<T: serde::de::DeserializeOwned + serde::Serialize>(prefix: &'static str, required: Value) -> Section {
    let typed: T = serde_json::from_value(required.clone())
        .unwrap_or_else(|e| panic!("`{prefix}` needs more than {required} ({e}): update this test"));
    let defaults = serde_json::to_value(typed).expect("the section serialises");
    Section {
        prefix,
        required,
        defaults,
    }
}

/// Every optional section and list element of [`Config`].
fn sections() -> Vec<Section> {
    use switchboard_server::auth::{AuthConfig, ConnectHook, JwksSource, JwtKey};
    vec![
        section::<StreamConfig>("streams[]", json!({"pattern": "x"})),
        section::<ApiKey>("api_keys[]", json!({"name": "n", "key": "k"})),
        section::<UpstreamConfig>("upstreams[]", json!({"prefix": "p.", "url": "http://x", "secret": "s"})),
        section::<WebhookConfig>("webhook", json!({"url": "http://x", "secret": "s"})),
        section::<TlsConfig>("tls", json!({"cert_path": "c", "key_path": "k"})),
        section::<AuthConfig>("auth", json!({})),
        section::<JwtKey>("auth.jwt[]", json!({"algorithm": "HS256"})),
        section::<JwksSource>("auth.jwks", json!({})),
        section::<ConnectHook>("auth.connect_hook", json!({"url": "http://x"})),
    ]
}

/// The keys of a configuration value, dotted, with arrays and `null` as leaves.
fn config_keys(prefix: &str, value: &Value, out: &mut BTreeSet<String>) {
    match value {
        Value::Object(map) => {
            for (k, v) in map {
                let key = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                config_keys(&key, v, out);
            }
        }
        _ => {
            out.insert(prefix.to_owned());
        }
    }
}

#[test]
fn config_tables_list_every_key_with_its_default() {
    let tables: Vec<Block> = all_blocks()
        .into_iter()
        .filter(|b| b.marker == "table: config")
        .collect();
    assert!(!tables.is_empty(), "docs/ has no `<!-- table: config -->` table");
    let rows: Vec<(Loc, Vec<String>)> = tables
        .iter()
        .flat_map(|t| rows(t).into_iter().map(|r| (t.line, r)))
        .collect();
    let defaults = serde_json::to_value(Config::default()).expect("the config serialises");
    let sections = sections();
    let mut expected = BTreeSet::new();
    config_keys("", &defaults, &mut expected);
    for s in &sections {
        config_keys(s.prefix, &s.defaults, &mut expected);
    }

    let mut listed = BTreeSet::new();
    for (line, row) in &rows {
        let key = code(&row[0]).unwrap_or_default().to_owned();
        assert!(listed.insert(key.clone()), "{line}: `{key}` is listed twice");
    }
    let missing: Vec<&String> = expected.difference(&listed).collect();
    let unknown: Vec<&String> = listed.difference(&expected).collect();
    assert!(
        missing.is_empty() && unknown.is_empty(),
        "the configuration tables of docs/ must list exactly the keys of Config: missing {missing:?}, \
         not in Config {unknown:?}"
    );

    // Literal defaults of sections are compared with the section's defaults; the others
    // make up one configuration which must be the default one.
    let mut literal = serde_json::Map::new();
    for (line, row) in &rows {
        let key = code(&row[0]).unwrap_or_default();
        let default = code(&row[1]);
        let in_section = sections
            .iter()
            .filter(|s| key.starts_with(&format!("{}.", s.prefix)))
            .max_by_key(|s| s.prefix.len());
        match (in_section, default) {
            (Some(s), _) => {
                let field = &key[s.prefix.len() + 1..];
                let required = s.required.get(field).is_some();
                match default {
                    Some(v) => {
                        assert!(!required, "{line}: `{key}` is required, it has no default");
                        assert_eq!(
                            toml_to_json(v).as_ref(),
                            Some(&s.defaults[field]),
                            "{line}: the default of `{key}` is wrong"
                        );
                    }
                    None => assert!(
                        required || s.defaults[field].is_null(),
                        "{line}: `{key}` needs its default in a code span"
                    ),
                }
            }
            (None, Some(v)) => {
                let value = toml_to_json(v).unwrap_or_else(|| panic!("{line}: `{v}` is not a value"));
                let (path, last) = key.rsplit_once('.').map_or((None, key), |(p, l)| (Some(p), l));
                let mut table = &mut literal;
                for part in path.into_iter().flat_map(|p| p.split('.')) {
                    table = table
                        .entry(part)
                        .or_insert_with(|| Value::Object(serde_json::Map::new()))
                        .as_object_mut()
                        .expect("a table");
                }
                table.insert(last.to_owned(), value);
            }
            (None, None) => assert!(
                defaults.pointer(&format!("/{}", key.replace('.', "/"))) == Some(&Value::Null),
                "{line}: `{key}` needs its default in a code span"
            ),
        }
    }
    let listed: Config = serde_json::from_value(Value::Object(literal))
        .unwrap_or_else(|e| panic!("the configuration defaults of docs/ do not make a configuration: {e}"));
    assert_eq!(
        listed,
        Config::default(),
        "a default in the configuration tables of docs/ is wrong"
    );
}

/// A TOML value as written in the docs (numbers, strings, booleans, arrays
/// and inline tables) as JSON: inline tables' `key = value` become `"key": value`.
fn toml_to_json(toml: &str) -> Option<Value> {
    let mut json = String::with_capacity(toml.len() + 16);
    let mut open: Vec<char> = Vec::new();
    let mut chars = toml.chars().peekable();
    let mut in_string = false;
    while let Some(c) = chars.next() {
        if in_string {
            json.push(c);
            match c {
                '\\' => json.extend(chars.next()),
                '"' => in_string = false,
                _ => {}
            }
            continue;
        }
        json.push(c);
        match c {
            '"' => in_string = true,
            '[' | '{' => open.push(c),
            ']' | '}' => {
                open.pop();
            }
            _ => {}
        }
        // Inside an inline table, `{` and `,` are followed by a bare key and `=`.
        if matches!(c, '{' | ',') && open.last() == Some(&'{') {
            while chars.next_if(|n| n.is_whitespace()).is_some() {}
            let mut key = String::new();
            while let Some(n) = chars.next_if(|n| n.is_ascii_alphanumeric() || *n == '_') {
                key.push(n);
            }
            if key.is_empty() {
                continue;
            }
            while chars.next_if(|n| n.is_whitespace()).is_some() {}
            chars.next_if_eq(&'=')?;
            json.push_str(&format!("\"{key}\":"));
        }
    }
    serde_json::from_str(&json).ok()
}

#[test]
fn error_code_table_is_the_protocol_crates() {
    let table = table("errors");
    let listed: Vec<(i32, String)> = rows(&table)
        .iter()
        .map(|r| {
            let code: i32 = code(&r[0]).and_then(|c| c.parse().ok()).expect("a code");
            (code, r[1].clone())
        })
        .collect();
    let expected: Vec<(i32, String)> = [
        codes::PARSE_ERROR,
        codes::INVALID_REQUEST,
        codes::METHOD_NOT_FOUND,
        codes::INVALID_PARAMS,
        codes::INTERNAL_ERROR,
    ]
    .into_iter()
    .chain(codes::GATEWAY_ERRORS.iter().map(|(c, _)| *c))
    .map(|c| (c, codes::message_for(c).to_owned()))
    .collect();
    assert_eq!(
        listed, expected,
        "{}: the error code table differs from schemas/src/codes.rs",
        table.line
    );
}

#[test]
fn close_code_table_is_the_protocol_crates() {
    let table = table("close");
    let listed: Vec<(u16, String, String)> = rows(&table)
        .iter()
        .map(|r| {
            let code: u16 = code(&r[0]).and_then(|c| c.parse().ok()).expect("a code");
            (code, r[1].clone(), r[2].clone())
        })
        .collect();
    let expected: Vec<(u16, String, String)> = close::ALL
        .iter()
        .map(|(c, reason)| {
            let class = match codes::close_class(*c) {
                CloseClass::Reconnect => "reconnect",
                CloseClass::ReconnectNow => "reconnect now",
                CloseClass::Terminal => "terminal",
            };
            (*c, (*reason).to_owned(), class.to_owned())
        })
        .collect();
    assert_eq!(
        listed, expected,
        "{}: the close code table differs from schemas/src/codes.rs",
        table.line
    );
}

/// The production configuration in docs/operations.md loads and validates as written.
#[test]
fn the_production_config_in_the_docs_is_valid() {
    let text = document("docs/operations.md");
    let after = text
        .split("<!-- production-config -->")
        .nth(1)
        .expect("the production-config marker");
    let block = after
        .split("```toml\n")
        .nth(1)
        .and_then(|b| b.split("\n```").next())
        .expect("a toml block");
    let dir = std::env::temp_dir().join(format!("sb-prod-config-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let file = dir.join("production.toml");
    std::fs::write(&file, block).expect("write");
    let config =
        switchboard_server::Config::load(Some(&file)).expect("the production config of docs/operations.md loads");
    assert!(!config.dev_mode());
    assert_eq!(config.auth.as_ref().map(|a| a.jwt.len()), Some(2));
    assert_eq!(config.upstreams.len(), 1);
    assert!(config.tls.is_some() && config.webhook.is_some());
}
