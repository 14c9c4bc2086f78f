//! permessage-deflate (RFC 7692): the negotiation, and each message deflated
//! or inflated on its own.
//!
//! The gateway always answers with `server_no_context_takeover` and
//! `client_no_context_takeover`, and accepts only offers that leave the
//! server's window at 15 bits. Every message is then a complete raw DEFLATE
//! stream of its own, which is what lets a message sent to many sessions be
//! deflated once and the result shared, and what keeps an idle session free
//! of any compressor state: the compressor and the decompressor are one per
//! thread, reset before each message.

use std::cell::RefCell;

use axum::http::{HeaderMap, header};
use bytes::Bytes;
use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress, Status};

use super::read::ReadError;

/// The extension's name in `Sec-WebSocket-Extensions`.
const NAME: &str = "permessage-deflate";

/// The answer to an accepted offer. RFC 7692 §7.1.1.1 and §7.1.1.2 let the
/// server add both parameters whether or not the client offered them.
pub(crate) const AGREED: &str = "permessage-deflate; server_no_context_takeover; client_no_context_takeover";

/// The bytes a sender strips from the end of each message and a receiver
/// appends before inflating (RFC 7692 §7.2.1 and §7.2.2).
const TAIL: [u8; 4] = [0x00, 0x00, 0xFF, 0xFF];

/// How much inflated output is made room for at a time (more only as it
/// turns out to be needed, never past the message limit).
const INFLATE_STEP: usize = 16 * 1024;

/// The largest deflate buffer a thread keeps between messages.
const KEPT_BUFFER: usize = 64 * 1024;

/// Whether the client's `Sec-WebSocket-Extensions` (every line of it) holds
/// an offer of permessage-deflate that the gateway can accept. Offers are
/// tried in the client's order; one that the gateway cannot accept (a
/// smaller server window, an unknown or repeated parameter, a malformed
/// value) is passed over, never refused.
pub(crate) fn offered(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::SEC_WEBSOCKET_EXTENSIONS)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| split_quoted(value, ','))
        .any(acceptable)
}

/// Splits `s` at `sep`, except inside a quoted string.
fn split_quoted(s: &str, sep: char) -> impl Iterator<Item = &str> {
    let mut quoted = false;
    let mut escaped = false;
    s.split(move |c: char| {
        if escaped {
            escaped = false;
        } else if quoted && c == '\\' {
            escaped = true;
        } else if c == '"' {
            quoted = !quoted;
        } else if c == sep && !quoted {
            return true;
        }
        false
    })
}

/// Whether one offer (`name; param; param=value …`) can be accepted.
fn acceptable(offer: &str) -> bool {
    let mut parts = split_quoted(offer, ';').map(str::trim);
    if !parts.next().is_some_and(|name| name.eq_ignore_ascii_case(NAME)) {
        return false;
    }
    let mut seen = [false; 4];
    for param in parts {
        let (name, value) = match param.split_once('=') {
            Some((name, value)) => (name.trim(), Some(unquote(value.trim()))),
            None => (param, None),
        };
        let (index, valid) = match name.to_ascii_lowercase().as_str() {
            "server_no_context_takeover" => (0, value.is_none()),
            "client_no_context_takeover" => (1, value.is_none()),
            // The server deflates every message with a 15-bit window, once
            // for all its receivers: a client that asks for less is declined.
            "server_max_window_bits" => (2, value.flatten().and_then(window_bits) == Some(15)),
            // Without a value it only says the client could take a smaller
            // window; the server never asks for one, so never answers it.
            "client_max_window_bits" => (3, value.is_none_or(|v| v.and_then(window_bits).is_some())),
            _ => return false,
        };
        if !valid || std::mem::replace(&mut seen[index], true) {
            return false;
        }
    }
    true
}

/// A parameter's value without its quotes (RFC 7692 §7.1: a value may be a
/// token or a quoted string whose content is a token); `None` when it is
/// malformed.
fn unquote(value: &str) -> Option<&str> {
    match value.strip_prefix('"') {
        Some(rest) => rest.strip_suffix('"').filter(|inner| !inner.contains(['"', '\\'])),
        None => Some(value),
    }
}

