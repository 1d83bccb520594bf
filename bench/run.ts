/**
 * `npm run bench`: the gateway against a bare @fastify/http-proxy, on one machine.
 *
 * Starts, each in its own process: a plain node:http upstream, a bare @fastify/http-proxy
 * in front of it, and the gateway with a signed-in session (memory store, and Redis
 * store), signs in through the dev provider (in this process), then drives every target
 * with autocannon from this process in interleaved rounds. The proxies are pinned to core
 * 0 and this process and the upstream to core 1 when `taskset` exists, and each proxy
 * reports its own CPU time, so "CPU per request" is the proxy's alone.
 *
 * Fails (exit 1) when any request errs or answers non-2xx, when the upstream did not get
 * `Authorization: Bearer …` on every gateway request, or when the provider was called
 * during the cached-token runs. See bench/README.md.
 */
import { spawn, spawnSync } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { availableParallelism, cpus } from 'node:os';
import { createConnection } from 'node:net';
import { fileURLToPath } from 'node:url';
import { basename, join, resolve } from 'node:path';
import autocannon, { type AutocannonResult } from 'autocannon';
import { startDevProvider, type DevProvider } from '../examples/demo/provider.js';
import { ChildHandle, type ChildStats } from './ipc.js';
import type { AccountsReport } from './gateway-server.js';
import { freePorts } from './ports.js';
import { signIn } from './sign-in.js';
import { summarise, summaryMarkdown } from './profile-summary.js';

// ---------------------------------------------------------------------------------------
// Options

export interface BenchOptions {
  quick: boolean;
  durationMs: number;
  /** Unmeasured load at the run's own connections and body just before each measured run. */
  settleMs: number;
  warmupMs: number;
  rounds: number;
  connections: number[];
  bodies: Body[];
  outDir: string;
  redis: boolean;
  redisUrl: string;
  accounts: number;
  profile: boolean;
  pin: boolean;
  gatewayLogLevel?: string;
  /** Start, sign in, print where everything is and wait (for strace, perf or a manual load generator). */
  hold?: boolean;
  /** Self-test of the bearer check: treat the bare proxy as if it had to inject a token (it must then fail). */
  expectBearerFromBare?: boolean;
}

type Body = 'small' | 'large';
type TargetName = 'bare' | 'gateway-memory' | 'gateway-redis';

const HERE = fileURLToPath(new URL('.', import.meta.url));
const REPO = resolve(HERE, '..', '..');

const USAGE = `usage: npm run bench -- [options]
  --quick              1 round, 10 connections, 2 s runs (under a minute)
  --duration-ms N      length of each measured run (default 3000; quick 2000)
  --settle-ms N        unmeasured load just before each run, same connections and body
                       (default 1000; quick 300; 0 skips)
  --warmup-ms N        warm-up per target and body before measuring (default 2000; quick 500)
  --rounds N           interleaved rounds (default 3; quick 1)
  --connections 1,10   connection counts (default 1,10,50; quick 10)
  --bodies small,large response bodies (default both)
  --accounts N         signed-in accounts for the memory measurement (default 10000; 0 skips)
  --no-redis           skip the Redis-store gateway
  --redis-url URL      default $REDIS_URL or redis://127.0.0.1:6379
  --profile            profile the proxies (V8 sampling profiler) during the measured runs,
                       write DIR/profiles/*.cpuprofile and summarise them in the results
                       (CPU figures of such a run include the profiler's overhead)
  --gateway-log-level L  override the gateway's log level (default: info, as deployed)
  --hold               start and sign in, print each target's URL, PID and cookie, then wait
                       for Ctrl-C (to look at the processes with strace, perf, …)
  --no-pin             do not pin processes to cores
  --out-dir DIR        where results go (default bench/results)
  --expect-bearer-from-bare  self-test: the bare proxy injects no token, so this must fail`;

