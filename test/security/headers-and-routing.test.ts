/**
 * Header and routing attacks: spoofed forwarding headers from an untrusted peer, path
 * tricks that aim at another route's upstream or token, methods a route does not allow,
 * and oversized requests. Each is refused before any token work, and the gateway goes on.
 */
import t, { type Test } from 'tap';
import { connect } from 'node:net';
import { rawRequest } from '../helpers/raw-http.js';
import { attemptLogin, spaCall, startHostileStack, type HostileStack } from '../helpers/hostile-provider.js';

const stack = await startHostileStack();
t.teardown(() => stack.close());
const publicOrigin = new URL(stack.publicUrl).origin;

let users = 0;
/** A new user, signed in, whose first route call still needs a refresh (no token cached for the account yet). */
async function freshUser(target: HostileStack = stack): Promise<string> {
  target.provider.behaviour.subject = `user-${++users}`;
  const attempt = await attemptLogin(target);
  if (attempt.callback?.status !== 302) throw new Error('sign-in failed');
  return attempt.jar.header(target.url);
}

const SPOOFED = {
  host: 'evil.example',
  'x-forwarded-host': 'evil.example',
  'x-forwarded-proto': 'https',
  'x-forwarded-for': '10.6.6.6',
  'x-forwarded-port': '443',
  x_forwarded_host: 'evil.example',
  x_forwarded_proto: 'https',
  x_forwarded_for: '10.6.6.7',
  forwarded: 'for=10.6.6.8;host=evil.example;proto=https',
  'x-real-ip': '10.6.6.9',
  'x-original-host': 'evil.example',
};

/** Sends bytes as they are and answers the status line and head of the response (the server may close early). */
function rawExchange(base: string, head: string, body?: { bytes: number; chunked?: boolean }): Promise<{ status: number; text: string }> {
  const { hostname, port } = new URL(base);
  return new Promise((resolve) => {
    const socket = connect(Number(port), hostname);
    let received = '';
    let done = false;
    const finish = () => {
      if (done) return;
      done = true;
      socket.destroy();
      const m = /^HTTP\/1\.1 (\d{3})/.exec(received);
      resolve({ status: m ? Number(m[1]) : 0, text: received });
    };
    socket.on('data', (d: Buffer) => {
      received += d.toString('latin1');
      if (/\r\n\r\n/.test(received)) setTimeout(finish, 50);
    });
    socket.on('error', finish);
    socket.on('close', finish);
    socket.on('connect', () => {
      socket.write(head);
      if (!body) return;
      const chunk = Buffer.alloc(64 * 1024, 'a');
      let left = body.bytes;
      const pump = () => {
        while (left > 0 && !socket.destroyed) {
          const n = Math.min(left, chunk.length);
          left -= n;
          const data = body.chunked ? Buffer.concat([Buffer.from(n.toString(16) + '\r\n'), chunk.subarray(0, n), Buffer.from('\r\n')]) : chunk.subarray(0, n);
          if (!socket.write(data)) return socket.once('drain', pump);
        }
        if (left <= 0 && body.chunked && !socket.destroyed) socket.write('0\r\n\r\n');
      };
      pump();
    });
    setTimeout(finish, 10_000).unref();
  });
}

t.test('spoofed Host and X-Forwarded-* (underscore spellings too) never change the redirect_uri the provider is sent', async (t) => {
  const res = await rawRequest(stack.url, '/auth/login?returnTo=/', { headers: SPOOFED });
  t.equal(res.status, 302);
  const authorize = new URL(String(res.headers.location));
  t.equal(authorize.searchParams.get('redirect_uri'), `${stack.publicUrl}/auth/callback`, 'the configured public URL');
  t.notMatch(String(res.headers.location), /evil|10\.6\.6/, 'nothing spoofed in the authorize URL');
});

