/**
 * {@link Client}: a switchboard session over one WebSocket, reconnecting
 * with full-jitter backoff, resubscribing from the last positions, and
 * answering the server's calls.
 *
 * @module
 */

import { backoff } from "./backoff.js";
import {
  INTERNAL_ERROR,
  METHOD_NOT_FOUND,
  decode,
  encodeError,
  encodeNotification,
  encodeProgress,
  encodeRequest,
  encodeResult,
  protocolAnswers,
  standardMessage,
  type Message,
  type Params,
  type RawId,
  type ReceivedParams,
} from "./codec.js";
import { Emitter } from "./emitter.js";
import { DisconnectedError, RpcError } from "./errors.js";
import { PendingCalls, type CallOptions } from "./pending.js";
import {
  ErrorCode,
  PROTOCOL_VERSION,
  type BuiltinMethods,
  type Disconnect,
  type HistoryParams,
  type Publication,
  type StreamPosition,
  type SubscribeResult,
  type Welcome,
} from "./protocol.js";
import { closeClass, transition, type State, type StateEvent } from "./state.js";
import { Subscription, type SubscribeOptions, type SubscriptionOwner } from "./subscription.js";
import { defaultTimers, type Timers } from "./timers.js";

/** The part of the WebSocket API the client uses: the browser's `WebSocket` and the `ws` package both fit. */
export interface WebSocketLike {
  readonly readyState: number;
  onopen: ((event: unknown) => void) | null;
  onclose: ((event: { code: number; reason: string }) => void) | null;
  onerror: ((event: unknown) => void) | null;
  onmessage: ((event: { data: unknown }) => void) | null;
  send(data: string): void;
  close(code?: number, reason?: string): void;
}

/** A WebSocket constructor: `globalThis.WebSocket` in browsers, `WebSocket` from `ws` in Node. */
export type WebSocketConstructor = new (url: string, protocols?: string | string[]) => WebSocketLike;

/** Options of a {@link Client}. */
export interface ClientOptions {
  /** A fixed token (JWT) to authenticate with. */
  token?: string;
  /**
   * Fetches a token; called before every connection attempt, and when the
   * gateway warns that the session's token expires soon (`rpc.expiring`):
   * the new token is then sent with `rpc.refresh`. Wins over `token`.
   */
  getToken?: () => string | undefined | Promise<string | undefined>;
  /**
   * How the token travels: as a `bearer.<token>` WebSocket subprotocol (never
   * logged by proxies), or as a `token` query parameter.
   * @default "protocol"
   */
  tokenIn?: "protocol" | "query";
  /**
   * The WebSocket implementation. Required in Node (pass `WebSocket` from the `ws` package).
   * @default globalThis.WebSocket
   */
  WebSocket?: WebSocketConstructor;
  /** The clock. @default the platform's setTimeout, clearTimeout and Date.now */
  timers?: Timers;
  /** Uniform randomness in [0, 1) for the backoff jitter. @default Math.random */
  random?: () => number;
  /** Default timeout of {@link Client.call}, in milliseconds; 0 waits forever. @default 30000 */
  timeout?: number;
  /** How long opening the socket and receiving `rpc.welcome` may take. @default 10000 */
  connectTimeout?: number;
  /** The shortest reconnect delay (the floor of the backoff), in milliseconds. @default 500 */
  minReconnectDelay?: number;
  /** The longest reconnect delay, in milliseconds. @default 20000 */
  maxReconnectDelay?: number;
  /**
   * After this many milliseconds without a frame from the server, send
   * `rpc.ping`; without an answer within as long again, reconnect. 0 disables.
   * (Browsers cannot see the server's WebSocket pings.)
   * @default 30000
   */
  heartbeat?: number;
  /** Connect from the constructor. @default true */
  autoConnect?: boolean;
  /**
   * Follow the user's personal topic `user:{id}` (recoverable pushes to the
   * user) and resume it after a reconnect. Its publications arrive as
   * `publication` events and through {@link Client.personal}.
   * @default true
   */
  personalTopic?: boolean;
  /** The most calls and notifications waiting for a connection or an answer. @default 1000 */
  maxPending?: number;
}

/** Why the connection closed, as the `disconnected` event reports it. */
export interface DisconnectInfo {
  /** The close code (1006 when the connection dropped without one). */
  code: number;
  /** The close reason. */
  reason: string;
  /** Whether the client will try again. */
  reconnect: boolean;
  /** Milliseconds until the next attempt, when it reconnects. */
  delay: number | undefined;
}

