//! Tokens: a fixed one or a source asked before every connection, how they
//! travel in the handshake, and when a JWT should be refreshed. The task
//! that refreshes it is in `refresher.rs`, above the calls it makes.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::error::{BoxError, Error};

/// How the token travels in the WebSocket handshake.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum TokenTransport {
    /// `Authorization: Bearer <token>`. The default.
    #[default]
    Header,
    /// The subprotocol `bearer.<token>`, offered next to `switchboard.v1`
    /// (the way browsers, which cannot set headers, send it). The server
    /// echoes only `switchboard.v1`.
    Subprotocol,
}

type SourceFn = dyn Fn() -> Pin<Box<dyn Future<Output = Result<String, BoxError>> + Send>> + Send + Sync;

/// Where the token comes from.
#[derive(Clone, Default)]
pub(crate) enum Token {
    /// No token.
    #[default]
    None,
    /// The same token for every connection.
    Fixed(String),
    /// Asked again before every connection and before the token expires.
    Source(Arc<SourceFn>),
}

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Tokens are never printed.
        match self {
            Self::None => f.write_str("None"),
            Self::Fixed(_) => f.write_str("Fixed(…)"),
            Self::Source(_) => f.write_str("Source(…)"),
        }
    }
}

impl Token {
    pub(crate) fn source<F, Fut, E>(f: F) -> Self
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<String, E>> + Send + 'static,
        E: Into<BoxError>,
    {
        Self::Source(Arc::new(move || {
            let fut = f();
            Box::pin(async move { fut.await.map_err(Into::into) })
        }))
    }

    /// The token for the next connection.
    pub(crate) async fn get(&self) -> Result<Option<String>, Error> {
        match self {
            Self::None => Ok(None),
            Self::Fixed(t) => Ok(Some(t.clone())),
            Self::Source(f) => f().await.map(Some).map_err(Error::Token),
        }
    }

    pub(crate) fn is_source(&self) -> bool {
        matches!(self, Self::Source(_))
    }
}

/// When a JWT expires, from its `exp` claim; `None` for anything else.
pub(crate) fn jwt_expiry(token: &str) -> Option<SystemTime> {
    let mut parts = token.split('.');
    let (_header, payload, _signature) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() {
        return None;
    }
    #[derive(serde::Deserialize)]
    struct Claims {
        exp: u64,
    }
    let claims: Claims = serde_json::from_slice(&base64url_decode(payload)?).ok()?;
    UNIX_EPOCH.checked_add(Duration::from_secs(claims.exp))
}

/// When to refresh a token that expires at `expiry`: a tenth of its
/// remaining life early, at least 5 s and at most 60 s before expiry.
pub(crate) fn refresh_delay(expiry: SystemTime, now: SystemTime) -> Duration {
    let left = expiry.duration_since(now).unwrap_or_default();
    let margin = (left / 10).clamp(Duration::from_secs(5), Duration::from_secs(60));
    left.saturating_sub(margin)
}

/// Decodes unpadded base64url (the JWT alphabet).
fn base64url_decode(text: &str) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(text.len() * 3 / 4);
    let (mut acc, mut bits) = (0u32, 0u32);
    for c in text.bytes().take_while(|&c| c != b'=') {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'-' | b'+' => 62,
            b'_' | b'/' => 63,
            _ => return None,
        };
        acc = (acc << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_base64url() {
        assert_eq!(base64url_decode("aGVsbG8").as_deref(), Some(&b"hello"[..]));
        assert_eq!(
            base64url_decode("aGk_-w").as_deref(),
            Some(&[0x68, 0x69, 0x3f, 0xfb][..])
        );
        assert_eq!(base64url_decode("a!"), None);
    }

    #[test]
    fn reads_the_expiry_of_a_jwt() {
        // {"alg":"none"} . {"sub":"a","exp":2000000000} . (no signature)
        let token = "eyJhbGciOiJub25lIn0.eyJzdWIiOiJhIiwiZXhwIjoyMDAwMDAwMDAwfQ.";
        assert_eq!(jwt_expiry(token), Some(UNIX_EPOCH + Duration::from_secs(2_000_000_000)));
        assert_eq!(jwt_expiry("opaque-api-key"), None);
        assert_eq!(jwt_expiry("a.b.c.d"), None);
    }

    #[test]
    fn refreshes_a_little_before_expiry() {
        let now = UNIX_EPOCH + Duration::from_secs(1_000);
        let at = |s| UNIX_EPOCH + Duration::from_secs(s);
        assert_eq!(refresh_delay(at(1_000 + 3_600), now), Duration::from_secs(3_540));
        assert_eq!(refresh_delay(at(1_000 + 200), now), Duration::from_secs(180));
        assert_eq!(refresh_delay(at(1_000 + 30), now), Duration::from_secs(25));
        assert_eq!(refresh_delay(at(1_000 + 3), now), Duration::ZERO);
        assert_eq!(refresh_delay(at(10), now), Duration::ZERO);
    }
}
