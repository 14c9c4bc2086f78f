//! Batches built from lines: the input's lines become the elements of
//! `[line1,line2,…]`. When every line is a JSON value on its own, the batch
//! has exactly that many elements, `batch_len` counts them all (so the batch
//! limit cannot be dodged), and each element is classified as it would be
//! alone. The limit check the gateway does is replayed with a small limit.

#![no_main]

mod common;

use libfuzzer_sys::fuzz_target;
use serde_json::value::RawValue;
use switchboard_protocol::frame::{self, Frame, Message};

/// The batch limit replayed here (the gateway's default is 100).
const LIMIT: usize = 4;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let lines: Vec<&str> = if text.is_empty() {
        Vec::new()
    } else {
        text.split('\n').collect()
    };
    let batch = format!("[{}]", lines.join(","));
    let parsed = frame::parse(&batch);
    let counted = frame::batch_len(&batch);

    // The gateway refuses a batch over the limit by `batch_len` alone and
    // only then parses it: whatever gets through must be within the limit.
    if counted.is_none_or(|n| n <= LIMIT)
        && let Frame::Batch(messages) = &parsed
    {
        assert!(
            messages.len() <= LIMIT,
            "a batch of {} passed a limit of {LIMIT} (batch_len said {counted:?}): {batch:?}",
            messages.len()
        );
    }

    let alone: Option<Vec<&RawValue>> = lines.iter().map(|l| serde_json::from_str(l).ok()).collect();
    match (alone, &parsed) {
        (Some(raws), _) if raws.is_empty() => assert!(matches!(parsed, Frame::EmptyBatch)),
        (Some(raws), Frame::Batch(messages)) => {
            assert_eq!(messages.len(), raws.len(), "one element per line: {batch:?}");
            assert_eq!(counted, Some(raws.len()), "batch_len counts every element: {batch:?}");
            for ((raw, line), message) in raws.iter().zip(&lines).zip(messages) {
                common::check_message(raw, message);
                if line.trim_start().starts_with('[') {
                    // An array alone is a batch; inside a batch it is an invalid element.
                    assert!(matches!(message, Message::Invalid { id: None, .. }), "{line:?}");
                    continue;
                }
                let Frame::Single(single) = frame::parse(line) else {
                    panic!("a line that is a JSON value parses as a single message: {line:?}");
                };
                assert_eq!(
                    common::kind_of(message),
                    common::kind_of(&single),
                    "an element of a batch reads as it does alone: {line:?}"
                );
            }
            check_answers(messages);
        }
        (Some(_), other) => panic!("lines that are JSON values made {other:?}: {batch:?}"),
        (None, Frame::Batch(messages)) => {
            // Lines that are not values alone can still make a batch ("1,2").
            assert_eq!(counted, Some(messages.len()));
            check_answers(messages);
        }
        (None, Frame::EmptyBatch) => assert_eq!(counted, Some(0)),
        (None, Frame::ParseError) => assert_eq!(counted, None),
        (None, Frame::Single(_)) => panic!("a text starting with '[' read as a single message"),
    }
});

/// Builds the batch answer the way the gateway does (answers in request order,
/// none for notifications and responses) and checks its ids.
fn check_answers(messages: &[Message<'_>]) {
    let mut expected_ids = Vec::new();
    let mut parts = Vec::new();
    for message in messages {
        match message {
            Message::Request { id, .. } => {
                parts.push(frame::write_result(id.get(), "true"));
                expected_ids.push(id.get().to_owned());
            }
            Message::Invalid {
                id,
                reason,
                was_response: false,
            } => {
                let id = id.map(RawValue::get);
                parts.push(frame::write_error(id, &frame::invalid_request(reason)));
                expected_ids.push(id.unwrap_or("null").to_owned());
            }
            _ => {}
        }
    }
    if parts.is_empty() {
        return;
    }
    let joined = format!("[{}]", parts.join(","));
    let Frame::Batch(answers) = frame::parse(&joined) else {
        panic!("the batch answer is not a batch: {joined}");
    };
    assert_eq!(answers.len(), expected_ids.len());
    for (answer, id) in answers.iter().zip(&expected_ids) {
        match answer {
            Message::Response { id: got, .. } => assert_eq!(got.get(), id, "answer ids in request order"),
            other => panic!("an answer reads back as {other:?}"),
        }
    }
}
