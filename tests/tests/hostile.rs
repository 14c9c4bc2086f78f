//! Hostile clients against the real binary, over real sockets: each test
//! does one kind of harm and checks the documented outcome (SECURITY.md,
//! "Hostile clients") *and* that the server still serves other sessions —
//! a bystander connected all along and a fresh session both get their
//! `rpc.ping` answered.
//!
//! Every test runs under [`within`]; nothing sleeps to wait for a condition:
//! tests wait on frames or poll the server (API, `/proc`) with a deadline.
//! Build the binary first: `cargo build --workspace --bins` (tests/run does).

mod hostile_support;

use std::time::{Duration, Instant};

use futures_util::StreamExt;
use serde_json::value::RawValue;
use serde_json::{Value, json};
use switchboard_protocol::codes::{self, close};
use switchboard_tests::{WAIT, WsClient, error_code, result, within};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio_tungstenite::MaybeTlsStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::frame::Frame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::{Data, OpCode};

use hostile_support::{
    Binary, as_client, limits, ping, raw_exchange, raw_frame, raw_upgrade, read_until_closed, upgrade_request,
};

/// Overall limit of one test.
const LIMIT: Duration = Duration::from_secs(120);

/// How long a client waits for a frame that must not come, before its probe.
const QUIET: Duration = Duration::from_millis(100);

/// The largest message the test nodes accept.
const MAX_MESSAGE: usize = 64 * 1024;

/// The batch limit of the test nodes.
const MAX_BATCH: usize = 20;

/// A node with small message and batch limits, for most tests.
fn small_limits(name: &str) -> Binary {
    Binary::start(
        name,
        &limits(&format!("max_message_size = {MAX_MESSAGE}\nmax_batch = {MAX_BATCH}")),
    )
}

/// The id of a frame exactly as the server wrote it.
fn raw_id(text: &str) -> String {
    #[derive(serde::Deserialize)]
    struct IdOnly<'a> {
        #[serde(borrow)]
        id: &'a RawValue,
    }
    serde_json::from_str::<IdOnly<'_>>(text)
        .unwrap_or_else(|e| panic!("frame without an id ({e}): {text}"))
        .id
        .get()
        .to_owned()
}

/// The error code of an answer, typed as the protocol crate's codes.
fn code_of(v: &Value) -> Option<i32> {
    error_code(v).and_then(|c| i32::try_from(c).ok())
}

/// Asserts that nothing is answered: a short wait, then a ping whose pong
/// must be the very next frame.
async fn assert_unanswered(c: &mut WsClient, what: &str) {
    if let Some(v) = c.try_recv(QUIET).await {
        panic!("{what} was answered: {v}");
    }
    ping(c, "after-silence").await;
}

/// Sends a raw WebSocket frame.
async fn send_frame(c: &mut WsClient, payload: Vec<u8>, opcode: OpCode, fin: bool) {
    c.send_message(Message::Frame(Frame::message(payload, opcode, fin)))
        .await;
}

