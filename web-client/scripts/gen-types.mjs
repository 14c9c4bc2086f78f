// Generates TypeScript types from the gateway's OpenRPC documents, which are
// themselves generated from the Rust protocol crate:
//
//   schemas/openrpc.json      -> src/protocol.ts      (the built-in rpc.* methods)
//   schemas/api-openrpc.json  -> src/api-protocol.ts  (the server API, POST /api)
//
// `npm run gen` rewrites both; a unit test fails when a committed file differs
// from what this script produces.

import { readFileSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const schemas = join(here, "..", "..", "schemas");
const src = join(here, "..", "src");

/** Each document, the module generated from it, and the names of its method maps. */
export const TARGETS = [
  {
    input: join(schemas, "openrpc.json"),
    output: join(src, "protocol.ts"),
    methods: "BuiltinMethods",
    methodsDoc: "The gateway's built-in methods a client may call, with their params and results.",
    notifications: "BuiltinNotifications",
  },
  {
    input: join(schemas, "api-openrpc.json"),
    output: join(src, "api-protocol.ts"),
    methods: "ApiMethods",
    methodsDoc: "The server API's methods (`POST /api`), with their params and results.",
    notifications: undefined,
  },
];

const IDENT = /^[A-Za-z_$][A-Za-z0-9_$]*$/;

function key(name) {
  return IDENT.test(name) ? name : JSON.stringify(name);
}

function doc(text, indent) {
  if (!text) return "";
  const lines = text.replace(/\*\//g, "*\\/").split("\n");
  if (lines.length === 1) return `${indent}/** ${lines[0]} */\n`;
  return `${indent}/**\n${lines.map((l) => `${indent} *${l ? " " + l : ""}`).join("\n")}\n${indent} */\n`;
}

function literal(value) {
  return JSON.stringify(value);
}

/** A JSON Schema (the subset schemars writes) as a TypeScript type. */
function tsType(schema, indent) {
  if (schema === true || schema === undefined || Object.keys(schema).length === 0) return "unknown";
  if (schema.$ref) return schema.$ref.split("/").pop();
  if (schema.const !== undefined) return literal(schema.const);
  if (schema.enum) return schema.enum.map(literal).join(" | ");
  // Draft 7 ignores a $ref's siblings, so a described reference is written as `allOf: [{$ref}]`.
  if (schema.allOf) return schema.allOf.map((s) => tsType(s, indent)).join(" & ");
  const variants = schema.oneOf ?? schema.anyOf;
  if (variants) {
    const parts = variants.map((v) => tsType(v, indent));
    return parts.length > 1 ? parts.map((p) => (p.includes("\n") ? p : p)).join(" | ") : parts[0];
  }
  const types = Array.isArray(schema.type) ? schema.type : schema.type ? [schema.type] : [];
  if (types.length > 1) {
    return types.map((t) => tsType({ ...schema, type: t }, indent)).join(" | ");
  }
  switch (types[0]) {
    case "null":
      return "null";
    case "boolean":
      return "boolean";
    case "integer":
    case "number":
      return "number";
    case "string":
      return "string";
    case "array": {
      if (Array.isArray(schema.items)) {
        const min = schema.minItems ?? schema.items.length;
        const parts = schema.items.map((s, i) => tsType(s, indent) + (i >= min ? "?" : ""));
        return `[${parts.join(", ")}]`;
      }
      const item = tsType(schema.items, indent);
      return /^[A-Za-z0-9_"]+$/.test(item) ? `${item}[]` : `Array<${item}>`;
    }
    case "object":
      return schema.properties ? objectType(schema, indent) : "{ [key: string]: unknown }";
    default:
      return "unknown";
  }
}

function objectType(schema, indent) {
  const required = new Set(schema.required ?? []);
  const inner = indent + "  ";
  const names = Object.keys(schema.properties ?? {}).sort((a, b) => {
    // Required members first, each group in the schema's (alphabetical) order.
    const ra = required.has(a) ? 0 : 1;
    const rb = required.has(b) ? 0 : 1;
    return ra - rb || (a < b ? -1 : a > b ? 1 : 0);
  });
  if (names.length === 0) return "Record<string, never>";
  const lines = names.map((name) => {
    const prop = schema.properties[name];
    const opt = required.has(name) ? "" : "?";
    return `${doc(prop.description, inner)}${inner}${key(name)}${opt}: ${tsType(prop, inner)};`;
  });
  return `{\n${lines.join("\n")}\n${indent}}`;
}

/** By-name params of a method or notification, as an object type. */
function paramsType(params, indent) {
  const properties = {};
  const required = [];
  for (const p of params ?? []) {
    properties[p.name] = { ...p.schema, description: p.description ?? p.schema?.description };
    if (p.required) required.push(p.name);
  }
  if ((params ?? []).length === 0) return "Record<string, never> | undefined";
  return objectType({ properties, required }, indent);
}

function pascal(message) {
  return message
    .split(/[^A-Za-z0-9]+/)
    .filter(Boolean)
    .map((w) => w[0].toUpperCase() + w.slice(1))
    .join("");
}

/** The TypeScript module for an OpenRPC document. */
export function generate(openrpc, target) {
  const source = target.input.split(/[\\/]/).slice(-2).join("/");
  let out = "";
  out += `// Generated by scripts/gen-types.mjs from ${source}. Do not edit:\n`;
  out += "// run `npm run gen` after the protocol crate changes (a unit test checks it).\n\n";
  if (target.notifications !== undefined) {
    out += doc(`The protocol version: the WebSocket subprotocol and \`rpc.welcome\`'s \`protocol\`.`, "");
    out += `export const PROTOCOL_VERSION = ${literal(openrpc.info.version)};\n\n`;
  }

  const components = openrpc.components?.schemas ?? {};
  for (const name of Object.keys(components).sort()) {
    const schema = components[name];
    out += doc(schema.description, "");
    const body = tsType(schema, "");
    if ((schema.type === "object" || schema.properties) && !schema.oneOf && !schema.anyOf) {
      out += body.startsWith("{") ? `export interface ${name} ${body}\n\n` : `export type ${name} = ${body};\n\n`;
    } else {
      out += `export type ${name} = ${body};\n\n`;
    }
  }

  out += doc(target.methodsDoc, "");
  out += `export interface ${target.methods} {\n`;
  for (const m of openrpc.methods ?? []) {
    out += doc(m.summary, "  ");
    out += `  ${key(m.name)}: {\n`;
    out += `    params: ${paramsType(m.params, "    ")};\n`;
    out += `    result: ${tsType(m.result?.schema, "    ")};\n`;
    out += "  };\n";
  }
  out += "}\n";
  if (target.notifications === undefined) return out;

  out += "\n";
  out += doc("Notifications the gateway sends to clients, with their params.", "");
  out += `export interface ${target.notifications} {\n`;
  for (const n of openrpc["x-notifications"] ?? []) {
    out += doc(n.summary, "  ");
    out += `  ${key(n.name)}: ${paramsType(n.params, "  ")};\n`;
  }
  out += "}\n\n";

  const errors = openrpc["x-error-codes"] ?? [];
  out += doc("Every error code of the specification and the gateway, by name.", "");
  out += "export const ErrorCode = {\n";
  for (const e of errors) out += `  ${pascal(e.message)}: ${e.code},\n`;
  out += "} as const;\n\n";
  out += doc("The standard message of each error code.", "");
  out += "export const ERROR_MESSAGES: { readonly [code: number]: string } = {\n";
  for (const e of errors) out += `  [${e.code}]: ${literal(e.message)},\n`;
  out += "};\n\n";

  const closes = openrpc["x-close-codes"] ?? [];
  out += doc("How a client reacts to a close code.", "");
  out += `export type CloseClass = ${[...new Set(closes.map((c) => literal(c.class)))].join(" | ") || "string"};\n\n`;
  out += doc("The close codes the gateway sends, with their reasons and classes.", "");
  out += "export const CLOSE_CODES: ReadonlyArray<{ readonly code: number; readonly reason: string; readonly class: CloseClass }> = [\n";
  for (const c of closes) {
    out += `  { code: ${c.code}, reason: ${literal(c.reason)}, class: ${literal(c.class)} },\n`;
  }
  out += "];\n";
  return out;
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? "").href) {
  for (const target of TARGETS) {
    writeFileSync(target.output, generate(JSON.parse(readFileSync(target.input, "utf8")), target));
    console.log(`wrote ${target.output}`);
  }
}
