// Starts the real `switchboard` binary on 127.0.0.1 port 0 and drives it:
// the end-to-end tests never hard-code a port and never sleep for a server.

import { spawn, type ChildProcess } from "node:child_process";
import { existsSync, mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

const repo = new URL("../../../", import.meta.url).pathname;

/** The gateway binary: $SWITCHBOARD_BIN, else target/debug or target/release (tests/run builds it first). */
export function binary(): string {
  const candidates = [
    process.env["SWITCHBOARD_BIN"],
    join(repo, "target", "debug", "switchboard"),
    join(repo, "target", "release", "switchboard"),
  ];
  const found = candidates.find((p): p is string => p !== undefined && p !== "" && existsSync(p));
  if (found === undefined) {
    throw new Error(
      "no switchboard binary: run `cargo build -p switchboard-server` at the repository root " +
        "(tests/run does), or set SWITCHBOARD_BIN",
    );
  }
  return found;
}

/**
 * The configuration the end-to-end tests run with: dev mode, personal topics
 * and `e2e:*` topics recoverable, a short shutdown grace so restarts are quick.
 */
export const E2E_CONFIG = `
[limits]
shutdown_grace_ms = 300

[[streams]]
pattern = "user:*"

[[streams]]
pattern = "e2e:*"
history_size = 100
`;

export class Gateway {
  #child: ChildProcess | undefined;
  #port = 0;
  #config: string;
  #log: string[] = [];

  private constructor(config: string) {
    this.#config = config;
  }

  /** Starts a gateway on a free port. */
  static async start(config = E2E_CONFIG): Promise<Gateway> {
    const dir = mkdtempSync(join(tmpdir(), "switchboard-e2e-"));
    const file = join(dir, "switchboard.toml");
    writeFileSync(file, config);
    const gateway = new Gateway(file);
    await gateway.#spawn(0);
    return gateway;
  }

  get port(): number {
    return this.#port;
  }

  /** `http://127.0.0.1:PORT` */
  get http(): string {
    return `http://127.0.0.1:${this.#port}`;
  }

  /** `ws://127.0.0.1:PORT/ws?user=USER` */
  ws(user: string): string {
    return `ws://127.0.0.1:${this.#port}/ws?user=${encodeURIComponent(user)}`;
  }

  /** What the gateway printed, for failure messages. */
  get log(): string {
    return this.#log.join("");
  }

  /** One server API call (`POST /api`); rejects on a JSON-RPC error. */
  async api(method: string, params: unknown = {}): Promise<unknown> {
    const response = await fetch(`${this.http}/api`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ jsonrpc: "2.0", id: 1, method, params }),
    });
    const body = (await response.json()) as { result?: unknown; error?: { code: number; message: string } };
    if (body.error !== undefined) throw new Error(`${method}: ${body.error.message} (${body.error.code})`);
    return body.result;
  }

  /** Stops the gateway (SIGTERM: it drains and closes sessions with 1001) and starts it again on the same port. */
  async restart(): Promise<void> {
    await this.stop();
    await this.#spawn(this.#port);
  }

  /** Stops the gateway and waits for it to exit. */
  async stop(): Promise<void> {
    const child = this.#child;
    this.#child = undefined;
    if (child === undefined || child.exitCode !== null) return;
    const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
    child.kill("SIGTERM");
    const timer = setTimeout(() => child.kill("SIGKILL"), 10_000);
    await exited;
    clearTimeout(timer);
  }

  async #spawn(port: number): Promise<void> {
    const env: NodeJS.ProcessEnv = {};
    for (const [k, v] of Object.entries(process.env)) if (!k.startsWith("SWITCHBOARD_")) env[k] = v;
    env["RUST_LOG"] = env["RUST_LOG"] ?? "warn";
    // A port just freed can take a moment to be bindable again; retry briefly.
    for (let attempt = 0; ; attempt++) {
      const child = spawn(binary(), ["--config", this.#config, "--listen", `127.0.0.1:${port}`], {
        env,
        stdio: ["ignore", "ignore", "pipe"],
      });
      try {
        this.#port = await listening(child, this.#log);
        this.#child = child;
        return;
      } catch (error) {
        if (attempt >= 20 || port === 0) throw error;
        await new Promise((r) => setTimeout(r, 100));
      }
    }
  }
}

/** Resolves with the port once the binary prints `switchboard listening on http://ADDR`. */
function listening(child: ChildProcess, log: string[]): Promise<number> {
  return new Promise((resolve, reject) => {
    let text = "";
    const timer = setTimeout(() => reject(new Error(`the gateway did not start within 15 s:\n${text}`)), 15_000);
    child.stderr?.setEncoding("utf8");
    child.stderr?.on("data", (chunk: string) => {
      log.push(chunk);
      text += chunk;
      // Wait for the whitespace after the port: a chunk may end inside it.
      const m = /switchboard listening on http:\/\/[^\s]+:(\d+)\s/.exec(text);
      if (m) {
        clearTimeout(timer);
        resolve(Number(m[1]));
      }
    });
    child.once("exit", (code) => {
      clearTimeout(timer);
      reject(new Error(`the gateway exited with ${code}:\n${text}`));
    });
  });
}
