import { createServer, type AddressInfo } from 'node:net';
import { Writable } from 'node:stream';
import { startDevProvider, type DevProvider, type DevProviderOptions } from '../../examples/demo/provider.js';
import { startSampleApi, type SampleApi } from '../../examples/demo/api.js';
import { parseRoutesFile, formatProblem } from '../../src/config/load.js';
import { createGateway, type Gateway } from '../../src/server.js';

export const CLIENT_ID = 'bff';
export const CLIENT_SECRET = 'bff-test-client-secret-0123456789abcdef';
export const API_RESOURCE = 'https://api.example.test';
export const OTHER_RESOURCE = 'https://other.example.test';

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address() as AddressInfo;
      srv.close(() => resolve(port));
    });
  });
}

/** Collects pino lines so tests can read the logs back. */
export class LogCapture extends Writable {
  readonly lines: string[] = [];
  override _write(chunk: Buffer, _enc: string, cb: () => void): void {
    for (const line of chunk.toString('utf8').split('\n')) if (line) this.lines.push(line);
    cb();
  }
  get text(): string {
    return this.lines.join('\n');
  }
  records(): Array<Record<string, unknown>> {
    return this.lines.map((l) => JSON.parse(l) as Record<string, unknown>);
  }
}

export interface Stack {
  provider: DevProvider;
  api: SampleApi;
  otherApi: SampleApi;
  gateway: Gateway;
  url: string;
  logs: LogCapture;
  yaml: string;
  close(): Promise<void>;
}

export interface StackOptions {
  provider?: Partial<DevProviderOptions>;
  /** Extra YAML appended under `routes:` (already indented by two spaces). */
  extraRoutes?: string;
  /** Replaces sign-in scopes. */
  signInScopes?: string[];
  session?: string;
  tokenCache?: string;
  env?: Record<string, string>;
  /** Reuse a provider (several gateways against one provider). */
  sharedProvider?: DevProvider;
  gatewayPort?: number;
  /** The origin the browser sees (a load balancer in front of several replicas). */
  publicUrl?: string;
  /** Key lists (rotation): the first signs/encrypts, all decrypt. */
  sessionSecrets?: string[];
  cacheKeys?: string[];
  /** Runs once the provider is up, before the config is parsed; returns extra env values. */
  beforeGateway?: (issuer: string) => Promise<Record<string, string>>;
}