/** The events of a {@link Client}, by name. */
export interface ClientEvents {
  /** The state machine moved. */
  state: { state: State; previous: State };
  /** A session is up (first connection and every reconnect). */
  connected: Welcome;
  /** The connection closed. */
  disconnected: DisconnectInfo;
  /** A publication on any topic, personal topic included. */
  publication: Publication;
  /** A notification from the server that is not the gateway's own (`rpc.*`). */
  notification: { method: string; params: ReceivedParams | undefined };
  /** Something went wrong that no call can report (a bad frame, a failed token fetch, a throwing listener). */
  error: Error;
}

/** What a {@link Client.handle} handler receives besides the params. */
export interface RequestContext {
  /** The method called. */
  method: string;
  /** The server's request id (raw JSON text). */
  id: RawId;
  /**
   * Aborted when the server gives up (`rpc.cancel`) or the connection closes.
   * On `rpc.cancel` the call is answered `-32011` (`Cancelled`) at once, and
   * whatever the handler returns afterwards is not sent.
   */
  signal: AbortSignal;
  /**
   * Reports progress to the caller: sends `rpc.progress {id, progress}`
   * (any JSON value). Returns whether it was sent: a report is dropped once
   * the call is answered or cancelled, or while there is no connection.
   */
  progress(progress: unknown): boolean;
}

/** Listens to a push as it arrives. */
type NotificationListener = (params: ReceivedParams | undefined) => void;

/** Answers a server → client call: the return value is the result, a thrown error the error. */
export type RequestHandler = (params: ReceivedParams | undefined, context: RequestContext) => unknown;

/**
 * What a client is typed with: the application's methods (the client calls
 * them), client methods (the server calls them, {@link Client.handle}) and
 * pushes ({@link Client.on}). `switchboard-client generate` writes one from
 * the gateway's OpenRPC document; a map with a string index (as in
 * {@link Untyped}) accepts any name.
 */
export interface Contract {
  /** Method name → `{ params; result }`. */
  methods: object;
  /** Method name → `{ params; result }`. */
  clientMethods: object;
  /** Push name → params. */
  notifications: object;
}

/** The contract of a client without one: any method, any params, results `unknown`. */
export interface Untyped {
  methods: { [method: string]: { params: Params | undefined; result: unknown } };
  clientMethods: { [method: string]: { params: ReceivedParams | undefined; result: unknown } };
  notifications: { [method: string]: ReceivedParams | undefined };
}

type Builtin = keyof BuiltinMethods;

/** `unknown` when the contract's methods are open (any name, as in {@link Untyped}), else `never`. */
type OpenMethods<C extends Contract> = string extends keyof C["methods"] ? unknown : never;

/** The contract's own method names, when it lists them; `never` for an open contract. */
type AppMethod<C extends Contract> = string extends keyof C["methods"] ? never : Exclude<keyof C["methods"] & string, Builtin>;

/** The params of a method entry `{ params; result }`: structured (by position or by name) or none. */
type ParamsOf<E> = E extends { params: infer P extends Params | undefined } ? P : never;

/** The result of a method entry `{ params; result }`. */
type ResultOf<E> = E extends { result: infer R } ? R : never;

/** A method's params and the call's options, the params optional when they may be `undefined`. */
type ArgsOf<P> = undefined extends P ? [params?: P, options?: CallOptions] : [params: P, options?: CallOptions];

/** A method's params alone (for {@link Client.notify}), optional when they may be `undefined`. */
type NotifyArgsOf<P> = undefined extends P ? [params?: P] : [params: P];

/** A handler for a client method of entry `E`: its params in, its result (or a promise of it) out. */
type HandlerOf<E> = (params: ParamsOf<E>, context: RequestContext) => ResultOf<E> | Promise<ResultOf<E>>;

/** Params of a built-in method, optional when the method takes none. */
type BuiltinArgs<M extends Builtin> = ArgsOf<BuiltinMethods[M]["params"]>;

const OPEN = 1;

