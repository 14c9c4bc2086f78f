// JSON Schema (draft 7, as OpenRPC documents carry it) to TypeScript, and an
// application's OpenRPC document to a typed contract for `Client<Contract>`.
//
// One converter for everything typed from an OpenRPC document: the client's
// own protocol modules (scripts/gen-types.mjs) and the contracts that
// `switchboard-client generate` writes for applications. Node only: the
// browser build never imports it.

const IDENT = /^[A-Za-z_$][A-Za-z0-9_$]*$/;

/** A property name as TypeScript needs it: bare when it is an identifier, quoted otherwise. */
export function key(name) {
  return IDENT.test(name) ? name : JSON.stringify(name);
}

/** A doc comment (one line or a block) for `text`, or nothing without text. */
export function doc(text, indent) {
  if (!text) return "";
  const lines = text.replace(/\*\//g, "*\\/").split("\n");
  if (lines.length === 1) return `${indent}/** ${lines[0]} */\n`;
  return `${indent}/**\n${lines.map((l) => `${indent} *${l ? " " + l : ""}`).join("\n")}\n${indent} */\n`;
}

/** A JSON value as a TypeScript literal type. */
export function literal(value) {
  return JSON.stringify(value);
}

/**
 * Whether a type has a `|` outside any brackets, so that it needs
 * parentheses inside `&`, before `[]` or before a tuple's `?`.
 */
function isUnion(type) {
  let depth = 0;
  for (const ch of type) {
    if ("{[(<".includes(ch)) depth++;
    else if ("}])>".includes(ch)) depth--;
    else if (ch === "|" && depth === 0) return true;
  }
  return false;
}

/** `type` in parentheses when it is a union. */
function grouped(type) {
  return isUnion(type) ? `(${type})` : type;
}

/** A JSON Schema as a TypeScript type; `indent` is the indentation of the line the type starts on. */
export function tsType(schema, indent) {
  if (schema === false) return "never";
  if (schema === true || schema === undefined || Object.keys(schema).length === 0) return "unknown";
  if (schema.$ref) return schema.$ref.split("/").pop();
  if (schema.const !== undefined) return literal(schema.const);
  if (schema.enum) return schema.enum.map(literal).join(" | ");
  // Draft 7 ignores a $ref's siblings, so a described reference is written as `allOf: [{$ref}]`.
  if (schema.allOf) return schema.allOf.map((s) => grouped(tsType(s, indent))).join(" & ");
  const variants = schema.oneOf ?? schema.anyOf;
  if (variants) return variants.map((v) => tsType(v, indent)).join(" | ");
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
    case "array":
      return arrayType(schema, indent);
    case "object":
      return schema.properties ? objectType(schema, indent) : mapType(schema, indent);
    default:
      return "unknown";
  }
}

