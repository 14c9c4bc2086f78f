//! What the frame targets share: an independent reading of a message,
//! through `serde_json::Value` and a member list, to compare with the
//! classifier's.

use serde_json::Value;
use serde_json::value::RawValue;
use switchboard_protocol::frame::Message;

/// The members the classifier knows; a repeated one makes a message invalid.
const KNOWN: [&str; 6] = ["jsonrpc", "id", "method", "params", "result", "error"];

/// What the reference reading says a message is.
#[derive(Debug, PartialEq, Eq)]
pub enum Kind {
    Request {
        id: Value,
        method: String,
        params: Option<Value>,
    },
    Notification {
        method: String,
        params: Option<Value>,
    },
    ResponseOk {
        id: Value,
        result: Value,
    },
    ResponseErr {
        id: Value,
        error: Value,
    },
    Invalid {
        id: Option<Value>,
        was_response: bool,
    },
}

/// The members of a JSON object in order, each with its raw text, or `None`
/// when `text` is not an object.
pub fn members(text: &str) -> Option<Vec<(String, &RawValue)>> {
    struct Members;
    impl<'de> serde::de::Visitor<'de> for Members {
        type Value = Vec<(String, &'de RawValue)>;
        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("an object")
        }
        fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
            let mut out = Vec::new();
            while let Some(entry) = map.next_entry::<String, &'de RawValue>()? {
                out.push(entry);
            }
            Ok(out)
        }
    }
    let mut de = serde_json::Deserializer::from_str(text);
    let found = serde::Deserializer::deserialize_map(&mut de, Members).ok()?;
    de.end().ok()?;
    Some(found)
}

fn repeats(members: &[(String, &RawValue)], names: &[&str]) -> bool {
    names
        .iter()
        .any(|name| members.iter().filter(|(k, _)| k == name).count() > 1)
}

fn legal_id(v: &Value) -> bool {
    matches!(v, Value::String(_) | Value::Number(_) | Value::Null)
}

/// An error object the way the protocol defines it: `code` an integer that
/// fits `i32`, `message` a string, `data` anything, no member repeated.
fn error_object(raw: &RawValue, value: &Value) -> bool {
    let Some(members) = members(raw.get()) else {
        return false;
    };
    if repeats(&members, &["code", "message", "data"]) {
        return false;
    }
    let code_ok = value
        .get("code")
        .and_then(Value::as_i64)
        .is_some_and(|c| i32::try_from(c).is_ok());
    code_ok && value.get("message").is_some_and(Value::is_string)
}

