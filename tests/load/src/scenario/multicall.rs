//! A backend's multicast call: every session of one topic is called at once
//! and the backend waits for all of their answers. switchboard does it with
//! `POST /api` `call` on a topic target; the Socket.IO peer with
//! `io.to(room).timeout(ms).emitWithAck(…)` behind its `POST /multicall`.
//!
//! switchboard is also timed with `"policy": "first"`: one session answers
//! at once and the others only later, and the figure is how long after the
//! fast session's answer the backend has its own.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt, TryStreamExt};
use serde::Deserialize;
use tokio_tungstenite::tungstenite::Message;

use super::http::{Answer, Backend};
use super::{Percentiles, TOPIC, Target, stop_all, subscribe};
use crate::client::Ws;
use crate::error::LoadError;
use crate::flavor::{Flavor, Incoming, member};
use crate::procfs;

const SCENARIO: &str = "multicall";

/// The method every session is called with.
const METHOD: &str = "bench.multi";

/// The timeout the backend gives each call: far above any answer's time, so
/// that a call that times out is a failure of the run, not a figure.
const CALL_TIMEOUT_MS: u64 = 10_000;

/// The session that answers `"first"` calls at once (the others wait).
const FAST_SESSION: usize = 0;

/// Quiet time after a `"first"` call's slow answers were due, before the next call.
const SETTLE: Duration = Duration::from_millis(20);

/// What to run.
#[derive(Debug, Clone)]
pub struct MulticallParams {
    /// Sessions in the topic (Socket.IO: the room), every one answering every call.
    pub sessions: usize,
    /// Calls before the measured window.
    pub warmup_calls: u64,
    /// The measured window (at least `min_calls` are made).
    pub measure: Duration,
    /// Fewest calls in the window.
    pub min_calls: u64,
    /// Most calls in the window.
    pub max_calls: u64,
    /// Timed calls with `"policy": "first"` after the window (switchboard
    /// only; 0 makes none).
    pub first_calls: usize,
    /// How long every session but one waits before answering a `"first"` call.
    pub slow_answer: Duration,
    /// Check every outcome.
    pub verify: bool,
}

/// What was measured.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct MulticallResult {
    /// Calls completed in the window.
    pub calls: u64,
    /// Sessions that answered those calls (calls × sessions).
    pub targets: u64,
    /// Length of the window in seconds.
    pub seconds: f64,
    /// Server CPU seconds in the window.
    pub cpu_seconds: f64,
    /// The kernel's part of `cpu_seconds` (system time).
    pub system_seconds: f64,
    /// Time from the backend's request to its answer, every session answering at once.
    pub latency: Percentiles,
    /// `"policy": "first"`: time from the fast session's answer to the
    /// backend's (switchboard only).
    pub after_first: Option<Percentiles>,
}

impl MulticallResult {
    /// Answered targets per second.
    pub fn rate(&self) -> f64 {
        self.targets as f64 / self.seconds.max(f64::EPSILON)
    }

    /// Server CPU microseconds per answered target (the backend's request
    /// and answer included, spread over its targets).
    pub fn cpu_us_per_target(&self) -> f64 {
        self.cpu_seconds * 1e6 / (self.targets.max(1) as f64)
    }

    /// The kernel's part of [`MulticallResult::cpu_us_per_target`].
    pub fn system_us_per_target(&self) -> f64 {
        self.system_seconds * 1e6 / (self.targets.max(1) as f64)
    }
}

/// What the sessions' tasks share with the backend.
#[derive(Default)]
struct Shared {
    /// How long the slow sessions wait before answering, in µs (0: at once).
    slow_us: AtomicU64,
    /// When the fast session last answered a call.
    fast_answered: parking_lot::Mutex<Option<Instant>>,
}

