import t from 'tap';
import { CookieJar, browse, followRedirects } from '../helpers/browserless.js';
import { CLIENT_SECRET, apiCall, freePort, startStack } from '../helpers/stack.js';
import { accountKeyOf } from '../../src/identity/oidc.js';

const SESSION_SECRET = 'session-secret-for-tests-0123456789abcdef';
const CACHE_KEY = 'cache-key-for-tests-0123456789abcdef-xyz';

t.test('a sign-in, proxied calls and a sign-out leave no token, code, cookie or secret in the logs, and one line per request', async (t) => {
  // The most talkative level: whatever is logged at all must be clean.
  const stack = await startStack({ session: 'logging: { level: trace }' });
  t.teardown(() => stack.close());
  const gateway = new URL(stack.url);

  // Every token and code the provider hands out, straight from its token endpoint.
  const issued: string[] = [];
  stack.provider.provider.on('grant.success', (ctx: { body?: Record<string, unknown>; oidc?: { params?: Record<string, unknown> } }) => {
    for (const name of ['access_token', 'refresh_token', 'id_token']) if (typeof ctx.body?.[name] === 'string') issued.push(ctx.body[name] as string);
    for (const name of ['code', 'code_verifier', 'refresh_token']) if (typeof ctx.oidc?.params?.[name] === 'string') issued.push(ctx.oidc.params[name] as string);
  });

  const start = stack.logs.lines.length;
  let gatewayRequests = 0;

  // Sign in step by step, to see the authorization code on its way to the gateway.
  const jar = new CookieJar();
  const login = await followRedirects(`${stack.url}/auth/login?returnTo=/home&scopes=other.read`, jar, { stopAt: () => true });
  gatewayRequests++;
  t.equal(login.status, 302);
  const atProvider = await browse(login.location!, jar, { stopAt: (loc) => loc.origin === gateway.origin && loc.pathname === '/auth/callback' });
  const callbackUrl = new URL(atProvider.location!);
  const code = callbackUrl.searchParams.get('code')!;
  const state = callbackUrl.searchParams.get('state')!;
  t.ok(code, 'the provider sent a code');
  const done = await followRedirects(callbackUrl.href, jar, { stopAt: () => true });
  gatewayRequests++;
  t.equal(done.status, 302, 'signed in');
  const cookie = jar.header(stack.url);
  const cookieValue = jar.get(stack.url, 'bff')!;
  t.ok(cookieValue, 'the session cookie');

  const calls = ['/api/orders?page=1', '/other/items', '/app-api/jobs', '/either/x', '/auth/user'];
  for (const path of calls) {
    const res = await apiCall(stack, path, cookie);
    gatewayRequests++;
    t.equal(res.status, 200, `${path}: ${res.text}`);
  }
  const logoutUrl = String((await apiCall(stack, '/auth/user', cookie)).json?.logoutUrl);
  gatewayRequests++;

  const accessTokens = [...stack.api.received, ...stack.otherApi.received].map((r) => String(r.headers.authorization ?? '').replace(/^Bearer /, '')).filter(Boolean);
  t.ok(accessTokens.length >= 4, 'the upstreams received the route tokens');
  const refreshToken = await stack.gateway.deps.tokens.refreshTokenOf(accountKeyOf(stack.provider.issuer, 'alice'));
  t.ok(refreshToken, 'the gateway holds a refresh token for the account');

  const logout = await followRedirects(stack.url + logoutUrl, jar, { stopAt: () => true });
  gatewayRequests++;
  t.equal(logout.status, 302, 'signed out');
  const idTokenHint = new URL(logout.location!).searchParams.get('id_token_hint');
  t.ok(idTokenHint, 'the ID token went to the provider as id_token_hint');

  const idTokens = issued.filter((v) => v.split('.').length === 3);
  t.ok(issued.length >= 6, 'tokens were collected from the provider');
  t.ok(idTokens.includes(idTokenHint!), 'including the ID token');

  const secrets: Array<[string, string]> = [
    ...accessTokens.map((v): [string, string] => ['access token', v]),
    ...issued.map((v): [string, string] => ['token, code or verifier issued by the provider', v]),
    ['refresh token from the token cache', refreshToken!],
    ['ID token', idTokenHint!],
    ['authorization code', code],
    ['state', state],
    ['session cookie value', cookieValue],
    ['session cookie value, URL-decoded', decodeURIComponent(cookieValue)],
    ['client secret', CLIENT_SECRET],
    ['client secret, Basic-encoded', Buffer.from(`bff:${CLIENT_SECRET}`).toString('base64')],
    ['session secret', SESSION_SECRET],
    ['token cache key', CACHE_KEY],
  ];
  // A JWT's signature alone is enough to recognise it in a log.
  for (const [what, v] of [...secrets]) if (v.split('.').length === 3) secrets.push([`${what} (signature part)`, v.split('.')[2]!]);

  const text = stack.logs.lines.slice(start).join('\n');
  t.ok(text.length > 0, 'something was logged');
  for (const [what, value] of secrets) t.notOk(text.includes(value), `no ${what} in the logs`);
  t.notMatch(text, /eyJ[A-Za-z0-9_-]{10,}\.eyJ/, 'nothing that looks like a JWT');

  const records = stack.logs.records().slice(start);
  const requestLines = records.filter((r) => r.msg === 'request');
  t.equal(requestLines.length, gatewayRequests, `one request line per request (${gatewayRequests})`);
  for (const r of requestLines) {
    t.type(r.reqId, 'string', `${r.path}: reqId`);
    t.ok(r.route, `${r.path}: route`);
    t.type(r.status, 'number', `${r.path}: status`);
  }
  t.equal(new Set(requestLines.map((r) => r.reqId)).size, requestLines.length, 'every request has its own reqId');
  const routeOf = (path: string) => requestLines.filter((r) => r.path === path).map((r) => r.route);
  t.same(routeOf('/auth/login'), ['auth']);
  t.same(routeOf('/auth/callback'), ['auth']);
  t.same(routeOf('/api/orders'), ['api'], 'route names of proxied calls');
  t.same(routeOf('/other/items'), ['other']);
  t.same(routeOf('/app-api/jobs'), ['app']);
  t.same(
    requestLines.map((r) => r.status),
    [302, 302, 200, 200, 200, 200, 200, 200, 302],
    'statuses in order',
  );
  t.notOk(requestLines.some((r) => String(r.path).includes('?')), 'no query strings (codes, state) in request lines');
});

t.test('with accessLog off there is no line per request, while warnings are still logged and metrics still count', async (t) => {
  const closedPort = await freePort();
  const stack = await startStack({
    session: 'logging: { accessLog: false }',
    extraRoutes: `  - name: down\n    prefix: /down\n    upstream: http://127.0.0.1:${closedPort}\n    auth: none\n`,
  });
  t.teardown(() => stack.close());
  const start = stack.logs.lines.length;
  t.equal((await fetch(`${stack.url}/healthz`)).status, 200);
  t.equal((await apiCall(stack, '/down/x', '')).status, 502);
  const records = stack.logs.records().slice(start);
  t.same(records.filter((r) => r.msg === 'request'), [], 'no request lines');
  t.ok(records.some((r) => r.msg === 'upstream failed' && r.level === 40), 'the upstream failure is still a warning');
  const metrics = await (await fetch(`${stack.url}/metrics`)).text();
  t.match(metrics, /bff_requests_total\{route="down",status="502"\} 1/, 'and still counted');
});
