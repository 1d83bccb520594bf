/**
 * A hostile OpenID provider for security tests: a small node:http server with its own
 * discovery document, JWKS, authorize endpoint (it redirects straight back to the
 * redirect_uri with a code and the state it received, and the RFC 9207 `iss`) and token
 * endpoint, whose ID tokens it mints with jose exactly as the test says: bad signatures,
 * `alg: none`, wrong `iss`/`aud`/`azp`/`nonce`, missing claims, timestamps outside the
 * clock tolerance, missing or unknown `kid`s, rotated keys, changed subjects on refresh.
 *
 * Plus recording upstreams and a gateway configured against it through routes.yaml text
 * (the same path as production: parseRoutesFile, createGateway, listen).
 */
import { createHash, createPublicKey, randomBytes, type JsonWebKey } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { exportJWK, generateKeyPair, SignJWT, type JWK } from 'jose';
import type { Gateway } from '../../src/server.js';
import { CookieJar, followRedirects, type BrowseResponse } from './browserless.js';
import { freePort, startGatewayFromYaml, type LogCapture } from './stack.js';
import { readBody } from '../../examples/demo/api.js';

export const HOSTILE_CLIENT_ID = 'bff-hostile';
export const HOSTILE_CLIENT_SECRET = 'hostile-client-secret-0123456789abcdef';
export const SESSION_SECRET = 'hostile-session-secret-0123456789abcdef-x';
export const CACHE_KEY = 'hostile-cache-key-0123456789abcdef-xyzxyz';

export interface SigningKey {
  kid: string;
  privateKey: CryptoKey;
  jwk: JWK;
}

export async function newSigningKey(kid = 'k-' + randomBytes(6).toString('hex')): Promise<SigningKey> {
  const { privateKey, publicKey } = await generateKeyPair('RS256', { extractable: true });
  const jwk = { ...(await exportJWK(publicKey)), kid, alg: 'RS256', use: 'sig' };
  return { kid, privateKey, jwk };
}

/** How one ID token is minted. */
export interface MintOptions {
  /** Claims merged over the honest ones; a value of undefined removes the claim. */
  claims?: Record<string, unknown>;
  /** Key to sign with (default: the provider's current signing key). */
  key?: SigningKey;
  /** The `kid` header: default the key's kid; null leaves it out; a string (or one per token) names another. */
  kid?: string | null | (() => string);
  /**
   * 'tampered': a valid signature with one byte changed; 'none': an unsigned JWT (alg none);
   * 'hs256-public-key': HS256 with the key's public PEM as the MAC secret (algorithm confusion).
   */
  signature?: 'valid' | 'tampered' | 'none' | 'hs256-public-key';
}

/** What the provider does on the next logins; tests change it between steps. */
export interface Behaviour {
  /** The user who "signs in" at the authorize endpoint. */
  subject: string;
  /** The ID token of the authorization code grant. */
  codeIdToken: MintOptions;
  /** The ID token of a refresh grant; undefined: the refresh response carries none. */
  refreshIdToken?: MintOptions;
  /** The `iss` parameter of the redirect back: default the issuer; null leaves it out. */
  callbackIss?: string | null;
  /** Parameters appended to the redirect back (e.g. a second code or state). */
  callbackExtra?: Array<[string, string]>;
}

export interface HostileCounts {
  discovery: number;
  jwks: number;
  authorize: number;
  codeGrants: number;
  refreshGrants: number;
  /** Token requests the provider refused (bad client auth, PKCE, code). */
  refusedTokenRequests: number;
}

export interface HostileProvider {
  issuer: string;
  counts: HostileCounts;
  behaviour: Behaviour;
  /** The keys the JWKS publishes (in order), plus raw entries served as they are. */
  published: SigningKey[];
  rawJwks: unknown[];
  /** The key ID tokens are signed with unless MintOptions.key says otherwise. */
  signingKey: SigningKey;
  /** Every token the provider handed out (ID, access, refresh): none may ever leak. */
  issued: string[];
  /** Parameters of the authorize requests received. */
  authorizeRequests: URLSearchParams[];
  /** Publishes a new key (alone) and signs with it from now on. */
  rotate(): Promise<SigningKey>;
  close(): Promise<void>;
}

