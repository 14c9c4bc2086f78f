// The gateway's own pages, embedded in the binary, in Debian's Chromium: the
// dashboard (asserted through its DOM against sessions this test creates)
// and the chat demo (push to a user, the server calling the browser).
// Screenshots land in web-client/test-artifacts/.

import WebSocket from "ws";
import type { Browser, Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Client, type WebSocketConstructor } from "../../src/index.js";
import { ARTIFACTS, launch, recordConsole } from "./browser.js";
import { Gateway } from "./server.js";
import { waitFor } from "./suite.js";

let gateway: Gateway;
let browser: Browser;
const clients: Client[] = [];

// A hang guard, not a budget: each test drives Chromium through page loads,
// many waits and full-page screenshots, which a small shared machine does
// many times slower than a workstation. Playwright's own waits (30 s each)
// report a hang sooner.
const TEST_LIMIT = 120_000;

function nodeClient(user: string): Client {
  const c = new Client(gateway.ws(user), { WebSocket: WebSocket as unknown as WebSocketConstructor });
  clients.push(c);
  return c;
}

beforeAll(async () => {
  [gateway, browser] = await Promise.all([Gateway.start(), launch()]);
});
afterAll(async () => {
  for (const c of clients) c.close();
  await browser?.close();
  await gateway?.stop();
});

async function text(page: Page, selector: string): Promise<string> {
  return (await page.textContent(selector))?.trim() ?? "";
}

describe("dashboard", () => {
  it("shows the sessions and users the test created, live, and drives the server API", async () => {
    // Three sessions of ann, two of ben; each answers page.info and records pushes.
    const pushes: Record<string, unknown[]> = {};
    const made = ["ann", "ann", "ann", "ben", "ben"].map((user, i) => {
      const c = nodeClient(user);
      c.handle("page.info", () => ({ user, n: i }));
      c.on("notice", (p) => (pushes[`${user}${i}`] ??= []).push(p));
      return c;
    });
    await Promise.all(made.map((c) => c.ready()));
    const listener = nodeClient("listener");
    const sub = listener.subscribe("e2e:dashboard");
    await sub.ready();
    const published: unknown[] = [];
    sub.on("message", (p) => published.push(p.data));

    const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
    const page = await context.newPage();
    const log = recordConsole(page);
    try {
      await page.goto(`${gateway.http}/`);
      // The dashboard is itself a client: its badge follows the state machine.
      await page.waitForSelector('#conn-state[data-state="connected"]');
      // ann, ben, listener and the dashboard's own session. Counts, presence
      // and events are separate answers of the server API, so wait for all three.
      await page.waitForFunction(
        () =>
          document.querySelector("#stat-sessions")?.textContent === "7" &&
          document.querySelector("#stat-users")?.textContent === "4" &&
          document.querySelectorAll("#sessions-table tbody tr").length === 7 &&
          document.querySelectorAll('#events li[data-kind="connect"]').length === 7,
      );
      const users = await page.locator("#sessions-table tbody tr td:nth-child(2)").allTextContents();
      expect(users.sort()).toEqual(["ann", "ann", "ann", "ben", "ben", "dashboard", "listener"]);
      expect(Number(await text(page, "#stat-topics"))).toBeGreaterThanOrEqual(1);

      // Console: call a user's method and see each session's answer.
      await page.fill("#call-form [name=user]", "ann");
      await page.fill("#call-form [name=method]", "page.info");
      await page.click("#call-form button");
      await page.waitForFunction(() => document.querySelectorAll("#call-results tbody tr").length === 3);
      const answers = await page.locator("#call-results tbody tr td:nth-child(3)").allTextContents();
      expect(answers.map((a) => JSON.parse(a)).sort((a, b) => a.n - b.n)).toEqual([
        { user: "ann", n: 0 },
        { user: "ann", n: 1 },
        { user: "ann", n: 2 },
      ]);

      // Console: notify a user — every session of ben gets it.
      await page.fill("#notify-form [name=user]", "ben");
      await page.fill("#notify-form [name=params]", '{"text":"from the dashboard"}');
      await page.click("#notify-form button");
      await waitFor(() => pushes["ben3"]?.length === 1 && pushes["ben4"]?.length === 1, "ben's notices");
      expect(pushes["ben3"]).toEqual([{ text: "from the dashboard" }]);
      expect(pushes["ann0"]).toBeUndefined();

      // Console: publish to a topic.
      await page.fill("#publish-form [name=topic]", "e2e:dashboard");
      await page.fill("#publish-form [name=data]", '{"n":42}');
      await page.click("#publish-form button");
      await waitFor(() => published.length === 1, "the publication");
      expect(published).toEqual([{ n: 42 }]);

      // Live: a disconnect shows up in the counts and in the events.
      made[4]?.close();
      await page.waitForFunction(() => document.querySelector("#stat-sessions")?.textContent === "6");
      await page.waitForSelector('#events li[data-kind="disconnect"]');
      expect(await text(page, "#stat-users")).toBe("4");

      // The messages-per-second chart has points and a number.
      await page.waitForFunction(() => (document.querySelector("#rate-chart polyline")?.getAttribute("points") ?? "") !== "");
      expect(await text(page, "#stat-rate")).toMatch(/^\d+(\.\d)?$/);
      expect(await page.isHidden("#api-status")).toBe(true);
      await page.screenshot({ path: `${ARTIFACTS}dashboard.png`, fullPage: true });
    } catch (error) {
      await page.screenshot({ path: `${ARTIFACTS}dashboard-failure.png`, fullPage: true }).catch(() => {});
      throw new Error(`${(error as Error).message}\npage log:\n${log.join("\n")}`);
    } finally {
      await context.close();
    }
  }, TEST_LIMIT);
});

