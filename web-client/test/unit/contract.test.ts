// The contract generator (`switchboard-client generate`): the committed
// contract of the fixture document is what it produces now, through the
// module, the command on a file and the command asking a gateway over HTTP;
// and the OpenRPC documents it reads are valid OpenRPC.

import { execFile } from "node:child_process";
import { mkdtempSync, readFileSync, readdirSync, rmSync } from "node:fs";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { generateContract } from "../../generate/openrpc.mjs";
import { validateOpenRpc } from "../helpers/openrpc.js";

const root = fileURLToPath(new URL("../..", import.meta.url));
const FIXTURE = "test/types/fixture-openrpc.json";
const fixture: unknown = JSON.parse(readFileSync(join(root, FIXTURE), "utf8"));
const committed = readFileSync(join(root, "test/types/contract.ts"), "utf8");

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs the command in web-client/ (asynchronously: the test's HTTP server must keep answering). */
function cli(...args: string[]): Promise<Run> {
  return new Promise((resolve) => {
    execFile(process.execPath, ["bin/switchboard-client.mjs", ...args], { cwd: root }, (error, stdout, stderr) => {
      resolve({ code: error === null ? 0 : typeof error.code === "number" ? error.code : -1, stdout, stderr });
    });
  });
}

describe("generated contract", () => {
  it("test/types/contract.ts is what the generator produces from the fixture", () => {
    const fresh = generateContract(fixture, { source: FIXTURE });
    expect(committed === fresh, "stale: run `node bin/switchboard-client.mjs generate test/types/fixture-openrpc.json --out test/types/contract.ts`").toBe(true);
  });

  it("leaves out the gateway's rpc.* methods and the components only they use", () => {
    expect(committed).not.toMatch(/rpc\.(ping|publish)/);
    expect(committed).not.toContain("PublishResult");
  });
});

describe("switchboard-client generate <file>", () => {
  it("writes the contract to stdout", async () => {
    const run = await cli("generate", FIXTURE);
    expect(run).toEqual({ code: 0, stdout: committed, stderr: "" });
  });

  it("writes it to --out", async () => {
    const dir = mkdtempSync(join(tmpdir(), "switchboard-contract-"));
    try {
      const out = join(dir, "contract.ts");
      expect((await cli("generate", FIXTURE, "--out", out)).code).toBe(0);
      expect(readFileSync(out, "utf8")).toBe(committed);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("prints the usage for --help, and with exit code 2 for a mistake", async () => {
    const help = await cli("--help");
    expect(help.code).toBe(0);
    expect(help.stdout).toContain("Usage: switchboard-client generate");
    for (const args of [["frobnicate"], ["generate", FIXTURE, "--bogus"], ["generate"], []]) {
      const run = await cli(...args);
      expect(run.code, args.join(" ")).toBe(2);
      expect(run.stderr).toContain("Usage: switchboard-client generate");
    }
  });

  it("fails with exit code 1 for a missing file", async () => {
    const run = await cli("generate", "test/types/no-such-file.json");
    expect(run.code).toBe(1);
    expect(run.stderr).toContain("no-such-file.json");
  });
});

describe("switchboard-client generate <url>", () => {
  /** What the server answers next: a status and a body. */
  let answer: (request: unknown) => { status: number; body: unknown } = () => ({ status: 500, body: {} });
  const seen: Array<{ method: string | undefined; headers: IncomingMessage["headers"]; body: unknown }> = [];
  let server: Server;
  let url: string;

  beforeAll(async () => {
    server = createServer((req: IncomingMessage, res: ServerResponse) => {
      let text = "";
      req.on("data", (chunk: Buffer) => (text += chunk.toString("utf8")));
      req.on("end", () => {
        const body: unknown = JSON.parse(text);
        seen.push({ method: req.method, headers: req.headers, body });
        const { status, body: reply } = answer(body);
        res.writeHead(status, { "content-type": "application/json" }).end(JSON.stringify(reply));
      });
    });
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/rpc`;
  });
  afterAll(() => new Promise<void>((resolve) => server.close(() => resolve())));

  it("asks rpc.discover and writes the contract of the answer", async () => {
    answer = () => ({ status: 200, body: { jsonrpc: "2.0", id: 1, result: fixture } });
    seen.length = 0;
    const run = await cli("generate", url, "--token", "t0k");
    expect(run).toEqual({ code: 0, stdout: generateContract(fixture, { source: url }), stderr: "" });
    expect(seen).toHaveLength(1);
    expect(seen[0]?.method).toBe("POST");
    expect(seen[0]?.headers["content-type"]).toBe("application/json");
    expect(seen[0]?.headers["authorization"]).toBe("Bearer t0k");
    expect(seen[0]?.body).toEqual({ jsonrpc: "2.0", id: 1, method: "rpc.discover" });
  });

  it("sends no authorization without --token", async () => {
    seen.length = 0;
    expect((await cli("generate", url)).code).toBe(0);
    expect(seen[0]?.headers["authorization"]).toBeUndefined();
  });

  it("fails with exit code 1 and the error when the gateway answers a JSON-RPC error", async () => {
    answer = () => ({ status: 200, body: { jsonrpc: "2.0", id: 1, error: { code: -32001, message: "Forbidden" } } });
    const run = await cli("generate", url);
    expect(run.code).toBe(1);
    expect(run.stdout).toBe("");
    expect(run.stderr).toContain("-32001: Forbidden");
  });

  it("fails with exit code 1 on an HTTP status other than 200", async () => {
    answer = () => ({ status: 401, body: {} });
    const run = await cli("generate", url);
    expect(run.code).toBe(1);
    expect(run.stderr).toContain("HTTP 401");
  });
});

describe("OpenRPC documents", () => {
  const schemas = join(root, "..", "schemas");
  const documents = [
    ...readdirSync(schemas)
      .filter((name) => name.endsWith("openrpc.json"))
      .map((name) => join(schemas, name)),
    join(root, FIXTURE),
  ];

  for (const path of documents) {
    it(`${path.slice(root.length - 1)} is valid OpenRPC`, () => {
      expect(validateOpenRpc(JSON.parse(readFileSync(path, "utf8")))).toEqual([]);
    });
  }

  it("rejects a method without params, and an unknown key that is not an x- extension", () => {
    const withoutParams = structuredClone(fixture) as { methods: Array<{ [key: string]: unknown }> };
    delete withoutParams.methods[2]?.["params"];
    expect(validateOpenRpc(withoutParams).join("\n")).toContain("must have required property 'params'");

    const unknownKey = structuredClone(fixture) as { methods: Array<{ [key: string]: unknown }> };
    unknownKey.methods[2] = { ...unknownKey.methods[2], direction: "client" };
    expect(validateOpenRpc(unknownKey).join("\n")).toContain('"additionalProperty":"direction"');
  });
});
