import { createHash, createPrivateKey, X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import * as client from 'openid-client';
import { createRemoteJWKSet, errors as joseErrors, importPKCS8, jwtVerify, type JWTPayload } from 'jose';
import type { IdentityConfig } from '../config/resolve.js';
import {
  IdentityError,
  type AccountRef,
  type IdentityBackend,
  type LogoutTokenClaims,
  type RedeemedSignIn,
  type SignInChecks,
  type SignInRequest,
  type TokenGrant,
} from './types.js';
import { INTERACTION_ERRORS, verifyLogoutToken } from './logout-token.js';


/** Some providers (Keycloak, ADFS) tell the refresh token's lifetime: `refresh_expires_in`. */
function refreshExpiresAt(tokens: Record<string, unknown>): number | undefined {
  const seconds = tokens.refresh_expires_in;
  return typeof seconds === 'number' && seconds > 0 ? Date.now() + seconds * 1000 : undefined;
}

export function accountKeyOf(iss: string, sub: string): string {
  return createHash('sha256').update(iss).update('\0').update(sub).digest('base64url');
}

/** Maps any openid-client / fetch failure to an IdentityError kind (the one wrapping boundary). */
export function wrapProviderError(err: unknown, what: string): IdentityError {
  if (err instanceof IdentityError) return err;
  if (err instanceof client.ResponseBodyError) {
    if (err.error === 'invalid_grant') return new IdentityError('invalid_grant', `${what}: the grant is no longer valid`, { cause: err, providerError: err.error });
    if (INTERACTION_ERRORS.has(err.error)) return new IdentityError('interaction_required', `${what}: ${err.error}`, { cause: err, providerError: err.error });
    if (err.status >= 500) return new IdentityError('unavailable', `${what}: provider answered ${err.status}`, { cause: err, providerError: err.error });
    return new IdentityError('invalid_response', `${what}: provider refused (${err.error})`, { cause: err, providerError: err.error });
  }
  if (err instanceof client.AuthorizationResponseError) {
    const kind = INTERACTION_ERRORS.has(err.error) ? 'interaction_required' : 'invalid_request';
    return new IdentityError(kind, `${what}: ${err.error}`, { cause: err, providerError: err.error });
  }
  const e = err as { name?: string; code?: string; cause?: { status?: number } };
  if (e?.name === 'TimeoutError' || e?.name === 'AbortError' || (e?.name === 'TypeError' && String((err as Error).message).includes('fetch failed'))) {
    return new IdentityError('unavailable', `${what}: provider unreachable`, { cause: err });
  }
  if (e?.code === 'OAUTH_RESPONSE_IS_NOT_JSON' || e?.code === 'OAUTH_RESPONSE_IS_NOT_CONFORM') {
    // A proxy's HTML error page or an outage answer: transient from the user's point of view.
    const status = (e.cause as { status?: number } | undefined)?.status;
    if (!status || status >= 500) return new IdentityError('unavailable', `${what}: provider answered a non-OAuth response`, { cause: err });
    return new IdentityError('invalid_response', `${what}: provider answered a non-OAuth response (${status})`, { cause: err });
  }
  return new IdentityError('invalid_response', `${what}: ${(err as Error)?.message ?? String(err)}`, { cause: err });
}

async function loadClientAuth(cfg: IdentityConfig): Promise<client.ClientAuth> {
  switch (cfg.authMethod) {
    case 'client_secret_post':
      return client.ClientSecretPost(cfg.clientSecret);
    case 'private_key_jwt': {
      const certPem = readFileSync(cfg.clientCertificate!.certificateFile, 'utf8');
      const keyPem = createPrivateKey(readFileSync(cfg.clientCertificate!.privateKeyFile, 'utf8')).export({ type: 'pkcs8', format: 'pem' }).toString();
      const cert = new X509Certificate(certPem);
      const kid = createHash('sha256').update(cert.raw).digest('base64url');
      const cryptoKey = await importPKCS8(keyPem, 'RS256');
      return client.PrivateKeyJwt({ key: cryptoKey, kid }, {
        [client.modifyAssertion]: (header) => {
          header['x5t#S256'] = kid;
        },
      });
    }
    default:
      return client.ClientSecretBasic(cfg.clientSecret);
  }
}

export interface MetadataProblem {
  path: (string | number)[];
  message: string;
  severity: 'error' | 'warning';
}

/** An OpenID Connect provider through openid-client v6. */
export class OidcBackend implements IdentityBackend {
  #config?: client.Configuration;
  #jwks?: ReturnType<typeof createRemoteJWKSet>;
  readonly issuer: string;

  constructor(private readonly cfg: IdentityConfig) {
    this.issuer = cfg.issuer!;
  }

  ready(): boolean {
    return this.#config !== undefined;
  }

  get metadata(): client.ServerMetadata | undefined {
    return this.#config?.serverMetadata();
  }

  async init(): Promise<void> {
    try {
      const config = await client.discovery(new URL(this.cfg.issuer!), this.cfg.clientId, { token_endpoint_auth_method: this.cfg.authMethod, [client.clockTolerance]: this.cfg.clockToleranceSec }, await loadClientAuth(this.cfg), {
        timeout: Math.ceil(this.cfg.timeoutMs / 1000),
        execute: this.cfg.allowInsecureRequests ? [client.allowInsecureRequests] : [],
      });
      config.timeout = Math.ceil(this.cfg.timeoutMs / 1000);
      const meta = config.serverMetadata();
      if (meta.jwks_uri) this.#jwks = createRemoteJWKSet(new URL(meta.jwks_uri), { timeoutDuration: this.cfg.timeoutMs, cooldownDuration: 30_000 });
      this.#config = config;
    } catch (err) {
      throw wrapProviderError(err, 'discovery');
    }
  }

  /** Compares the discovery document with the config: what the provider says it cannot do. */
  checkMetadata(routeScopes: Array<{ index: number; scopes: readonly string[] }>): MetadataProblem[] {
    const meta = this.metadata;
    if (!meta) return [];
    const out: MetadataProblem[] = [];
    const pkce = meta.code_challenge_methods_supported;
    if (pkce && !pkce.includes('S256')) out.push({ path: ['identity', 'issuer'], message: 'the provider does not list S256 in code_challenge_methods_supported; PKCE S256 is required', severity: 'error' });
    const methods = meta.token_endpoint_auth_methods_supported;
    if (methods && !methods.includes(this.cfg.authMethod)) {
      out.push({ path: ['identity', 'tokenEndpointAuthMethod'], message: `the provider supports ${methods.join(', ')} but not ${this.cfg.authMethod}`, severity: 'error' });
    }
    const supported = meta.scopes_supported ? new Set(meta.scopes_supported) : undefined;
    if (supported) {
      const missing = this.cfg.scopes.filter((s) => !supported.has(s));
      if (missing.length) out.push({ path: ['identity', 'scopes'], message: `scopes not in the provider's scopes_supported: ${missing.join(', ')}`, severity: 'warning' });
      for (const r of routeScopes) {
        const m = r.scopes.filter((s) => !supported.has(s));
        if (m.length) out.push({ path: ['routes', r.index, 'scopes'], message: `scopes not in the provider's scopes_supported: ${m.join(', ')}`, severity: 'warning' });
      }
    }
    if (!meta.end_session_endpoint) out.push({ path: ['identity', 'issuer'], message: 'the provider has no end_session_endpoint: sign-out ends the gateway session only', severity: 'warning' });
    return out;
  }

  #cfg(): client.Configuration {
    if (!this.#config) throw new IdentityError('unavailable', 'provider metadata not loaded yet');
    return this.#config;
  }

  async signInUrl(req: SignInRequest): Promise<URL> {
    const config = this.#cfg();
    const params = new URLSearchParams({
      redirect_uri: req.redirectUri,
      response_type: 'code',
      scope: req.scopes.join(' '),
      state: req.state,
      nonce: req.nonce,
      code_challenge: await client.calculatePKCECodeChallenge(req.codeVerifier),
      code_challenge_method: 'S256',
      ...this.cfg.extraAuthorizeParams,
      ...req.extra,
    });
    for (const r of req.resources ?? []) params.append('resource', r);
    return client.buildAuthorizationUrl(config, params);
  }

  async redeemCode(callbackUrl: URL, checks: SignInChecks): Promise<RedeemedSignIn> {
    const config = this.#cfg();
    let tokens: Awaited<ReturnType<typeof client.authorizationCodeGrant>>;
    try {
      tokens = await client.authorizationCodeGrant(config, callbackUrl, {
        pkceCodeVerifier: checks.codeVerifier,
        expectedState: checks.state,
        expectedNonce: checks.nonce,
        idTokenExpected: true,
      });
    } catch (err) {
      throw wrapProviderError(err, 'code redemption');
    }
    const claims = tokens.claims();
    if (!claims || !tokens.id_token) throw new IdentityError('invalid_response', 'code redemption: no ID token');
    await this.#verifyIdToken(tokens.id_token, 'code redemption', 'invalid_response');
    const account: AccountRef = { key: accountKeyOf(claims.iss, claims.sub), iss: claims.iss, sub: claims.sub };
    return {
      account,
      claims: { ...claims },
      idToken: tokens.id_token,
      sid: typeof claims.sid === 'string' ? claims.sid : undefined,
      accessToken: tokens.access_token,
      expiresAt: Date.now() + (tokens.expiresIn() ?? 0) * 1000,
      refreshToken: tokens.refresh_token,
      refreshExpiresAt: refreshExpiresAt(tokens),
      scope: tokens.scope,
    };
  }

  async refresh(account: AccountRef, refreshToken: string | undefined, scopes: readonly string[], resource?: string): Promise<TokenGrant> {
    const config = this.#cfg();
    if (!refreshToken) throw new IdentityError('invalid_grant', 'refresh: no refresh token');
    const params: Record<string, string> = {};
    if (scopes.length) params.scope = scopes.join(' ');
    if (resource) params.resource = resource;
    let tokens: Awaited<ReturnType<typeof client.refreshTokenGrant>>;
    try {
      tokens = await client.refreshTokenGrant(config, refreshToken, params);
    } catch (err) {
      // openid-client refused the refreshed ID token's iss, aud or azp: it is not for this
      // sign-in (OpenID Connect Core 12.2), so the grant is not to be used again.
      if ((err as { code?: string }).code === 'OAUTH_JWT_CLAIM_COMPARISON_FAILED') {
        throw new IdentityError('invalid_grant', 'refresh: the refreshed ID token is not for this client and issuer', { cause: err });
      }
      throw wrapProviderError(err, 'refresh');
    }
    const claims = tokens.claims();
    // OpenID Connect Core 12.2: a refreshed ID token must be about the same user.
    if (claims && (claims.sub !== account.sub || claims.iss !== account.iss)) {
      throw new IdentityError('invalid_grant', 'refresh: the refreshed ID token names another subject');
    }
    if (tokens.id_token) await this.#verifyIdToken(tokens.id_token, 'refresh', 'invalid_grant');
    return this.#grant(tokens);
  }

  /**
   * OpenID Connect Core 3.1.3.7 beyond what openid-client checks on a token endpoint
   * response: the signature against the provider's JWKS (openid-client checks none), no
   * audience but this client (it accepts extra ones when azp names us), azp (when present)
   * this client, and iat not in the future. `mismatch` is the kind for a token that is
   * about another issuer, audience or party (a refresh then needs a new sign-in).
   */
  async #verifyIdToken(idToken: string, what: string, mismatch: IdentityError['kind']): Promise<void> {
    const meta = this.#cfg().serverMetadata();
    if (!this.#jwks) throw new IdentityError('invalid_response', `${what}: the provider has no jwks_uri to verify the ID token with`);
    const tolerance = this.cfg.clockToleranceSec;
    let payload: JWTPayload;
    try {
      ({ payload } = await jwtVerify(idToken, this.#jwks, {
        issuer: meta.issuer,
        audience: this.cfg.clientId,
        algorithms: (meta.id_token_signing_alg_values_supported ?? ['RS256']).filter((a) => a !== 'none'),
        clockTolerance: tolerance,
        requiredClaims: ['sub', 'iat', 'exp'],
      }));
    } catch (err) {
      if (err instanceof joseErrors.JWKSTimeout || (err instanceof TypeError && String(err.message).includes('fetch failed'))) {
        throw new IdentityError('unavailable', `${what}: the provider's JWKS is unreachable`, { cause: err });
      }
      const claim = err instanceof joseErrors.JWTClaimValidationFailed ? err.claim : undefined;
      throw new IdentityError(claim === 'iss' || claim === 'aud' ? mismatch : 'invalid_response', `${what}: ID token rejected (${(err as Error).message})`, { cause: err });
    }
    const audiences = Array.isArray(payload.aud) ? payload.aud : [payload.aud];
    if (audiences.some((a) => a !== this.cfg.clientId)) throw new IdentityError(mismatch, `${what}: the ID token names audiences other than this client`);
    if (payload.azp !== undefined && payload.azp !== this.cfg.clientId) throw new IdentityError(mismatch, `${what}: the ID token's azp is another client`);
    if (typeof payload.iat !== 'number' || payload.iat > Date.now() / 1000 + tolerance) throw new IdentityError('invalid_response', `${what}: the ID token is issued in the future`);
  }

  async clientCredentials(scopes: readonly string[], resource?: string): Promise<TokenGrant> {
    const params: Record<string, string> = {};
    if (scopes.length) params.scope = scopes.join(' ');
    if (resource) params.resource = resource;
    try {
      return this.#grant(await client.clientCredentialsGrant(this.#cfg(), params));
    } catch (err) {
      throw wrapProviderError(err, 'client credentials');
    }
  }

  #grant(tokens: client.TokenEndpointResponse & client.TokenEndpointResponseHelpers): TokenGrant {
    return {
      accessToken: tokens.access_token,
      expiresAt: Date.now() + (tokens.expiresIn() ?? 300) * 1000,
      refreshToken: tokens.refresh_token,
      refreshExpiresAt: refreshExpiresAt(tokens),
      scope: tokens.scope,
      idToken: tokens.id_token,
    };
  }

  async revoke(refreshToken: string): Promise<boolean> {
    const config = this.#cfg();
    if (!config.serverMetadata().revocation_endpoint) return false;
    try {
      await client.tokenRevocation(config, refreshToken, { token_type_hint: 'refresh_token' });
      return true;
    } catch (err) {
      throw wrapProviderError(err, 'revocation');
    }
  }

  logoutUrl(params: { idTokenHint?: string; postLogoutRedirectUri: string }): URL | undefined {
    const config = this.#cfg();
    if (!config.serverMetadata().end_session_endpoint) return undefined;
    const p: Record<string, string> = { post_logout_redirect_uri: params.postLogoutRedirectUri, client_id: this.cfg.clientId };
    if (params.idTokenHint) p.id_token_hint = params.idTokenHint;
    return client.buildEndSessionUrl(config, p);
  }

  /** OpenID Connect Back-Channel Logout 1.0, section 2.6. */
  async verifyLogoutToken(token: string): Promise<LogoutTokenClaims> {
    const meta = this.#cfg().serverMetadata();
    if (!this.#jwks) throw new IdentityError('invalid_request', 'provider has no jwks_uri');
    const { claims } = await verifyLogoutToken(token, { jwks: this.#jwks, issuer: meta.issuer, clientId: this.cfg.clientId, algorithms: meta.id_token_signing_alg_values_supported, clockToleranceSec: this.cfg.clockToleranceSec });
    return claims;
  }
}
