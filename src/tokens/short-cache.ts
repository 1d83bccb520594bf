/**
 * An in-process cache whose entries live a short, fixed time. It spares the store a round
 * trip, a decryption and a JSON parse on the hot path; the TTL bounds how long another
 * replica's logout or refresh can go unseen here (well under a second).
 */
export class ShortCache<T> {
  readonly #entries = new Map<string, { value: T; until: number }>();

  constructor(
    private readonly ttlMs: number,
    private readonly maxEntries = 10_000,
  ) {}

  get(key: string): T | undefined {
    const hit = this.#entries.get(key);
    if (!hit) return undefined;
    if (hit.until <= Date.now()) {
      this.#entries.delete(key);
      return undefined;
    }
    return hit.value;
  }

  set(key: string, value: T): void {
    if (this.ttlMs <= 0) return;
    // One TTL for all: insertion order is expiry order, so expired entries sit at the front.
    const now = Date.now();
    for (const [k, e] of this.#entries) {
      if (e.until > now) break;
      this.#entries.delete(k);
    }
    this.#entries.delete(key);
    if (this.#entries.size >= this.maxEntries) this.#entries.delete(this.#entries.keys().next().value!);
    this.#entries.set(key, { value, until: now + this.ttlMs });
  }

  delete(key: string): void {
    this.#entries.delete(key);
  }

  clear(): void {
    this.#entries.clear();
  }
}

/** How long a replica may serve what it read without asking the store again. */
export const L1_TTL_MS = 500;
