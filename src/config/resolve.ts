import type { AuthMode, ConfigInput } from './schema.js';
import { parseDuration } from './durations.js';

export type ConfigPath = ReadonlyArray<string | number>;
export type Report = (path: ConfigPath, message: string, severity?: 'error' | 'warning') => void;

export interface CompiledRoute {
  index: number;
  name: string;
  prefix: string;
  upstream: string;
  rewritePrefix: string;
  auth: AuthMode;
  /** Sorted, de-duplicated: two routes with the same scopes share one cached token. */
  scopes: readonly string[];
  resource?: string;
  /** Cache key of this route's token: scopes plus resource. */
  tokenKey: string;
  /** Lower-cased header name, or null when the route turns the check off. */
  csrfHeader: string | null;
  methods?: ReadonlySet<string>;
  websocket: boolean;
  timeoutMs: number;
}

export interface IdentityConfig {
  provider: 'oidc' | 'entra';
  issuer?: string;
  authority?: string;
  knownAuthorities: string[];
  clientId: string;
  clientSecret?: string;
  clientCertificate?: { privateKeyFile: string; certificateFile: string };
  clientAssertionFile?: string;
  authMethod: 'client_secret_basic' | 'client_secret_post' | 'private_key_jwt';
  scopes: string[];
  extraAuthorizeParams: Record<string, string>;
  timeoutMs: number;
  clockToleranceSec: number;
  allowInsecureRequests: boolean;
}

export interface GatewayConfig {
  listen: { host: string; port: number };
  publicUrl: string;
  /** True when the browser reaches the gateway over https: Secure cookies, __Host- prefix. */
  secure: boolean;
  trustProxy: boolean;
  postLogoutRedirectUri: string;
  shutdownGraceMs: number;
  logging: { level: string; pretty: boolean; accessLog: boolean };
  metricsPort?: number;
  identity: IdentityConfig;
  session: { secrets: string[]; cookieName: string; idleMs: number; absoluteMs: number };
  tokenCache: { url: string; keys: string[]; refreshSkewMs: number };
  routes: CompiledRoute[];
  /** Every scope the gateway may ask for: sign-in scopes plus all route scopes. */
  knownScopes: ReadonlySet<string>;
  /** `file:LINE:COL` of config keys that runtime warnings name (filled in by the loader). */
  sourceOf: (path: ConfigPath) => string;
}

const MIN_SECRET_BYTES = 32;

export function tokenKeyOf(scopes: readonly string[], resource?: string): string {
  return resource ? `${scopes.join(' ')}|${resource}` : scopes.join(' ');
}

export function normalizeScopes(scopes: readonly string[] | undefined): string[] {
  return [...new Set(scopes ?? [])].sort();
}

function asList(v: string | string[]): string[] {
  // undefined only when load.ts runs the checks on a file whose value the schema refused.
  return Array.isArray(v) ? v : v === undefined ? [] : [v];
}

