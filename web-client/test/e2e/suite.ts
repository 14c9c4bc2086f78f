// The end-to-end scenarios, written once and run twice: in Node (node.test.ts,
// with the `ws` package) and in Debian's Chromium (browser.test.ts, with the
// browser's own WebSocket). They use only the client's public API and a few
// controls that the test process carries out (server API calls, restart).
// Nothing here may import a Node module.

import {
  Client,
  DisconnectedError,
  RpcError,
  TimeoutError,
  type CallOutcomes,
  type ClientOptions,
  type Publication,
  type Stats,
  type StreamLine,
} from "../../src/index.js";

/** What a scenario may ask of its environment. */
export interface Env {
  /** A client for `user` (dev mode's `?user=`), with test-friendly reconnect delays. */
  client(user: string, options?: Partial<ClientOptions>): Client;
  /** A server API call (`POST /api`), made by the test process. */
  api(method: string, params?: unknown): Promise<unknown>;
  /** The server API's URL, for calls a scenario makes itself with fetch (a streamed `call`). */
  apiUrl(): string;
  /** Stops the gateway and starts it again on the same port. */
  restart(): Promise<void>;
  /** A name unique to this run, for users and topics. */
  unique(prefix: string): string;
}

export interface Scenario {
  name: string;
  run(env: Env): Promise<void>;
}

// --- small assertion helpers (no test framework in the browser) -----------

function fail(message: string): never {
  throw new Error(message);
}

/** JSON text with every object's keys sorted, so that values compare whatever order their keys were written in. */
function canonical(value: unknown): string {
  return JSON.stringify(value, (_key, v: unknown) =>
    v !== null && typeof v === "object" && !Array.isArray(v)
      ? Object.fromEntries(Object.entries(v).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)))
      : v,
  );
}

/** Compares two values as JSON values: arrays in order, objects whatever the order of their keys. */
export function assertEqual(actual: unknown, expected: unknown, what: string): void {
  const a = canonical(actual);
  const e = canonical(expected);
  if (a !== e) fail(`${what}: expected ${e}, got ${a}`);
}

export function assert(condition: unknown, what: string): asserts condition {
  if (!condition) fail(what);
}

