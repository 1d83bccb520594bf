import t from 'tap';
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort } from '../helpers/stack.js';

const CLI = 'dist/src/cli.js';

t.test('the gateway keeps running and reports not ready when the provider is down at startup (bug: it used to exit 0)', async (t) => {
  t.ok(existsSync(CLI), 'npm test builds dist first');
  const port = await freePort();
  const deadIssuer = `http://127.0.0.1:${await freePort()}`;
  const dir = mkdtempSync(join(tmpdir(), 'bff-cli-'));
  const file = join(dir, 'routes.yaml');
  writeFileSync(
    file,
    `listen: { host: 127.0.0.1, port: ${port} }
publicUrl: http://127.0.0.1:${port}
identity: { provider: oidc, issuer: "${deadIssuer}", allowInsecureRequests: true, clientId: c, clientSecret: s, timeout: 1s }
session: { secret: "session-secret-0123456789abcdef-0123456789" }
tokenCache: { encryptionKey: "cache-key-0123456789abcdef-0123456789abc" }
routes:
  - { prefix: /, upstream: "http://127.0.0.1:9", auth: none }
`,
  );
  const child = spawn(process.execPath, [CLI, '--config', file], { stdio: ['ignore', 'pipe', 'pipe'] });
  let exited: number | null = null;
  child.on('exit', (code) => (exited = code));
  t.teardown(() => {
    if (exited === null) child.kill('SIGKILL');
  });
  let health = 0;
  for (let i = 0; i < 100 && health !== 200; i++) {
    await new Promise((r) => setTimeout(r, 100));
    health = await fetch(`http://127.0.0.1:${port}/healthz`).then((r) => r.status, () => 0);
  }
  t.equal(health, 200, 'it listens');
  t.equal(exited, null, 'it has not exited');
  t.equal((await fetch(`http://127.0.0.1:${port}/readyz`)).status, 503, 'not ready without provider metadata');
  const login = await fetch(`http://127.0.0.1:${port}/auth/login`, { redirect: 'manual' });
  t.equal(login.status, 503, 'sign-in answers 503 until the provider is reachable');
  t.equal(login.headers.get('content-type')?.split(';')[0], 'application/problem+json');
  child.kill('SIGTERM');
  const code = await new Promise((r) => (exited !== null ? r(exited) : child.once('exit', r)));
  t.equal(code, 0, 'SIGTERM exits 0');
});
