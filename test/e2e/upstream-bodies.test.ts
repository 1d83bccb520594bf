import t from 'tap';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { startStack } from '../helpers/stack.js';
import { BUFFERED_RESPONSE_MAX } from '../../src/http/proxy-routes.js';

/** Deterministic bytes, so a body that arrives shifted, cut or doubled does not compare equal. */
function bytes(n: number): Buffer {
  const out = Buffer.alloc(n);
  for (let i = 0; i < n; i++) out[i] = (i * 7 + (i >> 8)) & 0xff;
  return out;
}

/** A plain upstream with the body shapes a proxy must carry: exact lengths, chunked, cut short. */
async function startBodyServer(): Promise<{ server: Server; url: string }> {
  const server = createServer((req, res) => {
    const path = new URL(req.url ?? '/', 'http://upstream.invalid').pathname;
    const exact = /^\/exact\/(\d+)$/.exec(path);
    if (exact) {
      const body = bytes(Number(exact[1]));
      res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': body.length, 'x-upstream': 'kept' });
      res.end(req.method === 'HEAD' ? undefined : body);
      return;
    }
    const slow = /^\/slow\/(\d+)$/.exec(path);
    if (slow) {
      // Declares a length and sends the body in two parts, apart: it cannot come in one read.
      const body = bytes(Number(slow[1]));
      res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': body.length });
      res.write(body.subarray(0, body.length >> 1));
      setTimeout(() => res.end(body.subarray(body.length >> 1)), 30);
      return;
    }
    if (path === '/chunked') {
      res.writeHead(200, { 'content-type': 'text/plain' });
      res.write('one,');
      setTimeout(() => res.write('two,'), 20);
      setTimeout(() => res.end('three'), 40);
      return;
    }
    const cut = /^\/cut\/(\d+)$/.exec(path);
    if (cut) {
      // Declares a length, sends a little of it, then the connection dies.
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': Number(cut[1]) });
      res.write('{"partial":');
      setTimeout(() => res.socket?.destroy(), 20);
      return;
    }
    res.writeHead(404).end();
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { server, url: `http://127.0.0.1:${(server.address() as AddressInfo).port}` };
}

t.test('upstream bodies reach the browser whole, whether read at once or streamed', async (t) => {
  const upstream = await startBodyServer();
  t.teardown(() => new Promise((r) => upstream.server.close(r)));
  const stack = await startStack({ extraRoutes: `  - name: raw\n    prefix: /raw\n    upstream: ${upstream.url}\n    rewritePrefix: /\n    auth: none\n` });
  t.teardown(() => stack.close());

  for (const n of [0, 200, BUFFERED_RESPONSE_MAX, BUFFERED_RESPONSE_MAX + 1, 1024 * 1024]) {
    const res = await fetch(`${stack.url}/raw/exact/${n}`);
    const body = Buffer.from(await res.arrayBuffer());
    t.equal(res.status, 200, `${n} bytes`);
    t.equal(res.headers.get('content-length'), String(n), `${n} bytes: the upstream's length`);
    t.equal(res.headers.get('x-upstream'), 'kept', `${n} bytes: the upstream's headers`);
    t.ok(body.equals(bytes(n)), `${n} bytes: the same bytes, in order`);
  }

  const slow = await fetch(`${stack.url}/raw/slow/2000`);
  t.ok(Buffer.from(await slow.arrayBuffer()).equals(bytes(2000)), 'a small answer whose body comes in two parts, apart, arrives whole');

  const head = await fetch(`${stack.url}/raw/exact/200`, { method: 'HEAD' });
  t.equal(head.status, 200);
  t.equal(head.headers.get('content-length'), '200', 'HEAD keeps the length of the body it does not carry');

  const chunked = await fetch(`${stack.url}/raw/chunked`);
  t.equal(await chunked.text(), 'one,two,three', 'an answer without a length streams through');
});

t.test('an upstream that dies in the middle of a small answer gives a 502 problem, not a truncated 200', async (t) => {
  const upstream = await startBodyServer();
  t.teardown(() => new Promise((r) => upstream.server.close(r)));
  const stack = await startStack({ extraRoutes: `  - name: raw\n    prefix: /raw\n    upstream: ${upstream.url}\n    rewritePrefix: /\n    auth: none\n` });
  t.teardown(() => stack.close());

  const res = await fetch(`${stack.url}/raw/cut/1000`);
  t.equal(res.status, 502);
  t.match(res.headers.get('content-type'), /^application\/problem\+json/);
  t.match(await res.json(), { status: 502, error: 'upstream_unavailable' });
  t.match(stack.logs.text, /upstream failed/);

  // A large answer is already on its way when the upstream dies: the browser's read fails.
  const large = await fetch(`${stack.url}/raw/cut/${BUFFERED_RESPONSE_MAX * 4}`);
  t.equal(large.status, 200, 'its status and headers went out before the body');
  await t.rejects(large.arrayBuffer(), 'and the body does not complete');

  t.equal((await fetch(`${stack.url}/raw/exact/10`)).status, 200, 'the gateway carries on');
});