t.test('spoofed X-Forwarded-Proto never changes the session cookie flags', async (t) => {
  const plain = await rawRequest(stack.url, '/auth/login?returnTo=/', { headers: SPOOFED });
  const cookie = String(plain.headers['set-cookie']);
  t.match(cookie, new RegExp(`^${stack.cookieName}=`), 'the http gateway sets its cookie');
  t.notMatch(cookie, /;\s*Secure/i, 'X-Forwarded-Proto: https does not add Secure (publicUrl is http)');
  t.notMatch(cookie, /Domain=/i, 'and no Domain from X-Forwarded-Host');

  const https = await startHostileStack({ publicUrl: 'https://app.example.test' });
  t.teardown(() => https.close());
  const res = await rawRequest(https.url, '/auth/login?returnTo=/', { headers: { ...SPOOFED, 'x-forwarded-proto': 'http', x_forwarded_proto: 'http' } });
  const secure = String(res.headers['set-cookie']);
  t.match(secure, /^__Host-bff=/, 'an https public URL gets the __Host- cookie');
  t.match(secure, /;\s*Secure/i, 'Secure, whatever X-Forwarded-Proto says');
  t.notMatch(secure, /Domain=/i, 'no Domain');
  t.equal(new URL(String(res.headers.location)).searchParams.get('redirect_uri'), 'https://app.example.test/auth/callback');
});

t.test('spoofed forwarding headers never make a cross-site request pass the origin check', async (t) => {
  const cookie = await freshUser();
  const refreshes = stack.provider.counts.refreshGrants;
  const before = stack.upstreamCount();
  const evil = 'https://evil.example';
  const tries: Array<Record<string, string>> = [
    { ...SPOOFED, origin: evil },
    { ...SPOOFED, origin: 'http://evil.example', 'x-forwarded-proto': 'http' },
    { ...SPOOFED, origin: evil, 'x-forwarded-host': 'evil.example', 'x-forwarded-proto': 'https', host: new URL(stack.url).host },
    { ...SPOOFED, 'sec-fetch-site': 'cross-site' },
  ];
  for (const headers of tries) {
    const res = await rawRequest(stack.url, '/api/orders', { method: 'POST', headers: { cookie, 'x-csrf': '1', ...headers } });
    t.equal(res.status, 403, `${headers.origin ?? headers['sec-fetch-site']}: 403`);
    t.equal(res.json?.error, 'cross_site');
  }
  t.equal(stack.upstreamCount(), before, 'nothing reached an upstream');
  t.equal(stack.provider.counts.refreshGrants, refreshes, 'no token work was done');
  const same = await rawRequest(stack.url, '/api/orders', { headers: { cookie, 'x-csrf': '1', ...SPOOFED, origin: publicOrigin } });
  t.equal(same.status, 200, 'our own origin still works with the same spoofed headers');
});

t.test('the upstream sees the real peer address, never a spoofed X-Forwarded-For or underscore variant', async (t) => {
  const cookie = await freshUser();
  const res = await rawRequest(stack.url, '/api/orders', { headers: { cookie, 'x-csrf': '1', 'sec-fetch-site': 'same-origin', ...SPOOFED, host: new URL(stack.url).host } });
  t.equal(res.status, 200, res.text);
  const seen = stack.apiUpstream.received.at(-1)!;
  t.equal(seen.headers['x-forwarded-for'], '127.0.0.1', 'X-Forwarded-For is the peer');
  t.equal(seen.headers['x-forwarded-proto'], 'http', 'X-Forwarded-Proto is the connection');
  for (const name of ['x_forwarded_host', 'x_forwarded_proto', 'x_forwarded_for', 'forwarded', 'x-real-ip', 'x-original-host', 'x-forwarded-port']) {
    t.notOk(name in seen.headers, `${name} dropped`);
  }
});

