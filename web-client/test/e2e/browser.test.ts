// The end-to-end scenarios again, in Debian's Chromium against the real
// gateway: the client bundled for the browser, on the browser's WebSocket.

import { readFileSync } from "node:fs";
import { join } from "node:path";
import * as esbuild from "esbuild";
import type { Browser } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ASSETS_DIR, assetNames } from "../../scripts/build.mjs";
import { launch, recordConsole } from "./browser.js";
import { Gateway } from "./server.js";
import { scenarios } from "./suite.js";

let gateway: Gateway;
let browser: Browser;
let script: string;

// Hang guards, not budgets: a scenario takes a few seconds in Chromium here,
// and a small shared machine may take many times longer. The scenario's own
// guard fires first, so that its failure carries the page log.
const SCENARIO_LIMIT = 90_000;
const TEST_LIMIT = 120_000;

beforeAll(async () => {
  const [g, b, bundle] = await Promise.all([
    Gateway.start(),
    launch(),
    esbuild.build({
      entryPoints: [new URL("./browser-entry.ts", import.meta.url).pathname],
      bundle: true,
      format: "esm",
      platform: "browser",
      target: "es2022",
      write: false,
      logLevel: "warning",
    }),
  ]);
  gateway = g;
  browser = b;
  script = bundle.outputFiles[0]?.text ?? "";
});
afterAll(async () => {
  await browser?.close();
  await gateway?.stop();
});

describe("end to end in Chromium", () => {
  for (const scenario of scenarios) {
    it(scenario.name, async () => {
      const context = await browser.newContext();
      const tab = await context.newPage();
      const log = recordConsole(tab);
      try {
        await tab.exposeFunction("control", async (action: string, args: unknown[]) => {
          if (action === "api") return gateway.api(args[0] as string, args[1]);
          if (action === "restart") return gateway.restart();
          throw new Error(`unknown control ${action}`);
        });
        try {
          // A document of the gateway's origin (as an application page would be),
          // then the scenarios as a module script. (A page Playwright made up
          // would count as public, and Chromium's local network access checks
          // would block its connections to 127.0.0.1.)
          await tab.goto(`${gateway.http}/healthz`);
          await tab.addScriptTag({ content: script, type: "module" });
          await tab.waitForFunction(() => typeof window.runScenario === "function", undefined, { timeout: 30_000 });
          await Promise.race([
            tab.evaluate((name) => window.runScenario(name), scenario.name),
            new Promise((_, reject) => setTimeout(() => reject(new Error("scenario timed out")), SCENARIO_LIMIT)),
          ]);
        } catch (error) {
          throw new Error(`${(error as Error).message}\npage log:\n${log.join("\n")}`);
        }
      } finally {
        await context.close();
      }
    }, TEST_LIMIT);
  }

  it("negotiates permessage-deflate, so large messages reach the browser deflated", async () => {
    // Bytes the gateway has deflated: the echoed text alone is 3,300.
    const compressed = async (): Promise<number> => {
      const body = await (await fetch(`${gateway.http}/metrics`)).text();
      const line = body.split("\n").find((l) => l.startsWith("switchboard_compression_bytes_in_total "));
      return line === undefined ? 0 : Number(line.split(" ")[1]);
    };
    const context = await browser.newContext();
    const tab = await context.newPage();
    try {
      await tab.goto(`${gateway.http}/healthz`);
      const before = await compressed();
      // The browser's own WebSocket, as a page would use it.
      const seen = await tab.evaluate(async (url: string) => {
        const text = "a sentence that compresses well, ".repeat(100);
        const ws = new WebSocket(url, "switchboard.v1");
        const received: string[] = [];
        let wake = (): void => {};
        ws.onmessage = (event) => {
          received.push(String(event.data));
          wake();
        };
        await new Promise((resolve, reject) => {
          ws.onopen = resolve;
          ws.onerror = reject;
        });
        const next = async (): Promise<{ method?: string; result?: unknown[] }> => {
          while (received.length === 0) await new Promise<void>((resolve) => (wake = resolve));
          return JSON.parse(received.shift() ?? "null");
        };
        const welcome = await next();
        ws.send(JSON.stringify({ jsonrpc: "2.0", id: 1, method: "echo", params: [text] }));
        const answer = await next();
        ws.close();
        return { extensions: ws.extensions, welcome: welcome.method, echoed: answer.result?.[0] === text };
      }, gateway.ws("chromium-deflate"));
      expect(seen).toEqual({
        extensions: "permessage-deflate; server_no_context_takeover; client_no_context_takeover",
        welcome: "rpc.welcome",
        echoed: true,
      });
      expect(await compressed()).toBeGreaterThanOrEqual(before + 3300);
    } finally {
      await context.close();
    }
  }, TEST_LIMIT);

  it("the binary serves the committed assets, byte for byte", async () => {
    for (const name of assetNames(ASSETS_DIR)) {
      const path = name.endsWith(".html") ? (name === "dashboard.html" ? "/" : "/demo") : `/assets/${name}`;
      const served = Buffer.from(await (await fetch(gateway.http + path)).arrayBuffer());
      const committed = readFileSync(join(ASSETS_DIR, name));
      expect(served.equals(committed), `${path} differs from server/assets/${name}: rebuild the binary`).toBe(true);
    }
  });
});
