//! Reading and writing JSON-RPC 2.0 frames.
//!
//! [`parse`] classifies one text frame without copying it: every field is a
//! borrowed slice of the input, so an id is echoed back byte for byte as the
//! peer sent it. The `write_*` functions build frames as strings directly.

use std::borrow::Cow;

use serde::Deserialize;
use serde::de::IgnoredAny;
use serde_json::value::RawValue;

use crate::codes;
use crate::error::ErrorObject;

/// What a text frame holds.
#[derive(Debug)]
pub enum Frame<'a> {
    /// A single message.
    Single(Message<'a>),
    /// A batch: each element classified on its own.
    Batch(Vec<Message<'a>>),
    /// Not JSON at all: answer `-32700` with id `null`.
    ParseError,
    /// An empty batch (`[]`): answer one `-32600` with id `null`.
    EmptyBatch,
}

/// One JSON-RPC message, classified.
#[derive(Debug)]
pub enum Message<'a> {
    /// A call that expects an answer.
    Request {
        /// The id exactly as sent (a string, a number or `null`).
        id: &'a RawValue,
        /// The method name.
        method: Cow<'a, str>,
        /// The parameters (an array or an object), if any.
        params: Option<&'a RawValue>,
    },
    /// A call without an id: it gets no answer.
    Notification {
        /// The method name.
        method: Cow<'a, str>,
        /// The parameters (an array or an object), if any.
        params: Option<&'a RawValue>,
    },
    /// An answer to one of *our* requests.
    Response {
        /// The id exactly as sent.
        id: &'a RawValue,
        /// The result, or the error the peer returned.
        outcome: Result<&'a RawValue, ErrorObject>,
    },
    /// Something that is JSON but not a valid message. `id` is the request's
    /// id when it could be read and was legal; the answer otherwise uses `null`.
    Invalid {
        /// The id to answer with, when one could be read.
        id: Option<&'a RawValue>,
        /// Why the message is invalid.
        reason: &'static str,
        /// Whether it looked like a response (responses are never answered).
        was_response: bool,
    },
}

#[derive(Deserialize)]
struct RawMessage<'a> {
    #[serde(borrow, default, deserialize_with = "present")]
    jsonrpc: Option<&'a RawValue>,
    #[serde(borrow, default, deserialize_with = "present")]
    id: Option<&'a RawValue>,
    #[serde(borrow, default, deserialize_with = "present")]
    method: Option<&'a RawValue>,
    #[serde(borrow, default, deserialize_with = "present")]
    params: Option<&'a RawValue>,
    #[serde(borrow, default, deserialize_with = "present")]
    result: Option<&'a RawValue>,
    #[serde(borrow, default, deserialize_with = "present")]
    error: Option<&'a RawValue>,
}

/// Keeps `null` as a present value instead of folding it into `None`.
fn present<'de, D>(d: D) -> Result<Option<&'de RawValue>, D::Error>
where
    D: serde::Deserializer<'de>,
{
    <&RawValue>::deserialize(d).map(Some)
}

/// Classifies a text frame.
pub fn parse(text: &str) -> Frame<'_> {
    let trimmed = text.trim_start();
    if trimmed.starts_with('[') {
        return match serde_json::from_str::<Vec<&RawValue>>(text) {
            Ok(items) if items.is_empty() => Frame::EmptyBatch,
            Ok(items) => Frame::Batch(items.into_iter().map(classify).collect()),
            Err(_) => Frame::ParseError,
        };
    }
    // The common case, one object, is read once. Anything it cannot read
    // takes the careful path, which tells bad JSON from a bad request.
    if trimmed.starts_with('{')
        && let Ok(m) = serde_json::from_str::<RawMessage<'_>>(text)
    {
        return Frame::Single(classify_message(m));
    }
    match serde_json::from_str::<&RawValue>(text) {
        Ok(raw) => Frame::Single(classify(raw)),
        Err(_) => Frame::ParseError,
    }
}

/// Counts the elements of a batch without classifying them, so that an
/// oversized batch can be refused before any work is done.
pub fn batch_len(text: &str) -> Option<usize> {
    if !text.trim_start().starts_with('[') {
        return None;
    }
    serde_json::from_str::<Vec<IgnoredAny>>(text).ok().map(|v| v.len())
}

fn invalid<'a>(id: Option<&'a RawValue>, reason: &'static str, was_response: bool) -> Message<'a> {
    Message::Invalid {
        id,
        reason,
        was_response,
    }
}

/// Classifies one JSON value as a message.
pub fn classify(raw: &RawValue) -> Message<'_> {
    let text = raw.get();
    if !text.starts_with('{') {
        return invalid(None, "a message must be a JSON object", false);
    }
    let Ok(m) = serde_json::from_str::<RawMessage<'_>>(text) else {
        return invalid(None, "a message must not repeat a member", false);
    };
    classify_message(m)
}

