//! The WebSocket frame reader (`server/src/ws/read.rs`), through
//! `switchboard_server::ws_verification::read_stream`. A case is a byte
//! stream, a message limit of 0 to 300 bytes (so that limits are hit) and two
//! read steps. The stream is either raw bytes or a script of frames: legal
//! messages (text and binary, whole or in fragments with control frames
//! between them), deliberate violations of RFC 6455 (between messages or
//! between the fragments of one), and frames with any header at all (any
//! bits, opcode, mask, length encoding and length), possibly cut short.
//! Checked:
//!
//! - the reader agrees with an independent reading of the whole stream at
//!   once (`reference`), which applies RFC 6455 §5 frame by frame in the
//!   order the reader documents: what the header alone can refuse (reserved
//!   bits, opcode, mask bit, length, control frame rules, the limit) before
//!   any of the payload, then the frame's content;
//! - the same stream cut into arbitrary pieces, with reads that find nothing
//!   yet between them, and read with another step gives exactly what it
//!   gives in one piece;
//! - a script of legal messages reads back as those messages and ends at the
//!   end of the stream; legal messages followed by a violation read back as
//!   those messages and end with the violation's class of error, whatever
//!   follows it;
//! - and, inside `read_stream`, no message is over the limit and no read
//!   buffer is kept while nothing is unread.

#![no_main]

use std::ops::Range;

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use switchboard_server::ws_verification::{End, Read, read_stream};

// Opcodes and the FIN bit (RFC 6455 §5.2).
const CONTINUATION: u8 = 0x0;
const TEXT: u8 = 0x1;
const BINARY: u8 = 0x2;
const CLOSE: u8 = 0x8;
const PING: u8 = 0x9;
const PONG: u8 = 0xA;
const FIN: u8 = 0x80;
const OPCODES: [u8; 6] = [CONTINUATION, TEXT, BINARY, CLOSE, PING, PONG];
const CONTROLS: [u8; 3] = [CLOSE, PING, PONG];
const UNKNOWN: [u8; 10] = [0x3, 0x4, 0x5, 0x6, 0x7, 0xB, 0xC, 0xD, 0xE, 0xF];

/// The largest control frame payload (RFC 6455 §5.5).
const CONTROL_MAX: usize = 125;

#[derive(Arbitrary, Debug)]
struct Case {
    max: u16,
    step: u16,
    other_step: u16,
    /// How the stream is cut for the second reading.
    cuts: Vec<Cut>,
    stream: Stream,
}

#[derive(Arbitrary, Debug)]
enum Cut {
    /// A read that finds nothing yet.
    Pending,
    /// A piece of 1 to 256 bytes.
    Short(u8),
    /// A piece of 1 to 65,536 bytes.
    Long(u16),
}

#[derive(Arbitrary, Debug)]
enum Stream {
    Raw(Vec<u8>),
    Script {
        /// How many bytes to take off the end, modulo the length plus one.
        drop: Option<u16>,
        steps: Vec<Step>,
    },
}

#[derive(Arbitrary, Debug)]
enum Step {
    Message(Message),
    Violation(Violation),
    Frame(AnyFrame),
}

/// How a frame's length is written.
#[derive(Arbitrary, Debug, Clone, Copy)]
enum Length {
    /// The shortest form, which RFC 6455 §5.2 requires of senders.
    Minimal,
    /// The 16-bit form even for a length under 126 (the 64-bit form when the
    /// length does not fit in 16 bits).
    Ext16,
    /// The 64-bit form for any length.
    Ext64,
    /// A 7-bit length that need not be the payload's: 126 and 127 announce an
    /// extended length, which the next bytes then give.
    Claim7(u8),
    /// A 16-bit length that need not be the payload's.
    Claim16(u16),
    /// A 64-bit length that need not be the payload's, top bit included.
    Claim64(u64),
}

