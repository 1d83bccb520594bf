/**
 * Microsoft Entra ID (Microsoft identity platform) through @azure/msal-node.
 *
 * One ConfidentialClientApplication per operation, bound through its cache plugin to one
 * partition of the token store (an account's, or the app's): MSAL's in-memory cache is
 * per application instance, so a shared instance would mix the tokens of accounts whose
 * requests run concurrently. Building one is cheap because the authority's metadata and
 * the cloud discovery answer are fetched once at init() and handed to every instance as
 * `authorityMetadata` / `cloudDiscoveryMetadata` (no per-request discovery). See
 * docs/entra.md.
 */
import { createHash } from 'node:crypto';
import {
  AuthError,
  ConfidentialClientApplication,
  InteractionRequiredAuthError,
  LogLevel,
  ProtocolMode,
  ServerError,
  type AuthenticationResult,
  type Configuration,
} from '@azure/msal-node';
import { createRemoteJWKSet, customFetch, importPKCS8, jwtVerify, SignJWT, type JWTPayload } from 'jose';
import type { IdentityConfig } from '../config/resolve.js';
import { KeyedMutex, MemoryPartitionStore, PartitionCachePlugin, accountPartition, appPartition, cachedResourceOf, type PartitionBinding } from './entra-cache.js';
import { loadEntraCredential, msalCredentialOptions, type EntraCredential } from './entra-credentials.js';
import { FetchNetworkClient, NETWORK_ERROR, type FetchLike } from './entra-network.js';
import {
  IdentityError,
  type AccountRef,
  type IdentityBackend,
  type LogoutTokenClaims,
  type PartitionStore,
  type RedeemedSignIn,
  type SignInChecks,
  type SignInRequest,
  type TokenGrant,
} from './types.js';
import { INTERACTION_ERRORS, verifyLogoutToken } from './logout-token.js';

const DEFAULT_PARTITION_TTL_MS = 24 * 60 * 60_000;
const AAD_INSTANCE_DISCOVERY = 'https://login.microsoftonline.com/common/discovery/instance?api-version=1.1&authorization_endpoint=';

export interface EntraOptions {
  /** How long an account's partition is kept after its last write (default 24h). */
  partitionTtlMs?: number;
  /** fetch for every call to the provider (tests: one that trusts a private CA). */
  fetch?: FetchLike;
}

interface ProviderMetadata {
  issuer: string;
  authorization_endpoint: string;
  token_endpoint: string;
  jwks_uri?: string;
  end_session_endpoint?: string;
  revocation_endpoint?: string;
  authorization_response_iss_parameter_supported?: boolean;
  id_token_signing_alg_values_supported?: string[];
  [key: string]: unknown;
}

/** Maps any MSAL / network failure to an IdentityError kind (the one wrapping boundary). */
export function wrapMsalError(err: unknown, what: string): IdentityError {
  if (err instanceof IdentityError) return err;
  if (err instanceof InteractionRequiredAuthError) {
    return new IdentityError('interaction_required', `${what}: ${err.errorCode}`, { cause: err, providerError: err.errorCode });
  }
  if (err instanceof ServerError) {
    const code = err.errorCode;
    if (code === 'invalid_grant') return new IdentityError('invalid_grant', `${what}: the grant is no longer valid`, { cause: err, providerError: code });
    if (INTERACTION_ERRORS.has(code)) return new IdentityError('interaction_required', `${what}: ${code}`, { cause: err, providerError: code });
    if ((err.status ?? 0) >= 500 || code === 'temporarily_unavailable' || code === 'server_error') {
      return new IdentityError('unavailable', `${what}: provider answered ${err.status ?? code}`, { cause: err, providerError: code });
    }
    return new IdentityError('invalid_response', `${what}: provider refused (${code})`, { cause: err, providerError: code });
  }
  if (err instanceof AuthError) {
    if (err.errorCode === NETWORK_ERROR) return new IdentityError('unavailable', `${what}: provider unreachable`, { cause: err });
    return new IdentityError('invalid_response', `${what}: ${err.errorCode}`, { cause: err, providerError: err.errorCode });
  }
  const e = err as { name?: string; cause?: { code?: string } };
  if (e?.name === 'TimeoutError' || e?.name === 'AbortError') return new IdentityError('unavailable', `${what}: provider did not answer in time`, { cause: err });
  if (e?.name === 'TypeError' && String((err as Error).message).includes('fetch failed')) {
    // The cause says why: ECONNREFUSED, or a TLS trust failure such as UNABLE_TO_VERIFY_LEAF_SIGNATURE.
    return new IdentityError('unavailable', `${what}: provider unreachable${e.cause?.code ? ` (${e.cause.code})` : ''}`, { cause: err });
  }
  return new IdentityError('invalid_response', `${what}: ${(err as Error)?.message ?? String(err)}`, { cause: err });
}