/** Waits until `check` returns a value other than undefined/false, polling every 10 ms. */
export async function waitFor<T>(check: () => T | undefined | false, what: string, timeout = 5000): Promise<T> {
  const deadline = Date.now() + timeout;
  for (;;) {
    const value = check();
    if (value !== undefined && value !== false) return value;
    if (Date.now() > deadline) fail(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

async function rejects(promise: Promise<unknown>, what: string): Promise<unknown> {
  try {
    await promise;
  } catch (error) {
    return error;
  }
  return fail(`${what}: expected a rejection`);
}

/** Settles as `promise` does, or fails once `ms` have passed. */
async function within<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out waiting for ${what}`)), Math.max(ms, 0));
  });
  try {
    return await Promise.race([promise, late]);
  } finally {
    clearTimeout(timer);
  }
}

/** The lines of a streamed server API `call` (`"stream": true`, NDJSON), read as they arrive. */
class StreamedCall {
  readonly #reader: ReadableStreamDefaultReader<Uint8Array>;
  readonly #decoder = new TextDecoder();
  #buffer = "";

  private constructor(reader: ReadableStreamDefaultReader<Uint8Array>) {
    this.#reader = reader;
  }

  /** Calls `call` with `params` and `"stream": true`; resolves once the response's head has arrived. */
  static async start(url: string, params: Record<string, unknown>): Promise<StreamedCall> {
    const response = await fetch(url, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ jsonrpc: "2.0", id: 1, method: "call", params: { ...params, stream: true } }),
    });
    assertEqual(response.status, 200, "the streamed call's status");
    assertEqual(response.headers.get("content-type"), "application/x-ndjson", "the streamed call's content type");
    assert(response.body !== null, "a body");
    return new StreamedCall(response.body.getReader());
  }

  /** The next line, or undefined at the end of the body. */
  async next(what: string, timeout = 10_000): Promise<StreamLine | undefined> {
    const deadline = Date.now() + timeout;
    for (;;) {
      const end = this.#buffer.indexOf("\n");
      if (end >= 0) {
        const line = this.#buffer.slice(0, end);
        this.#buffer = this.#buffer.slice(end + 1);
        return JSON.parse(line) as StreamLine;
      }
      const chunk = await within(this.#reader.read(), deadline - Date.now(), what);
      if (chunk.done) {
        assertEqual(this.#buffer + this.#decoder.decode(), "", "a partial last line");
        return undefined;
      }
      this.#buffer += this.#decoder.decode(chunk.value, { stream: true });
    }
  }

  /** Stops reading: the gateway cancels a call whose caller went away. */
  close(): void {
    this.#reader.cancel().catch(() => undefined);
  }
}

function closeAll(...clients: Client[]): void {
  for (const c of clients) c.close();
}

// --- the scenarios -----------------------------------------------------------

export const scenarios: Scenario[] = [
  {
    name: "calls: results, errors, timeouts and aborts",
    async run(env) {
      const user = env.unique("caller");
      const c = env.client(user);
      try {
        const welcome = await c.ready();
        assertEqual(welcome.user, user, "welcome.user");
        assertEqual(welcome.protocol, "switchboard.v1", "welcome.protocol");
        assertEqual(await c.call("echo", ["hi", { n: 1 }]), ["hi", { n: 1 }], "echo");
        assertEqual(await c.call("rpc.ping"), "pong", "rpc.ping");
        assertEqual(await c.call("whoami"), { session: welcome.session, user }, "whoami");
        const missing = await rejects(c.call("no.such.method"), "unknown method");
        assert(missing instanceof RpcError && missing.code === -32601, `-32601, got ${String(missing)}`);
        const slow = await rejects(c.call("demo.sleep", [5000], { timeout: 100 }), "slow call");
        assert(slow instanceof TimeoutError, `TimeoutError, got ${String(slow)}`);
        const controller = new AbortController();
        const aborted = c.call("demo.sleep", [5000], { signal: controller.signal });
        controller.abort(new Error("changed my mind"));
        const why = await rejects(aborted, "aborted call");
        assertEqual((why as Error).message, "changed my mind", "abort reason");
        // The session is still fine after giving up on calls.
        assertEqual(await c.call("demo.sleep", [1]), 1, "demo.sleep");
      } finally {
        closeAll(c);
      }
    },
  },
  {
    name: "push to a user: every session gets it",
    async run(env) {
      const user = env.unique("pushed");
      const a = env.client(user);
      const b = env.client(user);
      const sender = env.client(env.unique("sender"));
      try {
        await Promise.all([a.ready(), b.ready(), sender.ready()]);
        const got: Record<string, unknown[]> = { a: [], b: [] };
        a.on("chat.message", (p) => got["a"]?.push(p));
        b.on("chat.message", (p) => got["b"]?.push(p));
        await sender.call("chat.dm", { user, text: "psst" });
        await waitFor(() => got["a"]?.length === 1 && got["b"]?.length === 1, "chat.message on both sessions");
        assertEqual(got["a"], [{ from: sender.session?.user, text: "psst" }], "chat.message params");

        // Through the server API: a plain notification, and a recoverable push on the personal topic.
        const notices: unknown[] = [];
        a.on("notice", (p) => notices.push(p));
        await env.api("notify", { target: { user }, method: "notice", params: { text: "from the backend" } });
        await waitFor(() => notices.length === 1, "the notice");
        assertEqual(notices, [{ text: "from the backend" }], "notice params");

        const personal: Publication[] = [];
        a.events.on("publication", (p) => personal.push(p));
        await waitFor(() => a.personal?.state === "subscribed", "the personal topic");
        await env.api("publish", { topic: `user:${user}`, data: { n: 1 } });
        const p = await waitFor(() => personal[0], "a personal publication");
        assertEqual([p.topic, p.data], [`user:${user}`, { n: 1 }], "personal publication");
        assert(typeof p.offset === "number" && typeof p.epoch === "string", "personal pushes carry a position");
      } finally {
        closeAll(a, b, sender);
      }
    },
  },
  {
    name: "topic subscription recovers what was missed during a forced disconnect",
    async run(env) {
      const topic = env.unique("e2e:news");
      const publisher = env.client(env.unique("publisher"));
      // A predictable pause before the reconnect (random = 0.99 → ~1 s), so
      // the publications below fall inside it.
      const reader = env.client(env.unique("reader"), { minReconnectDelay: 500, random: () => 0.99 });
      try {
        await Promise.all([publisher.ready(), reader.ready()]);
        const sub = reader.subscribe(topic);
        const seen: number[] = [];
        sub.on("message", (p) => seen.push(p.data as number));
        const reports: Array<{ resumed: boolean; recovered: boolean }> = [];
        sub.on("subscribed", (s) => reports.push({ resumed: s.resumed, recovered: s.recovered }));
        await sub.ready();
        await publisher.publish(topic, 1);
        await publisher.publish(topic, 2);
        await waitFor(() => seen.length === 2, "the live publications");

        const session = reader.session?.session;
        const waiting = new Promise<void>((resolve) => {
          const off = reader.events.on("disconnected", (d) => {
            off();
            assertEqual([d.code, d.reconnect], [4003, true], "close code and decision");
            resolve();
          });
        });
        await env.api("disconnect", { target: { session }, code: 4003, reason: "e2e" });
        await waiting;
        assertEqual(reader.state, "waiting", "state while disconnected");
        for (const n of [3, 4, 5]) await env.api("publish", { topic, data: n });

        await waitFor(() => seen.length === 5, "the missed publications, replayed", 8000);
        assertEqual(seen, [1, 2, 3, 4, 5], "every publication once, in order");
        assert(reader.session?.session !== session, "a new session");
        assertEqual(reports, [
          { resumed: false, recovered: true },
          { resumed: true, recovered: true },
        ], "recovery reports");
        await publisher.publish(topic, 6);
        await waitFor(() => seen.length === 6, "live again");
        assertEqual(sub.position?.offset, 6, "position");
      } finally {
        closeAll(publisher, reader);
      }
    },
  },
  {
    name: "the server calls a handler and gets its value",
    async run(env) {
      const user = env.unique("handler");
      const a = env.client(user);
      const b = env.client(user);
      const asker = env.client(env.unique("asker"));
      try {
        a.handle("ui.confirm", (params) => ({ answer: "yes", from: "a", params }));
        b.handle("ui.confirm", async () => {
          throw new RpcError(4100, "declined", { by: "b" });
        });
        await Promise.all([a.ready(), b.ready(), asker.ready()]);
        const sa = a.session?.session;
        const sb = b.session?.session;

        // Through the server API.
        type Entry = { session: string; user: string; result?: unknown; error?: { code: number; message: string } };
        const viaApi = (await env.api("call", {
          target: { user },
          method: "ui.confirm",
          params: ["Delete it?"],
          timeout_ms: 3000,
        })) as Entry[];
        const bySession = (entries: Entry[]) => Object.fromEntries(entries.map((e) => [e.session, e]));
        const api = bySession(viaApi);
        assertEqual(viaApi.length, 2, "one entry per session");
        assertEqual(api[sa ?? ""]?.result, { answer: "yes", from: "a", params: ["Delete it?"] }, "a's answer");
        assertEqual(api[sb ?? ""]?.error, { code: 4100, message: "declined", data: { by: "b" } }, "b's error");

        // Through another client (chat.ask is a Hub multicast call).
        const viaAsk = bySession(
          await asker.call<Entry[]>("chat.ask", { user, method: "ui.confirm", params: { q: 1 }, timeout_ms: 3000 }),
        );
        assertEqual(viaAsk[sa ?? ""]?.result, { answer: "yes", from: "a", params: { q: 1 } }, "chat.ask answer");

        // The server calls the caller back within its own call.
        assertEqual(
          await a.call("demo.callback", { method: "ui.confirm", params: ["me?"] }),
          { answer: "yes", from: "a", params: ["me?"] },
          "demo.callback",
        );

        // A method nobody handles is -32601 from the client.
        const none = (await env.api("call", { target: { session: sa }, method: "nope", timeout_ms: 3000 })) as Entry[];
        assertEqual(none[0]?.error?.code, -32601, "unhandled method");
      } finally {
        closeAll(a, b, asker);
      }
    },
  },
  {
    name: "a call's progress arrives before its result, and none after",
    async run(env) {
      const c = env.client(env.unique("progress"));
      try {
        await c.ready();
        const seen: unknown[] = [];
        const result = await c.call("demo.sleep", { ms: 350 }, { onProgress: (p) => seen.push(p) });
        const before = seen.length;
        assertEqual(result, 350, "demo.sleep's result");
        assert(before >= 2, `at least two reports before the result: ${JSON.stringify(seen)}`);
        assertEqual(seen.slice(0, 2), [{ elapsed_ms: 100, ms: 350 }, { elapsed_ms: 200, ms: 350 }], "the first reports");
        // Frames arrive in order: a report sent after the answer would be here before the pong.
        assertEqual(await c.call("rpc.ping"), "pong", "rpc.ping");
        assertEqual(seen.length, before, "reports after the result");
      } finally {
        c.close();
      }
    },
  },
  {
    name: "a handler's progress reaches a streamed server API call before its answer",
    async run(env) {
      const user = env.unique("worker");
      const worker = env.client(user);
      let lines: StreamedCall | undefined;
      try {
        worker.handle("job.run", (params, context) => {
          const steps = Array.isArray(params) && typeof params[0] === "number" ? params[0] : 0;
          for (let step = 1; step <= steps; step++) assert(context.progress({ step }), `progress ${step} sent`);
          return { steps };
        });
        const { session } = await worker.ready();
        const { node } = (await env.api("stats")) as Stats;
        lines = await StreamedCall.start(env.apiUrl(), {
          target: { user },
          method: "job.run",
          params: [2],
          timeout_ms: 30_000,
        });
        const from = { session, user, node };
        assertEqual(await lines.next("the first report"), { ...from, progress: { step: 1 } }, "the first line");
        assertEqual(await lines.next("the second report"), { ...from, progress: { step: 2 } }, "the second line");
        assertEqual(await lines.next("the answer"), { ...from, result: { steps: 2 } }, "the outcome line");
        assertEqual(
          await lines.next("the totals"),
          { done: { results: 1, errors: 0, timeouts: 0, cancelled: 0 } },
          "the done line",
        );
        assertEqual(await lines.next("the end of the body"), undefined, "done is the last line");
      } finally {
        lines?.close();
        worker.close();
      }
    },
  },
  {
    name: "the first policy cancels the slower handler: its signal aborts",
    async run(env) {
      const user = env.unique("devices");
      const slow = env.client(user);
      const quick = env.client(user);
      try {
        // The quick device answers once the slow one is running, so that the
        // gateway's rpc.cancel finds the slow handler under way.
        let slowStarted = (): void => undefined;
        const started = new Promise<void>((resolve) => (slowStarted = resolve));
        let stopped = false;
        slow.handle("confirm", async (_params, { signal }) => {
          slowStarted();
          if (!signal.aborted) {
            await new Promise<void>((resolve) => signal.addEventListener("abort", () => resolve(), { once: true }));
          }
          stopped = true;
          return "too late";
        });
        quick.handle("confirm", async () => {
          await started;
          return "yes";
        });
        const [s, q] = await Promise.all([slow.ready(), quick.ready()]);
        const reply = (await env.api("call", {
          target: { user },
          method: "confirm",
          policy: "first",
          timeout_ms: 30_000,
        })) as CallOutcomes;
        assertEqual(reply.met, true, "the policy was met");
        const outcomes = Object.fromEntries(reply.outcomes.map((o) => [o.session, o]));
        assertEqual(outcomes[q.session]?.result, "yes", "the quick answer");
        assertEqual(outcomes[s.session]?.error?.code, -32011, "the slow one, cancelled by the gateway");
        // The gateway's rpc.cancel reached the slow client and aborted its handler's signal.
        await waitFor(() => stopped, "the slow handler's signal to abort");
      } finally {
        closeAll(slow, quick);
      }
    },
  },
  {
    name: "a terminal close code stops reconnecting until connect()",
    async run(env) {
      const c = env.client(env.unique("kicked"));
      try {
        const first = await c.ready();
        const closed = new Promise<{ code: number; reconnect: boolean }>((resolve) => {
          const off = c.events.on("disconnected", (d) => {
            off();
            resolve(d);
          });
        });
        // 4502 "kicked" is in the terminal range 4500–4999.
        await env.api("disconnect", { target: { session: first.session }, code: 4502, reason: "e2e" });
        const d = await closed;
        assertEqual([d.code, d.reconnect, c.state], [4502, false, "failed"], "terminal close");
        await new Promise((r) => setTimeout(r, 500));
        assertEqual(c.state, "failed", "no retry");
        const error = await rejects(c.call("echo", [1]), "call while failed");
        assert(error instanceof DisconnectedError, `DisconnectedError, got ${String(error)}`);
        c.connect();
        const second = await c.ready();
        assert(second.session !== first.session, "a new session after connect()");
      } finally {
        closeAll(c);
      }
    },
  },
  {
    name: "reconnects after the server restarts, resubscribes and reports the lost history",
    async run(env) {
      const topic = env.unique("e2e:restart");
      const c = env.client(env.unique("survivor"));
      try {
        const first = await c.ready();
        const sub = c.subscribe(topic);
        await sub.ready();
        await c.publish(topic, "before");
        await waitFor(() => sub.position?.offset === 1, "the first publication");
        const reports: Array<{ resumed: boolean; recovered: boolean; gap: string | undefined }> = [];
        sub.on("subscribed", (s) => reports.push({ resumed: s.resumed, recovered: s.recovered, gap: s.gap }));
        const states: string[] = [];
        c.events.on("state", (s) => states.push(s.state));

        // Still running when the gateway stops (it waits for its tasks a little while).
        const inflight = c.call("demo.sleep", [800], { timeout: 30_000 });
        const outcome = inflight.then(
          () => "resolved",
          (e: unknown) => e,
        );
        await env.restart();
        const error = await outcome;
        assert(error instanceof DisconnectedError, `the call in flight fails with DisconnectedError, got ${String(error)}`);

        await waitFor(() => c.state === "connected" && c.session?.session !== first.session, "a new session", 10_000);
        assert(states.includes("waiting"), `went through waiting: ${states.join(",")}`);
        assertEqual(await c.call("echo", ["after"]), ["after"], "calls work again");
        await waitFor(() => reports.length === 1, "the resubscribe");
        // History lived in the old process: the stream's epoch changed.
        assertEqual(reports, [{ resumed: true, recovered: false, gap: "epoch_changed" }], "recovery report");
        await c.publish(topic, "after");
        await waitFor(() => sub.position?.offset === 1 && sub.state === "subscribed", "live on the new stream");
      } finally {
        closeAll(c);
      }
    },
  },
];
