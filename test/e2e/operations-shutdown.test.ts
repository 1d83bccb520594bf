import t from 'tap';
import { Agent, request } from 'undici';
import { GRACE_MS, fixture, runCli, sleep, tryConnect, waitUntilListening } from '../helpers/cli.js';
import { CLIENT_ID, freePort } from '../helpers/stack.js';

t.test('SIGTERM lets an in-flight request finish, refuses new connections and exits 0 within the grace period', async (t) => {
  const f = await fixture(t);
  const cli = runCli(t, f.file, f.port);
  await waitUntilListening(cli);

  let slowDone = false;
  const slow = fetch(`${cli.url}/slow-api/slow`, { headers: { 'x-csrf': '1', 'sec-fetch-site': 'same-origin' } }).then(async (res) => {
    slowDone = true;
    return { status: res.status, body: (await res.json()) as Record<string, unknown>, at: Date.now() };
  });
  for (let i = 0; i < 200 && !f.api.received.some((r) => r.url === '/slow'); i++) await sleep(10);
  t.ok(f.api.received.some((r) => r.url === '/slow'), 'the slow request reached the upstream');

  const termAt = Date.now();
  cli.child.kill('SIGTERM');

  let refused = '';
  for (let i = 0; i < 100 && !slowDone; i++) {
    const result = await tryConnect(f.port);
    if (result === 'ECONNREFUSED') {
      refused = result;
      break;
    }
    await sleep(10);
  }
  t.equal(refused, 'ECONNREFUSED', 'new connections are refused while the slow request is still in flight');
  t.notOk(slowDone, 'the slow request had not finished when connections were already refused');

  const done = await slow;
  t.equal(done.status, 200, 'the in-flight request completes');
  t.equal(done.body.path, '/slow');
  t.equal(done.body.client_id, CLIENT_ID, 'with its token');
  t.ok(done.at - termAt >= 1000, 'it finished after SIGTERM (the upstream takes 1.5 s)');

  const exit = await cli.exited;
  t.same({ code: exit.code, signal: exit.signal }, { code: 0, signal: null }, 'exit code 0');
  t.ok(exit.at - termAt < GRACE_MS, `exited within the grace period (${exit.at - termAt} ms)`);

  t.equal(await tryConnect(f.port), 'ECONNREFUSED', 'nothing listens any more');

  const records = cli.records();
  t.ok(records.some((r) => r.msg === 'shutting down' && r.signal === 'SIGTERM'), 'the shutdown is logged');
  t.ok(records.some((r) => r.msg === 'stopped'), 'the stop is logged');
  const slowLine = records.find((r) => r.msg === 'request' && r.path === '/slow-api/slow');
  t.equal(slowLine?.status, 200, 'the slow request is logged with its status');
  t.type(slowLine?.reqId, 'string', 'and its reqId');
  t.same(cli.stderr, [], 'nothing on stderr');
});

t.test('a request that outlives the grace period is cut off and the process exits 0 when the grace period ends', async (t) => {
  const f = await fixture(t, { slowMs: 8000, grace: '1s' });
  const cli = runCli(t, f.file, f.port);
  await waitUntilListening(cli);
  const slow = fetch(`${cli.url}/slow-api/slow`, { headers: { 'x-csrf': '1', 'sec-fetch-site': 'same-origin' } }).then(
    async (res) => ({ status: res.status, text: await res.text() }),
    (err: Error) => ({ error: err }),
  );
  for (let i = 0; i < 200 && !f.api.received.some((r) => r.url === '/slow'); i++) await sleep(10);
  t.ok(f.api.received.some((r) => r.url === '/slow'), 'the slow request reached the upstream');
  const termAt = Date.now();
  cli.child.kill('SIGTERM');
  const exit = await cli.exited;
  t.same({ code: exit.code, signal: exit.signal }, { code: 0, signal: null }, 'exit code 0');
  t.ok(exit.at - termAt >= 900, `not before the grace period ended (${exit.at - termAt} ms)`);
  t.ok(exit.at - termAt < 5000, `soon after it ended, not when the upstream answers (${exit.at - termAt} ms)`);
  const result = await slow;
  t.ok('error' in result, 'the cut-off request fails on the client side');
  t.ok(cli.records().some((r) => r.msg === 'grace period over: closing remaining connections'), 'the cut is logged');
});

