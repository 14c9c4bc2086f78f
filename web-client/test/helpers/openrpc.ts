// Validates OpenRPC documents against the OpenRPC meta-schema
// (@open-rpc/meta-schema), whose JSON Schemas are checked against the
// JSON Schema meta-schema it refers to (@json-schema-tools/meta-schema).

import { createRequire } from "node:module";
import { Ajv, type ValidateFunction } from "ajv";

const require = createRequire(import.meta.url);
// Both packages declare types only; their documents are the modules' values.
const { openrpcDocument } = require("@open-rpc/meta-schema") as { openrpcDocument: { [key: string]: unknown } };
const { jsonSchema } = require("@json-schema-tools/meta-schema") as { jsonSchema: { [key: string]: unknown } };

/** The compiled OpenRPC meta-schema. */
function compile(): ValidateFunction {
  // Ajv does not know their dialect (`$schema: https://meta.json-schema.tools/`); the keywords are draft 7's.
  const { $schema: _dialect, $id: _id, ...schemaMeta } = jsonSchema;
  const { $schema: _openrpcDialect, ...openrpcMeta } = openrpcDocument;
  // Formats (uri, uri-reference) are not checked, so none are registered.
  const ajv = new Ajv({ strict: false, allErrors: true, validateFormats: false });
  // The OpenRPC meta-schema refers to it both with and without the trailing slash.
  ajv.addSchema(schemaMeta, "https://meta.json-schema.tools");
  ajv.addSchema(schemaMeta, "https://meta.json-schema.tools/");
  return ajv.compile(openrpcMeta);
}

let validator: ValidateFunction | undefined;

/** Why `doc` is not a valid OpenRPC document, one line per error; empty when it is valid. */
export function validateOpenRpc(doc: unknown): string[] {
  validator ??= compile();
  if (validator(doc)) return [];
  return (validator.errors ?? []).map((e) => `${e.instancePath || "/"}: ${e.message ?? e.keyword} ${JSON.stringify(e.params)}`);
}