function trimSlash(url: string): string {
  return url.replace(/\/+$/, '');
}

/**
 * Microsoft's multi-tenant metadata names its issuer `…/{tenantid}/v2.0`: the token's tid
 * fills it in, or (for an authorization response's `iss`) any one tenant matches.
 */
export function issuerMatches(expected: string, iss: unknown, tid?: unknown): boolean {
  if (typeof iss !== 'string') return false;
  if (!expected.includes('{tenantid}')) return trimSlash(expected) === trimSlash(iss);
  if (typeof tid === 'string') return trimSlash(expected.replace('{tenantid}', tid)) === trimSlash(iss);
  const pattern = trimSlash(expected).split('{tenantid}').map((p) => p.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')).join('[^/]+');
  return new RegExp(`^${pattern}$`).test(trimSlash(iss));
}

const OIDC_SCOPES = new Set(['openid', 'profile', 'offline_access', 'email']);

/** The resource an Entra scope belongs to: `api://x/Read` → `api://x`; `User.Read` → Graph. */
function resourceOfScope(scope: string): string {
  const slash = scope.lastIndexOf('/');
  return slash > 0 && scope.includes(':') ? scope.slice(0, slash).toLowerCase() : 'https://graph.microsoft.com';
}

/**
 * The scopes of the code redemption. Entra ID consents to scopes of several resources at
 * the authorization endpoint but issues a token for one resource only (AADSTS28000 else):
 * the OpenID scopes plus the scopes of the first resource named.
 */
export function redemptionScopes(scopes: readonly string[]): string[] {
  const first = scopes.find((s) => !OIDC_SCOPES.has(s));
  if (first === undefined) return [...scopes];
  const resource = resourceOfScope(first);
  return scopes.filter((s) => OIDC_SCOPES.has(s) || resourceOfScope(s) === resource);
}

function toGrant(res: AuthenticationResult | null, what: string): TokenGrant {
  if (!res?.accessToken) throw new IdentityError('invalid_response', `${what}: no access token`);
  return {
    accessToken: res.accessToken,
    expiresAt: res.expiresOn ? res.expiresOn.getTime() : Date.now() + 300_000,
    scope: res.scopes.join(' '),
    idToken: res.idToken || undefined,
  };
}

export class EntraBackend implements IdentityBackend {
  readonly issuer: string;
  readonly ownsRefreshTokens = true;
  /** True when the authority is in knownAuthorities: MSAL's OIDC protocol mode, no instance discovery. */
  readonly oidcMode: boolean;
  readonly #partitions: PartitionStore;
  readonly #credential: EntraCredential;
  readonly #ttlMs: number;
  readonly #fetch?: FetchLike;
  readonly #mutex = new KeyedMutex();
  readonly #authority: string;
  #meta?: ProviderMetadata;
  #authorityMetadata?: string;
  #cloudDiscoveryMetadata?: string;
  #jwks?: ReturnType<typeof createRemoteJWKSet>;

  constructor(
    private readonly cfg: IdentityConfig,
    partitions: PartitionStore | undefined,
    options: EntraOptions = {},
  ) {
    if (!cfg.authority) throw new Error('identity.authority is required for provider entra');
    this.#authority = trimSlash(cfg.authority);
    this.issuer = this.#authority;
    const host = new URL(this.#authority).host.toLowerCase();
    this.oidcMode = cfg.knownAuthorities.some((a) => a.toLowerCase() === host);
    this.#partitions = partitions ?? new MemoryPartitionStore();
    this.#credential = loadEntraCredential(cfg);
    this.#ttlMs = options.partitionTtlMs ?? DEFAULT_PARTITION_TTL_MS;
    this.#fetch = options.fetch;
  }

  ready(): boolean {
    return this.#meta !== undefined;
  }

  /** The provider's discovery document (after init). */
  get metadata(): ProviderMetadata | undefined {
    return this.#meta;
  }

  /** Where MSAL itself would look for the discovery document of this authority. */
  get discoveryUrl(): string {
    const canonical = this.#authority + '/';
    const first = new URL(canonical).pathname.split('/').filter(Boolean)[0]?.toLowerCase();
    const plain = this.oidcMode || canonical.endsWith('v2.0/') || first === 'adfs';
    return `${canonical}${plain ? '' : 'v2.0/'}.well-known/openid-configuration`;
  }

  async #getJson(url: string): Promise<unknown> {
    const res = await (this.#fetch ?? globalThis.fetch)(url, { signal: AbortSignal.timeout(this.cfg.timeoutMs), redirect: 'manual' });
    if (res.status >= 500 || res.status === 429) throw new IdentityError('unavailable', `discovery: ${new URL(url).origin} answered ${res.status}`);
    if (!res.ok) throw new IdentityError('invalid_response', `discovery: ${new URL(url).origin} answered ${res.status}`);
    return res.json();
  }

  async init(): Promise<void> {
    let meta: ProviderMetadata;
    let cloud: string | undefined;
    try {
      meta = (await this.#getJson(this.discoveryUrl)) as ProviderMetadata;
      if (!this.oidcMode) {
        const canonical = this.#authority + '/';
        const answer = (await this.#getJson(`${AAD_INSTANCE_DISCOVERY}${encodeURIComponent(`${canonical}oauth2/v2.0/authorize`)}`)) as { metadata?: unknown[] };
        if (Array.isArray(answer?.metadata) && answer.metadata.length) cloud = JSON.stringify(answer);
      }
    } catch (err) {
      throw wrapMsalError(err, 'discovery');
    }
    for (const field of ['issuer', 'authorization_endpoint', 'token_endpoint'] as const) {
      if (typeof meta?.[field] !== 'string') throw new IdentityError('invalid_response', `discovery: the document at ${this.discoveryUrl} has no ${field}`);
    }
    if (meta.jwks_uri) {
      this.#jwks = createRemoteJWKSet(new URL(meta.jwks_uri), {
        timeoutDuration: this.cfg.timeoutMs,
        cooldownDuration: 30_000,
        ...(this.#fetch ? { [customFetch]: this.#fetch as never } : {}),
      });
    }
    this.#authorityMetadata = JSON.stringify(meta);
    this.#cloudDiscoveryMetadata = cloud;
    this.#meta = meta;
  }

  #metaOrThrow(): ProviderMetadata {
    if (!this.#meta) throw new IdentityError('unavailable', 'provider metadata not loaded yet');
    return this.#meta;
  }

  /** A ConfidentialClientApplication whose token cache is bound to one partition. */
  #app(plugin: PartitionCachePlugin | undefined, extraTokenParams?: { grantType: string; params: Record<string, string> }): ConfidentialClientApplication {
    this.#metaOrThrow();
    const config: Configuration = {
      auth: {
        clientId: this.cfg.clientId,
        authority: this.#authority,
        knownAuthorities: this.cfg.knownAuthorities,
        authorityMetadata: this.#authorityMetadata,
        ...(this.#cloudDiscoveryMetadata ? { cloudDiscoveryMetadata: this.#cloudDiscoveryMetadata } : {}),
        ...msalCredentialOptions(this.#credential),
      },
      cache: plugin ? { cachePlugin: plugin } : {},
      system: {
        ...(this.oidcMode ? { protocolMode: ProtocolMode.OIDC } : {}),
        networkClient: new FetchNetworkClient({ timeoutMs: this.cfg.timeoutMs, fetch: this.#fetch, extraTokenParams }),
        loggerOptions: { logLevel: LogLevel.Error, piiLoggingEnabled: false, loggerCallback: () => undefined },
      },
    };
    return new ConfidentialClientApplication(config);
  }

  #plugin(binding: PartitionBinding): PartitionCachePlugin {
    return new PartitionCachePlugin(this.#partitions, binding, this.#ttlMs, {
      mutex: this.#mutex,
      admitSignIn: (idToken) => this.#verifyIdToken(idToken),
    });
  }

  async signInUrl(req: SignInRequest): Promise<URL> {
    const extra: Record<string, string> = { ...this.cfg.extraAuthorizeParams, ...req.extra };
    const { prompt, login_hint: loginHint, domain_hint: domainHint, claims, ...rest } = extra;
    let url: string;
    try {
      url = await this.#app(undefined).getAuthCodeUrl({
        scopes: [...req.scopes],
        redirectUri: req.redirectUri,
        responseMode: 'query',
        state: req.state,
        nonce: req.nonce,
        codeChallenge: createHash('sha256').update(req.codeVerifier).digest('base64url'),
        codeChallengeMethod: 'S256',
        prompt,
        loginHint,
        domainHint,
        claims,
        extraQueryParameters: Object.keys(rest).length ? rest : undefined,
      });
    } catch (err) {
      throw wrapMsalError(err, 'sign-in request');
    }
    const out = new URL(url);
    // MSAL has no place for RFC 8707 resource indicators in the authorization request.
    for (const r of req.resources ?? []) out.searchParams.append('resource', r);
    return out;
  }

  async redeemCode(callbackUrl: URL, checks: SignInChecks): Promise<RedeemedSignIn> {
    const meta = this.#metaOrThrow();
    const q = callbackUrl.searchParams;
    const error = q.get('error');
    if (error) throw new IdentityError(INTERACTION_ERRORS.has(error) ? 'interaction_required' : 'invalid_request', `sign-in: the provider answered ${error}`, { providerError: error });
    const state = q.get('state');
    if (!state || state !== checks.state) throw new IdentityError('invalid_request', 'sign-in: state mismatch');
    // RFC 9207: the response names the issuer that sent it (mix-up defence).
    const iss = q.get('iss');
    if (iss !== null ? !issuerMatches(meta.issuer, iss) : meta.authorization_response_iss_parameter_supported === true) {
      throw new IdentityError('invalid_request', 'sign-in: the authorization response comes from another issuer');
    }
    const code = q.get('code');
    if (!code) throw new IdentityError('invalid_request', 'sign-in: no code');
    const plugin = this.#plugin({ kind: 'sign-in' });
    let res: AuthenticationResult;
    try {
      res = await this.#app(plugin).acquireTokenByCode(
        { code, scopes: redemptionScopes(this.cfg.scopes), redirectUri: checks.redirectUri, codeVerifier: checks.codeVerifier, nonce: checks.nonce, state: checks.state },
        { code, state },
      );
    } catch (err) {
      throw wrapMsalError(err, 'code redemption');
    }
    const homeAccountId = res.account?.homeAccountId;
    const claims = (res.idTokenClaims ?? {}) as Record<string, unknown>;
    if (!homeAccountId || !res.idToken || typeof claims.sub !== 'string' || typeof claims.iss !== 'string') {
      throw new IdentityError('invalid_response', 'code redemption: no ID token or account');
    }
    if (plugin.partition !== accountPartition(homeAccountId)) throw new IdentityError('invalid_response', 'code redemption: the token cache was not stored for this account');
    return {
      account: { key: homeAccountId, iss: claims.iss, sub: claims.sub },
      claims: { ...claims },
      idToken: res.idToken,
      sid: typeof claims.sid === 'string' ? claims.sid : undefined,
      accessToken: res.accessToken || undefined,
      expiresAt: res.expiresOn?.getTime(),
      scope: res.scopes.join(' '),
    };
  }

  /** ID token signature, issuer and audience (MSAL only decodes it; nonce it checks). */
  async #verifyIdToken(idToken: string): Promise<void> {
    const meta = this.#metaOrThrow();
    if (!this.#jwks) throw new IdentityError('invalid_response', 'code redemption: the provider has no jwks_uri to verify the ID token');
    let payload: JWTPayload;
    try {
      ({ payload } = await jwtVerify(idToken, this.#jwks, {
        audience: this.cfg.clientId,
        algorithms: (meta.id_token_signing_alg_values_supported ?? ['RS256']).filter((a) => a !== 'none'),
        clockTolerance: this.cfg.clockToleranceSec,
      }));
    } catch (err) {
      throw wrapJoseError(err, 'ID token rejected');
    }
    if (!issuerMatches(meta.issuer, payload.iss, payload.tid)) throw new IdentityError('invalid_response', 'ID token rejected: issuer mismatch');
  }

  async refresh(account: AccountRef, _refreshToken: string | undefined, scopes: readonly string[], resource?: string): Promise<TokenGrant> {
    this.#metaOrThrow();
    return this.#mutex.run(accountPartition(account.key), async () => {
      const plugin = this.#plugin({ kind: 'account', homeAccountId: account.key });
      const app = this.#app(plugin);
      try {
        const cached = await app.getTokenCache().getAccountByHomeId(account.key);
        if (!cached) throw new IdentityError('invalid_grant', 'refresh: the account has no tokens in the cache');
        const request = { account: cached, scopes: [...scopes], ...(resource ? { resource } : {}) };
        let res = await app.acquireTokenSilent(request);
        // MSAL checks a cached token's resource only when the request names one: a route
        // without a resource indicator could get a token acquired for another route's.
        if (!resource && res.fromCache && cachedResourceOf(plugin.snapshot, res.accessToken)) {
          res = await app.acquireTokenSilent({ ...request, forceRefresh: true });
        }
        return toGrant(res, 'refresh');
      } catch (err) {
        throw wrapMsalError(err, 'refresh');
      }
    });
  }

  async clientCredentials(scopes: readonly string[], resource?: string): Promise<TokenGrant> {
    this.#metaOrThrow();
    return this.#mutex.run(appPartition(resource), async () => {
      // MSAL sends no resource indicator with this grant: the network client adds it.
      const app = this.#app(this.#plugin({ kind: 'app', resource }), resource ? { grantType: 'client_credentials', params: { resource } } : undefined);
      try {
        return toGrant(await app.acquireTokenByClientCredential({ scopes: [...scopes] }), 'client credentials');
      } catch (err) {
        throw wrapMsalError(err, 'client credentials');
      }
    });
  }

  /** RFC 7009 where the provider has it (Entra ID has not: then false). */
  async revoke(refreshToken: string): Promise<boolean> {
    const meta = this.#metaOrThrow();
    if (!meta.revocation_endpoint) return false;
    const form = new URLSearchParams({ token: refreshToken, token_type_hint: 'refresh_token', client_id: this.cfg.clientId });
    const headers: Record<string, string> = { 'content-type': 'application/x-www-form-urlencoded', accept: 'application/json' };
    switch (this.#credential.kind) {
      case 'secret':
        headers.authorization = 'Basic ' + Buffer.from(`${encodeURIComponent(this.cfg.clientId)}:${encodeURIComponent(this.#credential.secret)}`).toString('base64');
        break;
      case 'certificate': {
        const c = this.#credential.certificate;
        const jwt = await new SignJWT({})
          .setProtectedHeader({ alg: 'PS256', typ: 'JWT', 'x5t#S256': Buffer.from(c.thumbprintSha256, 'hex').toString('base64url'), x5c: c.x5cChain })
          .setIssuer(this.cfg.clientId)
          .setSubject(this.cfg.clientId)
          .setAudience(meta.token_endpoint)
          .setJti(createHash('sha256').update(String(Math.random()) + Date.now()).digest('base64url'))
          .setIssuedAt()
          .setExpirationTime('5m')
          .sign(await importPKCS8(c.privateKey, 'PS256'));
        form.set('client_assertion_type', 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer');
        form.set('client_assertion', jwt);
        break;
      }
      case 'assertionFile':
        form.set('client_assertion_type', 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer');
        form.set('client_assertion', this.#credential.file.read());
        break;
    }
    let res: Response;
    try {
      res = await (this.#fetch ?? globalThis.fetch)(meta.revocation_endpoint, { method: 'POST', headers, body: form.toString(), signal: AbortSignal.timeout(this.cfg.timeoutMs), redirect: 'manual' });
      await res.arrayBuffer();
    } catch (err) {
      throw wrapMsalError(err, 'revocation');
    }
    if (res.status >= 500) throw new IdentityError('unavailable', `revocation: provider answered ${res.status}`);
    if (!res.ok) throw new IdentityError('invalid_response', `revocation: provider answered ${res.status}`);
    return true;
  }

  /**
   * Deletes the account's partition; where the provider has a revocation endpoint, its
   * refresh tokens are revoked first (best effort: the gateway forgets them either way).
   */
  async forgetAccount(accountKey: string): Promise<void> {
    const partition = accountPartition(accountKey);
    await this.#mutex.run(partition, async () => {
      if (this.#meta?.revocation_endpoint) {
        const serialized = await this.#partitions.load(partition);
        const secrets = serialized ? Object.values((JSON.parse(serialized) as { RefreshToken?: Record<string, { secret?: string }> }).RefreshToken ?? {}).map((t) => t.secret) : [];
        for (const secret of secrets) if (secret) await this.revoke(secret).catch(() => false);
      }
      await this.#partitions.delete(partition);
    });
  }

  /**
   * The account key sessions are stored under, from a logout token's iss and sub: MSAL's
   * homeAccountId is `sub` when the provider sends no client_info (OpenID Connect providers
   * in OIDC protocol mode, such as the development provider). Entra ID's own homeAccountId is
   * `<oid>.<tid>` from client_info, which no `sub` gives (Entra sends no back-channel logout).
   */
  accountKeyOf(_iss: string, sub: string): string {
    return sub;
  }

  logoutUrl(params: { idTokenHint?: string; postLogoutRedirectUri: string }): URL | undefined {
    const meta = this.#metaOrThrow();
    if (!meta.end_session_endpoint) return undefined;
    const url = new URL(meta.end_session_endpoint);
    if (params.idTokenHint) url.searchParams.set('id_token_hint', params.idTokenHint);
    url.searchParams.set('post_logout_redirect_uri', params.postLogoutRedirectUri);
    url.searchParams.set('client_id', this.cfg.clientId);
    return url;
  }

  /** OpenID Connect Back-Channel Logout 1.0, section 2.6. */
  async verifyLogoutToken(token: string): Promise<LogoutTokenClaims> {
    const meta = this.#metaOrThrow();
    if (!this.#jwks) throw new IdentityError('invalid_request', 'provider has no jwks_uri');
    const { claims, payload } = await verifyLogoutToken(token, { jwks: this.#jwks, clientId: this.cfg.clientId, algorithms: meta.id_token_signing_alg_values_supported, clockToleranceSec: this.cfg.clockToleranceSec });
    if (!issuerMatches(meta.issuer, payload.iss, payload.tid)) throw new IdentityError('invalid_request', 'logout token rejected: issuer mismatch');
    return claims;
  }

  async close(): Promise<void> {
    // Nothing is held open: every operation's application is dropped when it ends.
  }
}

function wrapJoseError(err: unknown, what: string): IdentityError {
  const e = err as { name?: string; code?: string };
  if (e?.code === 'ERR_JWKS_TIMEOUT' || e?.name === 'TimeoutError' || (e?.name === 'TypeError' && String((err as Error).message).includes('fetch failed'))) {
    return new IdentityError('unavailable', `${what}: keys unreachable`, { cause: err });
  }
  return new IdentityError('invalid_response', what, { cause: err });
}