/// A window size: 8 to 15, written as a plain decimal number.
fn window_bits(value: &str) -> Option<u8> {
    if value.is_empty() || value.len() > 2 || !value.bytes().all(|b| b.is_ascii_digit()) || value.starts_with('0') {
        return None;
    }
    value.parse().ok().filter(|bits| (8..=15).contains(bits))
}

thread_local! {
    /// One compressor per thread, reset before each message, with the
    /// buffer it writes into (kept at its largest size on this thread; the
    /// result is copied out at its exact size).
    static DEFLATER: RefCell<(Compress, Vec<u8>)> =
        RefCell::new((Compress::new(Compression::default(), false), Vec::new()));
    /// One decompressor per thread, reset before each message.
    static INFLATER: RefCell<Decompress> = RefCell::new(Decompress::new(false));
}

/// `message` deflated on its own, ready to be sent with RSV1 set; `None`
/// when deflating would not make it smaller (it is then sent as it is).
pub(crate) fn deflate(message: &[u8]) -> Option<Bytes> {
    // Room for the message as it is and the flush's marker: a result that
    // does not fit is no smaller than the message anyway.
    let deflated = deflate_within(message, message.len() + TAIL.len()).filter(|d| d.len() < message.len());
    let hot = crate::metrics::hot();
    match &deflated {
        Some(bytes) => {
            hot.compressed.increment(1);
            hot.compressed_bytes_in.increment(message.len() as u64);
            hot.compressed_bytes_out.increment(bytes.len() as u64);
        }
        None => hot.incompressible.increment(1),
    }
    deflated
}

/// `message` deflated on its own even when that makes it larger (for the
/// verification echo, which deflates every message it can).
pub(crate) fn deflate_always(message: &[u8]) -> Option<Bytes> {
    // Stored blocks cost 5 bytes per 64 KiB, and a sync flush a few more.
    deflate_within(message, message.len() + message.len() / 1024 + 64)
}

/// `message` deflated, the flush's marker stripped, if the result with its
/// marker fits in `room` bytes.
fn deflate_within(message: &[u8], room: usize) -> Option<Bytes> {
    DEFLATER.with_borrow_mut(|(compressor, out)| {
        compressor.reset();
        out.clear();
        out.reserve(room);
        let room = out.capacity();
        let status = compressor.compress_vec(message, out, FlushCompress::Sync).ok()?;
        // With room left after a sync flush, the whole message is in `out`,
        // ending with the flush's marker, which is not sent.
        let whole = status == Status::Ok && out.len() < room && compressor.total_in() == message.len() as u64;
        let deflated = (whole && out.ends_with(&TAIL)).then(|| Bytes::copy_from_slice(&out[..out.len() - TAIL.len()]));
        if out.capacity() > KEPT_BUFFER {
            // A thread does not keep the buffer of its largest message.
            *out = Vec::new();
        }
        deflated
    })
}

/// Inflates one message received with RSV1 set into `out` (emptied first).
/// Nothing past `max` bytes is ever inflated: a message that would inflate
/// to more is [`ReadError::TooBig`]; data that does not inflate (corrupt, or
/// referring back into an earlier message, which no context takeover
/// forbids) is [`ReadError::Inflate`].
pub(crate) fn inflate(message: &[u8], max: usize, out: &mut Vec<u8>) -> Result<(), ReadError> {
    out.clear();
    if out.capacity() > max + 1 {
        // The inflater fills whatever room the buffer has: a larger one kept
        // from before would let it go past the limit.
        *out = Vec::new();
    }
    INFLATER.with_borrow_mut(|inflater| {
        inflater.reset(false);
        for input in [message, &TAIL[..]] {
            if feed(inflater, input, max, out)? {
                // The client ended the stream itself (a final block): what
                // follows, the appended tail included, is not read.
                break;
            }
        }
        Ok(())
    })
}

