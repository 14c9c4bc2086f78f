//! JWT verification as a gateway configured with one HS256 key does it, on
//! tokens built from the input: headers and claims of every shape, signed
//! with the right key, a wrong key, or not at all, or raw text. A token is
//! accepted only when it is HS256, correctly signed, has a non-empty string
//! `sub`, a numeric `exp` not in the past and no `nbf` in the future (both
//! within the leeway), and the accepted identity says exactly that.

#![no_main]

use std::sync::OnceLock;
use std::time::{SystemTime, UNIX_EPOCH};

use arbitrary::Arbitrary;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, EncodingKey};
use libfuzzer_sys::fuzz_target;
use serde_json::{Map, Value, json};
use switchboard_server::auth::fuzzing::Hs256Verifier;

const SECRET: &str = "fuzz-secret-0123456789";

fn verifier() -> &'static Hs256Verifier {
    static V: OnceLock<Hs256Verifier> = OnceLock::new();
    V.get_or_init(|| Hs256Verifier::new(SECRET, Vec::new(), Vec::new()))
}

/// A claim's value: the shapes the JWT spec allows, and those it does not.
#[derive(Arbitrary, Debug, Clone)]
enum Claim {
    Absent,
    Null,
    Bool(bool),
    /// Seconds relative to now.
    Relative(i32),
    Int(i64),
    UInt(u64),
    Float(f64),
    Str(String),
    Array(Vec<String>),
}

impl Claim {
    fn value(&self, now: u64) -> Option<Value> {
        Some(match self {
            Claim::Absent => return None,
            Claim::Null => Value::Null,
            Claim::Bool(b) => Value::Bool(*b),
            Claim::Relative(d) => Value::from(now.saturating_add_signed(i64::from(*d))),
            Claim::Int(i) => Value::from(*i),
            Claim::UInt(u) => Value::from(*u),
            Claim::Float(f) => serde_json::Number::from_f64(*f).map_or(Value::Null, Value::Number),
            Claim::Str(s) => Value::String(s.clone()),
            Claim::Array(a) => json!(a),
        })
    }
}

#[derive(Arbitrary, Debug)]
enum HeaderShape {
    Alg {
        alg: String,
        kid: Option<String>,
        typ: Option<String>,
    },
    Hs256,
    Raw(String),
}

#[derive(Arbitrary, Debug)]
enum ClaimsShape {
    Fields {
        sub: Claim,
        exp: Claim,
        nbf: Claim,
        aud: Claim,
        iss: Claim,
        extra: Vec<(String, String)>,
    },
    Raw(String),
}

#[derive(Arbitrary, Debug)]
enum Signature {
    Right,
    WrongKey(String),
    Raw(Vec<u8>),
    None,
}

// One value per input, never stored: its size does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Arbitrary, Debug)]
enum Input {
    Built {
        header: HeaderShape,
        claims: ClaimsShape,
        signature: Signature,
    },
    Raw(String),
}