/// Subscribes `params.sessions` sessions to one topic, then calls them all
/// from a backend, one call at a time, and measures the server's CPU per
/// answered target; against switchboard, then times `"first"` calls.
pub async fn multicall(target: &Target, params: &MulticallParams) -> Result<MulticallResult, LoadError> {
    let flavor = target.flavor;
    if !matches!(flavor, Flavor::Switchboard | Flavor::SocketIo) {
        return Err(LoadError::Unexpected {
            scenario: SCENARIO,
            detail: format!("{flavor} has no multicast call from a backend"),
        });
    }
    let connector = target.connector();
    let sessions: Vec<(usize, Ws)> = futures_util::stream::iter(0..params.sessions)
        .map(|n| {
            let connector = &connector;
            async move {
                let mut ws = connector.connect(n).await?;
                subscribe(&mut ws, flavor, 1).await?;
                Ok::<_, LoadError>((n, ws))
            }
        })
        .buffer_unordered(64)
        .try_collect()
        .await?;
    let shared = Arc::new(Shared::default());
    let tasks: Vec<_> = sessions
        .into_iter()
        .map(|(n, ws)| tokio::spawn(answer_calls(ws, flavor, n == FAST_SESSION, shared.clone())))
        .collect();
    let measured = measure(target, params, &shared).await;
    // A session that failed is the likelier cause of a failed call: its error goes first.
    stop_all(tasks).await?;
    measured
}

async fn measure(target: &Target, params: &MulticallParams, shared: &Shared) -> Result<MulticallResult, LoadError> {
    let flavor = target.flavor;
    let mut backend = Backend::connect(target.addr).await?;
    let (path, body) = request(flavor, "all");
    for _ in 0..params.warmup_calls {
        call_all(&mut backend, flavor, path, &body, params).await?;
    }
    let before = procfs::sample(target.pid)?;
    let started = Instant::now();
    let (mut calls, mut targets, mut latencies) = (0u64, 0u64, Vec::new());
    while calls < params.max_calls && (calls < params.min_calls || started.elapsed() < params.measure) {
        let sent = Instant::now();
        targets += call_all(&mut backend, flavor, path, &body, params).await? as u64;
        latencies.push(micros(sent.elapsed()));
        calls += 1;
    }
    let after = procfs::sample(target.pid)?;
    let seconds = started.elapsed().as_secs_f64();
    let after_first = if flavor == Flavor::Switchboard && params.first_calls > 0 {
        Some(after_first(&mut backend, params, shared).await?)
    } else {
        None
    };
    Ok(MulticallResult {
        calls,
        targets,
        seconds,
        cpu_seconds: after.cpu_seconds_since(&before),
        system_seconds: after.system_seconds_since(&before),
        latency: Percentiles::from_samples(latencies),
        after_first,
    })
}

/// Times `"policy": "first"` calls while every session but one answers
/// `params.slow_answer` late: from the fast session's answer to the
/// backend's. The first call is not timed: it warms the path up.
async fn after_first(
    backend: &mut Backend,
    params: &MulticallParams,
    shared: &Shared,
) -> Result<Percentiles, LoadError> {
    shared
        .slow_us
        .store(params.slow_answer.as_micros().max(1) as u64, Ordering::Relaxed);
    let (path, body) = request(Flavor::Switchboard, "first");
    let mut samples = Vec::with_capacity(params.first_calls);
    for call in 0..=params.first_calls {
        *shared.fast_answered.lock() = None;
        let answer = backend.post(path, &body).await?;
        let answered = Instant::now();
        let fast = shared
            .fast_answered
            .lock()
            .take()
            .ok_or_else(|| LoadError::Unexpected {
                scenario: SCENARIO,
                detail: "a \"first\" call was answered before the fast session answered".to_owned(),
            })?;
        check_first(&answer, params.verify)?;
        if call > 0 {
            samples.push(micros(answered.saturating_duration_since(fast)));
        }
        // The slow sessions' calls are cancelled or answered by then: the next call starts quiet.
        tokio::time::sleep(params.slow_answer + SETTLE).await;
    }
    shared.slow_us.store(0, Ordering::Relaxed);
    Ok(Percentiles::from_samples(samples))
}

