// The per-connection compression peer, frozen as BENCHMARKS.md specifies it:
// the `ws` package's WebSocketServer on 127.0.0.1:PORT with permessage-deflate
// on, as a Node application would turn it on, with the threshold set to
// switchboard's (256 bytes) and everything else at ws's defaults: zlib level
// 6 (the default compression), a 15-bit window, context takeover kept per
// connection, at most 10 compressions running at once. Each message sent to a
// client that negotiated the extension is compressed for that client alone.
// JSON-RPC, like the minimal axum peer:
//   subscribe [topic]        -> true; the session receives the topic's messages
//   publish [topic, data]    -> true; every subscriber receives
//                               {"jsonrpc":"2.0","method":"message","params":{"topic":topic,"data":data}}
'use strict';

const { WebSocketServer } = require('ws');

const port = Number(process.argv[2] || 8092);
const THRESHOLD = 256;
const topics = new Map();

const server = new WebSocketServer({
  host: '127.0.0.1',
  port,
  perMessageDeflate: { threshold: THRESHOLD },
});

const answer = (ws, id, result) => ws.send(JSON.stringify({ jsonrpc: '2.0', id, result }));
const fail = (ws, id, code, message) => ws.send(JSON.stringify({ jsonrpc: '2.0', id, error: { code, message } }));

server.on('connection', (ws) => {
  const mine = new Set();
  ws.on('message', (raw) => {
    let request;
    try {
      request = JSON.parse(raw.toString());
    } catch {
      fail(ws, null, -32700, 'parse error');
      return;
    }
    const { id, method, params } = request;
    if (method === 'subscribe') {
      const topic = params[0];
      if (!topics.has(topic)) topics.set(topic, new Set());
      topics.get(topic).add(ws);
      mine.add(topic);
      answer(ws, id, true);
    } else if (method === 'publish') {
      const [topic, data] = params;
      const text = JSON.stringify({ jsonrpc: '2.0', method: 'message', params: { topic, data } });
      for (const subscriber of topics.get(topic) || []) subscriber.send(text);
      answer(ws, id, true);
    } else if (method === 'echo') {
      answer(ws, id, params);
    } else {
      fail(ws, id, -32601, 'method not found');
    }
  });
  ws.on('close', () => {
    for (const topic of mine) topics.get(topic)?.delete(ws);
  });
});
server.on('error', (e) => {
  console.error(e);
  process.exit(1);
});
