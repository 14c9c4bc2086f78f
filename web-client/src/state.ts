/**
 * The connection's state machine, as a pure transition table.
 *
 * ```text
 *  disconnected ──connect──► connecting ──welcome──► connected
 *        ▲                    │    ▲                    │
 *        │ close (any state)  │    │ retry / connect    │ lost
 *        │                    ▼    │                    ▼
 *        │      failed ◄──lost(terminal)── waiting ◄──lost(reconnect)
 *        │        │                                     ▲
 *        │        └──connect──► connecting              │
 * ```
 *
 * `connecting` covers fetching a token, opening the socket and waiting for
 * `rpc.welcome`; `waiting` is the backoff pause before the next attempt;
 * `failed` is reached on a terminal close code (4500–4999) and is left only by
 * an explicit `connect()`.
 *
 * @module
 */

import type { CloseClass } from "./protocol.js";

/** Where a {@link Client}'s connection is. */
export type State = "disconnected" | "connecting" | "connected" | "waiting" | "failed";

/** What can happen to the connection. */
export type StateEvent =
  /** The application asked to connect. */
  | { type: "connect" }
  /** The server sent `rpc.welcome`: the session is up. */
  | { type: "welcome" }
  /** The socket closed, failed to open, or timed out; `retry` says what to do next. */
  | { type: "lost"; retry: CloseClass }
  /** The backoff timer fired. */
  | { type: "retry" }
  /** The application closed the client. */
  | { type: "close" };

/**
 * The state after `event` in `state`, or `undefined` when the event does not
 * apply there (a stale timer, a second `connect()`): the caller ignores it.
 */
export function transition(state: State, event: StateEvent): State | undefined {
  if (event.type === "close") return "disconnected";
  switch (state) {
    case "disconnected":
    case "failed":
      return event.type === "connect" ? "connecting" : undefined;
    case "connecting":
      if (event.type === "welcome") return "connected";
      if (event.type === "lost") return event.retry === "Terminal" ? "failed" : "waiting";
      return undefined;
    case "connected":
      if (event.type === "lost") return event.retry === "Terminal" ? "failed" : "waiting";
      return undefined;
    case "waiting":
      return event.type === "retry" || event.type === "connect" ? "connecting" : undefined;
  }
}

/**
 * How to react to a close code, by range: 4500–4999 are terminal, 1012
 * means "reconnect now" (with a little jitter), everything else reconnects
 * with backoff.
 */
export function closeClass(code: number): CloseClass {
  if (code === 1012) return "ReconnectNow";
  if (code >= 4500 && code <= 4999) return "Terminal";
  return "Reconnect";
}
