//! Finding a token in a request: `Authorization: Bearer`, then `?token=`
//! (percent-decoded), then the subprotocol `bearer.<jwt>`, checked against an
//! independent reading of the same request; and the redaction of `token=`
//! in query strings before they are logged.

#![no_main]

use arbitrary::Arbitrary;
use http::{HeaderMap, HeaderValue, header};
use libfuzzer_sys::fuzz_target;
use switchboard_server::auth::fuzzing;

#[derive(Arbitrary, Debug)]
struct Request {
    authorization: Option<Vec<u8>>,
    protocols: Vec<Vec<u8>>,
    query: Option<String>,
}

/// Percent-decoding as RFC 3986 and HTML forms define it: `%` and two hex
/// digits is a byte, `+` is a space, anything else is itself.
fn decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && i + 2 < bytes.len()
            && bytes[i + 1].is_ascii_hexdigit()
            && bytes[i + 2].is_ascii_hexdigit()
        {
            let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).expect("hex digits are ASCII");
            out.push(u8::from_str_radix(hex, 16).expect("two hex digits"));
            i += 3;
        } else {
            out.push(if bytes[i] == b'+' { b' ' } else { bytes[i] });
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fuzz_target!(|request: Request| {
    let mut headers = HeaderMap::new();
    let authorization = request
        .authorization
        .as_deref()
        .and_then(|v| HeaderValue::from_bytes(v).ok());
    if let Some(v) = &authorization {
        headers.insert(header::AUTHORIZATION, v.clone());
    }
    let protocols: Vec<HeaderValue> = request
        .protocols
        .iter()
        .filter_map(|p| HeaderValue::from_bytes(p).ok())
        .collect();
    for p in &protocols {
        headers.append(header::SEC_WEBSOCKET_PROTOCOL, p.clone());
    }
    let query = request.query.as_deref();

    let expected = authorization
        .as_ref()
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(|t| t.trim().to_owned())
        .or_else(|| query.and_then(|q| q.split('&').find_map(|pair| pair.strip_prefix("token=")).map(decode)))
        .or_else(|| {
            protocols
                .iter()
                .filter_map(|v| v.to_str().ok())
                .flat_map(|v| v.split(','))
                .find_map(|p| p.trim().strip_prefix("bearer.").map(str::to_owned))
        });
    assert_eq!(fuzzing::token_from(&headers, query), expected, "{request:?}");

    // Redaction keeps the query's shape and leaves no token= value behind.
    if let Some(q) = query {
        let redacted = fuzzing::redact_query(q);
        let before: Vec<&str> = q.split('&').collect();
        let after: Vec<&str> = redacted.split('&').collect();
        assert_eq!(before.len(), after.len(), "{q:?} → {redacted:?}");
        for (b, a) in before.iter().zip(&after) {
            if b.starts_with("token=") {
                assert_eq!(*a, "token=[redacted]");
            } else {
                assert_eq!(a, b);
            }
        }
    }
});
