import { jwtVerify, type JWTPayload, type JWTVerifyGetKey } from 'jose';
import { IdentityError, type LogoutTokenClaims } from './types.js';

export const BACKCHANNEL_EVENT = 'http://schemas.openid.net/event/backchannel-logout';

/** Provider answers that mean "ask the user" (consent for new scopes, MFA, sign-in again). */
export const INTERACTION_ERRORS = new Set(['interaction_required', 'consent_required', 'login_required', 'invalid_scope', 'account_selection_required', 'insufficient_scope', 'invalid_target']);

export interface LogoutTokenCheck {
  jwks: JWTVerifyGetKey;
  clientId: string;
  /** The metadata's issuer; leave out when the caller checks `iss` itself (Entra's {tenantid}). */
  issuer?: string;
  algorithms?: string[];
  clockToleranceSec: number;
}

/** OpenID Connect Back-Channel Logout 1.0, section 2.6, for every back end. */
export async function verifyLogoutToken(token: string, check: LogoutTokenCheck): Promise<{ claims: LogoutTokenClaims; payload: JWTPayload }> {
  let payload: JWTPayload;
  try {
    ({ payload } = await jwtVerify(token, check.jwks, {
      issuer: check.issuer,
      audience: check.clientId,
      algorithms: (check.algorithms ?? ['RS256']).filter((a) => a !== 'none'),
      clockTolerance: check.clockToleranceSec,
      maxTokenAge: '10m',
      requiredClaims: ['iat', 'jti'],
    }));
  } catch (err) {
    throw new IdentityError('invalid_request', 'logout token rejected', { cause: err });
  }
  const events = payload.events as Record<string, unknown> | undefined;
  // Section 2.4: the event's value is a JSON object (typeof null and arrays are 'object' too).
  const event = events && typeof events === 'object' ? events[BACKCHANNEL_EVENT] : undefined;
  if (!event || typeof event !== 'object' || Array.isArray(event)) throw new IdentityError('invalid_request', 'logout token has no back-channel logout event');
  if ('nonce' in payload) throw new IdentityError('invalid_request', 'logout token carries a nonce');
  const sid = typeof payload.sid === 'string' ? payload.sid : undefined;
  const sub = typeof payload.sub === 'string' ? payload.sub : undefined;
  if (!sid && !sub) throw new IdentityError('invalid_request', 'logout token names neither sid nor sub');
  return { claims: { iss: payload.iss!, sub, sid, jti: payload.jti!, exp: payload.exp }, payload };
}
