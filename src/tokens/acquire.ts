import type { CompiledRoute } from '../config/resolve.js';
import { IdentityError, type AccountRef, type IdentityBackend, type TokenGrant } from '../identity/types.js';
import type { AccountEntry, CachedToken, TokenCache } from './cache.js';
import type { LifetimeModel } from './lifetimes.js';
import type { KeyedLock } from './lock.js';
import { bearer, type TokenOutcome, type TokenSource } from './outcome.js';
import { StoreUnavailableError } from './store.js';

export interface AcquisitionEvents {
  /** Called once per acquisition with how it ended (for metrics). */
  onOutcome?(route: CompiledRoute, outcome: TokenOutcome): void;
  onProviderCall?(kind: 'refresh' | 'client_credentials', seconds: number, ok: boolean): void;
  /** A refresh's write-back lost a compare-and-set: someone else wrote the entry first. */
  onWriteConflict?(accountKey: string): void;
}

type RouteToken = Pick<CompiledRoute, 'scopes' | 'resource' | 'tokenKey'>;

const RETRY_AFTER_SEC = 5;

/**
 * Acquires route tokens: cache, else one refresh per (account, scopes) shared by every
 * concurrent request, serialised per account so a rotating refresh token is never spent
 * twice, and across replicas when the lock is Redis-backed.
 */
export class TokenService {
  readonly #inflight = new Map<string, Promise<TokenOutcome>>();

  constructor(
    private readonly cache: TokenCache,
    private readonly identity: IdentityBackend,
    private readonly lock: KeyedLock,
    private readonly lifetimes: LifetimeModel,
    private readonly events: AcquisitionEvents = {},
  ) {}

