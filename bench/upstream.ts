/**
 * The benchmark's upstream: plain node:http, as cheap as an HTTP server gets in Node, so
 * that the proxies' own cost stands out. `/small` answers a 200-byte JSON body, `/large`
 * a 64 KiB one. It counts requests, and those that carry `authorization: Bearer …`, which
 * the parent checks after each gateway run (the gateway must inject the header).
 */
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { fatal, send, serveParent } from './ipc.js';

function jsonOfSize(bytes: number): Buffer {
  const head = '{"ok":true,"pad":"';
  const tail = '"}';
  return Buffer.from(head + 'x'.repeat(bytes - head.length - tail.length) + tail);
}

export const SMALL = jsonOfSize(200);
export const LARGE = jsonOfSize(64 * 1024);

const counts = { requests: 0, bearer: 0, notFound: 0 };

const server = createServer((req, res) => {
  counts.requests += 1;
  const auth = req.headers.authorization;
  if (typeof auth === 'string' && auth.startsWith('Bearer ') && auth.length > 7) counts.bearer += 1;
  const q = req.url!.indexOf('?');
  const path = q === -1 ? req.url! : req.url!.slice(0, q);
  const body = path === '/small' ? SMALL : path === '/large' ? LARGE : undefined;
  if (!body) {
    counts.notFound += 1;
    res.writeHead(404, { 'content-type': 'text/plain', 'content-length': '9' });
    res.end('not found');
    return;
  }
  // Drain any request body, then answer.
  req.resume();
  res.writeHead(200, { 'content-type': 'application/json', 'content-length': String(body.length) });
  res.end(body);
});
// Longer than any pause between runs: a proxy's pooled connection is never closed under it.
server.keepAliveTimeout = 120_000;
server.headersTimeout = 125_000;

serveParent({ counters: () => ({ ...counts }) });
server.on('error', fatal);
server.listen(0, '127.0.0.1', () => send({ type: 'ready', port: (server.address() as AddressInfo).port }));
