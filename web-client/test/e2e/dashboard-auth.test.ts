// The dashboard against a gateway with authentication on: `/ws` needs a JWT,
// the server API an API key. The page must not open a session of its own, must
// ask for the key in its sign-in form, keep it out of the URL, storage and
// cookies, show the cluster's counts with it, and explain a refused key.
// The screenshot lands in target/dashboard.png at the repository root.

import { createHmac } from "node:crypto";
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import WebSocket from "ws";
import type { Browser } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Client, type WebSocketConstructor } from "../../src/index.js";
import { launch, recordConsole } from "./browser.js";
import { Gateway } from "./server.js";

const SECRET = "dashboard-e2e-jwt-secret-0123456789abcdef";
const KEY = "dashboard-e2e-presence-key-5f0c1d";
const NOTIFY_ONLY_KEY = "dashboard-e2e-notify-key-93ab27";
const TARGET = join(new URL("../../../", import.meta.url).pathname, "target");

// A hang guard, not a budget: Chromium is slow on a small shared machine.
const TEST_LIMIT = 120_000;

function b64url(data: string | Buffer): string {
  return Buffer.from(data).toString("base64url");
}

/** An HS256 JWT for `sub`, valid for ten minutes. */
function jwt(sub: string): string {
  const header = b64url(JSON.stringify({ alg: "HS256", typ: "JWT" }));
  const claims = b64url(JSON.stringify({ sub, exp: Math.floor(Date.now() / 1000) + 600 }));
  const signature = b64url(createHmac("sha256", SECRET).update(`${header}.${claims}`).digest());
  return `${header}.${claims}.${signature}`;
}

let gateway: Gateway;
let browser: Browser;
const clients: Client[] = [];

beforeAll(async () => {
  [gateway, browser] = await Promise.all([
    Gateway.start(`
[auth]

[[auth.jwt]]
algorithm = "HS256"
secret = "${SECRET}"

[[api_keys]]
name = "dashboard"
key = "${KEY}"
scopes = ["presence"]

[[api_keys]]
name = "notifier"
key = "${NOTIFY_ONLY_KEY}"
scopes = ["notify"]
`),
    launch(),
  ]);
});
afterAll(async () => {
  for (const c of clients) c.close();
  await browser?.close();
  await gateway?.stop();
});