describe("chat demo", () => {
  it("pushes to a user and lets the server call the browser", async () => {
    const contexts = await Promise.all([browser.newContext(), browser.newContext()]);
    const [alice, bob] = await Promise.all(contexts.map((c) => c.newPage())) as [Page, Page];
    const logs = [recordConsole(alice), recordConsole(bob)];
    try {
      // Linked from the dashboard.
      await alice.goto(`${gateway.http}/`);
      await alice.click("#demo-link");
      await alice.waitForURL(/\/demo$/);
      await alice.goto(`${gateway.http}/demo?user=alice`);
      await bob.goto(`${gateway.http}/demo?user=bob`);
      await alice.waitForSelector('#conn-state[data-state="connected"]');
      await bob.waitForSelector('#conn-state[data-state="connected"]');

      // The room: a topic both follow.
      await bob.fill("#send-form [name=text]", "hello room");
      await bob.click("#send-form button");
      await alice.waitForSelector('.msg[data-kind="room"]:has-text("hello room")');

      // A direct message: a push to every session of alice.
      await bob.fill("#dm-form [name=user]", "alice");
      await bob.fill("#dm-form [name=text]", "psst, alice");
      await bob.click("#dm-form button");
      await alice.waitForSelector('.msg[data-kind="dm"]:has-text("psst, alice")');

      // A push from a backend, through the server API.
      await gateway.api("notify", { target: { user: "alice" }, method: "notice", params: { text: "from the backend" } });
      await alice.waitForSelector('.msg[data-kind="push"]:has-text("from the backend")');

      // bob asks alice: the server calls ui.confirm in alice's browser; she answers in a dialog.
      await bob.fill("#ask-form [name=user]", "alice");
      await bob.fill("#ask-form [name=question]", "Lunch at noon?");
      await bob.click("#ask-form button");
      await alice.waitForSelector("#confirm[open]");
      expect(await text(alice, "#confirm-text")).toBe("Lunch at noon?");
      await alice.screenshot({ path: `${ARTIFACTS}demo-confirm.png` });
      await alice.click("#confirm-yes");
      await bob.waitForSelector("#ask-results tbody tr");
      expect(await bob.locator("#ask-results tbody tr td:nth-child(2)").allTextContents()).toEqual(["true"]);

      // Call me back: the server calls the very tab that asked.
      await alice.click("#callback-form button");
      await alice.waitForSelector("#confirm[open]");
      await alice.click("#confirm-no");
      await alice.waitForFunction(() => document.querySelector("#callback-result")?.textContent?.includes("false"));
      await alice.screenshot({ path: `${ARTIFACTS}demo.png`, fullPage: true });
    } catch (error) {
      await alice.screenshot({ path: `${ARTIFACTS}demo-failure.png`, fullPage: true }).catch(() => {});
      throw new Error(`${(error as Error).message}\nalice:\n${logs[0]?.join("\n")}\nbob:\n${logs[1]?.join("\n")}`);
    } finally {
      await Promise.all(contexts.map((c) => c.close()));
    }
  }, TEST_LIMIT);
});