fn classify_message(m: RawMessage<'_>) -> Message<'_> {
    let id = m.id.filter(|id| is_legal_id(id));
    let bad_id = m.id.is_some() && id.is_none();
    if m.method.is_none() && m.result.is_none() && m.error.is_none() {
        // Neither a request nor a response, whatever its "jsonrpc" says: an
        // invalid request, answered under its id when that is legal and with
        // id null otherwise (as the specification's batch example answers
        // `{"foo": "boo"}`).
        return invalid(id, "a message needs \"method\", \"result\" or \"error\"", false);
    }
    if !is_version_2(m.jsonrpc) {
        return invalid(id, "\"jsonrpc\" must be exactly \"2.0\"", m.method.is_none());
    }
    if let Some(method) = m.method {
        if m.result.is_some() || m.error.is_some() {
            return invalid(id, "a request must not carry \"result\" or \"error\"", false);
        }
        if bad_id {
            return invalid(None, "\"id\" must be a string, a number or null", false);
        }
        let Ok(method) = serde_json::from_str::<Cow<'_, str>>(method.get()) else {
            return invalid(id, "\"method\" must be a string", false);
        };
        if let Some(p) = m.params {
            let first = p.get().as_bytes()[0];
            if first != b'[' && first != b'{' {
                return invalid(id, "\"params\" must be an array or an object", false);
            }
        }
        return match id {
            Some(id) => Message::Request {
                id,
                method,
                params: m.params,
            },
            None => Message::Notification {
                method,
                params: m.params,
            },
        };
    }
    let Some(id) = id else {
        return invalid(
            None,
            "a message needs \"method\", or \"id\" with \"result\" or \"error\"",
            m.result.is_some() || m.error.is_some(),
        );
    };
    match (m.result, m.error) {
        (Some(result), None) => Message::Response {
            id,
            outcome: Ok(result),
        },
        (None, Some(error)) => match serde_json::from_str::<ErrorObject>(error.get()) {
            Ok(e) => Message::Response { id, outcome: Err(e) },
            Err(_) => invalid(Some(id), "\"error\" must be an object with a code and a message", true),
        },
        // Both (a message with neither was refused above).
        _ => invalid(
            Some(id),
            "a response must not carry both \"result\" and \"error\"",
            true,
        ),
    }
}

/// `"jsonrpc"` must be the string "2.0", however it is spelled.
fn is_version_2(v: Option<&RawValue>) -> bool {
    match v.map(RawValue::get) {
        Some("\"2.0\"") => true,
        Some(text) if text.starts_with('"') => serde_json::from_str::<Cow<'_, str>>(text).is_ok_and(|s| s == "2.0"),
        _ => false,
    }
}

fn is_legal_id(id: &RawValue) -> bool {
    matches!(id.get().as_bytes()[0], b'"' | b'-' | b'0'..=b'9' | b'n')
}

/// Reads our own request id (an unsigned integer) from a response id.
pub fn our_id(id: &RawValue) -> Option<u64> {
    id.get().parse().ok()
}

/// A request id as a key that compares ids by JSON value, as `rpc.cancel`
/// matches them: `1` and `"1"` differ, `"\u0031"` and `"1"` are the same,
/// and so are ids written with different white space. Integers and strings
/// without escapes (almost every id) are their own key; other ids are
/// parsed and written again (a number keeps serde_json's form: `1.0` ≠ `1`).
pub fn id_key(raw: &str) -> Cow<'_, str> {
    let raw = raw.trim_matches([' ', '\t', '\n', '\r']);
    let bytes = raw.as_bytes();
    let plain_integer = {
        let digits = bytes.strip_prefix(b"-").unwrap_or(bytes);
        !digits.is_empty() && digits.iter().all(u8::is_ascii_digit)
    };
    let plain_string = bytes.len() >= 2 && bytes[0] == b'"' && !bytes[1..].contains(&b'\\');
    if plain_integer || plain_string {
        return Cow::Borrowed(raw);
    }
    match serde_json::from_str::<serde_json::Value>(raw) {
        Ok(value) => Cow::Owned(value_key(&value)),
        Err(_) => Cow::Borrowed(raw),
    }
}

/// The key of an id already parsed (`rpc.cancel`'s params): the same as
/// [`id_key`] of its text.
pub fn value_key(id: &serde_json::Value) -> String {
    id.to_string()
}

/// Appends a JSON string literal for `s` to `out`.
pub fn push_json_str(out: &mut String, s: &str) {
    if !needs_escaping(s) {
        out.push('"');
        out.push_str(s);
        out.push('"');
        return;
    }
    // Serialising a &str into a String cannot fail.
    let quoted = serde_json::to_string(s).unwrap_or_default();
    out.push_str(&quoted);
}