describe("dashboard with authentication", () => {
  it("signs in with an API key kept in memory only and shows the cluster's counts", async () => {
    // Two sessions of ann and one of ben, each with its own token.
    for (const user of ["ann", "ann", "ben"]) {
      const c = new Client(`ws://127.0.0.1:${gateway.port}/ws`, {
        WebSocket: WebSocket as unknown as WebSocketConstructor,
        token: jwt(user),
      });
      clients.push(c);
    }
    await Promise.all(clients.map((c) => c.ready()));

    const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
    const page = await context.newPage();
    const log = recordConsole(page);
    try {
      await page.goto(`${gateway.http}/`);
      // The API refuses a request without a key: the page asks for one and opens no session.
      await page.waitForSelector("#sign-in-form", { state: "visible" });
      expect(await page.getAttribute("#sign-in-key", "type")).toBe("password");
      expect(await page.isHidden("#board")).toBe(true);
      expect(await page.isHidden("#session-info")).toBe(true);

      // An unknown key is refused with a message, and the form stays.
      await page.fill("#sign-in-key", "not-a-key");
      await page.click("#sign-in-form button");
      await page.waitForSelector("#sign-in-error:not([hidden])");
      expect(await page.textContent("#sign-in-error")).toContain("refused this key");
      expect(await page.isHidden("#board")).toBe(true);

      // A key without the presence scope is told so.
      await page.fill("#sign-in-key", NOTIFY_ONLY_KEY);
      await page.click("#sign-in-form button");
      await page.waitForFunction(() => document.querySelector("#sign-in-error")?.textContent?.includes("presence scope"));
      expect(await page.isHidden("#board")).toBe(true);

      // The right key: the counts are the three sessions above, so the page has none of its own.
      await page.fill("#sign-in-key", KEY);
      await page.click("#sign-in-form button");
      await page.waitForSelector("#board", { state: "visible" });
      await page.waitForFunction(
        () =>
          document.querySelector("#stat-sessions")?.textContent === "3" &&
          document.querySelector("#stat-users")?.textContent === "2" &&
          document.querySelector("#stat-nodes")?.textContent === "1" &&
          document.querySelector("#node-sessions")?.textContent === "3" &&
          document.querySelector("#presence-count")?.textContent === "3 sessions of 2 users" &&
          document.querySelectorAll("#sessions-table tbody tr").length === 3,
      );
      const users = await page.locator("#sessions-table tbody tr td:nth-child(2)").allTextContents();
      expect(users.sort()).toEqual(["ann", "ann", "ben"]);
      expect(await page.isHidden("#sign-in")).toBe(true);
      expect(await page.isHidden("#api-status")).toBe(true);
      expect(await page.isHidden("#session-info")).toBe(true);
      expect(await page.isDisabled("#presence-next")).toBe(true);

      // The key is nowhere the browser keeps or shows things.
      const kept = await page.evaluate(() => ({
        href: location.href,
        cookie: document.cookie,
        local: Object.entries(localStorage).flat().join("\n"),
        session: Object.entries(sessionStorage).flat().join("\n"),
        field: (document.querySelector("#sign-in-key") as HTMLInputElement).value,
      }));
      for (const [where, value] of Object.entries(kept)) expect(value, where).not.toContain(KEY);
      expect(log.join("\n")).not.toContain(KEY);

      // A session leaving shows up in the counts.
      clients[2]?.close();
      await page.waitForFunction(() => document.querySelector("#stat-users")?.textContent === "1");

      mkdirSync(TARGET, { recursive: true });
      await page.screenshot({ path: join(TARGET, "dashboard.png"), fullPage: true });

      // More sessions than a page holds: ann's two and p00…p24, 25 to a page by (user, session).
      const crowd = Array.from({ length: 25 }, (_, i) => {
        const c = new Client(`ws://127.0.0.1:${gateway.port}/ws`, {
          WebSocket: WebSocket as unknown as WebSocketConstructor,
          token: jwt(`p${String(i).padStart(2, "0")}`),
        });
        clients.push(c);
        return c;
      });
      await Promise.all(crowd.map((c) => c.ready()));
      await page.waitForFunction(
        () =>
          document.querySelector("#presence-count")?.textContent === "27 sessions of 26 users" &&
          document.querySelectorAll("#sessions-table tbody tr").length === 25 &&
          !(document.querySelector("#presence-next") as HTMLButtonElement).disabled,
      );
      expect(await page.textContent("#stat-sessions")).toBe("27");
      await page.click("#presence-next");
      await page.waitForFunction(() => document.querySelectorAll("#sessions-table tbody tr").length === 2);
      const rest = await page.locator("#sessions-table tbody tr td:nth-child(2)").allTextContents();
      expect(rest).toEqual(["p23", "p24"]);
      expect(await page.textContent("#presence-page")).toBe("page 2: 26–27");
      expect(await page.isDisabled("#presence-next")).toBe(true);
      await page.click("#presence-prev");
      await page.waitForFunction(() => document.querySelectorAll("#sessions-table tbody tr").length === 25);
      expect(await page.isDisabled("#presence-prev")).toBe(true);

      // Signing out forgets the key: the form is back and the counts are gone.
      await page.click("#sign-out");
      await page.waitForSelector("#sign-in-form", { state: "visible" });
      expect(await page.isHidden("#board")).toBe(true);
      expect(await page.textContent("#stat-sessions")).toBe("–");
    } catch (error) {
      mkdirSync(TARGET, { recursive: true });
      await page.screenshot({ path: join(TARGET, "dashboard-failure.png"), fullPage: true }).catch(() => {});
      throw new Error(`${(error as Error).message}\npage log:\n${log.join("\n")}\ngateway log:\n${gateway.log}`);
    } finally {
      await context.close();
    }
  }, TEST_LIMIT);
});
