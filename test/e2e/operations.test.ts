import t from 'tap';
import { signIn } from '../helpers/browserless.js';
import { CLIENT_SECRET, LogCapture, apiCall, freePort, startStack } from '../helpers/stack.js';
import { formatProblem, parseRoutesFile } from '../../src/config/load.js';
import { createGateway } from '../../src/server.js';
import { startSampleApi } from '../../examples/demo/api.js';

const SESSION_SECRET = 'session-secret-for-tests-0123456789abcdef';
const CACHE_KEY = 'cache-key-for-tests-0123456789abcdef-xyz';

/** Info-level "request" lines the gateway wrote for a path. */
function requestLines(logs: LogCapture, path: string) {
  return logs.records().filter((r) => r.msg === 'request' && r.path === path);
}

t.test('healthz and readyz answer 200 on a ready gateway, are not logged at info level and never reach the upstream', async (t) => {
  const stack = await startStack();
  t.teardown(() => stack.close());
  const before = stack.api.received.length;

  const health = await fetch(stack.url + '/healthz');
  t.equal(health.status, 200);
  t.same(await health.json(), { status: 'ok' });
  t.equal(health.headers.get('cache-control'), 'no-store');

  const ready = await fetch(stack.url + '/readyz');
  t.equal(ready.status, 200);
  t.same(await ready.json(), { status: 'ready', provider: 'ok', tokenStore: 'ok' });
  t.equal(ready.headers.get('cache-control'), 'no-store');

  // A control: an ordinary request is logged at info level with its path.
  const user = await fetch(stack.url + '/auth/user');
  t.equal(user.status, 401);
  await user.arrayBuffer();
  t.equal(requestLines(stack.logs, '/auth/user').length, 1, 'ordinary requests are logged at info');

  t.equal(requestLines(stack.logs, '/healthz').length, 0, 'no info line for /healthz');
  t.equal(requestLines(stack.logs, '/readyz').length, 0, 'no info line for /readyz');
  t.notMatch(stack.logs.text, /healthz|readyz/, 'the probes appear nowhere in the logs');
  t.equal(stack.api.received.length, before, 'the catch-all SPA upstream received nothing for the probes');
});

t.test('readyz answers 503 and healthz 200 while the provider metadata cannot be loaded', async (t) => {
  const deadPort = await freePort();
  const spa = await startSampleApi({ issuer: `http://127.0.0.1:${deadPort}`, audience: 'https://spa.example.test' });
  t.teardown(() => spa.close());
  const yaml = `listen: { host: 127.0.0.1, port: 0 }
publicUrl: http://127.0.0.1:8080
identity:
  provider: oidc
  issuer: http://127.0.0.1:${deadPort}
  allowInsecureRequests: true
  timeout: 1s
  clientId: bff
  clientSecret: \${CLIENT_SECRET}
session:
  secret: \${SESSION_SECRET}
tokenCache:
  encryptionKey: \${CACHE_KEY}
routes:
  - name: spa
    prefix: /
    upstream: ${spa.url}
    auth: none
`;
  const parsed = parseRoutesFile(yaml, 'routes.yaml', { CLIENT_SECRET, SESSION_SECRET, CACHE_KEY });
  if (!parsed.ok) throw new Error(parsed.problems.map(formatProblem).join('\n'));
  const logs = new LogCapture();
  const gateway = await createGateway(parsed.config, { logStream: logs });
  t.teardown(() => gateway.close());
  const before = spa.received.length;

  const ready = await gateway.app.inject({ method: 'GET', url: '/readyz' });
  t.equal(ready.statusCode, 503, 'not ready while the issuer is a closed port');
  t.same(ready.json(), { status: 'not ready', provider: 'metadata not loaded', tokenStore: 'ok' });
  t.equal(ready.headers['cache-control'], 'no-store');

  const health = await gateway.app.inject({ method: 'GET', url: '/healthz' });
  t.equal(health.statusCode, 200, 'still alive: a restart would not bring the provider back');

  t.equal(requestLines(logs, '/readyz').length, 0, 'a failing readyz is not logged at info either');
  t.equal(requestLines(logs, '/healthz').length, 0);
  t.equal(spa.received.length, before, 'the catch-all upstream received nothing for the probes');
  for (let i = 0; i < 100 && !logs.records().some((r) => r.msg === 'provider discovery failed; retrying'); i++) await new Promise((r) => setTimeout(r, 20));
  t.ok(logs.records().some((r) => r.msg === 'provider discovery failed; retrying' && r.level === 40), 'the discovery failure itself is logged, as a warning');
});

