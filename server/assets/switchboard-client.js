// Built by web-client/scripts/build.mjs from web-client/. Do not edit: run `npm run build` in web-client/.
var __defProp = Object.defineProperty;
var __export = (target, all) => {
  for (var name in all)
    __defProp(target, name, { get: all[name], enumerable: true });
};

// src/backoff.ts
function backoff(attempt, min, max, random) {
  const top = Math.max(0, max);
  const floor = Math.min(Math.max(0, min), top);
  const exponent = attempt > 0 ? Math.floor(attempt) : 0;
  const cap = floor === 0 ? 0 : Math.min(top, floor * 2 ** exponent);
  const unit = random > 0 ? Math.min(random, 1) : 0;
  const jitter = unit * (cap - floor);
  return floor + (jitter > 0 ? Math.floor(jitter) : 0);
}

// src/codec.ts
var codec_exports = {};
__export(codec_exports, {
  INTERNAL_ERROR: () => INTERNAL_ERROR,
  INVALID_PARAMS: () => INVALID_PARAMS,
  INVALID_REQUEST: () => INVALID_REQUEST,
  METHOD_NOT_FOUND: () => METHOD_NOT_FOUND,
  PARSE_ERROR: () => PARSE_ERROR,
  batchLength: () => batchLength,
  decode: () => decode,
  encodeError: () => encodeError,
  encodeNotification: () => encodeNotification,
  encodeProgress: () => encodeProgress,
  encodeRequest: () => encodeRequest,
  encodeResult: () => encodeResult,
  protocolAnswers: () => protocolAnswers,
  standardMessage: () => standardMessage
});

// src/protocol.ts
var PROTOCOL_VERSION = "switchboard.v1";
var ErrorCode = {
  ParseError: -32700,
  InvalidRequest: -32600,
  MethodNotFound: -32601,
  InvalidParams: -32602,
  InternalError: -32603,
  Unauthorized: -32e3,
  Forbidden: -32001,
  RateLimited: -32002,
  Overloaded: -32003,
  Timeout: -32004,
  SessionGone: -32005,
  UpstreamFailed: -32006,
  BrokerUnavailable: -32007,
  TokenExpired: -32008,
  RecoveryIncomplete: -32009,
  LimitExceeded: -32010,
  Cancelled: -32011,
  NoTarget: -32012
};
var ERROR_MESSAGES = {
  [-32700]: "Parse error",
  [-32600]: "Invalid request",
  [-32601]: "Method not found",
  [-32602]: "Invalid params",
  [-32603]: "Internal error",
  [-32e3]: "Unauthorized",
  [-32001]: "Forbidden",
  [-32002]: "Rate limited",
  [-32003]: "Overloaded",
  [-32004]: "Timeout",
  [-32005]: "Session gone",
  [-32006]: "Upstream failed",
  [-32007]: "Broker unavailable",
  [-32008]: "Token expired",
  [-32009]: "Recovery incomplete",
  [-32010]: "Limit exceeded",
  [-32011]: "Cancelled",
  [-32012]: "No target"
};
var CLOSE_CODES = [
  { code: 1e3, reason: "normal", class: "Reconnect" },
  { code: 1001, reason: "server shutting down", class: "Reconnect" },
  { code: 1002, reason: "protocol error", class: "Reconnect" },
  { code: 1007, reason: "invalid UTF-8 in text frame", class: "Reconnect" },
  { code: 1009, reason: "message too big", class: "Reconnect" },
  { code: 1011, reason: "internal error", class: "Reconnect" },
  { code: 1012, reason: "node draining, reconnect", class: "ReconnectNow" },
  { code: 1013, reason: "server overloaded, retry later", class: "Reconnect" },
  { code: 4e3, reason: "slow consumer", class: "Reconnect" },
  { code: 4001, reason: "ping timeout", class: "Reconnect" },
  { code: 4002, reason: "token expired", class: "Reconnect" },
  { code: 4003, reason: "reconnect requested", class: "Reconnect" },
  { code: 4004, reason: "rate limit exceeded", class: "Reconnect" },
  { code: 4500, reason: "unauthorized", class: "Terminal" },
  { code: 4501, reason: "forbidden", class: "Terminal" },
  { code: 4502, reason: "kicked", class: "Terminal" }
];

