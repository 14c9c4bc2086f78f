// permessage-deflate with a third-party client: Node's `ws`, deflating
// everything it sends, against the real gateway binary (compression is on by
// default). The gateway's own counter of deflated bytes shows that it
// deflated what it sent.

import WebSocket from "ws";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Gateway } from "./server.js";

let gateway: Gateway;

beforeAll(async () => {
  gateway = await Gateway.start();
});
afterAll(async () => {
  await gateway?.stop();
});

type Message = { method?: string; id?: number; result?: unknown };

/** A `ws` socket, what the upgrade answered, and its messages as they arrive. */
interface Opened {
  socket: WebSocket;
  /** The answer's `Sec-WebSocket-Extensions` ("" without one). */
  extensions: string;
  /** The next message, parsed (messages are kept from the start, so none is missed). */
  next(): Promise<Message>;
}

/** Opens a `ws` socket as `user` and resolves once it is open. */
function open(user: string, perMessageDeflate: boolean | { threshold: number }): Promise<Opened> {
  const socket = new WebSocket(gateway.ws(user), "switchboard.v1", { perMessageDeflate });
  const arrived: Message[] = [];
  const waiting: ((m: Message) => void)[] = [];
  socket.on("message", (data) => {
    const message = JSON.parse(String(data)) as Message;
    const waiter = waiting.shift();
    if (waiter === undefined) arrived.push(message);
    else waiter(message);
  });
  const next = (): Promise<Message> => {
    const message = arrived.shift();
    return message === undefined ? new Promise((resolve) => waiting.push(resolve)) : Promise.resolve(message);
  };
  let extensions = "";
  socket.once("upgrade", (response) => {
    extensions = String(response.headers["sec-websocket-extensions"] ?? "");
  });
  return new Promise((resolve, reject) => {
    socket.once("open", () => resolve({ socket, extensions, next }));
    socket.once("error", reject);
  });
}

/** A counter of the gateway's /metrics (0 before its first use). */
async function counter(name: string): Promise<number> {
  const body = await (await fetch(`${gateway.http}/metrics`)).text();
  const line = body.split("\n").find((l) => l.startsWith(`${name} `));
  return line === undefined ? 0 : Number(line.slice(name.length + 1));
}

describe("permessage-deflate with ws", () => {
  it("negotiates it and round-trips deflated messages both ways", async () => {
    const { socket, extensions, next } = await open("deflating", { threshold: 0 });
    expect(socket.extensions).toBe("permessage-deflate");
    expect(extensions).toBe("permessage-deflate; server_no_context_takeover; client_no_context_takeover");
    const welcome = await next();
    expect(welcome.method).toBe("rpc.welcome");

    const before = await counter("switchboard_compression_bytes_in_total");
    const text = "a sentence that compresses well, ".repeat(100);
    const answer = next();
    socket.send(JSON.stringify({ jsonrpc: "2.0", id: 1, method: "echo", params: [text] }));
    expect(await answer).toEqual({ jsonrpc: "2.0", id: 1, result: [text] });
    // The answer was deflated: it alone is longer than the text.
    expect(await counter("switchboard_compression_bytes_in_total")).toBeGreaterThanOrEqual(before + text.length);

    // A short message both ways, deflated by the client, plain from the gateway.
    const pong = next();
    socket.send(JSON.stringify({ jsonrpc: "2.0", id: 2, method: "rpc.ping" }));
    expect(await pong).toEqual({ jsonrpc: "2.0", id: 2, result: "pong" });
    socket.close();
  });

  it("leaves a client that does not offer it uncompressed", async () => {
    const { socket, extensions, next } = await open("plain", false);
    expect(socket.extensions).toBe("");
    expect(extensions).toBe("");
    expect((await next()).method).toBe("rpc.welcome");
    socket.close();
  });
});
