//! permessage-deflate's pieces (`switchboard_server::ws_verification`):
//!
//! - any bytes given to the reader's inflater as a client's deflated message
//!   end within the limit (an error, or a message of at most the limit),
//!   with never more room than the limit and one byte;
//! - any message deflated as a session deflates it (only when that makes it
//!   smaller) or as the echo does (always) inflates back to itself, and is
//!   too big for a limit one byte under its length;
//! - any `Sec-WebSocket-Extensions` lines are read without a panic; a line
//!   without `permessage-deflate` in it is never accepted, and a plain
//!   `permessage-deflate` line after any others always is.

#![no_main]

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use switchboard_server::ws_verification::{
    End, accepts_offer, deflate_message, deflate_message_always, inflate_message,
};

#[derive(Arbitrary, Debug)]
struct Case {
    /// Given to the inflater as it is.
    deflated: Vec<u8>,
    /// Deflated, then inflated back.
    message: Vec<u8>,
    /// The limit, taken modulo 4,097.
    max: u16,
    /// Lines of `Sec-WebSocket-Extensions`.
    offers: Vec<Vec<u8>>,
}

fuzz_target!(|case: Case| {
    let max = usize::from(case.max % 4097);
    if let Ok(message) = inflate_message(&case.deflated, max) {
        assert!(message.len() <= max, "{} bytes under a limit of {max}", message.len());
    }

    let message = &case.message;
    if let Some(deflated) = deflate_message(message) {
        assert!(deflated.len() < message.len(), "a session sends only what got smaller");
    }
    let deflated = deflate_message_always(message).expect("a message deflates");
    assert_eq!(inflate_message(&deflated, message.len()).as_ref(), Ok(message));
    if let Some(under) = message.len().checked_sub(1) {
        assert_eq!(inflate_message(&deflated, under), Err(End::TooBig));
    }

    let lines: Vec<&[u8]> = case.offers.iter().map(Vec::as_slice).collect();
    let accepted = accepts_offer(&lines);
    let named = lines
        .iter()
        .any(|l| l.windows(18).any(|w| w.eq_ignore_ascii_case(b"permessage-deflate")));
    assert!(named || !accepted, "accepted without an offer: {lines:?}");
    let mut with_plain = lines.clone();
    with_plain.push(b"permessage-deflate");
    assert!(accepts_offer(&with_plain), "a plain offer after {lines:?}");
});
