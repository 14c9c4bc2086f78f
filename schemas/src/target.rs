//! [`Target`]: who a push, call or disconnect is for.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Who a push, call, disconnect or server-side subscription is for.
///
/// On the wire: `{"session": "…"}`, `{"user": "…"}`, `{"users": ["…"]}`,
/// `{"topic": "…"}` or `"all"`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Target {
    /// One session.
    Session(String),
    /// Every session of one user.
    User(String),
    /// Every session of each of these users.
    Users(Vec<String>),
    /// Every session subscribed to a topic.
    Topic(String),
    /// Every session.
    All,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_shapes() {
        assert_eq!(serde_json::to_string(&Target::All).unwrap(), r#""all""#);
        assert_eq!(
            serde_json::to_string(&Target::User("a".into())).unwrap(),
            r#"{"user":"a"}"#
        );
        let t: Target = serde_json::from_str(r#"{"users":["a","b"]}"#).unwrap();
        assert_eq!(t, Target::Users(vec!["a".into(), "b".into()]));
    }
}
