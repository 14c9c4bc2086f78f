//! The examples run as their users would run them: `client-rs/examples/worker.rs`
//! against the real binary, then called through `POST /api` with the very
//! command it prints.

use std::process::Stdio;

use serde_json::Value;
use switchboard_tests::{Node, WAIT, switchboard_binary, within};
use tokio::io::AsyncBufReadExt;

/// An example built next to the binary (`cargo build --workspace --all-targets`; tests/run does).
fn example(name: &str) -> std::path::PathBuf {
    let path = switchboard_binary()
        .parent()
        .map(|dir| dir.join("examples").join(name))
        .expect("target/<profile>");
    assert!(
        path.exists(),
        "{} is missing: run `cargo build --workspace --all-targets` first (tests/run does)",
        path.display()
    );
    path
}

#[tokio::test]
async fn the_worker_connects_out_and_answers_the_call_it_prints() {
    within(WAIT * 2, async {
        let dir = std::env::temp_dir().join(format!("sb-example-worker-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let config = dir.join("switchboard.toml");
        std::fs::write(&config, "").expect("an empty configuration: dev mode");
        let node = Node::start(&config, "127.0.0.1:0");

        let mut worker = tokio::process::Command::new(example("worker"))
            .env("SWITCHBOARD_URL", node.ws_url("worker"))
            .env_remove("SWITCHBOARD_TOKEN")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .expect("the worker starts");
        let mut printed = tokio::io::BufReader::new(worker.stdout.take().expect("piped")).lines();
        let mut connected = false;
        let curl = loop {
            let line = printed
                .next_line()
                .await
                .expect("the worker's output")
                .expect("the worker prints how to call it before it waits");
            connected |= line.starts_with("worker ") && line.contains(" connected to ");
            if let Some(command) = line.trim_start().strip_prefix("curl ") {
                break format!("curl {command}");
            }
        };
        assert!(connected, "the worker said it connected before printing the call");

        let output = tokio::process::Command::new("sh")
            .arg("-c")
            .arg(&curl)
            .stdin(Stdio::null())
            .kill_on_drop(true)
            .output()
            .await
            .expect("curl runs");
        assert!(
            output.status.success(),
            "{curl} failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        let answer: Value = serde_json::from_slice(&output.stdout).expect("the server API answers JSON");
        let entries = answer["result"].as_array().expect("one entry per worker session");
        assert_eq!(entries.len(), 1, "{answer}");
        assert_eq!(entries[0]["user"], "worker", "{answer}");
        assert_eq!(entries[0]["result"]["output"], "HELLO", "{answer}");
        assert_eq!(
            entries[0]["result"]["worker"].as_u64(),
            worker.id().map(u64::from),
            "the answer comes from this worker: {answer}"
        );
        worker.kill().await.ok();
        std::fs::remove_dir_all(&dir).ok();
    })
    .await;
}
