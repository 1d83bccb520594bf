/** What a provider back end offers the gateway. Nothing here knows about HTTP servers. */

export interface AccountRef {
  /** Stable key of the account: the provider's iss + sub (never an e-mail). */
  key: string;
  iss: string;
  sub: string;
}

export interface SignInRequest {
  redirectUri: string;
  state: string;
  nonce: string;
  codeVerifier: string;
  scopes: readonly string[];
  resources?: readonly string[];
  extra?: Record<string, string>;
}

export interface SignInChecks {
  state: string;
  nonce: string;
  codeVerifier: string;
  redirectUri: string;
}

export interface TokenGrant {
  accessToken: string;
  /** Epoch milliseconds. */
  expiresAt: number;
  refreshToken?: string;
  /** Epoch milliseconds, when the provider tells (refresh_expires_in). */
  refreshExpiresAt?: number;
  scope?: string;
  idToken?: string;
}

export interface RedeemedSignIn extends Partial<TokenGrant> {
  account: AccountRef;
  claims: Record<string, unknown>;
  idToken?: string;
  /** The provider's session id (for back-channel logout), when it sends one. */
  sid?: string;
}

export interface LogoutTokenClaims {
  iss: string;
  sub?: string;
  sid?: string;
  jti: string;
  exp?: number;
}

export interface IdentityBackend {
  readonly issuer: string;
  /**
   * True when the back end keeps refresh tokens in a cache of its own (MSAL's, partitioned
   * per account): the gateway then stores none and `refresh` gets no refresh token.
   */
  readonly ownsRefreshTokens?: boolean;
  /** Loads provider metadata; throws IdentityError('unavailable') while the provider cannot be reached. */
  init(): Promise<void>;
  ready(): boolean;
  signInUrl(req: SignInRequest): Promise<URL>;
  redeemCode(callbackUrl: URL, checks: SignInChecks): Promise<RedeemedSignIn>;
  refresh(account: AccountRef, refreshToken: string | undefined, scopes: readonly string[], resource?: string): Promise<TokenGrant>;
  clientCredentials(scopes: readonly string[], resource?: string): Promise<TokenGrant>;
  /** RFC 7009; false when the provider has no revocation endpoint. */
  revoke(refreshToken: string): Promise<boolean>;
  logoutUrl(params: { idTokenHint?: string; postLogoutRedirectUri: string }): URL | undefined;
  verifyLogoutToken(token: string): Promise<LogoutTokenClaims>;
  /** Drops whatever the back end keeps for the account (its token cache partition). */
  forgetAccount?(accountKey: string): Promise<void>;
  /** Maps a logout token's iss+sub to the account key sessions were stored under. */
  accountKeyOf?(iss: string, sub: string): string;
  close?(): Promise<void>;
}

export type IdentityErrorKind =
  /** The grant is dead: refresh token expired, revoked or spent. */
  | 'invalid_grant'
  /** The user must be asked (consent for new scopes, MFA, re-authentication). */
  | 'interaction_required'
  /** The provider did not answer in time or at all. */
  | 'unavailable'
  /** The provider answered with something that failed validation. */
  | 'invalid_response'
  /** The sign-in request from the browser is not acceptable (state, replay). */
  | 'invalid_request';

/** Every library error leaves identity/ wrapped in this, keeping the original as cause. */
export class IdentityError extends Error {
  override readonly name = 'IdentityError';
  constructor(
    readonly kind: IdentityErrorKind,
    message: string,
    options?: { cause?: unknown; providerError?: string },
  ) {
    super(message, { cause: options?.cause });
    this.providerError = options?.providerError;
  }
  readonly providerError?: string;
}

/**
 * Where a back end with its own token cache (MSAL) keeps one serialized partition per
 * account; the gateway seals the partitions at rest like every other entry.
 */
export interface PartitionStore {
  load(key: string): Promise<string | undefined>;
  save(key: string, serialized: string, ttlMs: number): Promise<void>;
  delete(key: string): Promise<void>;
}
