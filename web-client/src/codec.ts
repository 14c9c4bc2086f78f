/**
 * Reading and writing JSON-RPC 2.0 frames, following the same rules as the
 * gateway's protocol crate (`schemas/src/frame.rs`): the conformance vectors
 * in `schemas/vectors/` are replayed against this module.
 *
 * Ids are kept as their raw JSON text, so an id is echoed back exactly as the
 * peer spelled it (`1.50` stays `1.50`, a 30-digit integer keeps its digits).
 *
 * @module
 */

import type { ErrorObject } from "./errors.js";
import { ERROR_MESSAGES } from "./protocol.js";

/** The raw JSON text of an id, exactly as the peer wrote it: `12`, `"a"`, `null`. */
export type RawId = string;

/** Parameters to send with a request or notification: by position (an array) or by name (an object). */
export type Params = readonly unknown[] | object;

/** Parameters as received: by position or by name. */
export type ReceivedParams = unknown[] | { [key: string]: unknown };

/** One JSON-RPC message, classified. */
export type Message =
  /** A call that expects an answer. */
  | { kind: "request"; id: RawId; method: string; params: ReceivedParams | undefined }
  /** A call without an id: it gets no answer. */
  | { kind: "notification"; method: string; params: ReceivedParams | undefined }
  /** A successful answer to one of our requests. */
  | { kind: "result"; id: RawId; result: unknown }
  /** An error answer to one of our requests. */
  | { kind: "error"; id: RawId; error: ErrorObject }
  /**
   * JSON that is not a valid message. `id` is the id to answer with when it
   * could be read and was legal; `wasResponse` tells that it looked like a
   * response, which is never answered.
   */
  | { kind: "invalid"; id: RawId | null; reason: string; wasResponse: boolean };

/** What a text frame holds. */
export type Frame =
  | { kind: "single"; message: Message }
  | { kind: "batch"; messages: Message[] }
  /** Not JSON at all: answered with `-32700` and id `null`. */
  | { kind: "parse_error" }
  /** `[]`: answered with one `-32600` and id `null`. */
  | { kind: "empty_batch" };

/** The specification's error codes. */
export const PARSE_ERROR = -32700;
export const INVALID_REQUEST = -32600;
export const METHOD_NOT_FOUND = -32601;
export const INVALID_PARAMS = -32602;
export const INTERNAL_ERROR = -32603;

const MESSAGE_MEMBERS = new Set(["jsonrpc", "id", "method", "params", "result", "error"]);
const ERROR_MEMBERS = new Set(["code", "message", "data"]);

/** Classifies a text frame. */
export function decode(text: string): Frame {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return { kind: "parse_error" };
  }
  const start = skipWs(text, 0);
  if (Array.isArray(value)) {
    if (value.length === 0) return { kind: "empty_batch" };
    const spans = elements(text, start);
    return { kind: "batch", messages: spans.map((span, i) => classify(text, span, value[i])) };
  }
  return { kind: "single", message: classify(text, [start, skipValue(text, start)], value) };
}

/** The number of elements when `text` is a batch, without classifying them. */
export function batchLength(text: string): number | undefined {
  const start = skipWs(text, 0);
  if (text[start] !== "[") return undefined;
  try {
    const value: unknown = JSON.parse(text);
    return Array.isArray(value) ? value.length : undefined;
  } catch {
    return undefined;
  }
}

type Span = readonly [start: number, end: number];

function invalid(id: RawId | null, reason: string, wasResponse: boolean): Message {
  return { kind: "invalid", id, reason, wasResponse };
}