/** Paths that try to leave the matched route, reach another upstream or borrow its token. */
const PATH_TRICKS = [
  '/api/../other/x',
  '/api/%2e%2e/other/x',
  '/api/%2E%2E/other/x',
  '/api/.%2e/other/x',
  '/api/%2e./other/x',
  '/api/./x',
  '/./api/x',
  '/api%2f..%2fother/x',
  '/api/x%2F..%2F..%2Fother',
  '/api%5c..%5cother/x',
  '/api/x%5C..%5Cother',
  '/api\\..\\other/x',
  '//api/x',
  '/api//x',
  '//other/x',
  '/api;/../other/x',
  '/api/x;jsessionid=1',
  '/api/%3b/x',
  '/api/x%00',
  '/api/x%00/../../other',
  '/other/../api/x',
  '/api-internal/../api/x',
  '/api-internal/%2e%2e/api/x',
  '/readonly/../api/x',
  '/%2e%2e/api/x',
  '/..',
];

t.test('dot segments, encoded slashes and backslashes, //, ; and %00 answer 400 before any token work and reach no upstream', async (t) => {
  const cookie = await freshUser();
  const before = stack.upstreamCount();
  const refreshes = stack.provider.counts.refreshGrants;
  for (const path of PATH_TRICKS) {
    const res = await rawRequest(stack.url, path, { headers: { cookie, 'x-csrf': '1', 'sec-fetch-site': 'same-origin' } });
    t.equal(res.status, 400, `${path}: 400`);
    t.equal(res.json?.error, 'invalid_path', `${path}: invalid_path`);
  }
  t.equal(stack.upstreamCount(), before, 'nothing reached any upstream');
  t.equal(stack.provider.counts.refreshGrants, refreshes, 'no token was acquired for any of them');
});

t.test('a raw # in the request path answers 400 before any token work (bug: /api/.# reached the upstream as /api/, the dot segment removed after the check)', async (t) => {
  const cookie = await freshUser();
  const before = stack.upstreamCount();
  const refreshes = stack.provider.counts.refreshGrants;
  for (const path of ['/api/.#', '/api/..#', '/api/x/..#/y', '/other/..#', '/api#/../other', '/api/x#y']) {
    const res = await rawRequest(stack.url, path, { headers: { cookie, 'x-csrf': '1', 'sec-fetch-site': 'same-origin' } });
    t.equal(res.status, 400, `${path}: 400`);
    t.equal(res.json?.error, 'invalid_path', `${path}: invalid_path`);
  }
  t.equal(stack.upstreamCount(), before, 'nothing reached any upstream');
  t.equal(stack.provider.counts.refreshGrants, refreshes, 'no token was acquired for any of them');
  t.equal((await spaCall(stack, '/api/x%23y', cookie)).status, 200, 'an encoded # is data and passes');
});

t.test("prefix look-alikes reach their own upstream with their own token, never another route's", async (t) => {
  const cookie = await freshUser();
  const call = async (path: string) => {
    const res = await spaCall(stack, path, cookie);
    t.equal(res.status, 200, `${path}: 200`);
    return res.json?.upstream;
  };
  const lastAuth = (up: typeof stack.apiUpstream) => up.received.at(-1)?.headers.authorization;

  t.equal(await call('/api/orders'), 'api', '/api → the api upstream');
  t.match(String(lastAuth(stack.apiUpstream)), /^Bearer at-api\.read-/, 'with the api.read token');
  t.equal(stack.apiUpstream.received.at(-1)?.url, '/api/orders');

  t.equal(await call('/api-internal/secrets'), 'internal', '/api-internal → its own upstream');
  t.equal(lastAuth(stack.internalUpstream), undefined, 'with no token (auth: none), not the /api token');
  t.equal(stack.internalUpstream.received.at(-1)?.url, '/api-internal/secrets');

  t.equal(await call('/other/x'), 'internal', '/other → its upstream');
  t.match(String(lastAuth(stack.internalUpstream)), /^Bearer at-other\.read-/, 'with the other.read token, never api.read');

  for (const path of ['/apix', '/api-internalx/y', '/API/orders', '/Api/orders', '/api.json', '/other-api/x', '/readonlyx', '/api%2D/x']) {
    const before = { api: stack.apiUpstream.received.length, internal: stack.internalUpstream.received.length };
    const res = await spaCall(stack, path, cookie);
    t.equal(res.status, 200, `${path}: answered`);
    t.equal(res.json?.upstream, 'spa', `${path}: the catch-all route`);
    t.equal(lastAuth(stack.spaUpstream), undefined, `${path}: no token`);
    t.equal(stack.spaUpstream.received.at(-1)?.headers.cookie, undefined, `${path}: no session cookie either`);
    t.same({ api: stack.apiUpstream.received.length, internal: stack.internalUpstream.received.length }, before, `${path}: no other upstream`);
  }
  for (const r of stack.spaUpstream.received) if (r.headers.authorization) t.fail(`the catch-all upstream received a token for ${r.url}`);

  // Percent-encoded unreserved characters are routed as the upstream will read them: decoded.
  t.equal(await call('/api%2Dinternal/x'), 'internal', '/api%2Dinternal is /api-internal');
  t.equal(lastAuth(stack.internalUpstream), undefined, 'with no token');
  t.equal(await call('/ap%69/orders'), 'api', '/ap%69 is /api');
  t.match(String(lastAuth(stack.apiUpstream)), /^Bearer at-api\.read-/, 'with its own token');
});