fn needs_escaping(s: &str) -> bool {
    s.bytes().any(|b| b == b'"' || b == b'\\' || b < 0x20)
}

/// The length of `s` as a JSON string literal when it needs no escaping
/// (otherwise a guess: builders size their buffers with it).
fn quoted_len(s: &str) -> usize {
    s.len() + 2
}

fn decimal_len(n: u64) -> usize {
    n.checked_ilog10().map_or(1, |d| d as usize + 1)
}

// The builders below size their strings exactly, so that turning one into
// shared bytes for the socket needs no second allocation.

/// `{"jsonrpc":"2.0","id":<id>,"result":<result>}`.
pub fn write_result(id: &str, result: &str) -> String {
    let mut s = String::with_capacity(33 + id.len() + result.len());
    s.push_str(r#"{"jsonrpc":"2.0","id":"#);
    s.push_str(id);
    s.push_str(r#","result":"#);
    s.push_str(result);
    s.push('}');
    s
}

/// `{"jsonrpc":"2.0","id":<id>,"error":<error>}`; `id` is `null` when absent.
pub fn write_error(id: Option<&str>, error: &ErrorObject) -> String {
    let error = serde_json::to_string(error).unwrap_or_default();
    write_error_raw(id, &error)
}

/// Like [`write_error`] with the error object already serialised.
pub fn write_error_raw(id: Option<&str>, error: &str) -> String {
    let id = id.unwrap_or("null");
    let mut s = String::with_capacity(32 + id.len() + error.len());
    s.push_str(r#"{"jsonrpc":"2.0","id":"#);
    s.push_str(id);
    s.push_str(r#","error":"#);
    s.push_str(error);
    s.push('}');
    s
}

/// A request from us: `{"jsonrpc":"2.0","id":<id>,"method":…,"params":…}`.
pub fn write_request(id: u64, method: &str, params: Option<&str>) -> String {
    let mut s = String::with_capacity(33 + decimal_len(id) + quoted_len(method) + params.map_or(0, |p| 10 + p.len()));
    s.push_str(r#"{"jsonrpc":"2.0","id":"#);
    // Written in place: no temporary string for the number.
    let _ = std::fmt::Write::write_fmt(&mut s, format_args!("{id}"));
    s.push_str(r#","method":"#);
    push_json_str(&mut s, method);
    if let Some(p) = params {
        s.push_str(r#","params":"#);
        s.push_str(p);
    }
    s.push('}');
    s
}

/// A notification: `{"jsonrpc":"2.0","method":…,"params":…}`.
pub fn write_notification(method: &str, params: Option<&str>) -> String {
    let mut s = String::with_capacity(27 + quoted_len(method) + params.map_or(0, |p| 10 + p.len()));
    s.push_str(r#"{"jsonrpc":"2.0","method":"#);
    push_json_str(&mut s, method);
    if let Some(p) = params {
        s.push_str(r#","params":"#);
        s.push_str(p);
    }
    s.push('}');
    s
}

/// The params of `rpc.message`: `{"topic":…,"data":…}`, plus `offset` and
/// `epoch` for recoverable topics.
pub fn write_publication_params(topic: &str, data: &str, position: Option<(u64, &str)>) -> String {
    let mut params = String::with_capacity(topic.len() + data.len() + 64);
    params.push_str(r#"{"topic":"#);
    push_json_str(&mut params, topic);
    params.push_str(r#","data":"#);
    params.push_str(data);
    if let Some((offset, epoch)) = position {
        params.push_str(r#","offset":"#);
        params.push_str(&offset.to_string());
        params.push_str(r#","epoch":"#);
        push_json_str(&mut params, epoch);
    }
    params.push('}');
    params
}

/// A whole `rpc.message` notification frame.
pub fn write_publication(topic: &str, data: &str, position: Option<(u64, &str)>) -> String {
    write_notification(
        crate::methods::MESSAGE,
        Some(&write_publication_params(topic, data, position)),
    )
}

/// The error answer for an [`Message::Invalid`] request.
pub fn invalid_request(reason: &str) -> ErrorObject {
    ErrorObject::with_data(codes::INVALID_REQUEST, serde_json::json!({ "reason": reason }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn single(text: &str) -> Message<'_> {
        match parse(text) {
            Frame::Single(m) => m,
            other => panic!("not single: {other:?}"),
        }
    }

    #[test]
    fn id_keys_compare_ids_by_json_value() {
        let key = |raw: &str| id_key(raw).into_owned();
        assert_eq!(key("1"), "1");
        assert_ne!(key("1"), key("\"1\""));
        assert_eq!(key("\"\\u0031\""), key("\"1\""));
        assert_eq!(key(" 7 "), key("7"));
        assert_eq!(key("\"a\\\"b\""), value_key(&serde_json::json!("a\"b")));
        assert_eq!(key("1e2"), value_key(&serde_json::from_str("1e2").unwrap()));
        for value in [
            serde_json::json!(12),
            serde_json::json!("x y"),
            serde_json::json!(-3),
            serde_json::json!(null),
        ] {
            assert_eq!(key(&value.to_string()), value_key(&value), "{value}");
        }
    }

    #[test]
    fn ids_are_kept_byte_for_byte() {
        for id in [
            "1",
            "-7",
            "1.50",
            "1e3",
            "\"a\\u0041\"",
            "null",
            "12345678901234567890123",
        ] {
            let text = format!(r#"{{"jsonrpc":"2.0","id":{id},"method":"m"}}"#);
            match single(&text) {
                Message::Request { id: got, .. } => assert_eq!(got.get(), id),
                other => panic!("{other:?}"),
            }
        }
    }

    #[test]
    fn illegal_ids_are_invalid_with_null_id() {
        for id in ["{}", "[]", "true"] {
            let text = format!(r#"{{"jsonrpc":"2.0","id":{id},"method":"m"}}"#);
            assert!(matches!(single(&text), Message::Invalid { id: None, .. }));
        }
    }

    #[test]
    fn classification() {
        assert!(matches!(parse("{"), Frame::ParseError));
        assert!(matches!(parse("[]"), Frame::EmptyBatch));
        assert!(matches!(
            single(r#"{"jsonrpc":"2.0","method":"m"}"#),
            Message::Notification { .. }
        ));
        assert!(matches!(
            single(r#"{"jsonrpc":"2.0","id":3,"result":null}"#),
            Message::Response { outcome: Ok(_), .. }
        ));
        assert!(matches!(
            single(r#"{"jsonrpc":"2.0","id":3,"error":{"code":1,"message":"x"}}"#),
            Message::Response { outcome: Err(_), .. }
        ));
        assert!(matches!(
            single(r#"{"jsonrpc":"1.0","id":3,"method":"m"}"#),
            Message::Invalid { id: Some(_), .. }
        ));
        assert!(matches!(single("5"), Message::Invalid { id: None, .. }));
        assert_eq!(batch_len("[1,2,3]"), Some(3));
    }

    #[test]
    fn an_object_with_no_method_result_or_error_is_an_invalid_request() {
        // Answered (not taken for a stray response), whatever "jsonrpc" says.
        let answered = |text| {
            matches!(
                single(text),
                Message::Invalid {
                    was_response: false,
                    ..
                }
            )
        };
        for text in [
            r#"{"foo":"boo"}"#,
            r#"{"jsonrpc":"2.0","foo":"boo"}"#,
            r#"{"jsonrpc":"1.0"}"#,
            r#"{}"#,
        ] {
            assert!(answered(text), "{text}");
            assert!(matches!(single(text), Message::Invalid { id: None, .. }), "{text}");
        }
        // A legal id is echoed, as in every other invalid request.
        assert!(answered(r#"{"id":7}"#));
        assert!(matches!(single(r#"{"id":7}"#), Message::Invalid { id: Some(_), .. }));
        // With "result" but a wrong "jsonrpc", it is still a (dropped) response.
        assert!(matches!(
            single(r#"{"jsonrpc":"1.0","id":3,"result":1}"#),
            Message::Invalid { was_response: true, .. }
        ));
    }

    #[test]
    fn builders_write_valid_json() {
        let r = write_request(7, "a\"b", Some("[1]"));
        let v: serde_json::Value = serde_json::from_str(&r).unwrap();
        assert_eq!(v["method"], "a\"b");
        let n = write_notification("x", None);
        assert_eq!(n, r#"{"jsonrpc":"2.0","method":"x"}"#);
    }
}

#[cfg(test)]
mod sizing {
    use super::*;

    #[test]
    fn builders_size_their_strings_exactly() {
        let exact = |s: String| assert_eq!(s.len(), s.capacity(), "{s}");
        exact(write_result("17", r#"{"a":1}"#));
        exact(write_result(r#""abc""#, "null"));
        exact(write_error_raw(
            Some("3"),
            r#"{"code":-32601,"message":"Method not found"}"#,
        ));
        exact(write_error_raw(None, r#"{"code":-32700,"message":"Parse error"}"#));
        for id in [0, 9, 10, 99, 12345, u64::MAX] {
            exact(write_request(id, "ui.confirm", Some("[1]")));
            exact(write_request(id, "x", None));
        }
        exact(write_notification("rpc.message", Some(r#"{"topic":"t"}"#)));
        exact(write_notification("rpc.ping", None));
        // Escaped names still come out right, if not exactly sized.
        assert_eq!(write_notification("a\"b", None), r#"{"jsonrpc":"2.0","method":"a\"b"}"#);
    }
}