t.test('readyz answers 503 while the token store does not answer', async (t) => {
  const deadRedis = `redis://127.0.0.1:${await freePort()}/0`;
  const stack = await startStack({ env: { CACHE_URL: deadRedis } });
  t.teardown(() => stack.close());
  const ready = await fetch(stack.url + '/readyz');
  t.equal(ready.status, 503);
  t.same(await ready.json(), { status: 'not ready', provider: 'ok', tokenStore: 'unreachable' });
  const health = await fetch(stack.url + '/healthz');
  t.equal(health.status, 200);
  await health.arrayBuffer();
  t.equal(stack.api.received.length, 0, 'nothing was proxied');
});

/** One sample of a Prometheus text line, e.g. value(text, 'bff_requests_total', {route: 'api'}). */
function samples(text: string, name: string, labels: Record<string, string> = {}): number[] {
  const out: number[] = [];
  for (const line of text.split('\n')) {
    if (line.startsWith('#')) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (!m || m[1] !== name) continue;
    const got: Record<string, string> = {};
    for (const [, k, v] of (m[2] ?? '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) got[k] = v;
    if (Object.entries(labels).every(([k, v]) => got[k] === v)) out.push(Number(m[3]));
  }
  return out;
}

async function metricsText(url: string): Promise<string> {
  const res = await fetch(url + '/metrics');
  if (res.status !== 200) throw new Error(`/metrics answered ${res.status}`);
  if (!/^text\/plain; version=0\.0\.4/.test(res.headers.get('content-type') ?? '')) throw new Error(`content-type ${res.headers.get('content-type')}`);
  return res.text();
}

t.test('metrics count requests, upstream time, token acquisitions and provider calls in Prometheus text', async (t) => {
  const stack = await startStack();
  t.teardown(() => stack.close());
  const { gatewayCookie } = await signIn(stack.url, { login: 'alice' });

  const first = await apiCall(stack, '/api/orders', gatewayCookie);
  t.equal(first.status, 200, first.text);
  let text = await metricsText(stack.url);
  t.same(samples(text, 'bff_requests_total', { route: 'api', status: '200' }), [1], 'one api request with status 200');
  t.ok(samples(text, 'bff_request_duration_seconds_bucket', { route: 'api', status: '200', le: '+Inf' })[0] === 1, 'request duration histogram');
  t.ok(samples(text, 'bff_upstream_duration_seconds_count', { route: 'api' })[0] === 1, 'upstream duration histogram');
  t.same(samples(text, 'bff_token_acquisitions_total', { route: 'api', outcome: 'refresh' }), [1], 'the first call refreshed');
  t.same(samples(text, 'bff_token_acquisitions_total', { route: 'api', outcome: 'cache' }), [], 'nothing from the cache yet');
  t.same(samples(text, 'bff_provider_call_duration_seconds_count', { kind: 'refresh', result: 'ok' }), [1], 'one provider call, timed');
  t.ok(samples(text, 'process_cpu_user_seconds_total').length === 1, 'default process metrics');
  t.ok(samples(text, 'nodejs_eventloop_lag_seconds').length === 1, 'default Node.js metrics');

  const second = await apiCall(stack, '/api/orders', gatewayCookie);
  t.equal(second.status, 200);
  text = await metricsText(stack.url);
  t.same(samples(text, 'bff_token_acquisitions_total', { route: 'api', outcome: 'refresh' }), [1], 'no second refresh');
  t.same(samples(text, 'bff_token_acquisitions_total', { route: 'api', outcome: 'cache' }), [1], 'the second call used the cache');
  t.same(samples(text, 'bff_requests_total', { route: 'api', status: '200' }), [2]);
  t.same(samples(text, 'bff_provider_call_duration_seconds_count', { kind: 'refresh', result: 'ok' }), [1]);
});

t.test('metric labels have bounded cardinality and carry no path, user, token, cookie or secret', async (t) => {
  const stack = await startStack();
  t.teardown(() => stack.close());
  const { gatewayCookie } = await signIn(stack.url, { login: 'zebediah-the-user' });
  const paths = Array.from({ length: 50 }, (_, i) => `/api/items/unique-item-${i}-${Math.random().toString(36).slice(2)}`);
  for (const path of paths) {
    const res = await apiCall(stack, path + '?q=querymarker', gatewayCookie);
    t.equal(res.status, 200, path);
  }
  // A few requests that fail in different ways, each with its own path.
  await apiCall(stack, '/api/anonymous-marker', '');
  await fetch(stack.url + '/nowhere-marker/x');

  const text = await metricsText(stack.url);
  t.same(samples(text, 'bff_requests_total', { route: 'api', status: '200' }), [50]);
  for (const path of paths) if (text.includes(path.split('/').at(-1)!)) t.fail(`the path ${path} appears in the metrics`);
  t.notMatch(text, /unique-item|\/api\/items|querymarker|anonymous-marker|nowhere-marker/, 'no request path or query');
  t.notMatch(text, /zebediah|alice/, 'no user name');

  const routes = new Set([...text.matchAll(/route="([^"]*)"/g)].map((m) => m[1]));
  t.ok([...routes].every((r) => ['api', 'other', 'app', 'either', 'spa', 'auth', 'gateway'].includes(r)), `route labels are route names: ${[...routes].join(', ')}`);
  const labelNames = new Set([...text.matchAll(/[{,]([a-zA-Z_]+)="/g)].map((m) => m[1]));
  t.ok([...labelNames].every((l) => ['route', 'status', 'outcome', 'kind', 'result', 'le', 'event', 'version', 'type', 'space', 'major', 'minor', 'patch', 'kind'].includes(l)), `label names: ${[...labelNames].join(', ')}`);

  const withToken = stack.api.received.filter((r) => r.headers.authorization);
  t.equal(withToken.length, 50);
  const token = String(withToken.at(-1)?.headers.authorization).replace(/^Bearer /, '');
  t.ok(token.length > 20, 'the upstream did receive a token');
  t.notOk(text.includes(token), 'no access token');
  t.notMatch(text, /eyJ/, 'no JWT at all');
  const cookieValue = gatewayCookie.split('=').slice(1).join('=');
  t.notOk(text.includes(cookieValue), 'no session cookie');
  for (const secret of [CLIENT_SECRET, SESSION_SECRET, CACHE_KEY]) t.notOk(text.includes(secret), 'no secret');
});

t.test('every log line written while serving a request carries that request\'s reqId', async (t) => {
  // `logging:` is injected as a top-level key through the session slot of the stack's YAML.
  const stack = await startStack({ session: 'logging: { level: debug }' });
  t.teardown(() => stack.close());
  const start = stack.logs.lines.length;

  const { gatewayCookie } = await signIn(stack.url, { login: 'alice' });
  t.equal((await apiCall(stack, '/api/orders', gatewayCookie)).status, 200);
  t.equal((await apiCall(stack, '/api/orders', '')).status, 401);
  t.equal((await apiCall(stack, '/api/orders', gatewayCookie, { headers: { 'x-csrf': '0' } })).status, 403);
  stack.api.setStatus(502);
  t.equal((await apiCall(stack, '/api/orders', gatewayCookie)).status, 502);
  stack.api.setStatus(null);
  await stack.api.close(); // the upstream is gone: the gateway logs a warning about it
  t.equal((await apiCall(stack, '/api/orders', gatewayCookie)).status, 502);

  const lines = stack.logs.records().slice(start);
  const ids = new Set<string>();
  for (const line of lines) {
    t.type(line.reqId, 'string', `reqId on "${String(line.msg)}"`);
    ids.add(String(line.reqId));
  }
  const requests = lines.filter((l) => l.msg === 'request');
  t.equal(requests.length, 7, 'one "request" line per request: login, callback and five API calls');
  t.equal(ids.size, requests.length, 'each request has its own reqId, and every line belongs to a logged request');
  const other = lines.filter((l) => l.msg !== 'request');
  t.ok(other.some((l) => l.msg === 'signed in'), 'the sign-in line is there');
  t.ok(other.some((l) => l.msg === 'upstream failed' && l.level === 40), 'the upstream warning is there');
  t.ok(other.some((l) => l.msg === 'request refused' && l.level === 20), 'the debug line of a refused request is there');
  for (const l of other) {
    const owner = requests.find((r) => r.reqId === l.reqId);
    t.ok(owner, `"${String(l.msg)}" belongs to a request that was logged`);
  }
});