/** Classifies one JSON value, given its text span and its parsed value. */
function classify(text: string, span: Span, value: unknown): Message {
  if (text[span[0]] !== "{" || typeof value !== "object" || value === null) {
    return invalid(null, "a message must be a JSON object", false);
  }
  const raw = members(text, span[0], MESSAGE_MEMBERS);
  if (raw === undefined) return invalid(null, "a message must not repeat a member", false);
  const obj = value as Record<string, unknown>;
  const rawId = raw.get("id");
  const id = rawId !== undefined && isLegalId(rawId) ? rawId : null;
  const badId = rawId !== undefined && id === null;
  const hasMethod = raw.has("method");
  const hasResult = raw.has("result");
  const hasError = raw.has("error");
  if (!hasMethod && !hasResult && !hasError) {
    // Neither a request nor a response, whatever its "jsonrpc" says: an
    // invalid request, answered under its id when that is legal and with id
    // null otherwise (as the specification's batch example answers
    // `{"foo": "boo"}`).
    return invalid(id, 'a message needs "method", "result" or "error"', false);
  }
  if (obj["jsonrpc"] !== "2.0" || !raw.has("jsonrpc")) {
    return invalid(id, '"jsonrpc" must be exactly "2.0"', !hasMethod);
  }
  if (hasMethod) {
    if (hasResult || hasError) return invalid(id, 'a request must not carry "result" or "error"', false);
    if (badId) return invalid(null, '"id" must be a string, a number or null', false);
    const method = obj["method"];
    if (typeof method !== "string") return invalid(id, '"method" must be a string', false);
    const rawParams = raw.get("params");
    if (rawParams !== undefined && rawParams[0] !== "[" && rawParams[0] !== "{") {
      return invalid(id, '"params" must be an array or an object', false);
    }
    const params = rawParams === undefined ? undefined : (obj["params"] as ReceivedParams);
    return id === null
      ? { kind: "notification", method, params }
      : { kind: "request", id, method, params };
  }
  if (id === null || rawId === undefined) {
    return invalid(null, 'a message needs "method", or "id" with "result" or "error"', hasResult || hasError);
  }
  if (hasResult && !hasError) return { kind: "result", id, result: obj["result"] };
  if (hasError && !hasResult) {
    const error = errorObject(raw.get("error") as string, obj["error"]);
    return error === undefined
      ? invalid(id, '"error" must be an object with a code and a message', true)
      : { kind: "error", id, error };
  }
  // Both (a message with neither was refused above).
  return invalid(id, 'a response must not carry both "result" and "error"', true);
}

/** An id is legal when it is a string, a number or null. */
function isLegalId(raw: string): boolean {
  const c = raw[0];
  return c === '"' || c === "-" || c === "n" || (c !== undefined && c >= "0" && c <= "9");
}

/** `{code, message, data?}` with an integer code that fits 32 bits and a string message. */
function errorObject(rawText: string, value: unknown): ErrorObject | undefined {
  if (rawText[0] !== "{" || typeof value !== "object" || value === null) return undefined;
  const raw = members(rawText, 0, ERROR_MEMBERS);
  if (raw === undefined) return undefined;
  const rawCode = raw.get("code");
  const obj = value as Record<string, unknown>;
  const code = obj["code"];
  const message = obj["message"];
  if (rawCode === undefined || !/^-?\d+$/.test(rawCode) || typeof code !== "number") return undefined;
  if (code < -2147483648 || code > 2147483647 || typeof message !== "string") return undefined;
  const out: ErrorObject = { code, message };
  if (raw.has("data")) out.data = obj["data"];
  return out;
}

// A small scanner over text that JSON.parse has already accepted: it only
// needs to find where values start and end, never to validate.

function skipWs(text: string, i: number): number {
  while (i < text.length) {
    const c = text.charCodeAt(i);
    if (c !== 0x20 && c !== 0x0a && c !== 0x0d && c !== 0x09) break;
    i++;
  }
  return i;
}

function skipString(text: string, i: number): number {
  // text[i] is the opening quote.
  for (let j = i + 1; ; ) {
    const q = text.indexOf('"', j);
    if (q < 0) return text.length;
    let backslashes = 0;
    for (let k = q - 1; text.charCodeAt(k) === 0x5c; k--) backslashes++;
    if (backslashes % 2 === 0) return q + 1;
    j = q + 1;
  }
}

function skipValue(text: string, i: number): number {
  const c = text[i];
  if (c === '"') return skipString(text, i);
  if (c === "{" || c === "[") {
    let depth = 0;
    for (let j = i; j < text.length; j++) {
      const d = text[j];
      if (d === '"') {
        j = skipString(text, j) - 1;
      } else if (d === "{" || d === "[") {
        depth++;
      } else if (d === "}" || d === "]") {
        depth--;
        if (depth === 0) return j + 1;
      }
    }
    return text.length;
  }
  let j = i;
  while (j < text.length && !",}] \n\r\t".includes(text[j] as string)) j++;
  return j;
}

/** The spans of a top-level array's elements; `i` is at `[`. */
function elements(text: string, i: number): Span[] {
  const out: Span[] = [];
  i = skipWs(text, i + 1);
  while (i < text.length && text[i] !== "]") {
    const end = skipValue(text, i);
    out.push([i, end]);
    i = skipWs(text, end);
    if (text[i] === ",") i = skipWs(text, i + 1);
  }
  return out;
}

