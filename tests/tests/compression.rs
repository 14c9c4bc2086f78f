//! permessage-deflate at the wire: what the upgrade answers to each kind of
//! offer, a compressed round trip, and the frames a compressing session
//! refuses (a bomb with 1009, data that does not inflate with 1007, reserved
//! bits where they do not belong with 1002). The fan-out to a mix of
//! compressing and plain sessions is in `compression_fanout.rs`, alone in
//! its process, because it counts compressions in the process's metrics.

mod compression_support;

use serde_json::{Value, json};
use switchboard_protocol::codes::close;
use switchboard_server::Config;
use switchboard_tests::{TestServer, WAIT, config_with, within};

use compression_support::{AGREED, BROWSER_OFFER, RawClient, deflate};

/// Each test's hang guard: all of them take well under a second.
const LIMIT: std::time::Duration = WAIT;

/// The limit of the servers that test the bomb.
const MAX_MESSAGE: usize = 64 * 1024;

/// What the upgrade answers to each offer: the agreed extension, or none.
#[tokio::test]
async fn the_upgrade_answers_each_offer_as_rfc_7692_allows() {
    within(LIMIT, async {
        let server = TestServer::start().await;
        let cases: &[(&[&str], bool)] = &[
            (&[], false),
            (&["permessage-deflate"], true),
            (&[BROWSER_OFFER], true),
            (&["permessage-deflate; client_max_window_bits=10"], true),
            (&["permessage-deflate; server_max_window_bits=15"], true),
            (
                &["permessage-deflate; server_no_context_takeover; client_no_context_takeover"],
                true,
            ),
            // A smaller server window is declined, and the next offer tried.
            (&["permessage-deflate; server_max_window_bits=10"], false),
            (
                &["permessage-deflate; server_max_window_bits=10, permessage-deflate"],
                true,
            ),
            (
                &[
                    "permessage-deflate; server_max_window_bits=10",
                    "permessage-deflate; client_max_window_bits",
                ],
                true,
            ),
            // Unknown, repeated or malformed parameters decline that offer only.
            (&["permessage-deflate; mystery=1"], false),
            (
                &["permessage-deflate; server_no_context_takeover; server_no_context_takeover"],
                false,
            ),
            (&["permessage-deflate; client_max_window_bits=99"], false),
            (
                &["permessage-deflate; mystery, permessage-deflate; server_max_window_bits=15"],
                true,
            ),
            (&["x-webkit-deflate-frame"], false),
        ];
        for (offer, agreed) in cases {
            let client = RawClient::upgrade(server.addr, "/ws?user=offer", offer).await;
            let answer = client.extensions();
            let expected = agreed.then(|| AGREED.to_owned());
            assert_eq!(answer, expected, "offer {offer:?}");
            // The server never answers the client's window: it is not needed.
            assert!(
                !client.head.to_ascii_lowercase().contains("max_window_bits"),
                "{}",
                client.head
            );
        }
        server.stop().await;

        // With compression off, no offer is accepted.
        let off = TestServer::start_with(
            Config {
                compression: false,
                ..Config::default()
            },
            Vec::new(),
        )
        .await;
        let client = RawClient::upgrade(off.addr, "/ws?user=off", &[BROWSER_OFFER]).await;
        assert_eq!(client.extensions(), None);
        drop(client);
        off.stop().await;
    })
    .await;
}

/// `echo` with a long and a short string, as one request frame.
fn echo_request(id: u64, text: &str) -> String {
    json!({"jsonrpc": "2.0", "id": id, "method": "echo", "params": [text]}).to_string()
}

#[tokio::test]
async fn a_compressed_round_trip_deflates_large_messages_only() {
    within(LIMIT, async {
        let server = TestServer::start().await;
        let mut client = RawClient::connect(server.addr, "deflating", &[BROWSER_OFFER]).await;
        assert_eq!(client.extensions().as_deref(), Some(AGREED));

        // A large request, deflated: its answer comes back deflated.
        let long = "the quick brown fox jumps over the lazy dog ".repeat(40);
        client.send_deflated(&echo_request(1, &long)).await;
        let answer = client.next().await;
        assert!(answer.rsv1, "an answer over the threshold is deflated");
        assert!(answer.payload.len() < long.len() / 4, "{} bytes", answer.payload.len());
        assert_eq!(answer.json(), json!({"jsonrpc": "2.0", "id": 1, "result": [long]}));

        // A short one, sent plain (a client may): its answer is plain.
        client.send_plain(&echo_request(2, "hi")).await;
        let answer = client.next().await;
        assert!(!answer.rsv1, "an answer under the threshold is sent as it is");
        assert_eq!(answer.json(), json!({"jsonrpc": "2.0", "id": 2, "result": ["hi"]}));

        // A deflated message may come in fragments: RSV1 on the first only.
        let deflated = deflate(echo_request(3, &long).as_bytes());
        let (first, rest) = deflated.split_at(deflated.len() / 2);
        client.send_frame(0x41, first).await;
        client.send_frame(0x80, rest).await;
        assert_eq!(client.next().await.json()["result"], json!([long]));
        drop(client);
        server.stop().await;
    })
    .await;
}