/** An array: a tuple when `items` is a list (elements from `minItems` on are optional), else `T[]`. */
function arrayType(schema, indent) {
  if (Array.isArray(schema.items)) {
    const min = schema.minItems ?? schema.items.length;
    const parts = schema.items.map((s, i) => {
      const item = tsType(s, indent);
      return i >= min ? `${grouped(item)}?` : item;
    });
    return `[${parts.join(", ")}]`;
  }
  const item = tsType(schema.items, indent);
  return /^[A-Za-z0-9_"]+$/.test(item) ? `${item}[]` : `Array<${item}>`;
}

/** An object without `properties`: a map of its `additionalProperties` schema (any value without one). */
function mapType(schema, indent) {
  const values = schema.additionalProperties;
  const value = values === undefined || values === true || values === false ? "unknown" : tsType(values, indent);
  return `{ [key: string]: ${value} }`;
}

/** An object with `properties`: required members first, each group in alphabetical order. */
export function objectType(schema, indent) {
  const required = new Set(schema.required ?? []);
  const inner = indent + "  ";
  const names = Object.keys(schema.properties ?? {}).sort((a, b) => {
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

/** The declaration of component `name`: an interface for a plain object, a type alias otherwise. */
export function componentDeclaration(name, schema) {
  const body = tsType(schema, "");
  const plainObject = (schema.type === "object" || schema.properties) && !schema.oneOf && !schema.anyOf;
  const declaration =
    plainObject && body.startsWith("{") ? `export interface ${name} ${body}\n` : `export type ${name} = ${body};\n`;
  return doc(schema.description, "") + declaration;
}

// --- an application's contract ---------------------------------------------

const REF = "#/components/schemas/";

/** Where a method goes in the contract, from `x-switchboard-direction` and whether it has a result. */
function kindOf(method) {
  if ((method["x-switchboard-direction"] ?? "server") !== "client") return "method";
  return method.result === undefined ? "notification" : "clientMethod";
}

/** The names of the components `schema` refers to, directly. */
function refsIn(schema, found = []) {
  if (Array.isArray(schema)) for (const s of schema) refsIn(s, found);
  else if (schema !== null && typeof schema === "object") {
    if (typeof schema.$ref === "string" && schema.$ref.startsWith(REF)) found.push(schema.$ref.slice(REF.length));
    for (const value of Object.values(schema)) refsIn(value, found);
  }
  return found;
}

/** The components reachable from `roots` through `$ref`, sorted by name. */
function reachable(roots, components) {
  const seen = new Set();
  const queue = roots.flatMap((root) => refsIn(root));
  while (queue.length > 0) {
    const name = queue.pop();
    if (seen.has(name)) continue;
    if (components[name] === undefined) throw new Error(`$ref to a missing component: ${REF}${name}`);
    seen.add(name);
    queue.push(...refsIn(components[name]));
  }
  return [...seen].sort();
}

/**
 * The params of an application method or push as a TypeScript type:
 * `undefined` for none, an object for by-name, a tuple for by-position,
 * either for a method that leaves it open, and any structured params
 * (`Params | undefined`) for an untyped method (no `paramStructure`, no params).
 */
function contractParams(method, indent) {
  const params = method.params ?? [];
  const structure = method.paramStructure;
  if (structure === undefined && params.length === 0) return "Params | undefined";
  if (params.length === 0) return "undefined";
  const byName = () => {
    const properties = {};
    const required = params.filter((p) => p.required).map((p) => p.name);
    for (const p of params) properties[p.name] = { ...p.schema, description: p.description ?? p.schema?.description };
    return objectType({ properties, required }, indent);
  };
  const byPosition = () =>
    `[${params.map((p) => (p.required ? tsType(p.schema, indent) : `${grouped(tsType(p.schema, indent))}?`)).join(", ")}]`;
  if (structure === "by-name") return byName();
  if (structure === "by-position") return byPosition();
  return `${byName()} | ${byPosition()}`;
}

/** A method's doc comment text: its summary, description and declared errors. */
function methodDoc(method) {
  const errors = (method.errors ?? []).map((e) => `- \`${e.code}\` ${e.message}`);
  const parts = [method.summary, method.description, errors.length > 0 ? `Errors:\n${errors.join("\n")}` : undefined];
  return parts.filter(Boolean).join("\n\n");
}

/** One member of `Methods`/`ClientMethods`: params and result. */
function methodMember(method) {
  const params = contractParams(method, "    ");
  const result = tsType(method.result?.schema, "    ");
  return `${doc(methodDoc(method), "  ")}  ${key(method.name)}: {\n    params: ${params};\n    result: ${result};\n  };\n`;
}

/** One member of `Notifications`: the push's params. */
function notificationMember(method) {
  return `${doc(methodDoc(method), "  ")}  ${key(method.name)}: ${contractParams(method, "  ")};\n`;
}

/** An exported interface with a doc comment, its members already rendered. */
function contractInterface(name, text, members) {
  return `${doc(text, "")}export interface ${name} {\n${members.join("")}}\n`;
}

/**
 * The TypeScript module of an application's contract, from its OpenRPC
 * document (what the gateway answers to `rpc.discover`): the component
 * types the application's methods use, `Methods` (the client calls them),
 * `ClientMethods` (the server calls them on the client), `Notifications`
 * (pushes) and `Contract`, for `new Client<Contract>(url)`. The gateway's
 * own `rpc.*` methods are left out: the client types them already.
 * `source` names the document in the header.
 */
export function generateContract(openrpc, { source }) {
  const app = (openrpc.methods ?? []).filter((m) => !m.name.startsWith("rpc."));
  const components = openrpc.components?.schemas ?? {};
  const used = reachable(app.flatMap((m) => [m.params ?? [], m.result ?? {}]), components);
  const members = { method: [], clientMethod: [], notification: [] };
  for (const m of app) {
    const kind = kindOf(m);
    members[kind].push(kind === "notification" ? notificationMember(m) : methodMember(m));
  }

  const sections = [
    `// Generated by \`switchboard-client generate\` from ${source}. Do not edit:\n` +
      "// generate it again when the server's methods change.\n",
  ];
  if (app.some((m) => m.paramStructure === undefined && (m.params ?? []).length === 0)) {
    sections.push('import type { Params } from "switchboard-client";\n');
  }
  for (const name of used) sections.push(componentDeclaration(name, components[name]));
  sections.push(
    contractInterface("Methods", "Methods the client calls on the server, with their params and results.", members.method),
    contractInterface(
      "ClientMethods",
      "Methods the server calls on the client (`client.handle`), with their params and results.",
      members.clientMethod,
    ),
    contractInterface("Notifications", "Pushes the server sends to the client (`client.on`), with their params.", members.notification),
    contractInterface("Contract", "The application's contract: `new Client<Contract>(url)`.", [
      "  methods: Methods;\n",
      "  clientMethods: ClientMethods;\n",
      "  notifications: Notifications;\n",
    ]),
  );
  return sections.join("\n");
}