export interface HostileProviderOptions {
  /** Members merged over the discovery document; a value of undefined removes one. */
  discovery?: Record<string, unknown>;
}

function b64url(value: unknown): string {
  return Buffer.from(JSON.stringify(value)).toString('base64url');
}

function json(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'cache-control': 'no-store', 'content-length': Buffer.byteLength(text) });
  res.end(text);
}

interface PendingCode {
  clientId: string;
  redirectUri: string;
  nonce?: string;
  codeChallenge?: string;
  scope: string;
  subject: string;
}

export async function startHostileProvider(opts: HostileProviderOptions = {}): Promise<HostileProvider> {
  const counts: HostileCounts = { discovery: 0, jwks: 0, authorize: 0, codeGrants: 0, refreshGrants: 0, refusedTokenRequests: 0 };
  const codes = new Map<string, PendingCode>();
  const refreshTokens = new Map<string, { subject: string }>();
  const first = await newSigningKey('k-initial');
  let server: Server;
  let issuer = '';

  async function mint(subject: string, base: Record<string, unknown>, mintOpts: MintOptions): Promise<string> {
    const now = Math.floor(Date.now() / 1000);
    const claims: Record<string, unknown> = { iss: issuer, sub: subject, aud: HOSTILE_CLIENT_ID, iat: now, exp: now + 300, ...base };
    for (const [k, v] of Object.entries(mintOpts.claims ?? {})) {
      if (v === undefined) delete claims[k];
      else claims[k] = v;
    }
    if (mintOpts.signature === 'none') return `${b64url({ alg: 'none', typ: 'JWT' })}.${b64url(claims)}.`;
    const key = mintOpts.key ?? provider.signingKey;
    const header: { alg: string; typ: string; kid?: string } = { alg: 'RS256', typ: 'JWT' };
    if (mintOpts.kid !== null) header.kid = typeof mintOpts.kid === 'function' ? mintOpts.kid() : (mintOpts.kid ?? key.kid);
    if (mintOpts.signature === 'hs256-public-key') {
      const pem = createPublicKey({ key: key.jwk as JsonWebKey, format: 'jwk' }).export({ type: 'spki', format: 'pem' });
      return new SignJWT(claims).setProtectedHeader({ ...header, alg: 'HS256' }).sign(Buffer.from(pem));
    }
    // SignJWT validates nothing about the claims it is given: that is the point here.
    const jwt = await new SignJWT(claims).setProtectedHeader(header).sign(key.privateKey);
    if (mintOpts.signature !== 'tampered') return jwt;
    const [h, p, s] = jwt.split('.') as [string, string, string];
    const sig = Buffer.from(s, 'base64url');
    sig[Math.floor(sig.length / 2)] ^= 0x01;
    return `${h}.${p}.${sig.toString('base64url')}`;
  }

  function clientOk(req: IncomingMessage, form: URLSearchParams): boolean {
    const basic = /^Basic (.+)$/i.exec(req.headers.authorization ?? '');
    if (basic) {
      const [id, secret] = Buffer.from(basic[1]!, 'base64').toString('utf8').split(':').map(decodeURIComponent);
      return id === HOSTILE_CLIENT_ID && secret === HOSTILE_CLIENT_SECRET;
    }
    return form.get('client_id') === HOSTILE_CLIENT_ID && form.get('client_secret') === HOSTILE_CLIENT_SECRET;
  }

  async function token(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const form = new URLSearchParams(await readBody(req));
    const refuse = (error: string) => {
      counts.refusedTokenRequests += 1;
      json(res, 400, { error });
    };
    if (!clientOk(req, form)) return refuse('invalid_client');
    const n = randomBytes(8).toString('hex');
    if (form.get('grant_type') === 'authorization_code') {
      const pending = codes.get(form.get('code') ?? '');
      codes.delete(form.get('code') ?? '');
      if (!pending || pending.redirectUri !== form.get('redirect_uri')) return refuse('invalid_grant');
      const verifier = form.get('code_verifier') ?? '';
      if (!pending.codeChallenge || createHash('sha256').update(verifier).digest('base64url') !== pending.codeChallenge) return refuse('invalid_grant');
      counts.codeGrants += 1;
      const idToken = await mint(pending.subject, pending.nonce === undefined ? {} : { nonce: pending.nonce }, provider.behaviour.codeIdToken);
      const accessToken = `at-signin-${n}`;
      const refreshToken = `rt-${n}`;
      refreshTokens.set(refreshToken, { subject: pending.subject });
      provider.issued.push(idToken, accessToken, refreshToken);
      return json(res, 200, { access_token: accessToken, token_type: 'Bearer', expires_in: 300, refresh_token: refreshToken, id_token: idToken, scope: pending.scope });
    }
    if (form.get('grant_type') === 'refresh_token') {
      const rt = refreshTokens.get(form.get('refresh_token') ?? '');
      if (!rt) return refuse('invalid_grant');
      counts.refreshGrants += 1;
      const scope = form.get('scope') ?? '';
      // The scope goes into the token so the upstream shows which route's token it received.
      const accessToken = `at-${scope.replace(/\s+/g, '+')}-${n}`;
      const body: Record<string, unknown> = { access_token: accessToken, token_type: 'Bearer', expires_in: 300, scope };
      if (provider.behaviour.refreshIdToken) {
        const idToken = await mint(rt.subject, {}, provider.behaviour.refreshIdToken);
        body.id_token = idToken;
        provider.issued.push(idToken);
      }
      provider.issued.push(accessToken);
      return json(res, 200, body);
    }
    return refuse('unsupported_grant_type');
  }

  function authorize(url: URL, res: ServerResponse): void {
    counts.authorize += 1;
    const q = url.searchParams;
    provider.authorizeRequests.push(q);
    const redirectUri = q.get('redirect_uri');
    if (q.get('client_id') !== HOSTILE_CLIENT_ID || !redirectUri) return json(res, 400, { error: 'invalid_request' });
    const code = 'code-' + randomBytes(12).toString('base64url');
    codes.set(code, {
      clientId: HOSTILE_CLIENT_ID,
      redirectUri,
      nonce: q.get('nonce') ?? undefined,
      codeChallenge: q.get('code_challenge_method') === 'S256' ? (q.get('code_challenge') ?? undefined) : undefined,
      scope: q.get('scope') ?? 'openid',
      subject: provider.behaviour.subject,
    });
    const back = new URL(redirectUri);
    back.searchParams.append('code', code);
    if (q.get('state') !== null) back.searchParams.append('state', q.get('state')!);
    const iss = provider.behaviour.callbackIss === undefined ? issuer : provider.behaviour.callbackIss;
    if (iss !== null) back.searchParams.append('iss', iss);
    for (const [k, v] of provider.behaviour.callbackExtra ?? []) back.searchParams.append(k, v);
    res.writeHead(302, { location: back.href, 'cache-control': 'no-store' });
    res.end();
  }

  server = createServer((req, res) => {
    const url = new URL(req.url ?? '/', issuer);
    void (async () => {
      switch (url.pathname) {
        case '/.well-known/openid-configuration': {
          counts.discovery += 1;
          const doc: Record<string, unknown> = {
            issuer,
            authorization_endpoint: `${issuer}/authorize`,
            token_endpoint: `${issuer}/token`,
            jwks_uri: `${issuer}/jwks`,
            end_session_endpoint: `${issuer}/logout`,
            response_types_supported: ['code'],
            subject_types_supported: ['public'],
            grant_types_supported: ['authorization_code', 'refresh_token'],
            id_token_signing_alg_values_supported: ['RS256'],
            code_challenge_methods_supported: ['S256'],
            token_endpoint_auth_methods_supported: ['client_secret_basic', 'client_secret_post'],
            authorization_response_iss_parameter_supported: true,
          };
          for (const [k, v] of Object.entries(opts.discovery ?? {})) {
            if (v === undefined) delete doc[k];
            else doc[k] = v;
          }
          return json(res, 200, doc);
        }
        case '/jwks':
          counts.jwks += 1;
          return json(res, 200, { keys: [...provider.published.map((k) => k.jwk), ...provider.rawJwks] });
        case '/authorize':
          return authorize(url, res);
        case '/token':
          return token(req, res);
        default:
          return json(res, 404, { error: 'not_found' });
      }
    })().catch(() => {
      if (!res.headersSent) json(res, 500, { error: 'server_error' });
      else res.destroy();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  issuer = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;

  const provider: HostileProvider = {
    issuer,
    counts,
    behaviour: { subject: 'alice', codeIdToken: {} },
    published: [first],
    rawJwks: [],
    signingKey: first,
    issued: [],
    authorizeRequests: [],
    async rotate() {
      const next = await newSigningKey();
      provider.published = [next];
      provider.signingKey = next;
      return next;
    },
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
  return provider;
}

export interface Received {
  method: string;
  url: string;
  headers: Record<string, string | string[] | undefined>;
  bodyBytes: number;
}

export interface RecordingUpstream {
  name: string;
  url: string;
  received: Received[];
  close(): Promise<void>;
}

/** An upstream that answers 200 to everything and records what reached it. */
export async function startRecordingUpstream(name: string): Promise<RecordingUpstream> {
  const received: Received[] = [];
  const server = createServer((req, res) => {
    let bodyBytes = 0;
    req.on('data', (c: Buffer) => (bodyBytes += c.length));
    req.on('end', () => {
      received.push({ method: req.method ?? 'GET', url: req.url ?? '/', headers: { ...req.headers }, bodyBytes });
      const text = JSON.stringify({ upstream: name, path: req.url });
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
      res.end(text);
    });
    req.on('error', () => res.destroy());
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    name,
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    received,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

export interface HostileStack {
  provider: HostileProvider;
  /** /api (user, api.read) and /readonly (user, GET only). */
  apiUpstream: RecordingUpstream;
  /** /other (user, other.read) and /api-internal (none). */
  internalUpstream: RecordingUpstream;
  /** The catch-all / (none). */
  spaUpstream: RecordingUpstream;
  gateway: Gateway;
  /** Where the gateway listens. */
  url: string;
  publicUrl: string;
  cookieName: string;
  logs: LogCapture;
  /** Requests that reached any upstream so far. */
  upstreamCount(): number;
  close(): Promise<void>;
}

export interface HostileStackOptions {
  provider?: HostileProviderOptions;
  /** The origin the browser sees; default the listening address. */
  publicUrl?: string;
  sessionSecret?: string;
  /** Extra top-level YAML (e.g. trustProxy: true). */
  extraYaml?: string;
}

/** The hostile provider, three recording upstreams and a gateway configured through routes.yaml. */
export async function startHostileStack(opts: HostileStackOptions = {}): Promise<HostileStack> {
  const provider = await startHostileProvider(opts.provider);
  const apiUpstream = await startRecordingUpstream('api');
  const internalUpstream = await startRecordingUpstream('internal');
  const spaUpstream = await startRecordingUpstream('spa');
  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  const publicUrl = opts.publicUrl ?? url;
  const yaml = `listen: { host: 127.0.0.1, port: ${port} }
publicUrl: ${publicUrl}
${opts.extraYaml ?? ''}
identity:
  provider: oidc
  issuer: ${provider.issuer}
  allowInsecureRequests: true
  clientId: ${HOSTILE_CLIENT_ID}
  clientSecret: \${CLIENT_SECRET}
  scopes: [openid, profile, offline_access, api.read]
session:
  secret: \${SESSION_SECRET}
tokenCache:
  url: memory://
  encryptionKey: \${CACHE_KEY}
routes:
  - name: api
    prefix: /api
    upstream: ${apiUpstream.url}
    auth: user
    scopes: [api.read]
  - name: internal
    prefix: /api-internal
    upstream: ${internalUpstream.url}
    auth: none
  - name: other
    prefix: /other
    upstream: ${internalUpstream.url}
    auth: user
    scopes: [other.read]
  - name: readonly
    prefix: /readonly
    upstream: ${apiUpstream.url}
    auth: user
    scopes: [api.read]
    methods: [GET]
  - name: spa
    prefix: /
    upstream: ${spaUpstream.url}
    auth: none
`;
  const env = { CLIENT_SECRET: HOSTILE_CLIENT_SECRET, SESSION_SECRET: opts.sessionSecret ?? SESSION_SECRET, CACHE_KEY };
  const { gateway, logs } = await startGatewayFromYaml(yaml, env, port);
  return {
    provider,
    apiUpstream,
    internalUpstream,
    spaUpstream,
    gateway,
    url,
    publicUrl,
    cookieName: gateway.deps.config.session.cookieName,
    logs,
    upstreamCount: () => apiUpstream.received.length + internalUpstream.received.length + spaUpstream.received.length,
    async close() {
      await gateway.close();
      await Promise.all([apiUpstream.close(), internalUpstream.close(), spaUpstream.close(), provider.close()]);
    },
  };
}

export interface LoginAttempt {
  jar: CookieJar;
  /** The gateway's answer to /auth/login (a 302 to the provider, or a refusal). */
  login: BrowseResponse;
  /** The callback URL the provider sent the browser back to. */
  callbackUrl?: string;
  /** The gateway's answer to the callback (its redirect is not followed). */
  callback?: BrowseResponse;
}

/**
 * One sign-in through the gateway and the hostile provider, in `jar`: /auth/login, the
 * authorize endpoint's redirect back, and the callback, whose answer is returned unfollowed.
 */
export async function attemptLogin(stack: Pick<HostileStack, 'url'>, opts: { jar?: CookieJar; returnTo?: string; query?: string } = {}): Promise<LoginAttempt> {
  const jar = opts.jar ?? new CookieJar();
  const gateway = new URL(stack.url);
  const query = opts.query ?? `returnTo=${encodeURIComponent(opts.returnTo ?? '/')}`;
  const login = await followRedirects(`${stack.url}/auth/login?${query}`, jar, { stopAt: () => true });
  if (login.status !== 302 || !login.location) return { jar, login };
  const back = await followRedirects(login.location, jar, { stopAt: (loc) => loc.origin === gateway.origin || loc.pathname === '/auth/callback' });
  if (!back.location) return { jar, login };
  // The callback URL names the public origin; the request goes to where the gateway listens.
  const cb = new URL(back.location);
  const callbackUrl = stack.url + cb.pathname + cb.search;
  const callback = await followRedirects(callbackUrl, jar, { stopAt: () => true });
  return { jar, login, callbackUrl, callback };
}

/** The session cookie a response sets, as a Cookie header value, if it sets one. */
export function setCookieOf(res: { headers: Record<string, string | string[] | undefined> }, name: string): string | undefined {
  const setCookie = res.headers['set-cookie'];
  const line = (Array.isArray(setCookie) ? setCookie : setCookie ? [setCookie] : []).find((l) => l.startsWith(`${name}=`));
  return line?.split(';')[0];
}

/** A request as the SPA makes it (same-origin, X-CSRF); JSON body parsed when there is one. */
export async function spaCall(stack: Pick<HostileStack, 'url'>, path: string, cookie: string | undefined, init: { method?: string; headers?: Record<string, string> } = {}) {
  const res = await fetch(stack.url + path, {
    method: init.method ?? 'GET',
    redirect: 'manual',
    headers: { ...(cookie ? { cookie } : {}), 'x-csrf': '1', 'sec-fetch-site': 'same-origin', ...init.headers },
  });
  const text = await res.text();
  let body: Record<string, unknown> | undefined;
  try {
    body = JSON.parse(text) as Record<string, unknown>;
  } catch {
    body = undefined;
  }
  return { status: res.status, headers: res.headers, text, json: body };
}

/** True when this Cookie header value is a working session on /auth/user. */
export async function isSignedIn(stack: Pick<HostileStack, 'url'>, cookie: string | undefined): Promise<boolean> {
  if (!cookie) return false;
  return (await spaCall(stack, '/auth/user', cookie)).status === 200;
}
