import t from 'tap';
import { existsSync } from 'node:fs';
import { readFile, writeFile } from 'node:fs/promises';
import { CLI, SECRETS, fixture, runCli, sleep, tryConnect, waitUntilListening } from '../helpers/cli.js';

t.test('the compiled CLI exists (npm test builds before it runs the tests)', async (t) => {
  t.ok(existsSync(CLI), `${CLI} exists; run \`npm run build\` first`);
});

t.test('LOG_LEVEL overrides the config level, and request log lines carry their reqId', async (t) => {
  const f = await fixture(t);
  const cli = runCli(t, f.file, f.port, { LOG_LEVEL: 'warn' });
  await waitUntilListening(cli);
  const user = await fetch(cli.url + '/auth/user');
  t.equal(user.status, 401);
  await user.arrayBuffer();
  const spa = await fetch(cli.url + '/index.html');
  await spa.arrayBuffer();
  const gone = await fetch(cli.url + '/gone/x');
  t.equal(gone.status, 502, 'an unreachable upstream answers 502');
  await gone.arrayBuffer();
  cli.child.kill('SIGTERM');
  t.equal((await cli.exited).code, 0);

  const records = cli.records();
  t.same(records.filter((r) => (r.level as number) < 40), [], 'no line below warn although the config says info');
  const warning = records.find((r) => r.msg === 'upstream failed');
  t.ok(warning, 'warnings are still written');
  t.type(warning?.reqId, 'string', 'the warning of a request carries its reqId');
  t.equal(warning?.level, 40);
  t.notMatch(cli.stdout.join('\n'), new RegExp(Object.values(SECRETS).join('|')), 'no secret in the logs');
});

t.test('without LOG_LEVEL the config level applies: every request is logged at info with a reqId', async (t) => {
  const f = await fixture(t);
  const cli = runCli(t, f.file, f.port);
  await waitUntilListening(cli);
  for (const path of ['/auth/user', '/index.html', '/gone/x', '/healthz', '/readyz']) await (await fetch(cli.url + path)).arrayBuffer();
  cli.child.kill('SIGTERM');
  t.equal((await cli.exited).code, 0);
  const records = cli.records();
  const requests = records.filter((r) => r.msg === 'request');
  t.same(requests.map((r) => r.path).sort(), ['/auth/user', '/gone/x', '/index.html'], 'one info line per request; probes are not logged');
  t.ok(requests.every((r) => r.level === 30 && typeof r.reqId === 'string'), 'each at info with a reqId');
  t.equal(new Set(requests.map((r) => r.reqId)).size, 3, 'distinct reqIds');
  const warning = records.find((r) => r.msg === 'upstream failed');
  t.equal(warning?.reqId, requests.find((r) => r.path === '/gone/x')?.reqId, 'the warning carries the reqId of its request');
});

t.test('an unknown LOG_LEVEL is refused before listening with a message naming the valid levels', async (t) => {
  const f = await fixture(t);
  const cli = runCli(t, f.file, f.port, { LOG_LEVEL: 'warning' });
  const attempts: string[] = [];
  while (cli.child.exitCode === null && cli.child.signalCode === null) {
    attempts.push(await tryConnect(f.port));
    await sleep(5);
  }
  const exit = await cli.exited;
  t.same({ code: exit.code, signal: exit.signal }, { code: 1, signal: null }, 'exit code 1');
  t.ok(attempts.every((a) => a === 'ECONNREFUSED'), 'nothing listened on the port');
  t.match(cli.stderr.join('\n'), /log level "warning" \(LOG_LEVEL or logging\.level\) is not one of fatal, error, warn, info, debug, trace, silent/);
});

t.test('startup refuses a broken config with FILE:LINE:COL messages and exit code 1, before listening', async (t) => {
  const f = await fixture(t, { extra: '  - prefix: /broken\n    upstream: http://127.0.0.1:1\n    auth: sometimes\n' });
  const port = f.port;
  // Line 3 gets an unknown key.
  const lines = (await readFile(f.file, 'utf8')).split('\n');
  lines.splice(2, 0, 'shutdownGracePerod: 10s');
  await writeFile(f.file, lines.join('\n'));
  const authLine = lines.findIndex((l) => l.includes('auth: sometimes')) + 1;

  const cli = runCli(t, f.file, port);
  const attempts: string[] = [];
  while (cli.child.exitCode === null && cli.child.signalCode === null) {
    attempts.push(await tryConnect(port));
    await sleep(5);
  }
  const exit = await cli.exited;
  t.same({ code: exit.code, signal: exit.signal }, { code: 1, signal: null }, 'exit code 1');
  t.ok(attempts.length > 0 && attempts.every((a) => a === 'ECONNREFUSED'), `nothing listened on the port while it ran (${attempts.length} attempts)`);
  t.equal(await tryConnect(port), 'ECONNREFUSED');
  const stderr = cli.stderr.join('\n');
  t.match(stderr, new RegExp(`^${escape(f.file)}:3:1 .*shutdownGracePerod`, 'm'), 'the unknown key, at its line and column');
  t.match(stderr, new RegExp(`^${escape(f.file)}:${authLine}:\\d+ .*auth`, 'm'), 'the bad auth value, at its line');
  t.ok(cli.stderr.every((l) => /^.+:\d+:\d+ /.test(l)), `every stderr line is FILE:LINE:COL message:\n${stderr}`);
  t.same(cli.stdout, [], 'no log line: the gateway never started');
  t.equal(f.provider.counts.codeGrants + f.provider.counts.clientCredentialsGrants, 0);
});

function escape(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}
