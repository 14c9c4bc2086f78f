//! Micro-benchmarks of the wire hot path: classifying incoming frames and
//! writing outgoing ones (`switchboard_protocol::frame`). Run with
//! `cargo bench -p switchboard-server --bench frame`.

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use switchboard_protocol::frame::{self, Frame, Message};

const REQUEST: &str = r#"{"jsonrpc":"2.0","id":42,"method":"echo","params":["hello, switchboard 0123456789"]}"#;
const REQUEST_OBJECT: &str = r#"{"jsonrpc":"2.0","id":"c-17","method":"chat.send","params":{"room":"lobby","text":"the quick brown fox jumps over the lazy dog"}}"#;
const NOTIFICATION: &str = r#"{"jsonrpc":"2.0","method":"presence.ping","params":{"at":1700000000000}}"#;
const RESPONSE: &str = r#"{"jsonrpc":"2.0","id":1234,"result":{"confirmed":true,"at":1700000000000}}"#;

fn batch(n: usize) -> String {
    let items: Vec<&str> = std::iter::repeat_n(REQUEST, n).collect();
    format!("[{}]", items.join(","))
}

fn classify(c: &mut Criterion) {
    let mut group = c.benchmark_group("parse");
    for (name, text) in [
        ("request_array_params", REQUEST),
        ("request_object_params", REQUEST_OBJECT),
        ("notification", NOTIFICATION),
        ("response", RESPONSE),
    ] {
        group.throughput(Throughput::Bytes(text.len() as u64));
        group.bench_function(name, |b| {
            b.iter(|| match frame::parse(black_box(text)) {
                Frame::Single(Message::Request { id, .. }) => black_box(id.get().len()),
                Frame::Single(m) => black_box(matches!(m, Message::Response { .. }) as usize),
                _ => 0,
            })
        });
    }
    let ten = batch(10);
    group.throughput(Throughput::Elements(10));
    group.bench_function("batch_of_10", |b| {
        b.iter(|| {
            let n = frame::batch_len(black_box(&ten)).unwrap_or(0);
            match frame::parse(&ten) {
                Frame::Batch(messages) => n + messages.len(),
                _ => 0,
            }
        })
    });
    group.finish();
}

fn write(c: &mut Criterion) {
    let mut group = c.benchmark_group("write");
    let result = r#"["hello, switchboard 0123456789"]"#;
    let data = r#"{"seq":1,"text":"the quick brown fox jumps over the lazy dog 0123456789"}"#;
    group.bench_function("result", |b| {
        b.iter(|| frame::write_result(black_box("42"), black_box(result)))
    });
    group.bench_function("request", |b| {
        b.iter(|| frame::write_request(black_box(9_007_199), black_box("ui.confirm"), Some(black_box(result))))
    });
    group.bench_function("notification", |b| {
        b.iter(|| frame::write_notification(black_box("chat.message"), Some(black_box(data))))
    });
    group.bench_function("publication", |b| {
        b.iter(|| frame::write_publication(black_box("chat:lobby"), black_box(data), None))
    });
    group.bench_function("publication_recoverable", |b| {
        b.iter(|| frame::write_publication(black_box("user:alice"), black_box(data), Some((1234, "e1f2"))))
    });
    let error = switchboard_protocol::ErrorObject::new(switchboard_protocol::codes::METHOD_NOT_FOUND);
    group.bench_function("error", |b| b.iter(|| frame::write_error(Some(black_box("7")), &error)));
    group.finish();
}

criterion_group!(benches, classify, write);
criterion_main!(benches);
