// Debian's Chromium, driven by playwright-core: never a downloaded browser.

import { existsSync, mkdirSync } from "node:fs";
import { chromium, type Browser, type Page } from "playwright-core";

/** Where screenshots go (gitignored). */
export const ARTIFACTS = new URL("../../test-artifacts/", import.meta.url).pathname;

export function chromiumPath(): string {
  const path = process.env["CHROMIUM_PATH"] ?? "/usr/bin/chromium";
  if (!existsSync(path)) {
    throw new Error(`no Chromium at ${path}: install Debian's package (apt-get install chromium); tests/run does`);
  }
  return path;
}

/** Launches headless Chromium with a fresh profile and no background networking. */
export async function launch(): Promise<Browser> {
  mkdirSync(ARTIFACTS, { recursive: true });
  return chromium.launch({
    executablePath: chromiumPath(),
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
}

/** Collects what the page logs, to explain a failure. */
export function recordConsole(page: Page): string[] {
  const lines: string[] = [];
  page.on("console", (m) => lines.push(`[${m.type()}] ${m.text()}`));
  page.on("pageerror", (e) => lines.push(`[pageerror] ${e.message}`));
  return lines;
}
