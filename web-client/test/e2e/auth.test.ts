// Tokens against a gateway with JWT authentication (HS256): the token travels
// as a subprotocol or in the query, getToken is asked again for each
// connection, and when the gateway warns that the token expires
// (rpc.expiring) the client refreshes it in place, keeping its session.

import { createHmac } from "node:crypto";
import WebSocket from "ws";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Client, type WebSocketConstructor } from "../../src/index.js";
import { Gateway } from "./server.js";
import { waitFor } from "./suite.js";

const SECRET = "web-client-e2e-secret-0123456789abcdef";

function b64url(data: string | Buffer): string {
  return Buffer.from(data).toString("base64url");
}

/** An HS256 JWT for `sub`, valid for `seconds`. */
function jwt(sub: string, seconds: number): string {
  const header = b64url(JSON.stringify({ alg: "HS256", typ: "JWT" }));
  const claims = b64url(JSON.stringify({ sub, exp: Math.floor(Date.now() / 1000) + seconds }));
  const signature = b64url(createHmac("sha256", SECRET).update(`${header}.${claims}`).digest());
  return `${header}.${claims}.${signature}`;
}

let gateway: Gateway;
const clients: Client[] = [];

function client(options: ConstructorParameters<typeof Client>[1]): Client {
  const c = new Client(`ws://127.0.0.1:${gateway.port}/ws`, {
    WebSocket: WebSocket as unknown as WebSocketConstructor,
    minReconnectDelay: 100,
    maxReconnectDelay: 500,
    ...options,
  });
  clients.push(c);
  return c;
}

beforeAll(async () => {
  gateway = await Gateway.start(`
[auth]
leeway_s = 0
expiry_warning_ms = 3000

[[auth.jwt]]
algorithm = "HS256"
secret = "${SECRET}"
`);
});
afterAll(async () => {
  for (const c of clients) c.close();
  await gateway?.stop();
});

describe("tokens", () => {
  it("authenticates with a bearer subprotocol or a query token", async () => {
    const a = client({ token: jwt("carol", 600) });
    const b = client({ token: jwt("dave", 600), tokenIn: "query" });
    expect((await a.ready()).user).toBe("carol");
    expect((await b.ready()).user).toBe("dave");
    expect(await a.call("rpc.ping")).toBe("pong");
  });

  it("refreshes an expiring token in place and asks getToken again after a reconnect", async () => {
    const asked: number[] = [];
    // The first token expires in 4 s: the gateway warns 3 s before.
    const c = client({ getToken: () => jwt("erin", asked.push(Date.now()) === 1 ? 4 : 600) });
    const first = await c.ready();
    expect(first.user).toBe("erin");
    await waitFor(() => asked.length === 2, "getToken asked again before expiry", 4000);
    // Past the first token's expiry, the session is still the same one.
    await new Promise((r) => setTimeout(r, 3500));
    expect(c.state).toBe("connected");
    expect(c.session?.session).toBe(first.session);
    expect(await c.call("rpc.ping")).toBe("pong");

    // A new connection asks for a token again.
    await gateway.restart();
    await waitFor(() => c.state === "connected" && c.session?.session !== first.session, "a new session", 8000);
    expect(asked.length).toBeGreaterThanOrEqual(3);
  });
});