  #fresh(token: CachedToken): boolean {
    return (token.refreshAt ?? token.expiresAt - this.lifetimes.skewFor(0)) > Date.now();
  }

  /** The access token of an in-process copy, if it is still fresh. */
  #usable(token: CachedToken | undefined): string | undefined {
    return token && this.#fresh(token) ? token.accessToken : undefined;
  }

  /** What is cached of a grant: refreshed ahead by a skew that fits the token's lifetime. */
  #cached(grant: TokenGrant): CachedToken {
    if (grant.refreshExpiresAt) this.lifetimes.observeRefreshTokenLifetime(grant.refreshExpiresAt - Date.now());
    return { accessToken: grant.accessToken, expiresAt: grant.expiresAt, refreshAt: grant.expiresAt - this.lifetimes.skewFor(grant.expiresAt - Date.now()) };
  }

  /** The route's access token when the in-process copy holds a fresh one; else undefined (use forUser). */
  cachedForUser(accountKey: string, route: RouteToken): string | undefined {
    return this.#usable(this.cache.peekAccount(accountKey)?.tokens[route.tokenKey]);
  }

  /** The app token for the route when the in-process copy holds a fresh one; else undefined (use forApp). */
  cachedForApp(route: RouteToken): string | undefined {
    return this.#usable(this.cache.peekApp(route.tokenKey));
  }

  async forUser(account: AccountRef, route: RouteToken): Promise<TokenOutcome> {
    let entry: AccountEntry | undefined;
    try {
      entry = await this.cache.getAccount(account.key);
    } catch (err) {
      return storeError(err);
    }
    const cached = entry?.tokens[route.tokenKey];
    if (cached && this.#fresh(cached)) return bearer(cached.accessToken, cached.expiresAt, 'cache');
    return this.#shared(`${account.key}\n${route.tokenKey}`, () => this.lock.run(`acct:${account.key}`, () => this.#refresh(account, route)));
  }

  async #refresh(account: AccountRef, route: RouteToken): Promise<TokenOutcome> {
    let entry: AccountEntry | undefined;
    let sealed: string | undefined;
    try {
      // Re-read the store under the lock: a sibling (or another replica) may have refreshed already.
      ({ entry, sealed } = await this.cache.readAccount(account.key));
    } catch (err) {
      return storeError(err);
    }
    const cached = entry?.tokens[route.tokenKey];
    if (cached && this.#fresh(cached)) return bearer(cached.accessToken, cached.expiresAt, 'cache');
    if (!entry) return { kind: 'error', code: 'consent_required', fatal: true };
    if (!entry.refreshToken && !this.identity.ownsRefreshTokens) return { kind: 'error', code: 'consent_required', fatal: true };

    let grant: TokenGrant;
    const started = performance.now();
    try {
      grant = await this.identity.refresh(account, entry.refreshToken, route.scopes, route.resource);
      this.events.onProviderCall?.('refresh', (performance.now() - started) / 1000, true);
    } catch (err) {
      this.events.onProviderCall?.('refresh', (performance.now() - started) / 1000, false);
      const outcome = identityError(err);
      if (err instanceof IdentityError && err.kind === 'invalid_grant' && entry.refreshToken) {
        // The refresh token is dead for good: forget it so later requests do not retry it,
        // unless someone stored a newer one meanwhile.
        delete entry.refreshToken;
        await this.cache.replaceAccount(account.key, entry, sealed).catch(() => undefined);
      }
      return outcome;
    }
    if (grant.refreshToken) entry.refreshToken = grant.refreshToken;
    entry.tokens[route.tokenKey] = this.#cached(grant);
    try {
      if (!(await this.cache.replaceAccount(account.key, entry, sealed))) {
        // Another writer got there first (a lease that ran out, a sign-in): keep what it
        // stored, and still answer this request with the token just granted.
        this.events.onWriteConflict?.(account.key);
      }
    } catch (err) {
      // A rotated refresh token that cannot be stored is lost; the user will have to sign in again.
      return storeError(err);
    }
    return bearer(grant.accessToken, grant.expiresAt, 'refresh');
  }

  async forApp(route: RouteToken): Promise<TokenOutcome> {
    try {
      const cached = await this.cache.getApp(route.tokenKey);
      if (cached && this.#fresh(cached)) return bearer(cached.accessToken, cached.expiresAt, 'cache');
    } catch (err) {
      return storeError(err);
    }
    return this.#shared(`app\n${route.tokenKey}`, () =>
      this.lock.run(`app:${route.tokenKey}`, async () => {
        try {
          const again = await this.cache.getApp(route.tokenKey, true);
          if (again && this.#fresh(again)) return bearer(again.accessToken, again.expiresAt, 'cache');
        } catch (err) {
          return storeError(err);
        }
        const started = performance.now();
        let grant: TokenGrant;
        try {
          grant = await this.identity.clientCredentials(route.scopes, route.resource);
          this.events.onProviderCall?.('client_credentials', (performance.now() - started) / 1000, true);
        } catch (err) {
          this.events.onProviderCall?.('client_credentials', (performance.now() - started) / 1000, false);
          return identityError(err);
        }
        await this.cache.setApp(route.tokenKey, this.#cached(grant)).catch(() => undefined);
        return bearer(grant.accessToken, grant.expiresAt, 'client_credentials' satisfies TokenSource);
      }),
    );
  }

  /** Stores what a sign-in redeemed: the new refresh token replaces the old, cached tokens stay. */
  async storeSignIn(account: AccountRef, refreshToken: string | undefined, keepUntil: number, refreshExpiresAt?: number): Promise<void> {
    if (refreshExpiresAt) this.lifetimes.observeRefreshTokenLifetime(refreshExpiresAt - Date.now());
    await this.lock.run(`acct:${account.key}`, async () => {
      const entry = (await this.cache.getAccount(account.key, true)) ?? { tokens: {}, expiresAt: keepUntil };
      if (refreshToken) entry.refreshToken = refreshToken;
      entry.expiresAt = Math.max(entry.expiresAt, keepUntil);
      await this.cache.setAccount(account.key, entry);
    });
  }

  async refreshTokenOf(accountKey: string): Promise<string | undefined> {
    return (await this.cache.getAccount(accountKey, true))?.refreshToken;
  }

  async removeAccount(accountKey: string): Promise<void> {
    await this.cache.deleteAccount(accountKey);
    await this.identity.forgetAccount?.(accountKey);
  }

  #shared(key: string, work: () => Promise<TokenOutcome>): Promise<TokenOutcome> {
    let p = this.#inflight.get(key);
    if (!p) {
      p = work().catch(storeError).finally(() => this.#inflight.delete(key));
      this.#inflight.set(key, p);
    }
    return p;
  }
}

function storeError(err: unknown): TokenOutcome {
  if (err instanceof StoreUnavailableError) return { kind: 'error', code: 'token_store_unavailable', fatal: false, retryAfterSec: RETRY_AFTER_SEC };
  throw err;
}

function identityError(err: unknown): TokenOutcome {
  if (!(err instanceof IdentityError)) throw err;
  switch (err.kind) {
    case 'invalid_grant':
    case 'interaction_required':
      return { kind: 'error', code: 'consent_required', fatal: true };
    case 'unavailable':
      return { kind: 'error', code: 'provider_unavailable', fatal: false, retryAfterSec: RETRY_AFTER_SEC };
    default:
      return { kind: 'error', code: 'provider_error', fatal: false };
  }
}
