/**
 * MSAL's token cache, partitioned per account into the gateway's store, after
 * Microsoft.Identity.Web's distributed token cache: a cache plugin whose
 * `beforeCacheAccess` loads only one partition and whose `afterCacheAccess` writes it back
 * when MSAL changed it.
 *
 * One plugin (and one ConfidentialClientApplication) per operation, bound to one
 * partition: MSAL's in-memory cache of that application never holds another account's
 * tokens, whatever runs concurrently. Before a partition is written, its content is
 * checked to belong to that partition alone.
 */
import type { ICachePlugin, TokenCacheContext } from '@azure/msal-node';
import type { PartitionStore } from './types.js';
import { KeyedMutex } from '../util/keyed-mutex.js';

/** The partition of app-only tokens (client credentials grant). */
export const APP_PARTITION = 'app';

const SECTIONS = ['Account', 'IdToken', 'AccessToken', 'RefreshToken'] as const;
const OIDC_SCOPES = new Set(['openid', 'profile', 'offline_access', 'email']);

type Entity = Record<string, unknown> & { home_account_id?: string; target?: string };
type JsonCache = Partial<Record<(typeof SECTIONS)[number] | 'AppMetadata', Record<string, Entity>>> & Record<string, unknown>;

function parse(serialized: string | undefined): JsonCache {
  if (!serialized) return {};
  const value: unknown = JSON.parse(serialized);
  return value && typeof value === 'object' ? (value as JsonCache) : {};
}

/** The distinct home account ids of the accounts and user tokens in a serialized cache. */
export function homeAccountIdsOf(serialized: string): string[] {
  const cache = parse(serialized);
  const ids = new Set<string>();
  for (const section of SECTIONS) for (const e of Object.values(cache[section] ?? {})) ids.add(String(e.home_account_id ?? ''));
  return [...ids];
}

/**
 * Throws unless every account and token of the serialized cache belongs to `homeAccountId`
 * ('' for the app partition, whose tokens have none).
 */
export function assertSinglePartition(serialized: string, homeAccountId: string): void {
  const foreign = homeAccountIdsOf(serialized).filter((id) => id !== homeAccountId);
  if (foreign.length) throw new Error(`token cache partition ${homeAccountId ? 'of one account' : 'of the app'} holds another account's tokens; not written`);
}

function resourceScopes(target: string | undefined): Set<string> {
  const all = (target ?? '').toLowerCase().split(' ').filter(Boolean);
  const some = all.filter((s) => !OIDC_SCOPES.has(s));
  return new Set(some.length ? some : all);
}

/**
 * Folds what a sign-in produced (one account) into the account's existing partition: the
 * new account, ID token and refresh token replace the old; cached access tokens survive
 * unless the sign-in brought one for overlapping scopes (as MSAL itself replaces them).
 */
export function mergeSignIn(existing: string | undefined, fresh: string): string {
  const out = parse(existing);
  const add = parse(fresh);
  for (const section of ['Account', 'IdToken', 'RefreshToken', 'AppMetadata'] as const) {
    if (add[section]) out[section] = { ...(out[section] ?? {}), ...add[section] };
  }
  const newTargets = Object.values(add.AccessToken ?? {}).map((t) => resourceScopes(t.target));
  const kept: Record<string, Entity> = {};
  for (const [k, t] of Object.entries(out.AccessToken ?? {})) {
    const scopes = resourceScopes(t.target);
    if (!newTargets.some((n) => [...n].some((s) => scopes.has(s)))) kept[k] = t;
  }
  out.AccessToken = { ...kept, ...(add.AccessToken ?? {}) };
  return JSON.stringify(out);
}

/**
 * The RFC 8707 resource a cached access token was acquired for, looked up by its value.
 * MSAL matches a request without a resource to any cached token with the scopes, whatever
 * resource it was acquired for; the back end uses this to notice that.
 */
export function cachedResourceOf(serialized: string | undefined, accessToken: string): string | undefined {
  for (const t of Object.values(parse(serialized).AccessToken ?? {})) {
    if (t.secret === accessToken) return typeof t.resource === 'string' && t.resource ? t.resource : undefined;
  }
  return undefined;
}

/** Operations on one partition never overlap inside this process. */
export { KeyedMutex };

