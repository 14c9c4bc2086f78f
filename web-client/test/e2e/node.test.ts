// The end-to-end scenarios in Node, with the `ws` package, against the real
// gateway binary.

import WebSocket from "ws";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Client, type WebSocketConstructor } from "../../src/index.js";
import { scenarios, type Env } from "./suite.js";
import { Gateway } from "./server.js";
import { validateOpenRpc } from "../helpers/openrpc.js";

let gateway: Gateway;
let counter = 0;

beforeAll(async () => {
  gateway = await Gateway.start();
});
afterAll(async () => {
  await gateway?.stop();
});

const env: Env = {
  client: (user, options = {}) =>
    new Client(gateway.ws(user), {
      WebSocket: WebSocket as unknown as WebSocketConstructor,
      minReconnectDelay: 100,
      maxReconnectDelay: 1000,
      ...options,
    }),
  api: (method, params) => gateway.api(method, params),
  apiUrl: () => `${gateway.http}/api`,
  restart: () => gateway.restart(),
  unique: (prefix) => `${prefix}-node-${++counter}`,
};

describe("end to end in Node", () => {
  for (const scenario of scenarios) {
    // A scenario takes a few seconds; vitest.config.ts's testTimeout guards against a hang.
    it(scenario.name, () => scenario.run(env));
  }
});

describe("the contract at the wire", () => {
  it("rpc.discover describes the demo's methods both ways and is a valid OpenRPC document", async () => {
    const client = env.client(env.unique("discover"));
    try {
      const doc = (await client.call("rpc.discover")) as {
        methods: Array<{ name: string; paramStructure?: string; params: Array<{ name: string }>; result?: unknown; "x-switchboard-direction"?: string }>;
        components: { schemas: { [name: string]: unknown } };
      };
      expect(validateOpenRpc(doc)).toEqual([]);
      const byName = new Map(doc.methods.map((m) => [m.name, m]));
      const send = byName.get("chat.send");
      expect(send?.paramStructure).toBe("by-name");
      expect(send?.params.map((p) => p.name)).toEqual(["room", "text"]);
      expect(send?.["x-switchboard-direction"]).toBeUndefined();
      const confirm = byName.get("ui.confirm");
      expect(confirm?.["x-switchboard-direction"]).toBe("client");
      expect(confirm?.params.map((p) => p.name)).toEqual(["question"]);
      expect(confirm?.result).toEqual({ name: "result", schema: { type: "boolean" } });
      const push = byName.get("chat.message");
      expect(push?.["x-switchboard-direction"]).toBe("client");
      expect(push?.result).toBeUndefined();
      expect(Object.keys(doc.components.schemas)).toContain("Whoami");
    } finally {
      client.close();
    }
  });
});
