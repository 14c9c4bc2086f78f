// The Socket.IO peer, frozen as BENCHMARKS.md specifies it: socket.io's
// Server on a plain Node http server on 127.0.0.1:PORT, WebSocket transport
// only, no per-message compression. Events, each acknowledged:
//   echo(data)             -> ack(data)
//   subscribe(topic)       -> joins the room `topic`, ack(true)
//   publish(topic, data)   -> io.to(topic).emit('message', data), ack(true)
//   callback(data)         -> socket.timeout(10000).emitWithAck('bench.ask', data),
//                             then ack(the client's answer)
'use strict';

const http = require('http');
const { Server } = require('socket.io');

const port = Number(process.argv[2] || 8091);
const httpServer = http.createServer();
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