/// Writes one frame: `first` is FIN, RSV and opcode; `payload` is given
/// unmasked and masked here when there is a mask.
fn put_frame(out: &mut Vec<u8>, first: u8, mask: Option<[u8; 4]>, length: Length, payload: &[u8]) {
    out.push(first);
    let masked = if mask.is_some() { 0x80 } else { 0 };
    let n = payload.len();
    match length {
        Length::Minimal if n <= 125 => out.push(masked | n as u8),
        Length::Minimal | Length::Ext16 if n <= 0xFFFF => {
            out.push(masked | 126);
            out.extend_from_slice(&(n as u16).to_be_bytes());
        }
        Length::Minimal | Length::Ext16 | Length::Ext64 => {
            out.push(masked | 127);
            out.extend_from_slice(&(n as u64).to_be_bytes());
        }
        Length::Claim7(n) => out.push(masked | (n & 0x7F)),
        Length::Claim16(n) => {
            out.push(masked | 126);
            out.extend_from_slice(&n.to_be_bytes());
        }
        Length::Claim64(n) => {
            out.push(masked | 127);
            out.extend_from_slice(&n.to_be_bytes());
        }
    }
    match mask {
        Some(mask) => {
            out.extend_from_slice(&mask);
            out.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
        }
        None => out.extend_from_slice(payload),
    }
}

/// A legal masked frame with the shortest length.
fn put_legal(out: &mut Vec<u8>, first: u8, mask: [u8; 4], payload: &[u8]) {
    put_frame(out, first, Some(mask), Length::Minimal, payload);
}

/// Whether a peer may send this close code: RFC 6455 §7.4.1 and the IANA
/// registry (1000–1003, 1007–1014), and the range for libraries, frameworks
/// and applications (3000–4999). 1004 is reserved, 1005, 1006 and 1015 must
/// never be sent in a close frame, the rest of 1000–2999 is unassigned, and
/// below 1000 nothing is defined.
fn is_valid_code(code: u16) -> bool {
    matches!(code, 1000..=1003 | 1007..=1014 | 3000..=4999)
}

/// A close code a peer may send, chosen by `pick`.
fn valid_code(pick: u16) -> u16 {
    match pick % 2012 {
        n @ 0..=3 => 1000 + n,
        n @ 4..=11 => 1003 + n,
        n => 2988 + n,
    }
}

/// The longest start of `s` of at most `n` bytes that ends on a character
/// boundary.
fn prefix(s: &str, n: usize) -> &str {
    let mut n = n.min(s.len());
    while !s.is_char_boundary(n) {
        n -= 1;
    }
    &s[..n]
}

/// The largest legal control payload. The reader applies the message limit
/// to every frame, control frames included, so a legal control frame here
/// fits both limits.
fn control_room(max: usize) -> usize {
    max.min(CONTROL_MAX)
}

/// A legal control frame; its payload is cut to fit. A close frame may come
/// anywhere, between fragments too (§5.4): the reader hands it out and reads
/// on, and ending the connection after it is the session's business.
#[derive(Arbitrary, Debug)]
enum Control {
    Ping { payload: Vec<u8>, mask: [u8; 4] },
    Pong { payload: Vec<u8>, mask: [u8; 4] },
    Close { code: Option<(u16, String)>, mask: [u8; 4] },
}

impl Control {
    /// Writes the frame and returns what reading it gives.
    fn put(&self, out: &mut Vec<u8>, max: usize) -> Read {
        let room = control_room(max);
        match self {
            Self::Ping { payload, mask } => {
                let payload = &payload[..payload.len().min(room)];
                put_legal(out, FIN | PING, *mask, payload);
                Read::Ping(payload.to_vec())
            }
            Self::Pong { payload, mask } => {
                put_legal(out, FIN | PONG, *mask, &payload[..payload.len().min(room)]);
                Read::Pong
            }
            Self::Close {
                code: Some((code, reason)),
                mask,
            } if room >= 2 => {
                let code = valid_code(*code);
                let mut payload = code.to_be_bytes().to_vec();
                payload.extend_from_slice(prefix(reason, room - 2).as_bytes());
                put_legal(out, FIN | CLOSE, *mask, &payload);
                Read::Close(Some(code))
            }
            Self::Close { mask, .. } => {
                put_legal(out, FIN | CLOSE, *mask, &[]);
                Read::Close(None)
            }
        }
    }
}

/// A non-final frame of a message, and the control frames sent after it.
#[derive(Arbitrary, Debug)]
struct Fragment {
    /// The fragment's length, cut to what is left of the message.
    len: u8,
    mask: [u8; 4],
    controls: Vec<Control>,
}

/// A message as written: the reads of the control frames sent between its
/// fragments, and for each of its frames the part of the body it carries
/// and how many of those reads come before it.
struct Written {
    reads: Vec<Read>,
    frames: Vec<(Range<usize>, usize)>,
}