/** A real provider, two real APIs and a gateway configured through routes.yaml text. */
export async function startStack(opts: StackOptions = {}): Promise<Stack> {
  const port = opts.gatewayPort ?? (await freePort());
  const url = `http://127.0.0.1:${port}`;
  const publicUrl = opts.publicUrl ?? url;
  const provider =
    opts.sharedProvider ??
    (await startDevProvider({
      clients: [
        {
          client_id: CLIENT_ID,
          client_secret: CLIENT_SECRET,
          redirect_uris: [`${publicUrl}/auth/callback`],
          post_logout_redirect_uris: [`${publicUrl}/`],
          token_endpoint_auth_method: 'client_secret_basic',
          backchannel_logout_uri: `${publicUrl}/auth/backchannel-logout`,
        },
      ],
      resources: { [API_RESOURCE]: { scopes: ['api.read', 'api.write'] }, [OTHER_RESOURCE]: { scopes: ['other.read'] } },
      defaultResource: API_RESOURCE,
      accessTokenTTL: 300,
      ...opts.provider,
    }));
  const api = await startSampleApi({ issuer: provider.issuer, audience: API_RESOURCE });
  const otherApi = await startSampleApi({ issuer: provider.issuer, audience: OTHER_RESOURCE });
  const signIn = opts.signInScopes ?? ['openid', 'profile', 'email', 'offline_access', 'api.read'];
  const yaml = `listen: { host: 127.0.0.1, port: ${port} }
publicUrl: ${publicUrl}
identity:
  provider: oidc
  issuer: ${provider.issuer}
  allowInsecureRequests: true
  clientId: ${CLIENT_ID}
  clientSecret: \${CLIENT_SECRET}
  scopes: [${signIn.join(', ')}]
session:
  secret: ${opts.sessionSecrets ? JSON.stringify(opts.sessionSecrets) : '${SESSION_SECRET}'}
${opts.session ?? ''}
tokenCache:
  url: \${CACHE_URL:-memory://}
  encryptionKey: ${opts.cacheKeys ? JSON.stringify(opts.cacheKeys) : '${CACHE_KEY}'}
${opts.tokenCache ?? ''}
routes:
  - name: api
    prefix: /api
    upstream: ${api.url}
    rewritePrefix: /v1
    auth: user
    scopes: [api.read]
    resource: ${API_RESOURCE}
  - name: other
    prefix: /other
    upstream: ${otherApi.url}
    auth: user
    scopes: [other.read]
    resource: ${OTHER_RESOURCE}
  - name: app
    prefix: /app-api
    upstream: ${api.url}
    auth: client
    scopes: [api.write]
    resource: ${API_RESOURCE}
  - name: either
    prefix: /either
    upstream: ${api.url}
    auth: user-or-client
    scopes: [api.read]
    resource: ${API_RESOURCE}
${opts.extraRoutes ?? ''}
  - name: spa
    prefix: /
    upstream: ${api.url}
    auth: none
`;
  const extraEnv = opts.beforeGateway ? await opts.beforeGateway(provider.issuer) : {};
  const env = {
    ...extraEnv,
    CLIENT_SECRET,
    SESSION_SECRET: 'session-secret-for-tests-0123456789abcdef',
    CACHE_KEY: 'cache-key-for-tests-0123456789abcdef-xyz',
    ...opts.env,
    ...extraEnv,
  };
  const { gateway, logs } = await startGatewayFromYaml(yaml, env, port);
  return {
    provider,
    api,
    otherApi,
    gateway,
    url,
    logs,
    yaml,
    async close() {
      await gateway.close();
      await api.close();
      await otherApi.close();
      if (!opts.sharedProvider) await provider.close();
    },
  };
}

/** Parses routes.yaml text as the CLI would, then creates the gateway and listens on `port`. */
export async function startGatewayFromYaml(yaml: string, env: Record<string, string>, port: number): Promise<{ gateway: Gateway; logs: LogCapture }> {
  const parsed = parseRoutesFile(yaml, 'routes.yaml', env);
  if (!parsed.ok) throw new Error(parsed.problems.map(formatProblem).join('\n'));
  const logs = new LogCapture();
  const gateway = await createGateway(parsed.config, { logStream: logs });
  await gateway.discovered;
  await gateway.app.listen({ host: '127.0.0.1', port });
  return { gateway, logs };
}

/** Two gateways sharing one provider and one store, behind one public origin (replica A's). */
export async function startReplicas(t: { teardown(fn: () => unknown): void }, redisUrl: string): Promise<{ a: Stack; b: Stack }> {
  const portA = await freePort();
  const publicUrl = `http://127.0.0.1:${portA}`;
  const a = await startStack({ gatewayPort: portA, env: { CACHE_URL: redisUrl } });
  const b = await startStack({ publicUrl, sharedProvider: a.provider, env: { CACHE_URL: redisUrl } });
  t.teardown(async () => {
    await b.close();
    await a.close();
  });
  return { a, b };
}

/** A fetch to the gateway as the SPA makes it: same-origin, with the CSRF header. */
export async function apiCall(stack: { url: string }, path: string, cookie: string, init: { method?: string; headers?: Record<string, string> } = {}) {
  const res = await fetch(stack.url + path, {
    method: init.method ?? 'GET',
    redirect: 'manual',
    headers: { cookie, 'x-csrf': '1', 'sec-fetch-site': 'same-origin', ...init.headers },
  });
  const text = await res.text();
  let json: Record<string, unknown> | undefined;
  try {
    json = JSON.parse(text) as Record<string, unknown>;
  } catch {
    json = undefined;
  }
  return { status: res.status, headers: res.headers, text, json };
}
