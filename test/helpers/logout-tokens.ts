/**
 * Logout tokens for back-channel logout tests: signed with the development provider's own
 * key through its IdToken model (the model oidc-provider itself issues logout tokens with),
 * or forged with a key of the test's own. Plus a capture proxy that records what the
 * provider delivers before passing it on to the gateway.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { decodeProtectedHeader, generateKeyPair, SignJWT } from 'jose';
import type { DevClient, DevProvider } from '../../examples/demo/provider.js';
import { CLIENT_ID, CLIENT_SECRET } from './stack.js';
import { readBody } from '../../examples/demo/api.js';

export const BACKCHANNEL_EVENT = 'http://schemas.openid.net/event/backchannel-logout';

/** The stack's own client registration, with the back-channel logout URI of one's choice. */
export function gatewayClient(publicUrl: string, backchannelLogoutUri = `${publicUrl}/auth/backchannel-logout`): DevClient {
  return {
    client_id: CLIENT_ID,
    client_secret: CLIENT_SECRET,
    redirect_uris: [`${publicUrl}/auth/callback`],
    post_logout_redirect_uris: [`${publicUrl}/`],
    token_endpoint_auth_method: 'client_secret_basic',
    backchannel_logout_uri: backchannelLogoutUri,
  };
}

export interface ProviderTokenOptions {
  /** The client the token is issued to (its `aud`); default the gateway's client. */
  clientId?: string;
  /** Claims on top of `sub` (events, sid, jti, nonce, ...); a value of undefined leaves the claim out. */
  claims?: Record<string, unknown>;
  /** Epoch seconds: issue with this `exp` (e.g. in the past) instead of the provider's 120 s. */
  expiresAt?: number;
}

/** A JWT signed by the provider's own signing key, `iss` the provider, `aud` the client. */
export async function providerSignedLogoutToken(dev: DevProvider, sub: string, opts: ProviderTokenOptions = {}): Promise<string> {
  const client = await dev.provider.Client.find(opts.clientId ?? CLIENT_ID);
  if (!client) throw new Error(`no client ${opts.clientId}`);
  const token = new dev.provider.IdToken({ sub }, { client, ctx: undefined });
  token.mask = { sub: null };
  for (const [k, v] of Object.entries(opts.claims ?? {})) if (v !== undefined) token.set(k, v);
  // 'logout' fixes exp at now + 120 s; the ID token use takes an explicit expiry.
  return opts.expiresAt === undefined ? token.issue({ use: 'logout' }) : token.issue({ use: 'idtoken', expiresAt: opts.expiresAt });
}

/** A well-formed logout token signed by a key of our own that claims the provider's key id. */
export async function forgedLogoutToken(dev: DevProvider, sub: string, claims: Record<string, unknown>): Promise<string> {
  const genuine = await providerSignedLogoutToken(dev, sub, { claims });
  const { kid } = decodeProtectedHeader(genuine);
  const { privateKey } = await generateKeyPair('RS256');
  return new SignJWT({ ...claims })
    .setProtectedHeader({ alg: 'RS256', typ: 'logout+jwt', kid })
    .setIssuer(dev.issuer)
    .setAudience(CLIENT_ID)
    .setSubject(sub)
    .setIssuedAt()
    .setExpirationTime('2m')
    .sign(privateKey);
}

export function postLogoutToken(gatewayUrl: string, token: string): Promise<Response> {
  return fetch(gatewayUrl + '/auth/backchannel-logout', {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({ logout_token: token }).toString(),
  });
}

export interface CaptureProxy {
  url: string;
  /** The logout_token values received, in order. */
  tokens: string[];
  close(): Promise<void>;
}

/**
 * A back-channel logout URI that records each delivery and forwards it unchanged to
 * `target()` (resolved per request, so the gateway may start after the proxy), answering
 * with the gateway's status.
 */
export async function startCaptureProxy(target: () => string): Promise<CaptureProxy> {
  const tokens: string[] = [];
  const server: Server = createServer((req, res) => {
    void (async () => {
      const body = await readBody(req);
      const token = new URLSearchParams(body).get('logout_token');
      if (token) tokens.push(token);
      const forwarded = await fetch(target(), {
        method: req.method,
        headers: { 'content-type': String(req.headers['content-type'] ?? '') },
        body,
      });
      res.statusCode = forwarded.status;
      res.end(await forwarded.text());
    })().catch(() => {
      res.statusCode = 502;
      res.end();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}/backchannel`,
    tokens,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

/** Remembers the ID tokens the provider issues at its token endpoint (to use as id_token_hint). */
export function recordIdTokens(dev: DevProvider): string[] {
  const seen: string[] = [];
  dev.provider.on('grant.success', (ctx: { body?: { id_token?: unknown } }) => {
    if (typeof ctx.body?.id_token === 'string') seen.push(ctx.body.id_token);
  });
  return seen;
}