impl Written {
    /// The reads that come before the frame carrying byte `at` of the body.
    fn reads_before(&self, at: usize) -> Vec<Read> {
        let (_, before) = self
            .frames
            .iter()
            .find(|(carries, _)| carries.contains(&at))
            .expect("every byte of the body is in a frame");
        self.reads[..*before].to_vec()
    }
}

/// Writes `body` as a message: one frame per fragment (text or binary first,
/// continuations after), the fragment's control frames after each, and a
/// final frame with the rest. Legal as long as the control frames and the
/// body are within the limit.
fn put_message(
    out: &mut Vec<u8>,
    text: bool,
    body: &[u8],
    fragments: &[Fragment],
    last_mask: [u8; 4],
    max: usize,
) -> Written {
    let mut written = Written {
        reads: Vec::new(),
        frames: Vec::new(),
    };
    let mut opcode = if text { TEXT } else { BINARY };
    let mut at = 0;
    for fragment in fragments {
        let len = usize::from(fragment.len).min(body.len() - at);
        put_legal(out, opcode, fragment.mask, &body[at..at + len]);
        written.frames.push((at..at + len, written.reads.len()));
        opcode = CONTINUATION;
        at += len;
        for control in &fragment.controls {
            let read = control.put(out, max);
            written.reads.push(read);
        }
    }
    put_legal(out, FIN | opcode, last_mask, &body[at..]);
    written.frames.push((at..body.len(), written.reads.len()));
    written
}

/// A legal message, cut to fit the limit.
#[derive(Arbitrary, Debug)]
enum Message {
    Text {
        text: String,
        fragments: Vec<Fragment>,
        mask: [u8; 4],
    },
    Binary {
        data: Vec<u8>,
        fragments: Vec<Fragment>,
        mask: [u8; 4],
    },
    Control(Control),
}

impl Message {
    /// Writes the message and returns what reading it gives, in order.
    fn put(&self, out: &mut Vec<u8>, max: usize) -> Vec<Read> {
        match self {
            Self::Text { text, fragments, mask } => {
                let text = prefix(text, max);
                let mut reads = put_message(out, true, text.as_bytes(), fragments, *mask, max).reads;
                reads.push(Read::Text(text.to_owned()));
                reads
            }
            Self::Binary { data, fragments, mask } => {
                let data = &data[..data.len().min(max)];
                let mut reads = put_message(out, false, data, fragments, *mask, max).reads;
                reads.push(Read::Binary(data.to_vec()));
                reads
            }
            Self::Control(control) => vec![control.put(out, max)],
        }
    }
}

/// One faulty frame, everything else about it legal. The reader refuses it
/// whatever came before it, in or out of a message, so it can also come
/// between the fragments of one.
#[derive(Arbitrary, Debug)]
enum FrameFault {
    /// RSV1, RSV2 or RSV3 set with no extension negotiated (§5.2), on a frame
    /// with any FIN and opcode.
    ReservedBits {
        rsv: u8,
        first: u8,
        unmasked: bool,
        payload: Vec<u8>,
    },
    /// A reserved opcode (§5.2).
    UnknownOpcode {
        op: u8,
        fin: bool,
        unmasked: bool,
        payload: Vec<u8>,
    },
    /// A client frame without a mask (§5.1).
    Unmasked { op: u8, fin: bool, payload: Vec<u8> },
    /// A control frame without FIN (§5.5).
    FragmentedControl { op: u8, payload: Vec<u8> },
    /// A control frame of 126 bytes or more (§5.5).
    LongControl { op: u8, extra: u8, wide: bool },
    /// A 64-bit length with its most significant bit set (§5.2).
    TopBitLength { op: u8, fin: bool, low: u64 },
    /// A frame over the limit: a real payload one to 256 bytes too long, or
    /// only a header that claims more.
    OverLimit {
        op: u8,
        fin: bool,
        extra: u8,
        claim: Option<u64>,
        wide: bool,
    },
    /// A close payload of one byte (§5.5.1: a body starts with a two-byte
    /// code).
    OneByteClose { byte: u8 },
    /// A close code a peer may not send (§7.4), with any reason.
    BadCloseCode { code: u16, reason: Vec<u8> },
    /// A close reason that is not UTF-8 (§5.5.1, §8.1).
    CloseReasonNotUtf8 {
        code: u16,
        reason: String,
        at: u8,
        bad: BadUtf8,
    },
}

