//! Topic and method patterns: an exact name, or a prefix followed by `*`,
//! where `{sub}` may stand for a user's id.
//!
//! Every list of names in the configuration uses this one rule: `streams`,
//! `join_leave` and the `authorization` lists (and the patterns a token's
//! claim adds to them).

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// What `{sub}` is written as in a pattern.
const SUB: &str = "{sub}";

/// A pattern naming topics or methods: an exact name (`chat:lobby`), or a
/// prefix followed by `*` (`chat:*`, and `*` alone for every name). Only a
/// trailing `*` is a wildcard; one anywhere else is an ordinary character.
///
/// In an authorisation pattern `{sub}` stands for the user's id
/// ([`matches_for`](Self::matches_for)). The wildcard is the pattern's own,
/// read before any id is put in: an id is data, so one ending in `*` never
/// turns an exact pattern into a prefix.
///
/// It is written in the configuration as a plain string.
///
/// ```
/// use switchboard_server::config::TopicPattern;
///
/// let chat = TopicPattern::new("chat:*");
/// assert!(chat.matches("chat:lobby"));
/// assert!(!chat.matches("news"));
///
/// let inbox = TopicPattern::new("inbox:{sub}");
/// assert!(inbox.matches_for("inbox:alice", "alice"));
/// assert!(!inbox.matches_for("inbox:bob", "alice"));
/// // The id is taken literally: it cannot widen the pattern.
/// assert!(!inbox.matches_for("inbox:xavier", "x*"));
/// ```
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct TopicPattern {
    /// The pattern as written, kept whole so that it serialises back unchanged.
    text: Box<str>,
    /// Whether it ends in the wildcard `*`.
    prefix: bool,
}

impl TopicPattern {
    /// Reads a pattern. Every string is a pattern, so this cannot fail.
    pub fn new(pattern: &str) -> Self {
        Self {
            text: pattern.into(),
            prefix: pattern.ends_with('*'),
        }
    }

    /// The pattern as written.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// Whether the pattern ends in `*` and so matches every name that starts
    /// with what comes before it.
    pub fn is_prefix(&self) -> bool {
        self.prefix
    }

    /// Whether `name` matches, with `{sub}` taken as the five characters it is
    /// written with (patterns that name no user: `streams`, `join_leave`).
    pub fn matches(&self, name: &str) -> bool {
        Parts::of(&self.text, self.prefix).matches(name, None)
    }

    /// Whether `name` matches for `user`: every `{sub}` stands for `user`,
    /// taken literally.
    pub fn matches_for(&self, name: &str, user: &str) -> bool {
        Parts::of(&self.text, self.prefix).matches(name, Some(user))
    }
}

/// Whether `pattern`, read as a [`TopicPattern`], matches `name` for `user`,
/// without keeping it. For patterns held as plain strings: the lists of
/// [`Authorization`](crate::config::Authorization), whose fields are strings
/// in the public API, and the patterns a token's claim carries, which arrive
/// with each request. Reading them in place costs a suffix check and no
/// allocation, where building a [`TopicPattern`] for each would allocate on
/// every authorised call.
pub(crate) fn matches_for(pattern: &str, name: &str, user: &str) -> bool {
    Parts::of(pattern, pattern.ends_with('*')).matches(name, Some(user))
}

/// A pattern seen as what a name must start with, and whether it may go on.
struct Parts<'a> {
    /// The pattern without its wildcard.
    body: &'a str,
    prefix: bool,
}

impl<'a> Parts<'a> {
    fn of(text: &'a str, prefix: bool) -> Self {
        let body = if prefix { &text[..text.len() - 1] } else { text };
        Self { body, prefix }
    }

    /// The one matcher. With a user, `name` is walked piece by piece (the
    /// text between `{sub}`s, then the id) rather than compared with the body
    /// after substitution, which would cost a string per match; the two are
    /// the same test.
    fn matches(&self, name: &str, user: Option<&str>) -> bool {
        let rest = match user {
            None => name.strip_prefix(self.body),
            Some(user) => {
                let mut pieces = self.body.split(SUB);
                let mut rest = name.strip_prefix(pieces.next().unwrap_or_default());
                for piece in pieces {
                    rest = rest.and_then(|r| r.strip_prefix(user)?.strip_prefix(piece));
                }
                rest
            }
        };
        rest.is_some_and(|rest| self.prefix || rest.is_empty())
    }
}

impl From<&str> for TopicPattern {
    fn from(pattern: &str) -> Self {
        Self::new(pattern)
    }
}

impl From<String> for TopicPattern {
    fn from(pattern: String) -> Self {
        Self::new(&pattern)
    }
}

impl fmt::Display for TopicPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl fmt::Debug for TopicPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&*self.text, f)
    }
}

impl Serialize for TopicPattern {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.text)
    }
}

