import { createHash, randomBytes } from 'node:crypto';
import type { Sealer } from '../tokens/sealed.js';
import type { Store } from '../tokens/store.js';
import { L1_TTL_MS, ShortCache } from '../tokens/short-cache.js';
import type { InvalidationBus } from '../tokens/invalidation.js';

/** The server-side record behind a session cookie: ending it makes the cookie worthless. */
export interface SessionRecord {
  accountKey: string;
  iss: string;
  sub: string;
  /** The provider's session id, for back-channel logout by sid. */
  sid?: string;
  /** Random value /auth/user hands out; a GET logout must carry it (no cross-site logout). */
  logoutId: string;
  claims: Record<string, unknown>;
  idToken?: string;
  createdAt: number;
  lastSeenAt: number;
  /** Epoch ms: createdAt + absoluteTimeout. */
  absoluteExpiresAt: number;
}

export interface SessionTimeouts {
  idleMs: number;
  absoluteMs: number;
}

const SESSION = 'sess:';
const BY_SID = 'sid:';
const BY_ACCOUNT = 'acctsess:';

/** Claims kept for /auth/user: identity claims only, never tokens or provider internals. */
const HIDDEN_CLAIMS = new Set(['at_hash', 'c_hash', 's_hash', 'nonce', 'aud', 'azp', 'auth_time', 'iat', 'exp', 'nbf', 'jti', 'sid', 'acr', 'amr']);

export function publicClaims(claims: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(claims)) if (!HIDDEN_CLAIMS.has(k)) out[k] = v;
  return out;
}

function sidIndexKey(iss: string, sid: string): string {
  return BY_SID + createHash('sha256').update(iss).update('\0').update(sid).digest('base64url');
}

export function newSessionId(): string {
  return randomBytes(32).toString('base64url');
}

/** Store keys are hashes of session ids, so a read of the store yields no usable cookie. */
function storageKey(sessionId: string): string {
  return SESSION + createHash('sha256').update(sessionId).digest('base64url');
}

export class SessionStore {
  /**
   * In-process copies. With a shared store (Redis, several replicas) they are used only while
   * the invalidation bus is live, so a logout on one replica is refused by every other at once.
   */
  readonly #l1: ShortCache<SessionRecord>;
  /** Store key → session id of what #l1 holds: invalidations name store keys, never ids. */
  readonly #idsByKey = new Map<string, string>();
  /** How stale lastSeenAt may get before a request writes it back (the idle timeout slides). */
  readonly #slideAfterMs: number;

  constructor(
    private readonly store: Store,
    private readonly sealer: Sealer,
    readonly timeouts: SessionTimeouts,
    private readonly bus?: InvalidationBus,
  ) {
    this.#l1 = new ShortCache<SessionRecord>(store.redis && !bus ? 0 : L1_TTL_MS);
    this.#slideAfterMs = Math.min(60_000, timeouts.idleMs / 10);
    bus?.subscribe((key) => {
      if (key === '*') {
        this.#l1.clear();
        this.#idsByKey.clear();
        return;
      }
      const id = this.#idsByKey.get(key);
      if (id !== undefined) {
        this.#l1.delete(id);
        this.#idsByKey.delete(key);
      }
    });
  }

