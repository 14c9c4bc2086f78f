//! Messages on their way out: serialised once, deflated at most once.

use std::fmt;
use std::sync::{Arc, OnceLock};

use bytes::Bytes;
use tungstenite::Utf8Bytes;

use super::deflate;

/// A text message to send to one session or to many.
///
/// Cloning shares the bytes. A message made for many sessions
/// ([`Outgoing::shared`], as every frame the hub fans out is) also shares its
/// deflated form: the first session that negotiated compression and receives
/// it deflates it, every other one reuses the result, and a message that no
/// such session receives is never deflated.
#[derive(Clone)]
pub struct Outgoing {
    text: Utf8Bytes,
    /// The deflated form, made on first need (`None` inside: it would not
    /// be smaller). Absent for a message made for one session, which is
    /// deflated at most once anyway.
    deflated: Option<Arc<OnceLock<Option<Bytes>>>>,
}

impl Outgoing {
    /// A message that many sessions may receive: its deflated form is made
    /// once, on first need, and shared.
    pub fn shared(text: Utf8Bytes) -> Self {
        Self {
            text,
            deflated: Some(Arc::default()),
        }
    }

    /// The message's text.
    pub fn as_str(&self) -> &str {
        self.text.as_str()
    }

    /// The message's length in bytes, uncompressed.
    pub fn len(&self) -> usize {
        self.text.len()
    }

    /// Whether the message is empty.
    pub fn is_empty(&self) -> bool {
        self.text.is_empty()
    }

    /// The message as it goes to a session that deflates messages of
    /// `threshold` bytes or more (`None`: one that did not negotiate
    /// compression).
    pub(crate) fn wire(&self, threshold: Option<usize>) -> Wire {
        let deflated = match threshold {
            Some(threshold) if self.text.len() >= threshold => match &self.deflated {
                Some(shared) => shared.get_or_init(|| deflate::deflate(self.text.as_bytes())).clone(),
                None => deflate::deflate(self.text.as_bytes()),
            },
            _ => None,
        };
        match deflated {
            Some(bytes) => Wire::Deflated(bytes),
            None => Wire::Text(self.text.clone()),
        }
    }
}

impl From<Utf8Bytes> for Outgoing {
    fn from(text: Utf8Bytes) -> Self {
        Self { text, deflated: None }
    }
}

impl From<String> for Outgoing {
    fn from(text: String) -> Self {
        Utf8Bytes::from(text).into()
    }
}

impl From<&'static str> for Outgoing {
    fn from(text: &'static str) -> Self {
        Utf8Bytes::from_static(text).into()
    }
}

impl PartialEq for Outgoing {
    fn eq(&self, other: &Self) -> bool {
        self.text == other.text
    }
}

impl Eq for Outgoing {}

impl fmt::Debug for Outgoing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.text.as_str(), f)
    }
}

/// A message as one session sends it: its text, or its deflated form (sent
/// with RSV1 set).
#[derive(Debug, Clone)]
pub(crate) enum Wire {
    Text(Utf8Bytes),
    Deflated(Bytes),
}

impl Wire {
    /// The payload's length: what the session will write.
    pub(crate) fn len(&self) -> usize {
        match self {
            Self::Text(text) => text.len(),
            Self::Deflated(bytes) => bytes.len(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_shared_message_is_deflated_once_and_only_when_asked() {
        let text = format!("{{\"data\":\"{}\"}}", "hello ".repeat(100));
        let message = Outgoing::shared(text.clone().into());
        let copies: Vec<Outgoing> = (0..3).map(|_| message.clone()).collect();
        // A plain session, and a message under the threshold, never deflate it.
        assert!(matches!(copies[0].wire(None), Wire::Text(_)));
        assert!(matches!(copies[0].wire(Some(text.len() + 1)), Wire::Text(_)));
        assert!(message.deflated.as_ref().unwrap().get().is_none());
        let first = copies[1].wire(Some(256));
        let second = copies[2].wire(Some(256));
        match (first, second) {
            (Wire::Deflated(a), Wire::Deflated(b)) => {
                assert_eq!(a.as_ptr(), b.as_ptr(), "one deflated buffer, shared");
                assert!(a.len() < text.len() / 4);
            }
            other => panic!("{other:?}"),
        }
    }
}
