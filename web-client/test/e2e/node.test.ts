// The end-to-end scenarios in Node, with the `ws` package, against the real
// gateway binary.

import WebSocket from "ws";
import { afterAll, beforeAll, describe, it } from "vitest";
import { Client, type WebSocketConstructor } from "../../src/index.js";
import { scenarios, type Env } from "./suite.js";
import { Gateway } from "./server.js";

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
