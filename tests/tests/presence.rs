//! Presence at the wire: topic presence (opt-in per pattern), paging and the
//! bound on one answer, `presence_stats`, `rpc.presence` and its refusals,
//! the cluster's figures in `stats`, and, on Redis, presence across nodes
//! that is complete again after Redis lost its data and keeps no session
//! that closed while Redis was away.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use switchboard_server::{Config, Limits, TopicPattern};
use switchboard_tests::{
    Node, PrivateRedis, TestServer, WAIT, WsClient, error_code, http_post, redis_url, unique_prefix, within,
};

/// A longer limit for the tests that wait on heartbeats.
const CLUSTER_WAIT: Duration = Duration::from_secs(30);

async fn api(url: &str, method: &str, params: Value) -> Value {
    let body = json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": params});
    http_post(url, &body.to_string(), &[]).await.json()
}

fn sessions(entries: &Value) -> Vec<String> {
    entries
        .as_array()
        .unwrap_or_else(|| panic!("an array of entries: {entries}"))
        .iter()
        .map(|e| e["session"].as_str().expect("session").to_owned())
        .collect()
}

async fn subscribe(c: &mut WsClient, topic: &str) {
    let reply = c.call(1, "rpc.subscribe", json!({"topics": [{"topic": topic}]})).await;
    assert!(reply.get("result").is_some(), "subscribed: {reply}");
}

fn config_with_presence(patterns: &[&str], max_entries: usize) -> Config {
    Config {
        presence_topics: Some(patterns.iter().map(|p| TopicPattern::new(p)).collect()),
        limits: Limits {
            max_presence_entries: max_entries,
            ..Limits::default()
        },
        ..Config::default()
    }
}