/**
 * A switchboard session. In a browser:
 *
 * ```ts
 * import { Client } from "switchboard-client";
 * const client = new Client("wss://example.com/ws", { getToken: () => fetchToken() });
 * client.handle("ui.confirm", async ([question]) => window.confirm(String(question)));
 * client.on("chat.message", (params) => show(params));
 * const me = await client.call("whoami");
 * ```
 *
 * In Node, pass `WebSocket` from the `ws` package in the options.
 *
 * Typed with a contract that `switchboard-client generate` writes from the
 * gateway's OpenRPC document, `new Client<Contract>(url)` accepts only the
 * contract's methods, client methods and pushes, with their params and results.
 */
export class Client<C extends Contract = Untyped> implements SubscriptionOwner {
  /** Typed events: `state`, `connected`, `disconnected`, `publication`, `notification`, `error`. */
  readonly events = new Emitter<ClientEvents>((e) => this.#reportError(e));
  readonly #url: string;
  readonly #options: ClientOptions;
  readonly #timers: Timers;
  readonly #random: () => number;
  readonly #WebSocket: WebSocketConstructor;
  readonly #pending: PendingCalls;
  readonly #notifications = new Map<string, Set<NotificationListener>>();
  readonly #handlers = new Map<string, RequestHandler>();
  readonly #subscriptions = new Map<string, Subscription>();
  /** Server requests being answered, by their id's canonical text (see {@link idKey}). */
  readonly #running = new Map<string, RunningRequest>();

  #state: State = "disconnected";
  #socket: WebSocketLike | undefined;
  /** Incremented for every socket: callbacks of an older socket are ignored. */
  #transport = 0;
  #attempt = 0;
  #nextId = 1;
  #welcome: Welcome | undefined;
  #personal: Subscription | undefined;
  #notice: Disconnect | undefined;
  #retryTimer: unknown;
  #connectTimer: unknown;
  #heartbeatTimer: unknown;
  #refreshing = false;
  #lastFrameAt = 0;
  #pinging = false;

  /**
   * @param url - The gateway's WebSocket endpoint, e.g. `wss://example.com/ws`.
   */
  constructor(url: string, options: ClientOptions = {}) {
    this.#url = url;
    this.#options = options;
    this.#timers = options.timers ?? defaultTimers;
    this.#random = options.random ?? Math.random;
    const ctor = options.WebSocket ?? (globalThis as { WebSocket?: WebSocketConstructor }).WebSocket;
    if (ctor === undefined) {
      throw new TypeError("no WebSocket implementation: pass options.WebSocket (in Node, from the ws package)");
    }
    this.#WebSocket = ctor;
    this.#pending = new PendingCalls(
      this.#timers,
      {
        cancelled: (id) => this.#sendRaw(encodeNotification("rpc.cancel", { id })),
        progressFailed: (error) => this.#reportError(error),
      },
      options.maxPending ?? 1000,
    );
    if (options.autoConnect ?? true) this.connect();
  }

  /** Where the connection is. */
  get state(): State {
    return this.#state;
  }

  /** The current session's `rpc.welcome` (session id, user, limits), while connected. */
  get session(): Welcome | undefined {
    return this.#state === "connected" ? this.#welcome : undefined;
  }

  /** The subscription to the user's personal topic, once the first session is up. */
  get personal(): Subscription | undefined {
    return this.#personal;
  }

  /** The subscriptions, by topic. */
  get subscriptions(): ReadonlyMap<string, Subscription> {
    return this.#subscriptions;
  }