export function parseArgs(argv: string[]): BenchOptions {
  const quick = argv.includes('--quick');
  const opts: BenchOptions = {
    quick,
    durationMs: quick ? 2000 : 3000,
    settleMs: quick ? 300 : 1000,
    warmupMs: quick ? 500 : 2000,
    rounds: quick ? 1 : 3,
    connections: quick ? [10] : [1, 10, 50],
    bodies: ['small', 'large'],
    outDir: join(REPO, 'bench', 'results'),
    redis: true,
    redisUrl: process.env.REDIS_URL || 'redis://127.0.0.1:6379',
    accounts: 10_000,
    profile: false,
    pin: true,
  };
  const num = (v: string | undefined, flag: string, min: number) => {
    const n = Number(v);
    if (!Number.isFinite(n) || n < min) throw new Error(`${flag} needs a number >= ${min}\n${USAGE}`);
    return n;
  };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    const next = () => argv[++i];
    switch (a) {
      case '--quick':
        break;
      case '--duration-ms':
        opts.durationMs = num(next(), a, 50);
        break;
      case '--settle-ms':
        opts.settleMs = num(next(), a, 0);
        break;
      case '--warmup-ms':
        opts.warmupMs = num(next(), a, 0);
        break;
      case '--rounds':
        opts.rounds = Math.round(num(next(), a, 1));
        break;
      case '--connections':
        opts.connections = String(next()).split(',').map((c) => Math.round(num(c, a, 1)));
        break;
      case '--bodies':
        opts.bodies = String(next())
          .split(',')
          .map((b) => {
            if (b !== 'small' && b !== 'large') throw new Error(`--bodies: small or large, not ${b}`);
            return b;
          });
        break;
      case '--accounts':
        opts.accounts = Math.round(num(next(), a, 0));
        break;
      case '--no-redis':
        opts.redis = false;
        break;
      case '--redis-url':
        opts.redisUrl = String(next());
        break;
      case '--profile':
        opts.profile = true;
        break;
      case '--gateway-log-level':
        opts.gatewayLogLevel = String(next());
        break;
      case '--hold':
        opts.hold = true;
        break;
      case '--expect-bearer-from-bare':
        opts.expectBearerFromBare = true;
        break;
      case '--no-pin':
        opts.pin = false;
        break;
      case '--out-dir':
        opts.outDir = resolve(String(next()));
        break;
      case '--help':
      case '-h':
        process.stdout.write(USAGE + '\n');
        process.exit(0);
      default:
        throw new Error(`unknown option ${a}\n${USAGE}`);
    }
  }
  return opts;
}

// ---------------------------------------------------------------------------------------
// Processes

