// Replays the gateway's conformance vectors (schemas/vectors/*.json) against
// the client's codec. Each vector is a frame a peer sends and the frames the
// gateway answers. The codec must
//   1. classify every sent frame as the gateway does: the answers it alone
//      decides (parse errors, invalid requests, batch rules) match the
//      vector's, requests are answered under the id the vector expects, spelled
//      the same way, and responses and notifications get no answer;
//   2. read every frame the gateway answers as a response to the right id (or,
//      for publications, as a notification) — the client receives exactly these.

import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import {
  INVALID_REQUEST,
  PARSE_ERROR,
  batchLength,
  decode,
  encodeError,
  encodeResult,
  standardMessage,
  type Frame,
  type Message,
  type RawId,
} from "../../src/codec.js";

interface Step {
  send: string;
  expect: unknown[];
  expect_text_contains?: string[];
}
interface Vector {
  description: string;
  steps: Step[];
}

const dir = new URL("../../../schemas/vectors/", import.meta.url).pathname;
const vectors = readdirSync(dir)
  .filter((f) => f.endsWith(".json"))
  .sort()
  .map((f) => [f, JSON.parse(readFileSync(join(dir, f), "utf8")) as Vector] as const);

/** The gateway's default `limits.max_batch`, which the vectors assume. */
const MAX_BATCH = 100;

/** An answer the codec predicts: its id, and its error code when the codec alone decides it. */
interface Predicted {
  id: RawId | null;
  code: number | undefined;
}

function predictOne(m: Message): Predicted | undefined {
  if (m.kind === "request") return { id: m.id, code: undefined };
  if (m.kind === "invalid" && !m.wasResponse) return { id: m.id, code: INVALID_REQUEST };
  return undefined;
}

/** What the gateway's answer to `frame` looks like: a list of frames, each an answer or a batch of answers. */
function predict(text: string, frame: Frame): Array<Predicted | Predicted[]> {
  switch (frame.kind) {
    case "parse_error":
      return [{ id: null, code: PARSE_ERROR }];
    case "empty_batch":
      return [{ id: null, code: INVALID_REQUEST }];
    case "single": {
      const p = predictOne(frame.message);
      return p === undefined ? [] : [p];
    }
    case "batch": {
      if ((batchLength(text) ?? 0) > MAX_BATCH) return [{ id: null, code: INVALID_REQUEST }];
      const answers = frame.messages.flatMap((m) => predictOne(m) ?? []);
      return answers.length === 0 ? [] : [answers];
    }
  }
}

type Answer = { id: unknown; result?: unknown; error?: { code: number; message?: string } };

function checkAnswer(p: Predicted, actual: Answer, contains: string[]): void {
  expect(actual.id).toEqual(p.id === null ? null : JSON.parse(p.id));
  if (p.code !== undefined) {
    expect(actual.error?.code).toBe(p.code);
  } else {
    // A request reached a method: its answer is the method's, never a protocol error.
    expect([PARSE_ERROR, INVALID_REQUEST]).not.toContain(actual.error?.code);
  }
  const written =
    actual.error !== undefined
      ? encodeError(p.id, { code: actual.error.code, message: standardMessage(actual.error.code) })
      : encodeResult(p.id ?? "null", actual.result);
  for (const needle of contains) {
    if (needle.includes('"id":')) expect(written).toContain(needle);
  }
}

/** The vectors abbreviate error objects to `{code}`; the wire always has a message. */
function complete(frame: unknown): unknown {
  if (Array.isArray(frame)) return frame.map(complete);
  const f = frame as Answer & { method?: string };
  if (f.error !== undefined && f.error.message === undefined) {
    return { ...f, error: { ...f.error, message: standardMessage(f.error.code) } };
  }
  return f;
}

function checkReceived(frame: unknown): void {
  const text = JSON.stringify(complete(frame));
  const decoded = decode(text);
  const check = (m: Message, f: Answer & { method?: string }) => {
    if (f.method !== undefined) {
      expect(m).toMatchObject({ kind: "notification", method: f.method });
    } else {
      expect(m.kind).toBe(f.error !== undefined ? "error" : "result");
      expect(m.kind !== "invalid" && m.kind !== "notification" && JSON.parse(m.id)).toEqual(f.id);
    }
  };
  if (Array.isArray(frame)) {
    expect(decoded.kind).toBe("batch");
    if (decoded.kind === "batch") decoded.messages.forEach((m, i) => check(m, frame[i] as Answer));
  } else {
    expect(decoded.kind).toBe("single");
    if (decoded.kind === "single") check(decoded.message, frame as Answer);
  }
}

describe("conformance vectors against the client codec", () => {
  it("finds the vectors", () => {
    expect(vectors.length).toBeGreaterThan(40);
  });

  for (const [file, vector] of vectors) {
    it(`${file}: ${vector.description}`, () => {
      for (const step of vector.steps) {
        const frame = decode(step.send);
        // Publications the gateway pushes are not answers to the frame.
        const answers = step.expect.filter((f) => Array.isArray(f) || (f as { method?: string }).method === undefined);
        const predicted = predict(step.send, frame);
        expect(predicted.length, `answers to ${step.send.slice(0, 80)}`).toBe(answers.length);
        predicted.forEach((p, i) => {
          const actual = answers[i];
          if (Array.isArray(p)) {
            expect(Array.isArray(actual)).toBe(true);
            expect((actual as Answer[]).length).toBe(p.length);
            p.forEach((q, j) => checkAnswer(q, (actual as Answer[])[j] as Answer, []));
          } else {
            checkAnswer(p, actual as Answer, step.expect_text_contains ?? []);
          }
        });
        for (const f of step.expect) checkReceived(f);
      }
    });
  }
});