// src/codec.ts
var PARSE_ERROR = -32700;
var INVALID_REQUEST = -32600;
var METHOD_NOT_FOUND = -32601;
var INVALID_PARAMS = -32602;
var INTERNAL_ERROR = -32603;
var MESSAGE_MEMBERS = /* @__PURE__ */ new Set(["jsonrpc", "id", "method", "params", "result", "error"]);
var ERROR_MEMBERS = /* @__PURE__ */ new Set(["code", "message", "data"]);
function decode(text) {
  let value;
  try {
    value = JSON.parse(text);
  } catch {
    return { kind: "parse_error" };
  }
  const start = skipWs(text, 0);
  if (Array.isArray(value)) {
    if (value.length === 0) return { kind: "empty_batch" };
    const spans = elements(text, start);
    return { kind: "batch", messages: spans.map((span, i) => classify(text, span, value[i])) };
  }
  return { kind: "single", message: classify(text, [start, skipValue(text, start)], value) };
}
function batchLength(text) {
  const start = skipWs(text, 0);
  if (text[start] !== "[") return void 0;
  try {
    const value = JSON.parse(text);
    return Array.isArray(value) ? value.length : void 0;
  } catch {
    return void 0;
  }
}
function invalid(id, reason, wasResponse) {
  return { kind: "invalid", id, reason, wasResponse };
}
function classify(text, span, value) {
  if (text[span[0]] !== "{" || typeof value !== "object" || value === null) {
    return invalid(null, "a message must be a JSON object", false);
  }
  const raw = members(text, span[0], MESSAGE_MEMBERS);
  if (raw === void 0) return invalid(null, "a message must not repeat a member", false);
  const obj = value;
  const rawId = raw.get("id");
  const id = rawId !== void 0 && isLegalId(rawId) ? rawId : null;
  const badId = rawId !== void 0 && id === null;
  const hasMethod = raw.has("method");
  const hasResult = raw.has("result");
  const hasError = raw.has("error");
  if (!hasMethod && !hasResult && !hasError) {
    return invalid(id, 'a message needs "method", "result" or "error"', false);
  }
  if (obj["jsonrpc"] !== "2.0" || !raw.has("jsonrpc")) {
    return invalid(id, '"jsonrpc" must be exactly "2.0"', !hasMethod);
  }
  if (hasMethod) {
    if (hasResult || hasError) return invalid(id, 'a request must not carry "result" or "error"', false);
    if (badId) return invalid(null, '"id" must be a string, a number or null', false);
    const method = obj["method"];
    if (typeof method !== "string") return invalid(id, '"method" must be a string', false);
    const rawParams = raw.get("params");
    if (rawParams !== void 0 && rawParams[0] !== "[" && rawParams[0] !== "{") {
      return invalid(id, '"params" must be an array or an object', false);
    }
    const params = rawParams === void 0 ? void 0 : obj["params"];
    return id === null ? { kind: "notification", method, params } : { kind: "request", id, method, params };
  }
  if (id === null || rawId === void 0) {
    return invalid(null, 'a message needs "method", or "id" with "result" or "error"', hasResult || hasError);
  }
  if (hasResult && !hasError) return { kind: "result", id, result: obj["result"] };
  if (hasError && !hasResult) {
    const error = errorObject(raw.get("error"), obj["error"]);
    return error === void 0 ? invalid(id, '"error" must be an object with a code and a message', true) : { kind: "error", id, error };
  }
  return invalid(id, 'a response must not carry both "result" and "error"', true);
}
function isLegalId(raw) {
  const c = raw[0];
  return c === '"' || c === "-" || c === "n" || c !== void 0 && c >= "0" && c <= "9";
}
function errorObject(rawText, value) {
  if (rawText[0] !== "{" || typeof value !== "object" || value === null) return void 0;
  const raw = members(rawText, 0, ERROR_MEMBERS);
  if (raw === void 0) return void 0;
  const rawCode = raw.get("code");
  const obj = value;
  const code = obj["code"];
  const message = obj["message"];
  if (rawCode === void 0 || !/^-?\d+$/.test(rawCode) || typeof code !== "number") return void 0;
  if (code < -2147483648 || code > 2147483647 || typeof message !== "string") return void 0;
  const out = { code, message };
  if (raw.has("data")) out.data = obj["data"];
  return out;
}
function skipWs(text, i) {
  while (i < text.length) {
    const c = text.charCodeAt(i);
    if (c !== 32 && c !== 10 && c !== 13 && c !== 9) break;
    i++;
  }
  return i;
}
function skipString(text, i) {
  for (let j = i + 1; ; ) {
    const q = text.indexOf('"', j);
    if (q < 0) return text.length;
    let backslashes = 0;
    for (let k = q - 1; text.charCodeAt(k) === 92; k--) backslashes++;
    if (backslashes % 2 === 0) return q + 1;
    j = q + 1;
  }
}
function skipValue(text, i) {
  const c = text[i];
  if (c === '"') return skipString(text, i);
  if (c === "{" || c === "[") {
    let depth = 0;
    for (let j2 = i; j2 < text.length; j2++) {
      const d = text[j2];
      if (d === '"') {
        j2 = skipString(text, j2) - 1;
      } else if (d === "{" || d === "[") {
        depth++;
      } else if (d === "}" || d === "]") {
        depth--;
        if (depth === 0) return j2 + 1;
      }
    }
    return text.length;
  }
  let j = i;
  while (j < text.length && !",}] \n\r	".includes(text[j])) j++;
  return j;
}
function elements(text, i) {
  const out = [];
  i = skipWs(text, i + 1);
  while (i < text.length && text[i] !== "]") {
    const end = skipValue(text, i);
    out.push([i, end]);
    i = skipWs(text, end);
    if (text[i] === ",") i = skipWs(text, i + 1);
  }
  return out;
}
function members(text, i, known) {
  const out = /* @__PURE__ */ new Map();
  i = skipWs(text, i + 1);
  while (i < text.length && text[i] !== "}") {
    const keyEnd = skipString(text, i);
    const keyText = text.slice(i, keyEnd);
    const key = keyText.includes("\\") ? JSON.parse(keyText) : keyText.slice(1, -1);
    i = skipWs(text, skipWs(text, keyEnd) + 1);
    const end = skipValue(text, i);
    if (known.has(key)) {
      if (out.has(key)) return void 0;
      out.set(key, text.slice(i, end));
    }
    i = skipWs(text, end);
    if (text[i] === ",") i = skipWs(text, i + 1);
  }
  return out;
}
function json(value) {
  return value === void 0 ? "null" : JSON.stringify(value);
}
function encodeRequest(id, method, params) {
  const p = params === void 0 ? "" : `,"params":${JSON.stringify(params)}`;
  return `{"jsonrpc":"2.0","id":${id},"method":${JSON.stringify(method)}${p}}`;
}
function encodeNotification(method, params) {
  const p = params === void 0 ? "" : `,"params":${JSON.stringify(params)}`;
  return `{"jsonrpc":"2.0","method":${JSON.stringify(method)}${p}}`;
}
function encodeResult(id, result) {
  return `{"jsonrpc":"2.0","id":${id},"result":${json(result)}}`;
}
function encodeProgress(id, progress) {
  return `{"jsonrpc":"2.0","method":"rpc.progress","params":{"id":${id},"progress":${json(progress)}}}`;
}
function encodeError(id, error) {
  const e = { code: error.code, message: error.message };
  if (error.data !== void 0) e.data = error.data;
  return `{"jsonrpc":"2.0","id":${id ?? "null"},"error":${JSON.stringify(e)}}`;
}
function standardMessage(code) {
  switch (code) {
    case PARSE_ERROR:
      return "Parse error";
    case INVALID_REQUEST:
      return "Invalid request";
    case METHOD_NOT_FOUND:
      return "Method not found";
    case INVALID_PARAMS:
      return "Invalid params";
    case INTERNAL_ERROR:
      return "Internal error";
    default:
      return ERROR_MESSAGES[code] ?? "Server error";
  }
}
function protocolAnswers(frame) {
  const answer = (m) => m.kind === "invalid" && !m.wasResponse ? encodeError(m.id, { code: INVALID_REQUEST, message: standardMessage(INVALID_REQUEST) }) : void 0;
  switch (frame.kind) {
    case "parse_error":
      return [encodeError(null, { code: PARSE_ERROR, message: standardMessage(PARSE_ERROR) })];
    case "empty_batch":
      return [encodeError(null, { code: INVALID_REQUEST, message: standardMessage(INVALID_REQUEST) })];
    case "single": {
      const a = answer(frame.message);
      return a === void 0 ? [] : [a];
    }
    case "batch":
      return frame.messages.flatMap((m) => answer(m) ?? []);
  }
}

