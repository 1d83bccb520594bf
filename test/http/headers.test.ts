import t from 'tap';
import type { IncomingHttpHeaders } from 'node:http';
import { upstreamRequestHeaders, withoutCookies, type UpstreamContext } from '../../src/http/headers.js';

const ctx = (over: Partial<UpstreamContext> = {}): UpstreamContext => ({
  token: 'route-token',
  cookieNames: ['bff'],
  clientIp: '203.0.113.7',
  proto: 'https',
  host: 'app.example.com',
  trustProxy: false,
  ...over,
});

const browser: IncomingHttpHeaders = {
  host: 'orders.internal',
  accept: 'application/json',
  'content-type': 'application/json',
  'x-csrf': '1',
  'x-request-id': 'abc',
};

t.test('hop-by-hop headers and proxy credentials are dropped', async (t) => {
  const out = upstreamRequestHeaders(
    {
      ...browser,
      connection: 'keep-alive',
      'keep-alive': 'timeout=5',
      'proxy-connection': 'keep-alive',
      'proxy-authorization': 'Basic dXNlcjpwYXNz',
      'proxy-authenticate': 'Basic',
      te: 'trailers',
      trailer: 'x-checksum',
      'transfer-encoding': 'chunked',
      upgrade: 'h2c',
    },
    ctx(),
  );
  for (const name of ['connection', 'keep-alive', 'proxy-connection', 'proxy-authorization', 'proxy-authenticate', 'te', 'trailer', 'transfer-encoding', 'upgrade']) {
    t.notOk(name in out, `${name} dropped`);
  }
  t.equal(out.accept, 'application/json', 'end-to-end headers kept');
  t.equal(out['x-request-id'], 'abc');
  t.equal(out.host, 'orders.internal', 'Host left to the proxy');
});

t.test('a WebSocket handshake keeps the browser headers but none the ws client generates itself', async (t) => {
  const { handshakeHeaders } = await import('../../src/http/proxy-routes.js');
  const browserHandshake = { host: 'app.example.com', connection: 'Upgrade', upgrade: 'websocket', 'sec-websocket-key': 'k', 'sec-websocket-version': '13', cookie: 'theme=dark', 'user-agent': 'ua' };
  const out = upstreamRequestHeaders(handshakeHeaders(browserHandshake), ctx());
  t.equal(out['sec-websocket-key'], undefined);
  t.equal(out.upgrade, undefined);
  t.equal(out.connection, undefined);
  t.equal(out['user-agent'], 'ua');
  t.equal(out.authorization, 'Bearer route-token');
});

t.test('the browser Authorization never reaches the upstream', async (t) => {
  t.equal(upstreamRequestHeaders({ ...browser, authorization: 'Bearer browser-token' }, ctx()).authorization, 'Bearer route-token', 'replaced by the route token');
  const none = upstreamRequestHeaders({ ...browser, authorization: 'Bearer browser-token' }, ctx({ token: undefined }));
  t.notOk('authorization' in none, 'removed on a route without a token');
});

t.test('the gateway cookie is removed and other cookies are kept', async (t) => {
  t.equal(upstreamRequestHeaders({ ...browser, cookie: 'theme=dark; bff=SEALED; lang=en' }, ctx()).cookie, 'theme=dark; lang=en');
  t.equal(upstreamRequestHeaders({ ...browser, cookie: 'bff=SEALED;bffx=1;xbff=2' }, ctx()).cookie, 'bffx=1; xbff=2', 'only the exact name');
  t.equal(upstreamRequestHeaders({ ...browser, cookie: 'bff=one; other=1; bff=two' }, ctx()).cookie, 'other=1', 'every copy of it');
  t.notOk('cookie' in upstreamRequestHeaders({ ...browser, cookie: 'bff=SEALED' }, ctx()), 'no Cookie header when nothing is left');
  t.equal(upstreamRequestHeaders({ ...browser, cookie: '__Host-bff=S; a=1' }, ctx({ cookieNames: ['__Host-bff'] })).cookie, 'a=1', '__Host- names');
  t.equal(withoutCookies(undefined, ['bff']), undefined);
  t.equal(withoutCookies(' bff = x ; a=1 ', ['bff']), 'a=1', 'spaces around the name');
  t.equal(withoutCookies(' bff = x ', ['bff']), undefined, 'one cookie, spaces around the name');
  t.equal(withoutCookies('bffx=1', ['bff']), 'bffx=1', 'one cookie whose name only starts like ours');
  t.equal(withoutCookies('xbff', ['bff']), 'xbff', 'one cookie without a value');
  t.equal(withoutCookies('bff', ['bff']), undefined, 'our name without a value');
});

