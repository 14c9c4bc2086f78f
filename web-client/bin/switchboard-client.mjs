#!/usr/bin/env node
// switchboard-client generate <file | http(s)://host/rpc> [--out F] [--token T]
//
// Writes the typed contract of an application (see generate/openrpc.mjs) from
// its OpenRPC document: a JSON file, or what a gateway answers to
// `rpc.discover` over HTTP.

import { readFileSync, writeFileSync } from "node:fs";
import { generateContract } from "../generate/openrpc.mjs";

const USAGE = `Usage: switchboard-client generate <file | http(s)://host/rpc> [--out FILE] [--token TOKEN]

Writes a TypeScript module typing an application's methods, client methods and
pushes, for \`new Client<Contract>(url)\`, from its OpenRPC document: a JSON file,
or the answer of a gateway's HTTP endpoint to rpc.discover.

  --out FILE     write the module to FILE (default: stdout)
  --token TOKEN  send "authorization: Bearer TOKEN" with the rpc.discover request
  --help         print this help
`;

/** A command-line mistake: usage on stderr, exit code 2. */
class UsageError extends Error {}

/** The options of `generate`, from its arguments. */
function parseGenerate(args) {
  const options = { source: undefined, out: undefined, token: undefined };
  for (let i = 0; i < args.length; i++) {
    const arg = args[i];
    if (arg === "--out" || arg === "--token") {
      const value = args[++i];
      if (value === undefined) throw new UsageError(`${arg} needs a value`);
      options[arg.slice(2)] = value;
    } else if (arg.startsWith("-")) {
      throw new UsageError(`unknown option: ${arg}`);
    } else if (options.source === undefined) {
      options.source = arg;
    } else {
      throw new UsageError(`unexpected argument: ${arg}`);
    }
  }
  if (options.source === undefined) throw new UsageError("generate needs a file or an http(s) URL");
  return options;
}

/** Asks a gateway for its OpenRPC document (`rpc.discover` over HTTP POST). */
async function discover(url, token) {
  const headers = { "content-type": "application/json" };
  if (token !== undefined) headers.authorization = `Bearer ${token}`;
  const body = JSON.stringify({ jsonrpc: "2.0", id: 1, method: "rpc.discover" });
  const response = await fetch(url, { method: "POST", headers, body });
  if (response.status !== 200) throw new Error(`${url} answered HTTP ${response.status} ${response.statusText}`);
  const answer = await response.json();
  if (answer?.error !== undefined) {
    throw new Error(`${url} answered rpc.discover with error ${answer.error.code}: ${answer.error.message}`);
  }
  if (answer?.result === undefined) throw new Error(`${url} answered rpc.discover without a result`);
  return answer.result;
}

/** The OpenRPC document at `source`: a URL asked with `rpc.discover`, else a JSON file. */
async function load(source, token) {
  if (/^https?:\/\//i.test(source)) return discover(source, token);
  return JSON.parse(readFileSync(source, "utf8"));
}

async function main(argv) {
  const [command, ...args] = argv;
  if (command === "--help" || command === "-h" || args.includes("--help")) {
    process.stdout.write(USAGE);
    return 0;
  }
  if (command !== "generate") throw new UsageError(command === undefined ? "no command" : `unknown command: ${command}`);
  const options = parseGenerate(args);
  const module = generateContract(await load(options.source, options.token), { source: options.source });
  if (options.out === undefined) process.stdout.write(module);
  else writeFileSync(options.out, module);
  return 0;
}

// Exit codes through process.exitCode: process.exit could cut off output still flowing into a pipe.
main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (error) => {
    const usage = error instanceof UsageError;
    const message = error instanceof Error ? error.message : String(error);
    process.stderr.write(`switchboard-client: ${message}\n${usage ? `\n${USAGE}` : ""}`);
    process.exitCode = usage ? 2 : 1;
  },
);