/// What makes text not UTF-8.
#[derive(Arbitrary, Debug, Clone, Copy)]
enum BadUtf8 {
    /// One of the `INVALID` sequences, between two characters.
    Invalid(u8),
    /// One of the `UNFINISHED` starts, at the end.
    Unfinished(u8),
}

/// Sequences that are never UTF-8, each with the index of the byte that
/// shows it (before that byte they could still begin a character): a byte
/// that never appears, an overlong encoding of two and of three bytes, a
/// surrogate, a code point over U+10FFFF, a continuation byte with nothing
/// to continue, and a start followed by something that does not continue it.
const INVALID: [(&[u8], usize); 7] = [
    (&[0xFF], 0),
    (&[0xC0, 0x80], 0),
    (&[0xE0, 0x80, 0x80], 1),
    (&[0xED, 0xA0, 0x80], 1),
    (&[0xF4, 0x90, 0x80, 0x80], 1),
    (&[0x80], 0),
    (&[0xC3, 0x28], 1),
];

/// Beginnings of two-, three- and four-byte characters that never finish.
/// Any start of one of them is one too.
const UNFINISHED: [&[u8]; 6] = [
    &[0xC3],
    &[0xE2],
    &[0xE2, 0x82],
    &[0xF0],
    &[0xF0, 0x9F],
    &[0xF0, 0x9F, 0x98],
];

/// Text of at most `room` bytes (`room` at least 1) that is not UTF-8:
/// `text`, cut to fit, with `bad` inserted at a character boundary near
/// `at` (an invalid sequence) or at the end (an unfinished character).
/// Returns the bytes and the index of the first byte that shows they can
/// never become UTF-8 (`None` for an unfinished character: only the end
/// shows it).
fn not_utf8(text: &str, at: usize, bad: BadUtf8, room: usize) -> (Vec<u8>, Option<usize>) {
    match bad {
        BadUtf8::Invalid(pick) => {
            let (sequence, shows) = INVALID[usize::from(pick) % INVALID.len()];
            // A sequence that does not fit becomes the one-byte one.
            let (sequence, shows) = if sequence.len() > room {
                INVALID[0]
            } else {
                (sequence, shows)
            };
            let text = prefix(text, room - sequence.len());
            let at = prefix(text, at % (text.len() + 1)).len();
            let bytes = [&text.as_bytes()[..at], sequence, &text.as_bytes()[at..]].concat();
            (bytes, Some(at + shows))
        }
        BadUtf8::Unfinished(pick) => {
            let tail = UNFINISHED[usize::from(pick) % UNFINISHED.len()];
            let tail = &tail[..tail.len().min(room)];
            let bytes = [prefix(text, room - tail.len()).as_bytes(), tail].concat();
            (bytes, None)
        }
    }
}

fn fin_if(fin: bool) -> u8 {
    if fin { FIN } else { 0 }
}