  /** Starts connecting (again, after {@link close} or a terminal close code); skips a pending backoff wait. */
  connect(): void {
    if (this.#move({ type: "connect" })) void this.#open();
  }

  /** Resolves once a session is up; rejects if the client closes or fails first. */
  ready(): Promise<Welcome> {
    if (this.#state === "connected" && this.#welcome !== undefined) return Promise.resolve(this.#welcome);
    if (this.#state === "disconnected" || this.#state === "failed") {
      return Promise.reject(new DisconnectedError(`client is ${this.#state}`));
    }
    return new Promise((resolve, reject) => {
      const offs = [
        this.events.on("connected", (w) => {
          offs.forEach((off) => off());
          resolve(w);
        }),
        this.events.on("state", ({ state }) => {
          if (state === "disconnected" || state === "failed") {
            offs.forEach((off) => off());
            reject(new DisconnectedError(`client is ${state}`));
          }
        }),
      ];
    });
  }

  /**
   * Closes the connection and stops reconnecting. Calls waiting for an
   * answer or a connection reject with {@link DisconnectedError}.
   * Subscriptions and handlers are kept for a later {@link connect}.
   */
  close(code = 1000, reason = "client closed"): void {
    const error = new DisconnectedError("client closed", code, reason);
    this.#move({ type: "close" });
    this.#teardown(error, code, reason);
    this.#pending.failAll(error);
  }

  /**
   * Calls a method on the server. Waits for a connection if there is none
   * yet (within the timeout). Rejects with {@link RpcError} when the server
   * answers an error, {@link TimeoutError} when no answer comes in time,
   * {@link DisconnectedError} when the connection closes first, or the
   * signal's reason when aborted; for a call given up after it was sent,
   * the server is sent `rpc.cancel`, which stops the method's work if it
   * is still running. `options.onProgress` receives the progress the method
   * reports (`rpc.progress`) before the call settles, never after.
   *
   * Without a contract any method may be called, its result typed by the
   * caller (`call<R>(method, params)`); with one, only the built-in methods
   * and the contract's.
   */
  call<M extends Builtin>(method: M, ...args: BuiltinArgs<M>): Promise<BuiltinMethods[M]["result"]>;
  call<M extends AppMethod<C>>(method: M, ...args: ArgsOf<ParamsOf<C["methods"][M]>>): Promise<ResultOf<C["methods"][M]>>;
  call<R = unknown, M extends string = string>(
    method: M & (M extends Builtin ? never : unknown) & OpenMethods<C>,
    params?: Params,
    options?: CallOptions,
  ): Promise<R>;
  call(method: string, params?: Params, options: CallOptions = {}): Promise<unknown> {
    const id = this.#nextId++;
    return this.#enqueue(id, method, encodeRequest(id, method, params), {
      timeout: options.timeout ?? this.#options.timeout ?? 30_000,
      ...(options.signal === undefined ? {} : { signal: options.signal }),
      ...(options.onProgress === undefined ? {} : { onProgress: options.onProgress }),
    });
  }

  /**
   * Sends a notification (no answer). Waits for a connection if there is
   * none yet; resolves once sent. With a contract, only its methods.
   */
  notify<M extends AppMethod<C>>(method: M, ...args: NotifyArgsOf<ParamsOf<C["methods"][M]>>): Promise<void>;
  notify(method: string & OpenMethods<C>, params?: Params): Promise<void>;
  notify(method: string, params?: Params): Promise<void> {
    const sent = this.#enqueue(undefined, method, encodeNotification(method, params), {}) as Promise<void>;
    // Fire and forget is the usual use: an unawaited failure must not be an unhandled rejection.
    sent.catch(() => {});
    return sent;
  }

  /** Publishes on a topic (when the gateway lets clients publish). */
  publish(topic: string, data: unknown, options?: CallOptions): Promise<BuiltinMethods["rpc.publish"]["result"]> {
    return this.call("rpc.publish", { topic, data }, options);
  }

  /**
   * Reads what a recoverable topic keeps (`rpc.history`), oldest first: with
   * `since`, the publications after that position (at most `limit`; ask again
   * from the last one's offset for more); without, the most recent `limit`
   * (default 100). A position the gateway no longer has answers
   * `recovered: false` with its `gap` and no publications: reload state.
   * Rejects with {@link RpcError} `-32602` for a topic without history and
   * `-32001` for one the user may not read.
   */
  history(
    topic: string,
    query: Omit<HistoryParams, "topic"> = {},
    options?: CallOptions,
  ): Promise<BuiltinMethods["rpc.history"]["result"]> {
    return this.call("rpc.history", { ...query, topic }, options);
  }

  /**
   * Listens to notifications named `method` pushed by the server; returns
   * the function that stops listening. With a contract, only its pushes.
   */
  on<M extends keyof C["notifications"] & string>(method: M, handler: (params: C["notifications"][M]) => void): () => void {
    let set = this.#notifications.get(method);
    if (set === undefined) {
      set = new Set();
      this.#notifications.set(method, set);
    }
    // The contract types what the server sends; what arrives is passed on as it is.
    set.add(handler as NotificationListener);
    return () => set.delete(handler as NotificationListener);
  }