fuzz_target!(|input: Input| {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("after 1970")
        .as_secs();
    let (token, claims_text, header_text, right_key) = match &input {
        Input::Raw(text) => (text.clone(), None, None, false),
        Input::Built {
            header,
            claims,
            signature,
        } => {
            let header_text = match header {
                HeaderShape::Hs256 => r#"{"alg":"HS256","typ":"JWT"}"#.to_owned(),
                HeaderShape::Alg { alg, kid, typ } => {
                    let mut h = Map::new();
                    h.insert("alg".into(), json!(alg));
                    if let Some(k) = kid {
                        h.insert("kid".into(), json!(k));
                    }
                    if let Some(t) = typ {
                        h.insert("typ".into(), json!(t));
                    }
                    Value::Object(h).to_string()
                }
                HeaderShape::Raw(raw) => raw.clone(),
            };
            let claims_text = match claims {
                ClaimsShape::Raw(raw) => raw.clone(),
                ClaimsShape::Fields {
                    sub,
                    exp,
                    nbf,
                    aud,
                    iss,
                    extra,
                } => {
                    let mut c = Map::new();
                    for (name, claim) in [("sub", sub), ("exp", exp), ("nbf", nbf), ("aud", aud), ("iss", iss)] {
                        if let Some(v) = claim.value(now) {
                            c.insert(name.into(), v);
                        }
                    }
                    for (k, v) in extra {
                        c.insert(k.clone(), json!(v));
                    }
                    Value::Object(c).to_string()
                }
            };
            let signing_input = format!(
                "{}.{}",
                URL_SAFE_NO_PAD.encode(&header_text),
                URL_SAFE_NO_PAD.encode(&claims_text)
            );
            let sig = match signature {
                Signature::Right => jsonwebtoken::crypto::sign(
                    signing_input.as_bytes(),
                    &EncodingKey::from_secret(SECRET.as_bytes()),
                    Algorithm::HS256,
                )
                .expect("HS256 signs anything"),
                Signature::WrongKey(key) if key != SECRET => jsonwebtoken::crypto::sign(
                    signing_input.as_bytes(),
                    &EncodingKey::from_secret(key.as_bytes()),
                    Algorithm::HS256,
                )
                .expect("HS256 signs anything"),
                Signature::WrongKey(_) | Signature::None => String::new(),
                Signature::Raw(bytes) => URL_SAFE_NO_PAD.encode(bytes),
            };
            let right = matches!(signature, Signature::Right);
            (
                format!("{signing_input}.{sig}"),
                Some(claims_text),
                Some(header_text),
                right,
            )
        }
    };

    let Ok(identity) = verifier().verify(&token) else {
        return;
    };

    // Accepted: it must deserve it.
    if let (Some(header_text), Some(claims_text)) = (header_text, claims_text) {
        assert!(right_key, "accepted a token not signed with the key: {token}");
        let header: Value = serde_json::from_str(&header_text).expect("an accepted header is JSON");
        assert_eq!(header["alg"], "HS256", "accepted another algorithm: {header_text}");
        let claims: Value = serde_json::from_str(&claims_text).expect("accepted claims are JSON");
        check_claims(&claims, &identity, now);
    } else {
        // A raw token that verified: read its claims back the same way.
        let claims_b64 = token.split('.').nth(1).expect("an accepted token has claims");
        let claims: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(claims_b64).expect("base64url"))
            .expect("accepted claims are JSON");
        check_claims(&claims, &identity, now);
    }
});

/// A NumericDate (RFC 7519): seconds, possibly with a fraction; read as
/// jsonwebtoken reads it, rounded.
fn numeric_date(v: &Value) -> Option<u64> {
    v.as_u64().or_else(|| {
        v.as_f64()
            .filter(|f| f.is_finite() && *f >= 0.0 && *f < u64::MAX as f64)
            .map(|f| f.round() as u64)
    })
}

fn check_claims(claims: &Value, identity: &switchboard_server::auth::Identity, now: u64) {
    let leeway = verifier().leeway_s();
    let sub = claims["sub"].as_str().expect("accepted tokens have a string sub");
    assert!(!sub.is_empty(), "accepted an empty sub");
    assert_eq!(&*identity.user, sub);
    let exp = numeric_date(&claims["exp"]).expect("accepted tokens have a numeric exp");
    // The clock moved on a little since `now` was read: allow a second.
    assert!(
        exp.saturating_add(leeway + 1) >= now,
        "accepted an expired token: exp {exp}, now {now}"
    );
    assert_eq!(
        identity.expires_at,
        Some(exp),
        "the session expires when the token does: {}",
        claims["exp"]
    );
    if let Some(nbf) = claims.get("nbf") {
        let nbf = numeric_date(nbf).expect("an accepted nbf is a NumericDate");
        assert!(
            nbf <= now + leeway + 1,
            "accepted a token before its nbf: {nbf}, now {now}"
        );
    }
    assert_eq!(*identity.claims, *claims);
}
