/**
 * Where the gateway's per-request CPU goes, piece by piece: each thing the gateway does on
 * a proxied request that a bare @fastify/http-proxy does not, timed in isolation
 * (process CPU time over many iterations, after warm-up). The sum, set against the
 * gateway-minus-bare CPU per request from `npm run bench`, shows what is left for
 * Fastify's hook machinery and the rest.
 *
 *   npm run build && node dist/bench/components.js [--iterations 20000]
 */
import { randomBytes, randomUUID } from 'node:crypto';
import { existsSync, openSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { FastifyRequest } from 'fastify';
import pino from 'pino';
import { Counter, Histogram, Registry } from 'prom-client';
import { parseRoutesFile, formatProblem } from '../src/config/load.js';
import { upstreamRequestHeaders } from '../src/http/headers.js';
import { accountKeyOf } from '../src/identity/oidc.js';
import type { IdentityBackend } from '../src/identity/types.js';
import { BatchedLines, accessLogWriter, createLogger } from '../src/logger.js';
import { createGateway } from '../src/server.js';
import { newSessionId } from '../src/session/sessions.js';
import { fakeIdentity } from './fake-identity.js';

const HERE = fileURLToPath(new URL('.', import.meta.url));
const REPO = resolve(HERE, '..', '..');

const YAML = `listen: { host: 127.0.0.1, port: 0 }
publicUrl: http://127.0.0.1:8080
identity:
  provider: oidc
  issuer: https://idp.bench.invalid
  clientId: bff-bench
  clientSecret: bench-secret-0123456789abcdef-0123456789
  scopes: [openid, profile, email, offline_access, api.read]
session:
  secret: bench-session-secret-0123456789abcdef-0123
tokenCache:
  url: memory://
  encryptionKey: bench-cache-key-0123456789abcdef-0123456789
routes:
  - name: api
    prefix: /api
    upstream: http://127.0.0.1:9
    rewritePrefix: /
    auth: user
    scopes: [api.read]
    resource: https://api.bench.test
`;

interface Timing {
  name: string;
  what: string;
  us: number;
}

/** CPU µs per call of `fn` (sync or async), after a warm-up. */
async function time(iterations: number, fn: () => unknown): Promise<number> {
  const run = async (n: number) => {
    for (let i = 0; i < n; i++) {
      const r = fn();
      if (r instanceof Promise) await r;
    }
  };
  await run(Math.min(5000, iterations));
  const samples: number[] = [];
  for (let rep = 0; rep < 5; rep++) {
    const before = process.cpuUsage();
    await run(iterations / 5);
    const d = process.cpuUsage(before);
    samples.push((d.user + d.system) / (iterations / 5));
  }
  return samples.sort((a, b) => a - b)[2]!; // median of 5
}

export async function measureComponents(iterations: number): Promise<Timing[]> {
  const parsed = parseRoutesFile(YAML, 'bench-components.yaml', {});
  if (!parsed.ok) throw new Error(parsed.problems.map(formatProblem).join('\n'));
  const config = parsed.config;
  const devnull = pino.destination({ dest: '/dev/null', sync: true });
  const gateway = await createGateway(config, { identity: fakeIdentity(config.identity.issuer!), logStream: devnull });
  await gateway.app.ready();
  const { app, deps } = gateway;
  const route = config.routes[0]!;

  // One signed-in user with the route's token cached, as in the benchmark.
  const sub = 'bench-user';
  const account = { key: accountKeyOf(config.identity.issuer!, sub), iss: config.identity.issuer!, sub };
  const sessionId = newSessionId();
  const record = await deps.sessions.create(sessionId, {
    accountKey: account.key,
    iss: account.iss,
    sub,
    sid: randomBytes(16).toString('base64url'),
    logoutId: randomBytes(16).toString('base64url'),
    claims: { sub, name: sub, email: `${sub}@example.com` },
    idToken: randomBytes(675).toString('base64url'),
  });
  await deps.tokens.storeSignIn(account, randomBytes(32).toString('base64url'), record.absoluteExpiresAt);
  const first = await deps.tokens.forUser(account, route);
  if (first.kind !== 'bearer') throw new Error('no token');
  const cookieValue = app.sessionCookie.codec.encode({ s: sessionId });
  const cookieHeader = `${config.session.cookieName}=${encodeURIComponent(cookieValue)}`;
  // What autocannon sends in the benchmark, and what a browser's fetch() sends.
  const benchHeaders = { host: '127.0.0.1:8080', cookie: cookieHeader, 'x-csrf': '1', connection: 'keep-alive' };
  const browserHeaders = {
    host: 'app.example.com',
    connection: 'keep-alive',
    'sec-ch-ua': '"Chromium";v="131", "Not_A Brand";v="24"',
    'x-csrf': '1',
    'sec-ch-ua-mobile': '?0',
    'user-agent': 'Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36',
    accept: 'application/json',
    'sec-ch-ua-platform': '"Linux"',
    'sec-fetch-site': 'same-origin',
    'sec-fetch-mode': 'cors',
    'sec-fetch-dest': 'empty',
    referer: 'https://app.example.com/orders',
    'accept-encoding': 'gzip, deflate, br, zstd',
    'accept-language': 'en-US,en;q=0.9',
    cookie: `_ga=GA1.1.123456789.1700000000; theme=dark; ${cookieHeader}; _ga_XYZ=GS1.1.1700000000.1.1.1700000000.0.0.0`,
  };
  const ctx = { token: first.token, cookieNames: [config.session.cookieName], clientIp: '127.0.0.1', proto: 'http', host: '127.0.0.1:8080', trustProxy: false };

  const results: Timing[] = [];
  const add = async (name: string, what: string, fn: () => unknown) => results.push({ name, what, us: await time(iterations, fn) });

  // The logger as the gateway builds it (redaction paths, epoch time, batched writes), to /dev/null.
  const logger = createLogger(config.logging, new BatchedLines(openSync('/dev/null', 'w')));
  let n = 0;
  const accessLog = accessLogWriter(logger)!;
  await add('access log line', 'the onResponse hook\'s line, in pino\'s format straight to the batched destination (/dev/null)', () => {
    accessLog(randomUUID(), 'GET', '/api/small?x=1', 'api', 200, 2);
  });
  await add('  … through a pino child', 'what it replaced: a child logger per request and its info line (redact, serialisers)', () => {
    logger.child({ reqId: randomUUID() }).info({ method: 'GET', path: '/api/small', route: 'api', status: 200, ms: 2 }, 'request');
  });
  const routeMetrics = deps.metrics.route('api');
  await add('metrics', 'request count + duration, upstream duration, token outcome (the route\'s tallies)', () => {
    routeMetrics.request(200, 0.002 + (n++ % 7) / 1000);
    routeMetrics.upstreamSeconds(0.001);
    routeMetrics.tokenOutcome('cache');
  });
  const registers = [new Registry()];
  const requests = new Counter({ name: 'requests', help: 'h', labelNames: ['route', 'status'], registers }).labels({ route: 'api', status: '200' });
  const tokens = new Counter({ name: 'tokens', help: 'h', labelNames: ['route', 'outcome'], registers }).labels({ route: 'api', outcome: 'cache' });
  const duration = new Histogram({ name: 'duration', help: 'h', labelNames: ['route', 'status'], registers }).labels({ route: 'api', status: '200' });
  const upstream = new Histogram({ name: 'upstream', help: 'h', labelNames: ['route'], registers }).labels({ route: 'api' });
  await add('  … through prom-client', 'the same four updates through prom-client label children (what the tallies replaced)', () => {
    requests.inc();
    duration.observe(0.002 + (n++ % 7) / 1000);
    upstream.observe(0.001);
    tokens.inc();
  });
  const asRequest = { headers: benchHeaders } as unknown as FastifyRequest;
  await add('session cookie, seen before', 'SessionCookieReader.sessionId: the Cookie header looked up in the 10 s memo', () => app.sessionCookie.sessionId(asRequest));
  await add('  … first sight of a cookie', 'cookie parse + @fastify/secure-session decode (base64, secretbox open, JSON, Proxy)', () => app.sessionCookie.codec.decode(cookieValue));
  await deps.sessions.get(sessionId);
  await add('session, in-process copy', 'sessions.peek: the 500 ms in-process copy, expiry checks', () => deps.sessions.peek(sessionId));
  await add('  … through get (memory)', 'sessions.get: the async path (the copy while fresh, else sha256 of the id, Keyv get, AES-GCM open, JSON.parse)', () => deps.sessions.get(sessionId));
  await deps.tokens.forUser(account, route);
  await add('token, in-process copy', 'tokens.cachedForUser: the 500 ms in-process copy of the account entry', () => deps.tokens.cachedForUser(account.key, route));
  await add('  … through forUser (memory)', 'tokens.forUser: the async path (copy, else Keyv get, AES-GCM open, JSON.parse)', () => deps.tokens.forUser(account, route));
  await add('upstream headers (bench request)', 'upstreamRequestHeaders for the benchmark\'s 4 request headers', () => upstreamRequestHeaders(benchHeaders, ctx));
  await add('upstream headers (browser request)', 'upstreamRequestHeaders for a Chrome fetch() with 17 headers and 4 cookies', () => upstreamRequestHeaders(browserHeaders, ctx));
  await add('request id', 'genReqId: crypto.randomUUID()', () => randomUUID());
  await gateway.close();
  return results;
}

function latestGap(): { gap: number; source: string } | undefined {
  const file = join(REPO, 'bench', 'results', 'latest.json');
  if (!existsSync(file)) return undefined;
  const report = JSON.parse(readFileSync(file, 'utf8')) as { rows: Array<{ target: string; body: string; connections: number; cpuUsPerReq: number }> };
  const pick = (t: string) => report.rows.find((r) => r.target === t && r.body === 'small' && r.connections === 10)?.cpuUsPerReq;
  const bare = pick('bare');
  const gw = pick('gateway-memory');
  return bare && gw ? { gap: gw - bare, source: `${file}: small, 10 conns: gateway-memory ${gw.toFixed(0)} − bare ${bare.toFixed(0)} µs` } : undefined;
}

if (process.argv[1] && fileURLToPath(import.meta.url) === resolve(process.argv[1])) {
  const i = process.argv.indexOf('--iterations');
  const iterations = i === -1 ? 20_000 : Number(process.argv[i + 1]);
  const results = await measureComponents(iterations);
  const gap = latestGap();
  const lines = ['| component | CPU µs/op | share of gateway − bare | what |', '|---|---:|---:|---|'];
  for (const r of results) lines.push(`| ${r.name} | ${r.us.toFixed(1)} | ${gap && !r.name.startsWith(' ') && !r.name.includes('browser') ? `${((r.us / gap.gap) * 100).toFixed(0)}%` : ''} | ${r.what} |`);
  if (gap) lines.push('', `Gap from ${gap.source} = ${gap.gap.toFixed(0)} µs per request.`);
  process.stdout.write(lines.join('\n') + '\n');
  process.exit(0);
}