// src/emitter.ts
var Emitter = class {
  #listeners = /* @__PURE__ */ new Map();
  #onError;
  /** @param onError - Called with whatever a listener throws. */
  constructor(onError = reportError) {
    this.#onError = onError;
  }
  /** Adds `listener` for `event`; returns the function that removes it. */
  on(event, listener) {
    let set = this.#listeners.get(event);
    if (set === void 0) {
      set = /* @__PURE__ */ new Set();
      this.#listeners.set(event, set);
    }
    set.add(listener);
    return () => this.off(event, listener);
  }
  /** Adds `listener` for the next `event` only. */
  once(event, listener) {
    const off = this.on(event, (payload) => {
      off();
      listener(payload);
    });
    return off;
  }
  /** Removes `listener` from `event`. */
  off(event, listener) {
    this.#listeners.get(event)?.delete(listener);
  }
  /** Calls every listener of `event` with `payload`. */
  emit(event, payload) {
    const set = this.#listeners.get(event);
    if (set === void 0) return;
    for (const listener of [...set]) {
      try {
        listener(payload);
      } catch (error) {
        this.#onError(error);
      }
    }
  }
  /** How many listeners `event` has. */
  listenerCount(event) {
    return this.#listeners.get(event)?.size ?? 0;
  }
};
function reportError(error) {
  globalThis.reportError?.(error);
}

// src/errors.ts
var RpcError = class _RpcError extends Error {
  name = "RpcError";
  /** The JSON-RPC error code. */
  code;
  /** The error's `data` member, if any. */
  data;
  constructor(code, message, data) {
    super(message);
    this.code = code;
    if (data !== void 0) this.data = data;
  }
  /** Builds an `RpcError` from an error object received on the wire. */
  static from(error) {
    return new _RpcError(error.code, error.message, error.data);
  }
  /** The error object to put on the wire. */
  toJSON() {
    const out = { code: this.code, message: this.message };
    if (this.data !== void 0) out.data = this.data;
    return out;
  }
};
var TimeoutError = class extends Error {
  name = "TimeoutError";
  /** The method that was called. */
  method;
  /** The timeout that expired, in milliseconds. */
  timeout;
  constructor(method, timeout) {
    super(`${method}: no answer within ${timeout} ms`);
    this.method = method;
    this.timeout = timeout;
  }
};
var DisconnectedError = class extends Error {
  name = "DisconnectedError";
  /** The WebSocket close code, when the connection closed (1006 when it dropped). */
  code;
  /** The close reason, when there was one. */
  reason;
  constructor(message, code, reason = "") {
    super(message);
    this.code = code;
    this.reason = reason;
  }
};

