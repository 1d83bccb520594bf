/**
 * The Entra back end end to end: the development provider over https (MSAL refuses http
 * authorities) with a CA of the test's own, configured as a known authority (MSAL's OIDC
 * protocol mode), sample APIs that trust that CA, and gateways run as child processes
 * (`node dist/src/cli.js --config file`) that trust the CA through NODE_EXTRA_CA_CERTS.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { exportJWK, importX509 } from 'jose';
import { Agent, fetch as undiciFetch } from 'undici';
import { startDevProvider, type DevProvider } from '../../examples/demo/provider.js';
import { startSampleApi, type SampleApi } from '../../examples/demo/api.js';
import { signIn, type SignInOptions, type SignInResult } from './browserless.js';
import { createTestPki, type TestPki } from './entra-ca.js';
import { freePort } from './stack.js';

export const CLI = 'dist/src/cli.js';
export const SECRET_CLIENT = 'bff';
export const CERT_CLIENT = 'bff-cert';
export const CLIENT_SECRET = 'entra-test-client-secret-0123456789abcdef';
export const API_RESOURCE = 'https://api.example.test';
export const OTHER_RESOURCE = 'https://other.example.test';
/** A second resource offering api.read: the same scope, another audience. */
export const API2_RESOURCE = 'https://api2.example.test';
export const SESSION_SECRET = 'entra-session-secret-for-tests-0123456789';

export interface EntraEnv {
  pki: TestPki;
  provider: DevProvider;
  /** Trusts the test CA: for the provider's pages (and plain http to the gateways). */
  agent: Agent;
  /** fetch that trusts the test CA. */
  fetch: typeof globalThis.fetch;
  api: SampleApi;
  otherApi: SampleApi;
  /** Ports reserved for gateways (registered as redirect URIs at the provider). */
  ports: number[];
  close(): Promise<void>;
}

/** A provider with two clients (secret and private_key_jwt certificate) and two verifying APIs. */
export async function startEntraEnv(gateways = 1): Promise<EntraEnv> {
  const pki = createTestPki();
  const ports: number[] = [];
  for (let i = 0; i < gateways; i++) ports.push(await freePort());
  const urls = ports.map((p) => `http://127.0.0.1:${p}`);
  const certJwk = await exportJWK(await importX509(pki.clientCert, 'PS256', { extractable: true }));
  const common = {
    redirect_uris: urls.map((u) => `${u}/auth/callback`),
    post_logout_redirect_uris: urls.map((u) => `${u}/`),
  };
  const provider = await startDevProvider({
    https: { key: pki.serverKey, cert: pki.serverCert },
    clients: [
      { client_id: SECRET_CLIENT, client_secret: CLIENT_SECRET, token_endpoint_auth_method: 'client_secret_basic', ...common },
      { client_id: CERT_CLIENT, token_endpoint_auth_method: 'private_key_jwt', jwks: { keys: [certJwk] }, ...common },
    ],
    resources: { [API_RESOURCE]: { scopes: ['api.read', 'api.write'] }, [OTHER_RESOURCE]: { scopes: ['other.read', 'other.write'] }, [API2_RESOURCE]: { scopes: ['api.read'] } },
    defaultResource: API_RESOURCE,
    // MSAL treats an access token as expired 5 minutes before it is (tokenRenewalOffsetSeconds):
    // shorter lifetimes would make every silent call a refresh.
    accessTokenTTL: 3600,
  });
  const agent = new Agent({ connect: { ca: [pki.caCert] } });
  const trusting = ((input: string | URL, init?: RequestInit) => undiciFetch(input, { ...(init as object), dispatcher: agent })) as unknown as typeof globalThis.fetch;
  const api = await startSampleApi({ issuer: provider.issuer, audience: API_RESOURCE, fetch: trusting });
  const otherApi = await startSampleApi({ issuer: provider.issuer, audience: OTHER_RESOURCE, fetch: trusting });
  return {
    pki,
    provider,
    agent,
    fetch: trusting,
    api,
    otherApi,
    ports,
    async close() {
      await api.close();
      await otherApi.close();
      await provider.close();
      await agent.close();
      pki.remove();
    },
  };
}

export interface EntraGatewayOptions {
  /** Index into env.ports (default 0). */
  slot?: number;
  credential?: 'secret' | 'certificate';
  /** memory:// (default) or a Redis URL. */
  cacheUrl?: string;
  cacheKey?: string;
  signInScopes?: string[];
  /** Extra YAML under `routes:` (indented by two spaces). */
  extraRoutes?: string;
}

