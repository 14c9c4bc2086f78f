/**
 * switchboard-client: the browser and Node client of the switchboard
 * gateway, JSON-RPC 2.0 over WebSocket in both directions.
 *
 * - {@link Client}: one session — calls, notifications, subscriptions,
 *   handlers for the server's calls, reconnects.
 * - {@link ServerApi}: the gateway's server API over HTTP (`POST /api`).
 * - {@link backoff}, {@link transition}, the codec: the pure pieces, exported
 *   for tests and tools.
 *
 * @packageDocumentation
 */

export { Client } from "./client.js";
export type {
  ClientEvents,
  ClientOptions,
  Contract,
  DisconnectInfo,
  RequestContext,
  RequestHandler,
  Untyped,
  WebSocketConstructor,
  WebSocketLike,
} from "./client.js";
export { Subscription } from "./subscription.js";
export type { SubscribeOptions, Subscribed, SubscriptionEvents, SubscriptionState } from "./subscription.js";
export { RpcError, TimeoutError, DisconnectedError } from "./errors.js";
export type { ErrorObject } from "./errors.js";
export type { CallOptions } from "./pending.js";
export { ServerApi } from "./api.js";
export type { ApiMethods, CallEntry, CallOutcomes, CallPolicy, CallProgress, CallSummary, PresenceEntry, StreamLine, Scope, ServerApiOptions, SessionEvent, Stats } from "./api.js";
export { backoff } from "./backoff.js";
export { transition, closeClass } from "./state.js";
export type { State, StateEvent } from "./state.js";
export { Emitter } from "./emitter.js";
export type { EventMap, Listener } from "./emitter.js";
export type { Timers } from "./timers.js";
export * as codec from "./codec.js";
export type { Params, ReceivedParams, RawId } from "./codec.js";
export { PROTOCOL_VERSION, ErrorCode, ERROR_MESSAGES, CLOSE_CODES } from "./protocol.js";
export type * from "./protocol.js";
