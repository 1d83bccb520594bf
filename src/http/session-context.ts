import type {} from '@fastify/secure-session';
import type { FastifyRequest } from 'fastify';
import type { SessionRecord, SessionStore } from '../session/sessions.js';

declare module '@fastify/secure-session' {
  interface SessionData {
    /** Session id: the key of the server-side record. Never a token. */
    s: string;
    /** Browser binding of pending sign-ins. */
    b: string;
  }
}

export type SessionLookup =
  | { kind: 'active'; id: string; record: SessionRecord }
  | { kind: 'expired'; accountKey?: string }
  | { kind: 'none' };

/** Reads the session a cookie's id names; a store failure propagates (fail closed). */
export async function lookupSession(id: unknown, sessions: SessionStore): Promise<SessionLookup> {
  if (typeof id !== 'string') return { kind: 'none' };
  const found = await sessions.get(id);
  if (!found) return { kind: 'expired' };
  if (found.expired) return { kind: 'expired', accountKey: found.record?.accountKey };
  return { kind: 'active', id, record: found.record };
}

/** True when Origin or Sec-Fetch-Site shows the request came from another site. */
export function isCrossSite(request: FastifyRequest, publicOrigin: string): boolean {
  const site = request.headers['sec-fetch-site'];
  if (site === 'cross-site') return true;
  const origin = request.headers.origin;
  return origin !== undefined && origin !== publicOrigin;
}
