// The Socket.IO peer, frozen as BENCHMARKS.md specifies it: socket.io's
// Server on a plain Node http server on 127.0.0.1:PORT, WebSocket transport
// only, no per-message compression. Events, each acknowledged:
//   echo(data)             -> ack(data)
//   subscribe(topic)       -> joins the room `topic`, ack(true)
//   publish(topic, data)   -> io.to(topic).emit('message', data), ack(true)
//   callback(data)         -> socket.timeout(10000).emitWithAck('bench.ask', data),
//                             then ack(the client's answer)
// and one HTTP endpoint, the backend's multicast call:
//   POST /multicall {"room", "method", "data", "timeout_ms"}
//                          -> io.to(room).timeout(timeout_ms).emitWithAck(method, data),
//                             answered 200 {"acks": n} once every socket in the room
//                             acknowledged (n acknowledgements), or 504 {"error"}
'use strict';

const http = require('http');
const { Server } = require('socket.io');

const port = Number(process.argv[2] || 8091);
// Socket.IO answers its own path before this handler runs; everything else comes here.
const httpServer = http.createServer((req, res) => {
  const reply = (status, body) => {
    const text = JSON.stringify(body);
    res.writeHead(status, { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(text) });
    res.end(text);
  };
  if (req.method !== 'POST' || req.url !== '/multicall') {
    reply(404, { error: 'not found' });
    return;
  }
  let body = '';
  req.setEncoding('utf8');
  req.on('data', (chunk) => {
    body += chunk;
  });
  req.on('end', async () => {
    try {
      const { room, method, data, timeout_ms: timeout } = JSON.parse(body);
      const acks = await io.to(room).timeout(timeout).emitWithAck(method, data);
      reply(200, { acks: acks.length });
    } catch (e) {
      reply(504, { error: String(e) });
    }
  });
});
const io = new Server(httpServer, {
  transports: ['websocket'],
  serveClient: false,
  perMessageDeflate: false,
});

io.on('connection', (socket) => {
  socket.on('echo', (data, ack) => ack(data));
  socket.on('subscribe', (topic, ack) => {
    socket.join(topic);
    ack(true);
  });
  socket.on('publish', (topic, data, ack) => {
    io.to(topic).emit('message', data);
    ack(true);
  });
  socket.on('callback', async (data, ack) => {
    try {
      ack(await socket.timeout(10000).emitWithAck('bench.ask', data));
    } catch (e) {
      ack({ error: String(e) });
    }
  });
});

httpServer.listen(port, '127.0.0.1');