impl FrameFault {
    /// Writes the frame and returns the class of error it ends reading with.
    fn put(&self, out: &mut Vec<u8>, mask: [u8; 4], max: usize) -> End {
        // The limit is checked from the header, before the content, so a
        // frame whose fault is in its content but that is over the limit is
        // refused as too big.
        let within = |len: usize, class: End| if len > max { End::TooBig } else { class };
        let mask_unless = |unmasked: bool| (!unmasked).then_some(mask);
        match self {
            Self::ReservedBits {
                rsv,
                first,
                unmasked,
                payload,
            } => {
                // The reserved bits are the first thing looked at: the
                // opcode, the mask bit and the length do not matter.
                let rsv = ((rsv % 7) + 1) << 4;
                put_frame(
                    out,
                    (first & 0x8F) | rsv,
                    mask_unless(*unmasked),
                    Length::Minimal,
                    payload,
                );
                End::Protocol
            }
            Self::UnknownOpcode {
                op,
                fin,
                unmasked,
                payload,
            } => {
                // The opcode comes before the mask bit and the length.
                let first = UNKNOWN[usize::from(*op) % UNKNOWN.len()] | fin_if(*fin);
                put_frame(out, first, mask_unless(*unmasked), Length::Minimal, payload);
                End::Protocol
            }
            Self::Unmasked { op, fin, payload } => {
                // The mask bit comes before the length.
                let first = OPCODES[usize::from(*op) % OPCODES.len()] | fin_if(*fin);
                put_frame(out, first, None, Length::Minimal, payload);
                End::Protocol
            }
            Self::FragmentedControl { op, payload } => {
                // Refused from the header whatever the length: the control
                // frame rules come before the limit.
                put_legal(out, CONTROLS[usize::from(*op) % CONTROLS.len()], mask, payload);
                End::Protocol
            }
            Self::LongControl { op, extra, wide } => {
                let payload = vec![b'x'; CONTROL_MAX + 1 + usize::from(*extra)];
                let length = if *wide { Length::Ext64 } else { Length::Minimal };
                let first = FIN | CONTROLS[usize::from(*op) % CONTROLS.len()];
                put_frame(out, first, Some(mask), length, &payload);
                End::Protocol
            }
            Self::TopBitLength { op, fin, low } => {
                let first = OPCODES[usize::from(*op) % OPCODES.len()] | fin_if(*fin);
                put_frame(out, first, Some(mask), Length::Claim64(low | 1 << 63), &[]);
                End::Protocol
            }
            Self::OverLimit {
                op,
                fin,
                extra,
                claim,
                wide,
            } => {
                let opcode = OPCODES[usize::from(*op) % OPCODES.len()];
                let control = CONTROLS.contains(&opcode);
                // A control frame is final here, so that only its length is
                // at fault.
                let first = opcode | fin_if(*fin || control);
                let len = match claim {
                    Some(claim) => {
                        let len = (max as u64 + 1).saturating_add(claim % (1 << 62));
                        put_frame(out, first, Some(mask), Length::Claim64(len), &[]);
                        len
                    }
                    None => {
                        let payload = vec![b'x'; max + 1 + usize::from(*extra)];
                        let length = if *wide { Length::Ext64 } else { Length::Minimal };
                        put_frame(out, first, Some(mask), length, &payload);
                        payload.len() as u64
                    }
                };
                // A control frame over 125 bytes breaks the control frame
                // rules, which come before the limit.
                if control && len > CONTROL_MAX as u64 {
                    End::Protocol
                } else {
                    End::TooBig
                }
            }
            Self::OneByteClose { byte } => {
                put_legal(out, FIN | CLOSE, mask, &[*byte]);
                within(1, End::Protocol)
            }
            Self::BadCloseCode { code, reason } => {
                // Every valid code has its top bit clear, and no code with
                // its top bit set is valid.
                let code = if is_valid_code(*code) { code ^ 0x8000 } else { *code };
                let mut payload = code.to_be_bytes().to_vec();
                // The code is refused before the reason is looked at, so the
                // reason may be anything.
                payload.extend_from_slice(&reason[..reason.len().min(CONTROL_MAX - 2)]);
                put_legal(out, FIN | CLOSE, mask, &payload);
                within(payload.len(), End::Protocol)
            }
            Self::CloseReasonNotUtf8 { code, reason, at, bad } => {
                let mut payload = valid_code(*code).to_be_bytes().to_vec();
                payload.extend(not_utf8(reason, usize::from(*at), *bad, CONTROL_MAX - 2).0);
                put_legal(out, FIN | CLOSE, mask, &payload);
                within(payload.len(), End::InvalidUtf8)
            }
        }
    }
}

/// One deliberate violation, everything else about it legal. Each ends the
/// reading with a known class of error after known reads (those of the
/// legal control frames it sends before the faulty frame). It comes after
/// whole messages, so no message is unfinished when it begins.
#[derive(Arbitrary, Debug)]
enum Violation {
    /// A faulty frame between messages.
    Frame { fault: FrameFault, mask: [u8; 4] },
    /// A faulty frame after the first fragment of a message and control
    /// frames.
    InMessage {
        text: bool,
        first: String,
        controls: Vec<Control>,
        fault: FrameFault,
        mask: [u8; 4],
    },
    /// A continuation frame with no message to continue (§5.4).
    StrayContinuation { fin: bool, payload: Vec<u8>, mask: [u8; 4] },
    /// A new text or binary frame while a fragmented message is unfinished
    /// (§5.4).
    NestedMessage {
        text: bool,
        first: String,
        controls: Vec<Control>,
        second_text: bool,
        second_fin: bool,
        second: Vec<u8>,
        mask: [u8; 4],
    },
    /// Fragments that add up to more than the limit, each within it.
    TooBigInPieces {
        text: bool,
        first: u16,
        lengths: Vec<u16>,
        controls: Vec<Control>,
        mask: [u8; 4],
    },
    /// A text message, whole or in fragments, that is not UTF-8 (§8.1).
    TextNotUtf8 {
        text: String,
        at: u16,
        bad: BadUtf8,
        fragments: Vec<Fragment>,
        mask: [u8; 4],
    },
}