/// Inflates all of `input` into `out`; whether the stream ended.
fn feed(inflater: &mut Decompress, mut input: &[u8], max: usize, out: &mut Vec<u8>) -> Result<bool, ReadError> {
    loop {
        if out.len() == out.capacity() {
            // One byte past the limit is room enough to tell that it is passed.
            // (`out` never holds more than `max` bytes here.)
            out.reserve_exact((max + 1 - out.len()).min(INFLATE_STEP.max(out.len())));
        }
        let (taken, made) = (inflater.total_in(), inflater.total_out());
        let status = inflater
            .decompress_vec(input, out, FlushDecompress::Sync)
            .map_err(|_| ReadError::Inflate)?;
        if out.len() > max {
            return Err(ReadError::TooBig);
        }
        input = &input[(inflater.total_in() - taken) as usize..];
        match status {
            Status::StreamEnd => return Ok(true),
            // Everything is taken and the output had room to spare: done.
            _ if input.is_empty() && out.len() < out.capacity() => return Ok(false),
            // Room and input, yet no progress: the data is not DEFLATE.
            _ if inflater.total_in() == taken && inflater.total_out() == made && out.len() < out.capacity() => {
                return Err(ReadError::Inflate);
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use axum::http::{HeaderMap, HeaderValue, header};

    use super::*;

    fn offers(lines: &[&str]) -> bool {
        let mut headers = HeaderMap::new();
        for line in lines {
            headers.append(header::SEC_WEBSOCKET_EXTENSIONS, HeaderValue::from_str(line).unwrap());
        }
        offered(&headers)
    }

    #[test]
    fn offers_are_accepted_only_with_a_full_server_window() {
        let accepted = [
            "permessage-deflate",
            "permessage-deflate; client_max_window_bits",
            "Permessage-Deflate; Client_Max_Window_Bits=10",
            "permessage-deflate; client_max_window_bits=\"8\"",
            "permessage-deflate; server_max_window_bits=15",
            "permessage-deflate;server_no_context_takeover;client_no_context_takeover",
            "x-webkit-deflate-frame, permessage-deflate",
            // The first offer asks for a smaller server window; the second is taken.
            "permessage-deflate; server_max_window_bits=10, permessage-deflate",
        ];
        for offer in accepted {
            assert!(offers(&[offer]), "{offer}");
        }
        let declined = [
            "",
            "x-webkit-deflate-frame",
            "permessage-deflate; server_max_window_bits=10",
            "permessage-deflate; server_max_window_bits",
            "permessage-deflate; server_max_window_bits=015",
            "permessage-deflate; client_max_window_bits=16",
            "permessage-deflate; client_max_window_bits=7",
            "permessage-deflate; client_max_window_bits=\"1\"0\"",
            "permessage-deflate; server_no_context_takeover=1",
            "permessage-deflate; client_no_context_takeover; client_no_context_takeover",
            "permessage-deflate; mystery",
            "permessage-deflate; server_max_window_bits=9, permessage-deflate; mystery",
        ];
        for offer in declined {
            assert!(!offers(&[offer]), "{offer}");
        }
        // Offers may come on several lines.
        assert!(offers(&["permessage-deflate; mystery", "permessage-deflate"]));
    }

    #[test]
    fn a_message_inflates_to_what_was_deflated() {
        let message = "{\"jsonrpc\":\"2.0\",\"method\":\"chat\",\"params\":{\"text\":\"hello\"}}".repeat(20);
        let deflated = deflate(message.as_bytes()).expect("repetitive JSON deflates");
        assert!(deflated.len() < message.len() / 4, "{} bytes", deflated.len());
        let mut out = Vec::new();
        inflate(&deflated, 1 << 20, &mut out).unwrap();
        assert_eq!(out, message.as_bytes());
        // Exactly at the limit is allowed; a byte less is too big.
        inflate(&deflated, message.len(), &mut out).unwrap();
        assert!(matches!(
            inflate(&deflated, message.len() - 1, &mut out),
            Err(ReadError::TooBig)
        ));
    }

    #[test]
    fn what_does_not_shrink_is_not_deflated() {
        assert_eq!(deflate(b"ab"), None);
        // xorshift64: bytes without patterns deflate can use.
        let mut state = 0x9E37_79B9_7F4A_7C15u64;
        let noise: Vec<u8> = (0..2000)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                (state >> 56) as u8
            })
            .collect();
        assert_eq!(deflate(&noise), None);
        // The verification echo deflates them all the same.
        let mut out = Vec::new();
        for message in [&b"ab"[..], &noise] {
            let deflated = deflate_always(message).expect("deflates");
            assert!(deflated.len() > message.len());
            inflate(&deflated, 1 << 20, &mut out).unwrap();
            assert_eq!(out, message);
        }
    }

    #[test]
    fn a_bomb_is_stopped_at_the_limit() {
        // A megabyte of zeros deflates to about a kilobyte.
        let zeros = vec![0u8; 1 << 20];
        let bomb = deflate(&zeros).unwrap();
        assert!(bomb.len() < 2048, "{}", bomb.len());
        let mut out = Vec::new();
        assert!(matches!(inflate(&bomb, 64 * 1024, &mut out), Err(ReadError::TooBig)));
        assert!(out.capacity() <= 64 * 1024 + 1, "{}", out.capacity());
    }

    #[test]
    fn arbitrary_and_mangled_input_ends_within_the_limit() {
        // xorshift64: a fixed sequence, so a failure reproduces.
        let mut state = 0x2545_F491_4F6C_DD1Du64;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let text = "{\"jsonrpc\":\"2.0\",\"method\":\"rpc.message\",\"params\":{\"data\":\"ab\"}}".repeat(30);
        let valid = deflate(text.as_bytes()).unwrap();
        let mut out = Vec::new();
        for round in 0..3000 {
            let input: Vec<u8> = if round % 2 == 0 {
                // Random bytes of random length.
                (0..next() % 300).map(|_| next() as u8).collect()
            } else {
                // A valid message with a few bytes changed, or cut short.
                let mut mangled = valid.to_vec();
                for _ in 0..1 + next() % 3 {
                    let at = (next() as usize) % mangled.len();
                    mangled[at] ^= 1 << (next() % 8);
                }
                mangled.truncate(1 + (next() as usize) % mangled.len());
                mangled
            };
            let max = (next() % 4096) as usize;
            match inflate(&input, max, &mut out) {
                Ok(()) => assert!(out.len() <= max, "{} bytes over a limit of {max}", out.len()),
                Err(ReadError::TooBig) => assert!(out.len() <= max + 1),
                Err(ReadError::Inflate) => {}
                Err(other) => panic!("{other}"),
            }
            assert!(
                out.capacity() <= max + 1,
                "{} bytes of room for a limit of {max}",
                out.capacity()
            );
        }
    }

    #[test]
    fn corrupt_data_and_back_references_do_not_inflate() {
        let mut out = Vec::new();
        // Block type 3 does not exist.
        assert!(matches!(
            inflate(&[0xFF, 0xFF, 0xFF], 1024, &mut out),
            Err(ReadError::Inflate)
        ));
        // A message that refers back into an earlier one: "abcabc…" whose
        // second half is a copy of 3 bytes from before the message began.
        let mut compressor = Compress::new(Compression::default(), false);
        let mut first = Vec::with_capacity(64);
        compressor
            .compress_vec(b"abcdefgh", &mut first, FlushCompress::Sync)
            .unwrap();
        let mut second = Vec::with_capacity(64);
        compressor
            .compress_vec(b"abcdefgh", &mut second, FlushCompress::Sync)
            .unwrap();
        let second = &second[..second.len() - TAIL.len()];
        assert!(matches!(inflate(second, 1024, &mut out), Err(ReadError::Inflate)));
    }
}
