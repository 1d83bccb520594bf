/**
 * A development OpenID provider, started in-process, built on `oidc-provider` v9.
 *
 * It is a real authorization server (discovery, PKCE, JWT access tokens per RFC 9068,
 * refresh tokens, revocation, introspection, RP-initiated and back-channel logout,
 * client credentials). The only shortcut is the sign-in page: it accepts any user name
 * with any password, and consent is granted without asking (unless `prompt=consent`).
 *
 * Used by `npm run demo` and by the end-to-end tests.
 */
import { randomBytes } from 'node:crypto';
import { createServer as createHttpServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import type { EventEmitter } from 'node:events';
import { calculateJwkThumbprint, exportJWK, generateKeyPair } from 'jose';

/** What the demo's sign-in page accepts. */
export const DEV_LOGIN_HINT = 'any user name; no password needed (any value works)';

export interface DevClient {
  client_id: string;
  client_secret?: string;
  redirect_uris: string[];
  post_logout_redirect_uris?: string[];
  token_endpoint_auth_method?: string;
  grant_types?: string[];
  response_types?: string[];
  backchannel_logout_uri?: string;
  backchannel_logout_session_required?: boolean;
  jwks?: { keys: object[] };
}

export interface DevProviderOptions {
  /** Default 0: a random free port. */
  port?: number;
  /** Default 127.0.0.1. */
  host?: string;
  clients: DevClient[];
  /** Resource indicator URI -> the scopes it offers. Access tokens for it are JWTs (RFC 9068) with aud = the URI. */
  resources: Record<string, { scopes: string[]; accessTokenTTL?: number }>;
  /** Used when an authorization or token request names no resource. */
  defaultResource?: string;
  /** Seconds, default 300. */
  accessTokenTTL?: number;
  /** Seconds, default 14 days. */
  refreshTokenTTL?: number;
  /** Default true. */
  rotateRefreshToken?: boolean;
  /** PEM key and certificate: serve over https. */
  https?: { key: string; cert: string };
  /** Additional plain (OpenID) scopes, besides openid profile email offline_access and the resource scopes. */
  extraScopes?: string[];
}

/**
 * oidc-provider ships no TypeScript declarations; this describes the part of its
 * `Provider` instance (a Koa application) that callers are expected to use.
 */
export interface OidcProvider extends EventEmitter {
  readonly issuer: string;
  callback(): (req: IncomingMessage, res: ServerResponse) => void;
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  [key: string]: any;
}

export interface DevProviderCounts {
  refreshGrants: number;
  codeGrants: number;
  clientCredentialsGrants: number;
  revocations: number;
  backchannelDeliveries: number;
  backchannelErrors: number;
}

export interface DevProvider {
  /** e.g. http://127.0.0.1:PORT (no trailing slash). */
  issuer: string;
  provider: OidcProvider;
  counts: DevProviderCounts;
  /** Errors the provider answered with 500 (server_error), for debugging tests. */
  serverErrors: Error[];
  /** True when the provider no longer accepts this refresh token. */
  isRevoked(refreshToken: string): Promise<boolean>;
  /** Stop listening (simulates "provider down"); all state is kept. */
  stop(): Promise<void>;
  /** Listen again on the same port. */
  start(): Promise<void>;
  /** Final shutdown. */
  close(): Promise<void>;
}

const DAY = 24 * 60 * 60;
const OIDC_SCOPES = ['openid', 'offline_access', 'profile', 'email'];

/* eslint-disable @typescript-eslint/no-explicit-any */
type Ctx = any;

/** Messages oidc-provider prints through console.warn/console.info ("oidc-provider WARNING: ..."). */
async function withoutProviderNotices<T>(fn: () => Promise<T> | T): Promise<T> {
  const { warn, info } = console;
  const filter = (orig: (...a: unknown[]) => void) => (...args: unknown[]) => {
    if (typeof args[0] === 'string' && args[0].includes('oidc-provider ')) return;
    orig.apply(console, args);
  };
  console.warn = filter(warn);
  console.info = filter(info);
  try {
    return await fn();
  } finally {
    console.warn = warn;
    console.info = info;
  }
}

let providerModule: Promise<any> | undefined;
function loadOidcProvider(): Promise<any> {
  // oidc-provider prints an "unsupported runtime" warning on import under Node 20.
  // The specifier is a variable so that TypeScript does not look for declarations.
  const specifier = 'oidc-provider';
  providerModule ??= withoutProviderNotices(() => import(specifier));
  return providerModule;
}

/**
 * Per-provider in-memory storage (oidc-provider's own memory adapter is an LRU of 1,000
 * entries and prints a warning). Entries expire; tokens are indexed by grant so that
 * revoking a grant revokes its tokens.
 */
function createAdapterFactory() {
  const store = new Map<string, { payload: any; expiresAt: number }>();
  const byGrant = new Map<string, Set<string>>();
  const byUid = new Map<string, string>();
  const byUserCode = new Map<string, string>();
  const grantable = new Set(['AccessToken', 'AuthorizationCode', 'RefreshToken', 'DeviceCode', 'BackchannelAuthenticationRequest', 'PreAuthorizedCode']);

  const read = (key: string) => {
    const entry = store.get(key);
    if (!entry) return undefined;
    if (entry.expiresAt <= Date.now()) {
      store.delete(key);
      return undefined;
    }
    return entry.payload;
  };

  class DevAdapter {
    constructor(private readonly model: string) {}
    private key(id: string) {
      return `${this.model}:${id}`;
    }
    async upsert(id: string, payload: any, expiresIn?: number) {
      const key = this.key(id);
      const expiresAt = typeof expiresIn === 'number' ? Date.now() + expiresIn * 1000 : Infinity;
      store.set(key, { payload, expiresAt });
      if (this.model === 'Session' && payload.uid) byUid.set(payload.uid, id);
      if (payload.userCode) byUserCode.set(payload.userCode, id);
      if (grantable.has(this.model) && payload.grantId) {
        let members = byGrant.get(payload.grantId);
        if (!members) byGrant.set(payload.grantId, (members = new Set()));
        members.add(key);
      }
    }
    async find(id: string) {
      return read(this.key(id));
    }
    async findByUid(uid: string) {
      const id = byUid.get(uid);
      return id === undefined ? undefined : this.find(id);
    }
    async findByUserCode(userCode: string) {
      const id = byUserCode.get(userCode);
      return id === undefined ? undefined : this.find(id);
    }
    async consume(id: string) {
      const payload = read(this.key(id));
      if (payload) payload.consumed = Math.floor(Date.now() / 1000);
    }
    async destroy(id: string) {
      const key = this.key(id);
      const payload = store.get(key)?.payload;
      store.delete(key);
      if (payload?.grantId) byGrant.get(payload.grantId)?.delete(key);
    }
    async revokeByGrantId(grantId: string) {
      for (const key of byGrant.get(grantId) ?? []) store.delete(key);
      byGrant.delete(grantId);
    }
  }

  return (model: string) => new DevAdapter(model);
}

function htmlEscape(value: unknown): string {
  return String(value).replace(/[&<>"'`]/g, (c) => `&#${c.charCodeAt(0)};`);
}

function page(title: string, body: string): string {
  return `<!DOCTYPE html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <meta name="viewport" content="width=device-width, initial-scale=1">
  <title>${htmlEscape(title)}</title>
  <style>body{font-family:system-ui,sans-serif;max-width:32rem;margin:3rem auto;padding:0 1rem}pre{white-space:pre-wrap}button{margin:.25rem 0}</style>
</head>
<body>
  <h1>${htmlEscape(title)}</h1>
  ${body}
</body>
</html>`;
}

function listen(server: Server, port: number, host: string): Promise<AddressInfo> {
  return new Promise((resolve, reject) => {
    const onError = (err: Error) => reject(err);
    server.once('error', onError);
    server.listen(port, host, () => {
      server.off('error', onError);
      resolve(server.address() as AddressInfo);
    });
  });
}

function closeServer(server: Server): Promise<void> {
  return new Promise((resolve) => {
    if (!server.listening) {
      resolve();
      return;
    }
    server.close(() => resolve());
    server.closeAllConnections();
  });
}

export async function startDevProvider(opts: DevProviderOptions): Promise<DevProvider> {
  const host = opts.host ?? '127.0.0.1';
  const accessTokenTTL = opts.accessTokenTTL ?? 300;
  const refreshTokenTTL = opts.refreshTokenTTL ?? 14 * DAY;
  const resources = opts.resources ?? {};

  const { default: Provider, errors } = await loadOidcProvider();

  // The issuer needs the port, so listen first and install the handler afterwards.
  let handler: ((req: IncomingMessage, res: ServerResponse) => void) | undefined;
  const dispatch = (req: IncomingMessage, res: ServerResponse) => {
    if (handler) handler(req, res);
    else {
      res.statusCode = 503;
      res.end();
    }
  };
  const server: Server = opts.https
    ? createHttpsServer({ key: opts.https.key, cert: opts.https.cert }, dispatch)
    : createHttpServer(dispatch);
  const address = await listen(server, opts.port ?? 0, host);
  const port = address.port;
  const hostForUrl = host.includes(':') ? `[${host}]` : host;
  const issuer = `${opts.https ? 'https' : 'http'}://${hostForUrl}:${port}`;

  const { privateKey } = await generateKeyPair('RS256', { extractable: true });
  const signingKey = { ...(await exportJWK(privateKey)), alg: 'RS256', use: 'sig' };
  const kid = await calculateJwkThumbprint(signingKey);

  const resourceInfo = (indicator: string) => {
    const resource = resources[indicator];
    if (!resource) return undefined;
    return {
      scope: resource.scopes.join(' '),
      accessTokenFormat: 'jwt' as const,
      accessTokenTTL: resource.accessTokenTTL ?? accessTokenTTL,
      audience: indicator,
    };
  };

  // accountId|clientId -> grant id, so that consent accumulates across browser sessions
  // (incremental consent, as Entra ID and most providers remember it per user and app).
  const grantIndex = new Map<string, string>();

  const clients = opts.clients.map((client) => {
    const authMethod = client.token_endpoint_auth_method ?? (client.client_secret ? 'client_secret_basic' : 'none');
    const grantTypes = client.grant_types
      ?? (authMethod === 'none' ? ['authorization_code', 'refresh_token'] : ['authorization_code', 'refresh_token', 'client_credentials']);
    const out: Record<string, unknown> = {
      ...client,
      token_endpoint_auth_method: authMethod,
      grant_types: grantTypes,
      response_types: client.response_types ?? ['code'],
    };
    if (client.backchannel_logout_uri && client.backchannel_logout_session_required === undefined) {
      // oidc-provider puts `sid` into ID tokens only for such clients.
      out.backchannel_logout_session_required = true;
    }
    return out;
  });

  const counts: DevProviderCounts = {
    refreshGrants: 0,
    codeGrants: 0,
    clientCredentialsGrants: 0,
    revocations: 0,
    backchannelDeliveries: 0,
    backchannelErrors: 0,
  };
  const serverErrors: Error[] = [];

  const configuration = {
    adapter: createAdapterFactory(),
    clients,
    jwks: { keys: [{ ...signingKey, kid }] },
    cookies: { keys: [randomBytes(32).toString('base64url')] },
    clockTolerance: 5,
    scopes: [...new Set([...OIDC_SCOPES, ...(opts.extraScopes ?? [])])],
    claims: {
      openid: ['sub'],
      profile: ['name', 'preferred_username'],
      email: ['email', 'email_verified'],
    },
    // Put the scope-requested claims (name, email, ...) into the ID token as well as userinfo.
    conformIdTokenClaims: false,
    pkce: { required: () => true },
    async findAccount(_ctx: Ctx, sub: string) {
      return {
        accountId: sub,
        async claims() {
          return { sub, name: sub, preferred_username: sub, email: `${sub}@example.com`, email_verified: true };
        },
      };
    },
    // offline_access survives the authorization request without prompt=consent (see below).
    extraParams: {
      async dev_offline_access(ctx: Ctx, _value: unknown, client: any) {
        const { oidc } = ctx;
        if (oidc.route !== 'authorization') return;
        const raw = ctx.method === 'POST' ? oidc.body?.scope : ctx.query?.scope;
        const requested = typeof raw === 'string' ? raw.split(' ') : [];
        const scopes: string[] = oidc.params.scope ? String(oidc.params.scope).split(' ') : [];
        if (
          requested.includes('offline_access')
          && !scopes.includes('offline_access')
          && String(oidc.params.response_type ?? '').split(' ').includes('code')
          && client.grantTypeAllowed('refresh_token')
        ) {
          oidc.params.scope = [...scopes, 'offline_access'].join(' ');
        }
      },
    },
    // Grant everything that is asked for, so that the user only sees the sign-in page, and
    // fold in what this user granted this client before, so a later sign-in that asks for more
    // scopes yields a refresh token good for the union of old and new scopes.
    async loadExistingGrant(ctx: Ctx) {
      const { oidc } = ctx;
      const clientId: string = oidc.client.clientId;
      const accountId: string = oidc.account?.accountId ?? oidc.session.accountId;
      const indexKey = `${accountId}\u0000${clientId}`;
      const grantId = oidc.result?.consent?.grantId || oidc.session.grantIdFor(clientId) || grantIndex.get(indexKey);
      let grant = grantId ? await oidc.provider.Grant.find(grantId) : undefined;
      if (grant && (grant.accountId !== accountId || grant.clientId !== clientId)) grant = undefined;
      grant ??= new oidc.provider.Grant({ accountId, clientId });

      const requested = new Set<string>(String(oidc.params.scope ?? '').split(' ').filter(Boolean));
      // offline_access is not carried over: it is asked for per request, as OpenID Connect defines it.
      for (const scope of String(grant.getOIDCScope() ?? '').split(' ')) if (scope && scope !== 'offline_access') requested.add(scope);
      for (const indicator of Object.keys(grant.resources ?? {})) {
        const info = resourceInfo(indicator);
        if (!info) continue;
        oidc.resourceServers[indicator] ??= new oidc.provider.ResourceServer(indicator, info);
        for (const scope of String(grant.getResourceScope(indicator) ?? '').split(' ').filter(Boolean)) requested.add(scope);
      }
      if (requested.size) oidc.params.scope = [...requested].join(' ');

      const oidcScopes = [...oidc.requestParamOIDCScopes];
      if (oidcScopes.length) grant.addOIDCScope(oidcScopes.join(' '));
      const claims = [...oidc.requestParamClaims];
      if (claims.length) grant.addOIDCClaims(claims);
      for (const [indicator, resourceServer] of Object.entries<any>(oidc.resourceServers)) {
        const scopes = [...requested].filter((scope) => resourceServer.scopes.has(scope));
        if (scopes.length) grant.addResourceScope(indicator, scopes.join(' '));
      }
      await grant.save();
      grantIndex.set(indexKey, grant.jti);
      return grant;
    },
    issueRefreshToken: async (_ctx: Ctx, client: any, code: any) =>
      client.grantTypeAllowed('refresh_token') && code.scopes.has('offline_access'),
    // Refresh tokens survive the provider session (a BFF keeps them after the browser leaves).
    expiresWithSession: async (_ctx: Ctx, token: any) => !token.scopes.has('offline_access'),
    rotateRefreshToken: opts.rotateRefreshToken ?? true,
    ttl: {
      AccessToken: (_ctx: Ctx, token: any) => token.resourceServer?.accessTokenTTL ?? accessTokenTTL,
      ClientCredentials: (_ctx: Ctx, token: any) => token.resourceServer?.accessTokenTTL ?? accessTokenTTL,
      AuthorizationCode: 60,
      IdToken: 3600,
      RefreshToken: refreshTokenTTL,
      Interaction: 3600,
      Session: 14 * DAY,
      Grant: Math.max(refreshTokenTTL, 14 * DAY),
      DeviceCode: 600,
      BackchannelAuthenticationRequest: 600,
      PreAuthorizedCode: 600,
    },
    features: {
      devInteractions: { enabled: true },
      revocation: { enabled: true, allowedPolicy: async () => true },
      introspection: { enabled: true, allowedPolicy: async () => true },
      clientCredentials: { enabled: true },
      backchannelLogout: { enabled: true },
      rpInitiatedLogout: {
        enabled: true,
        async logoutSource(ctx: Ctx, form: string) {
          ctx.type = 'html';
          ctx.body = page(
            'Sign out?',
            `${form}
  <button autofocus type="submit" form="op.logoutForm" value="yes" name="logout">Yes, sign me out</button>
  <button type="submit" form="op.logoutForm">No, stay signed in</button>`,
          );
        },
        async postLogoutSuccessSource(ctx: Ctx) {
          ctx.type = 'html';
          ctx.body = page('Signed out', '<p>You are signed out of the development provider.</p>');
        },
      },
      resourceIndicators: {
        enabled: true,
        async defaultResource(_ctx: Ctx, _client: unknown, oneOf?: string[]) {
          if (oneOf) {
            return opts.defaultResource && oneOf.includes(opts.defaultResource) ? opts.defaultResource : oneOf[0];
          }
          return opts.defaultResource;
        },
        async getResourceServerInfo(_ctx: Ctx, indicator: string) {
          const info = resourceInfo(indicator);
          if (!info) throw new errors.InvalidTarget();
          return info;
        },
        useGrantedResource: async () => true,
      },
    },
    // oidc-provider refuses to deliver back-channel logout tokens to special-use addresses
    // (127.0.0.1 included) through an SSRF-guarding undici dispatcher it sets on
    // options.dispatcher; the dev provider talks to a local gateway, so drop it.
    fetch: (url: string | URL, options: Record<string, unknown>) => {
      const { dispatcher: _ssrfGuard, ...rest } = options;
      return globalThis.fetch(url, rest as RequestInit);
    },
    async renderError(ctx: Ctx, out: Record<string, unknown>) {
      ctx.type = 'html';
      ctx.body = page(
        'Sign-in error',
        Object.entries(out).map(([key, value]) => `<pre><strong>${htmlEscape(key)}</strong>: ${htmlEscape(value)}</pre>`).join('\n'),
      );
    },
    clientBasedCORS: () => false,
  };

  const provider: OidcProvider = await withoutProviderNotices(() => new Provider(issuer, configuration));

  provider.on('grant.success', (ctx: Ctx) => {
    switch (ctx.oidc?.params?.grant_type) {
      case 'refresh_token': counts.refreshGrants += 1; break;
      case 'authorization_code': counts.codeGrants += 1; break;
      case 'client_credentials': counts.clientCredentialsGrants += 1; break;
      default: break;
    }
  });
  provider.on('backchannel.success', () => { counts.backchannelDeliveries += 1; });
  provider.on('backchannel.error', () => { counts.backchannelErrors += 1; });
  provider.on('server_error', (_ctx: Ctx, err: Error) => { serverErrors.push(err); });
  // oidc-provider has no revocation success event: count answered revocations of known tokens.
  provider.use(async (ctx: Ctx, next: () => Promise<void>) => {
    await next();
    if (ctx._matchedRouteName === 'revocation' && ctx.status === 200) {
      const entities = ctx.oidc?.entities ?? {};
      if (entities.RefreshToken || entities.AccessToken || entities.ClientCredentials) counts.revocations += 1;
    }
  });

  handler = provider.callback();

  let closed = false;
  return {
    issuer,
    provider,
    counts,
    serverErrors,
    async isRevoked(refreshToken: string) {
      const token = await provider.RefreshToken.find(refreshToken);
      if (!token || !token.isValid) return true;
      return !(await provider.Grant.find(token.grantId));
    },
    async stop() {
      await closeServer(server);
    },
    async start() {
      if (closed) throw new Error('the development provider was closed');
      if (server.listening) return;
      await listen(server, port, host);
    },
    async close() {
      closed = true;
      handler = undefined;
      await closeServer(server);
    },
  };
}
