import { parseCookie } from 'cookie';
import type { FastifyRequest } from 'fastify';
import { ShortCache } from '../tokens/short-cache.js';

/** The session cookie's value format, by @fastify/secure-session's own decoder and encoder. */
export interface SessionCookieCodec {
  /** A session, or null for anything that does not decrypt (or has expired). */
  decode(value: string): { get(key: string): unknown } | null;
  encode(data: Record<string, unknown>): string;
}

declare module 'fastify' {
  interface FastifyInstance {
    /** Reads session ids from cookies outside the session plugin's scope (proxy routes, tests). */
    sessionCookie: SessionCookieReader;
  }
}

const MEMO_TTL_MS = 10_000;
const MEMO_ENTRIES = 5_000;
/** Longer Cookie headers are decoded every time rather than held. */
const MEMO_MAX_HEADER = 2048;

/**
 * The session id a request's cookie names, for proxy routes. They do not run
 * @fastify/secure-session's hooks (cookie parsing, decryption and a session object on every
 * API call, and an onSend check after it); they read the id through the plugin's decoder,
 * remembered for 10 s per Cookie header, since an SPA sends the same header with every call.
 * The id only names the server-side record, which is still looked up (and may be gone) on
 * every request: a logout is not delayed by this.
 */
export class SessionCookieReader {
  readonly #memo = new ShortCache<string | null>(MEMO_TTL_MS, MEMO_ENTRIES);

  constructor(
    private readonly cookieName: string,
    readonly codec: SessionCookieCodec,
  ) {}

  sessionId(request: FastifyRequest): string | undefined {
    const header = request.headers.cookie;
    if (header === undefined) return undefined;
    let id = this.#memo.get(header);
    if (id === undefined) {
      const value = parseCookie(header)[this.cookieName];
      const s = value === undefined ? undefined : this.codec.decode(value)?.get('s');
      id = typeof s === 'string' ? s : null;
      if (header.length <= MEMO_MAX_HEADER) this.#memo.set(header, id);
    }
    return id ?? undefined;
  }
}