/** Cross-field checks and the compiled, ready-to-use form of a schema-valid config. */
export function resolveConfig(input: ConfigInput, report: Report): GatewayConfig {
  const publicUrl = input.publicUrl.replace(/\/$/, '');
  const secure = publicUrl.startsWith('https://');
  const id = input.identity;

  if (id.provider === 'oidc' && !id.issuer) report(['identity'], 'identity.issuer is required for provider oidc');
  if (id.provider === 'entra' && !id.authority) report(['identity'], 'identity.authority is required for provider entra');
  if (id.provider === 'oidc' && id.authority) report(['identity', 'authority'], 'authority is for provider entra; use issuer');
  const credentials = [id.clientSecret, id.clientCertificate, id.clientAssertionFile].filter((c) => c !== undefined).length;
  if (credentials !== 1) {
    report(['identity'], `exactly one client credential is required (clientSecret, clientCertificate or clientAssertionFile), found ${credentials}`);
  }
  if (id.clientAssertionFile && id.provider !== 'entra') report(['identity', 'clientAssertionFile'], 'clientAssertionFile is supported for provider entra only');
  const authMethod = id.tokenEndpointAuthMethod ?? (id.clientSecret ? 'client_secret_basic' : 'private_key_jwt');
  if (authMethod === 'private_key_jwt' && id.clientSecret && !id.clientCertificate) {
    report(['identity', 'tokenEndpointAuthMethod'], 'private_key_jwt needs clientCertificate');
  }
  if (authMethod !== 'private_key_jwt' && !id.clientSecret && id.clientCertificate) {
    report(['identity', 'tokenEndpointAuthMethod'], `${authMethod} needs clientSecret; use private_key_jwt with clientCertificate`);
  }
  for (const [url, path] of [[id.issuer, 'issuer'], [id.authority, 'authority']] as const) {
    if (url?.startsWith('http://') && !id.allowInsecureRequests) {
      report(['identity', path], `${path} must be https (set allowInsecureRequests: true for local development only)`);
    }
  }

  const sessionSecrets = asList(input.session.secret);
  sessionSecrets.forEach((s, i) => {
    if (Buffer.byteLength(s) < MIN_SECRET_BYTES) {
      report(Array.isArray(input.session.secret) ? ['session', 'secret', i] : ['session', 'secret'], `session secret must be at least ${MIN_SECRET_BYTES} bytes`);
    }
  });
  const cacheKeys = asList(input.tokenCache.encryptionKey);
  cacheKeys.forEach((s, i) => {
    if (Buffer.byteLength(s) < MIN_SECRET_BYTES) {
      report(Array.isArray(input.tokenCache.encryptionKey) ? ['tokenCache', 'encryptionKey', i] : ['tokenCache', 'encryptionKey'], `token cache encryption key must be at least ${MIN_SECRET_BYTES} bytes`);
    }
  });

  const cookieName = input.session.cookieName ?? (secure ? '__Host-bff' : 'bff');
  if (cookieName.startsWith('__Host-') && !secure) report(['session', 'cookieName'], 'a __Host- cookie needs an https publicUrl (browsers refuse it otherwise)');
  if (secure && !cookieName.startsWith('__Host-')) report(['session', 'cookieName'], 'use the __Host- prefix with an https publicUrl', 'warning');

  const idleMs = parseDuration(input.session.idleTimeout ?? '30m');
  const absoluteMs = parseDuration(input.session.absoluteTimeout ?? '12h');
  if (idleMs > absoluteMs) report(['session', 'idleTimeout'], 'idleTimeout is longer than absoluteTimeout and can never apply', 'warning');

  const routes: CompiledRoute[] = [];
  const byPrefix = new Map<string, number>();
  input.routes.forEach((r, index) => {
    const prefix = r.prefix === '/' ? '/' : r.prefix.replace(/\/+$/, '');
    if (/\/\/|\/\.\.?(\/|$)|[?#%\\;]/.test(prefix)) report(['routes', index, 'prefix'], 'prefix must be a plain path (no //, dot segments, %, \\, ;, ? or #)');
    if (byPrefix.has(prefix)) report(['routes', index, 'prefix'], `duplicate prefix ${prefix}: it shadows route ${byPrefix.get(prefix)! + 1} (line of the first wins)`);
    else byPrefix.set(prefix, index);
    if (prefix.startsWith('/auth/') || prefix === '/auth' || ['/healthz', '/readyz', '/metrics'].includes(prefix)) {
      report(['routes', index, 'prefix'], `prefix ${prefix} is reserved by the gateway`);
    }
    const scopes = normalizeScopes(r.scopes);
    if (r.auth !== 'none' && scopes.length === 0 && !r.resource) report(['routes', index], `route with auth: ${r.auth} needs scopes`);
    if (r.auth === 'none' && (scopes.length || r.resource)) report(['routes', index, 'scopes'], 'scopes are ignored on a route with auth: none', 'warning');
    const csrf = r.csrfHeader ?? 'X-CSRF';
    routes.push({
      index,
      name: r.name ?? prefix,
      prefix,
      upstream: r.upstream.replace(/\/$/, ''),
      rewritePrefix: r.rewritePrefix ?? prefix,
      auth: r.auth,
      scopes,
      resource: r.resource,
      tokenKey: tokenKeyOf(scopes, r.resource),
      csrfHeader: csrf === '' ? null : csrf.toLowerCase(),
      methods: r.methods ? new Set(r.methods) : undefined,
      websocket: r.websocket ?? false,
      timeoutMs: parseDuration(r.timeout ?? '30s'),
    });
  });
  const names = new Map<string, number>();
  for (const r of routes) {
    // A defaulted name is the prefix: a duplicate prefix, already reported, is not also a duplicate name.
    if (names.has(r.name) && input.routes[r.index]?.name !== undefined) report(['routes', r.index, 'name'], `duplicate route name ${r.name}`);
    names.set(r.name, r.index);
  }

  const signInScopes = normalizeScopes(id.scopes ?? ['openid', 'profile', 'offline_access']);
  if (!signInScopes.includes('openid')) report(['identity', 'scopes'], 'sign-in scopes must include openid');
  if (!signInScopes.includes('offline_access') && id.provider === 'oidc' && routes.some((r) => r.auth === 'user' || r.auth === 'user-or-client')) {
    report(['identity', 'scopes'], 'without offline_access most providers issue no refresh token, so route tokens cannot be renewed', 'warning');
  }
  const knownScopes = new Set([...signInScopes, ...routes.flatMap((r) => r.scopes)]);

  return {
    listen: { host: input.listen?.host ?? '0.0.0.0', port: input.listen?.port ?? 8080 },
    publicUrl,
    secure,
    trustProxy: input.trustProxy ?? false,
    postLogoutRedirectUri: input.postLogoutRedirectUri ?? publicUrl + '/',
    shutdownGraceMs: parseDuration(input.shutdownGracePeriod ?? '25s'),
    logging: { level: process.env.LOG_LEVEL || input.logging?.level || 'info', pretty: input.logging?.pretty ?? false, accessLog: input.logging?.accessLog ?? true },
    metricsPort: input.metrics?.port,
    identity: {
      provider: id.provider,
      issuer: id.issuer,
      authority: id.authority,
      knownAuthorities: id.knownAuthorities ?? [],
      clientId: id.clientId,
      clientSecret: id.clientSecret,
      clientCertificate: id.clientCertificate,
      clientAssertionFile: id.clientAssertionFile,
      authMethod,
      scopes: signInScopes,
      extraAuthorizeParams: id.extraAuthorizeParams ?? {},
      timeoutMs: parseDuration(id.timeout ?? '5s'),
      clockToleranceSec: Math.round(parseDuration(id.clockTolerance ?? '30s') / 1000),
      allowInsecureRequests: id.allowInsecureRequests ?? false,
    },
    session: { secrets: sessionSecrets, cookieName, idleMs, absoluteMs },
    tokenCache: { url: input.tokenCache.url ?? 'memory://', keys: cacheKeys, refreshSkewMs: parseDuration(input.tokenCache.refreshSkew ?? '60s') },
    routes,
    knownScopes,
    sourceOf: (path) => path.join('.'),
  };
}
