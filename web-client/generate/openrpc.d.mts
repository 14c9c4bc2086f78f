/** A JSON Schema (draft 7) as OpenRPC documents carry it: an object, or `true`/`false`. */
export type JsonSchema = boolean | { [keyword: string]: unknown };

/** A property name as TypeScript needs it: bare when it is an identifier, quoted otherwise. */
export function key(name: string): string;
/** A doc comment for `text` at `indent`, or "" without text. */
export function doc(text: string | undefined, indent: string): string;
/** A JSON value as a TypeScript literal type. */
export function literal(value: unknown): string;
/** A JSON Schema as a TypeScript type. */
export function tsType(schema: JsonSchema | undefined, indent: string): string;
/** An object schema with `properties` as a TypeScript object type. */
export function objectType(schema: { properties?: { [name: string]: JsonSchema }; required?: string[] }, indent: string): string;
/** The exported declaration of a component schema. */
export function componentDeclaration(name: string, schema: JsonSchema): string;
/** The TypeScript module of an application's contract, from its OpenRPC document; `source` names it in the header. */
export function generateContract(openrpc: unknown, options: { source: string }): string;