t.test('untrusted X-Forwarded-* and similar headers, underscore spellings included, are replaced', async (t) => {
  const out = upstreamRequestHeaders(
    {
      ...browser,
      'x-forwarded-for': '10.0.0.1',
      'x-forwarded-proto': 'http',
      'x-forwarded-host': 'evil.example',
      'x-forwarded-port': '8443',
      'x-forwarded-prefix': '/admin',
      x_forwarded_for: '10.0.0.2',
      x_forwarded_host: 'evil.example',
      'x-real-ip': '10.0.0.3',
      x_real_ip: '10.0.0.4',
      forwarded: 'for=10.0.0.5;host=evil.example',
      'x-original-url': '/admin',
      'x-original-host': 'evil.example',
    },
    ctx(),
  );
  for (const name of ['x-forwarded-port', 'x-forwarded-prefix', 'x_forwarded_for', 'x_forwarded_host', 'x-real-ip', 'x_real_ip', 'forwarded', 'x-original-url', 'x-original-host']) {
    t.notOk(name in out, `${name} dropped`);
  }
  t.equal(out['x-forwarded-for'], '203.0.113.7', 'the client address only');
  t.equal(out['x-forwarded-proto'], 'https');
  t.equal(out['x-forwarded-host'], 'app.example.com');
});

t.test('X-Forwarded-For/Proto/Host are set from the connection', async (t) => {
  const out = upstreamRequestHeaders(browser, ctx({ clientIp: '198.51.100.1', proto: 'http', host: '127.0.0.1:8080' }));
  t.equal(out['x-forwarded-for'], '198.51.100.1');
  t.equal(out['x-forwarded-proto'], 'http');
  t.equal(out['x-forwarded-host'], '127.0.0.1:8080');
});

t.test('behind a trusted proxy the X-Forwarded-For chain is kept and extended', async (t) => {
  const out = upstreamRequestHeaders({ ...browser, 'x-forwarded-for': '198.51.100.1, 10.0.0.1' }, ctx({ trustProxy: true, clientIp: '198.51.100.1' }));
  t.equal(out['x-forwarded-for'], '198.51.100.1, 10.0.0.1, 198.51.100.1');
  const first = upstreamRequestHeaders(browser, ctx({ trustProxy: true }));
  t.equal(first['x-forwarded-for'], '203.0.113.7', 'starts the chain when there is none');
});

t.test('the token is injected last, whatever the browser sent', async (t) => {
  const out = upstreamRequestHeaders({ authorization: 'Bearer browser-token', ...browser, 'x-last': 'browser header after it' }, ctx());
  t.equal(Object.keys(out).at(-1), 'authorization', 'the last header written');
  t.equal(out.authorization, 'Bearer route-token');
  t.notOk(Object.values(out).some((v) => String(v).includes('browser-token')), 'the browser token is nowhere');
});

t.test('the input headers are not modified', async (t) => {
  const input: IncomingHttpHeaders = { ...browser, cookie: 'bff=S; a=1', authorization: 'Bearer b', connection: 'keep-alive' };
  const copy = { ...input };
  upstreamRequestHeaders(input, ctx());
  t.same(input, copy);
});