/// Writes the first fragment of a message, cut to the limit (text may end
/// inside a character: that is waited for, not refused), and control frames
/// after it; returns their reads.
fn put_start(out: &mut Vec<u8>, text: bool, first: &str, controls: &[Control], mask: [u8; 4], max: usize) -> Vec<Read> {
    let opcode = if text { TEXT } else { BINARY };
    put_legal(out, opcode, mask, &first.as_bytes()[..first.len().min(max)]);
    controls.iter().map(|c| c.put(out, max)).collect()
}

impl Violation {
    /// Writes the frames and returns the reads before the error and its class.
    fn put(&self, out: &mut Vec<u8>, max: usize) -> (Vec<Read>, End) {
        let within = |len: usize, class: End| if len > max { End::TooBig } else { class };
        match self {
            Self::Frame { fault, mask } => (Vec::new(), fault.put(out, *mask, max)),
            Self::InMessage {
                text,
                first,
                controls,
                fault,
                mask,
            } => {
                let reads = put_start(out, *text, first, controls, *mask, max);
                (reads, fault.put(out, *mask, max))
            }
            Self::StrayContinuation { fin, payload, mask } => {
                put_legal(out, CONTINUATION | fin_if(*fin), *mask, payload);
                (Vec::new(), within(payload.len(), End::Protocol))
            }
            Self::NestedMessage {
                text,
                first,
                controls,
                second_text,
                second_fin,
                second,
                mask,
            } => {
                let reads = put_start(out, *text, first, controls, *mask, max);
                let opcode = if *second_text { TEXT } else { BINARY };
                put_legal(out, opcode | fin_if(*second_fin), *mask, second);
                (reads, within(second.len(), End::Protocol))
            }
            Self::TooBigInPieces {
                text,
                first,
                lengths,
                controls,
                mask,
            } => {
                let opcode = if *text { TEXT } else { BINARY };
                let first = usize::from(*first) % (max + 1);
                put_legal(out, opcode, *mask, &vec![b'a'; first]);
                let reads = controls.iter().map(|c| c.put(out, max)).collect();
                // Continuations of 1 to `max` bytes (of 1 byte, itself too
                // big, when the limit is 0) until the total is over the limit.
                let mut total = first;
                let mut lengths = lengths.iter().map(|&n| 1 + usize::from(n) % max.max(1));
                while total <= max {
                    let len = lengths.next().unwrap_or(max.max(1));
                    total += len;
                    put_legal(out, CONTINUATION | fin_if(total > max), *mask, &vec![b'a'; len]);
                }
                (reads, End::TooBig)
            }
            Self::TextNotUtf8 {
                text,
                at,
                bad,
                fragments,
                mask,
            } => {
                if max == 0 {
                    // No text that is not UTF-8 fits a limit of 0: its first
                    // byte is in a frame too big.
                    let written = put_message(out, true, &[0xFF], fragments, *mask, max);
                    return (written.reads_before(0), End::TooBig);
                }
                let (body, shows) = not_utf8(text, usize::from(*at), *bad, max);
                let written = put_message(out, true, &body, fragments, *mask, max);
                // Text is refused in the first frame that shows it can never
                // become UTF-8 (every frame before it could still); an
                // unfinished character only at the end, after every control
                // frame.
                let reads = match shows {
                    Some(at) => written.reads_before(at),
                    None => written.reads,
                };
                (reads, End::InvalidUtf8)
            }
        }
    }
}

/// A frame with any header at all.
#[derive(Arbitrary, Debug)]
struct AnyFrame {
    /// FIN, RSV and opcode: as they come with `any_header`, otherwise with
    /// the RSV bits cleared and the opcode one of the six defined. (Most
    /// random first bytes have a reserved bit set, and a frame refused from
    /// its first byte tells little about the frames after it.)
    first: u8,
    any_header: bool,
    /// Whether the frame goes without a mask (the flag is false, and the
    /// frame masked, when the input runs out).
    unmasked: bool,
    mask: [u8; 4],
    length: Length,
    payload: Payload,
}

