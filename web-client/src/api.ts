/**
 * {@link ServerApi}: the gateway's server API (`POST /api`) over HTTP, for
 * backends in Node and for the dashboard. Every method is one JSON-RPC call;
 * outside dev mode it needs an API key with the method's scope.
 *
 * @module
 */

import { RpcError, type ErrorObject } from "./errors.js";
import type { ApiMethods } from "./api-protocol.js";

export type {
  ApiMethods,
  CallEntry,
  CallOutcomes,
  CallPolicy,
  CallProgress,
  CallSummary,
  PresenceEntry,
  StreamLine,
  SessionEvent,
  Stats,
  Scope,
} from "./api-protocol.js";

/** Options of a {@link ServerApi}. */
export interface ServerApiOptions {
  /** The API key, sent as `Authorization: Bearer <key>` (not needed in dev mode on loopback). */
  key?: string;
  /** The fetch implementation. @default globalThis.fetch */
  fetch?: typeof fetch;
}

/**
 * ```ts
 * const api = new ServerApi("http://127.0.0.1:8080/api", { key });
 * await api.call("notify", { target: { user: "alice" }, method: "news", params: { title: "hi" } });
 * const answers = await api.call("call", { target: { user: "alice" }, method: "ui.confirm", timeout_ms: 5000 });
 * ```
 */
export class ServerApi {
  readonly #url: string;
  readonly #options: ServerApiOptions;
  #nextId = 1;

  /** @param url - The server API's endpoint, e.g. `http://127.0.0.1:8080/api`. */
  constructor(url: string, options: ServerApiOptions = {}) {
    this.#url = url;
    this.#options = options;
  }

  /** Calls one server API method. Rejects with {@link RpcError} for a JSON-RPC error, `Error` for an HTTP one. */
  async call<M extends keyof ApiMethods>(
    method: M,
    ...[params]: undefined extends ApiMethods[M]["params"] ? [params?: ApiMethods[M]["params"]] : [params: ApiMethods[M]["params"]]
  ): Promise<ApiMethods[M]["result"]> {
    const fetchImpl = this.#options.fetch ?? globalThis.fetch;
    const headers: Record<string, string> = { "content-type": "application/json" };
    if (this.#options.key) headers["authorization"] = `Bearer ${this.#options.key}`;
    const id = this.#nextId++;
    const response = await fetchImpl(this.#url, {
      method: "POST",
      headers,
      body: JSON.stringify({ jsonrpc: "2.0", id, method, params: params ?? {} }),
    });
    const text = await response.text();
    let body: { result?: unknown; error?: ErrorObject } | undefined;
    try {
      body = JSON.parse(text) as typeof body;
    } catch {
      body = undefined;
    }
    if (body?.error !== undefined) throw RpcError.from(body.error);
    if (!response.ok || body === undefined || !("result" in body)) {
      throw new Error(`${method}: HTTP ${response.status} ${text.slice(0, 200)}`);
    }
    return body.result as ApiMethods[M]["result"];
  }
}