t.test('a method outside the route methods list answers 405 before any token work and reaches no upstream', async (t) => {
  const cookie = await freshUser();
  const before = stack.upstreamCount();
  const refreshes = stack.provider.counts.refreshGrants;
  for (const method of ['POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS', 'HEAD']) {
    const res = await rawRequest(stack.url, '/readonly/items/1', { method, headers: { cookie, 'x-csrf': '1', 'sec-fetch-site': 'same-origin', 'content-length': '0' } });
    t.equal(res.status, 405, `${method}: 405`);
    if (method !== 'HEAD') t.equal(res.json?.error, 'method_not_allowed', `${method}: method_not_allowed`);
  }
  t.equal(stack.upstreamCount(), before, 'nothing reached the upstream');
  t.equal(stack.provider.counts.refreshGrants, refreshes, 'no token was acquired');
  const get = await spaCall(stack, '/readonly/items/1', cookie);
  t.equal(get.status, 200, 'GET is allowed');
});

t.test('a method-override header cannot turn an allowed GET into another method upstream (bug: X-HTTP-Method-Override and kin were forwarded on a methods-limited route)', async (t) => {
  const cookie = await freshUser();
  const res = await spaCall(stack, '/readonly/items/1', cookie, { headers: { 'x-http-method-override': 'DELETE', 'x-http-method': 'DELETE', 'x-method-override': 'DELETE' } });
  t.equal(res.status, 200);
  const seen = stack.apiUpstream.received.at(-1)!;
  t.equal(seen.method, 'GET');
  for (const name of ['x-http-method-override', 'x-http-method', 'x-method-override']) t.notOk(name in seen.headers, `${name} is not forwarded`);
});

async function assertStillServes(t: Test, cookie: string) {
  const res = await spaCall(stack, '/api/orders', cookie);
  t.equal(res.status, 200, 'the gateway still serves afterwards');
}