impl<'de> Deserialize<'de> for TopicPattern {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d).map(Self::from)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exact_names_and_prefixes() {
        let exact = TopicPattern::new("chat:lobby");
        assert!(!exact.is_prefix());
        assert!(exact.matches("chat:lobby"));
        assert!(!exact.matches("chat:lobby2"));
        assert!(!exact.matches("chat:lob"));

        let prefix = TopicPattern::new("chat:*");
        assert!(prefix.is_prefix());
        assert!(prefix.matches("chat:"));
        assert!(prefix.matches("chat:lobby"));
        assert!(!prefix.matches("chat"));
        assert!(!prefix.matches("news:chat:x"));

        let everything = TopicPattern::new("*");
        assert!(everything.matches(""));
        assert!(everything.matches("anything"));

        // Only a trailing `*` is a wildcard.
        let inner = TopicPattern::new("a*b");
        assert!(inner.matches("a*b"));
        assert!(!inner.matches("axb"));
        let empty = TopicPattern::new("");
        assert!(empty.matches(""));
        assert!(!empty.matches("a"));
    }

    #[test]
    fn sub_is_literal_without_a_user() {
        let p = TopicPattern::new("inbox:{sub}");
        assert!(p.matches("inbox:{sub}"));
        assert!(!p.matches("inbox:alice"));
    }

    #[test]
    fn sub_stands_for_the_user() {
        let exact = TopicPattern::new("inbox:{sub}");
        assert!(exact.matches_for("inbox:alice", "alice"));
        assert!(!exact.matches_for("inbox:alice2", "alice"));
        assert!(!exact.matches_for("inbox:bob", "alice"));

        let prefix = TopicPattern::new("files:{sub}/*");
        assert!(prefix.matches_for("files:alice/a.txt", "alice"));
        assert!(prefix.matches_for("files:alice/", "alice"));
        assert!(!prefix.matches_for("files:alice", "alice"));
        assert!(!prefix.matches_for("files:bob/a.txt", "alice"));

        let twice = TopicPattern::new("dm:{sub}:{sub}");
        assert!(twice.matches_for("dm:a:a", "a"));
        assert!(!twice.matches_for("dm:a:b", "a"));

        // A pattern without `{sub}` matches the same for every user.
        assert!(TopicPattern::new("chat:*").matches_for("chat:x", "anyone"));
    }

    #[test]
    fn a_user_id_never_widens_a_pattern() {
        // The wildcard is read before the id goes in: an id ending in `*`
        // keeps an exact pattern exact.
        let exact = TopicPattern::new("inbox:{sub}");
        assert!(!exact.matches_for("inbox:victim", "v*"));
        assert!(exact.matches_for("inbox:v*", "v*"));
        // `{sub}` followed by the pattern's own `*`: a prefix of the id's
        // names, and with an empty id still no more than the pattern allows.
        let own = TopicPattern::new("inbox:{sub}*");
        assert!(own.is_prefix());
        assert!(own.matches_for("inbox:alice", "alice"));
        assert!(own.matches_for("inbox:alice:archive", "alice"));
        assert!(!own.matches_for("inbox:bob", "alice"));
        assert!(!own.matches_for("inbox:victim", "v*"));
        assert!(own.matches_for("inbox:v*:x", "v*"));
        let suffix = TopicPattern::new("*{sub}");
        assert!(!suffix.is_prefix());
        assert!(!suffix.matches_for("anything", ""));
        assert!(suffix.matches_for("*alice", "alice"));
    }

    #[test]
    fn the_borrowed_reading_agrees_with_the_type() {
        let patterns = [
            "",
            "*",
            "a",
            "a*",
            "a*b",
            "{sub}",
            "x:{sub}",
            "x:{sub}*",
            "*{sub}",
            "{sub}{sub}*",
        ];
        let names = ["", "a", "ab", "a*b", "x:", "x:u", "x:u*", "x:uv", "*u", "uu", "uux"];
        for pattern in patterns {
            for name in names {
                for user in ["", "u", "u*"] {
                    assert_eq!(
                        matches_for(pattern, name, user),
                        TopicPattern::new(pattern).matches_for(name, user),
                        "{pattern:?} {name:?} {user:?}"
                    );
                    // The documented rule: substitute, then compare or test the prefix.
                    let expected = match pattern.strip_suffix('*') {
                        Some(prefix) => name.starts_with(&prefix.replace(SUB, user)),
                        None => name == pattern.replace(SUB, user),
                    };
                    assert_eq!(
                        matches_for(pattern, name, user),
                        expected,
                        "{pattern:?} {name:?} {user:?}"
                    );
                }
            }
        }
    }

    #[test]
    fn it_is_written_as_a_string() {
        let p: TopicPattern = serde_json::from_value(serde_json::json!("chat:*")).unwrap();
        assert_eq!(p, TopicPattern::new("chat:*"));
        assert_eq!(serde_json::to_value(&p).unwrap(), serde_json::json!("chat:*"));
        assert_eq!(p.to_string(), "chat:*");
        assert_eq!(format!("{p:?}"), "\"chat:*\"");
        assert_eq!(p.as_str(), "chat:*");
    }
}
