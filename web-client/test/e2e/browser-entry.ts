// Runs the shared scenarios inside the browser page, with the browser's own
// WebSocket; the controls (server API, restart) are carried out by the test
// process through functions Playwright exposes on window.

import { Client } from "../../src/index.js";
import { scenarios, type Env } from "./suite.js";

declare global {
  interface Window {
    control(action: "api" | "restart", args: unknown[]): Promise<unknown>;
    runScenario(name: string): Promise<void>;
  }
}

let counter = 0;

const env: Env = {
  client: (user, options = {}) => {
    const url = `${location.protocol === "https:" ? "wss" : "ws"}://${location.host}/ws?user=${encodeURIComponent(user)}`;
    return new Client(url, { minReconnectDelay: 100, maxReconnectDelay: 1000, ...options });
  },
  api: (method, params) => window.control("api", [method, params]),
  // The page is a document of the gateway's origin.
  apiUrl: () => `${location.origin}/api`,
  restart: async () => {
    await window.control("restart", []);
  },
  unique: (prefix) => `${prefix}-browser-${++counter}`,
};

window.runScenario = async (name) => {
  const scenario = scenarios.find((s) => s.name === name);
  if (scenario === undefined) throw new Error(`no scenario ${name}`);
  await scenario.run(env);
};
