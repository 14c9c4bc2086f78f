//! The `SWITCHBOARD_*` environment layer of the real binary: it overrides
//! the configuration file, the command line overrides it, nested keys are
//! spelled with `__`, and a value that does not parse stops the binary with
//! the key's name.

use std::process::Stdio;

use serde_json::json;
use switchboard_tests::{Node, WAIT, switchboard_binary, within};

fn config_file(name: &str, text: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("sb-config-env-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let file = dir.join("switchboard.toml");
    std::fs::write(&file, text).expect("write the configuration");
    file
}

#[tokio::test]
async fn the_environment_overrides_the_file_and_the_command_line_overrides_it() {
    within(WAIT * 2, async {
        let file = config_file("layers", "demo = true\n\n[limits]\nmax_batch = 5\nmax_in_flight = 7\n");
        let node = Node::start_with_env(
            &file,
            "127.0.0.1:0",
            &[
                // Beats the file's 5.
                ("SWITCHBOARD_LIMITS__MAX_BATCH", "3"),
                // Beaten by --listen 127.0.0.1:0: the node listens on a free port, not 1.
                ("SWITCHBOARD_LISTEN", "127.0.0.1:1"),
                // A top-level key: the demo methods go away.
                ("SWITCHBOARD_DEMO", "false"),
            ],
        );
        assert_ne!(node.addr.port(), 1);
        let mut c = switchboard_tests::WsClient::connect(&node.ws_url("env")).await;
        let welcome = c.welcome().await;
        assert_eq!(welcome["limits"]["max_batch"], 3, "{welcome}");
        // The file's value stays where the environment says nothing.
        assert_eq!(welcome["limits"]["max_in_flight"], 7, "{welcome}");
        let echo = c.call(1, "echo", json!([1])).await;
        assert_eq!(echo["error"]["code"], -32601, "{echo}");
        std::fs::remove_dir_all(file.parent().expect("dir")).ok();
    })
    .await;
}

#[tokio::test]
async fn a_value_that_does_not_parse_stops_the_binary_and_names_its_key() {
    within(WAIT * 2, async {
        let file = config_file("bad", "");
        let out = tokio::process::Command::new(switchboard_binary())
            .arg("--config")
            .arg(&file)
            .arg("--listen")
            .arg("127.0.0.1:0")
            .env("SWITCHBOARD_LIMITS__MAX_BATCH", "lots")
            .stdin(Stdio::null())
            .kill_on_drop(true)
            .output()
            .await
            .expect("the binary runs");
        assert!(!out.status.success(), "the binary started with max_batch = \"lots\"");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.to_lowercase().contains("max_batch") && stderr.contains("SWITCHBOARD_"),
            "{stderr}"
        );
        std::fs::remove_dir_all(file.parent().expect("dir")).ok();
    })
    .await;
}
