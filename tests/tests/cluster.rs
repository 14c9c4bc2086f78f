//! Several gateway processes sharing one real Redis: every Hub operation
//! issued on one node reaches sessions on another, recovery works across
//! nodes, and nothing recoverable is lost when a node or Redis goes away.
//!
//! Redis comes from `SWITCHBOARD_TEST_REDIS_URL` (default the local one at
//! 127.0.0.1:6379); `tests/run` makes sure one is there. The Redis restart
//! test starts a private `redis-server` of its own.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use switchboard_tests::{Node, WAIT, WsClient, within};

fn redis_url() -> String {
    std::env::var("SWITCHBOARD_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned())
}

/// A config file for one test's cluster: its own key prefix, `chat:*` recoverable.
fn cluster_config(name: &str, redis: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("sb-cluster-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let file = dir.join("config.toml");
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_nanos();
    std::fs::write(
        &file,
        format!(
            "broker = \"redis\"\njoin_leave = [\"room:*\"]\n\
             [redis]\nurl = \"{redis}\"\nprefix = \"t{nanos}\"\nheartbeat_ms = 500\nnode_ttl_ms = 1500\n\
             [[streams]]\npattern = \"user:*\"\n\
             [[streams]]\npattern = \"chat:*\"\nhistory_size = 10000\n"
        ),
    )
    .expect("write config");
    file
}

async fn subscribe(c: &mut WsClient, topic: &str, since: Option<(u64, &str)>) -> Value {
    let mut t = json!({ "topic": topic });
    if let Some((offset, epoch)) = since {
        t["since"] = json!({"offset": offset, "epoch": epoch});
    }
    let r = c.call(5_000, "rpc.subscribe", json!({ "topics": [t] })).await;
    assert!(r.get("result").is_some(), "{r}");
    r["result"]["topics"][0].clone()
}

/// Reads frames until `pred` matches one; returns it.
async fn until(c: &mut WsClient, mut pred: impl FnMut(&Value) -> bool) -> Value {
    loop {
        let v = c.recv().await;
        if pred(&v) {
            return v;
        }
    }
}

#[tokio::test]
async fn every_hub_operation_on_node_a_reaches_sessions_on_node_b() {
    within(WAIT * 3, async {
        let config = cluster_config("ops", &redis_url());
        let a = Node::start(&config, "127.0.0.1:0");
        let b = Node::start(&config, "127.0.0.1:0");
        let mut bob_b = b.connect("bob").await;
        let mut carol_b = b.connect("carol").await;

        // notify
        let r = a
            .api(
                "notify",
                json!({"target": {"user": "bob"}, "method": "hello", "params": {"from": "a"}}),
            )
            .await;
        assert_eq!(r["result"], json!({}), "{r}");
        assert_eq!(
            bob_b.recv().await,
            json!({"jsonrpc": "2.0", "method": "hello", "params": {"from": "a"}})
        );

        // server-side subscribe, then publish
        a.api("subscribe", json!({"target": {"user": "carol"}, "topics": ["news"]}))
            .await;
        let mut delivered = false;
        for _ in 0..50 {
            a.api("publish", json!({"topic": "news", "data": "n1"})).await;
            if let Some(m) = carol_b.try_recv(Duration::from_millis(100)).await {
                assert_eq!(m["params"]["data"], "n1");
                delivered = true;
                break;
            }
        }
        assert!(delivered, "the publication on node A never reached node B's subscriber");

        // presence across nodes
        let p = a.api("presence", json!({"user": "bob"})).await;
        let entries = p["result"].as_array().expect("presence");
        assert_eq!(entries.len(), 1, "{p}");
        assert_eq!(entries[0]["session"], json!(bob_b.session));

        // a multicast call to a user with sessions on both nodes: every result, no waiting out the timeout
        let mut bob_a = a.connect("bob").await;
        let api_url = a.http_url("/api");
        let started = Instant::now();
        let call = tokio::spawn(async move {
            let body = json!({"jsonrpc": "2.0", "id": 1, "method": "call",
                              "params": {"target": {"user": "bob"}, "method": "where", "timeout_ms": 8000}});
            switchboard_tests::http_post(&api_url, &body.to_string(), &[])
                .await
                .json()
        });
        for (c, answer) in [(&mut bob_a, "on a"), (&mut bob_b, "on b")] {
            let req = until(c, |v| v["method"] == "where").await;
            c.send_json(&json!({"jsonrpc": "2.0", "id": req["id"], "result": answer}))
                .await;
        }
        let reply = call.await.expect("call");
        let mut answers: Vec<&str> = reply["result"]
            .as_array()
            .expect("entries")
            .iter()
            .filter_map(|e| e["result"].as_str())
            .collect();
        answers.sort();
        assert_eq!(answers, vec!["on a", "on b"], "{reply}");
        assert!(
            started.elapsed() < Duration::from_secs(4),
            "the call waited out its timeout: {:?}",
            started.elapsed()
        );

        // disconnect on A closes bob's session on B
        a.api(
            "disconnect",
            json!({"target": {"session": bob_b.session}, "code": 4502, "reason": "bye"}),
        )
        .await;
        let closed = bob_b.closed(&mut Vec::new()).await;
        assert_eq!(closed.code, Some(4502));
        assert_eq!(carol_b.call(9, "rpc.ping", json!([])).await["result"], "pong");
    })
    .await;
}

#[tokio::test]
async fn a_client_dropping_from_node_a_recovers_on_node_b() {
    within(WAIT * 3, async {
        let config = cluster_config("recovery", &redis_url());
        let a = Node::start(&config, "127.0.0.1:0");
        let b = Node::start(&config, "127.0.0.1:0");
        let mut c = a.connect("dana").await;
        let first = subscribe(&mut c, "chat:x", None).await;
        let epoch = first["epoch"].as_str().expect("epoch").to_owned();
        for i in 1..=3 {
            let r = b.api("publish", json!({"topic": "chat:x", "data": i})).await;
            assert_eq!(r["result"]["offset"], i, "{r}");
        }
        let mut last = 0;
        while last < 3 {
            let m = until(&mut c, |v| v["method"] == "rpc.message").await;
            last = m["params"]["offset"].as_u64().expect("offset");
        }
        drop(c);
        for i in 4..=8 {
            a.api("publish", json!({"topic": "chat:x", "data": i})).await;
        }
        let mut c = b.connect("dana").await;
        let result = subscribe(&mut c, "chat:x", Some((3, &epoch))).await;
        assert_eq!(result["recovered"], true, "{result}");
        a.api("publish", json!({"topic": "chat:x", "data": 9})).await;
        let mut offsets = Vec::new();
        while offsets.last() != Some(&9) {
            let m = until(&mut c, |v| v["method"] == "rpc.message").await;
            offsets.push(m["params"]["offset"].as_u64().expect("offset"));
        }
        assert_eq!(offsets, vec![4, 5, 6, 7, 8, 9]);
    })
    .await;
}

/// Publishes `data` on `topic` through `node`, retrying while the broker is away.
async fn publish_retrying(node: &Node, topic: &str, data: Value) -> u64 {
    let deadline = Instant::now() + WAIT;
    loop {
        let r = node.api("publish", json!({"topic": topic, "data": data})).await;
        if let Some(offset) = r["result"]["offset"].as_u64() {
            return offset;
        }
        assert!(Instant::now() < deadline, "publishing never succeeded: {r}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn kill_9_of_a_node_loses_nothing_recoverable() {
    within(WAIT * 4, async {
        let config = cluster_config("kill", &redis_url());
        let mut a = Node::start(&config, "127.0.0.1:0");
        let b = Node::start(&config, "127.0.0.1:0");
        let mut c = a.connect("erin").await;
        let first = subscribe(&mut c, "chat:k", None).await;
        let epoch = first["epoch"].as_str().expect("epoch").to_owned();
        let mut seen = Vec::new();
        for i in 0..20 {
            publish_retrying(&b, "chat:k", json!(i)).await;
        }
        while seen.len() < 10 {
            let m = until(&mut c, |v| v["method"] == "rpc.message").await;
            seen.push(m["params"]["offset"].as_u64().expect("offset"));
        }
        a.kill();
        // Whatever the client had not read yet from node A is gone with it; it resumes from what it saw.
        let last_seen = *seen.last().expect("seen");
        for i in 20..40 {
            publish_retrying(&b, "chat:k", json!(i)).await;
        }
        let mut c = b.connect("erin").await;
        let result = subscribe(&mut c, "chat:k", Some((last_seen, &epoch))).await;
        assert_eq!(result["recovered"], true, "{result}");
        while seen.last() != Some(&40) {
            let m = until(&mut c, |v| v["method"] == "rpc.message").await;
            seen.push(m["params"]["offset"].as_u64().expect("offset"));
        }
        assert_eq!(
            seen,
            (1..=40).collect::<Vec<u64>>(),
            "every offset exactly once, in order"
        );
        // The killed node's sessions leave presence once its heartbeat lapses.
        let deadline = Instant::now() + WAIT;
        loop {
            let p = b.api("presence", json!({"user": "erin"})).await;
            let entries = p["result"].as_array().cloned().unwrap_or_default();
            if entries.len() == 1 {
                assert_eq!(entries[0]["session"], json!(c.session));
                break;
            }
            assert!(
                Instant::now() < deadline,
                "the dead node's session stayed in presence: {p}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await;
}

struct PrivateRedis {
    child: std::process::Child,
    port: u16,
    dir: PathBuf,
}

impl PrivateRedis {
    fn start(port: u16, dir: &std::path::Path) -> Self {
        let child = std::process::Command::new("redis-server")
            .args([
                "--port",
                &port.to_string(),
                "--bind",
                "127.0.0.1",
                "--appendonly",
                "yes",
                "--appendfsync",
                "always",
            ])
            .arg("--dir")
            .arg(dir)
            .args(["--save", ""])
            .stdout(std::process::Stdio::null())
            .spawn()
            .expect("redis-server must be installed (tests/run installs it)");
        let deadline = Instant::now() + WAIT;
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "the private redis-server did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
        Self {
            child,
            port,
            dir: dir.to_owned(),
        }
    }

    fn stop(&mut self) {
        let _ = std::process::Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status();
        let _ = self.child.wait();
    }

    fn restart(&mut self) {
        self.stop();
        *self = Self::start(self.port, &self.dir.clone());
    }
}

impl Drop for PrivateRedis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test]
async fn a_redis_restart_loses_no_recoverable_message() {
    within(WAIT * 6, async {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .expect("port")
            .local_addr()
            .expect("addr")
            .port();
        let dir = std::env::temp_dir().join(format!("sb-redis-{}-{port}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let mut redis = PrivateRedis::start(port, &dir);
        let config = cluster_config("restart", &format!("redis://127.0.0.1:{port}"));
        let a = Node::start(&config, "127.0.0.1:0");
        let b = Node::start(&config, "127.0.0.1:0");
        let mut c = a.connect("finn").await;
        let first = subscribe(&mut c, "chat:r", None).await;
        let epoch = first["epoch"].as_str().expect("epoch").to_owned();
        let mut published = Vec::new();
        for i in 0..10 {
            published.push(publish_retrying(&b, "chat:r", json!(i)).await);
        }
        redis.restart();
        for i in 10..20 {
            published.push(publish_retrying(&b, "chat:r", json!(i)).await);
        }
        // Nodes come back: ready again.
        let deadline = Instant::now() + WAIT;
        while switchboard_tests::http_get(&a.http_url("/readyz"), &[]).await.status != 200 {
            assert!(Instant::now() < deadline, "node A never became ready again");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        // The client stayed on node A the whole time; anything it missed live
        // while the nodes were resubscribing, it recovers from history.
        let mut seen = Vec::new();
        while let Some(m) = c.try_recv(Duration::from_millis(300)).await {
            if m["method"] == "rpc.message" {
                seen.push(m["params"]["offset"].as_u64().expect("offset"));
            }
        }
        let last_in_order = seen
            .iter()
            .enumerate()
            .take_while(|(i, o)| **o == *i as u64 + 1)
            .count() as u64;
        drop(c);
        let mut c = b.connect("finn").await;
        let result = subscribe(&mut c, "chat:r", Some((last_in_order, &epoch))).await;
        assert_eq!(result["recovered"], true, "history survived the restart: {result}");
        let mut all: Vec<u64> = (1..=last_in_order).collect();
        let top = *published.last().expect("published");
        while all.last() != Some(&top) {
            let m = until(&mut c, |v| v["method"] == "rpc.message").await;
            all.push(m["params"]["offset"].as_u64().expect("offset"));
        }
        assert_eq!(all, published, "zero lost recoverable messages");
    })
    .await;
}

#[tokio::test]
async fn a_draining_node_sends_its_sessions_elsewhere_and_joins_and_leaves_are_announced() {
    within(WAIT * 3, async {
        let config = cluster_config("drain", &redis_url());
        let a = Node::start(&config, "127.0.0.1:0");
        let b = Node::start(&config, "127.0.0.1:0");
        let mut watcher = b.connect("hana").await;
        subscribe(&mut watcher, "room:1", None).await;
        let mut gus = a.connect("gus").await;
        subscribe(&mut gus, "room:1", None).await;
        // The watcher hears its own join too; gus's is the one looked for.
        let join = until(&mut watcher, |v| {
            v["method"] == "rpc.join" && v["params"]["user"] == "gus"
        })
        .await;
        assert_eq!(
            join["params"],
            json!({"topic": "room:1", "session": gus.session, "user": "gus"})
        );

        a.signal("USR1");
        let mut before = Vec::new();
        let closed = gus.closed(&mut before).await;
        assert_eq!(closed.code, Some(1012));
        let notice = before
            .iter()
            .find(|f| f["method"] == "rpc.disconnect")
            .expect("rpc.disconnect first");
        assert_eq!(notice["params"]["reconnect"], true);
        assert_eq!(
            switchboard_tests::http_get(&a.http_url("/readyz"), &[]).await.status,
            503
        );
        let leave = until(&mut watcher, |v| v["method"] == "rpc.leave").await;
        assert_eq!(leave["params"]["user"], "gus");
        // The drained session left presence; the client reconnects to node B.
        let deadline = Instant::now() + WAIT;
        while !b.api("presence", json!({"user": "gus"})).await["result"]
            .as_array()
            .is_some_and(Vec::is_empty)
        {
            assert!(Instant::now() < deadline, "the drained session stayed in presence");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let mut gus = b.connect("gus").await;
        assert_eq!(gus.call(1, "rpc.ping", json!([])).await["result"], "pong");
    })
    .await;
}

/// Reads the server's request for `method`, skipping anything else.
async fn request_for(c: &mut WsClient, method: &str) -> Value {
    until(c, |v| v["method"] == method).await
}

/// The next frame for `c` is `rpc.cancel` for `req`.
async fn told_to_cancel(c: &mut WsClient, req: &Value) {
    let cancel = until(c, |v| v["method"] == "rpc.cancel").await;
    assert_eq!(cancel["params"]["id"], req["id"], "{cancel}");
}

#[tokio::test]
async fn policies_streams_and_cancels_reach_sessions_on_other_nodes() {
    within(WAIT * 3, async {
        let config = cluster_config("calls", &redis_url());
        let a = Node::start(&config, "127.0.0.1:0");
        let b = Node::start(&config, "127.0.0.1:0");
        let node_b = b.api("stats", json!({})).await["result"]["node"].clone();
        let mut ann_a = a.connect("ann").await;
        let mut ann_b = b.connect("ann").await;
        let mut cy_b = b.connect("cy").await;
        subscribe(&mut ann_a, "desk", None).await;
        subscribe(&mut cy_b, "desk", None).await;
        let call_on_a = |params: Value| {
            let url = a.http_url("/api");
            tokio::spawn(async move {
                let body = json!({"jsonrpc": "2.0", "id": 1, "method": "call", "params": params});
                switchboard_tests::http_post(&url, &body.to_string(), &[]).await.json()
            })
        };

        // "first": the session on node B answers; the one on node A is cancelled.
        let call = call_on_a(json!({"target": {"user": "ann"}, "method": "pick", "policy": "first", "timeout_ms": 20000}));
        let (ra, rb) = (request_for(&mut ann_a, "pick").await, request_for(&mut ann_b, "pick").await);
        ann_b
            .send_json(&json!({"jsonrpc": "2.0", "id": rb["id"], "result": "b"}))
            .await;
        let reply = call.await.expect("call");
        assert_eq!(reply["result"]["met"], true, "{reply}");
        let outcomes = reply["result"]["outcomes"].as_array().expect("outcomes").clone();
        let of = |c: &WsClient| outcomes.iter().find(|o| o["session"] == json!(c.session)).cloned();
        let remote = of(&ann_b).expect("node B's session has an outcome");
        assert_eq!((&remote["node"], &remote["result"]), (&node_b, &json!("b")));
        let local = of(&ann_a).expect("node A's session has an outcome");
        assert_eq!(local["error"]["code"], -32011, "{local}");
        told_to_cancel(&mut ann_a, &ra).await;

        // "first" again, answered on node A: node B's session is cancelled
        // (listed as cancelled if node B had acknowledged by then).
        let call = call_on_a(json!({"target": {"user": "ann"}, "method": "pick", "policy": "first", "timeout_ms": 20000}));
        let (ra, rb) = (request_for(&mut ann_a, "pick").await, request_for(&mut ann_b, "pick").await);
        ann_a
            .send_json(&json!({"jsonrpc": "2.0", "id": ra["id"], "result": "a"}))
            .await;
        let reply = call.await.expect("call");
        assert_eq!(reply["result"]["met"], true, "{reply}");
        told_to_cancel(&mut ann_b, &rb).await;

        // A quorum over several users, on both nodes.
        let call = call_on_a(json!({"target": {"users": ["ann", "cy"]}, "method": "vote", "policy": {"quorum": 2}, "timeout_ms": 20000}));
        let mut reqs = Vec::new();
        for c in [&mut ann_a, &mut ann_b, &mut cy_b] {
            reqs.push(request_for(c, "vote").await);
        }
        cy_b.send_json(&json!({"jsonrpc": "2.0", "id": reqs[2]["id"], "result": "yes"}))
            .await;
        ann_b
            .send_json(&json!({"jsonrpc": "2.0", "id": reqs[1]["id"], "result": "yes"}))
            .await;
        let reply = call.await.expect("call");
        assert_eq!(reply["result"]["met"], true, "{reply}");
        assert_eq!(reply["result"]["outcomes"].as_array().expect("outcomes").len(), 3);
        told_to_cancel(&mut ann_a, &reqs[0]).await;

        // A streamed call to a topic: node B's progress and outcome arrive on node A's stream.
        let body = json!({"jsonrpc": "2.0", "id": 1, "method": "call",
                          "params": {"target": {"topic": "desk"}, "method": "scan", "stream": true, "timeout_ms": 20000}});
        let mut lines = switchboard_tests::NdjsonLines::new(
            switchboard_tests::NdjsonLines::post(&a.http_url("/api"), &body).await,
        );
        let (ra, rc) = (request_for(&mut ann_a, "scan").await, request_for(&mut cy_b, "scan").await);
        cy_b.send_json(&json!({"jsonrpc": "2.0", "method": "rpc.progress", "params": {"id": rc["id"], "progress": 10}}))
            .await;
        let line = lines.next().await.expect("progress");
        assert_eq!(
            line,
            json!({"session": cy_b.session, "user": "cy", "node": node_b, "progress": 10})
        );
        cy_b.send_json(&json!({"jsonrpc": "2.0", "id": rc["id"], "result": "c"}))
            .await;
        let line = lines.next().await.expect("node B's outcome");
        assert_eq!(line["result"], "c");
        // The HTTP client goes: node A's session is cancelled.
        drop(lines);
        told_to_cancel(&mut ann_a, &ra).await;

        // A streamed call whose client leaves before any line: node B's sessions are cancelled.
        let body = json!({"jsonrpc": "2.0", "id": 1, "method": "call",
                          "params": {"target": {"users": ["cy"]}, "method": "hold", "stream": true, "timeout_ms": 20000}});
        let response = switchboard_tests::NdjsonLines::post(&a.http_url("/api"), &body).await;
        let rc = request_for(&mut cy_b, "hold").await;
        drop(response);
        told_to_cancel(&mut cy_b, &rc).await;
    })
    .await;
}
