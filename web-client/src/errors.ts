/**
 * The errors a {@link Client} rejects with. Each is a class, so callers can
 * tell them apart with `instanceof`.
 *
 * @module
 */

/** A JSON-RPC error object: `{code, message, data?}`. */
export interface ErrorObject {
  /** The error code: the specification's, the gateway's (−32000…−32099) or the application's. */
  code: number;
  /** A short description. */
  message: string;
  /** Details that help the caller. */
  data?: unknown;
}

/**
 * The peer answered with a JSON-RPC error. Thrown by a {@link Client.handle}
 * handler, it becomes the error object sent back to the server unchanged.
 */
export class RpcError extends Error implements ErrorObject {
  override readonly name = "RpcError";
  /** The JSON-RPC error code. */
  readonly code: number;
  /** The error's `data` member, if any. */
  readonly data?: unknown;

  constructor(code: number, message: string, data?: unknown) {
    super(message);
    this.code = code;
    if (data !== undefined) this.data = data;
  }

  /** Builds an `RpcError` from an error object received on the wire. */
  static from(error: ErrorObject): RpcError {
    return new RpcError(error.code, error.message, error.data);
  }

  /** The error object to put on the wire. */
  toJSON(): ErrorObject {
    const out: ErrorObject = { code: this.code, message: this.message };
    if (this.data !== undefined) out.data = this.data;
    return out;
  }
}

/** No answer came within the call's timeout. The client sent `rpc.cancel` for it. */
export class TimeoutError extends Error {
  override readonly name = "TimeoutError";
  /** The method that was called. */
  readonly method: string;
  /** The timeout that expired, in milliseconds. */
  readonly timeout: number;

  constructor(method: string, timeout: number) {
    super(`${method}: no answer within ${timeout} ms`);
    this.method = method;
    this.timeout = timeout;
  }
}

/**
 * The connection is not there: the call was sent and the connection closed
 * before its answer came, or the client is closed (by {@link Client.close}
 * or a terminal close code) and cannot send.
 */
export class DisconnectedError extends Error {
  override readonly name = "DisconnectedError";
  /** The WebSocket close code, when the connection closed (1006 when it dropped). */
  readonly code: number | undefined;
  /** The close reason, when there was one. */
  readonly reason: string;

  constructor(message: string, code?: number, reason = "") {
    super(message);
    this.code = code;
    this.reason = reason;
  }
}
