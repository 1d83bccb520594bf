/**
 * The whole demo on one machine: a development OpenID provider, a sample API that verifies
 * the bearer token it receives, a sample SPA served by a tiny static file server, and the
 * gateway in front of them, configured from examples/demo/routes.yaml.
 *
 * `npm run demo` (run.ts) and the browser test (test/e2e/browser-demo.test.ts) share it.
 */
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { dirname, extname, join, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { DestinationStream } from 'pino';
import { formatProblem, loadRoutesFile } from '../../src/config/load.js';
import { createGateway, type Gateway } from '../../src/server.js';
import { startSampleApi, type SampleApi } from './api.js';
import { DEV_LOGIN_HINT, startDevProvider, type DevProvider } from './provider.js';

export { DEV_LOGIN_HINT };

export const DEMO_CLIENT_ID = 'bff-demo';
/** The resource indicator of the sample API: its access tokens carry it as `aud`. */
export const DEMO_API_RESOURCE = 'https://api.demo.example';
export const DEMO_SCOPES = ['api.read', 'api.write'];

/** The repository root, whether this runs as .ts from examples/demo or as .js from dist/examples/demo. */
export function repoRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    if (existsSync(join(dir, 'package.json'))) return dir;
    const parent = dirname(dir);
    if (parent === dir) throw new Error('cannot find the repository root (no package.json above ' + fileURLToPath(import.meta.url) + ')');
    dir = parent;
  }
}

export const DEMO_ROUTES_FILE = join(repoRoot(), 'examples', 'demo', 'routes.yaml');
export const DEMO_SPA_DIR = join(repoRoot(), 'examples', 'demo', 'spa');

export interface DemoOptions {
  /** The gateway's port (a concrete port: the provider registers its callback URL). Default 8080. */
  port?: number;
  /** Where the gateway listens; default 127.0.0.1 (the browser reaches it as localhost). */
  host?: string;
  /** Where gateway logs go; default stdout. */
  logStream?: DestinationStream;
  /** Extra environment for routes.yaml's ${VARS} (e.g. LOG_LEVEL); the demo's own values win. */
  env?: NodeJS.ProcessEnv;
}

export interface Demo {
  /** What to open in the browser: http://localhost:PORT/ */
  url: string;
  port: number;
  issuer: string;
  apiUrl: string;
  spaUrl: string;
  provider: DevProvider;
  api: SampleApi;
  gateway: Gateway;
  /** Warnings the config check printed (none expected). */
  warnings: string[];
  close(): Promise<void>;
}

const CONTENT_TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.ico': 'image/x-icon',
};

/** A static file server for the SPA: GET/HEAD only, no directory listing, index.html for unknown paths without an extension. */
export async function startStaticServer(root: string, port = 0, host = '127.0.0.1'): Promise<{ url: string; server: Server; close(): Promise<void> }> {
  const base = resolve(root);
  const server = createServer(async (req, res) => {
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, { allow: 'GET, HEAD' }).end();
      return;
    }
    let pathname: string;
    try {
      pathname = decodeURIComponent(new URL(req.url ?? '/', 'http://spa.invalid').pathname);
    } catch {
      res.writeHead(400).end();
      return;
    }
    if (pathname.endsWith('/')) pathname += 'index.html';
    // Client-side routes (no extension) get the app itself.
    if (!extname(pathname)) pathname = '/index.html';
    const file = resolve(base, '.' + pathname);
    if (file !== base && !file.startsWith(base + sep)) {
      res.writeHead(404).end();
      return;
    }
    let body: Buffer;
    try {
      body = await readFile(file);
    } catch {
      res.writeHead(404, { 'content-type': 'text/plain; charset=utf-8' }).end('not found');
      return;
    }
    res.writeHead(200, {
      'content-type': CONTENT_TYPES[extname(file)] ?? 'application/octet-stream',
      'content-length': body.length,
      'cache-control': 'no-cache',
      'x-content-type-options': 'nosniff',
    });
    res.end(req.method === 'HEAD' ? undefined : body);
  });
  await new Promise<void>((ok, fail) => {
    server.once('error', fail);
    server.listen(port, host, () => {
      server.off('error', fail);
      ok();
    });
  });
  const { port: actual } = server.address() as AddressInfo;
  return {
    url: `http://${host}:${actual}`,
    server,
    close: () =>
      new Promise((ok) => {
        server.close(() => ok());
        server.closeAllConnections();
      }),
  };
}

const secret = () => randomBytes(32).toString('base64url');

/** Starts provider, API, SPA and gateway; on failure whatever had started is stopped again. */
export async function startDemo(opts: DemoOptions = {}): Promise<Demo> {
  const port = opts.port ?? 8080;
  if (!Number.isInteger(port) || port <= 0 || port > 65535) throw new Error(`the gateway needs a concrete port (1-65535), got ${port}`);
  const host = opts.host ?? '127.0.0.1';
  const publicUrl = `http://localhost:${port}`;
  const clientSecret = secret();

  const cleanups: Array<() => Promise<void>> = [];
  const closeAll = async () => {
    for (const fn of cleanups.splice(0).reverse()) await fn().catch(() => undefined);
  };

  try {
    const provider = await startDevProvider({
      clients: [
        {
          client_id: DEMO_CLIENT_ID,
          client_secret: clientSecret,
          token_endpoint_auth_method: 'client_secret_basic',
          redirect_uris: [`${publicUrl}/auth/callback`],
          post_logout_redirect_uris: [`${publicUrl}/`],
        },
      ],
      resources: { [DEMO_API_RESOURCE]: { scopes: DEMO_SCOPES } },
      defaultResource: DEMO_API_RESOURCE,
    });
    cleanups.push(() => provider.close());

    const api = await startSampleApi({ issuer: provider.issuer, audience: DEMO_API_RESOURCE });
    cleanups.push(() => api.close());

    const spa = await startStaticServer(DEMO_SPA_DIR);
    cleanups.push(() => spa.close());

    const env: NodeJS.ProcessEnv = {
      ...opts.env,
      PORT: String(port),
      DEMO_LISTEN_HOST: host,
      DEMO_ISSUER: provider.issuer,
      DEMO_CLIENT_ID,
      DEMO_CLIENT_SECRET: clientSecret,
      DEMO_SESSION_SECRET: secret(),
      DEMO_TOKEN_CACHE_KEY: secret(),
      DEMO_API_URL: api.url,
      DEMO_API_RESOURCE,
      DEMO_SPA_URL: spa.url,
    };
    const parsed = await loadRoutesFile(DEMO_ROUTES_FILE, env);
    if (!parsed.ok) throw new Error('examples/demo/routes.yaml is not valid:\n' + parsed.problems.map(formatProblem).join('\n'));

    const gateway = await createGateway(parsed.config, { logStream: opts.logStream });
    cleanups.push(() => gateway.close());
    await gateway.discovered;
    await gateway.app.listen({ host: parsed.config.listen.host, port: parsed.config.listen.port });

    return {
      url: `${publicUrl}/`,
      port,
      issuer: provider.issuer,
      apiUrl: api.url,
      spaUrl: spa.url,
      provider,
      api,
      gateway,
      warnings: parsed.warnings.map(formatProblem),
      close: closeAll,
    };
  } catch (err) {
    await closeAll();
    throw err;
  }
}