/**
 * The raw text of an object's known members, by decoded name; `i` is at `{`.
 * Undefined when a known member appears twice (its value would be ambiguous).
 */
function members(text: string, i: number, known: ReadonlySet<string>): Map<string, string> | undefined {
  const out = new Map<string, string>();
  i = skipWs(text, i + 1);
  while (i < text.length && text[i] !== "}") {
    const keyEnd = skipString(text, i);
    const keyText = text.slice(i, keyEnd);
    const key = keyText.includes("\\") ? (JSON.parse(keyText) as string) : keyText.slice(1, -1);
    i = skipWs(text, skipWs(text, keyEnd) + 1);
    const end = skipValue(text, i);
    if (known.has(key)) {
      if (out.has(key)) return undefined;
      out.set(key, text.slice(i, end));
    }
    i = skipWs(text, end);
    if (text[i] === ",") i = skipWs(text, i + 1);
  }
  return out;
}

/** JSON text for a value; `undefined` becomes `null`. */
function json(value: unknown): string {
  return value === undefined ? "null" : JSON.stringify(value);
}

/** `{"jsonrpc":"2.0","id":<id>,"method":…,"params":…}`. */
export function encodeRequest(id: number, method: string, params?: Params): string {
  const p = params === undefined ? "" : `,"params":${JSON.stringify(params)}`;
  return `{"jsonrpc":"2.0","id":${id},"method":${JSON.stringify(method)}${p}}`;
}

/** `{"jsonrpc":"2.0","method":…,"params":…}`. */
export function encodeNotification(method: string, params?: Params): string {
  const p = params === undefined ? "" : `,"params":${JSON.stringify(params)}`;
  return `{"jsonrpc":"2.0","method":${JSON.stringify(method)}${p}}`;
}

/** `{"jsonrpc":"2.0","id":<raw id>,"result":…}`. */
export function encodeResult(id: RawId, result: unknown): string {
  return `{"jsonrpc":"2.0","id":${id},"result":${json(result)}}`;
}

/** `{"jsonrpc":"2.0","method":"rpc.progress","params":{"id":<raw id>,"progress":…}}`. */
export function encodeProgress(id: RawId, progress: unknown): string {
  return `{"jsonrpc":"2.0","method":"rpc.progress","params":{"id":${id},"progress":${json(progress)}}}`;
}

/** `{"jsonrpc":"2.0","id":<raw id or null>,"error":{code,message,data?}}`. */
export function encodeError(id: RawId | null, error: ErrorObject): string {
  const e: ErrorObject = { code: error.code, message: error.message };
  if (error.data !== undefined) e.data = error.data;
  return `{"jsonrpc":"2.0","id":${id ?? "null"},"error":${JSON.stringify(e)}}`;
}

/** The standard message for the specification's codes and the gateway's (`ERROR_MESSAGES`). */
export function standardMessage(code: number): string {
  switch (code) {
    case PARSE_ERROR:
      return "Parse error";
    case INVALID_REQUEST:
      return "Invalid request";
    case METHOD_NOT_FOUND:
      return "Method not found";
    case INVALID_PARAMS:
      return "Invalid params";
    case INTERNAL_ERROR:
      return "Internal error";
    default:
      return ERROR_MESSAGES[code] ?? "Server error";
  }
}

/**
 * What a JSON-RPC peer that knows no methods answers to a frame, as frames:
 * the answers the codec alone decides (parse errors and invalid messages).
 * Requests are left to the caller, which knows the methods.
 */
export function protocolAnswers(frame: Frame): string[] {
  const answer = (m: Message): string | undefined =>
    m.kind === "invalid" && !m.wasResponse
      ? encodeError(m.id, { code: INVALID_REQUEST, message: standardMessage(INVALID_REQUEST) })
      : undefined;
  switch (frame.kind) {
    case "parse_error":
      return [encodeError(null, { code: PARSE_ERROR, message: standardMessage(PARSE_ERROR) })];
    case "empty_batch":
      return [encodeError(null, { code: INVALID_REQUEST, message: standardMessage(INVALID_REQUEST) })];
    case "single": {
      const a = answer(frame.message);
      return a === undefined ? [] : [a];
    }
    case "batch":
      return frame.messages.flatMap((m) => answer(m) ?? []);
  }
}