class BenchFailure extends Error {
  override readonly name = 'BenchFailure';
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function hasTaskset(): boolean {
  return spawnSync('taskset', ['-p', String(process.pid)], { stdio: 'ignore' }).status === 0;
}

function redisAnswers(url: string): Promise<boolean> {
  const u = new URL(url);
  return new Promise((resolvePing) => {
    const s = createConnection({ host: u.hostname || '127.0.0.1', port: Number(u.port || 6379) }, () => {
      if (u.password) s.write(`AUTH ${u.username ? decodeURIComponent(u.username) + ' ' : ''}${decodeURIComponent(u.password)}\r\n`);
      s.write('PING\r\n');
    });
    s.setTimeout(2000, () => {
      s.destroy();
      resolvePing(false);
    });
    s.on('data', (d) => {
      if (d.toString().includes('+PONG')) {
        s.destroy();
        resolvePing(true);
      }
    });
    s.once('error', () => resolvePing(false));
  });
}

interface SpawnOptions {
  env?: Record<string, string>;
  core?: number;
  nodeArgs?: string[];
}

function spawnServer(name: string, script: string, pin: boolean, opts: SpawnOptions = {}): ChildHandle {
  const args = [...(opts.nodeArgs ?? []), join(HERE, script)];
  const [cmd, argv] = pin && opts.core !== undefined ? ['taskset', ['-c', String(opts.core), process.execPath, ...args]] : [process.execPath, args];
  const child = spawn(cmd as string, argv as string[], {
    env: { ...process.env, ...opts.env },
    // Server logs go nowhere (as cheap as a log shipper's pipe); stderr is kept for failures.
    stdio: ['ignore', 'ignore', 'pipe', 'ipc'],
  });
  return new ChildHandle(name, child);
}

// ---------------------------------------------------------------------------------------
// Load

const CLIENT_ID = 'bff-bench';
const CLIENT_SECRET = 'bff-bench-client-secret-0123456789abcdef';
const API_RESOURCE = 'https://api.bench.test';

function gatewayYaml(port: number, issuer: string, upstream: string): string {
  return `listen: { host: 127.0.0.1, port: ${port} }
publicUrl: http://127.0.0.1:${port}
identity:
  provider: oidc
  issuer: ${issuer}
  allowInsecureRequests: true
  clientId: ${CLIENT_ID}
  clientSecret: \${CLIENT_SECRET}
  scopes: [openid, profile, email, offline_access, api.read]
session:
  secret: \${SESSION_SECRET}
tokenCache:
  url: \${CACHE_URL}
  encryptionKey: \${CACHE_KEY}
logging:
  accessLog: \${BENCH_ACCESS_LOG:-true}
routes:
  - name: api
    prefix: /api
    upstream: ${upstream}
    rewritePrefix: /
    auth: user
    scopes: [api.read]
    resource: ${API_RESOURCE}
`;
}

const GATEWAY_ENV = {
  CLIENT_SECRET,
  SESSION_SECRET: 'bench-session-secret-0123456789abcdef-0123',
  CACHE_KEY: 'bench-cache-key-0123456789abcdef-0123456789',
};

interface Target {
  name: TargetName;
  handle: ChildHandle;
  url: string;
  cookie: string;
  expectBearer: boolean;
}

interface RunResult {
  target: TargetName;
  body: Body;
  connections: number;
  round: number;
  requests: number;
  seconds: number;
  rps: number;
  p50: number;
  p99: number;
  cpuUsPerReq: number;
  rssMb: number;
  /** Requests the upstream received during the run, and those with Authorization: Bearer. */
  upstreamRequests: number;
  upstreamBearer: number;
}

function percentile(sorted: Float64Array, p: number): number {
  if (sorted.length === 0) return NaN;
  const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[i]!;
}

/** One autocannon run; latencies are taken from every response (autocannon's histogram is whole ms). */
function load(url: string, connections: number, durationMs: number, headers: Record<string, string>): Promise<{ result: AutocannonResult; latencies: Float64Array; responses: number; seconds: number }> {
  return new Promise((resolveRun, reject) => {
    let lat = new Float64Array(1 << 14);
    let n = 0;
    const started = performance.now();
    const instance = autocannon({ url, connections, duration: durationMs / 1000, headers, timeout: 10 }, (err, result) => {
      const seconds = (performance.now() - started) / 1000;
      if (err) reject(err);
      else resolveRun({ result, latencies: lat.subarray(0, n).sort(), responses: n, seconds });
    });
    instance.on('response', (_client, _status, _bytes, ms) => {
      if (n === lat.length) {
        const bigger = new Float64Array(lat.length * 2);
        bigger.set(lat);
        lat = bigger;
      }
      lat[n++] = ms;
    });
  });
}

function failOnErrors(where: string, result: AutocannonResult): void {
  if (result.errors || result.timeouts || result.non2xx) {
    throw new BenchFailure(`${where}: ${result.errors} errors, ${result.timeouts} timeouts, ${result.non2xx} non-2xx answers (status counts ${JSON.stringify(result.statusCodeStats ?? {})})`);
  }
}

async function measure(target: Target, body: Body, connections: number, round: number, o: BenchOptions, upstream: ChildHandle): Promise<RunResult> {
  const headers = { cookie: target.cookie, 'x-csrf': '1' };
  const where = `${target.name} /api/${body} ${connections} conn. round ${round + 1}`;
  // A process that sat idle while the others were measured meets the load with a heap V8
  // has shrunk; its first second or so is spent regrowing it (bursts of full collections),
  // and which target that hits is chance. Measure the steady state after it.
  if (o.settleMs > 0) failOnErrors(`${where} (settling)`, (await load(`${target.url}/api/${body}`, connections, o.settleMs, headers)).result);
  const [before, up0] = await Promise.all([target.handle.stats(), upstream.stats()]);
  const { result, latencies, responses, seconds } = await load(`${target.url}/api/${body}`, connections, o.durationMs, headers);
  // Let in-flight work of the stopped connections finish before reading the counters.
  await sleep(100);
  const [after, up1] = await Promise.all([target.handle.stats(), upstream.stats()]);
  failOnErrors(where, result);
  if (responses === 0) throw new BenchFailure(`${where}: no responses`);
  const upstreamRequests = up1.counters.requests! - up0.counters.requests!;
  const bearer = up1.counters.bearer! - up0.counters.bearer!;
  if (up1.counters.notFound !== up0.counters.notFound) throw new BenchFailure(`${where}: the upstream answered 404 (wrong path mapping)`);
  if (upstreamRequests < responses) throw new BenchFailure(`${where}: ${responses} responses but only ${upstreamRequests} upstream requests`);
  if (target.expectBearer && (bearer !== upstreamRequests || bearer < responses)) {
    throw new BenchFailure(`${where}: the upstream got Authorization: Bearer on ${bearer} of ${upstreamRequests} requests (${responses} responses)`);
  }
  return {
    target: target.name,
    body,
    connections,
    round,
    requests: responses,
    seconds,
    rps: responses / seconds,
    p50: percentile(latencies, 50),
    p99: percentile(latencies, 99),
    cpuUsPerReq: (after.cpuUs - before.cpuUs) / responses,
    rssMb: after.rssBytes / 2 ** 20,
    upstreamRequests,
    upstreamBearer: bearer,
  };
}

// ---------------------------------------------------------------------------------------
// Report

const median = (xs: number[]) => {
  const s = xs.filter((x) => Number.isFinite(x)).sort((a, b) => a - b);
  if (s.length === 0) return NaN;
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
};

export interface Row {
  target: TargetName;
  body: Body;
  connections: number;
  rps: number;
  p50: number;
  p99: number;
  cpuUsPerReq: number;
  rssMb: number;
  runs: number;
}

export interface RatioRow {
  body: Body;
  connections: number;
  cpuGatewayMemoryOverBare: number;
  rpsGatewayMemoryOverBare: number;
  cpuGatewayRedisOverBare?: number;
  rpsGatewayRedisOverBare?: number;
  cpuRedisOverMemory?: number;
  rpsRedisOverMemory?: number;
}

export interface BenchReport {
  date: string;
  options: Omit<BenchOptions, 'outDir'>;
  machine: { node: string; cpus: number; cpuModel: string; pinned: boolean };
  /** The code measured: commit, and whether src/ had uncommitted changes. */
  code: { commit: string; srcDirty: boolean };
  rows: Row[];
  ratios: RatioRow[];
  runs: RunResult[];
  providerCalls: { before: Record<string, number>; after: Record<string, number>; duringCachedRuns: number };
  upstreamBearerRequests: number;
  upstreamGatewayRequests: number;
  gatewayRequests: number;
  accounts?: AccountsReport & { rssGrowthMb: number; rssGrowthAfterCallMb: number; heapGrowthMb: number; heapGrowthAfterCallMb: number; bytesPerAccount: number };
  profiles?: string[];
  file?: string;
}

function aggregate(runs: RunResult[], opts: BenchOptions, targets: TargetName[]): { rows: Row[]; ratios: RatioRow[] } {
  const rows: Row[] = [];
  const ratios: RatioRow[] = [];
  for (const body of opts.bodies) {
    for (const connections of opts.connections) {
      const cell = (t: TargetName) => runs.filter((r) => r.target === t && r.body === body && r.connections === connections);
      for (const target of targets) {
        const rs = cell(target);
        rows.push({
          target,
          body,
          connections,
          rps: median(rs.map((r) => r.rps)),
          p50: median(rs.map((r) => r.p50)),
          p99: median(rs.map((r) => r.p99)),
          cpuUsPerReq: median(rs.map((r) => r.cpuUsPerReq)),
          rssMb: median(rs.map((r) => r.rssMb)),
          runs: rs.length,
        });
      }
      // Ratios within each round (same conditions), then the median over rounds.
      const ratio = (a: TargetName, b: TargetName, k: 'rps' | 'cpuUsPerReq') => {
        const xs: number[] = [];
        for (let round = 0; round < opts.rounds; round++) {
          const x = cell(a).find((r) => r.round === round);
          const y = cell(b).find((r) => r.round === round);
          if (x && y) xs.push(x[k] / y[k]);
        }
        return median(xs);
      };
      const row: RatioRow = {
        body,
        connections,
        cpuGatewayMemoryOverBare: ratio('gateway-memory', 'bare', 'cpuUsPerReq'),
        rpsGatewayMemoryOverBare: ratio('gateway-memory', 'bare', 'rps'),
      };
      if (targets.includes('gateway-redis')) {
        row.cpuGatewayRedisOverBare = ratio('gateway-redis', 'bare', 'cpuUsPerReq');
        row.rpsGatewayRedisOverBare = ratio('gateway-redis', 'bare', 'rps');
        row.cpuRedisOverMemory = ratio('gateway-redis', 'gateway-memory', 'cpuUsPerReq');
        row.rpsRedisOverMemory = ratio('gateway-redis', 'gateway-memory', 'rps');
      }
      ratios.push(row);
    }
  }
  return { rows, ratios };
}

const f = (x: number | undefined, digits = 0) => (x === undefined || !Number.isFinite(x) ? 'n/a' : x.toLocaleString('en-US', { minimumFractionDigits: digits, maximumFractionDigits: digits }));

function markdown(r: BenchReport, profileText: string): string {
  const o = r.options;
  const out: string[] = [];
  out.push(`# bff-gateway benchmark: ${r.date}${o.quick ? ' (quick)' : ''}`, '');
  out.push(
    `Code ${r.code.commit}${r.code.srcDirty ? ' with uncommitted changes in src/' : ''}; Node ${r.machine.node}, ${r.machine.cpus} CPUs (${r.machine.cpuModel}); ` +
      (r.machine.pinned ? 'proxies pinned to core 0, load generator and upstream to core 1' : 'no CPU pinning') +
      `. ${o.rounds} interleaved round(s) of ${f(o.durationMs / 1000, 1)} s runs (each after ${f(o.settleMs / 1000, 1)} s of unmeasured load), connections ${o.connections.join('/')}, ` +
      `gateway log level ${o.gatewayLogLevel ?? 'info (default)'}. Every gateway request carries the session cookie and \`X-CSRF: 1\`; ` +
      `the access token is cached (no provider call). Medians over rounds.`,
    '',
  );
  out.push('| body | conns | target | req/s | p50 ms | p99 ms | CPU µs/req | RSS MB |', '|---|---:|---|---:|---:|---:|---:|---:|');
  for (const row of r.rows) {
    out.push(`| ${row.body} | ${row.connections} | ${row.target} | ${f(row.rps)} | ${f(row.p50, 2)} | ${f(row.p99, 2)} | ${f(row.cpuUsPerReq)} | ${f(row.rssMb)} |`);
  }
  out.push('', 'Ratios (per round, then the median): CPU per request and requests/s.', '');
  const redis = r.ratios.some((x) => x.cpuRedisOverMemory !== undefined);
  out.push(
    redis
      ? '| body | conns | CPU gw-mem/bare | CPU gw-redis/bare | CPU redis/memory | req/s gw-mem/bare | req/s gw-redis/bare | req/s redis/memory |\n|---|---:|---:|---:|---:|---:|---:|---:|'
      : '| body | conns | CPU gw-mem/bare | req/s gw-mem/bare |\n|---|---:|---:|---:|',
  );
  for (const x of r.ratios) {
    out.push(
      redis
        ? `| ${x.body} | ${x.connections} | ${f(x.cpuGatewayMemoryOverBare, 2)} | ${f(x.cpuGatewayRedisOverBare, 2)} | ${f(x.cpuRedisOverMemory, 2)} | ${f(x.rpsGatewayMemoryOverBare, 2)} | ${f(x.rpsGatewayRedisOverBare, 2)} | ${f(x.rpsRedisOverMemory, 2)} |`
        : `| ${x.body} | ${x.connections} | ${f(x.cpuGatewayMemoryOverBare, 2)} | ${f(x.rpsGatewayMemoryOverBare, 2)} |`,
    );
  }
  out.push('', '## Checks', '');
  out.push(`- Requests: all ${f(r.runs.reduce((s, x) => s + x.requests, 0))} answered 2xx, no errors or timeouts.`);
  out.push(
    `- The upstream received \`Authorization: Bearer …\` on ${f(r.upstreamBearerRequests)} of the ${f(r.upstreamGatewayRequests)} requests it got during the gateway runs ` +
      `(${f(r.gatewayRequests)} gateway responses; the few extra are requests in flight when a run stopped).`,
  );
  out.push(
    `- Provider calls during the cached-token runs: **${r.providerCalls.duringCachedRuns}** (refresh grants ${r.providerCalls.before.refreshGrants} → ${r.providerCalls.after.refreshGrants}; ` +
      `code grants ${r.providerCalls.before.codeGrants} → ${r.providerCalls.after.codeGrants}).`,
  );
  if (r.accounts) {
    const a = r.accounts;
    out.push(
      `- Memory of ${f(a.count)} signed-in accounts in the memory store (one gateway process, after GC): RSS **+${f(a.rssGrowthMb, 1)} MB** after sign-in ` +
        `(session record + sealed refresh token each; heap +${f(a.heapGrowthMb, 1)} MB, ≈ ${f(a.bytesPerAccount)} bytes/account), ` +
        `RSS +${f(a.rssGrowthAfterCallMb, 1)} MB (heap +${f(a.heapGrowthAfterCallMb, 1)} MB) once each has also made an API call (one cached ${a.sizes.accessToken}-char access token). ` +
        `Created in ${f(a.ms / 1000, 1)} s${a.gcExposed ? '' : ' (without --expose-gc: figures include garbage)'}.`,
    );
  }
  if (profileText) out.push('', '## CPU profiles (--profile)', '', profileText);
  return out.join('\n') + '\n';
}

function gitState(): BenchReport['code'] {
  const git = (...args: string[]) => spawnSync('git', args, { cwd: REPO, encoding: 'utf8' });
  const head = git('rev-parse', '--short', 'HEAD');
  const status = git('status', '--porcelain', '--', 'src');
  return { commit: head.status === 0 ? head.stdout.trim() : 'unknown', srcDirty: status.status === 0 && status.stdout.trim() !== '' };
}

// ---------------------------------------------------------------------------------------
// Main

export async function runBench(opts: BenchOptions): Promise<BenchReport | undefined> {
  const cores = availableParallelism();
  const pin = opts.pin && cores >= 2 && hasTaskset();
  if (pin) spawnSync('taskset', ['-a', '-p', '-c', '1', String(process.pid)], { stdio: 'ignore' });
  const log = (s: string) => process.stderr.write(`[bench] ${s}\n`);

  if (opts.redis && !(await redisAnswers(opts.redisUrl))) {
    throw new BenchFailure(`Redis does not answer at ${opts.redisUrl}: start one (or set REDIS_URL), or run with --no-redis`);
  }

  const children: ChildHandle[] = [];
  let provider: DevProvider | undefined;
  const profileDir = join(opts.outDir, 'profiles');
  try {
    if (opts.profile) mkdirSync(profileDir, { recursive: true });
    const upstream = spawnServer('upstream', 'upstream.js', pin, { core: 1 });
    children.push(upstream);
    const upstreamUrl = `http://127.0.0.1:${await upstream.ready}`;
    const bare = spawnServer('bare proxy', 'bare-proxy.js', pin, { core: 0, env: { BENCH_UPSTREAM: upstreamUrl } });
    children.push(bare);

    const [memPort, redisPort] = await freePorts(2);
    const gatewayPorts = opts.redis ? [memPort!, redisPort!] : [memPort!];
    provider = await startDevProvider({
      clients: [
        {
          client_id: CLIENT_ID,
          client_secret: CLIENT_SECRET,
          redirect_uris: gatewayPorts.map((p) => `http://127.0.0.1:${p}/auth/callback`),
          post_logout_redirect_uris: gatewayPorts.map((p) => `http://127.0.0.1:${p}/`),
          token_endpoint_auth_method: 'client_secret_basic',
        },
      ],
      // Long-lived access tokens: every measured request is served from the token cache.
      resources: { [API_RESOURCE]: { scopes: ['api.read'], accessTokenTTL: 3600 } },
      defaultResource: API_RESOURCE,
      accessTokenTTL: 3600,
    });

    const logEnv: Record<string, string> = opts.gatewayLogLevel ? { LOG_LEVEL: opts.gatewayLogLevel } : {};
    const startGateway = (name: TargetName, port: number, cacheUrl: string) =>
      spawnServer(name, 'gateway-server.js', pin, {
        core: 0,
        env: { ...GATEWAY_ENV, ...logEnv, CACHE_URL: cacheUrl, BENCH_GATEWAY_YAML: gatewayYaml(port, provider!.issuer, upstreamUrl) },
      });
    const gwMem = startGateway('gateway-memory', memPort!, 'memory://');
    children.push(gwMem);
    const gwRedis = opts.redis ? startGateway('gateway-redis', redisPort!, opts.redisUrl) : undefined;
    if (gwRedis) children.push(gwRedis);

    const barePort = await bare.ready;
    const targets: Target[] = [];
    targets.push({ name: 'bare', handle: bare, url: `http://127.0.0.1:${barePort}`, cookie: '', expectBearer: opts.expectBearerFromBare === true });
    for (const [handle, name] of [
      [gwMem, 'gateway-memory'],
      [gwRedis, 'gateway-redis'],
    ] as const) {
      if (!handle) continue;
      const port = await handle.ready;
      const url = `http://127.0.0.1:${port}`;
      const cookie = await signIn(url, `bench-${name}`);
      // The first call redeems the refresh token for the route's token; later ones hit the cache.
      const res = await fetch(`${url}/api/small`, { headers: { cookie, 'x-csrf': '1' } });
      const text = await res.text();
      if (res.status !== 200) throw new BenchFailure(`${name}: first API call answered ${res.status}: ${text.slice(0, 300)}`);
      targets.push({ name, handle, url, cookie, expectBearer: true });
      log(`${name} on ${url}: signed in`);
    }
    // The bare proxy gets the same request headers as the gateway (it forwards them).
    targets[0]!.cookie = targets[1]!.cookie;

    if (opts.hold) {
      for (const t of targets) process.stdout.write(`${t.name}\t${t.url}/api/small\tpid ${t.handle.pid}\tcookie ${t.cookie}\n`);
      process.stdout.write(`upstream pid ${upstream.pid}; Ctrl-C ends\n`);
      await new Promise<void>((done) => process.once('SIGINT', done).once('SIGTERM', done));
      return;
    }
    if (opts.warmupMs > 0) {
      log(`warming up (${opts.warmupMs} ms per target and body)`);
      for (const t of targets) for (const body of opts.bodies) await load(`${t.url}/api/${body}`, 10, opts.warmupMs, { cookie: t.cookie, 'x-csrf': '1' });
    }

    // Profiles cover the measured runs only (not start-up, sign-in or warm-up).
    if (opts.profile) for (const t of targets) await t.handle.work('profile-start', { intervalUs: 500 });
    const providerBefore = { ...provider.counts } as unknown as Record<string, number>;
    const runs: RunResult[] = [];
    const total = opts.rounds * opts.connections.length * opts.bodies.length * targets.length;
    const started = Date.now();
    for (let round = 0; round < opts.rounds; round++) {
      for (const connections of opts.connections) {
        for (const body of opts.bodies) {
          for (const t of targets) {
            const r = await measure(t, body, connections, round, opts, upstream);
            runs.push(r);
            log(
              `[${runs.length}/${total}] round ${round + 1} ${body} c=${connections} ${t.name}: ${f(r.rps)} req/s, p50 ${f(r.p50, 2)} ms, p99 ${f(r.p99, 2)} ms, ${f(r.cpuUsPerReq)} µs CPU/req, RSS ${f(r.rssMb)} MB`,
            );
          }
        }
      }
    }
    const providerAfter = { ...provider.counts } as unknown as Record<string, number>;
    const profiles: string[] = [];
    if (opts.profile) for (const t of targets) profiles.push(await t.handle.work<string>('profile-stop', { file: join(profileDir, `${t.name}.cpuprofile`) }));
    const providerCalls = ['refreshGrants', 'codeGrants', 'clientCredentialsGrants'].reduce((s, k) => s + (providerAfter[k]! - providerBefore[k]!), 0);
    log(`measured in ${((Date.now() - started) / 1000).toFixed(0)} s`);
    if (providerCalls !== 0) throw new BenchFailure(`the provider was called ${providerCalls} times during the cached-token runs (expected 0)`);

    const gatewayRuns = runs.filter((r) => r.target !== 'bare');
    const gatewayRequests = gatewayRuns.reduce((s, r) => s + r.requests, 0);
    const upstreamBearerRequests = gatewayRuns.reduce((s, r) => s + r.upstreamBearer, 0);

    let accounts: BenchReport['accounts'];
    if (opts.accounts > 0) {
      log(`creating ${opts.accounts} signed-in accounts in a fresh gateway process (memory store)`);
      const acc = spawnServer('gateway-accounts', 'gateway-server.js', false, {
        nodeArgs: ['--expose-gc'],
        env: { ...GATEWAY_ENV, LOG_LEVEL: 'warn', CACHE_URL: 'memory://', BENCH_MODE: 'accounts', BENCH_GATEWAY_YAML: gatewayYaml(0, provider.issuer, upstreamUrl) },
      });
      children.push(acc);
      await acc.ready;
      const a = await acc.work<AccountsReport>('accounts', { count: opts.accounts });
      await acc.stop();
      const mb = (x: number) => x / 2 ** 20;
      accounts = {
        ...a,
        rssGrowthMb: mb(a.afterSignIn.rss - a.baseline.rss),
        rssGrowthAfterCallMb: mb(a.afterFirstCall.rss - a.baseline.rss),
        heapGrowthMb: mb(a.afterSignIn.heapUsed - a.baseline.heapUsed),
        heapGrowthAfterCallMb: mb(a.afterFirstCall.heapUsed - a.baseline.heapUsed),
        bytesPerAccount: (a.afterSignIn.heapUsed - a.baseline.heapUsed) / a.count,
      };
    }

    await Promise.all(children.map((c) => c.stop()));
    let profileText = '';
    for (const file of profiles) {
      const name = basename(file, '.cpuprofile');
      const served = runs.filter((r) => r.target === name).reduce((sum, r) => sum + r.requests, 0);
      profileText += summaryMarkdown(`${name} (${file})`, summarise(JSON.parse(readFileSync(file, 'utf8')), 25), served) + '\n';
    }

    const targetNames = targets.map((t) => t.name);
    const { rows, ratios } = aggregate(runs, opts, targetNames);
    const { outDir: _outDir, ...shown } = opts;
    const report: BenchReport = {
      date: new Date().toISOString(),
      options: shown,
      machine: { node: process.version, cpus: cores, cpuModel: cpus()[0]?.model ?? 'unknown', pinned: pin },
      code: gitState(),
      rows,
      ratios,
      runs,
      providerCalls: { before: providerBefore, after: providerAfter, duringCachedRuns: providerCalls },
      upstreamBearerRequests,
      upstreamGatewayRequests: gatewayRuns.reduce((s, r) => s + r.upstreamRequests, 0),
      gatewayRequests,
      accounts,
      profiles: opts.profile ? profiles : undefined,
    };
    const md = markdown(report, profileText);
    mkdirSync(opts.outDir, { recursive: true });
    const stamp = report.date.slice(0, 19).replace(/:/g, '-') + (opts.quick ? '-quick' : '');
    report.file = join(opts.outDir, `${stamp}.md`);
    writeFileSync(report.file, md);
    writeFileSync(join(opts.outDir, `${stamp}.json`), JSON.stringify(report, null, 2) + '\n');
    const latest = opts.quick ? 'latest-quick' : 'latest';
    writeFileSync(join(opts.outDir, `${latest}.md`), md);
    writeFileSync(join(opts.outDir, `${latest}.json`), JSON.stringify(report, null, 2) + '\n');
    process.stdout.write(md);
    log(`written to ${report.file} and ${join(opts.outDir, `${latest}.md`)}`);
    return report;
  } finally {
    await Promise.all(children.map((c) => c.stop(2000).catch(() => undefined)));
    await provider?.close().catch(() => undefined);
  }
}

if (process.argv[1] && fileURLToPath(import.meta.url) === resolve(process.argv[1])) {
  let opts: BenchOptions;
  try {
    opts = parseArgs(process.argv.slice(2));
  } catch (err) {
    process.stderr.write(`${(err as Error).message}\n`);
    process.exit(2);
  }
  runBench(opts).then(
    () => process.exit(0),
    (err: Error) => {
      process.stderr.write(`\nBENCHMARK FAILED: ${err instanceof BenchFailure ? err.message : (err.stack ?? err.message)}\n`);
      process.exit(1);
    },
  );
}
