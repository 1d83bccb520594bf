/**
 * `npm run demo` as a process: it prints where to go and how to sign in, serves the SPA
 * through the gateway, stops cleanly on Ctrl-C / SIGTERM, and explains a busy port.
 */
import t from 'tap';
import { spawn, type ChildProcess } from 'node:child_process';
import { createServer, type Server } from 'node:net';
import { fileURLToPath } from 'node:url';
import { DEV_LOGIN_HINT } from '../../examples/demo/provider.js';
import { freePort } from '../helpers/stack.js';

const RUN_TS = fileURLToPath(new URL('../../examples/demo/run.ts', import.meta.url));
// The TypeScript loader tap runs this file with, so that the child runs run.ts directly.
const LOADER_ARGS = process.execArgv.filter((a) => a.includes('@tapjs/typescript'));

interface Demo {
  child: ChildProcess;
  stdout(): string;
  stderr(): string;
  exit: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

function runDemo(env: Record<string, string>): Demo {
  const child = spawn(process.execPath, [...LOADER_ARGS, RUN_TS], {
    // Transpile only: the test suite type-checks these files already; this keeps the start quick.
    env: { ...process.env, ...env, FORCE_COLOR: '0', TS_NODE_TRANSPILE_ONLY: '1' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  let err = '';
  child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (err += d.toString()));
  const exit = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })));
  return { child, stdout: () => out, stderr: () => err, exit };
}

async function waitFor(what: string, check: () => boolean, demo: Demo, ms = 90_000): Promise<void> {
  const until = Date.now() + ms;
  while (!check()) {
    if (demo.child.exitCode !== null) throw new Error(`the demo exited (${demo.child.exitCode}) before ${what}:\n${demo.stdout()}\n${demo.stderr()}`);
    if (Date.now() > until) throw new Error(`timed out waiting for ${what}:\n${demo.stdout()}\n${demo.stderr()}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  t.test(`the demo prints the URL and how to sign in, serves the SPA through the gateway, and exits 0 on ${signal}`, async (t) => {
    const port = await freePort();
    const demo = runDemo({ PORT: String(port) });
    t.teardown(() => {
      if (demo.child.exitCode === null && demo.child.signalCode === null) demo.child.kill('SIGKILL');
    });
    await waitFor('the banner', () => demo.stdout().includes('Press Ctrl-C to stop'), demo);
    t.match(demo.stdout(), `http://localhost:${port}/`, 'it prints the URL to open');
    t.ok(demo.stdout().includes(DEV_LOGIN_HINT), 'and how to sign in');

    const spa = await fetch(`http://127.0.0.1:${port}/`);
    t.equal(spa.status, 200, 'the gateway serves the SPA');
    t.match(await spa.text(), /bff-gateway demo/, 'the page is the demo SPA');
    const user = await fetch(`http://127.0.0.1:${port}/auth/user`);
    t.equal(user.status, 401, '/auth/user answers 401 before sign-in');
    await user.body?.cancel();
    const api = await fetch(`http://127.0.0.1:${port}/api/whoami`, { headers: { 'x-csrf': '1' } });
    t.equal(api.status, 401, 'the API route wants a session');
    t.match(await api.json(), { error: 'session_expired', loginUrl: /^\/auth\/login/ }, 'a problem+json with a loginUrl');

    demo.child.kill(signal);
    const started = Date.now();
    const { code } = await demo.exit;
    t.equal(code, 0, `${signal} stops everything with exit code 0`);
    t.ok(Date.now() - started < 10_000, 'promptly');
    t.match(demo.stdout(), /stopped/, 'it says it stopped');
    await t.rejects(fetch(`http://127.0.0.1:${port}/healthz`), 'the gateway no longer listens');
  });
}

t.test('a busy gateway port gets a message naming the port and how to choose another', async (t) => {
  const port = await freePort();
  const blocker: Server = createServer();
  await new Promise<void>((resolve) => blocker.listen(port, '127.0.0.1', resolve));
  t.teardown(() => new Promise<void>((resolve) => blocker.close(() => resolve())));

  const demo = runDemo({ PORT: String(port) });
  t.teardown(() => {
    if (demo.child.exitCode === null) demo.child.kill('SIGKILL');
  });
  const { code } = await demo.exit;
  t.equal(code, 1, 'it exits 1');
  t.match(demo.stderr(), `Port ${port} is already in use`, 'it says which port is in use');
  t.match(demo.stderr(), new RegExp(`PORT=\\d+ npm run demo`), 'and how to choose another one');
});

t.test('a PORT that is not a port number is refused with an example', async (t) => {
  const demo = runDemo({ PORT: 'eighty' });
  const { code } = await demo.exit;
  t.equal(code, 1, 'it exits 1');
  t.match(demo.stderr(), /PORT=eighty is not a port number/, 'it says what is wrong with PORT');
});