#[tokio::test]
async fn topic_presence_follows_subscriptions_and_only_where_it_is_kept() {
    within(WAIT, async {
        let server = TestServer::start_with(config_with_presence(&["room:*"], 1000), vec![]).await;
        let url = server.http_url("/api");
        let mut bob = server.connect("bob").await;
        let mut amy = server.connect("amy").await;
        subscribe(&mut bob, "room:1").await;
        subscribe(&mut amy, "room:1").await;
        subscribe(&mut amy, "other").await;

        let r = api(&url, "presence", json!({"topic": "room:1"})).await;
        assert_eq!(
            sessions(&r["result"]),
            [amy.session.clone(), bob.session.clone()],
            "sorted by user: {r}"
        );
        assert_eq!(r["result"][0]["user"], "amy");
        assert!(r["result"][0]["node"].as_str().is_some_and(|n| !n.is_empty()));

        let r = api(&url, "presence", json!({"topic": "other"})).await;
        assert_eq!(error_code(&r), Some(-32602), "not kept: {r}");
        assert!(
            r["error"]["data"]["reason"]
                .as_str()
                .unwrap_or_default()
                .contains("presence_topics")
        );
        let r = api(&url, "presence", json!({"topic": "room:1", "user": "amy"})).await;
        assert_eq!(error_code(&r), Some(-32602), "user and topic together: {r}");

        let r = api(&url, "presence_stats", json!({"topic": "room:1"})).await;
        assert_eq!(r["result"], json!({"sessions": 2, "users": 2}));

        let reply = bob.call(2, "rpc.unsubscribe", json!({"topics": ["room:1"]})).await;
        assert!(reply.get("result").is_some(), "{reply}");
        let r = api(&url, "presence", json!({"topic": "room:1"})).await;
        assert_eq!(sessions(&r["result"]), [amy.session.clone()], "bob left: {r}");

        // A client asks too, answered the same way.
        let r = amy.call(3, "rpc.presence", json!({"topic": "room:1"})).await;
        assert_eq!(sessions(&r["result"]), [amy.session.clone()], "{r}");
        let r = amy.call(4, "rpc.presence", json!({"topic": "other"})).await;
        assert_eq!(error_code(&r), Some(-32602), "{r}");

        // A session that ends leaves its topics.
        drop(amy);
        let deadline = Instant::now() + WAIT;
        loop {
            let r = api(&url, "presence", json!({"topic": "room:1"})).await;
            if sessions(&r["result"]).is_empty() {
                break;
            }
            assert!(Instant::now() < deadline, "amy stayed: {r}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
}

#[tokio::test]
async fn pages_cover_every_entry_once_and_an_unpaged_answer_is_bounded() {
    within(WAIT, async {
        let server = TestServer::start_with(config_with_presence(&["room:*"], 3), vec![]).await;
        let url = server.http_url("/api");
        let mut clients = Vec::new();
        for user in ["eve", "dan", "cid", "bea", "al"] {
            let mut c = server.connect(user).await;
            subscribe(&mut c, "room:big").await;
            clients.push(c);
        }
        let r = api(&url, "presence", json!({"topic": "room:big"})).await;
        assert_eq!(error_code(&r), Some(-32010), "over the bound: {r}");
        assert_eq!(r["error"]["data"]["limit"], 3);

        let mut seen = Vec::new();
        let mut after = Value::Null;
        let mut pages = 0;
        loop {
            let mut params = json!({"topic": "room:big", "limit": 2});
            if !after.is_null() {
                params["after"] = after.clone();
            }
            let r = api(&url, "presence", params).await;
            let page = &r["result"];
            let entries = page["entries"].as_array().unwrap_or_else(|| panic!("a page: {r}"));
            assert!(entries.len() <= 2);
            seen.extend(entries.iter().map(|e| e["user"].as_str().expect("user").to_owned()));
            pages += 1;
            after = page["next"].clone();
            if after.is_null() {
                break;
            }
            assert!(pages < 10, "paging ends");
        }
        assert_eq!(seen, ["al", "bea", "cid", "dan", "eve"], "each entry once, in order");
        assert_eq!(pages, 3);

        for bad in [
            json!({"limit": 0}),
            json!({"limit": 4}),
            json!({"limit": 1, "after": "no-cursor"}),
        ] {
            let r = api(&url, "presence", bad.clone()).await;
            assert_eq!(error_code(&r), Some(-32602), "{bad}: {r}");
        }
        let r = api(&url, "presence_stats", json!({})).await;
        assert_eq!(r["result"], json!({"sessions": 5, "users": 5}));
        let r = api(&url, "stats", json!({})).await;
        assert_eq!(r["result"]["cluster"]["nodes"], 1, "{r}");
        assert_eq!(r["result"]["cluster"]["sessions"], 5, "{r}");
        assert_eq!(r["result"]["cluster"]["users"], 5, "{r}");
    })
    .await;
}

#[tokio::test]
async fn dev_mode_keeps_presence_for_every_topic_but_the_personal_one() {
    within(WAIT, async {
        let server = TestServer::start().await;
        let url = server.http_url("/api");
        let mut c = server.connect("zoe").await;
        subscribe(&mut c, "anything").await;
        let r = api(&url, "presence", json!({"topic": "anything"})).await;
        assert_eq!(sessions(&r["result"]), [c.session.clone()], "{r}");
        let r = api(&url, "presence", json!({"topic": "user:zoe"})).await;
        assert_eq!(
            sessions(&r["result"]),
            Vec::<String>::new(),
            "the personal topic is not listed: {r}"
        );
        let r = api(&url, "presence_stats", json!({"user": "zoe"})).await;
        assert_eq!(r["result"], json!({"sessions": 1, "users": 1}));
    })
    .await;
}

// ---------------------------------------------------------------------------
// On Redis, across nodes.

/// A config file for one test's nodes: their own key prefix, presence kept for `room:*`.
fn node_config(name: &str, redis: &str) -> PathBuf {
    let prefix = unique_prefix("p");
    switchboard_tests::config_file(
        "presence",
        name,
        &format!(
            "broker = \"redis\"\npresence_topics = [\"room:*\"]\n\
             [limits]\nmax_presence_entries = 3\n\
             [redis]\nurl = \"{redis}\"\nprefix = \"{prefix}\"\nheartbeat_ms = 300\nnode_ttl_ms = 1500\n\
             command_timeout_ms = 500\n"
        ),
    )
}

/// Polls `presence` with `params` on `node` until `check` holds.
async fn presence_until(node: &Node, params: Value, what: &str, check: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + CLUSTER_WAIT;
    loop {
        let r = node.api("presence", params.clone()).await;
        if check(&r) {
            return r;
        }
        assert!(Instant::now() < deadline, "{what}: last answer {r}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Every page of `params` on `node`, walked with `limit` 1, as sessions.
async fn walk_pages(node: &Node, mut params: Value) -> Vec<String> {
    params["limit"] = json!(1);
    let mut all = Vec::new();
    loop {
        let r = node.api("presence", params.clone()).await;
        let page = sessions(&r["result"]["entries"]);
        assert!(page.len() <= 1, "{r}");
        all.extend(page);
        match r["result"]["next"].as_str() {
            Some(next) => params["after"] = json!(next),
            None => return all,
        }
    }
}

#[tokio::test]
async fn user_and_everyone_pages_span_the_nodes() {
    within(CLUSTER_WAIT * 2, async {
        let config = node_config("pages", &redis_url());
        let a = Node::start(&config, "127.0.0.1:0");
        let b = Node::start(&config, "127.0.0.1:0");
        // v1 and v2 each on both nodes, w on one.
        let mut clients = Vec::new();
        for (node, user) in [(&a, "v1"), (&b, "v1"), (&b, "v2"), (&a, "w"), (&a, "v2")] {
            clients.push((user, node.connect(user).await));
        }
        let of = |user: &str| {
            let mut s: Vec<String> = clients
                .iter()
                .filter(|(u, _)| *u == user)
                .map(|(_, c)| c.session.clone())
                .collect();
            s.sort();
            s
        };
        let everyone: Vec<String> = ["v1", "v2", "w"].iter().flat_map(|u| of(u)).collect();
        let deadline = Instant::now() + CLUSTER_WAIT;
        for node in [&a, &b] {
            loop {
                let r = node.api("presence_stats", json!({})).await;
                if r["result"]["sessions"] == 5 {
                    break;
                }
                assert!(Instant::now() < deadline, "every session in presence: {r}");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
        for node in [&a, &b] {
            assert_eq!(
                walk_pages(node, json!({})).await,
                everyone,
                "everyone, one page at a time"
            );
            assert_eq!(
                walk_pages(node, json!({"user": "v2"})).await,
                of("v2"),
                "one user on both nodes"
            );
            let r = node.api("presence_stats", json!({"user": "v1"})).await;
            assert_eq!(r["result"], json!({"sessions": 2, "users": 1}), "{r}");
            let r = node.api("presence_stats", json!({})).await;
            assert_eq!(r["result"], json!({"sessions": 5, "users": 3}), "{r}");
        }
        // A cursor inside a user's sessions: the rest of that user, then the next.
        let v2 = of("v2");
        let r = a
            .api("presence", json!({"limit": 2, "after": format!("v2/{}", v2[0])}))
            .await;
        assert_eq!(
            sessions(&r["result"]["entries"]),
            [v2[1].clone(), of("w")[0].clone()],
            "{r}"
        );
        assert!(r["result"]["next"].is_null(), "{r}");
    })
    .await;
}

#[tokio::test]
async fn topic_presence_paging_and_stats_span_the_nodes() {
    within(CLUSTER_WAIT * 2, async {
        let config = node_config("span", &redis_url());
        let a = Node::start(&config, "127.0.0.1:0");
        let b = Node::start(&config, "127.0.0.1:0");
        let mut clients = Vec::new();
        for (node, user) in [(&a, "u1"), (&b, "u2"), (&a, "u3"), (&b, "u4")] {
            let mut c = node.connect(user).await;
            subscribe(&mut c, "room:x").await;
            clients.push(c);
        }
        // Users u1 to u4 in the order they connected: the order presence answers in.
        let expected: Vec<String> = clients.iter().map(|c| c.session.clone()).collect();
        // From either node, every member, sorted by user.
        for node in [&a, &b] {
            let r = presence_until(node, json!({"topic": "room:x", "limit": 3}), "all four members", |r| {
                r["result"]["entries"].as_array().is_some_and(|e| e.len() == 3)
            })
            .await;
            let next = r["result"]["next"].clone();
            assert!(next.is_string(), "a second page: {r}");
            let rest = node
                .api("presence", json!({"topic": "room:x", "limit": 3, "after": next}))
                .await;
            let mut all = sessions(&r["result"]["entries"]);
            all.extend(sessions(&rest["result"]["entries"]));
            assert_eq!(all, expected, "both pages, in order, once each");
            assert!(rest["result"]["next"].is_null());
            let entries = rest["result"]["entries"].as_array().expect("entries");
            assert_eq!(entries[0]["user"], "u4");
        }
        let r = a.api("presence", json!({"topic": "room:x"})).await;
        assert_eq!(error_code(&r), Some(-32010), "four entries past a bound of three: {r}");
        let r = b.api("presence_stats", json!({"topic": "room:x"})).await;
        assert_eq!(r["result"], json!({"sessions": 4, "users": 4}));
        let deadline = Instant::now() + CLUSTER_WAIT;
        loop {
            let r = a.api("stats", json!({})).await;
            let cluster = &r["result"]["cluster"];
            if cluster["nodes"] == 2 && cluster["sessions"] == 4 && cluster["users"] == 4 {
                assert_eq!(r["result"]["sessions"], 2, "the node's own figure: {r}");
                break;
            }
            assert!(Instant::now() < deadline, "cluster figures: {r}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        // One leaves on node b: gone from node a's answer.
        let gone = clients.remove(1);
        let gone_session = gone.session.clone();
        drop(gone);
        presence_until(&a, json!({"topic": "room:x", "limit": 3}), "u2 gone", |r| {
            r["result"]["entries"]
                .as_array()
                .is_some_and(|e| e.iter().all(|e| e["session"] != gone_session.as_str()))
        })
        .await;
    })
    .await;
}

#[tokio::test]
async fn presence_is_complete_again_after_redis_lost_its_data() {
    within(CLUSTER_WAIT * 2, async {
        let redis = PrivateRedis::on_a_free_port(false);
        let config = node_config("flush", &redis.url());
        let a = Node::start(&config, "127.0.0.1:0");
        let b = Node::start(&config, "127.0.0.1:0");
        let mut c1 = a.connect("fay").await;
        let mut c2 = b.connect("gus").await;
        subscribe(&mut c1, "room:f").await;
        subscribe(&mut c2, "room:f").await;
        let both = |r: &Value| r["result"].as_array().is_some_and(|e| e.len() == 2);
        presence_until(&a, json!({"topic": "room:f"}), "both members", both).await;
        presence_until(&a, json!({}), "both sessions", both).await;

        redis.cli(&["FLUSHALL"]);
        // Heartbeats every 300 ms: a few of them, with ample room for a slow machine.
        presence_until(&a, json!({"topic": "room:f"}), "members written again", both).await;
        presence_until(&b, json!({}), "sessions written again", both).await;
        let r = b.api("presence", json!({"user": "fay"})).await;
        assert_eq!(sessions(&r["result"]), [c1.session.clone()], "{r}");
    })
    .await;
}

#[tokio::test]
async fn a_session_that_closed_while_redis_was_away_does_not_stay() {
    within(CLUSTER_WAIT * 2, async {
        let redis = PrivateRedis::on_a_free_port(false);
        let config = node_config("outage", &redis.url());
        let a = Node::start(&config, "127.0.0.1:0");
        let mut stays = a.connect("hal").await;
        let mut leaves = a.connect("hal").await;
        subscribe(&mut stays, "room:o").await;
        subscribe(&mut leaves, "room:o").await;
        let two = |r: &Value| r["result"].as_array().is_some_and(|e| e.len() == 2);
        presence_until(&a, json!({"user": "hal"}), "both of hal's sessions", two).await;

        // Redis refuses the node (its connections are cut and a password is
        // now needed) while one session closes: removing it fails.
        redis.cli(&["CONFIG", "SET", "requirepass", "outage-only"]);
        redis.cli(&[
            "-a",
            "outage-only",
            "--no-auth-warning",
            "CLIENT",
            "KILL",
            "TYPE",
            "normal",
        ]);
        let left = leaves.session.clone();
        drop(leaves);
        let refused = |r: &Value| error_code(r) == Some(-32007);
        presence_until(&a, json!({"user": "hal"}), "Redis away", refused).await;
        redis.cli(&[
            "-a",
            "outage-only",
            "--no-auth-warning",
            "CONFIG",
            "SET",
            "requirepass",
            "",
        ]);

        let r = presence_until(&a, json!({"user": "hal"}), "only the live session", |r| {
            r["result"].as_array().is_some_and(|e| e.len() == 1)
        })
        .await;
        assert_eq!(sessions(&r["result"]), [stays.session.clone()], "{left} is gone: {r}");
        let r = a.api("presence", json!({"topic": "room:o"})).await;
        assert_eq!(
            sessions(&r["result"]),
            [stays.session.clone()],
            "and from its topic: {r}"
        );
        assert!(stays.call(9, "rpc.ping", json!([])).await["result"] == "pong");
    })
    .await;
}
