#!/usr/bin/env node
// Test service (Node.js runtime) for the trace-header propagation observer.
//
// Inbound:    http.createServer (HTTP/1.1, keep-alive), everything on the
//             single event-loop thread; many requests can be in flight at
//             once (delays use setTimeout, downstream calls are async).
// Downstream: http.request; with --keepalive through
//             new http.Agent({keepAlive: true, maxSockets: 1}) (one shared
//             persistent connection, requests queue on it), otherwise
//             agent: false (new connection per call, "Connection: close").
//
// CLI:  node svc.js --port P [--downstream http://127.0.0.1:PORT] [--keepalive]
// Prints exactly one line "LISTENING <port>" on stdout, then serves until
// SIGTERM/SIGINT (exit 0).  See README.md for the routes.
'use strict';

const http = require('http');
const crypto = require('crypto');

const TRACE_HEADERS = [
  'x-b3-traceid', 'x-b3-spanid', 'x-b3-parentspanid', 'x-b3-sampled',
  'x-b3-flags', 'b3', 'traceparent', 'tracestate', 'x-request-id',
  'x-ot-span-context',
];
const PARTIAL_HEADERS = ['x-b3-traceid', 'x-b3-spanid', 'x-b3-parentspanid', 'traceparent'];
const DOWNSTREAM_TIMEOUT_MS = 30000;
const MAX_FANOUT = 1000;

function parseArgs(argv) {
  const args = { port: 0, downstream: null, keepalive: false };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--port') args.port = parseInt(argv[++i], 10);
    else if (a.startsWith('--port=')) args.port = parseInt(a.slice(7), 10);
    else if (a === '--downstream') args.downstream = argv[++i];
    else if (a.startsWith('--downstream=')) args.downstream = a.slice(13);
    else if (a === '--keepalive') args.keepalive = true;
    else {
      process.stderr.write(`svc.js: unknown argument ${a}\n`);
      process.exit(2);
    }
  }
  if (!Number.isInteger(args.port) || args.port < 0) {
    process.stderr.write('svc.js: bad --port\n');
    process.exit(2);
  }
  return args;
}

const args = parseArgs(process.argv.slice(2));
let dsHost = null;
let dsPort = null;
if (args.downstream) {
  const u = new URL(args.downstream);
  dsHost = u.hostname;
  dsPort = u.port ? parseInt(u.port, 10) : 80;
}
const agent = args.keepalive
  ? new http.Agent({ keepAlive: true, maxSockets: 1 })
  : false;

// Header values as raw (name, value) pairs in the order received, so
// repeated headers are copied unchanged.
function copyHeaders(req, names) {
  const wanted = new Set(names);
  const out = [];
  const raw = req.rawHeaders;
  for (let i = 0; i + 1 < raw.length; i += 2) {
    const lname = raw[i].toLowerCase();
    if (wanted.has(lname)) out.push([lname, raw[i + 1]]);
  }
  return out;
}

function newTraceHeaders() {
  const traceId = crypto.randomBytes(16).toString('hex');
  return [
    ['x-b3-traceid', traceId],
    ['x-b3-spanid', crypto.randomBytes(8).toString('hex')],
    ['x-b3-sampled', '1'],
    ['traceparent', `00-${traceId}-${crypto.randomBytes(8).toString('hex')}-01`],
  ];
}

// GET downstream /leaf; resolves with the status code, rejects on error.
function callDownstream(query, pairs) {
  return new Promise((resolve, reject) => {
    if (dsHost === null) {
      reject(new Error('no --downstream configured'));
      return;
    }
    const delay = query.get('delay_ms');
    const path = delay !== null ? `/leaf?delay_ms=${encodeURIComponent(delay)}` : '/leaf';
    // headers as an object; repeated names become arrays (sent as repeated lines)
    const headers = {};
    for (const [k, v] of pairs) {
      if (k in headers) {
        headers[k] = Array.isArray(headers[k]) ? headers[k].concat([v]) : [headers[k], v];
      } else {
        headers[k] = v;
      }
    }
    let done = false;
    const finish = (err, status) => {
      if (done) return;
      done = true;
      if (err) reject(err); else resolve(status);
    };
    const req = http.request({
      host: dsHost, port: dsPort, method: 'GET', path, headers, agent,
      timeout: DOWNSTREAM_TIMEOUT_MS,
    }, (res) => {
      res.on('data', () => {});
      res.on('end', () => finish(null, res.statusCode));
      res.on('error', (e) => finish(e));
      res.on('aborted', () => finish(new Error('downstream response aborted')));
    });
    req.on('timeout', () => req.destroy(new Error('downstream timeout')));
    req.on('error', (e) => finish(e));
    req.end();
  });
}

function sleep(ms) {
  return new Promise((r) => setTimeout(r, ms));
}

const ROUTES = {
  '/leaf': async (req, query) => {
    const d = query.get('delay_ms');
    if (d !== null) {
      const ms = parseInt(d, 10);
      if (Number.isNaN(ms)) throw new BadRequest('delay_ms');
      await sleep(ms);
    }
    return [200, 'ok'];
  },
  '/forward': async (req, query) =>
    [200, String(await callDownstream(query, copyHeaders(req, TRACE_HEADERS)))],
  '/drop': async (req, query) => [200, String(await callDownstream(query, []))],
  '/partial': async (req, query) =>
    [200, String(await callDownstream(query, copyHeaders(req, PARTIAL_HEADERS)))],
  '/newtrace': async (req, query) =>
    [200, String(await callDownstream(query, newTraceHeaders()))],
  '/fanout': async (req, query) => {
    let n = parseInt(query.get('n') ?? '1', 10);
    if (Number.isNaN(n)) throw new BadRequest('n');
    n = Math.max(0, Math.min(n, MAX_FANOUT));
    const statuses = [];
    for (let i = 0; i < n; i++) {
      statuses.push(String(await callDownstream(query, copyHeaders(req, TRACE_HEADERS))));
    }
    return [200, statuses.join(' ')];
  },
  '/mixed': async (req, query) =>
    (query.get('drop') === '1' ? ROUTES['/drop'](req, query) : ROUTES['/forward'](req, query)),
};

class BadRequest extends Error {}

function reply(res, status, body) {
  if (res.headersSent || res.destroyed) return;
  const data = Buffer.from(body);
  res.writeHead(status, { 'Content-Type': 'text/plain', 'Content-Length': data.length });
  res.end(data);
}

const server = http.createServer((req, res) => {
  let url;
  try {
    url = new URL(req.url, 'http://localhost');
  } catch (e) {
    reply(res, 400, 'bad request\n');
    return;
  }
  req.resume(); // drain any request body
  const route = req.method === 'GET' || req.method === 'HEAD' ? ROUTES[url.pathname] : undefined;
  if (!route) {
    reply(res, 404, 'not found\n');
    return;
  }
  route(req, url.searchParams).then(
    ([status, body]) => reply(res, status, body),
    (err) => {
      if (err instanceof BadRequest) reply(res, 400, `bad request: ${err.message}\n`);
      else reply(res, 502, `downstream error: ${err && err.message}\n`);
    },
  );
});
server.on('clientError', (err, socket) => {
  if (socket.writable) socket.end('HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n');
  else socket.destroy();
});

function stop() {
  process.exit(0);
}
process.on('SIGTERM', stop);
process.on('SIGINT', stop);

server.listen(args.port, '127.0.0.1', () => {
  process.stdout.write(`LISTENING ${server.address().port}\n`);
});
