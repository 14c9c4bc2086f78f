import { describe, expect, it } from "vitest";
import {
  batchLength,
  decode,
  encodeError,
  encodeNotification,
  encodeRequest,
  encodeResult,
  protocolAnswers,
  type Message,
} from "../../src/codec.js";

function single(text: string): Message {
  const frame = decode(text);
  if (frame.kind !== "single") throw new Error(`not a single message: ${frame.kind}`);
  return frame.message;
}

describe("codec", () => {
  it("classifies the four kinds of message", () => {
    expect(single('{"jsonrpc":"2.0","id":1,"method":"a","params":[1]}')).toEqual({
      kind: "request",
      id: "1",
      method: "a",
      params: [1],
    });
    expect(single('{"jsonrpc":"2.0","method":"rpc.message","params":{"topic":"t","data":null}}')).toEqual({
      kind: "notification",
      method: "rpc.message",
      params: { topic: "t", data: null },
    });
    expect(single('{"jsonrpc":"2.0","id":7,"result":{"a":[1,2]}}')).toEqual({ kind: "result", id: "7", result: { a: [1, 2] } });
    expect(single('{"jsonrpc":"2.0","id":7,"error":{"code":-32601,"message":"Method not found","data":{"x":1}}}')).toEqual({
      kind: "error",
      id: "7",
      error: { code: -32601, message: "Method not found", data: { x: 1 } },
    });
  });

  it("keeps ids as the raw text the peer wrote", () => {
    for (const id of ["1.50", "1e3", "-1.5E-3", "12345678901234567890123", '"a\\"b"', '"\\u0041"', "null", "0"]) {
      const m = single(`{"jsonrpc":"2.0","id":${id},"method":"echo"}`);
      expect(m.kind === "request" && m.id).toBe(id);
      expect(encodeResult(id, 1)).toBe(`{"jsonrpc":"2.0","id":${id},"result":1}`);
    }
  });

  it("finds members inside values full of brackets, quotes and escapes", () => {
    const text = '{"params":{"s":"}]\\\\\\"{[","a":[{"id":9}]},"jsonrpc":"2.0","method":"m","id":"x"}';
    expect(single(text)).toEqual({ kind: "request", id: '"x"', method: "m", params: { s: '}]\\"{[', a: [{ id: 9 }] } });
  });

  it("refuses what the gateway refuses", () => {
    const reasons = (t: string) => {
      const m = single(t);
      return m.kind === "invalid" ? [m.id, m.wasResponse] : m.kind;
    };
    expect(reasons('{"jsonrpc":"2.0","id":1,"id":2,"method":"echo"}')).toEqual([null, false]);
    expect(reasons('{"jsonrpc":"1.0","id":3,"method":"echo"}')).toEqual(["3", false]);
    expect(reasons('{"jsonrpc":"2.0","id":{"a":1},"method":"echo"}')).toEqual([null, false]);
    expect(reasons('{"jsonrpc":"2.0","id":4,"method":"echo","params":5}')).toEqual(["4", false]);
    expect(reasons('{"jsonrpc":"2.0","id":5,"result":1,"error":{"code":1,"message":"x"}}')).toEqual(["5", true]);
    expect(reasons('{"jsonrpc":"2.0","id":6,"error":{"code":1.5,"message":"x"}}')).toEqual(["6", true]);
    expect(reasons('{"jsonrpc":"2.0","id":6,"error":{"code":1}}')).toEqual(["6", true]);
    expect(reasons("5")).toEqual([null, false]);
    // Neither method, result nor error: an invalid request to answer, whatever "jsonrpc" says.
    expect(reasons('{"foo":"boo"}')).toEqual([null, false]);
    expect(reasons('{"jsonrpc":"2.0","foo":"boo"}')).toEqual([null, false]);
    expect(reasons('{"jsonrpc":"1.0"}')).toEqual([null, false]);
    expect(reasons('{"id":7}')).toEqual(["7", false]);
    // With a result and a wrong "jsonrpc", it is still a (dropped) response.
    expect(reasons('{"jsonrpc":"1.0","id":3,"result":1}')).toEqual(["3", true]);
    // An unknown member may repeat: only the members that carry meaning are ambiguous.
    expect(reasons('{"jsonrpc":"2.0","x":1,"x":2,"method":"m"}')).toBe("notification");
  });

  it("tells parse errors, empty batches and batches apart", () => {
    expect(decode("").kind).toBe("parse_error");
    expect(decode('{"a":1} x').kind).toBe("parse_error");
    expect(decode(" [ ] ").kind).toBe("empty_batch");
    const batch = decode('[{"jsonrpc":"2.0","id":1,"result":1}, 5]');
    expect(batch.kind === "batch" && batch.messages.map((m) => m.kind)).toEqual(["result", "invalid"]);
    expect(batchLength("[1,2,3]")).toBe(3);
    expect(batchLength('{"a":1}')).toBeUndefined();
  });

  it("answers invalid messages and parse errors like any JSON-RPC peer", () => {
    expect(protocolAnswers(decode("nope")).map((a) => JSON.parse(a))).toEqual([
      { jsonrpc: "2.0", id: null, error: { code: -32700, message: "Parse error" } },
    ]);
    expect(protocolAnswers(decode('{"jsonrpc":"2.0","id":9,"method":"echo","result":1}'))).toEqual([
      '{"jsonrpc":"2.0","id":9,"error":{"code":-32600,"message":"Invalid request"}}',
    ]);
    // A broken response is never answered (that could loop between two peers).
    expect(protocolAnswers(decode('{"jsonrpc":"2.0","id":6,"error":5}'))).toEqual([]);
  });

  it("writes frames that parse back to what was meant", () => {
    expect(JSON.parse(encodeRequest(3, "a.b", { x: [1] }))).toEqual({ jsonrpc: "2.0", id: 3, method: "a.b", params: { x: [1] } });
    expect(JSON.parse(encodeRequest(4, 'we"ird'))).toEqual({ jsonrpc: "2.0", id: 4, method: 'we"ird' });
    expect(JSON.parse(encodeNotification("n", [1]))).toEqual({ jsonrpc: "2.0", method: "n", params: [1] });
    expect(JSON.parse(encodeResult("1", undefined))).toEqual({ jsonrpc: "2.0", id: 1, result: null });
    expect(JSON.parse(encodeError(null, { code: 1, message: "m", data: { d: 2 } }))).toEqual({
      jsonrpc: "2.0",
      id: null,
      error: { code: 1, message: "m", data: { d: 2 } },
    });
  });
});