export interface EntraGateway {
  url: string;
  yaml: string;
  child: ChildProcess;
  /** Everything the process printed (JSON log lines), for diagnostics and assertions. */
  output(): string;
  close(): Promise<void>;
}

export const DEFAULT_CACHE_KEY = 'entra-cache-key-for-tests-0123456789abcdef';

export function gatewayYaml(env: EntraEnv, opts: EntraGatewayOptions = {}): string {
  const port = env.ports[opts.slot ?? 0]!;
  const authority = env.provider.issuer;
  const credential =
    opts.credential === 'certificate'
      ? `  clientId: ${CERT_CLIENT}\n  clientCertificate: { privateKeyFile: "${env.pki.clientKeyFile}", certificateFile: "${env.pki.clientCertFile}" }`
      : `  clientId: ${SECRET_CLIENT}\n  clientSecret: \${ENTRA_CLIENT_SECRET}`;
  const scopes = opts.signInScopes ?? ['openid', 'profile', 'email', 'offline_access', 'api.read'];
  return `listen: { host: 127.0.0.1, port: ${port} }
publicUrl: http://127.0.0.1:${port}
logging: { level: info }
identity:
  provider: entra
  authority: ${authority}
  knownAuthorities: ["${new URL(authority).host}"]
${credential}
  scopes: [${scopes.join(', ')}]
  timeout: 3s
session:
  secret: \${SESSION_SECRET}
tokenCache:
  url: \${CACHE_URL:-memory://}
  encryptionKey: \${CACHE_KEY}
routes:
  - { name: api, prefix: /api, upstream: "${env.api.url}", rewritePrefix: /v1, auth: user, scopes: [api.read], resource: "${API_RESOURCE}" }
  - { name: plain, prefix: /plain, upstream: "${env.api.url}", auth: user, scopes: [api.read] }
  - { name: other, prefix: /other, upstream: "${env.otherApi.url}", auth: user, scopes: [other.read], resource: "${OTHER_RESOURCE}" }
  - { name: app, prefix: /app-api, upstream: "${env.api.url}", auth: client, scopes: [api.write] }
  - { name: app-other, prefix: /app-other, upstream: "${env.otherApi.url}", auth: client, scopes: [other.write], resource: "${OTHER_RESOURCE}" }
${opts.extraRoutes ?? ''}
  - { name: spa, prefix: /, upstream: "${env.api.url}", auth: none }
`;
}

/** Starts `node dist/src/cli.js --config <file>` and waits until /readyz answers 200. */
export async function startEntraGateway(env: EntraEnv, opts: EntraGatewayOptions = {}): Promise<EntraGateway> {
  const port = env.ports[opts.slot ?? 0]!;
  const url = `http://127.0.0.1:${port}`;
  const dir = mkdtempSync(join(tmpdir(), 'bff-entra-gw-'));
  const file = join(dir, 'routes.yaml');
  const yaml = gatewayYaml(env, opts);
  writeFileSync(file, yaml);
  const child = spawn(process.execPath, [CLI, '--config', file], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: {
      ...process.env,
      NODE_EXTRA_CA_CERTS: env.pki.caCertFile,
      ENTRA_CLIENT_SECRET: CLIENT_SECRET,
      SESSION_SECRET,
      CACHE_KEY: opts.cacheKey ?? DEFAULT_CACHE_KEY,
      CACHE_URL: opts.cacheUrl ?? 'memory://',
      LOG_LEVEL: 'info',
    },
  });
  let out = '';
  child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (out += d.toString()));
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const close = async () => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
      await exited;
      clearTimeout(timer);
    }
    rmSync(dir, { recursive: true, force: true });
  };
  let ready = 0;
  for (let i = 0; i < 150 && ready !== 200; i++) {
    if (child.exitCode !== null) break;
    await new Promise((r) => setTimeout(r, 100));
    ready = await fetch(`${url}/readyz`).then((r) => r.status, () => 0);
  }
  if (ready !== 200) {
    await close();
    throw new Error(`the gateway did not become ready (readyz ${ready}):\n${out}`);
  }
  return { url, yaml, child, output: () => out, close };
}

/** Signs in through a gateway, the provider's pages fetched through the CA-trusting agent. */
export function entraSignIn(env: EntraEnv, gateway: { url: string }, opts: SignInOptions = {}): Promise<SignInResult> {
  return signIn(gateway.url, { dispatcher: env.agent, ...opts });
}

/** A unique user name, so tests sharing a Redis never share an account. */
export function uniqueUser(prefix = 'user'): string {
  return `${prefix}-${Math.random().toString(36).slice(2, 10)}`;
}