/// The path and body of a multicast call with `policy` (switchboard's; the
/// Socket.IO peer always waits for every acknowledgement).
fn request(flavor: Flavor, policy: &str) -> (&'static str, String) {
    match flavor {
        Flavor::SocketIo => (
            "/multicall",
            format!(r#"{{"room":"{TOPIC}","method":"{METHOD}","data":1,"timeout_ms":{CALL_TIMEOUT_MS}}}"#),
        ),
        _ => (
            "/api",
            format!(
                r#"{{"jsonrpc":"2.0","id":1,"method":"call","params":{{"target":{{"topic":"{TOPIC}"}},"method":"{METHOD}","params":[1],"timeout_ms":{CALL_TIMEOUT_MS},"policy":"{policy}"}}}}"#
            ),
        ),
    }
}

/// Makes one call that every session must answer; returns how many did.
async fn call_all(
    backend: &mut Backend,
    flavor: Flavor,
    path: &str,
    body: &str,
    params: &MulticallParams,
) -> Result<usize, LoadError> {
    let answer = backend.post(path, body).await?;
    let answered = match flavor {
        Flavor::SocketIo => acks(&answer)?,
        _ => {
            let outcomes = outcomes(&answer)?;
            if params.verify
                && let Some(wrong) = outcomes.outcomes.iter().find(|o| o.error.is_some() || !o.is_one())
            {
                return Err(unexpected(format!("an outcome is not [1]: {wrong:?}")));
            }
            if !outcomes.met {
                return Err(unexpected(format!("\"all\" was not met: {}", answer.excerpt())));
            }
            outcomes.results()
        }
    };
    if answered != params.sessions {
        return Err(unexpected(format!(
            "{answered} of {} sessions answered: {}",
            params.sessions,
            answer.excerpt()
        )));
    }
    Ok(answered)
}

/// Checks a `"first"` call's answer: met, by the fast session (when verifying).
fn check_first(answer: &Answer, verify: bool) -> Result<(), LoadError> {
    let outcomes = outcomes(answer)?;
    if !outcomes.met || outcomes.results() == 0 {
        return Err(unexpected(format!("\"first\" was not met: {}", answer.excerpt())));
    }
    if verify {
        let fast_user = format!("u{FAST_SESSION}");
        let winner = outcomes.outcomes.iter().find(|o| o.result.is_some());
        if !winner.is_some_and(|o| o.is_one() && o.user.as_deref() == Some(fast_user.as_str())) {
            return Err(unexpected(format!("the fast session's answer did not win: {winner:?}")));
        }
    }
    Ok(())
}

/// A switchboard `call` answer with a policy: `{"result": {"outcomes", "met"}}`.
#[derive(Debug, Deserialize)]
struct ApiAnswer {
    result: Option<Outcomes>,
    error: Option<serde_json::Value>,
}

#[derive(Debug, Deserialize)]
struct Outcomes {
    outcomes: Vec<Outcome>,
    met: bool,
}

#[derive(Debug, Deserialize)]
struct Outcome {
    user: Option<String>,
    result: Option<serde_json::Value>,
    error: Option<serde_json::Value>,
}

impl Outcome {
    /// Whether the session answered what every session answers, `[1]`.
    fn is_one(&self) -> bool {
        self.result.as_ref().is_some_and(|r| *r == serde_json::json!([1]))
    }
}

impl Outcomes {
    /// Sessions that answered with a result.
    fn results(&self) -> usize {
        self.outcomes.iter().filter(|o| o.result.is_some()).count()
    }
}

fn outcomes(answer: &Answer) -> Result<Outcomes, LoadError> {
    if answer.status != 200 {
        return Err(unexpected(format!("unexpected /api answer: {}", answer.excerpt())));
    }
    let parsed: ApiAnswer = serde_json::from_str(&answer.body)
        .map_err(|e| unexpected(format!("unreadable /api answer ({e}): {}", answer.excerpt())))?;
    match parsed {
        ApiAnswer {
            result: Some(outcomes),
            error: None,
        } => Ok(outcomes),
        _ => Err(unexpected(format!("/api call failed: {}", answer.excerpt()))),
    }
}

/// The Socket.IO peer's answer: `{"acks": n}`.
fn acks(answer: &Answer) -> Result<usize, LoadError> {
    #[derive(Deserialize)]
    struct Acks {
        acks: usize,
    }
    if answer.status != 200 {
        return Err(unexpected(format!(
            "unexpected /multicall answer: {}",
            answer.excerpt()
        )));
    }
    serde_json::from_str::<Acks>(&answer.body)
        .map(|a| a.acks)
        .map_err(|e| unexpected(format!("unreadable /multicall answer ({e}): {}", answer.excerpt())))
}

fn unexpected(detail: String) -> LoadError {
    LoadError::Unexpected {
        scenario: SCENARIO,
        detail,
    }
}

fn micros(d: Duration) -> u32 {
    d.as_micros().min(u128::from(u32::MAX)) as u32
}

/// One session: answers the server's calls (the slow ones late while
/// `slow_us` is set, unless `fast`), answers an `rpc.cancel` of a call it
/// still holds with `-32011` as switchboard's clients do, and answers pings.
async fn answer_calls(mut ws: Ws, flavor: Flavor, fast: bool, shared: Arc<Shared>) -> Result<(), LoadError> {
    // Calls held back: when each is due, its id and its params.
    let mut held: VecDeque<(tokio::time::Instant, String, String)> = VecDeque::new();
    loop {
        let due = held.front().map(|(at, ..)| *at);
        tokio::select! {
            biased;
            () = tokio::time::sleep_until(due.unwrap_or_else(tokio::time::Instant::now)), if due.is_some() => {
                if let Some((_, id, params)) = held.pop_front() {
                    ws.send(Message::text(flavor.answer(&id, &params))).await?;
                }
            }
            message = ws.next() => {
                let Some(message) = message else { return Err(LoadError::Closed(SCENARIO)) };
                let Message::Text(text) = message? else { continue };
                let text = text.as_str();
                if let Some(id) = cancelled(flavor, text) {
                    if let Some(at) = held.iter().position(|(_, held_id, _)| held_id == id) {
                        held.remove(at);
                        ws.send(Message::text(cancelled_answer(id))).await?;
                    }
                    continue;
                }
                match flavor.classify(text) {
                    Incoming::ServerCall { id, params } => {
                        let slow = Duration::from_micros(shared.slow_us.load(Ordering::Relaxed));
                        if fast || slow.is_zero() {
                            if fast {
                                *shared.fast_answered.lock() = Some(Instant::now());
                            }
                            ws.send(Message::text(flavor.answer(id, params))).await?;
                        } else {
                            held.push_back((tokio::time::Instant::now() + slow, id.to_owned(), params.to_owned()));
                        }
                    }
                    Incoming::Ping => ws.send(Message::text(flavor.pong())).await?,
                    _ => {}
                }
            }
        }
    }
}

/// The id of the call an `rpc.cancel` from switchboard gives up on.
fn cancelled(flavor: Flavor, text: &str) -> Option<&str> {
    if flavor != Flavor::Switchboard || !text.contains(r#""method":"rpc.cancel""#) {
        return None;
    }
    member(member(text, r#""params":"#)?, r#""id":"#)
}

/// The answer to a call given up by the server: `-32011`, as switchboard's clients send it.
fn cancelled_answer(id: &str) -> String {
    format!(r#"{{"jsonrpc":"2.0","id":{id},"error":{{"code":-32011,"message":"Cancelled"}}}}"#)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cancels_are_told_from_calls() {
        let cancel = r#"{"jsonrpc":"2.0","method":"rpc.cancel","params":{"id":17}}"#;
        assert_eq!(cancelled(Flavor::Switchboard, cancel), Some("17"));
        let call = r#"{"jsonrpc":"2.0","id":17,"method":"bench.multi","params":[1]}"#;
        assert_eq!(cancelled(Flavor::Switchboard, call), None);
        assert_eq!(cancelled(Flavor::SocketIo, r#"4217["bench.multi",1]"#), None);
    }

    #[test]
    fn outcomes_are_counted() {
        let answer = Answer {
            status: 200,
            body: r#"{"jsonrpc":"2.0","id":1,"result":{"outcomes":[
                {"session":"a","user":"u0","node":"n","result":[1]},
                {"session":"b","user":"u1","node":"n","error":{"code":-32011,"message":"Cancelled"}}
            ],"met":true}}"#
                .to_owned(),
        };
        let outcomes = outcomes(&answer).unwrap();
        assert_eq!(outcomes.results(), 1);
        check_first(&answer, true).unwrap();
        let failed = Answer {
            status: 200,
            body: r#"{"jsonrpc":"2.0","id":1,"error":{"code":-32602,"message":"Invalid params"}}"#.to_owned(),
        };
        assert!(super::outcomes(&failed).is_err());
        let acked = Answer {
            status: 200,
            body: r#"{"acks":2000}"#.to_owned(),
        };
        assert_eq!(acks(&acked).unwrap(), 2000);
    }
}
