//! The backend's side of the scenarios that drive a server over HTTP: one
//! keep-alive HTTP/1.1 connection posting JSON, written by hand so that the
//! load spends next to nothing on it.

use std::net::SocketAddr;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::ANSWER_TIMEOUT;
use crate::error::LoadError;

/// One HTTP/1.1 answer: its status code and its body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Answer {
    /// The status code.
    pub(crate) status: u16,
    /// The body, as text.
    pub(crate) body: String,
}

impl Answer {
    /// The start of the answer, for an error message.
    pub(crate) fn excerpt(&self) -> String {
        let end = self.body.char_indices().nth(300).map_or(self.body.len(), |(i, _)| i);
        format!("HTTP {} {}", self.status, &self.body[..end])
    }
}

/// A keep-alive connection to one server.
pub(crate) struct Backend {
    addr: SocketAddr,
    stream: TcpStream,
    buffer: Vec<u8>,
}

impl Backend {
    /// Connects to `addr`.
    pub(crate) async fn connect(addr: SocketAddr) -> Result<Self, LoadError> {
        let stream = TcpStream::connect(addr).await?;
        stream.set_nodelay(true)?;
        Ok(Self {
            addr,
            stream,
            buffer: Vec::with_capacity(64 * 1024),
        })
    }

    /// Posts `body` (JSON) to `path` and waits for the whole answer.
    pub(crate) async fn post(&mut self, path: &str, body: &str) -> Result<Answer, LoadError> {
        let request = format!(
            "POST {path} HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            self.addr,
            body.len()
        );
        self.stream.write_all(request.as_bytes()).await?;
        tokio::time::timeout(ANSWER_TIMEOUT, read_response(&mut self.stream, &mut self.buffer))
            .await
            .map_err(|_| LoadError::Timeout("an HTTP answer"))?
    }
}

/// Reads one HTTP/1.1 response with a Content-Length body (none means an
/// empty one). The head is looked for in what each read adds, so a large
/// body costs one pass.
pub(crate) async fn read_response(http: &mut TcpStream, buffer: &mut Vec<u8>) -> Result<Answer, LoadError> {
    buffer.clear();
    let mut chunk = vec![0u8; 64 * 1024];
    let mut head: Option<(usize, u16, usize)> = None;
    loop {
        if head.is_none()
            && let Some(end) = buffer.windows(4).position(|w| w == b"\r\n\r\n")
        {
            head = Some(parse_head(&buffer[..end], end + 4)?);
        }
        if let Some((body_start, status, length)) = head
            && buffer.len() >= body_start + length
        {
            let body = String::from_utf8_lossy(&buffer[body_start..body_start + length]).into_owned();
            return Ok(Answer { status, body });
        }
        let n = http.read(&mut chunk).await?;
        if n == 0 {
            return Err(LoadError::Closed("an HTTP connection"));
        }
        buffer.extend_from_slice(&chunk[..n]);
    }
}

/// The status code and Content-Length of a response head.
fn parse_head(head: &[u8], body_start: usize) -> Result<(usize, u16, usize), LoadError> {
    let head = String::from_utf8_lossy(head).to_ascii_lowercase();
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| LoadError::Unexpected {
            scenario: "an HTTP answer",
            detail: format!("no status line in {head}"),
        })?;
    let length = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .and_then(|v| v.trim().parse::<usize>().ok())
        .unwrap_or(0);
    Ok((body_start, status, length))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn heads_give_status_and_length() {
        let head = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 42";
        assert_eq!(parse_head(head, 70).unwrap(), (70, 200, 42));
        assert_eq!(parse_head(b"HTTP/1.1 204 No Content", 27).unwrap(), (27, 204, 0));
        assert!(parse_head(b"garbage", 11).is_err());
    }
}