#[derive(Arbitrary, Debug)]
enum Payload {
    Bytes(Vec<u8>),
    Text(String),
    /// `len` (up to 511) times the same byte, for lengths around the limit
    /// and the 125/126 boundary.
    Repeat {
        byte: u8,
        len: u16,
    },
    /// A close body: a code and a reason, either of them possibly invalid.
    Close {
        code: u16,
        reason: Vec<u8>,
    },
}

impl AnyFrame {
    fn put(&self, out: &mut Vec<u8>) {
        let payload = match &self.payload {
            Payload::Bytes(bytes) => bytes.clone(),
            Payload::Text(text) => text.as_bytes().to_vec(),
            Payload::Repeat { byte, len } => vec![*byte; usize::from(*len) % 512],
            Payload::Close { code, reason } => [&code.to_be_bytes()[..], reason].concat(),
        };
        let first = if self.any_header {
            self.first
        } else {
            (self.first & FIN) | OPCODES[usize::from(self.first & 0x0F) % OPCODES.len()]
        };
        let mask = (!self.unmasked).then_some(self.mask);
        put_frame(out, first, mask, self.length, &payload);
    }
}

/// Writes a script. Returns its bytes and, when the script is legal messages
/// followed by nothing or by a violation (then anything) and is not cut
/// short, what reading it must give.
fn build(steps: &[Step], drop: Option<u16>, max: usize) -> (Vec<u8>, Option<(Vec<Read>, End)>) {
    let mut out = Vec::new();
    let mut reads = Vec::new();
    // Whether what reading gives is known: until a violation, only legal
    // messages came.
    let mut known = true;
    let mut end = None;
    for step in steps {
        match step {
            Step::Message(message) => {
                let read = message.put(&mut out, max);
                if end.is_none() {
                    reads.extend(read);
                }
            }
            Step::Violation(violation) => {
                let (read, class) = violation.put(&mut out, max);
                if end.is_none() {
                    reads.extend(read);
                    end = Some(class);
                }
            }
            Step::Frame(frame) => {
                frame.put(&mut out);
                if end.is_none() {
                    known = false;
                }
            }
        }
    }
    if let Some(drop) = drop {
        let drop = usize::from(drop) % (out.len() + 1);
        if drop > 0 {
            out.truncate(out.len() - drop);
            known = false;
        }
    }
    (out, known.then(|| (reads, end.unwrap_or(End::Eof))))
}

/// Whether no bytes that might follow can make `bytes` UTF-8: RFC 6455 §8.1
/// lets an endpoint fail the connection as soon as it knows.
fn cannot_be_utf8(bytes: &[u8]) -> bool {
    std::str::from_utf8(bytes).is_err_and(|e| e.error_len().is_some())
}

/// A whole message as it is handed out.
fn complete(text: bool, data: Vec<u8>) -> Result<Read, End> {
    if text {
        String::from_utf8(data).map(Read::Text).map_err(|_| End::InvalidUtf8)
    } else {
        Ok(Read::Binary(data))
    }
}