t.test('oversized headers answer 431 before any token work, and the gateway goes on', async (t) => {
  const cookie = await freshUser();
  const before = stack.upstreamCount();
  const refreshes = stack.provider.counts.refreshGrants;
  const host = new URL(stack.url).host;
  const big = 'x'.repeat(20 * 1024);
  const one = await rawExchange(stack.url, `GET /api/orders HTTP/1.1\r\nHost: ${host}\r\nCookie: ${cookie}\r\nX-CSRF: 1\r\nX-Big: ${big}\r\nConnection: close\r\n\r\n`);
  t.equal(one.status, 431, 'one 20 KB header: 431');
  const many = Array.from({ length: 400 }, (_, i) => `X-H${i}: ${'y'.repeat(60)}\r\n`).join('');
  const spread = await rawExchange(stack.url, `GET /api/orders HTTP/1.1\r\nHost: ${host}\r\nCookie: ${cookie}\r\nX-CSRF: 1\r\n${many}Connection: close\r\n\r\n`);
  t.equal(spread.status, 431, '400 headers of 60 bytes: 431');
  const hugeCookie = await rawExchange(stack.url, `GET /api/orders HTTP/1.1\r\nHost: ${host}\r\nCookie: ${cookie}; junk=${big}\r\nX-CSRF: 1\r\nConnection: close\r\n\r\n`);
  t.equal(hugeCookie.status, 431, 'a 20 KB Cookie header: 431');
  t.equal(stack.upstreamCount(), before, 'nothing reached the upstream');
  t.equal(stack.provider.counts.refreshGrants, refreshes, 'no token was acquired');
  await assertStillServes(t, cookie);
  t.equal(stack.provider.counts.refreshGrants, refreshes + 1, 'the control: a normal call does acquire a token');
});

t.test('an oversized query string answers 414 before any token work, and the gateway goes on', async (t) => {
  const cookie = await freshUser();
  const before = stack.upstreamCount();
  const refreshes = stack.provider.counts.refreshGrants;
  for (const path of [`/api/orders?q=${'a'.repeat(9000)}`, `/auth/login?returnTo=/&x=${'a'.repeat(9000)}`, `/auth/callback?state=${'s'.repeat(9000)}`, `/${'p'.repeat(9000)}`]) {
    const res = await rawRequest(stack.url, path, { headers: { cookie, 'x-csrf': '1', 'sec-fetch-site': 'same-origin' } });
    t.equal(res.status, 414, `${path.slice(0, 20)}…: 414`);
  }
  t.equal(stack.upstreamCount(), before, 'nothing reached an upstream');
  t.equal(stack.provider.counts.refreshGrants, refreshes, 'no token was acquired');
  await assertStillServes(t, cookie);
});

t.test('an oversized declared body answers 413 before any token work, and the gateway goes on (bug: proxied routes ignored bodyLimit and streamed 11 MB upstream after acquiring a token)', async (t) => {
  const cookie = await freshUser();
  const before = stack.upstreamCount();
  const refreshes = stack.provider.counts.refreshGrants;
  const host = new URL(stack.url).host;
  const bytes = 11 * 1024 * 1024;
  const declared = await rawExchange(
    stack.url,
    `POST /api/orders HTTP/1.1\r\nHost: ${host}\r\nCookie: ${cookie}\r\nX-CSRF: 1\r\nSec-Fetch-Site: same-origin\r\nContent-Type: application/octet-stream\r\nContent-Length: ${bytes}\r\nConnection: close\r\n\r\n`,
    { bytes },
  );
  t.equal(declared.status, 413, 'an 11 MB body with Content-Length: 413');
  const backchannel = await rawExchange(
    stack.url,
    `POST /auth/backchannel-logout HTTP/1.1\r\nHost: ${host}\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: ${1024 * 1024}\r\nConnection: close\r\n\r\n`,
    { bytes: 1024 * 1024 },
  );
  t.equal(backchannel.status, 413, 'a 1 MB back-channel logout form: 413');
  const chunked = await rawExchange(
    stack.url,
    `POST /api/orders HTTP/1.1\r\nHost: ${host}\r\nCookie: ${cookie}\r\nX-CSRF: 1\r\nSec-Fetch-Site: same-origin\r\nContent-Type: application/octet-stream\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n`,
    { bytes, chunked: true },
  );
  t.equal(chunked.status, 411, 'an 11 MB chunked body on a token route: 411 (bug: it streamed upstream unbounded after the token work)');
  t.equal(stack.upstreamCount(), before, 'nothing reached the upstream');
  t.equal(stack.provider.counts.refreshGrants, refreshes, 'no token was acquired');
  await assertStillServes(t, cookie);
});