t.test('a keep-alive connection whose request finished during the drain does not hold the process until the client lets go', async (t) => {
  const f = await fixture(t);
  const cli = runCli(t, f.file, f.port);
  await waitUntilListening(cli);
  // Browsers keep idle connections for minutes; so does this client.
  const browserLike = new Agent({ keepAliveTimeout: 120_000, keepAliveMaxTimeout: 120_000 });
  t.teardown(() => browserLike.destroy());
  const slow = request(`${cli.url}/slow-api/slow`, { dispatcher: browserLike, headers: { 'x-csrf': '1', 'sec-fetch-site': 'same-origin' } }).then(async (res) => {
    await res.body.text();
    return { status: res.statusCode, at: Date.now() };
  });
  for (let i = 0; i < 200 && !f.api.received.some((r) => r.url === '/slow'); i++) await sleep(10);
  t.ok(f.api.received.some((r) => r.url === '/slow'), 'the slow request reached the upstream');
  cli.child.kill('SIGTERM');
  const done = await slow;
  t.equal(done.status, 200, 'the in-flight request completes');
  const exit = await cli.exited;
  t.same({ code: exit.code, signal: exit.signal }, { code: 0, signal: null });
  t.ok(exit.at - done.at < 2000, `exited ${exit.at - done.at} ms after the last response, without waiting for the client to drop its idle connection`);
  t.notOk(cli.records().some((r) => r.msg === 'grace period over: closing remaining connections'), 'no connection had to be cut');
});

t.test('a second SIGTERM during the drain does not cut the in-flight request short', async (t) => {
  const f = await fixture(t);
  const cli = runCli(t, f.file, f.port);
  await waitUntilListening(cli);
  const slow = fetch(`${cli.url}/slow-api/slow`, { headers: { 'x-csrf': '1', 'sec-fetch-site': 'same-origin' } }).then(
    async (res) => ({ status: res.status }),
    (err: Error) => ({ error: err.message }),
  );
  for (let i = 0; i < 200 && !f.api.received.some((r) => r.url === '/slow'); i++) await sleep(10);
  t.ok(f.api.received.some((r) => r.url === '/slow'), 'the slow request reached the upstream');
  cli.child.kill('SIGTERM');
  await sleep(200);
  cli.child.kill('SIGTERM');
  t.same(await slow, { status: 200 }, 'the in-flight request still completes');
  const exit = await cli.exited;
  t.same({ code: exit.code, signal: exit.signal }, { code: 0, signal: null }, 'exit code 0, not killed by the signal');
});

t.test('a second SIGINT during the drain stops at once (a developer pressing Ctrl-C twice)', async (t) => {
  const f = await fixture(t);
  const cli = runCli(t, f.file, f.port);
  await waitUntilListening(cli);
  const slow = fetch(`${cli.url}/slow-api/slow`, { headers: { 'x-csrf': '1', 'sec-fetch-site': 'same-origin' } }).then(
    (res) => `status ${res.status}`,
    () => 'cut off',
  );
  for (let i = 0; i < 200 && !f.api.received.some((r) => r.url === '/slow'); i++) await sleep(10);
  const firstAt = Date.now();
  cli.child.kill('SIGINT');
  await sleep(100);
  cli.child.kill('SIGINT');
  const exit = await cli.exited;
  t.same({ code: exit.code, signal: exit.signal }, { code: 130, signal: null }, 'exit code 130, not killed by the signal');
  t.equal(await slow, 'cut off', `without waiting for the slow request (exited after ${exit.at - firstAt} ms)`);
  t.ok(cli.records().some((r) => r.msg === 'second SIGINT: stopping at once'), 'said so in the log');
});

t.test('a gateway with metrics on a separate port starts, serves them there and stops cleanly', async (t) => {
  const metricsPort = await freePort();
  const f = await fixture(t, { top: `metrics: { port: ${metricsPort} }` });
  const cli = runCli(t, f.file, f.port);
  await waitUntilListening(cli);
  const user = await fetch(cli.url + '/auth/user');
  await user.arrayBuffer();
  const res = await fetch(`http://127.0.0.1:${metricsPort}/metrics`);
  t.equal(res.status, 200);
  t.match(res.headers.get('content-type'), /^text\/plain; version=0\.0\.4/);
  const text = await res.text();
  t.match(text, /^bff_requests_total\{route="auth",status="401"\} 1$/m, 'the gateway\'s metrics');
  t.match(text, /^process_cpu_user_seconds_total /m);
  const main = await fetch(cli.url + '/metrics');
  t.notMatch(await main.text(), /bff_requests_total/, 'not on the main port');
  t.equal(cli.child.exitCode, null, 'still running');
  cli.child.kill('SIGTERM');
  const exit = await cli.exited;
  t.same({ code: exit.code, signal: exit.signal }, { code: 0, signal: null });
  t.equal(await tryConnect(metricsPort), 'ECONNREFUSED', 'the metrics port is closed too');
  t.same(cli.stderr, [], 'nothing on stderr');
});

t.test('SIGTERM with no traffic exits 0 quickly', async (t) => {
  const f = await fixture(t);
  const cli = runCli(t, f.file, f.port);
  await waitUntilListening(cli);
  const termAt = Date.now();
  cli.child.kill('SIGTERM');
  const exit = await cli.exited;
  t.same({ code: exit.code, signal: exit.signal }, { code: 0, signal: null });
  t.ok(exit.at - termAt < 3000, `exited quickly (${exit.at - termAt} ms)`);
  t.equal(await tryConnect(f.port), 'ECONNREFUSED');
});
