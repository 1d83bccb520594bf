/** Runs the built CLI (dist/src/cli.js) as a child process against a provider and an API started in the test. */
import type { Test } from 'tap';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { startDevProvider, type DevProvider } from '../../examples/demo/provider.js';
import { startSampleApi, type SampleApi } from '../../examples/demo/api.js';
import { API_RESOURCE, CLIENT_ID, CLIENT_SECRET, freePort } from './stack.js';

export const CLI = resolve('dist/src/cli.js');
export const SECRETS = {
  CLIENT_SECRET,
  SESSION_SECRET: 'session-secret-for-tests-0123456789abcdef',
  CACHE_KEY: 'cache-key-for-tests-0123456789abcdef-xyz',
};
export const GRACE_MS = 10_000;

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export interface Cli {
  child: ChildProcess;
  port: number;
  url: string;
  stdout: string[];
  stderr: string[];
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null; at: number }>;
  records(): Array<Record<string, unknown>>;
}

/** Runs the built CLI as a child process, the way a container runs it. */
export function runCli(t: Test, configFile: string, port: number, env: Record<string, string> = {}): Cli {
  const childEnv: NodeJS.ProcessEnv = { ...process.env, ...SECRETS, ...env };
  if (!('LOG_LEVEL' in env)) delete childEnv.LOG_LEVEL;
  delete childEnv.BFF_CONFIG;
  const child = spawn(process.execPath, [CLI, '--config', configFile], { env: childEnv, stdio: ['ignore', 'pipe', 'pipe'] });
  const stdout: string[] = [];
  const stderr: string[] = [];
  const collect = (into: string[]) => {
    let rest = '';
    return (chunk: Buffer) => {
      const parts = (rest + chunk.toString('utf8')).split('\n');
      rest = parts.pop()!;
      into.push(...parts.filter(Boolean));
    };
  };
  child.stdout!.on('data', collect(stdout));
  child.stderr!.on('data', collect(stderr));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null; at: number }>((resolve) =>
    child.once('exit', (code, signal) => resolve({ code, signal, at: Date.now() })),
  );
  t.teardown(async () => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGKILL');
      await exited;
    }
  });
  return {
    child,
    port,
    url: `http://127.0.0.1:${port}`,
    stdout,
    stderr,
    exited,
    records: () => stdout.map((l) => JSON.parse(l) as Record<string, unknown>),
  };
}

/** Polls /healthz until the gateway answers (or the process dies). */
export async function waitUntilListening(cli: Cli): Promise<void> {
  for (let i = 0; i < 300; i++) {
    if (cli.child.exitCode !== null) throw new Error(`the gateway exited with ${cli.child.exitCode}: ${cli.stderr.join('\n')} ${cli.stdout.join('\n')}`);
    const ok = await fetch(cli.url + '/healthz').then(
      (r) => r.status === 200,
      () => false,
    );
    if (ok) return;
    await sleep(50);
  }
  throw new Error('the gateway did not start listening');
}

/** Resolves with the error code of a fresh TCP connection to the port, or 'connected'. */
export function tryConnect(port: number): Promise<string> {
  return new Promise((resolve) => {
    const socket = connect({ port, host: '127.0.0.1' });
    socket.once('connect', () => {
      socket.destroy();
      resolve('connected');
    });
    socket.once('error', (err: NodeJS.ErrnoException) => resolve(err.code ?? err.message));
  });
}

export interface Fixture {
  provider: DevProvider;
  api: SampleApi;
  dir: string;
  port: number;
  file: string;
}

export async function fixture(t: Test, opts: { extra?: string; slowMs?: number; grace?: string; top?: string } = {}): Promise<Fixture> {
  const port = await freePort();
  const publicUrl = `http://127.0.0.1:${port}`;
  const provider = await startDevProvider({
    clients: [{ client_id: CLIENT_ID, client_secret: CLIENT_SECRET, redirect_uris: [`${publicUrl}/auth/callback`], token_endpoint_auth_method: 'client_secret_basic' }],
    resources: { [API_RESOURCE]: { scopes: ['api.read', 'api.write'] } },
    defaultResource: API_RESOURCE,
  });
  t.teardown(() => provider.close());
  const api = await startSampleApi({ issuer: provider.issuer, audience: API_RESOURCE, slowMs: opts.slowMs ?? 1500 });
  t.teardown(() => api.close());
  const dir = await mkdtemp(join(tmpdir(), 'bff-ops-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const file = join(dir, 'routes.yaml');
  const deadUpstream = `http://127.0.0.1:${await freePort()}`;
  await writeFile(
    file,
    `listen: { host: 127.0.0.1, port: ${port} }
publicUrl: ${publicUrl}
shutdownGracePeriod: ${opts.grace ?? '10s'}
logging: { level: info }
${opts.top ?? ''}
identity:
  provider: oidc
  issuer: ${provider.issuer}
  allowInsecureRequests: true
  clientId: ${CLIENT_ID}
  clientSecret: \${CLIENT_SECRET}
  scopes: [openid, profile, offline_access, api.read]
session:
  secret: \${SESSION_SECRET}
tokenCache:
  encryptionKey: \${CACHE_KEY}
routes:
  # The sample API verifies a bearer token on every path, /slow included, so the route
  # to it gets an app token (client credentials) rather than none.
  - name: slow
    prefix: /slow-api
    rewritePrefix: /
    upstream: ${api.url}
    auth: client
    scopes: [api.write]
    resource: ${API_RESOURCE}
  - name: gone
    prefix: /gone
    upstream: ${deadUpstream}
    auth: none
  - name: spa
    prefix: /
    upstream: ${api.url}
    auth: none
${opts.extra ?? ''}`,
  );
  return { provider, api, dir, port, file };
}
