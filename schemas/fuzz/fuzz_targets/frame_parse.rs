//! Any text frame: `parse` never panics, agrees with `batch_len` (the count
//! the batch limit is checked against) and with an independent reading of
//! every message through `serde_json::Value`, and every answer the gateway
//! would write for it is valid JSON that echoes the request's id.

#![no_main]

mod common;

use libfuzzer_sys::fuzz_target;
use serde_json::Value;
use serde_json::value::RawValue;
use switchboard_protocol::frame::{self, Frame, Message};

fuzz_target!(|data: &[u8]| {
    // The gateway only ever sees valid UTF-8: tungstenite closes with 1007 otherwise.
    let Ok(text) = std::str::from_utf8(data) else { return };
    check_frame(text);
});

fn check_frame(text: &str) {
    let parsed = frame::parse(text);
    let counted = frame::batch_len(text);
    // The batch limit is checked against `batch_len` before `parse` runs: the
    // two must agree, or a batch could slip past the limit.
    match &parsed {
        Frame::Batch(messages) => assert_eq!(counted, Some(messages.len()), "batch_len of {text:?}"),
        Frame::EmptyBatch => assert_eq!(counted, Some(0), "batch_len of {text:?}"),
        Frame::Single(_) | Frame::ParseError => assert_eq!(counted, None, "batch_len of {text:?}"),
    }
    // Whatever serde_json reads as a value, the classifier reads too.
    if let Ok(value) = serde_json::from_str::<Value>(text) {
        match (&value, &parsed) {
            (Value::Array(items), Frame::Batch(messages)) => assert_eq!(items.len(), messages.len()),
            (Value::Array(items), Frame::EmptyBatch) => assert!(items.is_empty()),
            (Value::Array(_), other) => panic!("an array read as {other:?}"),
            (_, Frame::Single(_)) => {}
            (_, other) => panic!("a value read as {other:?}"),
        }
    }
    match parsed {
        Frame::Single(message) => {
            let raw: &RawValue = serde_json::from_str(text).expect("a single message is JSON");
            common::check_message(raw, &message);
            if let Some(answer) = answer(&message) {
                check_answer(&answer, &message);
            }
        }
        Frame::Batch(messages) => {
            let raws: Vec<&RawValue> = serde_json::from_str(text).expect("a batch is a JSON array");
            for (raw, message) in raws.iter().zip(&messages) {
                common::check_message(raw, message);
            }
            let answers: Vec<String> = messages.iter().filter_map(answer).collect();
            if !answers.is_empty() {
                let joined = format!("[{}]", answers.join(","));
                let value: Vec<&RawValue> = serde_json::from_str(&joined).expect("a batch answer is JSON");
                assert_eq!(value.len(), answers.len());
            }
        }
        Frame::ParseError | Frame::EmptyBatch => {
            let answer = frame::write_error(None, &frame::invalid_request("x"));
            serde_json::from_str::<Value>(&answer).expect("an error answer is JSON");
        }
    }
}

/// The answer the gateway would write without running a method: a result for
/// a request, an error for an invalid message; nothing for the others.
fn answer(message: &Message<'_>) -> Option<String> {
    match message {
        Message::Request { id, .. } => Some(frame::write_result(id.get(), "null")),
        Message::Invalid {
            id,
            reason,
            was_response: false,
        } => Some(frame::write_error(
            id.map(RawValue::get),
            &frame::invalid_request(reason),
        )),
        _ => None,
    }
}

fn check_answer(answer: &str, message: &Message<'_>) {
    // Valid JSON by the grammar. An id such as 1e400 is echoed as sent, which
    // serde_json's Value cannot hold: then only the grammar is checked.
    serde_json::from_str::<&RawValue>(answer).unwrap_or_else(|e| panic!("answer {answer:?} is not JSON: {e}"));
    if let Ok(value) = serde_json::from_str::<Value>(answer) {
        assert_eq!(value["jsonrpc"], "2.0");
        let expected_id = match message {
            Message::Request { id, .. } | Message::Invalid { id: Some(id), .. } => {
                serde_json::from_str::<Value>(id.get()).ok()
            }
            _ => Some(Value::Null),
        };
        if let Some(expected_id) = expected_id {
            assert_eq!(value["id"], expected_id, "the answer echoes the id");
        }
    }
    // The answer classifies as a response with the same id bytes.
    match frame::parse(answer) {
        Frame::Single(Message::Response { id, .. }) => match message {
            Message::Request { id: sent, .. } | Message::Invalid { id: Some(sent), .. } => {
                assert_eq!(id.get(), sent.get(), "the id is echoed byte for byte")
            }
            _ => assert_eq!(id.get(), "null"),
        },
        other => panic!("the answer {answer:?} reads back as {other:?}"),
    }
}
