//! Several gateway processes sharing one real Redis: every Hub operation
//! issued on one node reaches sessions on another, recovery and history work
//! across nodes, and nothing recoverable is lost when a node or Redis goes away.
//!
//! Redis comes from `SWITCHBOARD_TEST_REDIS_URL` (default the local one at
//! 127.0.0.1:6379); `tests/run` makes sure one is there. The Redis restart
//! tests start a private `redis-server` of their own, on a free port, which
//! they may restart: the shared one is never restarted or flushed.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use switchboard_tests::{Node, PrivateRedis, WAIT, WsClient, redis_url, unique_prefix, within};

/// A config file for one test's cluster: its own key prefix, `chat:*` recoverable.
fn cluster_config(name: &str, redis: &str) -> PathBuf {
    let prefix = unique_prefix("t");
    switchboard_tests::config_file(
        "cluster",
        name,
        &format!(
            "broker = \"redis\"\njoin_leave = [\"room:*\"]\n\
             [redis]\nurl = \"{redis}\"\nprefix = \"{prefix}\"\nheartbeat_ms = 500\nnode_ttl_ms = 1500\n\
             [[streams]]\npattern = \"user:*\"\n\
             [[streams]]\npattern = \"chat:*\"\nhistory_size = 10000\n"
        ),
    )
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

#[tokio::test]
async fn a_redis_restart_loses_no_recoverable_message() {
    within(WAIT * 6, async {
        let mut redis = PrivateRedis::on_a_free_port(true);
        let config = cluster_config("restart", &redis.url());
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

/// `rpc.history` on `c`: the answer, result or error.
async fn history(c: &mut WsClient, params: Value) -> Value {
    c.call(7_000, "rpc.history", params).await
}

/// The offsets of a history result's publications.
fn offsets(result: &Value) -> Vec<u64> {
    result["publications"]
        .as_array()
        .unwrap_or_else(|| panic!("publications: {result}"))
        .iter()
        .map(|p| p["offset"].as_u64().expect("offset"))
        .collect()
}

#[tokio::test]
async fn history_is_read_on_any_node_after_a_position_and_a_lost_window_is_said_so() {
    within(WAIT * 3, async {
        let config = cluster_config("history", &redis_url());
        let a = Node::start(&config, "127.0.0.1:0");
        let b = Node::start(&config, "127.0.0.1:0");
        let mut epoch = String::new();
        for n in 1..=7 {
            let r = a.api("publish", json!({"topic": "chat:h", "data": {"n": n}})).await;
            assert_eq!(r["result"]["offset"], n, "{r}");
            epoch = r["result"]["epoch"].as_str().expect("epoch").to_owned();
        }
        let mut c = b.connect("jo").await;
        // The most recent ones, oldest first, with the data as published.
        let r = history(&mut c, json!({"topic": "chat:h", "limit": 2})).await;
        assert_eq!(
            r["result"],
            json!({"publications": [{"offset": 6, "data": {"n": 6}}, {"offset": 7, "data": {"n": 7}}],
                   "offset": 7, "epoch": epoch, "recovered": true})
        );
        // After a position, a page at a time, from a client and from a backend.
        let since = |offset: u64| json!({"offset": offset, "epoch": epoch});
        let r = history(&mut c, json!({"topic": "chat:h", "since": since(2), "limit": 3})).await;
        assert_eq!(offsets(&r["result"]), vec![3, 4, 5]);
        let r = b.api("history", json!({"topic": "chat:h", "since": since(5)})).await;
        assert_eq!(offsets(&r["result"]), vec![6, 7]);
        let r = history(&mut c, json!({"topic": "chat:h", "since": since(7)})).await;
        assert_eq!(
            (offsets(&r["result"]), &r["result"]["recovered"]),
            (vec![], &json!(true))
        );
        let r = history(
            &mut c,
            json!({"topic": "chat:h", "since": {"offset": 2, "epoch": "gone"}}),
        )
        .await;
        assert_eq!(
            r["result"],
            json!({"publications": [], "offset": 7, "epoch": epoch, "recovered": false, "gap": "epoch_changed"})
        );

        // The personal topic keeps 100: past them, the window is exceeded.
        for n in 1..=103 {
            let r = a.api("publish", json!({"topic": "user:jo", "data": n})).await;
            assert_eq!(r["result"]["offset"], n, "{r}");
        }
        let all = history(&mut c, json!({"topic": "user:jo"})).await;
        assert_eq!(
            offsets(&all["result"]),
            (4..=103).collect::<Vec<u64>>(),
            "the default limit is 100"
        );
        let personal = |offset: u64| json!({"offset": offset, "epoch": all["result"]["epoch"]});
        let r = history(&mut c, json!({"topic": "user:jo", "since": personal(1)})).await;
        assert_eq!(
            r["result"],
            json!({"publications": [], "offset": 103, "epoch": all["result"]["epoch"],
                   "recovered": false, "gap": "window_exceeded"})
        );
        let r = a
            .api("history", json!({"topic": "user:jo", "since": personal(1), "limit": 5}))
            .await;
        assert_eq!(
            r["result"]["gap"], "window_exceeded",
            "the server API answers the same: {r}"
        );
        // Just inside the window.
        let r = history(&mut c, json!({"topic": "user:jo", "since": personal(3), "limit": 2})).await;
        assert_eq!(offsets(&r["result"]), vec![4, 5]);
        // The same position in rpc.subscribe: the same answer.
        let s = subscribe(
            &mut c,
            "user:jo",
            Some((1, all["result"]["epoch"].as_str().expect("epoch"))),
        )
        .await;
        assert_eq!(s["gap"], "window_exceeded", "{s}");
    })
    .await;
}

const HS256_SECRET: &str = "history-test-secret-0123456789abcdef";
const FULL_KEY: &str = "history-full-key-0123456789";
const PUBLISH_KEY: &str = "history-publish-key-0123456789";

/// A cluster outside dev mode: HS256 tokens, history only of `chat:public*`
/// (besides the claim's patterns), a full API key and one that may only publish.
fn authorised_cluster_config(redis: &str) -> PathBuf {
    let file = cluster_config("history-auth", redis);
    let mut toml = std::fs::read_to_string(&file).expect("read config");
    toml.push_str(&format!(
        "[auth]\n[[auth.jwt]]\nalgorithm = \"HS256\"\nsecret = \"{HS256_SECRET}\"\n\
         [authorization]\nhistory = [\"chat:public*\"]\n\
         [[api_keys]]\nname = \"full\"\nkey = \"{FULL_KEY}\"\n\
         [[api_keys]]\nname = \"publisher\"\nkey = \"{PUBLISH_KEY}\"\nscopes = [\"publish\"]\n"
    ));
    std::fs::write(&file, toml).expect("write config");
    file
}

/// Connects to `node` with an HS256 token for `sub` carrying `claims`.
async fn connect_with_token(node: &Node, sub: &str, claims: Value) -> WsClient {
    let exp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs()
        + 3600;
    let mut claims = claims;
    claims["sub"] = json!(sub);
    claims["exp"] = json!(exp);
    let token = jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(HS256_SECRET.as_bytes()),
    )
    .expect("sign");
    let mut c = WsClient::connect(&format!("ws://{}/ws?token={token}", node.addr)).await;
    c.welcome().await;
    c
}

/// `POST /api` on `node` with `key`.
async fn api_with_key(node: &Node, key: &str, method: &str, params: Value) -> Value {
    let body = json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": params});
    let bearer = format!("Bearer {key}");
    switchboard_tests::http_post(&node.http_url("/api"), &body.to_string(), &[("authorization", &bearer)])
        .await
        .json()
}

#[tokio::test]
async fn history_is_refused_outside_authorization_history_and_to_keys_without_its_scope() {
    within(WAIT * 3, async {
        let config = authorised_cluster_config(&redis_url());
        let a = Node::start(&config, "127.0.0.1:0");
        let b = Node::start(&config, "127.0.0.1:0");
        for topic in ["chat:public:1", "chat:secret", "user:ivy", "user:jack"] {
            let r = api_with_key(&a, FULL_KEY, "publish", json!({"topic": topic, "data": topic})).await;
            assert_eq!(r["result"]["offset"], 1, "{r}");
        }
        let forbidden = |r: &Value| {
            assert_eq!(r["error"]["code"], -32001, "{r}");
            assert!(r["error"]["data"]["reason"].is_string(), "{r}");
        };
        let mut ivy = connect_with_token(&b, "ivy", json!({})).await;
        let r = history(&mut ivy, json!({"topic": "chat:public:1"})).await;
        assert_eq!(
            r["result"]["publications"],
            json!([{"offset": 1, "data": "chat:public:1"}]),
            "{r}"
        );
        // She may subscribe to chat:secret (subscribe allows every topic) but not read its history.
        forbidden(&history(&mut ivy, json!({"topic": "chat:secret"})).await);
        assert_eq!(subscribe(&mut ivy, "chat:secret", None).await["recovered"], true);
        // Her own personal topic is hers to read; another's never is.
        assert_eq!(
            offsets(&history(&mut ivy, json!({"topic": "user:ivy"})).await["result"]),
            vec![1]
        );
        forbidden(&history(&mut ivy, json!({"topic": "user:jack"})).await);
        // A token's claim may add history patterns for its user.
        let mut jack = connect_with_token(&a, "jack", json!({"switchboard": {"history": ["chat:secret"]}})).await;
        let r = history(&mut jack, json!({"topic": "chat:secret"})).await;
        assert_eq!(offsets(&r["result"]), vec![1], "{r}");

        // The server API: the `history` scope, on any node.
        let r = api_with_key(&b, PUBLISH_KEY, "history", json!({"topic": "chat:secret"})).await;
        forbidden(&r);
        assert_eq!(r["error"]["data"]["scope"], "history");
        let r = api_with_key(&b, FULL_KEY, "history", json!({"topic": "chat:secret"})).await;
        assert_eq!(
            r["result"]["publications"],
            json!([{"offset": 1, "data": "chat:secret"}]),
            "{r}"
        );
    })
    .await;
}

/// Waits until `node` answers `/readyz` with 200 (its broker is reachable).
async fn ready(node: &Node) {
    let deadline = Instant::now() + WAIT;
    while switchboard_tests::http_get(&node.http_url("/readyz"), &[]).await.status != 200 {
        assert!(Instant::now() < deadline, "the node never became ready again");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn a_redis_restart_that_loses_the_streams_tells_a_resuming_client_epoch_changed() {
    within(WAIT * 6, async {
        let mut redis = PrivateRedis::on_a_free_port(false);
        let config = cluster_config("volatile", &redis.url());
        let a = Node::start(&config, "127.0.0.1:0");
        let b = Node::start(&config, "127.0.0.1:0");
        let mut c = a.connect("kai").await;
        let old = subscribe(&mut c, "chat:v", None).await["epoch"]
            .as_str()
            .expect("epoch")
            .to_owned();
        // Another client stays connected throughout.
        let mut stays = a.connect("lea").await;
        assert_eq!(subscribe(&mut stays, "chat:v", None).await["epoch"], old.as_str());
        for n in 1..=3 {
            publish_retrying(&b, "chat:v", json!(n)).await;
        }
        until(&mut c, |v| v["method"] == "rpc.message" && v["params"]["offset"] == 3).await;
        until(&mut stays, |v| {
            v["method"] == "rpc.message" && v["params"]["offset"] == 3
        })
        .await;
        drop(c);
        // Redis comes back empty: the streams, their offsets and their epochs are gone.
        redis.restart();
        // Both nodes listen again, and their commands reach the new Redis.
        for node in [&a, &b] {
            ready(node).await;
            publish_retrying(node, "chat:probe", json!("probe")).await;
        }

        let mut c = b.connect("kai").await;
        let resumed = subscribe(&mut c, "chat:v", Some((3, &old))).await;
        assert_eq!(resumed["recovered"], false, "{resumed}");
        assert_eq!(resumed["gap"], "epoch_changed", "{resumed}");
        assert_eq!(resumed["offset"], 0, "{resumed}");
        let new = resumed["epoch"].as_str().expect("epoch").to_owned();
        assert_ne!(new, old);
        let r = a
            .api(
                "history",
                json!({"topic": "chat:v", "since": {"offset": 3, "epoch": old}}),
            )
            .await;
        assert_eq!(
            r["result"],
            json!({"publications": [], "offset": 0, "epoch": new, "recovered": false, "gap": "epoch_changed"}),
            "{r}"
        );
        // The topic goes on in the new epoch, and the resumed subscription receives it.
        assert_eq!(publish_retrying(&a, "chat:v", json!(4)).await, 1);
        let m = until(&mut c, |v| v["method"] == "rpc.message").await;
        assert_eq!(
            m["params"],
            json!({"topic": "chat:v", "data": 4, "offset": 1, "epoch": new})
        );
        // The client that stayed gets it too: offset 1 is not older than its
        // last (3), it is the first of a new epoch, which tells it so.
        let m = until(&mut stays, |v| {
            v["method"] == "rpc.message" && v["params"]["topic"] == "chat:v"
        })
        .await;
        assert_eq!(
            m["params"],
            json!({"topic": "chat:v", "data": 4, "offset": 1, "epoch": new})
        );
    })
    .await;
}
