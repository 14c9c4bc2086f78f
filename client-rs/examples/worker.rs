//! A worker behind NAT: it connects *out* to the gateway, registers the
//! methods it offers, and is then called by the backend through the gateway.
//!
//! ```sh
//! cargo run -p switchboard-server                       # a dev-mode gateway on 127.0.0.1:8080
//! cargo run -p switchboard-client --example worker      # this worker, as user "worker"
//! ```
//!
//! Then call it from any backend, through the server API:
//!
//! ```sh
//! curl -s http://127.0.0.1:8080/api -d '{"jsonrpc":"2.0","id":1,"method":"call",
//!   "params":{"target":{"user":"worker"},"method":"job.run","params":{"input":"hello"},"timeout_ms":5000}}'
//! ```
//!
//! The answer has one entry per worker session: run two workers and both answer.
//! Set `SWITCHBOARD_URL` to use another gateway, and `SWITCHBOARD_TOKEN` to
//! send a token (a gateway with authentication ignores `?user=`).

// An example program talks to its user on stdout.
#![allow(clippy::print_stdout)]

use std::time::Duration;

use futures_util::StreamExt;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use switchboard_client::protocol::contract::ClientMethod;
use switchboard_client::{Client, ConnectionState, IncomingCall, RpcError};

/// `job.run`'s params.
#[derive(Serialize, Deserialize, JsonSchema)]
struct Job {
    input: String,
    /// Pretend work, in milliseconds.
    #[serde(default)]
    work_ms: u64,
}

/// `job.run`'s result.
#[derive(Serialize, Deserialize, JsonSchema)]
struct Done {
    output: String,
    worker: u32,
}

/// `job.run`, the method the backend calls on workers: in an application,
/// this descriptor lives in a crate the backend's gateway shares, which
/// declares it (`GatewayBuilder::declare_client_method::<RunJob>()`) and
/// calls it with the same types.
struct RunJob;
impl ClientMethod for RunJob {
    const NAME: &'static str = "job.run";
    const SUMMARY: &'static str = "Run a job; progress {done_ms, work_ms} is reported every 100 ms.";
    type Params = Job;
    type Result = Done;
}

#[tokio::main]
async fn main() -> Result<(), switchboard_client::Error> {
    let url = std::env::var("SWITCHBOARD_URL").unwrap_or_else(|_| "ws://127.0.0.1:8080/ws?user=worker".to_owned());
    let mut builder = Client::builder(&url);
    if let Ok(token) = std::env::var("SWITCHBOARD_TOKEN") {
        builder = builder.token(token);
    }
    let client = builder.build()?;
    let me = std::process::id();

    // Register before connecting: the backend may call as soon as the session exists.
    client.handle_method::<RunJob, _, _>(move |job: Job, call: IncomingCall| async move {
        if job.input.is_empty() {
            return Err(RpcError::with_message(1, "empty input"));
        }
        // The work, in steps of at most 100 ms, each reported to the caller
        // (`rpc.progress`). If the backend gives up first, it sends
        // `rpc.cancel`: this future is dropped and the call answered -32011.
        let work_ms = job.work_ms.min(60_000);
        let mut done_ms = 0;
        while done_ms < work_ms {
            let step = (work_ms - done_ms).min(100);
            tokio::time::sleep(Duration::from_millis(step)).await;
            done_ms += step;
            call.progress(&serde_json::json!({ "done_ms": done_ms, "work_ms": work_ms }));
        }
        Ok(Done {
            output: job.input.to_uppercase(),
            worker: me,
        })
    });
    client.handle("job.ping", |()| async { Ok::<_, RpcError>("pong") });

    let mut states = client.states();
    client.connect().await?;
    let welcome = client.welcome();
    let user = welcome.as_ref().map_or("worker", |w| w.user.as_str());
    println!("worker {me} connected to {url} as {user:?}");
    println!();
    let (http, ws) = endpoints(&url);
    println!("call it through the server API:");
    println!(
        "  curl -s {http}/api -d '{{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"call\",\
         \"params\":{{\"target\":{{\"user\":\"{user}\"}},\"method\":\"job.run\",\
         \"params\":{{\"input\":\"hello\",\"work_ms\":100}},\"timeout_ms\":5000}}}}'"
    );
    println!();
    println!("or, from any other session, with the dev-mode demo method chat.ask:");
    println!(
        "  wscat -c '{ws}/ws?user=boss' -x '{{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"chat.ask\",\
         \"params\":{{\"user\":\"{user}\",\"method\":\"job.run\",\"params\":{{\"input\":\"hello\"}},\"timeout_ms\":5000}}}}'"
    );

    // Reconnects happen on their own; report them until Ctrl-C.
    loop {
        tokio::select! {
            state = states.next() => match state {
                Some(ConnectionState::Disconnected { code, reason, will_retry }) => {
                    println!("disconnected ({code:?} {reason}); retrying: {will_retry}");
                }
                Some(state) => println!("{state:?}"),
                None => break,
            },
            _ = tokio::signal::ctrl_c() => break,
        }
    }
    let stats = client.stats();
    println!("served {} calls", stats.handled);
    client.close().await;
    Ok(())
}

/// The gateway's HTTP and WebSocket bases (`http://host:port`, `ws://host:port`) from its `/ws` URL.
fn endpoints(url: &str) -> (String, String) {
    let (scheme, rest) = url.split_once("://").unwrap_or(("ws", url));
    let host = rest.split(['/', '?']).next().unwrap_or(rest);
    let http = if scheme == "wss" { "https" } else { "http" };
    (format!("{http}://{host}"), format!("{scheme}://{host}"))
}