/// An independent reading of a whole stream held in memory: RFC 6455 §5
/// applied frame by frame, with no buffering, in the order the reader
/// documents. Everything the header alone can refuse is refused before any
/// of the payload is needed (so a stream that ends inside a payload still
/// ends with that error); then the frame's content. A stream that ends
/// inside a frame the header does not refuse ends at its end.
fn reference(mut rest: &[u8], max: usize) -> (Vec<Read>, End) {
    let mut reads = Vec::new();
    // A message arriving in fragments: whether it is text, and its bytes so far.
    let mut message: Option<(bool, Vec<u8>)> = None;
    let end = loop {
        let [b0, b1, ..] = *rest else { break End::Eof };
        let fin = b0 & FIN != 0;
        let opcode = b0 & 0x0F;
        let control = CONTROLS.contains(&opcode);
        // Reserved bits with no extension, reserved opcodes (§5.2) and an
        // unmasked client frame (§5.1).
        if b0 & 0x70 != 0 || !OPCODES.contains(&opcode) || b1 & 0x80 == 0 {
            break End::Protocol;
        }
        let (len, at) = match b1 & 0x7F {
            126 => match rest.get(2..4) {
                Some(n) => (u64::from(u16::from_be_bytes([n[0], n[1]])), 4),
                None => break End::Eof,
            },
            127 => match rest.get(2..10) {
                Some(n) => (u64::from_be_bytes(n.try_into().expect("eight bytes")), 10),
                None => break End::Eof,
            },
            n => (u64::from(n), 2),
        };
        // The top bit of a 64-bit length must be 0 (§5.2).
        if len >> 63 != 0 {
            break End::Protocol;
        }
        // Control frames are final and at most 125 bytes (§5.5).
        if control && (!fin || len > CONTROL_MAX as u64) {
            break End::Protocol;
        }
        if len > max as u64 {
            break End::TooBig;
        }
        let len = len as usize;
        let Some(frame) = rest.get(at..at + 4 + len) else {
            break End::Eof;
        };
        rest = &rest[at + 4 + len..];
        let (mask, payload) = frame.split_at(4);
        let payload: Vec<u8> = payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]).collect();
        match opcode {
            TEXT | BINARY => {
                // A new message only once the last one has ended (§5.4).
                if message.is_some() {
                    break End::Protocol;
                }
                let text = opcode == TEXT;
                if fin {
                    match complete(text, payload) {
                        Ok(read) => reads.push(read),
                        Err(end) => break end,
                    }
                } else if text && cannot_be_utf8(&payload) {
                    break End::InvalidUtf8;
                } else {
                    message = Some((text, payload));
                }
            }
            CONTINUATION => {
                let Some((text, data)) = message.as_mut() else {
                    break End::Protocol;
                };
                if data.len() + payload.len() > max {
                    break End::TooBig;
                }
                data.extend_from_slice(&payload);
                if *text && cannot_be_utf8(data) {
                    break End::InvalidUtf8;
                }
                if fin {
                    let (text, data) = message.take().expect("a message in fragments");
                    match complete(text, data) {
                        Ok(read) => reads.push(read),
                        Err(end) => break end,
                    }
                }
            }
            PING => reads.push(Read::Ping(payload)),
            PONG => reads.push(Read::Pong),
            // A close body is empty, or a valid code and a UTF-8 reason (§5.5.1).
            _ => match *payload.as_slice() {
                [] => reads.push(Read::Close(None)),
                [_] => break End::Protocol,
                [hi, lo, ref reason @ ..] => {
                    let code = u16::from_be_bytes([hi, lo]);
                    if !is_valid_code(code) {
                        break End::Protocol;
                    }
                    if std::str::from_utf8(reason).is_err() {
                        break End::InvalidUtf8;
                    }
                    reads.push(Read::Close(Some(code)));
                }
            },
        }
    };
    (reads, end)
}

/// `bytes` in the pieces `cuts` describe (what is left after them in one
/// last piece).
fn cut<'a>(mut bytes: &'a [u8], cuts: &[Cut]) -> Vec<&'a [u8]> {
    let mut pieces = Vec::new();
    for cut in cuts {
        let len = match *cut {
            Cut::Pending => {
                pieces.push(&[][..]);
                continue;
            }
            Cut::Short(n) => usize::from(n) + 1,
            Cut::Long(n) => usize::from(n) + 1,
        };
        if !bytes.is_empty() {
            let (piece, rest) = bytes.split_at(len.min(bytes.len()));
            pieces.push(piece);
            bytes = rest;
        }
    }
    if !bytes.is_empty() {
        pieces.push(bytes);
    }
    pieces
}

/// A read step: half the time a small one (16 to 271 bytes, where frames
/// straddle steps), otherwise 16 to 4,096 bytes.
fn step(pick: u16) -> usize {
    if pick & 0x8000 != 0 {
        16 + usize::from(pick & 0xFF)
    } else {
        16 + usize::from(pick) % 4081
    }
}

fuzz_target!(|case: Case| {
    let max = usize::from(case.max % 301);
    let (bytes, known) = match &case.stream {
        Stream::Raw(bytes) => (bytes.clone(), None),
        Stream::Script { drop, steps } => build(steps, *drop, max),
    };
    let whole = read_stream(&[&bytes], step(case.step), max);
    assert_eq!(whole, reference(&bytes, max), "the reader and the reference disagree");
    let pieces = cut(&bytes, &case.cuts);
    assert_eq!(
        read_stream(&pieces, step(case.other_step), max),
        whole,
        "cut into {} pieces, the stream reads differently",
        pieces.len()
    );
    if let Some(known) = known {
        assert_eq!(whole, known, "the script does not read back as written");
    }
});
