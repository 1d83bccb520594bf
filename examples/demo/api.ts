/**
 * A sample upstream API that accepts a request only with a valid bearer token:
 * a JWT access token (RFC 9068) signed by the issuer, for this API's audience.
 * It records every request it receives so that tests can see what the gateway sent.
 */
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { createRemoteJWKSet, customFetch, jwtVerify, type JWTPayload } from 'jose';

export interface SampleApiOptions {
  issuer: string;
  /** Default: jwks_uri from the issuer's discovery document. */
  jwksUri?: string;
  audience: string;
  /** Default 0: a random free port. */
  port?: number;
  /** Default 127.0.0.1. */
  host?: string;
  /** How long `/slow` waits before answering, in ms; default 1000. */
  slowMs?: number;
  /** fetch used for discovery and the JWKS (e.g. one that trusts a private CA). */
  fetch?: typeof globalThis.fetch;
}

export interface ReceivedRequest {
  method: string;
  url: string;
  headers: Record<string, string | string[] | undefined>;
  claims?: Record<string, unknown>;
  verifyError?: string;
  body?: string;
}

export interface SampleApi {
  url: string;
  received: ReceivedRequest[];
  close(): Promise<void>;
  /** Force the status (and extra headers) of the following responses; null returns to normal. */
  setStatus(code: number | null, headers?: Record<string, string>): void;
}

/** The whole request body as text. */
export function readBody(req: IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    req.on('error', reject);
  });
}

function sendJson(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}) {
  const text = JSON.stringify(body);
  res.writeHead(status, { ...headers, 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
  res.end(text);
}

export async function startSampleApi(opts: SampleApiOptions): Promise<SampleApi> {
  const issuer = opts.issuer.replace(/\/$/, '');
  const slowMs = opts.slowMs ?? 1000;
  const doFetch = opts.fetch ?? globalThis.fetch;
  const received: ReceivedRequest[] = [];
  let forced: { code: number; headers: Record<string, string> } | null = null;

  let jwks: ReturnType<typeof createRemoteJWKSet> | undefined;
  let jwksPromise: Promise<ReturnType<typeof createRemoteJWKSet>> | undefined;
  const getJwks = () => {
    if (jwks) return Promise.resolve(jwks);
    jwksPromise ??= (async () => {
      let uri = opts.jwksUri;
      if (!uri) {
        const response = await doFetch(`${issuer}/.well-known/openid-configuration`);
        if (!response.ok) throw new Error(`discovery answered ${response.status}`);
        uri = ((await response.json()) as { jwks_uri?: string }).jwks_uri;
        if (!uri) throw new Error('discovery document has no jwks_uri');
      }
      jwks = createRemoteJWKSet(new URL(uri), { [customFetch]: doFetch });
      return jwks;
    })().finally(() => {
      jwksPromise = undefined;
    });
    return jwksPromise;
  };

  const server = createServer(async (req, res) => {
    const record: ReceivedRequest = { method: req.method ?? 'GET', url: req.url ?? '/', headers: { ...req.headers } };
    received.push(record);
    try {
      const body = await readBody(req);
      if (body) record.body = body;

      const match = /^Bearer ([^\s]+)$/i.exec(req.headers.authorization ?? '');
      let claims: JWTPayload | undefined;
      if (!match) {
        record.verifyError = 'no bearer token';
      } else {
        try {
          ({ payload: claims } = await jwtVerify(match[1], await getJwks(), {
            issuer,
            audience: opts.audience,
            typ: 'at+jwt',
          }));
          record.claims = claims as Record<string, unknown>;
        } catch (err) {
          record.verifyError = err instanceof Error ? `${err.name}: ${err.message}` : String(err);
        }
      }

      if (forced) {
        sendJson(res, forced.code, { error: 'forced', status: forced.code }, forced.headers);
        return;
      }
      if (!claims) {
        sendJson(res, 401, { error: 'invalid_token' }, { 'www-authenticate': 'Bearer error="invalid_token"' });
        return;
      }
      if (new URL(record.url, 'http://api.invalid').pathname === '/slow') {
        await new Promise((resolve) => setTimeout(resolve, slowMs));
      }
      sendJson(res, 200, {
        sub: claims.sub,
        scope: claims.scope,
        aud: claims.aud,
        client_id: claims.client_id,
        path: req.url,
        method: req.method,
      });
    } catch (err) {
      if (!res.headersSent) sendJson(res, 500, { error: 'server_error' });
      else res.destroy(err as Error);
    }
  });

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port ?? 0, opts.host ?? '127.0.0.1', () => {
      server.off('error', reject);
      resolve();
    });
  });
  const { address, port } = server.address() as AddressInfo;
  const hostForUrl = address.includes(':') ? `[${address}]` : address;

  return {
    url: `http://${hostForUrl}:${port}`,
    received,
    setStatus(code, headers = {}) {
      forced = code === null ? null : { code, headers };
    },
    close() {
      return new Promise((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      });
    },
  };
}