// src/pending.ts
var PendingCalls = class {
  #timers;
  #hooks;
  #limit;
  /** Calls and notifications in the order they were made. */
  #entries = /* @__PURE__ */ new Map();
  /** Keys for notifications, which have no id: negative, so they never collide. */
  #notificationKey = 0;
  /**
   * @param limit - The most calls and notifications waiting at once; more reject at once.
   */
  constructor(timers, hooks, limit) {
    this.#timers = timers;
    this.#hooks = hooks;
    this.#limit = limit;
  }
  /** How many calls and notifications are waiting. */
  get size() {
    return this.#entries.size;
  }
  /**
   * Registers a call (with an `id`) or a notification (without) and returns
   * the promise of its result (a notification resolves once sent).
   */
  add(id, method, frame, options) {
    return new Promise((resolve, reject) => {
      const { signal } = options;
      if (signal?.aborted) {
        reject(abortReason(signal));
        return;
      }
      if (this.#entries.size >= this.#limit) {
        reject(new RpcError(-32010, "Limit exceeded", { reason: "too many calls waiting", limit: this.#limit }));
        return;
      }
      const key = id ?? --this.#notificationKey;
      let timer;
      const onAbort = () => this.#giveUp(key, abortReason(signal));
      const entry = {
        id,
        method,
        frame,
        sent: false,
        onProgress: options.onProgress,
        resolve,
        reject,
        dispose: () => {
          if (timer !== void 0) this.#timers.clearTimeout(timer);
          signal?.removeEventListener("abort", onAbort);
        }
      };
      const timeout = options.timeout ?? 0;
      if (timeout > 0 && Number.isFinite(timeout)) {
        timer = this.#timers.setTimeout(() => this.#giveUp(key, new TimeoutError(method, timeout)), timeout);
      }
      signal?.addEventListener("abort", onAbort, { once: true });
      this.#entries.set(key, entry);
    });
  }
  /** Entries not yet sent, oldest first. */
  unsent() {
    return [...this.#entries.values()].filter((e) => !e.sent);
  }
  /** Marks an entry sent; a notification is done then. */
  markSent(entry) {
    entry.sent = true;
    if (entry.id === void 0) {
      for (const [key, e] of this.#entries) {
        if (e === entry) {
          this.#entries.delete(key);
          e.dispose();
          e.resolve(void 0);
        }
      }
    }
  }
  /** Settles the call with this id; false when there is none (a stray or late answer). */
  settle(id, outcome) {
    const entry = this.#entries.get(id);
    if (entry === void 0 || !entry.sent) return false;
    this.#entries.delete(id);
    entry.dispose();
    if ("error" in outcome) entry.reject(RpcError.from(outcome.error));
    else entry.resolve(outcome.result);
    return true;
  }
  /**
   * Hands a progress report to the call with this id, if it is waiting for
   * its answer and asked for progress; false when nobody took it.
   */
  progress(id, progress) {
    const entry = this.#entries.get(id);
    if (entry?.onProgress === void 0 || !entry.sent) return false;
    try {
      entry.onProgress(progress);
    } catch (error) {
      this.#hooks.progressFailed?.(error);
    }
    return true;
  }
  /**
   * Rejects every call already sent: its answer can no longer arrive.
   * Calls still queued wait for the next connection.
   */
  failSent(error) {
    for (const [key, entry] of this.#entries) {
      if (entry.sent) {
        this.#entries.delete(key);
        entry.dispose();
        entry.reject(error);
      }
    }
  }
  /** Rejects everything, sent or queued. */
  failAll(error) {
    for (const [key, entry] of this.#entries) {
      this.#entries.delete(key);
      entry.dispose();
      entry.reject(error);
    }
  }
  #giveUp(key, error) {
    const entry = this.#entries.get(key);
    if (entry === void 0) return;
    this.#entries.delete(key);
    entry.dispose();
    if (entry.sent && entry.id !== void 0) this.#hooks.cancelled(entry.id);
    entry.reject(error);
  }
};
function abortReason(signal) {
  return signal.reason ?? new DOMException("This operation was aborted", "AbortError");
}

// src/state.ts
function transition(state, event) {
  if (event.type === "close") return "disconnected";
  switch (state) {
    case "disconnected":
    case "failed":
      return event.type === "connect" ? "connecting" : void 0;
    case "connecting":
      if (event.type === "welcome") return "connected";
      if (event.type === "lost") return event.retry === "Terminal" ? "failed" : "waiting";
      return void 0;
    case "connected":
      if (event.type === "lost") return event.retry === "Terminal" ? "failed" : "waiting";
      return void 0;
    case "waiting":
      return event.type === "retry" || event.type === "connect" ? "connecting" : void 0;
  }
}
function closeClass(code) {
  if (code === 1012) return "ReconnectNow";
  if (code >= 4500 && code <= 4999) return "Terminal";
  return "Reconnect";
}

// src/subscription.ts
var Subscription = class {
  /** The topic. */
  topic;
  #events;
  #owner;
  #bufferSize;
  #state = "pending";
  #position;
  #iterators = /* @__PURE__ */ new Set();
  #failure;
  #last;
  /** @internal Created by {@link Client.subscribe}. */
  constructor(owner, topic, options = {}) {
    this.#owner = owner;
    this.#events = new Emitter((e) => owner.listenerFailed(e));
    this.topic = topic;
    this.#position = options.since;
    this.#bufferSize = options.bufferSize ?? 1e3;
  }
  /** Where the subscription is. */
  get state() {
    return this.#state;
  }
  /** The position of the last publication seen (recoverable topics), sent as `since` on resubscribe. */
  get position() {
    return this.#position;
  }
  /** Listens to an event of this subscription; returns the function that stops listening. */
  on(event, listener) {
    return this.#events.on(event, listener);
  }
  /**
   * Resolves once the server has confirmed the subscription (at once, with
   * the latest report, when it already has); rejects if it refuses.
   */
  ready() {
    if (this.#state === "unsubscribed") {
      return Promise.reject(this.#failure ?? new Error(`${this.topic}: unsubscribed`));
    }
    if (this.#state === "subscribed" && this.#last !== void 0) return Promise.resolve(this.#last);
    return new Promise((resolve, reject) => {
      const offs = [
        this.#events.once("subscribed", (s) => {
          offs.forEach((off) => off());
          resolve(s);
        }),
        this.#events.once("error", (e) => {
          offs.forEach((off) => off());
          reject(e);
        })
      ];
    });
  }
  /** Leaves the topic. */
  unsubscribe() {
    return this.#owner.unsubscribe(this);
  }
  [Symbol.asyncIterator]() {
    const iteration = new Iteration(this.#bufferSize, () => this.#iterators.delete(iteration));
    if (this.#state === "unsubscribed") iteration.end(this.#failure);
    else this.#iterators.add(iteration);
    return iteration;
  }
  /** @internal The `since` to send on (re)subscribe. */
  request() {
    return this.#position === void 0 ? { topic: this.topic } : { topic: this.topic, since: this.#position };
  }
  /** @internal The server answered the subscribe sent with `since`. */
  confirmed(result, since) {
    const position = result.offset != null && result.epoch != null ? { offset: result.offset, epoch: result.epoch } : void 0;
    if (since === void 0 || !result.recovered) this.#position = position;
    this.#state = "subscribed";
    this.#last = {
      topic: this.topic,
      resumed: since !== void 0,
      since,
      recovered: result.recovered,
      gap: result.gap ?? void 0,
      position
    };
    this.#events.emit("subscribed", this.#last);
  }
  /** @internal A publication arrived; returns false for a duplicate. */
  deliver(publication) {
    const { offset, epoch } = publication;
    if (offset != null && epoch != null) {
      const seen = this.#position;
      if (seen !== void 0 && seen.epoch === epoch && offset <= seen.offset) return false;
      this.#position = { offset, epoch };
    }
    this.#events.emit("message", publication);
    for (const it of this.#iterators) it.push(publication);
    return true;
  }
  /** @internal The server refused the subscription. */
  failed(error) {
    this.#failure = error;
    this.#events.emit("error", error);
    this.ended(error.message, error);
  }
  /** @internal The subscription is over. */
  ended(reason, error) {
    if (this.#state === "unsubscribed") return;
    this.#state = "unsubscribed";
    for (const it of this.#iterators) it.end(error);
    this.#iterators.clear();
    this.#events.emit("unsubscribed", { reason });
  }
  /** @internal The connection dropped: the next confirmation will come after the reconnect. */
  suspended() {
    if (this.#state === "subscribed") this.#state = "pending";
  }
};
var Iteration = class {
  #buffer = [];
  #limit;
  #detach;
  #waiting;
  #done = false;
  #error;
  constructor(limit, detach) {
    this.#limit = limit;
    this.#detach = detach;
  }
  push(publication) {
    if (this.#done) return;
    if (this.#waiting !== void 0) {
      const w = this.#waiting;
      this.#waiting = void 0;
      w.resolve({ value: publication, done: false });
    } else if (this.#buffer.length >= this.#limit) {
      this.#detach();
      this.end(new RangeError(`subscription buffer overflow: more than ${this.#limit} publications unread`));
    } else {
      this.#buffer.push(publication);
    }
  }
  end(error) {
    if (this.#done) return;
    this.#done = true;
    this.#error = error;
    const w = this.#waiting;
    this.#waiting = void 0;
    if (w !== void 0) {
      if (error !== void 0) w.reject(error);
      else w.resolve({ value: void 0, done: true });
    }
  }
  next() {
    const value = this.#buffer.shift();
    if (value !== void 0) return Promise.resolve({ value, done: false });
    if (this.#done) {
      const error = this.#error;
      this.#error = void 0;
      return error !== void 0 ? Promise.reject(error) : Promise.resolve({ value: void 0, done: true });
    }
    return new Promise((resolve, reject) => {
      this.#waiting = { resolve, reject };
    });
  }
  return() {
    this.#detach();
    this.#buffer.length = 0;
    this.end();
    return Promise.resolve({ value: void 0, done: true });
  }
};

// src/timers.ts
var defaultTimers = {
  setTimeout: (callback, ms) => globalThis.setTimeout(callback, ms),
  clearTimeout: (handle) => globalThis.clearTimeout(handle),
  now: () => Date.now()
};

// src/client.ts
var OPEN = 1;
var Client = class {
  /** Typed events: `state`, `connected`, `disconnected`, `publication`, `notification`, `error`. */
  events = new Emitter((e) => this.#reportError(e));
  #url;
  #options;
  #timers;
  #random;
  #WebSocket;
  #pending;
  #notifications = /* @__PURE__ */ new Map();
  #handlers = /* @__PURE__ */ new Map();
  #subscriptions = /* @__PURE__ */ new Map();
  /** Server requests being answered, by their id's canonical text (see {@link idKey}). */
  #running = /* @__PURE__ */ new Map();
  #state = "disconnected";
  #socket;
  /** Incremented for every socket: callbacks of an older socket are ignored. */
  #transport = 0;
  #attempt = 0;
  #nextId = 1;
  #welcome;
  #personal;
  #notice;
  #retryTimer;
  #connectTimer;
  #heartbeatTimer;
  #refreshing = false;
  #lastFrameAt = 0;
  #pinging = false;
  /**
   * @param url - The gateway's WebSocket endpoint, e.g. `wss://example.com/ws`.
   */
  constructor(url, options = {}) {
    this.#url = url;
    this.#options = options;
    this.#timers = options.timers ?? defaultTimers;
    this.#random = options.random ?? Math.random;
    const ctor = options.WebSocket ?? globalThis.WebSocket;
    if (ctor === void 0) {
      throw new TypeError("no WebSocket implementation: pass options.WebSocket (in Node, from the ws package)");
    }
    this.#WebSocket = ctor;
    this.#pending = new PendingCalls(
      this.#timers,
      {
        cancelled: (id) => this.#sendRaw(encodeNotification("rpc.cancel", { id })),
        progressFailed: (error) => this.#reportError(error)
      },
      options.maxPending ?? 1e3
    );
    if (options.autoConnect ?? true) this.connect();
  }
  /** Where the connection is. */
  get state() {
    return this.#state;
  }
  /** The current session's `rpc.welcome` (session id, user, limits), while connected. */
  get session() {
    return this.#state === "connected" ? this.#welcome : void 0;
  }
  /** The subscription to the user's personal topic, once the first session is up. */
  get personal() {
    return this.#personal;
  }
  /** The subscriptions, by topic. */
  get subscriptions() {
    return this.#subscriptions;
  }
  /** Starts connecting (again, after {@link close} or a terminal close code); skips a pending backoff wait. */
  connect() {
    if (this.#move({ type: "connect" })) void this.#open();
  }
  /** Resolves once a session is up; rejects if the client closes or fails first. */
  ready() {
    if (this.#state === "connected" && this.#welcome !== void 0) return Promise.resolve(this.#welcome);
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
        })
      ];
    });
  }
  /**
   * Closes the connection and stops reconnecting. Calls waiting for an
   * answer or a connection reject with {@link DisconnectedError}.
   * Subscriptions and handlers are kept for a later {@link connect}.
   */
  close(code = 1e3, reason = "client closed") {
    const error = new DisconnectedError("client closed", code, reason);
    this.#move({ type: "close" });
    this.#teardown(error, code, reason);
    this.#pending.failAll(error);
  }
  call(method, params, options = {}) {
    const id = this.#nextId++;
    return this.#enqueue(id, method, encodeRequest(id, method, params), {
      timeout: options.timeout ?? this.#options.timeout ?? 3e4,
      ...options.signal === void 0 ? {} : { signal: options.signal },
      ...options.onProgress === void 0 ? {} : { onProgress: options.onProgress }
    });
  }
  notify(method, params) {
    const sent = this.#enqueue(void 0, method, encodeNotification(method, params), {});
    sent.catch(() => {
    });
    return sent;
  }
  /** Publishes on a topic (when the gateway lets clients publish). */
  publish(topic, data, options) {
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
  history(topic, query = {}, options) {
    return this.call("rpc.history", { ...query, topic }, options);
  }
  /**
   * Listens to notifications named `method` pushed by the server; returns
   * the function that stops listening. With a contract, only its pushes.
   */
  on(method, handler) {
    let set = this.#notifications.get(method);
    if (set === void 0) {
      set = /* @__PURE__ */ new Set();
      this.#notifications.set(method, set);
    }
    set.add(handler);
    return () => set.delete(handler);
  }
  /**
   * Answers the server's calls to `method`: the handler's return value (or
   * resolved promise) becomes the result; a thrown {@link RpcError} becomes
   * that error, anything else `-32603`. One handler per method; returns the
   * function that removes it. With a contract, only its client methods.
   */
  handle(method, handler) {
    if (method.startsWith("rpc.")) throw new TypeError(`${method}: names starting with rpc. belong to the gateway`);
    this.#handlers.set(method, handler);
    return () => {
      if (this.#handlers.get(method) === handler) this.#handlers.delete(method);
    };
  }
  /**
   * Follows a topic; the returned {@link Subscription} lives across
   * reconnects. Subscribing to a topic twice returns the same subscription.
   */
  subscribe(topic, options = {}) {
    const existing = this.#subscriptions.get(topic);
    if (existing !== void 0) return existing;
    const sub = new Subscription(this, topic, options);
    this.#subscriptions.set(topic, sub);
    if (this.#state === "connected") void this.#subscribe([sub]);
    return sub;
  }
  /** @internal A subscription's listener threw: report it as an `error` event. */
  listenerFailed(error) {
    this.#reportError(error);
  }
  /** @internal Called by {@link Subscription.unsubscribe}. */
  async unsubscribe(subscription) {
    if (this.#subscriptions.get(subscription.topic) !== subscription) return;
    this.#subscriptions.delete(subscription.topic);
    if (subscription === this.#personal) this.#personal = void 0;
    subscription.ended("unsubscribed");
    if (this.#state === "connected") {
      await this.call("rpc.unsubscribe", { topics: [subscription.topic] });
    }
  }
  // --- the state machine and the socket ---------------------------------
  #move(event) {
    const next = transition(this.#state, event);
    if (next === void 0) return false;
    const previous = this.#state;
    this.#state = next;
    if (next !== previous) this.events.emit("state", { state: next, previous });
    return true;
  }
  async #open() {
    const transport = ++this.#transport;
    this.#clearTimers();
    let token;
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
    let socket;
    try {
      socket = new this.#WebSocket(url, protocols);
    } catch (error) {
      this.#reportError(error);
      this.#lost(transport, 1006, "could not open the socket");
      return;
    }
    this.#socket = socket;
    this.#notice = void 0;
    const connectTimeout = this.#options.connectTimeout ?? 1e4;
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
    };
  }
  /** The current transport ended: clean up, then wait, reconnect or stop. */
  #lost(transport, code, reason) {
    if (transport !== this.#transport) return;
    const notice = this.#notice;
    let retry = closeClass(code);
    if (notice !== void 0 && !notice.reconnect) retry = "Terminal";
    const error = new DisconnectedError(`connection closed (${code}${reason ? ": " + reason : ""})`, code, reason);
    this.#teardown(error, code >= 4e3 && code < 4500 ? code : 1e3, reason);
    if (!this.#move({ type: "lost", retry })) return;
    let delay;
    if (this.#state === "waiting") {
      const min = this.#options.minReconnectDelay ?? 500;
      const max = this.#options.maxReconnectDelay ?? 2e4;
      const random = this.#random();
      delay = retry === "ReconnectNow" ? Math.floor(Math.min(Math.max(random, 0), 1) * min) : backoff(this.#attempt + 1, min, max, random);
      this.#attempt++;
      this.#retryTimer = this.#timers.setTimeout(() => {
        this.#retryTimer = void 0;
        if (this.#move({ type: "retry" })) void this.#open();
      }, delay);
    } else {
      this.#pending.failAll(error);
    }
    this.events.emit("disconnected", { code, reason, reconnect: this.#state === "waiting", delay });
  }
  /**
   * The one teardown: forget the socket (its late callbacks are ignored),
   * close it, stop the timers, fail what was sent on it and abort the
   * handlers still running for it.
   */
  #teardown(error, code, reason) {
    this.#transport++;
    this.#clearTimers();
    const socket = this.#socket;
    this.#socket = void 0;
    if (socket !== void 0) {
      socket.onmessage = null;
      socket.onclose = null;
      socket.onopen = null;
      try {
        if (socket.readyState <= OPEN) socket.close(code, reason.slice(0, 100));
      } catch {
      }
    }
    this.#pending.failSent(error);
    for (const request of this.#running.values()) request.controller.abort(error);
    this.#running.clear();
    for (const sub of this.#subscriptions.values()) sub.suspended();
    this.#pinging = false;
  }
  #clearTimers() {
    for (const timer of [this.#retryTimer, this.#connectTimer, this.#heartbeatTimer]) {
      if (timer !== void 0) this.#timers.clearTimeout(timer);
    }
    this.#retryTimer = this.#connectTimer = this.#heartbeatTimer = void 0;
  }
  #sendRaw(frame) {
    const socket = this.#socket;
    if (socket === void 0 || socket.readyState !== OPEN) return false;
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
  #enqueue(id, method, frame, options, first = false) {
    if (this.#state === "disconnected" || this.#state === "failed") {
      return Promise.reject(new DisconnectedError(`client is ${this.#state}`));
    }
    const promise = this.#pending.add(id, method, frame, options);
    if (this.#state === "connected") {
      const entry = first ? this.#pending.unsent().find((e) => e.id === id) : void 0;
      if (entry !== void 0 && this.#sendRaw(entry.frame)) this.#pending.markSent(entry);
      this.#flush();
    }
    return promise;
  }
  /** Sends what waits for the connection, oldest first. */
  #flush() {
    for (const entry of this.#pending.unsent()) {
      if (!this.#sendRaw(entry.frame)) return;
      this.#pending.markSent(entry);
    }
  }
  // --- frames in ----------------------------------------------------------
  #receive(text) {
    this.#lastFrameAt = this.#timers.now();
    const frame = decode(text);
    for (const answer of protocolAnswers(frame)) this.#sendRaw(answer);
    if (frame.kind === "single") this.#message(frame.message);
    else if (frame.kind === "batch") for (const m of frame.messages) this.#message(m);
    else this.#reportError(new Error(`unreadable frame from the server (${frame.kind})`));
  }
  #message(message) {
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
  #notification(method, params) {
    const p = params ?? {};
    switch (method) {
      case "rpc.welcome":
        this.#welcomed(p);
        return;
      case "rpc.message":
        this.#publication(p);
        return;
      case "rpc.cancel":
        this.#running.get(JSON.stringify(p["id"]))?.cancel();
        return;
      case "rpc.progress":
        if (typeof p["id"] === "number") this.#pending.progress(p["id"], p["progress"]);
        return;
      case "rpc.disconnect":
        this.#notice = p;
        return;
      case "rpc.expiring":
        void this.#refresh();
        return;
    }
    if (method.startsWith("rpc.")) return;
    this.events.emit("notification", { method, params });
    const set = this.#notifications.get(method);
    if (set === void 0) return;
    for (const handler of [...set]) {
      try {
        handler(params);
      } catch (error) {
        this.#reportError(error);
      }
    }
  }
  #request(id, method, params) {
    const handler = this.#handlers.get(method);
    if (handler === void 0) {
      this.#sendRaw(encodeError(id, { code: METHOD_NOT_FOUND, message: standardMessage(METHOD_NOT_FOUND) }));
      return;
    }
    const transport = this.#transport;
    const controller = new AbortController();
    const key = idKey(id);
    let answered = false;
    const answer = (frame) => {
      if (answered) return;
      answered = true;
      if (this.#running.get(key) === request) this.#running.delete(key);
      if (transport === this.#transport && !controller.signal.aborted) this.#sendRaw(frame);
    };
    const request = {
      controller,
      cancel: () => {
        answer(encodeError(id, { code: ErrorCode.Cancelled, message: standardMessage(ErrorCode.Cancelled) }));
        controller.abort(new DisconnectedError("cancelled by the server"));
      }
    };
    this.#running.set(key, request);
    const progress = (value) => !answered && transport === this.#transport && !controller.signal.aborted && this.#sendRaw(encodeProgress(id, value));
    new Promise((resolve) => resolve(handler(params, { method, id, signal: controller.signal, progress }))).then(
      (result) => answer(encodeResult(id, result)),
      (error) => answer(encodeError(id, toErrorObject(error)))
    );
  }
  #welcomed(welcome) {
    if (this.#state !== "connecting") return;
    if (this.#connectTimer !== void 0) this.#timers.clearTimeout(this.#connectTimer);
    this.#connectTimer = void 0;
    const userChanged = this.#welcome !== void 0 && this.#welcome.user !== welcome.user;
    this.#welcome = welcome;
    this.#attempt = 0;
    if (this.#options.personalTopic ?? true) {
      const topic = `user:${welcome.user}`;
      if (userChanged && this.#personal !== void 0 && this.#personal.topic !== topic) {
        this.#subscriptions.delete(this.#personal.topic);
        this.#personal.ended("the session's user changed");
        this.#personal = void 0;
      }
      if (this.#personal === void 0) {
        this.#personal = this.#subscriptions.get(topic) ?? new Subscription(this, topic);
        this.#subscriptions.set(topic, this.#personal);
      }
    }
    this.#move({ type: "welcome" });
    const subs = [...this.#subscriptions.values()];
    if (subs.length > 0) void this.#subscribe(subs);
    this.#flush();
    this.#startHeartbeat();
    this.events.emit("connected", welcome);
  }
  #publication(publication) {
    const sub = this.#subscriptions.get(publication.topic);
    if (sub !== void 0 && !sub.deliver(publication)) return;
    this.events.emit("publication", publication);
  }
  /** Subscribes (or resubscribes) `subs` in one call; on a refusal, one by one so one bad topic fails alone. */
  async #subscribe(subs) {
    const requests = subs.map((s) => s.request());
    let result;
    try {
      const id = this.#nextId++;
      const frame = encodeRequest(id, "rpc.subscribe", { topics: requests });
      const timeout = this.#options.timeout ?? 3e4;
      result = await this.#enqueue(id, "rpc.subscribe", frame, { timeout }, true);
    } catch (error) {
      if (error instanceof RpcError && subs.length > 1) {
        await Promise.all(subs.map((s) => this.#subscribe([s])));
      } else if (error instanceof RpcError) {
        const sub = subs[0];
        if (this.#subscriptions.get(sub.topic) === sub) this.#subscriptions.delete(sub.topic);
        if (sub === this.#personal) this.#personal = void 0;
        sub.failed(error);
      }
      return;
    }
    result.topics.forEach((topicResult, i) => {
      const sub = subs[i];
      if (sub !== void 0 && this.#subscriptions.get(sub.topic) === sub) {
        sub.confirmed(topicResult, requests[i].since);
      }
    });
  }
  // --- liveness and tokens -----------------------------------------------
  #startHeartbeat() {
    const every = this.#options.heartbeat ?? 3e4;
    if (every <= 0) return;
    this.#lastFrameAt = this.#timers.now();
    const transport = this.#transport;
    const tick = () => {
      if (transport !== this.#transport) return;
      const silent = this.#timers.now() - this.#lastFrameAt;
      if (silent >= every && !this.#pinging) {
        this.#pinging = true;
        this.call("rpc.ping", void 0, { timeout: every }).then(
          () => {
            this.#pinging = false;
          },
          (error) => {
            if (transport === this.#transport && error instanceof Error && error.name === "TimeoutError") {
              this.#lost(transport, 4001, "ping timeout");
            }
          }
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
  async #refresh() {
    const getToken = this.#options.getToken;
    if (getToken === void 0 || this.#refreshing) return;
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
  #reportError(error) {
    const e = error instanceof Error ? error : new Error(String(error));
    if (this.events.listenerCount("error") === 0 || this.#reportingError) {
      globalThis.reportError?.(e);
      return;
    }
    this.#reportingError = true;
    try {
      this.events.emit("error", e);
    } finally {
      this.#reportingError = false;
    }
  }
};
function idKey(id) {
  try {
    return JSON.stringify(JSON.parse(id));
  } catch {
    return id;
  }
}
function toErrorObject(error) {
  if (error instanceof RpcError) return error.toJSON();
  const reason = error instanceof Error ? error.message : String(error);
  return { code: INTERNAL_ERROR, message: standardMessage(INTERNAL_ERROR), data: { reason } };
}

// src/api.ts
var ServerApi = class {
  #url;
  #options;
  #nextId = 1;
  /** @param url - The server API's endpoint, e.g. `http://127.0.0.1:8080/api`. */
  constructor(url, options = {}) {
    this.#url = url;
    this.#options = options;
  }
  /** Calls one server API method. Rejects with {@link RpcError} for a JSON-RPC error, `Error` for an HTTP one. */
  async call(method, ...[params]) {
    const fetchImpl = this.#options.fetch ?? globalThis.fetch;
    const headers = { "content-type": "application/json" };
    if (this.#options.key) headers["authorization"] = `Bearer ${this.#options.key}`;
    const id = this.#nextId++;
    const response = await fetchImpl(this.#url, {
      method: "POST",
      headers,
      body: JSON.stringify({ jsonrpc: "2.0", id, method, params: params ?? {} })
    });
    const text = await response.text();
    let body;
    try {
      body = JSON.parse(text);
    } catch {
      body = void 0;
    }
    if (body?.error !== void 0) throw RpcError.from(body.error);
    if (!response.ok || body === void 0 || !("result" in body)) {
      throw new Error(`${method}: HTTP ${response.status} ${text.slice(0, 200)}`);
    }
    return body.result;
  }
};
export {
  CLOSE_CODES,
  Client,
  DisconnectedError,
  ERROR_MESSAGES,
  Emitter,
  ErrorCode,
  PROTOCOL_VERSION,
  RpcError,
  ServerApi,
  Subscription,
  TimeoutError,
  backoff,
  closeClass,
  codec_exports as codec,
  transition
};