  #remember(sessionId: string, key: string, record: SessionRecord): void {
    this.#l1.set(sessionId, record);
    if (!this.bus) return;
    if (this.#idsByKey.size >= 10_000) {
      this.#l1.clear();
      this.#idsByKey.clear();
    }
    this.#idsByKey.set(key, sessionId);
  }

  /** Drops the in-process copy here and, through the bus, on every other replica. */
  async #forget(sessionId: string, key: string): Promise<void> {
    this.#l1.delete(sessionId);
    this.#idsByKey.delete(key);
    await this.bus?.publish(key).catch(() => undefined);
  }

  /**
   * The live record when the in-process copy answers alone: present, trusted (bus live), not
   * timed out and with no idle-timeout write due. Otherwise undefined, and get() decides.
   */
  peek(sessionId: string): SessionRecord | undefined {
    if (this.bus && !this.bus.live()) return undefined;
    const record = this.#l1.get(sessionId);
    if (!record) return undefined;
    const now = Date.now();
    if (now >= this.expiresAt(record) || now - record.lastSeenAt > this.#slideAfterMs) return undefined;
    return record;
  }

  expiresAt(rec: SessionRecord): number {
    return Math.min(rec.absoluteExpiresAt, rec.lastSeenAt + this.timeouts.idleMs);
  }

  async create(sessionId: string, rec: Omit<SessionRecord, 'createdAt' | 'lastSeenAt' | 'absoluteExpiresAt'>): Promise<SessionRecord> {
    const now = Date.now();
    const full: SessionRecord = { ...rec, createdAt: now, lastSeenAt: now, absoluteExpiresAt: now + this.timeouts.absoluteMs };
    await this.#write(sessionId, full);
    await this.#index(BY_ACCOUNT + rec.accountKey, sessionId, full.absoluteExpiresAt);
    if (rec.sid) await this.#index(sidIndexKey(rec.iss, rec.sid), sessionId, full.absoluteExpiresAt);
    return full;
  }

  /** The live record, or undefined when absent, unreadable or timed out (then it is removed). */
  async get(sessionId: string): Promise<{ record: SessionRecord; expired: false } | { record?: SessionRecord; expired: true } | undefined> {
    // The in-process copy is keyed by the id itself: a hit costs no hash, no store, no decryption.
    let record = !this.bus || this.bus.live() ? this.#l1.get(sessionId) : undefined;
    if (!record) {
      const key = storageKey(sessionId);
      const text = this.sealer.open(await this.store.get<string>(key), key);
      if (text === undefined) return undefined;
      record = JSON.parse(text) as SessionRecord;
      this.#remember(sessionId, key, record);
    }
    const now = Date.now();
    if (now >= this.expiresAt(record)) {
      await this.delete(sessionId);
      return { record, expired: true };
    }
    // Slide the idle timeout without a write on every request.
    if (now - record.lastSeenAt > this.#slideAfterMs) {
      record.lastSeenAt = now;
      await this.#write(sessionId, record);
    }
    return { record, expired: false };
  }

  async delete(sessionId: string): Promise<void> {
    const key = storageKey(sessionId);
    await this.store.delete(key);
    await this.#forget(sessionId, key);
  }

  /** Ends every session of an account; answers how many were live. */
  async deleteByAccount(accountKey: string): Promise<number> {
    return (await this.#deleteIndexed(BY_ACCOUNT + accountKey)).length;
  }

  /** Ends the sessions of one provider session; answers their account keys. */
  async deleteBySid(iss: string, sid: string): Promise<string[]> {
    return (await this.#deleteIndexed(sidIndexKey(iss, sid))).map((r) => r.accountKey);
  }

  async #deleteIndexed(indexKey: string): Promise<SessionRecord[]> {
    const ids = (await this.store.get<string[]>(indexKey)) ?? [];
    const ended: SessionRecord[] = [];
    for (const id of ids) {
      const key = storageKey(id);
      const text = this.sealer.open(await this.store.get<string>(key), key);
      if (text !== undefined) ended.push(JSON.parse(text) as SessionRecord);
      await this.store.delete(key);
      await this.#forget(id, key);
    }
    await this.store.delete(indexKey);
    return ended;
  }

  async #index(indexKey: string, sessionId: string, until: number): Promise<void> {
    const ids = (await this.store.get<string[]>(indexKey)) ?? [];
    // Bounded: a user with hundreds of devices keeps the newest sessions indexed.
    const next = [...ids.filter((i) => i !== sessionId), sessionId].slice(-50);
    await this.store.set(indexKey, next, Math.max(1000, until - Date.now()));
  }

  async #write(sessionId: string, rec: SessionRecord): Promise<void> {
    const key = storageKey(sessionId);
    // Kept until the absolute expiry (as long as the account's tokens), not just the idle one: a
    // cookie that comes back after the idle timeout must find the record to remove those tokens.
    await this.store.set(key, this.sealer.seal(JSON.stringify(rec), key), Math.max(1000, rec.absoluteExpiresAt - Date.now()));
    // In-process copies are made on reads only: a burst of sign-ins is not held twice.
  }
}