  /**
   * Answers the server's calls to `method`: the handler's return value (or
   * resolved promise) becomes the result; a thrown {@link RpcError} becomes
   * that error, anything else `-32603`. One handler per method; returns the
   * function that removes it. With a contract, only its client methods.
   */
  handle<M extends keyof C["clientMethods"] & string>(method: M, handler: HandlerOf<C["clientMethods"][M]>): () => void {
    if (method.startsWith("rpc.")) throw new TypeError(`${method}: names starting with rpc. belong to the gateway`);
    // The contract types what the server sends; what arrives is passed on as it is.
    this.#handlers.set(method, handler as RequestHandler);
    return () => {
      if (this.#handlers.get(method) === handler) this.#handlers.delete(method);
    };
  }

  /**
   * Follows a topic; the returned {@link Subscription} lives across
   * reconnects. Subscribing to a topic twice returns the same subscription.
   */
  subscribe(topic: string, options: SubscribeOptions = {}): Subscription {
    const existing = this.#subscriptions.get(topic);
    if (existing !== undefined) return existing;
    const sub = new Subscription(this, topic, options);
    this.#subscriptions.set(topic, sub);
    if (this.#state === "connected") void this.#subscribe([sub]);
    return sub;
  }

  /** @internal A subscription's listener threw: report it as an `error` event. */
  listenerFailed(error: unknown): void {
    this.#reportError(error);
  }

  /** @internal Called by {@link Subscription.unsubscribe}. */
  async unsubscribe(subscription: Subscription): Promise<void> {
    if (this.#subscriptions.get(subscription.topic) !== subscription) return;
    this.#subscriptions.delete(subscription.topic);
    if (subscription === this.#personal) this.#personal = undefined;
    subscription.ended("unsubscribed");
    if (this.#state === "connected") {
      await this.call("rpc.unsubscribe", { topics: [subscription.topic] });
    }
  }

  // --- the state machine and the socket ---------------------------------

  #move(event: StateEvent): boolean {
    const next = transition(this.#state, event);
    if (next === undefined) return false;
    const previous = this.#state;
    this.#state = next;
    if (next !== previous) this.events.emit("state", { state: next, previous });
    return true;
  }

  async #open(): Promise<void> {
    const transport = ++this.#transport;
    this.#clearTimers();
    let token: string | undefined;
    try {
      token = this.#options.getToken ? await this.#options.getToken() : this.#options.token;
    } catch (error) {
      if (transport !== this.#transport) return;
      this.#reportError(error);
      this.#lost(transport, 1006, "token unavailable");
      return;
    }
    if (transport !== this.#transport || this.#state !== "connecting") return;
    let url = this.#url;
    const protocols = [PROTOCOL_VERSION];
    if (token) {
      if (this.#options.tokenIn === "query") {
        url += (url.includes("?") ? "&" : "?") + "token=" + encodeURIComponent(token);
      } else {
        protocols.push(`bearer.${token}`);
      }
    }
    let socket: WebSocketLike;
    try {
      socket = new this.#WebSocket(url, protocols);
    } catch (error) {
      this.#reportError(error);
      this.#lost(transport, 1006, "could not open the socket");
      return;
    }
    this.#socket = socket;
    this.#notice = undefined;
    const connectTimeout = this.#options.connectTimeout ?? 10_000;
    this.#connectTimer = this.#timers.setTimeout(() => {
      if (transport === this.#transport && this.#state === "connecting") {
        this.#lost(transport, 4001, "connect timeout");
      }
    }, connectTimeout);
    socket.onmessage = (event) => {
      if (transport !== this.#transport) return;
      if (typeof event.data === "string") this.#receive(event.data);
      else this.#reportError(new Error("binary frame received; switchboard speaks JSON text frames"));
    };
    socket.onclose = (event) => this.#lost(transport, event.code || 1006, event.reason ?? "");
    socket.onerror = () => {
      // A close event always follows; it carries what we act on.
    };
  }

  /** The current transport ended: clean up, then wait, reconnect or stop. */
  #lost(transport: number, code: number, reason: string): void {
    if (transport !== this.#transport) return;
    const notice = this.#notice;
    let retry = closeClass(code);
    if (notice !== undefined && !notice.reconnect) retry = "Terminal";
    const error = new DisconnectedError(`connection closed (${code}${reason ? ": " + reason : ""})`, code, reason);
    // Tell the server why when it is our decision (a timeout), else close politely.
    this.#teardown(error, code >= 4000 && code < 4500 ? code : 1000, reason);
    if (!this.#move({ type: "lost", retry })) return;
    let delay: number | undefined;
    if (this.#state === "waiting") {
      const min = this.#options.minReconnectDelay ?? 500;
      const max = this.#options.maxReconnectDelay ?? 20_000;
      const random = this.#random();
      // A draining node (1012): come back at once, spread over [0, min). Otherwise
      // the first retry counts as attempt 1, since attempt 0 of `backoff` has an
      // empty window and clients that lost the same server would retry in lockstep.
      delay =
        retry === "ReconnectNow"
          ? Math.floor(Math.min(Math.max(random, 0), 1) * min)
          : backoff(this.#attempt + 1, min, max, random);
      this.#attempt++;
      this.#retryTimer = this.#timers.setTimeout(() => {
        this.#retryTimer = undefined;
        if (this.#move({ type: "retry" })) void this.#open();
      }, delay);
    } else {
      // Terminal: nothing waiting for a connection will get one.
      this.#pending.failAll(error);
    }
    this.events.emit("disconnected", { code, reason, reconnect: this.#state === "waiting", delay });
  }

  /**
   * The one teardown: forget the socket (its late callbacks are ignored),
   * close it, stop the timers, fail what was sent on it and abort the
   * handlers still running for it.
   */
  #teardown(error: DisconnectedError, code: number, reason: string): void {
    this.#transport++;
    this.#clearTimers();
    const socket = this.#socket;
    this.#socket = undefined;
    if (socket !== undefined) {
      socket.onmessage = null;
      socket.onclose = null;
      socket.onopen = null;
      try {
        if (socket.readyState <= OPEN) socket.close(code, reason.slice(0, 100));
      } catch {
        // Already closing.
      }
    }
    this.#pending.failSent(error);
    // Their answers can no longer be sent: the handlers only learn why.
    for (const request of this.#running.values()) request.controller.abort(error);
    this.#running.clear();
    for (const sub of this.#subscriptions.values()) sub.suspended();
    this.#pinging = false;
  }

  #clearTimers(): void {
    for (const timer of [this.#retryTimer, this.#connectTimer, this.#heartbeatTimer]) {
      if (timer !== undefined) this.#timers.clearTimeout(timer);
    }
    this.#retryTimer = this.#connectTimer = this.#heartbeatTimer = undefined;
  }

  #sendRaw(frame: string): boolean {
    const socket = this.#socket;
    if (socket === undefined || socket.readyState !== OPEN) return false;
    try {
      socket.send(frame);
      return true;
    } catch (error) {
      this.#reportError(error);
      return false;
    }
  }

  /**
   * Registers a call or notification and sends it when connected. `first`
   * sends it ahead of whatever else waits (the resubscribe after a welcome).
   */
  #enqueue(id: number | undefined, method: string, frame: string, options: CallOptions, first = false): Promise<unknown> {
    if (this.#state === "disconnected" || this.#state === "failed") {
      return Promise.reject(new DisconnectedError(`client is ${this.#state}`));
    }
    const promise = this.#pending.add(id, method, frame, options);
    if (this.#state === "connected") {
      const entry = first ? this.#pending.unsent().find((e) => e.id === id) : undefined;
      if (entry !== undefined && this.#sendRaw(entry.frame)) this.#pending.markSent(entry);
      this.#flush();
    }
    return promise;
  }

  /** Sends what waits for the connection, oldest first. */
  #flush(): void {
    for (const entry of this.#pending.unsent()) {
      if (!this.#sendRaw(entry.frame)) return;
      this.#pending.markSent(entry);
    }
  }

  // --- frames in ----------------------------------------------------------

  #receive(text: string): void {
    this.#lastFrameAt = this.#timers.now();
    const frame = decode(text);
    for (const answer of protocolAnswers(frame)) this.#sendRaw(answer);
    if (frame.kind === "single") this.#message(frame.message);
    else if (frame.kind === "batch") for (const m of frame.messages) this.#message(m);
    else this.#reportError(new Error(`unreadable frame from the server (${frame.kind})`));
  }

  #message(message: Message): void {
    switch (message.kind) {
      case "request":
        this.#request(message.id, message.method, message.params);
        return;
      case "notification":
        this.#notification(message.method, message.params);
        return;
      case "result":
      case "error": {
        const id = Number(message.id);
        const outcome = message.kind === "result" ? { result: message.result } : { error: message.error };
        this.#pending.settle(id, outcome);
        return;
      }
      case "invalid":
        this.#reportError(new Error(`invalid message from the server: ${message.reason}`));
        return;
    }
  }

  #notification(method: string, params: ReceivedParams | undefined): void {
    const p = (params ?? {}) as Record<string, unknown>;
    switch (method) {
      case "rpc.welcome":
        this.#welcomed(p as unknown as Welcome);
        return;
      case "rpc.message":
        this.#publication(p as unknown as Publication);
        return;
      case "rpc.cancel":
        this.#running.get(JSON.stringify(p["id"]))?.cancel();
        return;
      case "rpc.progress":
        if (typeof p["id"] === "number") this.#pending.progress(p["id"], p["progress"]);
        return;
      case "rpc.disconnect":
        this.#notice = p as unknown as Disconnect;
        return;
      case "rpc.expiring":
        void this.#refresh();
        return;
    }
    if (method.startsWith("rpc.")) return;
    this.events.emit("notification", { method, params });
    const set = this.#notifications.get(method);
    if (set === undefined) return;
    for (const handler of [...set]) {
      try {
        handler(params);
      } catch (error) {
        this.#reportError(error);
      }
    }
  }

  #request(id: RawId, method: string, params: ReceivedParams | undefined): void {
    const handler = this.#handlers.get(method);
    if (handler === undefined) {
      this.#sendRaw(encodeError(id, { code: METHOD_NOT_FOUND, message: standardMessage(METHOD_NOT_FOUND) }));
      return;
    }
    const transport = this.#transport;
    const controller = new AbortController();
    const key = idKey(id);
    let answered = false;
    // The call's one answer: the handler's, or -32011 on rpc.cancel, whichever comes first.
    const answer = (frame: string): void => {
      if (answered) return;
      answered = true;
      if (this.#running.get(key) === request) this.#running.delete(key);
      if (transport === this.#transport && !controller.signal.aborted) this.#sendRaw(frame);
    };
    const request: RunningRequest = {
      controller,
      cancel: () => {
        answer(encodeError(id, { code: ErrorCode.Cancelled, message: standardMessage(ErrorCode.Cancelled) }));
        controller.abort(new DisconnectedError("cancelled by the server"));
      },
    };
    this.#running.set(key, request);
    const progress = (value: unknown): boolean =>
      !answered && transport === this.#transport && !controller.signal.aborted && this.#sendRaw(encodeProgress(id, value));
    new Promise((resolve) => resolve(handler(params, { method, id, signal: controller.signal, progress }))).then(
      (result) => answer(encodeResult(id, result)),
      (error: unknown) => answer(encodeError(id, toErrorObject(error))),
    );
  }

  #welcomed(welcome: Welcome): void {
    if (this.#state !== "connecting") return;
    if (this.#connectTimer !== undefined) this.#timers.clearTimeout(this.#connectTimer);
    this.#connectTimer = undefined;
    const userChanged = this.#welcome !== undefined && this.#welcome.user !== welcome.user;
    this.#welcome = welcome;
    this.#attempt = 0;
    if (this.#options.personalTopic ?? true) {
      const topic = `user:${welcome.user}`;
      if (userChanged && this.#personal !== undefined && this.#personal.topic !== topic) {
        this.#subscriptions.delete(this.#personal.topic);
        this.#personal.ended("the session's user changed");
        this.#personal = undefined;
      }
      if (this.#personal === undefined) {
        this.#personal = this.#subscriptions.get(topic) ?? new Subscription(this, topic);
        this.#subscriptions.set(topic, this.#personal);
      }
    }
    this.#move({ type: "welcome" });
    // The subscribe goes first: the gateway holds personal pushes back until
    // the first message, so that a resume with `since` loses nothing.
    const subs = [...this.#subscriptions.values()];
    if (subs.length > 0) void this.#subscribe(subs);
    this.#flush();
    this.#startHeartbeat();
    this.events.emit("connected", welcome);
  }

  #publication(publication: Publication): void {
    const sub = this.#subscriptions.get(publication.topic);
    if (sub !== undefined && !sub.deliver(publication)) return;
    this.events.emit("publication", publication);
  }

  /** Subscribes (or resubscribes) `subs` in one call; on a refusal, one by one so one bad topic fails alone. */
  async #subscribe(subs: Subscription[]): Promise<void> {
    const requests = subs.map((s) => s.request());
    let result: SubscribeResult;
    try {
      const id = this.#nextId++;
      const frame = encodeRequest(id, "rpc.subscribe", { topics: requests });
      const timeout = this.#options.timeout ?? 30_000;
      result = (await this.#enqueue(id, "rpc.subscribe", frame, { timeout }, true)) as SubscribeResult;
    } catch (error) {
      if (error instanceof RpcError && subs.length > 1) {
        await Promise.all(subs.map((s) => this.#subscribe([s])));
      } else if (error instanceof RpcError) {
        const sub = subs[0] as Subscription;
        if (this.#subscriptions.get(sub.topic) === sub) this.#subscriptions.delete(sub.topic);
        if (sub === this.#personal) this.#personal = undefined;
        sub.failed(error);
      }
      // Otherwise the connection dropped: the next session subscribes again.
      return;
    }
    result.topics.forEach((topicResult, i) => {
      const sub = subs[i];
      if (sub !== undefined && this.#subscriptions.get(sub.topic) === sub) {
        sub.confirmed(topicResult, (requests[i] as { since?: StreamPosition }).since);
      }
    });
  }

  // --- liveness and tokens -----------------------------------------------

  #startHeartbeat(): void {
    const every = this.#options.heartbeat ?? 30_000;
    if (every <= 0) return;
    this.#lastFrameAt = this.#timers.now();
    const transport = this.#transport;
    const tick = (): void => {
      if (transport !== this.#transport) return;
      const silent = this.#timers.now() - this.#lastFrameAt;
      if (silent >= every && !this.#pinging) {
        this.#pinging = true;
        this.call("rpc.ping", undefined, { timeout: every }).then(
          () => {
            this.#pinging = false;
          },
          (error: unknown) => {
            if (transport === this.#transport && error instanceof Error && error.name === "TimeoutError") {
              this.#lost(transport, 4001, "ping timeout");
            }
          },
        );
      }
      this.#heartbeatTimer = this.#timers.setTimeout(tick, every);
    };
    this.#heartbeatTimer = this.#timers.setTimeout(tick, every);
  }

  /**
   * The gateway warned that the session's token expires soon: fetch a new
   * one and hand it over with `rpc.refresh`. If that fails, the session
   * cannot outlive its token, so start a new one with a fresh token.
   */
  async #refresh(): Promise<void> {
    const getToken = this.#options.getToken;
    if (getToken === undefined || this.#refreshing) return;
    const transport = this.#transport;
    this.#refreshing = true;
    try {
      const token = await getToken();
      if (transport !== this.#transport || !token) return;
      await this.call("rpc.refresh", { token });
    } catch (error) {
      if (transport !== this.#transport) return;
      this.#reportError(error);
      this.#lost(transport, 4002, "token expired");
    } finally {
      this.#refreshing = false;
    }
  }

  #reportingError = false;

  /**
   * Hands an error no call can report to the `error` listeners; without one
   * (or when an `error` listener itself throws), to the platform's
   * `reportError` where there is one (browsers), never as an exception
   * that could stop the client.
   */
  #reportError(error: unknown): void {
    const e = error instanceof Error ? error : new Error(String(error));
    if (this.events.listenerCount("error") === 0 || this.#reportingError) {
      (globalThis as { reportError?: (e: unknown) => void }).reportError?.(e);
      return;
    }
    this.#reportingError = true;
    try {
      this.events.emit("error", e);
    } finally {
      this.#reportingError = false;
    }
  }
}

/** A server request being answered. */
interface RunningRequest {
  /** Aborted on `rpc.cancel` and when the connection closes. */
  readonly controller: AbortController;
  /** `rpc.cancel`: answers `-32011` unless answered already, then aborts the handler. */
  cancel(): void;
}

/**
 * The canonical text of a request id, so that `rpc.cancel {id}` matches the
 * request's id by JSON value (`"\u0061"` is `"a"`), not by spelling.
 */
function idKey(id: RawId): string {
  try {
    return JSON.stringify(JSON.parse(id));
  } catch {
    return id;
  }
}

/** The error object a handler's thrown value becomes. */
function toErrorObject(error: unknown): { code: number; message: string; data?: unknown } {
  if (error instanceof RpcError) return error.toJSON();
  const reason = error instanceof Error ? error.message : String(error);
  return { code: INTERNAL_ERROR, message: standardMessage(INTERNAL_ERROR), data: { reason } };
}