// --- Frames the WebSocket layer refuses ------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_utf8_closes_with_1007() {
    within(LIMIT, async {
        let node = small_limits("utf8");
        let mut bystander = node.connect("bystander").await;

        // In one frame.
        let mut c = node.connect("garbled").await;
        let payload = b"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"echo\",\"params\":[\"\xff\xfe\"]}".to_vec();
        send_frame(&mut c, payload, OpCode::Data(Data::Text), true).await;
        let mut before = Vec::new();
        let closed = c.closed(&mut before).await;
        assert_eq!(closed.code, Some(close::INVALID_UTF8), "{closed:?}");
        assert!(before.is_empty(), "nothing answered before the close: {before:?}");

        // Split across fragments, the bad byte in the continuation.
        let mut c = node.connect("garbled-fragments").await;
        send_frame(
            &mut c,
            b"{\"jsonrpc\":\"2.0\",\"method\":\"echo\",\"params\":[\"\xe2\x82".to_vec(),
            OpCode::Data(Data::Text),
            false,
        )
        .await;
        send_frame(&mut c, b"\xff\"]}".to_vec(), OpCode::Data(Data::Continue), true).await;
        let closed = c.closed(&mut Vec::new()).await;
        assert_eq!(closed.code, Some(close::INVALID_UTF8), "{closed:?}");

        // A character split between fragments is fine.
        let mut c = node.connect("split-char").await;
        let text = "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"echo\",\"params\":[\"\u{20ac}\"]}".as_bytes();
        let split = text.iter().position(|b| *b == 0xe2).expect("the euro sign") + 1;
        send_frame(&mut c, text[..split].to_vec(), OpCode::Data(Data::Text), false).await;
        send_frame(&mut c, text[split..].to_vec(), OpCode::Data(Data::Continue), true).await;
        assert_eq!(c.recv().await, result(json!(1), json!(["\u{20ac}"])));

        node.still_serves(&mut [&mut bystander, &mut c]).await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn binary_frames_get_an_invalid_request_and_the_session_lives() {
    within(LIMIT, async {
        let node = small_limits("binary");
        let mut bystander = node.connect("bystander").await;
        let mut c = node.connect("binary").await;
        for payload in [
            br#"{"jsonrpc":"2.0","id":1,"method":"rpc.ping"}"#.to_vec(),
            vec![0xff, 0x00, 0xfe, 0x01],
            Vec::new(),
        ] {
            c.send_message(Message::Binary(payload.into())).await;
            let answer = c.recv().await;
            assert_eq!(answer["jsonrpc"], "2.0");
            assert_eq!(answer["id"], Value::Null, "{answer}");
            assert_eq!(code_of(&answer), Some(codes::INVALID_REQUEST), "{answer}");
            assert!(
                answer["error"]["data"]["reason"]
                    .as_str()
                    .is_some_and(|r| r.contains("text")),
                "the reason says to send text: {answer}"
            );
        }
        ping(&mut c, "binary-lives").await;
        node.still_serves(&mut [&mut bystander, &mut c]).await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn frames_over_the_limit_close_with_1009() {
    within(LIMIT, async {
        let node = small_limits("too-big");
        let mut bystander = node.connect("bystander").await;

        // Exactly at the limit is answered.
        let mut c = node.connect("at-limit").await;
        let frame = |len: usize| {
            let head = r#"{"jsonrpc":"2.0","id":1,"method":"echo","params":[""#;
            let tail = r#""]}"#;
            format!("{head}{}{tail}", "x".repeat(len - head.len() - tail.len()))
        };
        c.send(&frame(MAX_MESSAGE)).await;
        let answer = c.recv().await;
        assert_eq!(answer["id"], 1, "a message of exactly the limit is answered");
        assert!(answer.get("result").is_some(), "{}", &answer.to_string()[..100]);

        // One byte more in one frame.
        c.send(&frame(MAX_MESSAGE + 1)).await;
        let mut before = Vec::new();
        let closed = c.closed(&mut before).await;
        assert_eq!(closed.code, Some(close::TOO_BIG), "{closed:?}");
        assert!(before.is_empty(), "no answer to the oversized message: {before:?}");

        // Fragments each under the limit, together over it.
        let mut c = node.connect("fragments").await;
        let chunk = vec![b' '; MAX_MESSAGE / 2];
        send_frame(&mut c, chunk.clone(), OpCode::Data(Data::Text), false).await;
        send_frame(&mut c, chunk.clone(), OpCode::Data(Data::Continue), false).await;
        send_frame(&mut c, chunk, OpCode::Data(Data::Continue), true).await;
        let closed = c.closed(&mut Vec::new()).await;
        assert_eq!(closed.code, Some(close::TOO_BIG), "{closed:?}");

        // A frame header that announces 2^62 bytes.
        let mut raw = raw_upgrade(node.addr(), "/ws?user=liar").await;
        let mut header = vec![0x81, 0x80 | 127];
        header.extend_from_slice(&(1u64 << 62).to_be_bytes());
        header.extend_from_slice(&[1, 2, 3, 4]);
        raw.write_all(&header).await.expect("write");
        let mut liar = as_client(raw).await;
        let mut before = Vec::new();
        let closed = liar.closed(&mut before).await;
        assert_eq!(closed.code, Some(close::TOO_BIG), "{closed:?}");

        node.still_serves(&mut [&mut bystander]).await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn protocol_violations_close_with_1002() {
    within(LIMIT, async {
        let node = small_limits("protocol");
        let mut bystander = node.connect("bystander").await;
        let ping_request = br#"{"jsonrpc":"2.0","id":1,"method":"rpc.ping"}"#;
        for (what, bytes) in [
            ("an unmasked client frame", raw_frame(0x81, ping_request, None)),
            ("a reserved opcode", raw_frame(0x83, b"x", Some([1, 2, 3, 4]))),
            ("a reserved bit", raw_frame(0xC1, ping_request, Some([1, 2, 3, 4]))),
            ("a fragmented ping", raw_frame(0x09, b"x", Some([1, 2, 3, 4]))),
            (
                "a ping over 125 bytes",
                raw_frame(0x89, &[b'p'; 126], Some([1, 2, 3, 4])),
            ),
            (
                "a continuation with nothing to continue",
                raw_frame(0x80, b"x", Some([1, 2, 3, 4])),
            ),
        ] {
            let mut raw = raw_upgrade(node.addr(), "/ws?user=violator").await;
            raw.write_all(&bytes).await.expect("write");
            let mut c = as_client(raw).await;
            let mut before = Vec::new();
            let closed = c.closed(&mut before).await;
            assert_eq!(closed.code, Some(close::PROTOCOL_ERROR), "{what}: {closed:?}");
            assert!(
                before.iter().all(|f| f["method"] == "rpc.welcome"),
                "{what}: nothing but the welcome: {before:?}"
            );
        }
        node.still_serves(&mut [&mut bystander]).await;
    })
    .await;
}

// --- JSON the gateway refuses ------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deeply_nested_json_gets_an_error_and_the_session_lives() {
    within(LIMIT, async {
        let node = small_limits("nested");
        let mut bystander = node.connect("bystander").await;
        let mut c = node.connect("deep").await;
        // As deep as the message limit allows.
        let depth = MAX_MESSAGE / 2 - 100;
        let arrays = format!("{}{}", "[".repeat(depth), "]".repeat(depth));
        let objects = format!("{}1{}", r#"{"a":"#.repeat(depth / 3), "}".repeat(depth / 3));
        for (what, frame) in [
            (
                "nested params",
                format!(r#"{{"jsonrpc":"2.0","id":1,"method":"echo","params":{arrays}}}"#),
            ),
            (
                "nested objects in params",
                format!(r#"{{"jsonrpc":"2.0","id":1,"method":"echo","params":[{objects}]}}"#),
            ),
            (
                "a nested request in a batch",
                format!(r#"[{{"jsonrpc":"2.0","id":1,"method":"echo","params":{arrays}}}]"#),
            ),
            (
                "a nested id",
                format!(r#"{{"jsonrpc":"2.0","id":{arrays},"method":"echo"}}"#),
            ),
            (
                "nested params to a built-in",
                format!(r#"{{"jsonrpc":"2.0","id":1,"method":"rpc.subscribe","params":{{"topics":{arrays}}}}}"#),
            ),
            ("nothing but nesting", arrays.clone()),
        ] {
            c.send(&frame).await;
            let answer = c.recv().await;
            let single = answer.as_array().and_then(|a| a.first()).unwrap_or(&answer);
            let code = code_of(single).unwrap_or_default();
            assert!(
                (-32768..=-32000).contains(&code),
                "{what}, {depth} deep, is refused with an error: {answer}"
            );
        }
        assert_eq!(
            c.call(2, "echo", json!([[[1]]])).await,
            result(json!(2), json!([[[1]]]))
        );
        node.still_serves(&mut [&mut bystander, &mut c]).await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn huge_batches_get_one_invalid_request_with_the_limit() {
    within(LIMIT, async {
        let node = small_limits("batch");
        let mut bystander = node.connect("bystander").await;
        let mut c = node.connect("batcher").await;
        let request = |i: usize| format!(r#"{{"jsonrpc":"2.0","id":{i},"method":"rpc.ping"}}"#);

        // At the limit: every request answered, in order.
        let at_limit: Vec<String> = (0..MAX_BATCH).map(request).collect();
        c.send(&format!("[{}]", at_limit.join(","))).await;
        let answers = c.recv().await;
        let ids: Vec<u64> = answers
            .as_array()
            .expect("a batch answer")
            .iter()
            .map(|a| a["id"].as_u64().expect("id"))
            .collect();
        assert_eq!(ids, (0..MAX_BATCH as u64).collect::<Vec<_>>());

        // One over, and as many one-byte elements as the message limit allows.
        let over: Vec<String> = (0..=MAX_BATCH).map(request).collect();
        let tiny = (MAX_MESSAGE - 2) / 2;
        for (size, frame) in [
            (MAX_BATCH + 1, format!("[{}]", over.join(","))),
            (tiny, format!("[{}1]", "1,".repeat(tiny - 1))),
            (
                MAX_BATCH + 1,
                format!(
                    "[{}]",
                    vec![r#"{"jsonrpc":"2.0","method":"echo"}"#; MAX_BATCH + 1].join(",")
                ),
            ),
        ] {
            c.send(&frame).await;
            let answer = c.recv().await;
            assert!(answer.is_object(), "one answer, not a batch, for a batch of {size}");
            assert_eq!(answer["id"], Value::Null);
            assert_eq!(code_of(&answer), Some(codes::INVALID_REQUEST), "{answer}");
            assert_eq!(answer["error"]["data"]["limit"], MAX_BATCH, "{answer}");
            assert_eq!(answer["error"]["data"]["size"], size, "{answer}");
        }
        // An empty batch.
        c.send("[]").await;
        let answer = c.recv().await;
        assert_eq!(code_of(&answer), Some(codes::INVALID_REQUEST), "{answer}");
        node.still_serves(&mut [&mut bystander, &mut c]).await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn duplicate_ids_in_a_batch_are_each_answered() {
    within(LIMIT, async {
        let node = small_limits("duplicates");
        let mut bystander = node.connect("bystander").await;
        let mut c = node.connect("dup").await;
        let batch = json!([
            {"jsonrpc": "2.0", "id": 7, "method": "echo", "params": [0]},
            {"jsonrpc": "2.0", "id": 7, "method": "demo.sleep", "params": [30]},
            {"jsonrpc": "2.0", "id": 7, "method": "echo", "params": [2]},
            {"jsonrpc": "2.0", "method": "echo", "params": ["a notification"]},
            {"jsonrpc": "2.0", "id": 7, "method": "no.such.method"},
            {"jsonrpc": "2.0", "id": 7, "method": "demo.sleep", "params": [0]},
            {"jsonrpc": "2.0", "id": 7, "method": "rpc.ping"},
        ]);
        c.send_json(&batch).await;
        let answers = c.recv().await;
        assert_eq!(
            answers,
            json!([
                result(json!(7), json!([0])),
                result(json!(7), json!(30)),
                result(json!(7), json!([2])),
                {"jsonrpc": "2.0", "id": 7, "error": {"code": -32601, "message": "Method not found"}},
                result(json!(7), json!(0)),
                result(json!(7), json!("pong")),
            ]),
            "one answer per request, in request order, none for the notification"
        );
        // The same id in flight twice, in separate frames.
        c.send(r#"{"jsonrpc":"2.0","id":"twice","method":"demo.sleep","params":[50]}"#)
            .await;
        c.send(r#"{"jsonrpc":"2.0","id":"twice","method":"demo.sleep","params":[0]}"#)
            .await;
        let mut got = vec![c.recv().await, c.recv().await];
        got.sort_by_key(|v| v["result"].as_u64());
        assert_eq!(
            got,
            vec![result(json!("twice"), json!(0)), result(json!("twice"), json!(50))]
        );
        node.still_serves(&mut [&mut bystander, &mut c]).await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ids_of_every_json_type_are_echoed_or_refused() {
    within(LIMIT, async {
        let node = small_limits("ids");
        let mut bystander = node.connect("bystander").await;
        let mut c = node.connect("ids").await;
        let legal = [
            "0",
            "-0",
            "-1",
            "1.5",
            "1e3",
            "1E+2",
            "-1.25e-7",
            "12345678901234567890123456789",
            "1e400",
            r#""""#,
            r#""s""#,
            r#""\u00e9\n\"\\""#,
            "\"\u{1F642}\"",
            "null",
        ];
        for id in legal {
            c.send(&format!(r#"{{"jsonrpc":"2.0","id":{id},"method":"rpc.ping"}}"#))
                .await;
            let text = c.recv_text().await;
            assert_eq!(raw_id(&text), id, "the id is echoed byte for byte: {text}");
            assert!(text.contains(r#""result":"pong""#), "{text}");
        }
        for id in ["true", "false", "{}", r#"{"id":1}"#, "[]", "[1]"] {
            c.send(&format!(r#"{{"jsonrpc":"2.0","id":{id},"method":"rpc.ping"}}"#))
                .await;
            let answer = c.recv().await;
            assert_eq!(answer["id"], Value::Null, "id {id}: {answer}");
            assert_eq!(code_of(&answer), Some(codes::INVALID_REQUEST), "id {id}: {answer}");
        }
        node.still_serves(&mut [&mut bystander, &mut c]).await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn other_jsonrpc_versions_are_invalid_requests() {
    within(LIMIT, async {
        let node = small_limits("versions");
        let mut bystander = node.connect("bystander").await;
        let mut c = node.connect("versions").await;
        for version in [
            r#""jsonrpc":"1.0","#,
            r#""jsonrpc":2.0,"#,
            r#""jsonrpc":"2.0 ","#,
            r#""jsonrpc":null,"#,
            "",
        ] {
            c.send(&format!(r#"{{{version}"id":1,"method":"rpc.ping"}}"#)).await;
            let answer = c.recv().await;
            assert_eq!(answer["id"], 1, "{version}: {answer}");
            assert_eq!(code_of(&answer), Some(codes::INVALID_REQUEST), "{version}: {answer}");
        }
        // Without an id it cannot be told from a notification: answered with id null.
        c.send(r#"{"jsonrpc":"1.0","method":"rpc.ping"}"#).await;
        let answer = c.recv().await;
        assert_eq!(answer["id"], Value::Null, "{answer}");
        assert_eq!(code_of(&answer), Some(codes::INVALID_REQUEST), "{answer}");
        // An escaped "2.0" is still "2.0".
        c.send(r#"{"jsonrpc":"\u0032.0","id":2,"method":"rpc.ping"}"#).await;
        assert_eq!(c.recv().await, result(json!(2), json!("pong")));
        node.still_serves(&mut [&mut bystander, &mut c]).await;
    })
    .await;
}

// --- Responses the gateway did not ask for ----------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn responses_with_both_result_and_error_are_dropped() {
    within(LIMIT, async {
        let node = small_limits("both");
        let mut bystander = node.connect("bystander").await;
        let mut c = node.connect("both").await;
        let both = |id: &str| {
            format!(r#"{{"jsonrpc":"2.0","id":{id},"result":true,"error":{{"code":1,"message":"no"}}}}"#)
        };
        c.send(&both("1")).await;
        c.send(&format!("[{},{}]", both("2"), both(r#""x""#))).await;
        assert_unanswered(&mut c, "a response with both result and error").await;

        // As the answer to a real call from the server: the call fails at
        // once (the caller sees an error), and the malformed answer itself is
        // not answered.
        c.send(r#"{"jsonrpc":"2.0","id":"cb","method":"demo.callback","params":{"method":"ui.confirm","timeout_ms":60000}}"#)
            .await;
        let call = c.recv().await;
        assert_eq!(call["method"], "ui.confirm", "{call}");
        let started = Instant::now();
        c.send(&both(&call["id"].to_string())).await;
        let answer = c.recv().await;
        assert_eq!(answer["id"], "cb", "{answer}");
        assert!(answer.get("error").is_some(), "the call failed: {answer}");
        eprintln!("a malformed answer failed its call after {:?} (timeout 60 s)", started.elapsed());
        assert_unanswered(&mut c, "the malformed answer").await;
        node.still_serves(&mut [&mut bystander, &mut c]).await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stray_responses_are_dropped_and_cannot_be_planted() {
    within(LIMIT, async {
        let node = small_limits("stray");
        let mut bystander = node.connect("bystander").await;
        let mut c = node.connect("stray").await;
        for stray in [
            r#"{"jsonrpc":"2.0","id":424242,"result":"who asked?"}"#,
            r#"{"jsonrpc":"2.0","id":"x","result":1}"#,
            r#"{"jsonrpc":"2.0","id":null,"result":1}"#,
            r#"{"jsonrpc":"2.0","id":-1,"error":{"code":-32000,"message":"no"}}"#,
            r#"{"jsonrpc":"2.0","id":1.5,"error":{"code":"not a number","message":1}}"#,
            r#"{"jsonrpc":"2.0","result":1}"#,
            r#"{"jsonrpc":"1.0","id":3,"result":1}"#,
            r#"[{"jsonrpc":"2.0","id":5,"result":1},{"jsonrpc":"2.0","id":6,"error":{"code":1,"message":"m"}}]"#,
        ] {
            c.send(stray).await;
        }
        assert_unanswered(&mut c, "stray responses").await;

        // Answers sent ahead for the ids the server will use next complete nothing.
        let callback = r#"{"jsonrpc":"2.0","id":"cb","method":"demo.callback","params":{"method":"ui.pick"}}"#;
        c.send(callback).await;
        let first = c.recv().await;
        let n = first["id"].as_u64().expect("the server's ids are integers");
        c.send_json(&json!({"jsonrpc": "2.0", "id": first["id"], "result": "real"}))
            .await;
        assert_eq!(c.recv().await, result(json!("cb"), json!("real")));
        for ahead in n + 1..n + 50 {
            c.send_json(&json!({"jsonrpc": "2.0", "id": ahead, "result": "planted"}))
                .await;
        }
        assert_unanswered(&mut c, "planted answers").await;
        c.send(callback).await;
        let second = c.recv().await;
        assert_eq!(second["method"], "ui.pick");
        c.send_json(&json!({"jsonrpc": "2.0", "id": second["id"], "result": "real again"}))
            .await;
        assert_eq!(
            c.recv().await,
            result(json!("cb"), json!("real again")),
            "a planted answer never completes a later call"
        );
        // Another session cannot answer this session's calls either.
        c.send(callback).await;
        let third = c.recv().await;
        bystander
            .send_json(&json!({"jsonrpc": "2.0", "id": third["id"], "result": "hijacked"}))
            .await;
        assert_unanswered(&mut bystander, "an answer to another session's call").await;
        c.send_json(&json!({"jsonrpc": "2.0", "id": third["id"], "result": "mine"}))
            .await;
        assert_eq!(c.recv().await, result(json!("cb"), json!("mine")));
        node.still_serves(&mut [&mut bystander, &mut c]).await;
    })
    .await;
}

// --- Floods --------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn floods_past_the_rate_limit_get_32002_then_close_4004() {
    within(LIMIT, async {
        const RATE: usize = 20;
        const BURST: usize = 40;
        const ABUSE: usize = 100;
        let node = Binary::start(
            "flood",
            &limits(&format!(
                "rate_per_second = {RATE}\nrate_burst = {BURST}\nrate_abuse_close = {ABUSE}"
            )),
        );
        let mut bystander = node.connect("bystander").await;

        // Requests: the burst passes, then -32002 for each, then 4004.
        let mut c = node.connect("flooder").await;
        let sent = 3 * ABUSE;
        for id in 0..sent {
            c.send_json(&json!({"jsonrpc": "2.0", "id": id, "method": "rpc.ping"}))
                .await;
        }
        let mut before = Vec::new();
        let closed = c.closed(&mut before).await;
        let pongs = before.iter().filter(|f| f["result"] == "pong").count();
        let limited: Vec<&Value> = before
            .iter()
            .filter(|f| code_of(f) == Some(codes::RATE_LIMITED))
            .collect();
        eprintln!(
            "request flood: {sent} sent, {pongs} answered, {} refused with -32002, then {closed:?}",
            limited.len()
        );
        assert_eq!(pongs + limited.len(), before.len(), "only pongs and -32002: {before:?}");
        assert!(
            pongs >= BURST && pongs < sent / 2,
            "the burst passes, the flood does not: {pongs}"
        );
        // Refusals are answered; those still queued when the session is
        // closed go with it (the abuse close does not flush the queue).
        assert!(!limited.is_empty(), "refused requests are answered -32002");
        assert!(
            limited.iter().all(|f| f["id"].is_u64()),
            "refusals carry the request's id"
        );
        assert_eq!(closed.code, Some(close::RATE_LIMITED), "{closed:?}");

        // Notifications past the rate are dropped without a word, then 4004.
        let mut n = node.connect("notifier").await;
        for _ in 0..3 * ABUSE {
            n.send(r#"{"jsonrpc":"2.0","method":"echo","params":[1]}"#).await;
        }
        let mut before = Vec::new();
        let closed = n.closed(&mut before).await;
        assert!(before.is_empty(), "notifications are never answered: {before:?}");
        assert_eq!(closed.code, Some(close::RATE_LIMITED), "{closed:?}");

        node.still_serves(&mut [&mut bystander]).await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_never_reads_is_closed_with_4000_and_memory_stays_bounded() {
    within(LIMIT, async {
        const QUEUE: usize = 256 * 1024;
        let node = Binary::start(
            "never-reads",
            &limits(&format!(
                "max_queue_bytes = {QUEUE}\nrate_per_second = 100000\nrate_burst = 100000"
            )),
        );
        let mut bystander = node.connect("bystander").await;
        let mut publisher = node.connect("publisher").await;
        let mut sloth = node.connect("sloth").await;
        sloth
            .send(r#"{"jsonrpc":"2.0","id":1,"method":"rpc.subscribe","params":{"topics":[{"topic":"firehose"}]}}"#)
            .await;
        assert!(sloth.recv().await.get("result").is_some());
        let rss_before = node.rss_kib();
        let sessions = node.sessions().await;

        // The sloth never reads again. Publish 16 KiB messages until its
        // queue overflows; then read it, to see how it ends.
        let pad = "p".repeat(16 * 1024);
        let mut published = 0u64;
        while node.metric("switchboard_slow_consumer_closes_total").await < 1.0 {
            for _ in 0..16 {
                let r = publisher
                    .call(
                        published,
                        "rpc.publish",
                        json!({"topic": "firehose", "data": {"n": published, "pad": pad}}),
                    )
                    .await;
                assert!(r.get("result").is_some(), "{r}");
                published += 1;
            }
            assert!(published < 20_000, "the sloth was never cut");
        }
        let rss_after = node.rss_kib();
        let mut before = Vec::new();
        let closed = sloth.closed(&mut before).await;
        eprintln!(
            "never-reading client: cut after {published} publications of 16 KiB ({} MiB), had {} of them in \
             socket buffers; server RSS {rss_before} KiB before, {rss_after} KiB after",
            published * 16 / 1024,
            before.len()
        );
        assert!(
            before.iter().enumerate().all(|(i, f)| f["params"]["data"]["n"] == i),
            "what the sloth got before the close is an unbroken prefix"
        );
        assert!(
            node.sessions_become(sessions - 1, WAIT).await,
            "the sloth's session is gone"
        );
        assert_eq!(closed.code, Some(close::SLOW_CONSUMER), "{closed:?}");
        assert_eq!(closed.reason, close::reason(close::SLOW_CONSUMER));
        assert!(rss_after < 1024 * 1024, "server RSS stays under 1 GiB: {rss_after} KiB");
        node.still_serves(&mut [&mut bystander, &mut publisher]).await;
    })
    .await;
}

// --- Connections that never become sessions ----------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn half_open_connections_and_unfinished_handshakes_are_closed() {
    within(LIMIT, async {
        let node = Binary::start(
            "half-open",
            &limits("handshake_timeout_ms = 1000\nping_interval_ms = 500\npong_timeout_ms = 1000"),
        );
        let baseline = node.open_fds();
        let addr = node.addr();
        // Raw TCP throughout: each exchange is left unfinished on purpose,
        // which no HTTP or WebSocket client would do.

        // A TCP connection that sends nothing.
        let started = Instant::now();
        let mut silent = TcpStream::connect(addr).await.expect("connect");
        let seen = read_until_closed(&mut silent, WAIT).await;
        assert!(seen.closed, "a silent connection is closed");
        eprintln!("silent TCP connection closed after {:?}", started.elapsed());

        // Half an upgrade request, never finished.
        let started = Instant::now();
        let mut half = TcpStream::connect(addr).await.expect("connect");
        half.write_all(format!("GET /ws?user=half HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\n").as_bytes())
            .await
            .expect("write");
        let seen = read_until_closed(&mut half, WAIT).await;
        assert!(seen.closed, "half a request is closed");
        assert_ne!(seen.status(), Some(101), "never upgraded");
        eprintln!(
            "half a request closed after {:?}: {:?}",
            started.elapsed(),
            String::from_utf8_lossy(&seen.bytes)
        );

        // A whole request, one byte every 100 ms: the limit is on the whole
        // request, not between bytes.
        let request = upgrade_request(addr, "/ws?user=slowloris", "");
        let started = Instant::now();
        let mut slow = TcpStream::connect(addr).await.expect("connect");
        let mut pace = tokio::time::interval(Duration::from_millis(100));
        let mut cut_at = None;
        for (i, byte) in request.as_bytes().iter().enumerate() {
            pace.tick().await;
            if slow.write_all(&[*byte]).await.is_err() {
                cut_at = Some(i);
                break;
            }
            let mut probe = [0u8; 64];
            if let Ok(Ok(0) | Err(_)) =
                tokio::time::timeout(Duration::ZERO, tokio::io::AsyncReadExt::read(&mut slow, &mut probe)).await
            {
                cut_at = Some(i);
                break;
            }
        }
        let cut_at = cut_at.expect("the server cut the trickle before the request was complete");
        eprintln!(
            "slowloris cut after {cut_at} of {} bytes, {:?}",
            request.len(),
            started.elapsed()
        );

        // A WebSocket whose client went away without a word (or whose
        // network did): nothing answers the pings, so it is closed with 4001.
        let ghost = raw_upgrade(addr, "/ws?user=ghost").await;
        // Registered first (the upgrade's answer can come before), so that
        // zero sessions below means it was closed, not that it was not there
        // yet: once read, a client answers the pings and the session lives.
        assert!(node.sessions_become(1, WAIT).await, "the ghost session is up");
        assert!(
            node.sessions_become(0, WAIT).await,
            "the ghost session is closed (ping timeout)"
        );
        let mut ghost = as_client(ghost).await;
        let closed = ghost.closed(&mut Vec::new()).await;
        assert_eq!(closed.code, Some(close::PING_TIMEOUT), "{closed:?}");
        drop((silent, half, slow, ghost));

        // A couple of descriptors may come and go with the runtime; the connections' must not stay.
        let after = node.fds_fall_to(baseline + 2, WAIT).await;
        eprintln!("open fds: {baseline} before, {after} after");
        assert!(
            after <= baseline + 2,
            "descriptors are released: {baseline} before, {after} after"
        );
        node.still_serves(&mut []).await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn thousands_of_connects_and_disconnects_leave_nothing_behind() {
    within(Duration::from_secs(300), async {
        const CYCLES: usize = 3_000;
        const AT_ONCE: usize = 50;
        let node = Binary::start("churn", &limits(""));
        let mut bystander = node.connect("bystander").await;
        // Warm up: the first sessions allocate what every later one reuses.
        for _ in 0..AT_ONCE {
            drop(node.connect("warm-up").await);
        }
        assert!(node.sessions_become(1, WAIT).await);
        let baseline_fds = node.open_fds();
        let baseline_rss = node.rss_kib();
        let addr = node.addr();

        let started = Instant::now();
        for round in 0..CYCLES / AT_ONCE {
            let cycles = (0..AT_ONCE).map(|i| {
                let n = round * AT_ONCE + i;
                let node = &node;
                async move {
                    match n % 5 {
                        // A clean close handshake.
                        0 => {
                            let mut c = node.connect(&format!("churn{n}")).await;
                            c.ws.close(None).await.expect("close");
                            while let Some(Ok(_)) = c.ws.next().await {}
                        }
                        // Gone without a close frame.
                        1 => drop(node.connect(&format!("churn{n}")).await),
                        // Reset (RST) right after the welcome.
                        2 => {
                            let c = node.connect(&format!("churn{n}")).await;
                            if let MaybeTlsStream::Plain(s) = c.ws.get_ref() {
                                s.set_zero_linger().expect("SO_LINGER 0");
                            }
                        }
                        // Upgraded, gone before reading anything.
                        3 => drop(raw_upgrade(addr, &format!("/ws?user=churn{n}")).await),
                        // TCP only.
                        _ => drop(TcpStream::connect(addr).await.expect("connect")),
                    }
                }
            });
            futures_util::future::join_all(cycles).await;
        }
        let elapsed = started.elapsed();
        assert!(
            node.sessions_become(1, WAIT).await,
            "only the bystander is left: {}",
            node.stats().await
        );
        let stats = node.stats().await;
        assert_eq!(stats["sessions"], 1, "{stats}");
        assert_eq!(stats["users"], 1, "{stats}");
        let presence = node.node.api("presence", json!({})).await;
        assert_eq!(presence["result"].as_array().map(Vec::len), Some(1), "{presence}");
        // A few descriptors may come and go with the runtime; sessions' must not stay.
        let fds = node.fds_fall_to(baseline_fds + 5, WAIT).await;
        let rss = node.rss_kib();
        eprintln!(
            "{CYCLES} connect/disconnect cycles in {elapsed:?}: open fds {baseline_fds} → {fds}, \
             RSS {baseline_rss} KiB → {rss} KiB"
        );
        assert!(
            fds <= baseline_fds + 5,
            "descriptors return to the baseline: {baseline_fds} → {fds}"
        );
        assert!(rss < 1024 * 1024, "RSS stays under 1 GiB: {rss} KiB");
        node.still_serves(&mut [&mut bystander]).await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_upgrade_headers_get_4xx() {
    within(LIMIT, async {
        let node = small_limits("bad-upgrade");
        let mut bystander = node.connect("bystander").await;
        let addr = node.addr();
        // Raw bytes, because every request here is malformed on purpose.
        let head = |lines: &str| format!("GET /ws?user=bad HTTP/1.1\r\nHost: {addr}\r\n{lines}\r\n");
        let key = "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n";
        let cases: Vec<(&str, String)> = vec![
            ("no Sec-WebSocket-Key", head("Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n")),
            ("Sec-WebSocket-Version 8", head(&format!("Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 8\r\n{key}"))),
            ("no Sec-WebSocket-Version", head(&format!("Upgrade: websocket\r\nConnection: Upgrade\r\n{key}"))),
            ("no Upgrade", head(&format!("Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\n{key}"))),
            ("Upgrade: h2c", head(&format!("Upgrade: h2c\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n{key}"))),
            ("Connection: keep-alive", head(&format!("Upgrade: websocket\r\nConnection: keep-alive\r\nSec-WebSocket-Version: 13\r\n{key}"))),
            (
                "POST",
                format!("POST /ws HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n{key}Content-Length: 0\r\n\r\n"),
            ),
            ("a ?user= of 200 bytes", upgrade_request(addr, &format!("/ws?user={}", "u".repeat(200)), "")),
            ("an empty ?user=", upgrade_request(addr, "/ws?user=", "")),
            ("HTTP/1.0", upgrade_request(addr, "/ws?user=old", "").replacen("HTTP/1.1", "HTTP/1.0", 1)),
            ("a garbage request line", "HELLO THERE\r\n\r\n".to_owned()),
            ("a header line without a colon", head(&format!("Upgrade websocket\r\n{key}"))),
            ("a NUL in a header", head(&format!("Upgrade: web\0socket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n{key}"))),
            ("200 headers", head(&"X-Filler: 1\r\n".repeat(200))),
            ("a 1 MiB header", head(&format!("X-Big: {}\r\n", "b".repeat(1 << 20)))),
        ];
        for (what, request) in cases {
            let seen = raw_exchange(addr, request.as_bytes()).await;
            let status = seen.status();
            eprintln!("{what}: {status:?}");
            assert!(
                status.is_some_and(|s| (400..500).contains(&s)) || (status.is_none() && seen.closed),
                "{what}: a 4xx, or the connection closed: {:?}",
                String::from_utf8_lossy(&seen.bytes[..seen.bytes.len().min(200)])
            );
        }
        assert_eq!(node.sessions().await, 1, "no session was opened");
        node.still_serves(&mut [&mut bystander]).await;
    })
    .await;
}
