// Runs `npm run bench` in --quick mode with tiny runs and checks that it works end to end:
// real processes, a real sign-in, Redis when there is one, sane numbers, a results file,
// exit code 0. It says nothing about performance; bench/README.md explains the figures.
import t from 'tap';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createConnection } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const runJs = join(root, 'dist', 'bench', 'run.js');
const redisUrl = process.env.REDIS_URL || 'redis://127.0.0.1:6379';

function redisAnswers(url: string): Promise<boolean> {
  const u = new URL(url);
  return new Promise((done) => {
    const s = createConnection({ host: u.hostname, port: Number(u.port || 6379) }, () => s.write('PING\r\n'));
    s.setTimeout(1000, () => {
      s.destroy();
      done(false);
    });
    s.once('data', (d) => {
      s.destroy();
      done(d.toString().includes('PONG'));
    });
    s.once('error', () => done(false));
  });
}

function run(args: string[], timeoutMs: number): Promise<{ code: number | null; stdout: string; stderr: string }> {
  // tap's loader (NODE_OPTIONS) must not follow the benchmark into its server processes.
  const { NODE_OPTIONS: _drop, ...env } = process.env;
  return new Promise((done) => {
    const child = spawn(process.execPath, [runJs, ...args], { cwd: root, env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.on('exit', (code) => {
      clearTimeout(timer);
      done({ code, stdout, stderr });
    });
  });
}

interface Row {
  target: string;
  body: string;
  connections: number;
  rps: number;
  p50: number;
  p99: number;
  cpuUsPerReq: number;
  rssMb: number;
  runs: number;
}

t.before(() => {
  // `npm test` builds first; a bare `tap` run may not have.
  if (!existsSync(runJs)) {
    const r = spawnSync(process.execPath, [join(root, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', root], { stdio: 'inherit' });
    if (r.status !== 0) throw new Error('tsc failed');
  }
});

t.test('npm run bench --quick: runs every target, writes the results, numbers are sane', async (t) => {
  const withRedis = await redisAnswers(redisUrl);
  const out = mkdtempSync(join(tmpdir(), 'bff-bench-'));
  t.teardown(() => rmSync(out, { recursive: true, force: true }));
  const args = ['--quick', '--duration-ms', '400', '--warmup-ms', '150', '--accounts', '2000', '--out-dir', out];
  if (!withRedis) args.push('--no-redis');
  const res = await run(args, 90_000);
  t.equal(res.code, 0, `exit code 0\n${res.stderr.slice(-3000)}`);

  const report = JSON.parse(readFileSync(join(out, 'latest-quick.json'), 'utf8')) as {
    file: string;
    rows: Row[];
    ratios: Array<Record<string, number | string>>;
    providerCalls: { duringCachedRuns: number };
    upstreamBearerRequests: number;
    gatewayRequests: number;
    accounts: { count: number; heapGrowthMb: number; rssGrowthMb: number; bytesPerAccount: number };
  };
  t.ok(existsSync(report.file), 'the dated results file is written');
  t.match(report.file, /\d{4}-\d\d-\d\dT\d\d-\d\d-\d\d-quick\.md$/);
  const md = readFileSync(report.file, 'utf8');
  t.equal(readFileSync(join(out, 'latest-quick.md'), 'utf8'), md, 'latest-quick.md is the same table');
  t.match(md, /\| body \| conns \| target \| req\/s \| p50 ms \| p99 ms \| CPU µs\/req \| RSS MB \|/);
  t.ok(res.stdout.includes(md), 'the table is printed');

  const targets = withRedis ? ['bare', 'gateway-memory', 'gateway-redis'] : ['bare', 'gateway-memory'];
  t.same([...new Set(report.rows.map((r) => r.target))], targets, 'every target measured');
  t.same([...new Set(report.rows.map((r) => r.connections))], [10], 'quick: 10 connections only');
  t.same([...new Set(report.rows.map((r) => r.body))], ['small', 'large'], 'both bodies');
  for (const r of report.rows) {
    const what = `${r.target} ${r.body}`;
    t.equal(r.runs, 1, `${what}: one round`);
    t.ok(r.rps > 0 && Number.isFinite(r.rps), `${what}: requests/s ${r.rps} > 0`);
    t.ok(r.cpuUsPerReq > 0 && Number.isFinite(r.cpuUsPerReq), `${what}: CPU per request ${r.cpuUsPerReq} µs > 0`);
    t.ok(r.p50 > 0 && r.p99 >= r.p50, `${what}: p50 ${r.p50} ≤ p99 ${r.p99}`);
    t.ok(r.rssMb > 10 && r.rssMb < 4096, `${what}: RSS ${r.rssMb} MB`);
  }
  t.equal(report.ratios.length, 2);
  for (const ratio of report.ratios) {
    for (const [k, v] of Object.entries(ratio)) {
      if (k === 'body' || k === 'connections') continue;
      t.ok(typeof v === 'number' && Number.isFinite(v) && v > 0, `ratio ${k} (${ratio.body}) = ${v} is finite`);
    }
    if (withRedis) t.ok('cpuRedisOverMemory' in ratio, 'redis/memory ratio present');
  }
  t.equal(report.providerCalls.duringCachedRuns, 0, 'no provider call during the cached-token runs');
  t.ok(report.gatewayRequests > 0 && report.upstreamBearerRequests >= report.gatewayRequests, 'the upstream got a bearer token on every gateway request');
  t.equal(report.accounts.count, 2000);
  t.ok(report.accounts.heapGrowthMb > 0 && report.accounts.bytesPerAccount > 100, `accounts grow the heap (${report.accounts.bytesPerAccount} bytes/account)`);
  t.match(md, /Provider calls during the cached-token runs: \*\*0\*\*/);
  t.match(md, /Memory of 2,000 signed-in accounts/);
});

t.test('fails loudly when a store it needs is missing', async (t) => {
  const out = mkdtempSync(join(tmpdir(), 'bff-bench-'));
  t.teardown(() => rmSync(out, { recursive: true, force: true }));
  const res = await run(['--quick', '--duration-ms', '200', '--redis-url', 'redis://127.0.0.1:1', '--out-dir', out], 30_000);
  t.equal(res.code, 1);
  t.match(res.stderr, /BENCHMARK FAILED: Redis does not answer at redis:\/\/127\.0\.0\.1:1/);
  t.notOk(existsSync(join(out, 'latest-quick.md')), 'no results written');
});

t.test('fails loudly when the upstream does not get a bearer token', async (t) => {
  // The bare proxy injects none: told to expect one, the check must stop the run.
  const out = mkdtempSync(join(tmpdir(), 'bff-bench-'));
  t.teardown(() => rmSync(out, { recursive: true, force: true }));
  const res = await run(['--quick', '--duration-ms', '200', '--warmup-ms', '0', '--no-redis', '--accounts', '0', '--bodies', 'small', '--expect-bearer-from-bare', '--out-dir', out], 60_000);
  t.equal(res.code, 1, res.stderr.slice(-2000));
  t.match(res.stderr, /BENCHMARK FAILED: bare \/api\/small 10 conn\. round 1: the upstream got Authorization: Bearer on 0 of \d+ requests/);
  t.notOk(existsSync(join(out, 'latest-quick.md')), 'no results written');
});

t.test('refuses unknown options', async (t) => {
  const res = await run(['--durations', '5'], 10_000);
  t.equal(res.code, 2);
  t.match(res.stderr, /unknown option --durations/);
});