/** The partition of one account's tokens. */
export function accountPartition(homeAccountId: string): string {
  return 'acct:' + homeAccountId;
}

/** The partition of app-only tokens for a resource indicator (or none). */
export function appPartition(resource?: string): string {
  return resource ? `${APP_PARTITION}:${resource}` : APP_PARTITION;
}

/** What one operation's cache is bound to: an account, the app, or a sign-in's account-to-be. */
export type PartitionBinding = { kind: 'account'; homeAccountId: string } | { kind: 'app'; resource?: string } | { kind: 'sign-in' };

export interface PluginOptions {
  /** Serialises the sign-in's read-merge-write with the other operations on the partition. */
  mutex?: KeyedMutex;
  /** Checks a sign-in's ID token before anything of it is stored; throws to refuse. */
  admitSignIn?: (idToken: string) => Promise<void>;
}

/**
 * The cache plugin of one operation. Bound to a partition, it loads it once (the operation
 * runs alone on it: KeyedMutex in-process, TokenService's per-account lock across replicas)
 * and writes it back after every change. For a sign-in (code redemption, where the account
 * is known only from the response) it starts empty and, once MSAL has stored the new
 * account, folds it into that account's partition.
 */
export class PartitionCachePlugin implements ICachePlugin {
  #snapshot: string | null | undefined;
  #partition: string | undefined;
  #owner: string | undefined;

  constructor(
    private readonly store: PartitionStore,
    binding: PartitionBinding,
    private readonly ttlMs: number,
    private readonly opts: PluginOptions = {},
  ) {
    if (binding.kind === 'account') {
      this.#partition = accountPartition(binding.homeAccountId);
      this.#owner = binding.homeAccountId;
    } else if (binding.kind === 'app') {
      this.#partition = appPartition(binding.resource);
      this.#owner = '';
    }
  }

  /** The partition as this operation last read or wrote it. */
  get snapshot(): string | undefined {
    return this.#snapshot ?? undefined;
  }

  /** The partition this operation is bound to (a sign-in's, once its account is known). */
  get partition(): string | undefined {
    return this.#partition;
  }

  async beforeCacheAccess(ctx: TokenCacheContext): Promise<void> {
    if (this.#partition === undefined) return;
    if (this.#snapshot === undefined) this.#snapshot = (await this.store.load(this.#partition)) ?? null;
    if (this.#snapshot) ctx.tokenCache.deserialize(this.#snapshot);
  }

  async afterCacheAccess(ctx: TokenCacheContext): Promise<void> {
    if (!ctx.cacheHasChanged) return;
    const serialized = ctx.tokenCache.serialize();
    if (this.#partition === undefined) {
      const ids = homeAccountIdsOf(serialized);
      if (ids.length !== 1 || !ids[0]) throw new Error('a sign-in must yield exactly one account');
      const owner = ids[0];
      if (this.opts.admitSignIn) {
        const idTokens = Object.values(parse(serialized).IdToken ?? {}).map((e) => String(e.secret ?? ''));
        if (idTokens.length !== 1) throw new Error('a sign-in must yield exactly one ID token');
        await this.opts.admitSignIn(idTokens[0]!);
      }
      const partition = accountPartition(owner);
      const write = async () => {
        const merged = mergeSignIn(await this.store.load(partition), serialized);
        assertSinglePartition(merged, owner);
        await this.store.save(partition, merged, this.ttlMs);
        return merged;
      };
      this.#snapshot = this.opts.mutex ? await this.opts.mutex.run(partition, write) : await write();
      this.#partition = partition;
      this.#owner = owner;
      return;
    }
    assertSinglePartition(serialized, this.#owner!);
    await this.store.save(this.#partition, serialized, this.ttlMs);
    this.#snapshot = serialized;
  }
}

/** A PartitionStore in memory, for `bff-gateway check` (which caches nothing) and unit tests. */
export class MemoryPartitionStore implements PartitionStore {
  readonly entries = new Map<string, string>();
  async load(key: string): Promise<string | undefined> {
    return this.entries.get(key);
  }
  async save(key: string, serialized: string): Promise<void> {
    this.entries.set(key, serialized);
  }
  async delete(key: string): Promise<void> {
    this.entries.delete(key);
  }
}
