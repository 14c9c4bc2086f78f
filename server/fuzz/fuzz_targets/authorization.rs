//! Authorisation patterns: an exact name, or a prefix followed by `*`, with
//! `{sub}` standing for the user's id, from the configuration and from the
//! token's `switchboard` claim. A user's id is data, never pattern syntax:
//! checked against an independent matcher.

#![no_main]

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use serde_json::json;
use switchboard_server::auth::Authorization;
use switchboard_server::auth::fuzzing;

#[derive(Arbitrary, Debug)]
struct Input {
    configured: Vec<String>,
    from_claims: Option<Vec<String>>,
    action: u8,
    name: String,
    user: String,
}

/// The documented rule: a pattern ending in `*` matches names that start
/// with what comes before the `*`; any other pattern matches one name; in
/// both, `{sub}` is replaced by the user's id, taken literally.
fn matches(pattern: &str, name: &str, user: &str) -> bool {
    match pattern.strip_suffix('*') {
        Some(prefix) => name.starts_with(&prefix.replace("{sub}", user)),
        None => name == pattern.replace("{sub}", user),
    }
}

fuzz_target!(|input: Input| {
    let configured = input.configured;
    let authorization = Authorization {
        subscribe: configured.clone(),
        publish: configured.clone(),
        methods: configured.clone(),
        presence: Some(configured.clone()),
        history: Some(configured.clone()),
        claim: "switchboard".to_owned(),
    };
    let key = ["subscribe", "publish", "methods", "history", "presence"][usize::from(input.action % 5)];
    let claims = input
        .from_claims
        .as_ref()
        .map(|patterns| json!({ "switchboard": { key: patterns } }));
    let got = fuzzing::allows(&authorization, input.action, &input.name, &input.user, claims.as_ref());
    let expected = configured
        .iter()
        .chain(input.from_claims.iter().flatten())
        .any(|p| matches(p, &input.name, &input.user));
    assert_eq!(
        got, expected,
        "{:?} for {:?} as {:?}",
        input.name, configured, input.user
    );
});
