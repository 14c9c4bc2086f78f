// The rpc-websockets peer, frozen as BENCHMARKS.md specifies it:
// rpc-websockets' Server with its defaults on 127.0.0.1:PORT,
// `echo` answers its params, `bench` is an event clients subscribe to
// with `rpc.on`, and `publish [topic, data]` emits `data` on that event.
'use strict';

const { Server } = require('rpc-websockets');

const port = Number(process.argv[2] || 8090);
const server = new Server({ host: '127.0.0.1', port });

server.register('echo', (params) => params);
server.event('bench');
server.register('publish', (params) => {
  server.emit(params[0], params[1]);
  return true;
});
server.on('error', (e) => {
  console.error(e);
  process.exit(1);
});
