// A small rooms relay on Debian's node-ws, for the interop tests of the generic profile.
//
//   {"op":"sub","room":R}                 subscribe (answered {"type":"subscribed","room":R})
//   {"op":"unsub","room":R}               unsubscribe
//   {"op":"pub","room":R,"id":I,"data":D} relay {"type":"msg","room":R,"seq":N,"data":D} to every
//                                         subscriber of R (its sender too), then ack {"type":"ack","id":I}
//   {"op":"ping"}                         answered {"type":"pong"}
//
// Usage: NODE_PATH=/usr/share/nodejs node broadcast.js PORT   (prints "listening PORT" when ready)
'use strict';
const WebSocket = require('ws');

const port = parseInt(process.argv[2], 10);
const rooms = new Map(); // room -> Set of sockets
const seqs = new Map(); // room -> last seq

const wss = new WebSocket.Server({ host: '127.0.0.1', port: port });
wss.on('listening', () => console.log('listening ' + port));
wss.on('connection', (ws) => {
  ws.rooms = new Set();
  ws.on('message', (raw) => {
    let m;
    try {
      m = JSON.parse(raw.toString());
    } catch (e) {
      return;
    }
    switch (m.op) {
      case 'sub':
        if (!rooms.has(m.room)) rooms.set(m.room, new Set());
        rooms.get(m.room).add(ws);
        ws.rooms.add(m.room);
        ws.send(JSON.stringify({ type: 'subscribed', room: m.room }));
        break;
      case 'unsub':
        if (rooms.has(m.room)) rooms.get(m.room).delete(ws);
        ws.rooms.delete(m.room);
        break;
      case 'pub': {
        const seq = (seqs.get(m.room) || 0) + 1;
        seqs.set(m.room, seq);
        const out = JSON.stringify({ type: 'msg', room: m.room, seq: seq, data: m.data });
        for (const c of rooms.get(m.room) || []) {
          if (c.readyState === WebSocket.OPEN) c.send(out);
        }
        ws.send(JSON.stringify({ type: 'ack', id: m.id }));
        break;
      }
      case 'ping':
        ws.send(JSON.stringify({ type: 'pong' }));
        break;
    }
  });
  ws.on('close', () => {
    for (const r of ws.rooms) {
      if (rooms.has(r)) rooms.get(r).delete(ws);
    }
  });
});