/// Reads one message independently of the classifier. `None` when the
/// reference cannot read it (nesting deeper than serde_json's `Value`
/// allows, numbers out of range, lone surrogates): then nothing is compared.
pub fn reference(raw: &RawValue) -> Option<Kind> {
    let value: Value = serde_json::from_str(raw.get()).ok()?;
    let Value::Object(obj) = &value else {
        return Some(Kind::Invalid {
            id: None,
            was_response: false,
        });
    };
    let members = members(raw.get())?;
    if repeats(&members, &KNOWN) {
        return Some(Kind::Invalid {
            id: None,
            was_response: false,
        });
    }
    let id = obj.get("id").filter(|id| legal_id(id)).cloned();
    let bad_id = obj.contains_key("id") && id.is_none();
    let has_answer = obj.contains_key("result") || obj.contains_key("error");
    // Neither a request nor a response, whatever "jsonrpc" says: an invalid
    // request to answer (under its id when that is legal).
    if !obj.contains_key("method") && !has_answer {
        return Some(Kind::Invalid {
            id,
            was_response: false,
        });
    }
    if obj.get("jsonrpc") != Some(&Value::from("2.0")) {
        return Some(Kind::Invalid {
            id,
            was_response: !obj.contains_key("method"),
        });
    }
    if let Some(method) = obj.get("method") {
        if has_answer {
            return Some(Kind::Invalid {
                id,
                was_response: false,
            });
        }
        if bad_id {
            return Some(Kind::Invalid {
                id: None,
                was_response: false,
            });
        }
        let Some(method) = method.as_str() else {
            return Some(Kind::Invalid {
                id,
                was_response: false,
            });
        };
        let params = obj.get("params").cloned();
        if params.as_ref().is_some_and(|p| !p.is_array() && !p.is_object()) {
            return Some(Kind::Invalid {
                id,
                was_response: false,
            });
        }
        let method = method.to_owned();
        return Some(match id {
            Some(id) => Kind::Request { id, method, params },
            None => Kind::Notification { method, params },
        });
    }
    let Some(id) = id else {
        return Some(Kind::Invalid {
            id: None,
            was_response: has_answer,
        });
    };
    let raw_of = |name: &str| members.iter().find(|(k, _)| k == name).map(|(_, v)| *v);
    Some(match (obj.get("result"), obj.get("error")) {
        (Some(result), None) => Kind::ResponseOk {
            id,
            result: result.clone(),
        },
        (None, Some(error)) if error_object(raw_of("error")?, error) => Kind::ResponseErr {
            id,
            error: error.clone(),
        },
        (None, Some(_)) | (Some(_), Some(_)) => Kind::Invalid {
            id: Some(id),
            was_response: true,
        },
        (None, None) => Kind::Invalid {
            id: Some(id),
            was_response: false,
        },
    })
}

/// A raw value as a `Value`; one that `Value` cannot hold (1e400) is kept as
/// its text, so that two readings of the same bytes still compare equal.
fn value_of(raw: &RawValue) -> Value {
    serde_json::from_str(raw.get()).unwrap_or_else(|_| Value::String(format!("raw:{}", raw.get())))
}

/// The classifier's verdict in the reference's terms.
pub fn kind_of(message: &Message<'_>) -> Kind {
    match message {
        Message::Request { id, method, params } => Kind::Request {
            id: value_of(id),
            method: method.to_string(),
            params: params.map(value_of),
        },
        Message::Notification { method, params } => Kind::Notification {
            method: method.to_string(),
            params: params.map(value_of),
        },
        Message::Response {
            id,
            outcome: Ok(result),
        } => Kind::ResponseOk {
            id: value_of(id),
            result: value_of(result),
        },
        Message::Response {
            id,
            outcome: Err(error),
        } => Kind::ResponseErr {
            id: value_of(id),
            error: serde_json::to_value(error).expect("an error object serialises"),
        },
        Message::Invalid { id, was_response, .. } => Kind::Invalid {
            id: id.map(value_of),
            was_response: *was_response,
        },
    }
}

/// Compares the classifier with the reference, when the reference can read the message.
pub fn check_message(raw: &RawValue, message: &Message<'_>) {
    // An id handed back must be legal JSON-RPC and echo the peer's bytes.
    if let Message::Request { id, .. } | Message::Response { id, .. } = message {
        assert!(raw.get().contains(id.get()), "the id is a slice of the message");
    }
    let Some(expected) = reference(raw) else { return };
    let mut got = kind_of(message);
    // The error object is compared as the peer sent it: the classifier keeps
    // `code`, `message` and `data` and drops unknown members.
    if let (Kind::ResponseErr { error: got_error, .. }, Kind::ResponseErr { error: sent, .. }) = (&mut got, &expected) {
        let mut known = serde_json::Map::new();
        for key in ["code", "message", "data"] {
            if let Some(v) = sent.get(key) {
                known.insert(key.to_owned(), v.clone());
            }
        }
        if sent.get("data") == Some(&Value::Null) {
            // `data: null` reads as no data.
            known.remove("data");
        }
        assert_eq!(*got_error, Value::Object(known), "the error object: {}", raw.get());
        return;
    }
    assert_eq!(got, expected, "classification of {}", raw.get());
}
