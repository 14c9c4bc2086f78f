// Bundles page.mjs with esbuild (resolving switchboard-client from the
// installed package), serves it with page.html from 127.0.0.1, loads the page
// in Debian's Chromium, headless and with a fresh profile, and checks that the
// page's call to the gateway succeeded.
//
//   node browser.mjs http://127.0.0.1:PORT CHROMIUM_PATH

import { createServer } from "node:http";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import * as esbuild from "esbuild";
import { chromium } from "playwright-core";

const here = dirname(fileURLToPath(import.meta.url));
const [base, executablePath] = process.argv.slice(2);

const bundle = await esbuild.build({
  entryPoints: [join(here, "page.mjs")],
  bundle: true,
  format: "esm",
  platform: "browser",
  target: "es2022",
  write: false,
  logLevel: "warning",
});
const files = {
  "/page.html": { body: readFileSync(join(here, "page.html"), "utf8"), type: "text/html" },
  "/page.js": { body: bundle.outputFiles[0].text, type: "text/javascript" },
};

// A real server on the loopback interface: Chromium's local network access
// checks let a page from 127.0.0.1 connect to the gateway on 127.0.0.1, but
// not a page Playwright made up (that counts as public).
const pages = createServer((request, response) => {
  const file = files[new URL(request.url ?? "/", "http://127.0.0.1").pathname];
  if (file === undefined) {
    response.writeHead(404).end();
    return;
  }
  response.writeHead(200, { "content-type": `${file.type}; charset=utf-8` }).end(file.body);
});
await new Promise((resolve) => pages.listen(0, "127.0.0.1", resolve));
const pagesUrl = `http://127.0.0.1:${pages.address().port}`;

// A profile of its own, removed afterwards; the same flags as the web-client browser tests.
const profile = mkdtempSync(join(tmpdir(), "switchboard-packaging-chromium-"));
const context = await chromium.launchPersistentContext(profile, {
  executablePath,
  headless: true,
  args: [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
  ],
});
const log = [];
try {
  const page = await context.newPage();
  page.on("console", (m) => log.push(`[${m.type()}] ${m.text()}`));
  page.on("pageerror", (e) => log.push(`[pageerror] ${e.message}`));
  await page.goto(`${pagesUrl}/page.html?gateway=${encodeURIComponent(base)}`);
  await page.waitForFunction(() => window.packagingResult !== undefined, undefined, { timeout: 30_000 });
  const result = await page.evaluate(() => window.packagingResult);
  if (!result.ok || result.value?.user !== "packaging-browser") {
    throw new Error(`the page's call failed: ${JSON.stringify(result)}`);
  }
  console.log(`browser bundle: whoami answered ${JSON.stringify(result.value)}`);
} catch (error) {
  console.error(`page log:\n${log.join("\n")}`);
  throw error;
} finally {
  await context.close();
  pages.close();
  rmSync(profile, { recursive: true, force: true });
}