/// A server with a small message limit, and a compressing client of it.
async fn small_server() -> (TestServer, RawClient) {
    let limits = switchboard_server::Limits {
        max_message_size: MAX_MESSAGE,
        ..Default::default()
    };
    let server = TestServer::start_with(config_with(limits), Vec::new()).await;
    let client = RawClient::connect(server.addr, "hostile", &[BROWSER_OFFER]).await;
    (server, client)
}

/// A bystander still gets answers.
async fn still_serves(server: &TestServer) {
    let mut bystander = server.connect("bystander").await;
    let answer = bystander.call(7, "rpc.ping", Value::Null).await;
    assert_eq!(answer["id"], 7, "{answer}");
}

#[tokio::test]
async fn a_decompression_bomb_is_closed_with_1009() {
    within(LIMIT, async {
        let (server, mut client) = small_server().await;
        // 4 MiB of spaces in a JSON string deflate to about 4 KiB: well
        // under the limit on the wire, 64 times over it inflated.
        let bomb = format!("[\"{}\"]", " ".repeat(4 << 20));
        let deflated = deflate(bomb.as_bytes());
        assert!(deflated.len() < MAX_MESSAGE / 2, "{} bytes", deflated.len());
        client.send_frame(0xC1, &deflated).await;
        let (code, before) = client.closed().await;
        assert_eq!(code, Some(close::TOO_BIG));
        assert!(before.is_empty(), "{before:?}");
        still_serves(&server).await;

        // Within the limit inflated, the same kind of message is served.
        let mut client = RawClient::connect(server.addr, "fine", &[BROWSER_OFFER]).await;
        let fits = echo_request(1, &" ".repeat(MAX_MESSAGE - 100));
        client.send_deflated(&fits).await;
        assert_eq!(client.next().await.json()["id"], 1);
        drop(client);
        server.stop().await;
    })
    .await;
}

#[tokio::test]
async fn data_that_does_not_inflate_is_closed_with_1007() {
    within(LIMIT, async {
        let (server, mut client) = small_server().await;
        // Block type 3 does not exist.
        client.send_frame(0xC1, &[0xFF, 0xFF, 0xFF, 0xFF]).await;
        assert_eq!(client.closed().await.0, Some(close::INVALID_UTF8));

        // A message that refers back into the one before it, as a client
        // keeping its context would send, though it agreed not to.
        let mut client = RawClient::connect(server.addr, "takeover", &[BROWSER_OFFER]).await;
        let request = echo_request(1, &"abcdefgh".repeat(40));
        let mut compressor = flate2::Compress::new(flate2::Compression::default(), false);
        let mut both = Vec::with_capacity(4096);
        for _ in 0..2 {
            let start = both.len();
            compressor
                .compress_vec(request.as_bytes(), &mut both, flate2::FlushCompress::Sync)
                .unwrap();
            both.truncate(both.len() - compression_support::TAIL.len());
            let frame = both[start..].to_vec();
            client.send_frame(0xC1, &frame).await;
        }
        assert_eq!(client.next().await.json()["id"], 1, "the first one is fine");
        assert_eq!(client.closed().await.0, Some(close::INVALID_UTF8));

        // Inflated text that is not UTF-8.
        let mut client = RawClient::connect(server.addr, "garbled", &[BROWSER_OFFER]).await;
        client.send_frame(0xC1, &deflate(b"[\"\xff\xfe\"]")).await;
        assert_eq!(client.closed().await.0, Some(close::INVALID_UTF8));
        still_serves(&server).await;
        server.stop().await;
    })
    .await;
}

#[tokio::test]
async fn reserved_bits_out_of_place_are_closed_with_1002() {
    within(LIMIT, async {
        let (server, _) = small_server().await;
        let compressed = deflate(echo_request(1, "x").as_bytes());
        // What a case is called, the client's offer, and the frames it sends.
        type Case<'a> = (&'a str, &'a [&'a str], Vec<(u8, Vec<u8>)>);
        let cases: Vec<Case<'_>> = vec![
            ("RSV1 without negotiation", &[], vec![(0xC1, compressed.clone())]),
            (
                "RSV1 after a declined offer",
                &["permessage-deflate; server_max_window_bits=9"],
                vec![(0xC1, compressed.clone())],
            ),
            ("RSV1 on a ping", &[BROWSER_OFFER], vec![(0xC9, Vec::new())]),
            (
                "RSV1 on a continuation",
                &[BROWSER_OFFER],
                vec![(0x01, b"[".to_vec()), (0xC0, compressed.clone())],
            ),
            ("RSV2", &[BROWSER_OFFER], vec![(0xA1, b"[]".to_vec())]),
            ("RSV3", &[BROWSER_OFFER], vec![(0x91, b"[]".to_vec())]),
        ];
        for (name, offer, frames) in cases {
            let mut client = RawClient::connect(server.addr, "bits", offer).await;
            for (first, payload) in frames {
                client.send_frame(first, &payload).await;
            }
            let (code, before) = client.closed().await;
            assert_eq!(code, Some(close::PROTOCOL_ERROR), "{name}");
            assert!(before.is_empty(), "{name}: {before:?}");
        }
        still_serves(&server).await;
        server.stop().await;
    })
    .await;
}
