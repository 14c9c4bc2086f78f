// A WebSocket stand-in for unit tests: records what the client sends and lets
// the test play the server, frame by frame.

import type { WebSocketLike } from "../../src/client.js";

export class FakeWebSocket implements WebSocketLike {
  static instances: FakeWebSocket[] = [];

  static reset(): void {
    FakeWebSocket.instances = [];
  }

  /** The most recent socket. */
  static get last(): FakeWebSocket {
    const ws = FakeWebSocket.instances.at(-1);
    if (ws === undefined) throw new Error("no socket was opened");
    return ws;
  }

  readyState = 0;
  onopen: ((event: unknown) => void) | null = null;
  onclose: ((event: { code: number; reason: string }) => void) | null = null;
  onerror: ((event: unknown) => void) | null = null;
  onmessage: ((event: { data: unknown }) => void) | null = null;
  readonly sent: string[] = [];
  closedWith: { code: number | undefined; reason: string | undefined } | undefined;

  constructor(
    readonly url: string,
    readonly protocols?: string | string[],
  ) {
    FakeWebSocket.instances.push(this);
  }

  send(data: string): void {
    if (this.readyState !== 1) throw new Error("not open");
    this.sent.push(data);
  }

  close(code?: number, reason?: string): void {
    this.closedWith = { code, reason };
    this.readyState = 3;
  }

  // --- the server's side ---

  open(): void {
    this.readyState = 1;
    this.onopen?.({});
  }

  /** Opens and sends rpc.welcome. */
  welcome(user = "alice", session = `s${FakeWebSocket.instances.length}`): void {
    this.open();
    this.push({
      jsonrpc: "2.0",
      method: "rpc.welcome",
      params: {
        session,
        user,
        protocol: "switchboard.v1",
        limits: { max_message_size: 1048576, max_batch: 100, max_in_flight: 64, ping_interval_ms: 25000, max_subscriptions: 128 },
      },
    });
  }

  push(frame: unknown): void {
    this.onmessage?.({ data: typeof frame === "string" ? frame : JSON.stringify(frame) });
  }

  /** The server closes the connection. */
  drop(code = 1006, reason = ""): void {
    this.readyState = 3;
    this.onclose?.({ code, reason });
  }

  /** Everything sent, parsed. */
  get frames(): Array<{ id?: number; method?: string; params?: any; result?: unknown; error?: any }> {
    return this.sent.map((s) => JSON.parse(s));
  }

  /** The sent requests for `method`. */
  requests(method: string): Array<{ id: number; params?: any }> {
    return this.frames.filter((f) => f.method === method && f.id !== undefined) as Array<{ id: number; params?: any }>;
  }

  /** Answers the last request for `method` with `result`. */
  answer(method: string, result: unknown): void {
    const request = this.requests(method).at(-1);
    if (request === undefined) throw new Error(`no ${method} request was sent`);
    this.push({ jsonrpc: "2.0", id: request.id, result });
  }
}
